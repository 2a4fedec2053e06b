// Vectorised softplus and sigmoid over float arrays for the fused RBM rows (fused_rows.h):
// an item's free energy needs H of them, and scalar log1pf/expf cost most of the step.
// Compiled for AVX-512, AVX2 and the baseline and chosen at run time (simd_level.h), like
// contrastive_simd.h. Torch-free. Accuracy: vec_exp.h's exp_f32 and log_f32 (under 1 ulp
// each); log1p(t) is computed as log(1 + t), so softplus of z < -17 is off by up to 1e-7
// absolute, below the float32 rounding of the sums it enters.
#pragma once

#include <cstdint>

namespace edfast {
namespace cpu {

struct RbmVectorKernels {
  // sum_h (softplus(pre[h]) - softplus_y[h]), h < n.
  float (*softplus_change_sum)(const float* pre, const float* softplus_y, int64_t n);
  // out[h] = softplus(in[h]).
  void (*softplus)(const float* in, float* out, int64_t n);
  // sigmoid[h] = 1 / (1 + exp(-pre[h])) and acc[h] += c * sigmoid[h]; sigmoid may be pre.
  void (*sigmoid_accumulate)(const float* pre, float c, float* sigmoid, float* acc, int64_t n);
  // An item's pre-activations in one pass: pre[h] = pre_y[h] + sum_a value[a] * weight_t[index[a] * n + h]
  // (the columns of W at its flips; rbm_item_pre in fused_rows.h).
  void (*item_pre)(const float* pre_y, const float* weight_t, const int32_t* index, const float* value,
                   int64_t count, float* pre, int64_t n);
  // y[h] += a * x[h].
  void (*axpy)(float a, const float* x, float* y, int64_t n);
};

const RbmVectorKernels& rbm_vector_kernels();

}  // namespace cpu
}  // namespace edfast
