// The fused ED ops (ising_ed, potts_ed, rbm_ed and their backwards), written once over ATen
// for any device: y from edfast::perturb, the dense fields by one GEMM over the batch, the
// per-row work by the device's kernels (`Kernels`: CpuKernels in ops_fused.cpp, CudaKernels in
// ops_fused_cuda.cpp; kBackwardReadsFields says whether a backward needs K and the fields),
// and the dense gradient terms by GEMMs. The maths is in csrc/core/pairwise.h and
// csrc/core/rbm.h.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <cmath>
#include <limits>
#include <tuple>

#include "fused_args.h"
#include "ops_common.h"

namespace edfast {
namespace fused {

using at::Tensor;
using OptionalTensor = c10::optional<Tensor>;

// y ~ q(.|x) of edfast::perturb (stream 0, the same draws as the generic path). The op draws
// at least one negative (m = 1), discarded here: B x D of extra work beside the M negatives.
inline Tensor draw_y(const Tensor& x, int64_t kind, double param, const OptionalTensor& cdf, int64_t seed,
                     int64_t row_offset) {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("edfast::perturb", "")
                             .typed<std::tuple<Tensor, Tensor>(const Tensor&, int64_t, double, const OptionalTensor&,
                                                               int64_t, c10::SymInt, c10::SymInt, c10::SymInt)>();
  return std::get<0>(op.call(x, kind, param, cdf, 1, c10::SymInt(seed), c10::SymInt(row_offset), c10::SymInt(0)));
}

inline void check_parameter(const char* op, const char* name, const Tensor& t, at::IntArrayRef shape,
                            const Tensor& like) {
  TORCH_CHECK_VALUE(t.sizes() == shape, "edfast.", op, ": ", name, " must have shape ", shape, ", got ", t.sizes());
  TORCH_CHECK_TYPE(t.scalar_type() == like.scalar_type(), "edfast.", op, ": ", name, " must be ",
                   like.scalar_type(), " like the other parameters, got ", t.scalar_type());
  TORCH_CHECK(t.device() == like.device(), "edfast.", op, ": ", name, " is on ", t.device(), " but the parameters are on ",
              like.device());
}

// Checks shared by the ops: x [B, D] on the parameters' device, parameters float32/float64,
// m, w; the noise checks (binary or categorical values, epsilon) are edfast::perturb's.
inline void check_common(const char* op, const Tensor& x, const Tensor& parameter, int64_t m, double w) {
  TORCH_CHECK_VALUE(x.dim() == 2 && x.size(0) >= 1, "edfast.", op, ": x must have shape [B, D] with B >= 1, got ",
                    x.sizes());
  TORCH_CHECK_TYPE(parameter.scalar_type() == at::kFloat || parameter.scalar_type() == at::kDouble, "edfast.", op,
                   ": parameters must be float32 or float64, got ", parameter.scalar_type());
  TORCH_CHECK(x.device() == parameter.device(), "edfast.", op, ": x is on ", x.device(), " but the parameters are on ",
              parameter.device());
  TORCH_CHECK_VALUE(m >= 1, "edfast.", op, ": m (negatives per data point) must be >= 1, got ", m);
  TORCH_CHECK_VALUE(std::isfinite(w) && w >= 0, "edfast.", op, ": w must be finite and >= 0, got ", w);
}

inline void check_binary_kind(const char* op, int64_t kind) {
  TORCH_CHECK_VALUE(kind == core::kBernoulli || kind == core::kBitFlip, "edfast.", op,
                    ": the perturbation must be Bernoulli or BitFlip (kind 1 or 2), got kind ", kind);
}

inline FusedNoise binary_noise(int64_t kind, double param) {
  return FusedNoise{kind, core::bernoulli_noise(kind == core::kBernoulli ? param : 0.5), nullptr, 0};
}

inline FusedShape make_shape(const Tensor& x, int64_t state, int64_t m, int64_t seed, int64_t row_offset, double w) {
  TORCH_CHECK_VALUE(state < std::numeric_limits<int32_t>::max(), "edfast: the state has ", state,
                    " entries, more than the fused kernels index (2^31 - 1)");
  return FusedShape{x.size(0), x.size(1), state, m, static_cast<uint64_t>(seed), row_offset, w};
}

// A forward's outputs in the parameters' dtype: v [B], log_normaliser [B], energies [B, M + 1].
using ForwardOutputs = std::tuple<Tensor, Tensor, Tensor>;
inline ForwardOutputs forward_outputs(const FusedShape& shape, const at::TensorOptions& options) {
  return {at::empty({shape.batch}, options), at::empty({shape.batch}, options),
          at::empty({shape.batch, shape.negatives + 1}, options)};
}

// The forward's energies [B, M + 1] as the backward kernels read them.
inline Tensor checked_energies(const char* op, const Tensor& energies, const FusedShape& shape, const Tensor& like) {
  TORCH_CHECK_VALUE(energies.dim() == 2 && energies.size(0) == shape.batch && energies.size(1) == shape.negatives + 1,
                    "edfast.", op, ": energies must have shape [", shape.batch, ", ", shape.negatives + 1,
                    "] (the forward's third output), got ", energies.sizes());
  return energies.to(like.scalar_type()).contiguous();
}

// The data of a tensor that may be undefined (null then).
template <typename T>
const T* optional_data(const Tensor& t) {
  return t.defined() ? t.data_ptr<T>() : nullptr;
}

// (K + K^T) / 2, or K itself when it is symmetric already (the modules' couplings are): no copy.
inline Tensor symmetric(const Tensor& k) {
  if (at::equal(k, k.t())) return k.contiguous();
  return (k + k.t()).mul_(0.5);
}

// ---------------------------------------------------------------- Ising

struct IsingState {
  Tensor x, y, spins, coupling, field, bias;
};

// `fields`: K and h = S_y K, which the forward kernels and the CUDA backward read (the CPU
// backward takes the forward's energies and needs neither).
inline IsingState ising_state(const char* op, const Tensor& x, const Tensor& coupling, const OptionalTensor& bias,
                              int64_t kind, double param, int64_t m, double w, int64_t seed, int64_t row_offset,
                              bool fields = true) {
  check_common(op, x, coupling, m, w);
  check_binary_kind(op, kind);
  const int64_t d = x.size(1);
  check_parameter(op, "coupling", coupling, {d, d}, coupling);
  if (bias.has_value()) check_parameter(op, "bias", *bias, {d}, coupling);
  TORCH_CHECK_TYPE(x.scalar_type() == coupling.scalar_type(), "edfast.", op, ": x must be ", coupling.scalar_type(),
                   " like the parameters, got ", x.scalar_type());
  // x's values (0/1) are checked by edfast::perturb in draw_y.
  IsingState s;
  s.x = x.contiguous();
  s.y = draw_y(s.x, kind, param, c10::nullopt, seed, row_offset);
  s.spins = s.y * 2 - 1;
  if (fields) {
    s.coupling = symmetric(coupling);
    s.field = s.spins.mm(s.coupling);
  }
  if (bias.has_value()) s.bias = bias->contiguous();
  return s;
}

template <typename T>
PairwiseInputs<T> ising_inputs(const IsingState& s) {
  return PairwiseInputs<T>{s.x.data_ptr<T>(), s.y.data_ptr<T>(), optional_data<T>(s.coupling),
                           optional_data<T>(s.field), optional_data<T>(s.bias), T(1)};
}

template <class Kernels>
ForwardOutputs ising_ed(const Tensor& x, const Tensor& coupling, const OptionalTensor& bias, int64_t kind, double param,
                        int64_t m, double w, int64_t seed, int64_t row_offset) {
  const IsingState s = ising_state("ising_ed", x, coupling, bias, kind, param, m, w, seed, row_offset);
  const FusedShape shape = make_shape(s.x, s.x.size(1), m, seed, row_offset, w);
  ForwardOutputs out = forward_outputs(shape, coupling.options());
  auto& [v, log_normaliser, energies] = out;
  AT_DISPATCH_FLOATING_TYPES(coupling.scalar_type(), "ising_ed", [&] {
    Kernels::pairwise_forward(shape, binary_noise(kind, param), ising_inputs<scalar_t>(s), v.data_ptr<scalar_t>(),
                              log_normaliser.data_ptr<scalar_t>(), energies.data_ptr<scalar_t>());
  });
  return out;
}

// grad_K = -alpha (v_y^T r + r^T v_y + S), S symmetric, computed as -alpha (G + G^T) with
// G = v_y^T r + S / 2: symmetric entry for entry (a + b == b + a in floating point), so it is
// also the gradient of J in K = (J + J^T) / 2. Two [N, N] temporaries besides S.
inline Tensor coupling_gradient(const Tensor& state, const Tensor& r, const Tensor& s, double alpha) {
  Tensor g = state.t().mm(r).add_(s, 0.5);
  return g.add(g.t()).mul_(-alpha);
}

template <class Kernels>
std::tuple<Tensor, Tensor> ising_ed_backward(const Tensor& grad_v, const Tensor& x, const Tensor& coupling,
                                             const OptionalTensor& bias, const Tensor& log_normaliser,
                                             const Tensor& energies, int64_t kind, double param, int64_t m, double w,
                                             int64_t seed, int64_t row_offset) {
  const IsingState s = ising_state("ising_ed_backward", x, coupling, bias, kind, param, m, w, seed, row_offset,
                                   Kernels::kBackwardReadsFields);
  const FusedShape shape = make_shape(s.x, s.x.size(1), m, seed, row_offset, w);
  const Tensor g = grad_v.to(coupling.scalar_type()).contiguous(), norm = log_normaliser.contiguous();
  const Tensor e = checked_energies("ising_ed_backward", energies, shape, coupling);
  Tensor r = at::empty({shape.batch, shape.state}, coupling.options());
  Tensor pairs = at::empty({shape.state, shape.state}, coupling.options());
  AT_DISPATCH_FLOATING_TYPES(coupling.scalar_type(), "ising_ed_backward", [&] {
    Kernels::pairwise_backward(shape, binary_noise(kind, param), ising_inputs<scalar_t>(s), g.data_ptr<scalar_t>(),
                               norm.data_ptr<scalar_t>(), e.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(),
                               pairs.data_ptr<scalar_t>());
  });
  return {coupling_gradient(s.spins, r, pairs, 1.0), r.sum(0).neg_()};
}

// ---------------------------------------------------------------- Potts

struct PottsState {
  Tensor x, y, onehot, coupling, field, bias, cdf;
  int64_t classes;
};

inline PottsState potts_state(const char* op, const Tensor& x, const Tensor& coupling, const OptionalTensor& bias,
                              const Tensor& transition_cdf, int64_t m, double w, int64_t seed, int64_t row_offset,
                              bool fields = true) {
  check_common(op, x, coupling, m, w);
  check_perturb(x, core::kTransition, 0.0, transition_cdf, m, seed, row_offset, 0);
  const int64_t d = x.size(1), k = transition_cdf.size(0);
  check_parameter(op, "coupling", coupling, {d, k, d, k}, coupling);
  if (bias.has_value()) check_parameter(op, "bias", *bias, {d, k}, coupling);
  PottsState s;
  s.classes = k;
  s.x = x.contiguous();
  s.cdf = transition_cdf.contiguous();
  s.y = draw_y(s.x, core::kTransition, 0.0, s.cdf, seed, row_offset);
  s.onehot = at::one_hot(s.y, k).reshape({s.x.size(0), d * k}).to(coupling.scalar_type());
  if (fields) {
    s.coupling = symmetric(coupling.reshape({d * k, d * k}));
    s.field = s.onehot.mm(s.coupling);
  }
  if (bias.has_value()) s.bias = bias->reshape({d * k}).contiguous();
  return s;
}

template <typename T>
PairwiseInputs<T> potts_inputs(const PottsState& s) {
  return PairwiseInputs<T>{s.x.data_ptr<int64_t>(), s.y.data_ptr<int64_t>(), optional_data<T>(s.coupling),
                           optional_data<T>(s.field), optional_data<T>(s.bias), T(0.5)};
}

inline FusedNoise potts_noise(const PottsState& s) {
  return FusedNoise{core::kTransition, core::bernoulli_noise(0.5), s.cdf.data_ptr<double>(), s.classes};
}

template <class Kernels>
ForwardOutputs potts_ed(const Tensor& x, const Tensor& coupling, const OptionalTensor& bias,
                        const Tensor& transition_cdf, int64_t m, double w, int64_t seed, int64_t row_offset) {
  const PottsState s = potts_state("potts_ed", x, coupling, bias, transition_cdf, m, w, seed, row_offset);
  const FusedShape shape = make_shape(s.x, s.x.size(1) * s.classes, m, seed, row_offset, w);
  ForwardOutputs out = forward_outputs(shape, coupling.options());
  auto& [v, log_normaliser, energies] = out;
  AT_DISPATCH_FLOATING_TYPES(coupling.scalar_type(), "potts_ed", [&] {
    Kernels::pairwise_forward(shape, potts_noise(s), potts_inputs<scalar_t>(s), v.data_ptr<scalar_t>(),
                              log_normaliser.data_ptr<scalar_t>(), energies.data_ptr<scalar_t>());
  });
  return out;
}

template <class Kernels>
std::tuple<Tensor, Tensor> potts_ed_backward(const Tensor& grad_v, const Tensor& x, const Tensor& coupling,
                                             const OptionalTensor& bias, const Tensor& transition_cdf,
                                             const Tensor& log_normaliser, const Tensor& energies, int64_t m,
                                             double w, int64_t seed, int64_t row_offset) {
  const PottsState s = potts_state("potts_ed_backward", x, coupling, bias, transition_cdf, m, w, seed, row_offset,
                                   Kernels::kBackwardReadsFields);
  const FusedShape shape = make_shape(s.x, s.x.size(1) * s.classes, m, seed, row_offset, w);
  const Tensor g = grad_v.to(coupling.scalar_type()).contiguous(), norm = log_normaliser.contiguous();
  const Tensor e = checked_energies("potts_ed_backward", energies, shape, coupling);
  Tensor r = at::empty({shape.batch, shape.state}, coupling.options());
  Tensor pairs = at::empty({shape.state, shape.state}, coupling.options());
  AT_DISPATCH_FLOATING_TYPES(coupling.scalar_type(), "potts_ed_backward", [&] {
    Kernels::pairwise_backward(shape, potts_noise(s), potts_inputs<scalar_t>(s), g.data_ptr<scalar_t>(),
                               norm.data_ptr<scalar_t>(), e.data_ptr<scalar_t>(), r.data_ptr<scalar_t>(),
                               pairs.data_ptr<scalar_t>());
  });
  return {coupling_gradient(s.onehot, r, pairs, 0.5).reshape(coupling.sizes()),
          r.sum(0).neg_().reshape({x.size(1), s.classes})};
}

// ---------------------------------------------------------------- RBM

struct RbmState {
  Tensor x, y, weight_t, pre_y, visible_bias;
};

inline RbmState rbm_state(const char* op, const Tensor& x, const Tensor& weight, const Tensor& visible_bias,
                          const Tensor& hidden_bias, int64_t kind, double param, int64_t m, double w, int64_t seed,
                          int64_t row_offset) {
  check_common(op, x, weight, m, w);
  check_binary_kind(op, kind);
  TORCH_CHECK_VALUE(weight.dim() == 2, "edfast.", op, ": weight must have shape [hidden, visible], got ", weight.sizes());
  const int64_t hidden = weight.size(0), visible = x.size(1);
  check_parameter(op, "weight", weight, {hidden, visible}, weight);
  check_parameter(op, "visible_bias", visible_bias, {visible}, weight);
  check_parameter(op, "hidden_bias", hidden_bias, {hidden}, weight);
  TORCH_CHECK_TYPE(x.scalar_type() == weight.scalar_type(), "edfast.", op, ": x must be ", weight.scalar_type(),
                   " like the parameters, got ", x.scalar_type());
  // x's values (0/1) are checked by edfast::perturb in draw_y.
  RbmState s;
  s.x = x.contiguous();
  s.y = draw_y(s.x, kind, param, c10::nullopt, seed, row_offset);
  s.weight_t = weight.t().contiguous();
  s.pre_y = at::addmm(hidden_bias, s.y, s.weight_t);
  s.visible_bias = visible_bias.contiguous();
  return s;
}

template <typename T>
RbmInputs<T> rbm_inputs(const RbmState& s) {
  return RbmInputs<T>{s.x.data_ptr<T>(), s.y.data_ptr<T>(), s.weight_t.data_ptr<T>(), s.pre_y.data_ptr<T>(),
                      s.visible_bias.data_ptr<T>(), s.weight_t.size(1)};
}

template <class Kernels>
ForwardOutputs rbm_ed(const Tensor& x, const Tensor& weight, const Tensor& visible_bias,
                      const Tensor& hidden_bias, int64_t kind, double param, int64_t m, double w, int64_t seed,
                      int64_t row_offset) {
  const RbmState s = rbm_state("rbm_ed", x, weight, visible_bias, hidden_bias, kind, param, m, w, seed, row_offset);
  const FusedShape shape = make_shape(s.x, s.x.size(1), m, seed, row_offset, w);
  ForwardOutputs out = forward_outputs(shape, weight.options());
  auto& [v, log_normaliser, energies] = out;
  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "rbm_ed", [&] {
    Kernels::rbm_forward(shape, binary_noise(kind, param), rbm_inputs<scalar_t>(s), v.data_ptr<scalar_t>(),
                         log_normaliser.data_ptr<scalar_t>(), energies.data_ptr<scalar_t>());
  });
  return out;
}

template <class Kernels>
std::tuple<Tensor, Tensor, Tensor> rbm_ed_backward(const Tensor& grad_v, const Tensor& x, const Tensor& weight,
                                                   const Tensor& visible_bias, const Tensor& hidden_bias,
                                                   const Tensor& log_normaliser, const Tensor& energies, int64_t kind,
                                                   double param, int64_t m, double w, int64_t seed,
                                                   int64_t row_offset) {
  const RbmState s =
      rbm_state("rbm_ed_backward", x, weight, visible_bias, hidden_bias, kind, param, m, w, seed, row_offset);
  const FusedShape shape = make_shape(s.x, s.x.size(1), m, seed, row_offset, w);
  const Tensor g = grad_v.to(weight.scalar_type()).contiguous(), norm = log_normaliser.contiguous();
  const Tensor e = checked_energies("rbm_ed_backward", energies, shape, weight);
  const int64_t hidden = weight.size(0);
  Tensor a = at::empty({shape.batch, hidden}, weight.options());
  Tensor r = at::empty({shape.batch, shape.dim}, weight.options());
  Tensor gwt = at::empty({shape.dim, hidden}, weight.options());
  AT_DISPATCH_FLOATING_TYPES(weight.scalar_type(), "rbm_ed_backward", [&] {
    Kernels::rbm_backward(shape, binary_noise(kind, param), rbm_inputs<scalar_t>(s), g.data_ptr<scalar_t>(),
                          norm.data_ptr<scalar_t>(), e.data_ptr<scalar_t>(), a.data_ptr<scalar_t>(),
                          r.data_ptr<scalar_t>(), gwt.data_ptr<scalar_t>());
  });
  // grad_W = -(a^T y + gwt^T), contiguous like the weight (the fake kernel's layout, and the
  // one AccumulateGrad keeps without a copy).
  Tensor grad_weight = at::mm(a.t(), s.y).add_(gwt.t()).neg_();
  return {grad_weight, r.sum(0).neg_(), a.sum(0).neg_()};
}

}  // namespace fused
}  // namespace edfast
