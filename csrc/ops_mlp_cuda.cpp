// CUDA registration of the fused MLP op: the device-generic bodies of ops_mlp.h with the
// torch-free launchers of csrc/cuda/mlp.cu, on the current stream of x's device.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include <tuple>

#include "cuda/launchers.h"
#include "ops_mlp.h"

namespace edfast {
namespace {

void check_launch(cudaError_t status, const char* launcher) {
  TORCH_CHECK(status == cudaSuccess, "edfast fused ", launcher, " (mlp_ed): CUDA launch failed: ",
              cudaGetErrorString(status));
}

// The launchers' scratch memory (y, the items' energies, the blocks' tile slabs) from torch's
// caching allocator, so that it is counted and reused like every other tensor: stream-ordered
// on the current stream, released to the cache when the launches have been enqueued.
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

// Called by the op bodies with x's device current (Guarded below), so the current stream is
// that device's.
struct CudaMlpKernels {
  // The forward never returns gradients: a CUDA forward that also differentiated would need
  // the backward's activation slabs in every forward, for training steps that may not use them.
  static constexpr bool kPrecomputesGrads = false;
  template <typename T>
  static void forward(const FusedShape& shape, const MlpNoise& noise, const MlpInputs<T>& in, T* v, T* row_stats,
                      const MlpGrads<T>* /*grads: always null, kPrecomputesGrads is false*/) {
    TorchWorkspace workspace;
    check_launch(cuda::mlp_forward(shape, noise, in, v, row_stats, at::cuda::getCurrentCUDAStream(),
                                   workspace.allocator()),
                 "mlp_forward");
  }
  template <typename T>
  static void backward(const FusedShape& shape, const MlpNoise& noise, const MlpInputs<T>& in, const T* grad_v,
                       const T* row_stats, const MlpGrads<T>& grads) {
    TorchWorkspace workspace;
    check_launch(cuda::mlp_backward(shape, noise, in, grad_v, row_stats, grads, at::cuda::getCurrentCUDAStream(),
                                    workspace.allocator()),
                 "mlp_backward");
  }
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

}  // namespace

// x is argument 0 of mlp_ed and 1 of mlp_ed_backward (after grad_v).
TORCH_LIBRARY_IMPL(edfast, CUDA, m) {
  m.impl("mlp_ed", &Guarded<&fused_mlp::mlp_ed<CudaMlpKernels>, 0>::call);
  m.impl("mlp_ed_backward", &Guarded<&fused_mlp::mlp_ed_backward<CudaMlpKernels>, 1>::call);
}

}  // namespace edfast
