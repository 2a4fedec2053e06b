// The maths of the fused MLP op (edfast.energies.MLPEnergy), shared by the CPU and CUDA kernels
// and the C++ tests.
//
//   h_0 = x,  h_{l+1} = act(W_l h_l + b_l) for the hidden layers l < L,  U(x) = W_L h_L + b_L
//
// with W_l [out_l, in_l] as nn.Linear stores it. Each activation and its derivative follow
// torch's definitions exactly (softplus: beta 1, threshold 20; leaky_relu: slope 0.2; elu:
// alpha 1), so that the fused op matches the generic path to float rounding.
//
// Backward of the ED loss through the MLP, for items n (a row's data point and its negatives)
// with coefficients c_n = dv/dU(item n) (csrc/core/contrastive.h):
//   delta_L = c_n,  grad W_L += delta_L h_L^T,
//   delta_l = (W_{l+1}^T delta_{l+1}) * act'(pre_l),  grad W_l += delta_l h_l^T,  grad b_l += delta_l,
//   grad of the input = W_0^T delta_0.
#pragma once

#include <cmath>
#include <cstdint>

#include "macros.h"

namespace edfast {
namespace core {

enum class Activation : int32_t { kSoftplus = 0, kSilu = 1, kRelu = 2, kLeakyRelu = 3, kTanh = 4, kElu = 5 };

// The documented range of the fused MLP kernels (DESIGN §5): wider or deeper networks take the
// generic path.
constexpr int64_t kMlpMaxInput = 1024;
constexpr int64_t kMlpMaxWidth = 256;
constexpr int64_t kMlpMaxHidden = 8;

constexpr double kLeakyReluSlope = 0.2;  // a double, so that float64 matches torch exactly
constexpr double kSoftplusThreshold = 20.0;

EDFAST_INLINE float mlp_exp(float z) { return expf(z); }
EDFAST_INLINE double mlp_exp(double z) { return exp(z); }
EDFAST_INLINE float mlp_log1p(float z) { return log1pf(z); }
EDFAST_INLINE double mlp_log1p(double z) { return log1p(z); }
EDFAST_INLINE float mlp_expm1(float z) { return expm1f(z); }
EDFAST_INLINE double mlp_expm1(double z) { return expm1(z); }
EDFAST_INLINE float mlp_tanh(float z) { return tanhf(z); }
EDFAST_INLINE double mlp_tanh(double z) { return tanh(z); }

// act(pre), and act'(pre) in *derivative when it is not null.
template <typename T>
EDFAST_INLINE T activate(Activation activation, T pre, T* derivative) {
  T value, slope;
  switch (activation) {
    case Activation::kSoftplus: {
      const T z = mlp_exp(pre);
      const bool linear = pre > T(kSoftplusThreshold);
      value = linear ? pre : mlp_log1p(z);
      slope = linear ? T(1) : z / (z + T(1));
      break;
    }
    case Activation::kSilu: {
      const T s = T(1) / (T(1) + mlp_exp(-pre));
      value = pre * s;
      slope = s * (T(1) + pre * (T(1) - s));
      break;
    }
    case Activation::kRelu:
      value = pre > T(0) ? pre : (pre != pre ? pre : T(0));  // NaN propagates as in torch
      slope = value > T(0) ? T(1) : T(0);
      break;
    case Activation::kLeakyRelu:
      value = pre > T(0) ? pre : pre * T(kLeakyReluSlope);
      slope = pre > T(0) ? T(1) : T(kLeakyReluSlope);
      break;
    case Activation::kTanh:
      value = mlp_tanh(pre);
      slope = T(1) - value * value;
      break;
    default: {  // kElu
      const bool positive = pre > T(0);
      value = positive ? pre : mlp_expm1(pre);
      slope = positive ? T(1) : mlp_exp(pre);
      break;
    }
  }
  if (derivative != nullptr) *derivative = slope;
  return value;
}

}  // namespace core
}  // namespace edfast
