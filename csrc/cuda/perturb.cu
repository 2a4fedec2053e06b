// CUDA perturbation kernels. One thread owns one 4-coordinate block of one stream of one row
// (a grid-stride loop over them) and calls the same csrc/core/ function the CPU loop calls, so
// both draw identical noise. Two launches: y from x, then the negatives from y.
#include <cstdint>

#include "../core/perturb.h"
#include "launch.cuh"
#include "launchers.h"

namespace edfast {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// Work item = (row i, stream s, block k). Stage y: streams = 1, stream id 0, output row i.
// Stage negatives: streams = m, stream id 1 + neg_offset + s, output row i * m + s, input y.
template <typename T, typename BlockStep>
__global__ void perturb_stage(const T* in, T* out, PerturbShape shape, int64_t streams,
                              int64_t first_stream_id, BlockStep step) {
  const int64_t blocks = core::blocks_per_row(shape.dim);
  const int64_t total = shape.batch * streams * blocks;
  for (int64_t item = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; item < total;
       item += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t k = item % blocks;
    const int64_t s = (item / blocks) % streams;
    const int64_t i = item / (blocks * streams);
    const core::RowStream stream(shape.seed, static_cast<uint64_t>(shape.row_offset + i),
                                 static_cast<uint32_t>(first_stream_id + s));
    step(stream, k, in + i * shape.dim, out + (i * streams + s) * shape.dim, shape.dim);
  }
}

template <typename T, typename BlockStep>
cudaError_t launch_two_stages(const T* x, T* y, T* negatives, const PerturbShape& shape,
                              BlockStep step, cudaStream_t stream) {
  const int64_t blocks = core::blocks_per_row(shape.dim);
  auto grid_for = [](int64_t items) { return grid_stride_blocks(items, kThreads, kThreads); };
  if (shape.batch == 0 || shape.dim == 0) return cudaSuccess;
  cudaError_t status = launch<perturb_stage<T, BlockStep>>(
      grid_for(shape.batch * blocks), kThreads, 0, stream, x, y, shape, int64_t{1},
      int64_t{core::kStreamY}, step);
  if (status == cudaSuccess && shape.negatives > 0) {
    status = launch<perturb_stage<T, BlockStep>>(
        grid_for(shape.batch * shape.negatives * blocks), kThreads, 0, stream,
        static_cast<const T*>(y), negatives, shape, shape.negatives,
        static_cast<int64_t>(core::negative_stream(shape.neg_offset)), step);
  }
  return status;
}

template <typename T>
struct GaussianStep {
  T scale;
  __device__ void operator()(const core::RowStream& s, int64_t k, const T* a, T* b, int64_t dim) const {
    core::gaussian_block(s, k, a, b, dim, scale);
  }
};

template <typename U>
struct BernoulliStep {
  uint64_t threshold;
  core::BinaryFlip<U> flip;
  __device__ void operator()(const core::RowStream& s, int64_t k, const U* a, U* b, int64_t dim) const {
    core::bernoulli_block(s, k, a, b, dim, threshold, flip);
  }
};

template <typename U>
struct BitFlipStep {
  core::BinaryFlip<U> flip;
  __device__ void operator()(const core::RowStream& s, int64_t k, const U* a, U* b, int64_t dim) const {
    const int64_t flipped = core::bitflip_coordinate(s, dim);
    const int64_t first = k * core::kCoordsPerBlock;
    for (int c = 0; c < core::kCoordsPerBlock && first + c < dim; ++c) {
      b[first + c] = first + c == flipped ? flip(a[first + c]) : a[first + c];
    }
  }
};

// Sparse Bernoulli, one warp per (row i, stream s): the lanes copy the input row (coalesced),
// then lane 0 walks the stream's gaps and flips (about epsilon D of them).
constexpr int kWarp = 32;

template <typename U>
__global__ void sparse_bernoulli_stage(const U* in, U* out, PerturbShape shape, int64_t streams,
                                       int64_t first_stream_id, float gap_scale,
                                       core::BinaryFlip<U> flip) {
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * (blockDim.x / kWarp);
  // The item is the same for the 32 lanes of a warp: whole warps enter and leave the loop.
  for (int64_t item = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
       item < shape.batch * streams; item += warps) {
    const int64_t s = item % streams, i = item / streams;
    const U* a = in + i * shape.dim;
    U* b = out + (i * streams + s) * shape.dim;
    for (int64_t d = lane; d < shape.dim; d += kWarp) b[d] = a[d];
    __syncwarp();  // lane 0 flips coordinates the other lanes wrote
    if (lane == 0) {
      const core::RowStream stream(shape.seed, static_cast<uint64_t>(shape.row_offset + i),
                                   static_cast<uint32_t>(first_stream_id + s));
      core::for_each_gap_flip(stream, shape.dim, gap_scale, [&](int64_t d) { b[d] = flip(b[d]); });
    }
  }
}

template <typename U>
cudaError_t launch_sparse_bernoulli(const U* x, U* y, U* negatives, const PerturbShape& shape,
                                    float gap_scale, core::BinaryFlip<U> flip, cudaStream_t stream) {
  if (shape.batch == 0 || shape.dim == 0) return cudaSuccess;
  constexpr int kWarpsPerBlock = kThreads / kWarp;
  cudaError_t status = launch<sparse_bernoulli_stage<U>>(
      grid_stride_blocks(shape.batch, kWarpsPerBlock, kThreads), kThreads, 0, stream, x, y, shape,
      int64_t{1}, int64_t{core::kStreamY}, gap_scale, flip);
  if (status == cudaSuccess && shape.negatives > 0) {
    status = launch<sparse_bernoulli_stage<U>>(
        grid_stride_blocks(shape.batch * shape.negatives, kWarpsPerBlock, kThreads), kThreads, 0,
        stream, static_cast<const U*>(y), negatives, shape, shape.negatives,
        static_cast<int64_t>(core::negative_stream(shape.neg_offset)), gap_scale, flip);
  }
  return status;
}

struct TransitionStep {
  const double* cdf;
  int64_t num_classes;
  __device__ void operator()(const core::RowStream& s, int64_t k, const int64_t* a, int64_t* b,
                             int64_t dim) const {
    core::transition_block(s, k, a, b, dim, cdf, num_classes);
  }
};

}  // namespace

