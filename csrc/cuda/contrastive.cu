// CUDA contrastive logsumexp: one warp per data row (a grid-stride loop over rows, whole warps
// at a time). Lanes stride over the M negatives with their own online logsumexp
// (csrc/core/contrastive.h) and merge by shuffles; backward writes each p_ij once and reduces
// sum_j p_ij the same way.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "../core/contrastive.h"
#include "launch.cuh"
#include "launchers.h"

namespace edfast {
namespace cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kThreads = 256;
constexpr int kRowsPerBlock = kThreads / kWarp;

template <typename scalar_t> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

// Explicit conversions: torch builds with __CUDA_NO_HALF_CONVERSIONS__.
__device__ float widen(__half x) { return __half2float(x); }
__device__ float widen(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ float widen(float x) { return x; }
__device__ double widen(double x) { return x; }

template <typename scalar_t> __device__ scalar_t narrow(typename Acc<scalar_t>::type x) { return x; }
template <> __device__ __half narrow<__half>(float x) { return __float2half_rn(x); }
template <> __device__ __nv_bfloat16 narrow<__nv_bfloat16>(float x) { return __float2bfloat16_rn(x); }

// The warp's first row and the stride of the grid-stride loop over rows.
__device__ int64_t first_row() {
  return static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
}
__device__ int64_t row_stride() { return static_cast<int64_t>(gridDim.x) * kRowsPerBlock; }

template <typename scalar_t, typename acc_t>
__global__ void forward_kernel(const scalar_t* e_pos, const scalar_t* e_neg, scalar_t* v,
                               acc_t* log_normaliser, ContrastShape shape, acc_t log_m) {
  const int lane = threadIdx.x % kWarp;
  const int64_t m = shape.negatives;
  // The row is the same for the 32 lanes of a warp, so whole warps enter and leave the loop.
  for (int64_t row = first_row(); row < shape.batch; row += row_stride()) {
    const acc_t pos = widen(e_pos[row]);
    auto lse = core::OnlineLogSumExp<acc_t>::empty();
    if (lane == 0) lse.push_weight(static_cast<acc_t>(shape.weight));
    for (int64_t j = lane; j < m; j += kWarp) lse.push(pos - widen(e_neg[row * m + j]));
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      core::OnlineLogSumExp<acc_t> other{__shfl_xor_sync(0xffffffffu, lse.max, offset),
                                         __shfl_xor_sync(0xffffffffu, lse.sum, offset)};
      lse.merge(other);
    }
    if (lane == 0) {
      const acc_t normaliser = lse.value();
      log_normaliser[row] = normaliser;
      v[row] = narrow<scalar_t>(normaliser - log_m);
    }
  }
}

template <typename scalar_t, typename acc_t>
__global__ void backward_kernel(const scalar_t* grad_v, const scalar_t* e_pos,
                                const scalar_t* e_neg, const acc_t* log_normaliser,
                                scalar_t* grad_pos, scalar_t* grad_neg, ContrastShape shape) {
  const int lane = threadIdx.x % kWarp;
  const int64_t m = shape.negatives;
  for (int64_t row = first_row(); row < shape.batch; row += row_stride()) {
    const acc_t g = widen(grad_v[row]);
    const acc_t pos = widen(e_pos[row]);
    const acc_t normaliser = log_normaliser[row];
    acc_t total = 0;
    for (int64_t j = lane; j < m; j += kWarp) {
      const acc_t p = core::contrast_weight(pos, widen(e_neg[row * m + j]), normaliser);
      total += p;
      grad_neg[row * m + j] = narrow<scalar_t>(-g * p);
    }
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      total += __shfl_xor_sync(0xffffffffu, total, offset);
    }
    if (lane == 0) grad_pos[row] = narrow<scalar_t>(g * total);
  }
}

unsigned grid_for(int64_t batch) { return grid_stride_blocks(batch, kRowsPerBlock, kThreads); }

template <typename Fn>
void dispatch(FloatType type, Fn fn) {
  switch (type) {
    case FloatType::kFloat16: fn(__half{}); break;
    case FloatType::kBFloat16: fn(__nv_bfloat16{}); break;
    case FloatType::kFloat32: fn(float{}); break;
    case FloatType::kFloat64: fn(double{}); break;
  }
}

}  // namespace

cudaError_t contrastive_forward(FloatType type, const void* e_pos, const void* e_neg, void* v,
                                void* log_normaliser, const ContrastShape& shape,
                                cudaStream_t stream) {
  if (shape.batch == 0) return cudaSuccess;
  cudaError_t status = cudaSuccess;
  dispatch(type, [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = typename Acc<scalar_t>::type;
    const acc_t log_m = static_cast<acc_t>(std::log(static_cast<double>(shape.negatives)));
    status = launch<forward_kernel<scalar_t, acc_t>>(
        grid_for(shape.batch), kThreads, 0, stream, static_cast<const scalar_t*>(e_pos),
        static_cast<const scalar_t*>(e_neg), static_cast<scalar_t*>(v),
        static_cast<acc_t*>(log_normaliser), shape, log_m);
  });
  return status;
}

cudaError_t contrastive_backward(FloatType type, const void* grad_v, const void* e_pos,
                                 const void* e_neg, const void* log_normaliser, void* grad_pos,
                                 void* grad_neg, const ContrastShape& shape, cudaStream_t stream) {
  if (shape.batch == 0) return cudaSuccess;
  cudaError_t status = cudaSuccess;
  dispatch(type, [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = typename Acc<scalar_t>::type;
    status = launch<backward_kernel<scalar_t, acc_t>>(
        grid_for(shape.batch), kThreads, 0, stream, static_cast<const scalar_t*>(grad_v),
        static_cast<const scalar_t*>(e_pos), static_cast<const scalar_t*>(e_neg),
        static_cast<const acc_t*>(log_normaliser), static_cast<scalar_t*>(grad_pos),
        static_cast<scalar_t*>(grad_neg), shape);
  });
  return status;
}

}  // namespace cuda
}  // namespace edfast
