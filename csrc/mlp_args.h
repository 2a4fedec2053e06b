// Plain-data inputs and outputs of the fused MLP op (mlp_ed), passed from the op layer
// (ops_mlp.cpp) to the CPU and CUDA launchers. All pointers are on the kernel's device;
// every array is contiguous and row-major. The maths is in csrc/core/mlp.h.
#pragma once

#include <cstdint>

#include "core/mlp.h"
#include "launch_args.h"

namespace edfast {

constexpr int kMlpMaxLayers = static_cast<int>(core::kMlpMaxHidden) + 1;  // hidden layers + the output layer

// The network: layer l maps width[l] -> width[l + 1]; width[0] = D, width[layers] = 1.
template <typename T>
struct MlpInputs {
  const T* x;                        // [B, D] data (real for Gaussian noise, {0, 1} for Bernoulli/BitFlip)
  int layers;                        // Linear layers, 1 .. kMlpMaxLayers
  int64_t width[kMlpMaxLayers + 1];
  const T* weight[kMlpMaxLayers];    // W_l [width[l + 1], width[l]]
  const T* bias[kMlpMaxLayers];      // b_l [width[l + 1]]
  core::Activation activation;       // after every layer but the last
};

// The noise: core::kGaussian (scale = standard deviation), core::kBernoulli (flip probability
// in `bernoulli`) or core::kBitFlip. Binary data are flipped in their float bits (0 <-> 1).
struct MlpNoise {
  int64_t kind;
  double scale;
  core::BernoulliNoise bernoulli;
};

// Per-row statistics the forward leaves for backward, [B, 3]: U(x_i), L_i and P_i, where
// L_i = log(w + sum_j exp(U(x_i) - U(x'_ij))) and P_i = sum_j exp(U(x_i) - U(x'_ij) - L_i).
// An item's coefficient is then c_0 = g_i P_i for the data point and
// c_j = -g_i exp(U(x_i) - U(x'_ij) - L_i) for negative j (csrc/core/contrastive.h).
constexpr int64_t kMlpRowStats = 3;

// Gradients: weight[l], bias[l] shaped like the parameters; x [B, D] or null when not wanted.
// Gaussian noise: the gradient with respect to x sums every item's input gradient (the
// negatives are x plus noise); binary noise: the data point's only (the negatives are not
// differentiable in x), as in edfast.perturb's autograd.
template <typename T>
struct MlpGrads {
  T* weight[kMlpMaxLayers];
  T* bias[kMlpMaxLayers];
  T* x;
};

}  // namespace edfast
