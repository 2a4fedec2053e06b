// CUDA kernels of the fused MLP op (mlp_ed; maths in csrc/core/mlp.h, arguments in
// csrc/mlp_args.h); the CPU twin is csrc/cpu/mlp.cpp.
//
// Items: row i of the batch has M + 1 items, item 0 = x_i and item 1 + j = negative j, drawn from
// y_i = q(x_i) (stream core::kStreamY) with stream core::negative_stream(j), exactly as
// edfast::perturb draws them. The items of the batch are numbered g = i (M + 1) + k and cut into
// tiles of kTileItems consecutive items, so a tile may hold the end of one row and the start of
// the next, and every tile is full whatever M is (M = 1 as well as M = 1000).
//
// Launches (all on the caller's stream):
//   1. y_kernel: y [B, D] into the workspace, one warp per row (the negatives of a row share it).
//   2. forward_kernel / backward_kernel: a block of kThreads threads owns one tile at a time (a
//      grid-stride loop over tiles). It writes its tile's inputs (the items) into its slab of a
//      global workspace, [kTileItems, D], sized by the grid and the tile, never by M. Then every
//      layer runs on chip, tiny-cuda-nn style: the weights stream through shared memory in
//      chunks of kChunk input features (ws), the tile's activations stay in shared memory (two
//      ping-pong buffers [kTileItems, max hidden width]), and each thread keeps a register tile
//      of kItemsPerThread items x kColumnBlocks * 32 outputs. No [B, M, D] tensor exists.
//      - forward writes the items' energies U_g [B, M + 1] into the workspace, and
//        row_kernel (3.) reduces each row: one warp per row, an online logsumexp over its
//        negatives merged across lanes by shuffles.
//      - backward recomputes the tile's forward, keeping each hidden layer's output h_l and
//        slope act'(pre_l) in the block's slab (they are needed in reverse order; the slab is
//        [kTileItems, sum of hidden widths] x 2 per block: 64 KiB for the toy's 128 x 4 net in
//        float32, L2-resident; 512 KiB at 8 x 256, which spills to HBM), then
//        c_n from row_stats, then the deltas layer by layer in shared memory. grad b_l and
//        grad W_l = delta_l^T h_l are summed over the tile in registers and added to the
//        caller's zeroed gradients with one atomicAdd per element per tile; grad x sums each
//        row's deltas of the tile first (Gaussian: every item; binary noise: item 0 only, the
//        negatives are not differentiable in x) and multiplies that [rows, width_1] block by W_0,
//        one atomicAdd per (row, feature) per tile. So, as in the other fused CUDA backwards,
//        the sums are not bitwise repeatable from run to run (the order of the atomics varies).
//
// Arithmetic: SIMT FMA in T (float or double). Tensor cores are not used: the CPU execution
// model that tests these kernels (tests/cuda_model) does not model them, and torch's float32
// matmul, which the generic path uses, is full FP32 by default (plain TF32 would miss the float
// tolerance of the contract). Per inner step a thread reads kColumnBlocks weights (conflict-
// free: consecutive lanes, consecutive columns) and kItemsPerThread activations (a broadcast:
// a warp's lanes share the item) from shared memory for kItemsPerThread * kColumnBlocks = 32
// FMAs: 12 shared loads per 32 FMAs bound it to about 2/3 of the FP32 issue rate, and with the
// two barriers per 16-feature chunk and 1-2 blocks of 8 warps per SM (98-168 registers), about
// 25-45% of the H100's 67 TFLOP/s FP32 peak is what to expect for widths 128-256 (not measured:
// no GPU has run this file).
//
// The H100 design on paper (not built: tensor cores are not testable under the model):
//   - float32 as 3xTF32 (a = a_hi + a_lo in TF32; a_hi b_hi + a_hi b_lo + a_lo b_hi): FP32-level
//     error at a third of the dense TF32 rate, about 165 of 495 TFLOP/s; float64 by DMMA
//     (67 TFLOP/s). wgmma m64nNk8 with the weights in shared memory, brought in by TMA.
//   - A block: 128 items, 2 consumer warpgroups of 64 items x up to 256 outputs (a 64 x 256 FP32
//     accumulator is 128 registers per thread) and 1 producer warp. Shared memory: the
//     activations [128, 256] FP32 = 128 KiB (split hi/lo in registers when loaded as the next
//     layer's A), weight K-slabs [256 outputs x 16 inputs] as hi + lo = 32 KiB per stage, 3
//     stages = 96 KiB: 224 KiB, one block per SM. Backward keeps each layer's h and act'(pre) in
//     a per-block global slab (8 x 128 x 256 x 2 x 4 B = 2 MiB at the widest, in HBM; 128-wide
//     4-layer nets fit the 50 MiB L2), and adds grad W per tile with red.global.add.f32.
//   - Expected: 30-45% of the 3xTF32 rate (50-75 TFLOP/s of FP32-accurate work) for widths
//     128-256 forward, 25-35% backward (atomics, slab traffic, the per-layer epilogues and
//     barriers); widths below 64 and D = 2 input layers are latency-bound whatever the unit.
#include <cmath>
#include <cstdint>

