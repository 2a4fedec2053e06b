// How csrc/cuda launches kernels and sizes grids. Every launch goes through launch<kernel>():
// under nvcc it is `kernel<<<grid, block, shared, stream>>>(args...)`; under the CPU execution
// model that the C++ tests compile these sources against (tests/cuda_model, DESIGN §8) it
// runs the kernel there, synchronously.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>

namespace edfast {
namespace cuda {

template <auto Kernel, typename... Args>
inline cudaError_t launch(dim3 grid, dim3 block, size_t shared_bytes, cudaStream_t stream,
                          Args... args) {
#ifdef EDFAST_CUDA_MODEL
  return cuda_model::launch<Kernel>(grid, block, shared_bytes, stream, args...);
#else
  Kernel<<<grid, block, shared_bytes, stream>>>(args...);
  return cudaGetLastError();
#endif
}

// The block's dynamic shared memory (the launch's `shared_bytes`), as T*; 16-byte aligned.
template <typename T>
__device__ inline T* dynamic_shared_memory() {
#ifdef EDFAST_CUDA_MODEL
  return reinterpret_cast<T*>(cuda_model::dynamic_shared());
#else
  extern __shared__ __align__(16) unsigned char edfast_dynamic_shared[];
  return reinterpret_cast<T*>(edfast_dynamic_shared);
#endif
}

// Blocks of `threads_per_block` threads that the current device holds at once (2048 threads
// per SM on sm_90). Grid-stride kernels launch no more: more blocks would only queue.
inline int64_t resident_blocks(int threads_per_block) {
  int device = 0, multiprocessors = 1;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device);
  return static_cast<int64_t>(multiprocessors) * std::max(1, 2048 / threads_per_block);
}

// The grid of a grid-stride kernel over `items` work items, `per_block` of them per block.
inline unsigned grid_stride_blocks(int64_t items, int64_t per_block, int threads_per_block) {
  const int64_t wanted = (items + per_block - 1) / per_block;
  return static_cast<unsigned>(std::max<int64_t>(1, std::min(wanted, resident_blocks(threads_per_block))));
}

}  // namespace cuda
}  // namespace edfast
