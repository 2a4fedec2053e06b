// The fused MLP kernels (csrc/cuda/mlp.cu) under the CPU execution model, against the reference
// of mlp_reference.h: the same items (drawn by the CPU perturbation rows, i.e. edfast.perturb's
// noise), the MLP, row statistics and backprop in plain loops.
//
// Tolerance (DESIGN §6): a float32 kernel's largest error against the float64 reference, per
// output tensor, may be at most twice the largest error of the same loops run in float32, plus
// a floor of 1e-6 times the tensor's scale (max(1, max |reference|)), about 8 float32 ulps: the
// kernel sums in another order (a tile's 32 items, then atomics across tiles). A float64
// kernel must be within 1e-10 of the scale.
//
// With one modelled SM the grid holds 8 blocks (small networks: shared memory allows 8 per SM)
// or 1-2 (width 256), so every case with more tiles than that wraps the grid-stride loop over
// tiles; B (M + 1) is never a multiple of the 32-item tile.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "cuda/launchers.h"
#include "device_buffer.h"
#include "test_values.h"
#include "mlp_reference.h"
#include "runtime.h"

using edfast::FusedShape;
using edfast::MlpNoise;
namespace core = edfast::core;
namespace cuda = edfast::cuda;
using mlp_reference::Network;
using mlp_reference::Result;