template <typename T>
cudaError_t perturb_gaussian(const T* x, T* y, T* negatives, const PerturbShape& shape,
                             double scale, cudaStream_t stream) {
  return launch_two_stages(x, y, negatives, shape, GaussianStep<T>{static_cast<T>(scale)}, stream);
}
template cudaError_t perturb_gaussian<float>(const float*, float*, float*, const PerturbShape&,
                                             double, cudaStream_t);
template cudaError_t perturb_gaussian<double>(const double*, double*, double*,
                                              const PerturbShape&, double, cudaStream_t);

cudaError_t perturb_bernoulli(const void* x, void* y, void* negatives, const PerturbShape& shape,
                              double epsilon, const BinaryBits& bits, cudaStream_t stream) {
  const core::BernoulliNoise noise = core::bernoulli_noise(epsilon);
  cudaError_t status = cudaSuccess;
  dispatch_binary(bits, [&](auto tag) {
    using U = decltype(tag);
    const U* in = static_cast<const U*>(x);
    status = noise.sparse
                 ? launch_sparse_bernoulli(in, static_cast<U*>(y), static_cast<U*>(negatives), shape,
                                           noise.gap_scale, bits.flip<U>(), stream)
                 : launch_two_stages(in, static_cast<U*>(y), static_cast<U*>(negatives), shape,
                                     BernoulliStep<U>{noise.threshold, bits.flip<U>()}, stream);
  });
  return status;
}

cudaError_t perturb_bitflip(const void* x, void* y, void* negatives, const PerturbShape& shape,
                            const BinaryBits& bits, cudaStream_t stream) {
  cudaError_t status = cudaSuccess;
  dispatch_binary(bits, [&](auto tag) {
    using U = decltype(tag);
    status = launch_two_stages(static_cast<const U*>(x), static_cast<U*>(y), static_cast<U*>(negatives),
                               shape, BitFlipStep<U>{bits.flip<U>()}, stream);
  });
  return status;
}

cudaError_t perturb_transition(const int64_t* x, int64_t* y, int64_t* negatives,
                               const PerturbShape& shape, const double* cdf, int64_t num_classes,
                               cudaStream_t stream) {
  return launch_two_stages(x, y, negatives, shape, TransitionStep{cdf, num_classes}, stream);
}

}  // namespace cuda
}  // namespace edfast
