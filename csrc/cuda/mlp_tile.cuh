// What a block of the fused MLP kernels (mlp.cu) does with one tile of items: the sizes, the
// shared-memory and slab layout, drawing the tile's items from the seed, the tile GEMM with
// the weights streamed through shared memory, the layers, and grad W over a tile. Included by
// mlp.cu only; the design is described at the top of mlp.cu.
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/contrastive.h"
#include "../core/mlp.h"
#include "../core/perturb.h"
#include "../mlp_args.h"
#include "launch.cuh"

namespace edfast {
namespace cuda {
namespace mlp_tile {


constexpr int kWarp = 32;
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarps = 8;
constexpr int kThreads = kWarps * kWarp;
constexpr int kTileItems = 32;                             // items per tile
constexpr int kItemsPerThread = kTileItems / kWarps;       // items n = warp + kWarps * a
constexpr int kColumnBlocks = 8;                           // outputs c = lane + 32 * b: 256 per pass
constexpr int kMaxPassColumns = kColumnBlocks * kWarp;
constexpr int kChunk = 16;                                 // input features per weight chunk
constexpr int kGradColumns = kWarp;                        // grad W: input features per pass (lanes)
constexpr int kGradOutputs = kWarps * kColumnBlocks;       // grad W: outputs per pass (warp + 8 b)

static_assert(kTileItems % kWarps == 0, "a thread's items are warp + kWarps * a");
static_assert(kThreads >= kTileItems, "one thread per item in the per-item steps");

// std::min/max are host functions to nvcc (without --expt-relaxed-constexpr).
__device__ inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
__device__ inline int64_t max64(int64_t a, int64_t b) { return a < b ? b : a; }

template <typename A>
__device__ A warp_sum(A x) {
  for (int offset = kWarp / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(kFullMask, x, offset);
  return x;
}

// Where everything lives. Shared memory (in T): act[2] [kTileItems, act_ld], the weight chunk
// ws [kChunk, ws_ld] (also grad W's staged activations [kTileItems, kGradColumns]), the staged
// input chunk xs [kTileItems, kChunk], then the tile's coefficients and energies [kTileItems].
// Global, per block: the items [kTileItems, D], then (backward) h_l and act'(pre_l) of each
// hidden layer l = 1 .. layers - 1, [kTileItems, width[l]] each.
struct Layout {
  int64_t act_ld;       // the widest hidden layer (>= 1)
  int64_t pass;         // output columns per GEMM pass: a multiple of 32, at most 256
  int64_t ws_ld;        // pass + 1: the staging writes hit distinct banks
  int64_t act[2], ws, xs, coef, energy;  // shared offsets
  size_t shared_bytes;
  int64_t saved[kMlpMaxLayers];  // slab offsets of h_l (l >= 1); act'(pre_l) follows at + kTileItems * width[l]
  int64_t slab;                  // slab elements per block
};

template <typename T>
Layout make_layout(const MlpInputs<T>& in, bool backward) {
  Layout layout{};
  int64_t widest = 1;
  for (int l = 1; l < in.layers; ++l) widest = std::max<int64_t>(widest, in.width[l]);
  layout.act_ld = widest;
  // Columns: the hidden widths, and D for grad x (in passes of at most 256).
  const int64_t columns = std::max<int64_t>(widest, in.width[0]);
  layout.pass = std::min<int64_t>(kMaxPassColumns, (columns + kWarp - 1) / kWarp * kWarp);
  layout.ws_ld = layout.pass + 1;
  int64_t at = 0;
  for (int b = 0; b < 2; ++b) {
    layout.act[b] = at;
    at += kTileItems * layout.act_ld;
  }
  layout.ws = at;
  at += std::max<int64_t>(kChunk * layout.ws_ld, kTileItems * kGradColumns);
  layout.xs = at;
  at += kTileItems * kChunk;
  layout.coef = at;
  at += kTileItems;
  layout.energy = at;
  at += kTileItems;
  layout.shared_bytes = static_cast<size_t>(at) * sizeof(T);
  int64_t slab = kTileItems * in.width[0];
  for (int l = 1; l < in.layers; ++l) {
    layout.saved[l] = slab;
    if (backward) slab += 2 * kTileItems * in.width[l];
  }
  layout.slab = slab;
  return layout;
}

// Everything a tile kernel needs, by value.
template <typename T>
struct Problem {
  FusedShape shape;
  MlpNoise noise;
  MlpInputs<T> in;
  Layout layout;
  const T* y;   // [B, D]
  T* slabs;     // [grid, layout.slab]
  T scale;      // Gaussian standard deviation, in T as edfast::perturb uses it
};

// ------------------------------------------------------------------ the items

// y_i = q(x_i) for every row: one warp per row. Dense noise: lanes own 4-coordinate blocks;
// sparse Bernoulli and BitFlip: the lanes copy the row, then lane 0 flips in sequence.
template <typename T>
__global__ void __launch_bounds__(kThreads) y_kernel(FusedShape shape, MlpNoise noise, const T* x, T* y, T scale) {
  using U = typename core::FloatFlip<T>::U;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
  const int64_t dim = shape.dim, blocks = core::blocks_per_row(dim);
  const bool sequential = noise.kind == core::kBitFlip || (noise.kind == core::kBernoulli && noise.bernoulli.sparse);
  // The row is the same for the 32 lanes of a warp: whole warps enter and leave the loop.
  for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp; i < shape.batch;
       i += warps) {
    const core::RowStream stream(shape.seed, static_cast<uint64_t>(shape.row_offset + i), core::kStreamY);
    const T* a = x + i * dim;
    T* b = y + i * dim;
    if (sequential) {
      for (int64_t d = lane; d < dim; d += kWarp) b[d] = a[d];
      __syncwarp();  // lane 0 flips coordinates the other lanes wrote
      if (lane == 0) {
        U* bits = reinterpret_cast<U*>(b);
        const core::BinaryFlip<U> flip = core::FloatFlip<T>::flip();
        if (noise.kind == core::kBitFlip) {
          const int64_t d = core::bitflip_coordinate(stream, dim);
          bits[d] = flip(bits[d]);
        } else {
          core::for_each_gap_flip(stream, dim, noise.bernoulli.gap_scale, [&](int64_t d) { bits[d] = flip(bits[d]); });
        }
      }
      __syncwarp();  // the next row's copy by other lanes comes after lane 0's flips of this one
    } else {
      for (int64_t k = lane; k < blocks; k += kWarp) {
        if (noise.kind == core::kGaussian) {
          core::gaussian_block(stream, k, a, b, dim, scale);
        } else {
          core::bernoulli_block(stream, k, reinterpret_cast<const U*>(a), reinterpret_cast<U*>(b), dim,
                                noise.bernoulli.threshold, core::FloatFlip<T>::flip());
        }
      }
    }
  }
}

// The items of the tile starting at item t0 into the block's slab [kTileItems, D]; items past
// the batch are zeros (their coefficients are 0, so they add nothing). Called by the whole
// block; returns with the slab visible to every thread.
template <typename T>
__device__ void make_items(const Problem<T>& p, T* items, int64_t t0) {
  using U = typename core::FloatFlip<T>::U;
  const int64_t dim = p.shape.dim, blocks = core::blocks_per_row(dim), per_row = p.shape.negatives + 1;
  const int64_t total = p.shape.batch * per_row;
  const bool sequential =
      p.noise.kind == core::kBitFlip || (p.noise.kind == core::kBernoulli && p.noise.bernoulli.sparse);
  __syncthreads();  // every thread is done with the previous tile's items
  for (int64_t e = threadIdx.x; e < kTileItems * blocks; e += kThreads) {
    const int64_t n = e / blocks, k = e % blocks, g = t0 + n, first = k * core::kCoordsPerBlock;
    T* out = items + n * dim;
    const int64_t end = min64(first + core::kCoordsPerBlock, dim);
    if (g >= total) {
      for (int64_t d = first; d < end; ++d) out[d] = T(0);
      continue;
    }
    const int64_t i = g / per_row, item = g % per_row;
    if (item == 0) {
      for (int64_t d = first; d < end; ++d) out[d] = p.in.x[i * dim + d];
      continue;
    }
    const T* y = p.y + i * dim;
    if (sequential) {
      for (int64_t d = first; d < end; ++d) out[d] = y[d];
      continue;
    }
    const core::RowStream stream(p.shape.seed, static_cast<uint64_t>(p.shape.row_offset + i),
                                 core::negative_stream(item - 1));
    if (p.noise.kind == core::kGaussian) {
      core::gaussian_block(stream, k, y, out, dim, p.scale);
    } else {
      core::bernoulli_block(stream, k, reinterpret_cast<const U*>(y), reinterpret_cast<U*>(out), dim,
                            p.noise.bernoulli.threshold, core::FloatFlip<T>::flip());
    }
  }
  if (sequential) {  // the same for the whole block
    __syncthreads();  // the copies of y are in place
    for (int n = threadIdx.x; n < kTileItems; n += kThreads) {
      const int64_t g = t0 + n;
      if (g >= total || g % per_row == 0) continue;
      const int64_t i = g / per_row;
      const core::RowStream stream(p.shape.seed, static_cast<uint64_t>(p.shape.row_offset + i),
                                   core::negative_stream(g % per_row - 1));
      U* bits = reinterpret_cast<U*>(items + n * dim);
      const core::BinaryFlip<U> flip = core::FloatFlip<T>::flip();
      if (p.noise.kind == core::kBitFlip) {
        const int64_t d = core::bitflip_coordinate(stream, dim);
        bits[d] = flip(bits[d]);
      } else {
        core::for_each_gap_flip(stream, dim, p.noise.bernoulli.gap_scale, [&](int64_t d) { bits[d] = flip(bits[d]); });
      }
    }
  }
  __syncthreads();  // the items are complete
}

// ------------------------------------------------------------------ the tile GEMM

template <typename T>
using Accumulators = T[kItemsPerThread][kColumnBlocks];

// acc[a][b] = sum_r in[n][r] * B(r, c) for the thread's items n = warp + kWarps a and columns
// c = c0 + lane + 32 b (< columns), r < depth. B(r, c) = weight[c * ld + r] (kForward: W
// [columns, depth] as nn.Linear stores it, out = in W^T) or weight[r * ld + c] (W [depth,
// columns], out = in W: backward's delta W and grad x). `in` is in shared memory (in_shared,
// [kTileItems, in_ld]) or in global memory (the items), whose chunks are staged in xs.
// Called by the whole block; starts with a barrier (the staging buffers are free, and `in`,
// written before the call, is visible) and leaves ws and xs in use until the next barrier.
template <typename T, bool kForward>
__device__ void tile_gemm(Accumulators<T>& acc, const T* in, int64_t in_ld, bool in_shared, int64_t depth,
                          const T* weight, int64_t ld, int64_t columns, int64_t c0, const Layout& layout, T* shared) {
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  T* ws = shared + layout.ws;
  T* xs = shared + layout.xs;
  const int64_t width = min64(layout.pass, columns - c0);
  const int blocks = static_cast<int>((width + kWarp - 1) / kWarp);
#pragma unroll
  for (int a = 0; a < kItemsPerThread; ++a)
#pragma unroll
    for (int b = 0; b < kColumnBlocks; ++b) acc[a][b] = T(0);
  for (int64_t r0 = 0; r0 < depth; r0 += kChunk) {
    const int chunk = static_cast<int>(min64(kChunk, depth - r0));
    __syncthreads();  // ws and xs are free; `in` is complete
    // Stage B(r0 + rr, c0 + cc): global reads along W's rows (coalesced), shared writes with
    // row stride ws_ld = pass + 1 (distinct banks).
    for (int64_t e = threadIdx.x; e < chunk * width; e += kThreads) {
      int64_t rr, cc;
      if (kForward) {
        rr = e % chunk, cc = e / chunk;
        ws[rr * layout.ws_ld + cc] = weight[(c0 + cc) * ld + r0 + rr];
      } else {
        cc = e % width, rr = e / width;
        ws[rr * layout.ws_ld + cc] = weight[(r0 + rr) * ld + c0 + cc];
      }
    }
    if (!in_shared) {
      for (int64_t e = threadIdx.x; e < kTileItems * chunk; e += kThreads) {
        const int64_t n = e / chunk, rr = e % chunk;
        xs[n * kChunk + rr] = in[n * in_ld + r0 + rr];
      }
    }
    __syncthreads();  // the chunk is staged
    const T* a_chunk = in_shared ? in + r0 : xs;
    const int64_t a_ld = in_shared ? in_ld : kChunk;
    for (int rr = 0; rr < chunk; ++rr) {
      T w[kColumnBlocks];
#pragma unroll
      for (int b = 0; b < kColumnBlocks; ++b) {
        const int cc = lane + kWarp * b;
        w[b] = b < blocks && cc < width ? ws[rr * layout.ws_ld + cc] : T(0);
      }
#pragma unroll
      for (int a = 0; a < kItemsPerThread; ++a) {
        const T v = a_chunk[(warp + kWarps * a) * a_ld + rr];  // the same for the warp: a broadcast
#pragma unroll
        for (int b = 0; b < kColumnBlocks; ++b) {
          if (b < blocks) acc[a][b] += v * w[b];
        }
      }
    }
  }
}

// A hidden layer l: out[n][c] = act(sum_k in[n][k] W_l[c][k] + b_l[c]) into shared memory and,
// when `saved` is not null, h and act'(pre) into the block's slab ([kTileItems, width] each).
template <typename T>
__device__ void hidden_layer(const Problem<T>& p, int l, const T* in, int64_t in_ld, bool in_shared, T* out,
                             T* saved, T* shared) {
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int64_t depth = p.in.width[l], columns = p.in.width[l + 1];
  for (int64_t c0 = 0; c0 < columns; c0 += p.layout.pass) {
    Accumulators<T> acc;
    tile_gemm<T, true>(acc, in, in_ld, in_shared, depth, p.in.weight[l], depth, columns, c0, p.layout, shared);
#pragma unroll
    for (int a = 0; a < kItemsPerThread; ++a) {
      const int n = warp + kWarps * a;
#pragma unroll
      for (int b = 0; b < kColumnBlocks; ++b) {
        const int64_t c = c0 + lane + kWarp * b;
        if (c >= columns) continue;
        T slope;
        const T h = core::activate(p.in.activation, acc[a][b] + p.in.bias[l][c], &slope);
        out[n * p.layout.act_ld + c] = h;
        if (saved != nullptr) {
          saved[n * columns + c] = h;
          saved[kTileItems * columns + n * columns + c] = slope;
        }
      }
    }
  }
}

// The output layer: energy[n] = W_L in_n + b_L, one warp per item, lanes over the inputs.
// Starts with a barrier (`in` complete); energy is written by lane 0 of the item's warp.
template <typename T>
__device__ void output_layer(const Problem<T>& p, const T* in, int64_t in_ld, T* energy) {
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  const int l = p.in.layers - 1;
  const int64_t depth = p.in.width[l];
  const T* weight = p.in.weight[l];
  __syncthreads();
#pragma unroll
  for (int a = 0; a < kItemsPerThread; ++a) {
    const int n = warp + kWarps * a;
    T sum = T(0);
    for (int64_t k = lane; k < depth; k += kWarp) sum += in[n * in_ld + k] * weight[k];
    sum = warp_sum(sum);
    if (lane == 0) energy[n] = sum + p.in.bias[l][0];
  }
}

// The tile's forward from its items in the slab: the energies into shared energy[], and with
// `saved` (backward) every hidden layer's h and act'(pre) into the slab. Returns with energy[]
// visible to the block.
template <typename T>
__device__ void tile_forward(const Problem<T>& p, const T* items, T* saved_base, T* shared) {
  const T* in = items;
  int64_t in_ld = p.in.width[0];
  bool in_shared = false;
  for (int l = 0; l + 1 < p.in.layers; ++l) {
    T* out = shared + p.layout.act[l % 2];
    T* saved = saved_base == nullptr ? nullptr : saved_base + p.layout.saved[l + 1];
    hidden_layer(p, l, in, in_ld, in_shared, out, saved, shared);
    in = out;
    in_ld = p.layout.act_ld;
    in_shared = true;
  }
  output_layer(p, in, in_ld, shared + p.layout.energy);
  __syncthreads();
}

// grad W += delta^T h over the tile: [outputs, inputs] with delta [kTileItems, outputs] in
// shared memory and h [kTileItems, inputs] in global memory (the slab), staged 32 features at a
// time (lanes) in ws; warps and registers over the outputs. Starts with a barrier.
template <typename T>
__device__ void grad_weight(const T* delta, int64_t delta_ld, int64_t outputs, const T* h, int64_t inputs, T* grad,
                            const Layout& layout, T* shared) {
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  T* hs = shared + layout.ws;
  for (int64_t k0 = 0; k0 < inputs; k0 += kGradColumns) {
    __syncthreads();  // hs is free; delta is complete
    for (int e = threadIdx.x; e < kTileItems * kGradColumns; e += kThreads) {
      const int64_t n = e / kGradColumns, k = k0 + e % kGradColumns;
      hs[e] = k < inputs ? h[n * inputs + k] : T(0);
    }
    __syncthreads();
    const int64_t k = k0 + lane;
    for (int64_t o0 = 0; o0 < outputs; o0 += kGradOutputs) {
      T acc[kColumnBlocks];
#pragma unroll
      for (int b = 0; b < kColumnBlocks; ++b) acc[b] = T(0);
      for (int n = 0; n < kTileItems; ++n) {
        const T hv = hs[n * kGradColumns + lane];
#pragma unroll
        for (int b = 0; b < kColumnBlocks; ++b) {
          const int64_t o = o0 + warp + kWarps * b;
          if (o < outputs) acc[b] += delta[n * delta_ld + o] * hv;  // delta: a broadcast
        }
      }
      if (k >= inputs) continue;
#pragma unroll
      for (int b = 0; b < kColumnBlocks; ++b) {
        const int64_t o = o0 + warp + kWarps * b;
        if (o < outputs) atomicAdd(grad + o * inputs + k, acc[b]);
      }
    }
  }
}

}  // namespace mlp_tile
}  // namespace cuda
}  // namespace edfast