namespace {

struct ModelDevice {  // one SM, so that the tile loops wrap
  int saved = cuda_model::multiprocessor_count();
  ModelDevice() { cuda_model::set_multiprocessor_count(1); }
  ~ModelDevice() { cuda_model::set_multiprocessor_count(saved); }
};

struct Case {
  const char* what;
  core::Activation activation;
  int64_t dim;
  std::vector<int64_t> hidden;
  int64_t kind;  // core::kGaussian, kBernoulli, kBitFlip
  double param;  // scale or epsilon
  int64_t batch, negatives;
  double weight;
  bool grad_x;
  double output_scale = 1.0;  // multiplies the last layer's weights (large energies)
};

const char* activation_name(core::Activation a) {
  static const char* kNames[] = {"softplus", "silu", "relu", "leaky_relu", "tanh", "elu"};
  return kNames[static_cast<int>(a)];
}

template <typename T> const char* kTypeName = "f32";
template <> const char* kTypeName<double> = "f64";

std::string describe(const Case& c, const char* type) {
  std::string widths = std::to_string(c.dim);
  for (int64_t w : c.hidden) widths += "-" + std::to_string(w);
  char text[300];
  std::snprintf(text, sizeof(text), "%s %s %s %s-1 kind=%" PRId64 "(%g) B=%" PRId64 " M=%" PRId64 " w=%g%s", c.what,
                type, activation_name(c.activation), widths.c_str(), c.kind, c.param, c.batch, c.negatives, c.weight,
                c.grad_x ? " grad_x" : "");
  return text;
}

// One output tensor against the references (see the top of the file).
template <typename T>
void expect_close(const std::string& what, const std::string& name, const T* got, const std::vector<double>& want,
                  const std::vector<double>& same_precision) {
  double scale = 1.0, worst = 0.0, reference_error = 0.0;
  size_t at = 0;
  bool finite = true;
  for (size_t k = 0; k < want.size(); ++k) {
    scale = std::max(scale, std::fabs(want[k]));
    reference_error = std::max(reference_error, std::fabs(same_precision[k] - want[k]));
    finite = finite && std::isfinite(static_cast<double>(got[k]));
    const double error = std::fabs(static_cast<double>(got[k]) - want[k]);
    if (!(error <= worst)) worst = error, at = k;
  }
  const double allowed = sizeof(T) == 4 ? 2.0 * reference_error + 1e-6 * scale : 1e-10 * scale;
  CHECK(finite && worst <= allowed,
        "%s %s: error %.3g at %zu (got %.9g, want %.9g), allowed %.3g (same-precision reference's error %.3g, "
        "scale %.3g)",
        what.c_str(), name.c_str(), worst, at, want.empty() ? 0.0 : static_cast<double>(got[at]),
        want.empty() ? 0.0 : want[at], allowed, reference_error, scale);
}

template <typename T>
Network<T> random_network(const Case& c, std::mt19937_64& rng) {
  Network<T> net;
  net.activation = c.activation;
  net.width.push_back(c.dim);
  for (int64_t w : c.hidden) net.width.push_back(w);
  net.width.push_back(1);
  for (size_t l = 0; l + 1 < net.width.size(); ++l) {
    // Wider than nn.Linear's init, so that the activations reach both sides of their kinks.
    const double bound = 2.0 / std::sqrt(static_cast<double>(net.width[l]));
    const double scale = l + 2 == net.width.size() ? c.output_scale : 1.0;
    net.weight.push_back(uniform<T>(static_cast<size_t>(net.width[l + 1] * net.width[l]), rng, -bound * scale,
                                    bound * scale));
    net.bias.push_back(uniform<T>(static_cast<size_t>(net.width[l + 1]), rng, -0.5, 0.5));
  }
  return net;
}

template <typename T>
std::vector<T> random_data(const Case& c, std::mt19937_64& rng) {
  std::vector<T> x(static_cast<size_t>(c.batch * c.dim));
  if (c.kind == core::kGaussian) {
    std::normal_distribution<double> normal(0.0, 1.5);
    for (T& v : x) v = static_cast<T>(normal(rng));
  } else {
    for (T& v : x) v = static_cast<T>(rng() % 2);
  }
  return x;
}

MlpNoise make_noise(const Case& c) {
  return MlpNoise{c.kind, c.kind == core::kGaussian ? c.param : 0.0,
                  core::bernoulli_noise(c.kind == core::kBernoulli ? c.param : 0.5)};
}

// Forward and backward under the model against the float64 and same-precision references.
template <typename T>
void check_case(const Case& c, uint64_t seed) {
  std::mt19937_64 rng(seed);
  const std::string what = describe(c, kTypeName<T>);
  const Network<T> net = random_network<T>(c, rng);
  const std::vector<T> x = random_data<T>(c, rng);
  const std::vector<T> grad_v = uniform<T>(static_cast<size_t>(c.batch), rng, -1.5, 1.5);
  const FusedShape shape{c.batch, c.dim, c.dim, c.negatives, seed * 0x9e3779b97f4a7c15ull, static_cast<int64_t>(seed % 1000),
                         c.weight};
  const MlpNoise noise = make_noise(c);
  const bool gaussian = c.kind == core::kGaussian;

  const std::vector<T> items = mlp_reference::draw_items(shape, noise, x);
  const Result want = mlp_reference::evaluate<double>(net, shape, gaussian, items, grad_v);
  const Result same = mlp_reference::evaluate<T>(net, shape, gaussian, items, grad_v);

  // Device copies of exactly their size, so that AddressSanitizer sees any access past them.
  const int layers = net.layers();
  DeviceBuffer<T> x_dev(x), grad_dev(grad_v);
  std::vector<DeviceBuffer<T>> weight_dev, bias_dev, grad_weight_dev, grad_bias_dev;
  edfast::MlpInputs<T> in{};
  edfast::MlpGrads<T> grads{};
  in.x = x_dev.data();
  in.layers = layers;
  in.activation = net.activation;
  for (int l = 0; l <= layers; ++l) in.width[l] = net.width[l];
  weight_dev.reserve(layers), bias_dev.reserve(layers), grad_weight_dev.reserve(layers), grad_bias_dev.reserve(layers);
  for (int l = 0; l < layers; ++l) {
    weight_dev.emplace_back(net.weight[l]);
    bias_dev.emplace_back(net.bias[l]);
    grad_weight_dev.emplace_back(net.weight[l].size(), T(0));  // the caller zeroes the gradients
    grad_bias_dev.emplace_back(net.bias[l].size(), T(0));
    in.weight[l] = weight_dev[l].data();
    in.bias[l] = bias_dev[l].data();
    grads.weight[l] = grad_weight_dev[l].data();
    grads.bias[l] = grad_bias_dev[l].data();
  }
  DeviceBuffer<T> grad_x_dev(c.grad_x ? x.size() : 0, T(0));
  grads.x = c.grad_x ? grad_x_dev.data() : nullptr;
  DeviceBuffer<T> v_dev(c.batch, T(NAN)), stats_dev(c.batch * edfast::kMlpRowStats, T(NAN));

  const int64_t launches = cuda_model::launches_run();
  CHECK(cuda::mlp_forward(shape, noise, in, v_dev.data(), stats_dev.data(), nullptr) == cudaSuccess, "%s forward",
        what.c_str());
  CHECK(cuda::mlp_backward(shape, noise, in, grad_dev.data(), static_cast<const T*>(stats_dev.data()), grads,
                           nullptr) == cudaSuccess,
        "%s backward", what.c_str());
  CHECK(cuda_model::launches_run() == launches + 5, "%s: expected y, forward, rows, y, backward launches", what.c_str());

  expect_close(what, "v", v_dev.data(), want.v, same.v);
  std::vector<T> column(static_cast<size_t>(c.batch));
  const std::vector<double>* want_stats[] = {&want.energy, &want.normaliser, &want.probability};
  const std::vector<double>* same_stats[] = {&same.energy, &same.normaliser, &same.probability};
  const char* stat_names[] = {"row_stats U(x)", "row_stats L", "row_stats P"};
  for (int s = 0; s < 3; ++s) {
    for (int64_t i = 0; i < c.batch; ++i) column[i] = stats_dev[i * edfast::kMlpRowStats + s];
    expect_close(what, stat_names[s], column.data(), *want_stats[s], *same_stats[s]);
  }
  for (int l = 0; l < layers; ++l) {
    expect_close(what, "grad weight " + std::to_string(l), grad_weight_dev[l].data(), want.grad_weight[l],
                 same.grad_weight[l]);
    expect_close(what, "grad bias " + std::to_string(l), grad_bias_dev[l].data(), want.grad_bias[l], same.grad_bias[l]);
    CHECK(any_nonzero(want.grad_weight[l]), "%s: layer %d has no weight gradient to test", what.c_str(), l);
  }
  if (c.grad_x) {
    expect_close(what, "grad x", grad_x_dev.data(), want.grad_x, same.grad_x);
    CHECK(any_nonzero(want.grad_x), "%s: no x gradient to test", what.c_str());
  }
}

template <typename T>
void check_cases(const std::vector<Case>& cases, uint64_t seed) {
  ModelDevice device;
  for (const Case& c : cases) check_case<T>(c, seed++);
}

void check_both(const std::vector<Case>& cases, uint64_t seed) {
  check_cases<float>(cases, seed);
  check_cases<double>(cases, seed);
}

constexpr core::Activation kAll[] = {core::Activation::kSoftplus, core::Activation::kSilu, core::Activation::kRelu,
                                     core::Activation::kLeakyRelu, core::Activation::kTanh, core::Activation::kElu};

}  // namespace

