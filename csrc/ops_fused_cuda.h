// What the CUDA registrations of the fused ops (ops_fused_cuda.cpp, ops_mlp_cuda.cpp) share:
// the launch check, the launchers' scratch memory from torch's caching allocator, and the
// device guard around an op body.
#pragma once

#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>

#include <tuple>
#include <utility>

#include "cuda/launchers.h"

namespace edfast {
namespace fused_cuda {

inline void check_launch(cudaError_t status, const char* launcher) {
  TORCH_CHECK(status == cudaSuccess, "edfast: CUDA launch of the fused ", launcher, " failed: ",
              cudaGetErrorString(status));
}

// The launchers' scratch memory from torch's caching allocator, so that it is counted and
// reused like every other tensor: stream-ordered on the current stream, released to the cache
// when the launches have been enqueued.
struct TorchWorkspace {
  at::Tensor buffer;
  static void* allocate(size_t bytes, void* self) {
    auto* workspace = static_cast<TorchWorkspace*>(self);
    workspace->buffer = at::empty({static_cast<int64_t>(bytes)},
                                  at::TensorOptions().dtype(at::kByte).device(at::kCUDA, c10::cuda::current_device()));
    return workspace->buffer.data_ptr();
  }
  cuda::WorkspaceAllocator allocator() { return {&TorchWorkspace::allocate, this}; }
};

// An op body run with the device of its argument kDeviceArg (x) current: the body allocates
// with x's device explicitly, but the stream and the launches follow the current device.
template <auto Body, size_t kDeviceArg>
struct Guarded;
template <typename R, typename... Args, R (*Body)(Args...), size_t kDeviceArg>
struct Guarded<Body, kDeviceArg> {
  static R call(Args... args) {
    const c10::cuda::CUDAGuard guard(std::get<kDeviceArg>(std::forward_as_tuple(args...)).device());
    return Body(args...);
  }
};

}  // namespace fused_cuda
}  // namespace edfast