#include "../core/contrastive.h"
#include "../core/mlp.h"
#include "../core/perturb.h"
#include "../mlp_args.h"
#include "launch.cuh"
#include "launchers.h"

namespace edfast {
namespace cuda {
namespace {

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
// Workspace at most (fewer blocks instead); a block always gets its slab.
constexpr int64_t kWorkspaceBudget = int64_t{256} << 20;
// Shared memory per SM that blocks may take (sm_90: 228 KiB, 1 KiB of it reserved per block).
constexpr size_t kSharedPerMultiprocessor = 228 * 1024;

static_assert(kTileItems % kWarps == 0, "a thread's items are warp + kWarps * a");
static_assert(kThreads >= kTileItems, "one thread per item in the per-item steps");

// A {0, 1} float or double flipped in its bits (core::BinaryFlip, as edfast::perturb does).
template <typename T>
struct FloatBits;
template <>
struct FloatBits<float> {
  using U = uint32_t;
  static __device__ core::BinaryFlip<U> flip() { return core::BinaryFlip<U>{0x7fffffffu, 0x3f800000u}; }
};
template <>
struct FloatBits<double> {
  using U = uint64_t;
  static __device__ core::BinaryFlip<U> flip() {
    return core::BinaryFlip<U>{0x7fffffffffffffffull, 0x3ff0000000000000ull};
  }
};

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
  using U = typename FloatBits<T>::U;
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
        const core::BinaryFlip<U> flip = FloatBits<T>::flip();
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
                                noise.bernoulli.threshold, FloatBits<T>::flip());
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
  using U = typename FloatBits<T>::U;
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
                            p.noise.bernoulli.threshold, FloatBits<T>::flip());
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
      const core::BinaryFlip<U> flip = FloatBits<T>::flip();
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

// ------------------------------------------------------------------ kernels

template <typename T>
__global__ void __launch_bounds__(kThreads) forward_kernel(Problem<T> p, T* energies) {
  T* shared = dynamic_shared_memory<T>();
  T* items = p.slabs + static_cast<int64_t>(blockIdx.x) * p.layout.slab;
  const int64_t total = p.shape.batch * (p.shape.negatives + 1);
  const int64_t tiles = (total + kTileItems - 1) / kTileItems;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t t0 = tile * kTileItems;
    make_items(p, items, t0);
    tile_forward(p, items, static_cast<T*>(nullptr), shared);
    for (int n = threadIdx.x; n < kTileItems; n += kThreads) {
      if (t0 + n < total) energies[t0 + n] = shared[p.layout.energy + n];
    }
  }
}

// v and row_stats of each row from its items' energies (csrc/mlp_args.h): one warp per row.
template <typename T>
__global__ void __launch_bounds__(kThreads) row_kernel(FusedShape shape, const T* energies, T* v, T* row_stats,
                                                       T log_m) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
  const int64_t per_row = shape.negatives + 1;
  for (int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp; i < shape.batch;
       i += warps) {
    const T* e = energies + i * per_row;
    const T u0 = e[0];
    auto negatives = core::OnlineLogSumExp<T>::empty();
    for (int64_t j = lane; j < shape.negatives; j += kWarp) negatives.push(u0 - e[1 + j]);
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      const T max = __shfl_xor_sync(kFullMask, negatives.max, offset);
      const T sum = __shfl_xor_sync(kFullMask, negatives.sum, offset);
      negatives.merge(core::OnlineLogSumExp<T>{max, sum});
    }
    if (lane == 0) {
      auto total = negatives;
      total.push_weight(static_cast<T>(shape.weight));
      const T normaliser = total.value();
      T* s = row_stats + i * kMlpRowStats;
      s[0] = u0;
      s[1] = normaliser;
      s[2] = core::acc_exp(negatives.value() - normaliser);
      v[i] = normaliser - log_m;
    }
  }
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