// Every activation, widths 17 and 5 on D = 3 (no multiple of the tile, of 32 or of 4);
// B (M + 1) = 9 * 34 = 306 items: 10 tiles on 8 blocks, the last tile partial and the row
// boundaries falling inside tiles.
TEST_CASE(cuda, mlp_activations_gaussian_match_reference) {
  std::vector<Case> cases;
  for (core::Activation a : kAll) cases.push_back({"activation", a, 3, {17, 5}, core::kGaussian, 0.7, 9, 33, 1.0, true});
  check_both(cases, 100);
}

// Depth 0 (one Linear layer) and depth 8 (9 Linear layers, widths around 32 and 1); M = 1 and 31;
// w = 0; grad x on and off.
TEST_CASE(cuda, mlp_depth_0_and_8_match_reference) {
  const std::vector<Case> cases = {
      // Under Gaussian noise a linear energy's grad x is exactly 0 (U(x) - U(x + noise) does not
      // depend on x): the depth-0 case with grad x is binary.
      {"depth 0", core::Activation::kSoftplus, 5, {}, core::kBernoulli, 0.3, 13, 1, 1.0, true},
      {"depth 0", core::Activation::kTanh, 7, {}, core::kGaussian, 1.0, 3, 31, 0.0, false},
      {"depth 8", core::Activation::kSilu, 6, {9, 33, 17, 5, 32, 1, 40, 7}, core::kGaussian, 0.5, 5, 31, 0.0, true},
      {"depth 8", core::Activation::kElu, 2, {31, 31, 31, 31, 31, 31, 31, 31}, core::kGaussian, 1.0, 17, 1, 1.0, false},
  };
  check_both(cases, 200);
}

