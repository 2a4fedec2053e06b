// The activations of the fused MLP kernel (csrc/cpu/mlp.cpp) over float arrays, on vector
// lanes: a tile's hidden layers apply one to every pre-activation, which scalar expf/log1pf
// would make cost as much as the GEMMs. Compiled for AVX-512, AVX2 and the baseline and chosen
// at run time (simd_level.h). Torch-free.
//
// Definitions are torch's (csrc/core/mlp.h); accuracy is vec_exp.h's exp_f32 and log_f32
// (under 1 ulp each): softplus takes log1p(t) as log(1 + t), and tanh and elu are formed from
// exp, so values near 0 carry an absolute error of up to ~1e-7, the float32 rounding of the
// GEMM sums they enter.
#pragma once

#include <cstdint>

#include "../core/mlp.h"

namespace edfast {
namespace cpu {

// For a row-major [rows, cols] block h of pre-activations without their bias:
// h[r, c] = act(h[r, c] + bias[c]) in place, and slope[r, c] = act'(h[r, c] + bias[c]) when
// slope is not null (the bias is added here rather than by the GEMM: one pass fewer).
using FloatActivation = void (*)(float* h, const float* bias, float* slope, int64_t rows, int64_t cols);

FloatActivation float_activation(core::Activation activation);

}  // namespace cpu
}  // namespace edfast
