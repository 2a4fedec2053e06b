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
#include "mlp_tile.cuh"
#include "scratch.cuh"

namespace edfast {
namespace cuda {
namespace {

using namespace mlp_tile;  // NOLINT: the tile maths of mlp_tile.cuh

// Shared memory per SM that blocks may take (sm_90: 228 KiB, 1 KiB of it reserved per block).
constexpr size_t kSharedPerMultiprocessor = 228 * 1024;

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
