// CUDA registration of the fused MLP op: the device-generic bodies of ops_mlp.h with the
// torch-free launchers of csrc/cuda/mlp.cu, on the current stream of x's device.
#include <ATen/cuda/CUDAContext.h>
#include <torch/library.h>

#include "cuda/launchers.h"
#include "ops_fused_cuda.h"
#include "ops_mlp.h"

namespace edfast {
namespace {

using fused_cuda::check_launch;
using fused_cuda::Guarded;
using fused_cuda::TorchWorkspace;

// Called by the op bodies with x's device current (fused_cuda::Guarded), so the current stream is
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

}  // namespace

// x is argument 0 of mlp_ed and 1 of mlp_ed_backward (after grad_v).
TORCH_LIBRARY_IMPL(edfast, CUDA, m) {
  m.impl("mlp_ed", &Guarded<&fused_mlp::mlp_ed<CudaMlpKernels>, 0>::call);
  m.impl("mlp_ed_backward", &Guarded<&fused_mlp::mlp_ed_backward<CudaMlpKernels>, 1>::call);
}

}  // namespace edfast
