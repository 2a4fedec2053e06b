// Schema and CPU registration of the fused MLP op (the device-generic body is ops_mlp.h; fake
// kernel and autograd in edfast/_fused_mlp.py).
#include <torch/library.h>

#include "cpu/kernels.h"
#include "ops_mlp.h"

namespace edfast {
namespace {

struct CpuMlpKernels {
  // The CPU forward can differentiate a tile while it is in cache (csrc/cpu/mlp.cpp).
  static constexpr bool kPrecomputesGrads = true;
  template <typename T>
  static void forward(const FusedShape& shape, const MlpNoise& noise, const MlpInputs<T>& in, T* v, T* row_stats,
                      const MlpGrads<T>* grads) {
    cpu::mlp_forward(shape, noise, in, v, row_stats, grads);
  }
  template <typename T>
  static void backward(const FusedShape& shape, const MlpNoise& noise, const MlpInputs<T>& in, const T* grad_v,
                       const T* row_stats, const MlpGrads<T>& grads) {
    cpu::mlp_backward(shape, noise, in, grad_v, row_stats, grads);
  }
};

}  // namespace

TORCH_LIBRARY_FRAGMENT(edfast, m) {
  // v_i of the ED loss (DESIGN §1) of an MLP energy (edfast.energies.MLPEnergy: Linear layers
  // weights[l] [out, in] and biases[l], `activation` after every layer but the last, one
  // output) under Gaussian (kind 0, param = scale), Bernoulli (kind 1, param = epsilon) or
  // BitFlip (kind 2) noise, and row_stats [B, 3] = (U(x_i), L_i, P_i) for backward
  // (csrc/mlp_args.h). precompute_grads promises that v's upstream gradient will be the same
  // for every row (a mean or a sum; autograd checks it): the forward may then also return the
  // gradients of sum_i v_i (weights, biases, and x when grad_x), computed while each tile is in
  // cache; otherwise (and on devices that cannot) the lists are empty and the last output [0].
  m.def("mlp_ed(Tensor x, Tensor[] weights, Tensor[] biases, str activation, int kind, float param, int m, "
        "float w, SymInt seed, SymInt row_offset, bool precompute_grads=False, bool grad_x=False) "
        "-> (Tensor, Tensor, Tensor[], Tensor[], Tensor)");
  // Gradients of sum_i grad_v[i] v_i: weights, biases, and x ([B, D]; [0] unless grad_x).
  m.def("mlp_ed_backward(Tensor grad_v, Tensor x, Tensor[] weights, Tensor[] biases, Tensor row_stats, "
        "str activation, int kind, float param, int m, float w, SymInt seed, SymInt row_offset, bool grad_x) "
        "-> (Tensor[], Tensor[], Tensor)");
}

TORCH_LIBRARY_IMPL(edfast, CPU, m) {
  m.impl("mlp_ed", &fused_mlp::mlp_ed<CpuMlpKernels>);
  m.impl("mlp_ed_backward", &fused_mlp::mlp_ed_backward<CpuMlpKernels>);
}

}  // namespace edfast