template <typename T>
__global__ void __launch_bounds__(kThreads) backward_kernel(Problem<T> p, const T* grad_v, const T* row_stats,
                                                            MlpGrads<T> grads) {
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  T* shared = dynamic_shared_memory<T>();
  const Layout& layout = p.layout;
  T* items = p.slabs + static_cast<int64_t>(blockIdx.x) * layout.slab;
  T* coef = shared + layout.coef;
  const int64_t dim = p.in.width[0], per_row = p.shape.negatives + 1;
  const int64_t total = p.shape.batch * per_row;
  const int64_t tiles = (total + kTileItems - 1) / kTileItems;
  const bool all_items_in_x = p.noise.kind == core::kGaussian;  // else item 0 only
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t t0 = tile * kTileItems;
    make_items(p, items, t0);
    tile_forward(p, items, items, shared);
    // c_0 = g P, c_j = -g exp(U_0 - U_j - L) (csrc/mlp_args.h); 0 past the batch.
    for (int n = threadIdx.x; n < kTileItems; n += kThreads) {
      const int64_t g = t0 + n;
      T c = T(0);
      if (g < total) {
        const int64_t i = g / per_row;
        const T* s = row_stats + i * kMlpRowStats;
        c = g % per_row == 0 ? grad_v[i] * s[2]
                             : -grad_v[i] * core::contrast_weight(s[0], shared[layout.energy + n], s[1]);
      }
      coef[n] = c;
    }
    // Layers in reverse: delta (shared, [kTileItems, delta_ld]) is dv/dpre of layer l's outputs.
    const T* delta = coef;
    int64_t delta_ld = 1;
    int free_buffer = 0;  // the act buffer that delta is not in
    for (int l = p.in.layers - 1; l >= 0; --l) {
      const int64_t outputs = p.in.width[l + 1], inputs = p.in.width[l];
      const T* h = l == 0 ? items : items + layout.saved[l];
      __syncthreads();  // delta is complete
      for (int64_t o = threadIdx.x; o < outputs; o += kThreads) {
        T sum = T(0);
        for (int n = 0; n < kTileItems; ++n) sum += delta[n * delta_ld + o];
        atomicAdd(grads.bias[l] + o, sum);
      }
      grad_weight(delta, delta_ld, outputs, h, inputs, grads.weight[l], layout, shared);
      if (l > 0) {
        // delta_{l-1} = (delta_l W_l) * act'(pre_{l-1}), into the free buffer.
        T* next = shared + layout.act[free_buffer];
        const T* slope = items + layout.saved[l] + kTileItems * inputs;
        Accumulators<T> acc;
        tile_gemm<T, false>(acc, delta, delta_ld, true, outputs, p.in.weight[l], inputs, inputs, 0, layout, shared);
#pragma unroll
        for (int a = 0; a < kItemsPerThread; ++a) {
          const int n = warp + kWarps * a;
#pragma unroll
          for (int b = 0; b < kColumnBlocks; ++b) {
            const int64_t c = lane + kWarp * b;
            if (c < inputs) next[n * layout.act_ld + c] = acc[a][b] * slope[n * inputs + c];
          }
        }
        delta = next;
        delta_ld = layout.act_ld;
        free_buffer ^= 1;
      } else if (grads.x != nullptr) {
        // grad x_i += (sum of delta_0 over row i's items in the tile) W_0: the sums S [rows, outputs]
        // into the free buffer, then S W_0 in passes of layout.pass features.
        const int64_t first_row = t0 / per_row;
        const int64_t rows = min64(total - 1, t0 + kTileItems - 1) / per_row - first_row + 1;
        T* sums = shared + layout.act[free_buffer];
        __syncthreads();  // the free buffer's last reader (the previous layer's GEMM) is done
        for (int64_t e = threadIdx.x; e < kTileItems * outputs; e += kThreads) {
          const int64_t r = e / outputs, o = e % outputs, row = first_row + r;
          T sum = T(0);
          if (r < rows) {
            const int64_t begin = max64(t0, row * per_row);
            const int64_t end = all_items_in_x ? min64(min64(t0 + kTileItems, total),
                                                                   (row + 1) * per_row)
                                               : min64(t0 + kTileItems, row * per_row + 1);
            for (int64_t g = begin; g < end; ++g) sum += delta[(g - t0) * delta_ld + o];
          }
          sums[r * layout.act_ld + o] = sum;
        }
        for (int64_t c0 = 0; c0 < dim; c0 += layout.pass) {
          Accumulators<T> acc;
          tile_gemm<T, false>(acc, sums, layout.act_ld, true, outputs, p.in.weight[0], dim, dim, c0, layout, shared);
#pragma unroll
          for (int a = 0; a < kItemsPerThread; ++a) {
            const int64_t r = warp + kWarps * a;
            if (r >= rows) continue;
#pragma unroll
            for (int b = 0; b < kColumnBlocks; ++b) {
              const int64_t c = c0 + lane + kWarp * b;
              if (c < dim) atomicAdd(grads.x + (first_row + r) * dim + c, acc[a][b]);
            }
          }
        }
      }
    }
  }
}

