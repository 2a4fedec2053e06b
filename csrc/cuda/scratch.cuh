// A launcher's scratch memory on the device (csrc/cuda/fused.cu, mlp.cu): from the caller's
// allocator (torch's caching allocator in the ops), else cudaMallocAsync on the launch's
// stream, released after the launches are enqueued.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "launchers.h"

namespace edfast {
namespace cuda {

// Scratch a launcher takes at most: it launches fewer blocks instead (a block always gets its
// own part).
constexpr int64_t kWorkspaceBudget = int64_t{256} << 20;

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
  // Frees what allocate took from cudaMallocAsync (the caller's allocator frees its own) and
  // returns the first error of `status` and the free.
  cudaError_t release(cudaError_t status) {
    if (allocator.allocate != nullptr || memory == nullptr) return status;
    const cudaError_t freed = cudaFreeAsync(memory, stream);
    memory = nullptr;
    return status != cudaSuccess ? status : freed;
  }
};

}  // namespace cuda
}  // namespace edfast
