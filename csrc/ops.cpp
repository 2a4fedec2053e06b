// The edfast operator library: schemas, CPU kernels, and the Python module stub that loads
// them. Fake kernels and autograd formulas are registered from Python (edfast/_ops.py).
#include <Python.h>
#include <torch/library.h>

#include "cpu/kernels.h"
#include "ops_common.h"

extern "C" {
// `edfast._C.cpu_simd()`: the instruction set of the CPU contrastive kernels, for tests.
static PyObject* cpu_simd(PyObject*, PyObject*) {
  return PyUnicode_FromString(edfast::cpu::contrastive_simd_isa());
}

// `import edfast._C` loads this library, whose static initialisers register the ops.
PyObject* PyInit__C(void) {
  static PyMethodDef methods[] = {
      {"cpu_simd", cpu_simd, METH_NOARGS, "Instruction set of the CPU contrastive kernels."},
      {nullptr, nullptr, 0, nullptr}};
  static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, methods};
  return PyModule_Create(&module);
}
}

namespace edfast {
namespace {

std::tuple<at::Tensor, at::Tensor> perturb_cpu(const at::Tensor& x, int64_t kind, double param,
                                               const c10::optional<at::Tensor>& transition_cdf,
                                               int64_t m, int64_t seed, int64_t row_offset,
                                               int64_t neg_offset) {
  const PerturbShape shape =
      check_perturb(x, kind, param, transition_cdf, m, seed, row_offset, neg_offset);
  const at::Tensor input = kernel_input(x, kind);
  at::Tensor y = at::empty({shape.batch, shape.dim}, input.options());
  at::Tensor negatives = at::empty({shape.batch, m, shape.dim}, input.options());
  switch (kind) {
    case core::kGaussian:
      if (input.scalar_type() == at::kDouble) {
        cpu::perturb_gaussian(input.data_ptr<double>(), y.data_ptr<double>(),
                              negatives.data_ptr<double>(), shape, param);
      } else {
        cpu::perturb_gaussian(input.data_ptr<float>(), y.data_ptr<float>(),
                              negatives.data_ptr<float>(), shape, param);
      }
      break;
    case core::kBernoulli:
      cpu::perturb_bernoulli(input.data_ptr(), y.data_ptr(), negatives.data_ptr(), shape, param,
                                       binary_bits(input.scalar_type()));
      break;
    case core::kBitFlip:
      cpu::perturb_bitflip(input.data_ptr(), y.data_ptr(), negatives.data_ptr(), shape,
                                     binary_bits(input.scalar_type()));
      break;
    default: {
      const at::Tensor cdf = transition_cdf->contiguous();
      cpu::perturb_transition(input.data_ptr<int64_t>(), y.data_ptr<int64_t>(),
                              negatives.data_ptr<int64_t>(), shape, cdf.data_ptr<double>(),
                              cdf.size(0));
    }
  }
  return user_outputs(x, y, negatives, m);
}

std::tuple<at::Tensor, at::Tensor> contrastive_cpu(const at::Tensor& e_pos,
                                                   const at::Tensor& e_neg, double w) {
  const ContrastShape shape = check_contrastive(e_pos, e_neg, w);
  const at::Tensor pos = e_pos.contiguous(), neg = e_neg.contiguous();
  at::Tensor v = at::empty_like(pos);
  at::Tensor log_normaliser = at::empty(pos.sizes(), pos.options().dtype(accumulate_type(pos.scalar_type())));
  cpu::contrastive_forward(float_type_of(pos), pos.data_ptr(), neg.data_ptr(), v.data_ptr(),
                           log_normaliser.data_ptr(), shape);
  return {v, log_normaliser};
}

std::tuple<at::Tensor, at::Tensor> contrastive_backward_cpu(const at::Tensor& grad_v,
                                                            const at::Tensor& e_pos,
                                                            const at::Tensor& e_neg,
                                                            const at::Tensor& log_normaliser) {
  const ContrastShape shape = check_contrastive_backward(grad_v, e_pos, e_neg, log_normaliser);
  const at::Tensor g = grad_v.contiguous(), pos = e_pos.contiguous(), neg = e_neg.contiguous(),
                   norm = log_normaliser.contiguous();
  at::Tensor grad_pos = at::empty_like(pos);
  at::Tensor grad_neg = at::empty_like(neg);
  cpu::contrastive_backward(float_type_of(pos), g.data_ptr(), pos.data_ptr(), neg.data_ptr(),
                            norm.data_ptr(), grad_pos.data_ptr(), grad_neg.data_ptr(), shape);
  return {grad_pos, grad_neg};
}

}  // namespace

TORCH_LIBRARY(edfast, m) {
  // y ~ q(.|x) (stream 0) and negatives[:, j] ~ q(.|y) (stream 1 + neg_offset + j); see
  // edfast/perturbations.py for `kind` and `param`.
  m.def("perturb(Tensor x, int kind, float param, Tensor? transition_cdf, int m, SymInt seed, "
        "SymInt row_offset, SymInt neg_offset) -> (Tensor, Tensor)");
  // v_i = log(w/M + mean_j exp(e_pos_i - e_neg_ij)) and L_i = v_i + log M kept for backward.
  m.def("contrastive_logsumexp(Tensor e_pos, Tensor e_neg, float w) -> (Tensor, Tensor)");
  m.def("contrastive_logsumexp_backward(Tensor grad_v, Tensor e_pos, Tensor e_neg, "
        "Tensor log_normaliser) -> (Tensor, Tensor)");
}

TORCH_LIBRARY_IMPL(edfast, CPU, m) {
  m.impl("perturb", &perturb_cpu);
  m.impl("contrastive_logsumexp", &contrastive_cpu);
  m.impl("contrastive_logsumexp_backward", &contrastive_backward_cpu);
}

}  // namespace edfast