// ------------------------------------------------------------------ launch

// Workspace from the caller's allocator (torch's caching allocator in the ops), else
// cudaMallocAsync; released by release() (a no-op for the caller's allocator).
struct Scratch {
  WorkspaceAllocator allocator;
  cudaStream_t stream;
  void* memory = nullptr;

  cudaError_t allocate(size_t bytes) {
    bytes = std::max<size_t>(bytes, 16);
    if (allocator.allocate != nullptr) {
      memory = allocator.allocate(bytes, allocator.state);
      return memory == nullptr ? cudaErrorMemoryAllocation : cudaSuccess;
    }
    return cudaMallocAsync(&memory, bytes, stream);
  }
  cudaError_t release(cudaError_t status) {
    if (allocator.allocate != nullptr || memory == nullptr) return status;
    const cudaError_t freed = cudaFreeAsync(memory, stream);
    memory = nullptr;
    return status != cudaSuccess ? status : freed;
  }
};

size_t round_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

// The grid of a tile kernel: no more blocks than tiles, than the device holds at once with
// this shared memory, or than the workspace budget affords.
template <typename T>
int64_t tile_grid(int64_t tiles, const Layout& layout) {
  int device = 0, multiprocessors = 1;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device);
  const int64_t by_shared = static_cast<int64_t>(kSharedPerMultiprocessor / (layout.shared_bytes + 1024));
  const int64_t per_multiprocessor = std::max<int64_t>(1, std::min<int64_t>(2048 / kThreads, by_shared));
  const int64_t affordable = kWorkspaceBudget / (layout.slab * static_cast<int64_t>(sizeof(T)));
  return std::max<int64_t>(1, std::min({tiles, multiprocessors * per_multiprocessor, affordable}));
}

template <auto Kernel>
cudaError_t allow_shared(size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(reinterpret_cast<const void*>(Kernel), cudaFuncAttributeMaxDynamicSharedMemorySize,
                              static_cast<int>(bytes));
}

// Enqueues y [B, D] into `y`.
template <typename T>
cudaError_t launch_y(const FusedShape& shape, const MlpNoise& noise, const T* x, T* y, cudaStream_t stream) {
  constexpr int kWarpsPerBlock = kThreads / kWarp;
  return launch<y_kernel<T>>(grid_stride_blocks(shape.batch, kWarpsPerBlock, kThreads), dim3(kThreads), 0, stream,
                             shape, noise, x, y, static_cast<T>(noise.scale));
}

// The documented range (csrc/core/mlp.h), which the op checks: hidden widths up to 256 are
// what one GEMM pass of the backward's delta covers.
template <typename T>
bool in_range(const FusedShape& shape, const MlpInputs<T>& in) {
  if (in.layers < 1 || in.layers > kMlpMaxLayers || in.width[0] != shape.dim || shape.dim < 1 ||
      in.width[in.layers] != 1) {
    return false;
  }
  for (int l = 1; l < in.layers; ++l) {
    if (in.width[l] < 1 || in.width[l] > core::kMlpMaxWidth) return false;
  }
  return shape.negatives >= 1;
}

}  // namespace

