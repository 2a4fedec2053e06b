// CUDA registrations of the fused ED ops: the device-generic bodies of ops_fused.h with the
// torch-free launchers of csrc/cuda/fused.cu, on the current stream of x's device.
#include <ATen/cuda/CUDAContext.h>
#include <torch/library.h>

#include "cuda/launchers.h"
#include "ops_fused_cuda.h"
#include "ops_fused.h"

namespace edfast {
namespace {

using fused_cuda::check_launch;
using fused_cuda::Guarded;
using fused_cuda::TorchWorkspace;

// Called by the op bodies with x's device current (fused_cuda::Guarded), so the current stream is
// that device's.
struct CudaKernels {
  static constexpr bool kBackwardReadsFields = true;  // it recomputes the energies
  template <typename T>
  static void pairwise_forward(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in, T* v,
                               T* log_normaliser, T* energies) {
    TorchWorkspace workspace;
    check_launch(cuda::pairwise_forward(shape, noise, in, v, log_normaliser, energies,
                                        at::cuda::getCurrentCUDAStream(), workspace.allocator()),
                 "pairwise_forward");
  }
  template <typename T>
  static void pairwise_backward(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in,
                                const T* grad_v, const T* log_normaliser, const T* /*energies: recomputed*/, T* r,
                                T* s) {
    TorchWorkspace workspace;
    check_launch(cuda::pairwise_backward(shape, noise, in, grad_v, log_normaliser, r, s,
                                         at::cuda::getCurrentCUDAStream(), workspace.allocator()),
                 "pairwise_backward");
  }
  template <typename T>
  static void rbm_forward(const FusedShape& shape, const FusedNoise& noise, const RbmInputs<T>& in, T* v,
                          T* log_normaliser, T* energies) {
    TorchWorkspace workspace;
    check_launch(cuda::rbm_forward(shape, noise, in, v, log_normaliser, energies, at::cuda::getCurrentCUDAStream(),
                                   workspace.allocator()),
                 "rbm_forward");
  }
  template <typename T>
  static void rbm_backward(const FusedShape& shape, const FusedNoise& noise, const RbmInputs<T>& in,
                           const T* grad_v, const T* log_normaliser, const T* /*energies: recomputed*/, T* a, T* r,
                           T* gwt) {
    TorchWorkspace workspace;
    check_launch(cuda::rbm_backward(shape, noise, in, grad_v, log_normaliser, a, r, gwt,
                                    at::cuda::getCurrentCUDAStream(), workspace.allocator()),
                 "rbm_backward");
  }
};

}  // namespace

// x is argument 0 of the forwards and 1 of the backwards (after grad_v).
TORCH_LIBRARY_IMPL(edfast, CUDA, m) {
  m.impl("ising_ed", &Guarded<&fused::ising_ed<CudaKernels>, 0>::call);
  m.impl("ising_ed_backward", &Guarded<&fused::ising_ed_backward<CudaKernels>, 1>::call);
  m.impl("potts_ed", &Guarded<&fused::potts_ed<CudaKernels>, 0>::call);
  m.impl("potts_ed_backward", &Guarded<&fused::potts_ed_backward<CudaKernels>, 1>::call);
  m.impl("rbm_ed", &Guarded<&fused::rbm_ed<CudaKernels>, 0>::call);
  m.impl("rbm_ed_backward", &Guarded<&fused::rbm_ed_backward<CudaKernels>, 1>::call);
}

}  // namespace edfast
