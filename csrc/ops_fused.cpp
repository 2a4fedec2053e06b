// Schemas and CPU registrations of the fused ED ops (the device-generic bodies are in
// ops_fused.h; fake kernels and autograd in edfast/_fused.py).
#include <torch/library.h>

#include "cpu/kernels.h"
#include "ops_fused.h"

namespace edfast {
namespace {

struct CpuKernels {
  static constexpr bool kBackwardReadsFields = false;  // it takes the forward's energies
  template <typename T>
  static void pairwise_forward(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in, T* v,
                               T* log_normaliser, T* energies) {
    cpu::pairwise_forward(shape, noise, in, v, log_normaliser, energies);
  }
  template <typename T>
  static void pairwise_backward(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in,
                                const T* grad_v, const T* log_normaliser, const T* energies, T* r, T* s) {
    cpu::pairwise_backward(shape, noise, in, grad_v, log_normaliser, energies, r, s);
  }
  template <typename T>
  static void rbm_forward(const FusedShape& shape, const FusedNoise& noise, const RbmInputs<T>& in, T* v,
                          T* log_normaliser, T* energies) {
    cpu::rbm_forward(shape, noise, in, v, log_normaliser, energies);
  }
  template <typename T>
  static void rbm_backward(const FusedShape& shape, const FusedNoise& noise, const RbmInputs<T>& in,
                           const T* grad_v, const T* log_normaliser, const T* energies, T* a, T* r, T* gwt) {
    cpu::rbm_backward(shape, noise, in, grad_v, log_normaliser, energies, a, r, gwt);
  }
};

}  // namespace

TORCH_LIBRARY_FRAGMENT(edfast, m) {
  // v_i of the ED loss (DESIGN §1) of an Ising energy U = -(s^T J s + b^T s), s = 2x - 1, under
  // Bernoulli (kind 1, param = epsilon) or BitFlip (kind 2) noise, and L_i = v_i + log M for
  // backward, and the energies [B, M + 1] of each row's items relative to y (E_0 the row's own,
  // E_j its negatives': U(x) - U(x'_j) = E_j - E_0), which backward reads instead of recomputing.
  // `coupling` is used symmetrised, (J + J^T) / 2.
  m.def("ising_ed(Tensor x, Tensor coupling, Tensor? bias, int kind, float param, int m, float w, SymInt seed, "
        "SymInt row_offset) -> (Tensor, Tensor, Tensor)");
  m.def("ising_ed_backward(Tensor grad_v, Tensor x, Tensor coupling, Tensor? bias, Tensor log_normaliser, "
        "Tensor energies, int kind, float param, int m, float w, SymInt seed, SymInt row_offset) -> (Tensor, Tensor)");
  // The same for a Potts energy U = -(1/2 sum_{i,j} J[i,x_i,j,x_j] + sum_i b[i,x_i]) under a
  // categorical perturbation given by its transition CDF table.
  m.def("potts_ed(Tensor x, Tensor coupling, Tensor? bias, Tensor transition_cdf, int m, float w, SymInt seed, "
        "SymInt row_offset) -> (Tensor, Tensor, Tensor)");
  m.def("potts_ed_backward(Tensor grad_v, Tensor x, Tensor coupling, Tensor? bias, Tensor transition_cdf, "
        "Tensor log_normaliser, Tensor energies, int m, float w, SymInt seed, SymInt row_offset) -> (Tensor, Tensor)");
  // The same for a Bernoulli RBM's free energy U = -b^T x - sum_h softplus(W x + c).
  m.def("rbm_ed(Tensor x, Tensor weight, Tensor visible_bias, Tensor hidden_bias, int kind, float param, int m, "
        "float w, SymInt seed, SymInt row_offset) -> (Tensor, Tensor, Tensor)");
  m.def("rbm_ed_backward(Tensor grad_v, Tensor x, Tensor weight, Tensor visible_bias, Tensor hidden_bias, "
        "Tensor log_normaliser, Tensor energies, int kind, float param, int m, float w, SymInt seed, "
        "SymInt row_offset) -> (Tensor, Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(edfast, CPU, m) {
  m.impl("ising_ed", &fused::ising_ed<CpuKernels>);
  m.impl("ising_ed_backward", &fused::ising_ed_backward<CpuKernels>);
  m.impl("potts_ed", &fused::potts_ed<CpuKernels>);
  m.impl("potts_ed_backward", &fused::potts_ed_backward<CpuKernels>);
  m.impl("rbm_ed", &fused::rbm_ed<CpuKernels>);
  m.impl("rbm_ed_backward", &fused::rbm_ed_backward<CpuKernels>);
}

}  // namespace edfast