template <typename T>
cudaError_t mlp_forward(const FusedShape& shape, const MlpNoise& noise, const MlpInputs<T>& in, T* v, T* row_stats,
                        cudaStream_t stream, WorkspaceAllocator workspace) {
  if (!in_range(shape, in)) return cudaErrorInvalidValue;
  if (shape.batch == 0) return cudaSuccess;
  const Layout layout = make_layout(in, false);
  const int64_t total = shape.batch * (shape.negatives + 1);
  const int64_t tiles = (total + kTileItems - 1) / kTileItems;
  const int64_t grid = tile_grid<T>(tiles, layout);
  const size_t y_bytes = round_up(static_cast<size_t>(shape.batch * shape.dim) * sizeof(T));
  const size_t energy_bytes = round_up(static_cast<size_t>(total) * sizeof(T));
  const size_t slab_bytes = static_cast<size_t>(grid * layout.slab) * sizeof(T);
  Scratch scratch{workspace, stream};
  cudaError_t status = scratch.allocate(y_bytes + energy_bytes + slab_bytes);
  if (status != cudaSuccess) return status;
  char* base = static_cast<char*>(scratch.memory);
  T* y = reinterpret_cast<T*>(base);
  T* energies = reinterpret_cast<T*>(base + y_bytes);
  const Problem<T> problem{shape, noise, in, layout, y, reinterpret_cast<T*>(base + y_bytes + energy_bytes),
                           static_cast<T>(noise.scale)};
  status = launch_y(shape, noise, in.x, y, stream);
  if (status == cudaSuccess) status = allow_shared<forward_kernel<T>>(layout.shared_bytes);
  if (status == cudaSuccess) {
    status = launch<forward_kernel<T>>(dim3(static_cast<unsigned>(grid)), dim3(kThreads), layout.shared_bytes, stream,
                                       problem, energies);
  }
  if (status == cudaSuccess) {
    constexpr int kWarpsPerBlock = kThreads / kWarp;
    status = launch<row_kernel<T>>(grid_stride_blocks(shape.batch, kWarpsPerBlock, kThreads), dim3(kThreads), 0,
                                   stream, shape, static_cast<const T*>(energies), v, row_stats,
                                   static_cast<T>(std::log(static_cast<double>(shape.negatives))));
  }
  return scratch.release(status);
}

template <typename T>
cudaError_t mlp_backward(const FusedShape& shape, const MlpNoise& noise, const MlpInputs<T>& in, const T* grad_v,
                         const T* row_stats, const MlpGrads<T>& grads, cudaStream_t stream,
                         WorkspaceAllocator workspace) {
  if (!in_range(shape, in)) return cudaErrorInvalidValue;
  if (shape.batch == 0) return cudaSuccess;
  const Layout layout = make_layout(in, true);
  const int64_t total = shape.batch * (shape.negatives + 1);
  const int64_t tiles = (total + kTileItems - 1) / kTileItems;
  const int64_t grid = tile_grid<T>(tiles, layout);
  const size_t y_bytes = round_up(static_cast<size_t>(shape.batch * shape.dim) * sizeof(T));
  const size_t slab_bytes = static_cast<size_t>(grid * layout.slab) * sizeof(T);
  Scratch scratch{workspace, stream};
  cudaError_t status = scratch.allocate(y_bytes + slab_bytes);
  if (status != cudaSuccess) return status;
  char* base = static_cast<char*>(scratch.memory);
  T* y = reinterpret_cast<T*>(base);
  const Problem<T> problem{shape, noise, in, layout, y, reinterpret_cast<T*>(base + y_bytes),
                           static_cast<T>(noise.scale)};
  status = launch_y(shape, noise, in.x, y, stream);
  if (status == cudaSuccess) status = allow_shared<backward_kernel<T>>(layout.shared_bytes);
  if (status == cudaSuccess) {
    status = launch<backward_kernel<T>>(dim3(static_cast<unsigned>(grid)), dim3(kThreads), layout.shared_bytes, stream,
                                        problem, grad_v, row_stats, grads);
  }
  return scratch.release(status);
}

#define EDFAST_MLP_INSTANTIATE(T)                                                                                  \
  template cudaError_t mlp_forward<T>(const FusedShape&, const MlpNoise&, const MlpInputs<T>&, T*, T*, cudaStream_t, \
                                      WorkspaceAllocator);                                                         \
  template cudaError_t mlp_backward<T>(const FusedShape&, const MlpNoise&, const MlpInputs<T>&, const T*, const T*, \
                                       const MlpGrads<T>&, cudaStream_t, WorkspaceAllocator);
EDFAST_MLP_INSTANTIATE(float)
EDFAST_MLP_INSTANTIATE(double)
#undef EDFAST_MLP_INSTANTIATE

}  // namespace cuda
}  // namespace edfast
