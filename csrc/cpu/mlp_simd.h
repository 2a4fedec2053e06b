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

// h[k] = act(h[k]) in place for k < n; slope[k] = act'(h[k]) (the pre-activation's) when
// slope is not null.
using FloatActivation = void (*)(float* h, float* slope, int64_t n);

FloatActivation float_activation(core::Activation activation);

}  // namespace cpu
}  // namespace edfast