// Binary data: dense Bernoulli (epsilon 0.3), sparse Bernoulli (0.01: the gap draws; D = 130 so
// that rows see flips), BitFlip. grad x is the data item's only.
TEST_CASE(cuda, mlp_binary_noise_match_reference) {
  const std::vector<Case> cases = {
      {"bernoulli dense", core::Activation::kSilu, 13, {20, 11}, core::kBernoulli, 0.3, 5, 31, 1.0, true},
      {"bernoulli dense", core::Activation::kRelu, 13, {20, 11}, core::kBernoulli, 0.3, 6, 33, 0.0, false},
      {"bernoulli sparse", core::Activation::kSoftplus, 130, {24}, core::kBernoulli, 0.01, 4, 33, 0.0, true},
      {"bernoulli sparse", core::Activation::kLeakyRelu, 130, {24}, core::kBernoulli, 0.01, 3, 1, 1.0, false},
      {"bitflip", core::Activation::kTanh, 10, {16, 16}, core::kBitFlip, 0.0, 7, 31, 1.0, true},
      {"bitflip", core::Activation::kElu, 10, {16, 16}, core::kBitFlip, 0.0, 9, 1, 0.0, false},
  };
  check_both(cases, 300);
}

// The widest case, kept small: D = 1024 (grad x in 4 passes of 256 features), a 256-wide hidden
// layer (the full 8 column blocks per thread) and B = 2, M = 1 (one tile, 4 items, 28 padding).
// Then energies of magnitude ~1e4 (the last layer scaled by 3000): the logsumexp stays finite.
TEST_CASE(cuda, mlp_wide_and_large_energies_match_reference) {
  const std::vector<Case> cases = {
      {"wide", core::Activation::kSoftplus, 1024, {256, 40}, core::kGaussian, 0.3, 2, 1, 1.0, true},
      {"large energies", core::Activation::kRelu, 4, {12}, core::kGaussian, 1.0, 5, 33, 1.0, true, 3000.0},
      {"large energies", core::Activation::kTanh, 4, {12}, core::kGaussian, 1.0, 5, 31, 0.0, false, 3000.0},
  };
  check_both(cases, 400);
}

// B = 0: nothing is launched or written, and both launchers succeed. A hidden layer wider than
// 256 (one GEMM pass of the backward) or a two-output last layer is refused, not launched.
TEST_CASE(cuda, mlp_empty_batch_and_out_of_range) {
  const int64_t launches = cuda_model::launches_run();
  DeviceBuffer<float> none(0), weight(3, 0.5f), bias(1, 0.5f), grad_weight(3, 0.0f), grad_bias(1, 0.0f);
  edfast::MlpInputs<float> in{};
  in.x = none.data();
  in.layers = 1;
  in.width[0] = 3;
  in.width[1] = 1;
  in.weight[0] = weight.data();
  in.bias[0] = bias.data();
  in.activation = core::Activation::kSilu;
  edfast::MlpGrads<float> grads{};
  grads.weight[0] = grad_weight.data();
  grads.bias[0] = grad_bias.data();
  grads.x = none.data();
  const FusedShape shape{0, 3, 3, 4, 1, 0, 1.0};
  const MlpNoise noise{core::kGaussian, 1.0, core::bernoulli_noise(0.5)};
  CHECK(cuda::mlp_forward(shape, noise, in, none.data(), none.data(), nullptr) == cudaSuccess);
  CHECK(cuda::mlp_backward(shape, noise, in, static_cast<const float*>(none.data()),
                           static_cast<const float*>(none.data()), grads, nullptr) == cudaSuccess);
  CHECK(cuda_model::launches_run() == launches, "an empty batch launched a kernel");
  CHECK(grad_weight[0] == 0.0f && grad_bias[0] == 0.0f, "an empty batch wrote gradients");

  const FusedShape one_row{1, 3, 3, 4, 1, 0, 1.0};
  DeviceBuffer<float> x(3, 1.0f), v(1), stats(3), grad_v(1, 1.0f);
  in.x = x.data();
  in.layers = 2;
  in.width[1] = 257;  // the hidden layer; its weights are never read
  in.width[2] = 1;
  in.weight[1] = weight.data();
  in.bias[1] = bias.data();
  grads.weight[1] = grad_weight.data();
  grads.bias[1] = grad_bias.data();
  grads.x = nullptr;
  CHECK(cuda::mlp_forward(one_row, noise, in, v.data(), stats.data(), nullptr) == cudaErrorInvalidValue);
  CHECK(cuda::mlp_backward(one_row, noise, in, static_cast<const float*>(grad_v.data()),
                           static_cast<const float*>(stats.data()), grads, nullptr) == cudaErrorInvalidValue);
  in.layers = 1;
  in.width[1] = 2;  // the energy must be one output
  CHECK(cuda::mlp_forward(one_row, noise, in, v.data(), stats.data(), nullptr) == cudaErrorInvalidValue);
  CHECK(cuda_model::launches_run() == launches, "an out-of-range network launched a kernel");
}
