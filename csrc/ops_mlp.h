// The fused MLP op (mlp_ed and its backward), written once over ATen for any device: input
// checks, outputs, and the call into the device's kernels (`Kernels`: CpuMlpKernels in
// ops_mlp.cpp, CudaMlpKernels in ops_mlp_cuda.cpp). The maths is in csrc/core/mlp.h, the
// kernels' arguments in csrc/mlp_args.h.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <tuple>
#include <vector>

#include "mlp_args.h"
#include "ops_common.h"
#include "ops_fused.h"

namespace edfast {
namespace fused_mlp {

using at::Tensor;

inline core::Activation parse_activation(const char* op, c10::string_view name) {
  static const std::pair<const char*, core::Activation> kNames[] = {
      {"softplus", core::Activation::kSoftplus}, {"silu", core::Activation::kSilu},
      {"relu", core::Activation::kRelu},         {"leaky_relu", core::Activation::kLeakyRelu},
      {"tanh", core::Activation::kTanh},         {"elu", core::Activation::kElu}};
  for (const auto& [known, activation] : kNames) {
    if (name == known) return activation;
  }
  TORCH_CHECK_VALUE(false, "edfast.", op, ": activation must be one of softplus, silu, relu, leaky_relu, tanh, elu; got '",
                    std::string(name), "'");
  return core::Activation::kSoftplus;
}

// The checked network: contiguous parameters and x, and the launch arguments.
struct Network {
  Tensor x;
  std::vector<Tensor> weights, biases;
  core::Activation activation;
  FusedShape shape;
  MlpNoise noise;
};

inline Network check_network(const char* op, const Tensor& x, at::TensorList weights, at::TensorList biases,
                             c10::string_view activation, int64_t kind, double param, int64_t m, double w, int64_t seed,
                             int64_t row_offset) {
  const int64_t layers = static_cast<int64_t>(weights.size());
  TORCH_CHECK_VALUE(layers >= 1 && layers <= kMlpMaxLayers, "edfast.", op, ": weights must hold 1 to ", kMlpMaxLayers,
                    " layers (at most ", core::kMlpMaxHidden, " hidden), got ", layers);
  TORCH_CHECK_VALUE(biases.size() == weights.size(), "edfast.", op, ": biases must hold one bias per layer (", layers,
                    "), got ", biases.size());
  const Tensor& first = weights[0];
  fused::check_common(op, x, first, m, w);
  TORCH_CHECK_TYPE(x.scalar_type() == first.scalar_type(), "edfast.", op, ": x must be ", first.scalar_type(),
                   " like the parameters, got ", x.scalar_type());
  TORCH_CHECK_VALUE(kind == core::kGaussian || kind == core::kBernoulli || kind == core::kBitFlip, "edfast.", op,
                    ": the perturbation must be Gaussian, Bernoulli or BitFlip (kind 0, 1 or 2), got kind ", kind);
  TORCH_CHECK_VALUE(x.size(1) >= 1 && x.size(1) <= core::kMlpMaxInput, "edfast.", op,
                    ": x must have 1 to ", core::kMlpMaxInput, " features (the fused kernels' range), got ", x.size(1));
  // The noise's own checks (scale, epsilon, 0/1 values) are edfast::perturb's.
  check_perturb(x, kind, param, c10::nullopt, m, seed, row_offset, 0);
  Network net;
  net.activation = parse_activation(op, activation);
  int64_t in_width = x.size(1);
  for (int64_t l = 0; l < layers; ++l) {
    const Tensor& weight = weights[l];
    TORCH_CHECK_VALUE(weight.dim() == 2 && weight.size(1) == in_width, "edfast.", op, ": weights[", l,
                      "] must have shape [out, ", in_width, "], got ", weight.sizes());
    const int64_t out_width = weight.size(0);
    if (l + 1 == layers) {
      TORCH_CHECK_VALUE(out_width == 1, "edfast.", op, ": the last layer must have one output (the energy), got ",
                        out_width);
    } else {
      TORCH_CHECK_VALUE(out_width >= 1 && out_width <= core::kMlpMaxWidth, "edfast.", op, ": weights[", l,
                        "] has ", out_width, " outputs; the fused kernels take widths 1 to ", core::kMlpMaxWidth);
    }
    fused::check_parameter(op, ("weights[" + std::to_string(l) + "]").c_str(), weight, {out_width, in_width}, first);
    fused::check_parameter(op, ("biases[" + std::to_string(l) + "]").c_str(), biases[l], {out_width}, first);
    net.weights.push_back(weight.contiguous());
    net.biases.push_back(biases[l].contiguous());
    in_width = out_width;
  }
  net.x = x.contiguous();
  net.shape = fused::make_shape(net.x, net.x.size(1), m, seed, row_offset, w);
  net.noise = MlpNoise{kind, kind == core::kGaussian ? param : 0.0,
                       core::bernoulli_noise(kind == core::kBernoulli ? param : 0.5)};
  return net;
}

template <typename T>
MlpInputs<T> inputs_of(const Network& net) {
  MlpInputs<T> in{};
  in.x = net.x.data_ptr<T>();
  in.layers = static_cast<int>(net.weights.size());
  in.width[0] = net.x.size(1);
  for (int l = 0; l < in.layers; ++l) {
    in.width[l + 1] = net.weights[l].size(0);
    in.weight[l] = net.weights[l].data_ptr<T>();
    in.bias[l] = net.biases[l].data_ptr<T>();
  }
  in.activation = net.activation;
  return in;
}

// Zeroed gradients shaped like the parameters, and grad_x [B, D] (or an empty [0] tensor).
struct Gradients {
  std::vector<Tensor> weights, biases;
  Tensor x;
};

inline Gradients zero_gradients(const Network& net, bool grad_x) {
  Gradients g;
  for (size_t l = 0; l < net.weights.size(); ++l) {
    g.weights.push_back(at::zeros_like(net.weights[l]));
    g.biases.push_back(at::zeros_like(net.biases[l]));
  }
  g.x = grad_x ? at::zeros_like(net.x) : at::empty({0}, net.x.options());
  return g;
}

template <typename T>
MlpGrads<T> grads_of(Gradients& g) {
  MlpGrads<T> out{};
  for (size_t l = 0; l < g.weights.size(); ++l) {
    out.weight[l] = g.weights[l].data_ptr<T>();
    out.bias[l] = g.biases[l].data_ptr<T>();
  }
  out.x = g.x.numel() > 0 ? g.x.data_ptr<T>() : nullptr;
  return out;
}

// v [B], row_stats [B, 3], and, when precompute_grads and the device's forward can, the
// gradients of sum_i v_i (weights, biases, and x when grad_x); else empty lists and [0].
using ForwardOutputs = std::tuple<Tensor, Tensor, std::vector<Tensor>, std::vector<Tensor>, Tensor>;

template <class Kernels>
ForwardOutputs mlp_ed(const Tensor& x, at::TensorList weights, at::TensorList biases, c10::string_view activation,
                      int64_t kind, double param, int64_t m, double w, int64_t seed, int64_t row_offset,
                      bool precompute_grads, bool grad_x) {
  const Network net = check_network("mlp_ed", x, weights, biases, activation, kind, param, m, w, seed, row_offset);
  const auto options = net.x.options();
  Tensor v = at::empty({net.shape.batch}, options), stats = at::empty({net.shape.batch, kMlpRowStats}, options);
  const bool precompute = precompute_grads && Kernels::kPrecomputesGrads;
  Gradients g;
  if (precompute) g = zero_gradients(net, grad_x);
  AT_DISPATCH_FLOATING_TYPES(net.x.scalar_type(), "mlp_ed", [&] {
    const MlpGrads<scalar_t> grads = precompute ? grads_of<scalar_t>(g) : MlpGrads<scalar_t>{};
    Kernels::forward(net.shape, net.noise, inputs_of<scalar_t>(net), v.data_ptr<scalar_t>(),
                     stats.data_ptr<scalar_t>(), precompute ? &grads : nullptr);
  });
  if (!precompute) g.x = at::empty({0}, options);
  return {v, stats, g.weights, g.biases, g.x};
}

using BackwardOutputs = std::tuple<std::vector<Tensor>, std::vector<Tensor>, Tensor>;

template <class Kernels>
BackwardOutputs mlp_ed_backward(const Tensor& grad_v, const Tensor& x, at::TensorList weights, at::TensorList biases,
                                const Tensor& row_stats, c10::string_view activation, int64_t kind, double param,
                                int64_t m, double w, int64_t seed, int64_t row_offset, bool grad_x) {
  const char* op = "mlp_ed_backward";
  const Network net = check_network(op, x, weights, biases, activation, kind, param, m, w, seed, row_offset);
  const int64_t b = net.shape.batch;
  TORCH_CHECK_VALUE(grad_v.dim() == 1 && grad_v.size(0) == b, "edfast.", op, ": grad_v must have shape [", b, "], got ",
                    grad_v.sizes());
  TORCH_CHECK_VALUE(row_stats.dim() == 2 && row_stats.size(0) == b && row_stats.size(1) == kMlpRowStats, "edfast.", op,
                    ": row_stats must have shape [", b, ", ", kMlpRowStats, "] (the forward's second output), got ",
                    row_stats.sizes());
  TORCH_CHECK(grad_v.device() == net.x.device() && row_stats.device() == net.x.device(), "edfast.", op,
              ": grad_v and row_stats must be on ", net.x.device());
  const Tensor g = grad_v.to(net.x.scalar_type()).contiguous(), stats = row_stats.to(net.x.scalar_type()).contiguous();
  Gradients out = zero_gradients(net, grad_x);
  AT_DISPATCH_FLOATING_TYPES(net.x.scalar_type(), "mlp_ed_backward", [&] {
    Kernels::backward(net.shape, net.noise, inputs_of<scalar_t>(net), g.data_ptr<scalar_t>(),
                      stats.data_ptr<scalar_t>(), grads_of<scalar_t>(out));
  });
  return {out.weights, out.biases, out.x};
}

}  // namespace fused_mlp
}  // namespace edfast
