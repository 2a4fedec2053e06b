// Vectorised rows of contrastive_logsumexp for the CPU (maths: csrc/core/contrastive.h),
// compiled for AVX-512, AVX2 and the baseline instruction set and chosen once at run time.
// Torch-free: bfloat16 travels as its raw bits (uint16_t); float16 is converted to float by
// the caller (csrc/cpu/contrastive.cpp).
#pragma once

#include <cstdint>

namespace edfast {
namespace cpu {

// The row kernels for elements of type T accumulated in A (double for double, else float).
template <class T, class A>
struct ContrastRows {
  // log_normaliser[i] = log(w + sum_j exp(pos[i] - neg[i*m + j])) and v[i] =
  // log_normaliser[i] - log_m for i in [0, rows), with log_w = log w (-inf for w = 0): one max
  // sweep and one exp sweep over each row. -inf terms (e_neg = +inf) add nothing. A row with
  // a NaN or +inf term, or with every term -inf, gets NaN in both: the caller recomputes it
  // with core::OnlineLogSumExp, which defines those cases. Returns the number of such rows.
  int64_t (*forward)(const T* pos, const T* neg, int64_t rows, int64_t m, A log_w, A log_m,
                     A* log_normaliser, T* v);
  // p_ij = exp(pos[i] - neg[i*m + j] - log_normaliser[i]); grad_neg[i*m + j] = -g_i * p_ij and
  // grad_pos[i] = g_i * sum_j p_ij with g_i = grad_v[i]: one sweep; any input values
  // (exp is exact about NaN and infinities, so no row needs another path).
  void (*backward)(const T* grad_v, const T* pos, const T* neg, const A* log_normaliser,
                   int64_t rows, int64_t m, T* grad_pos, T* grad_neg);
};

struct ContrastRowKernels {
  const char* isa;  // "avx512", "avx2" or "baseline"
  ContrastRows<float, float> f32;
  ContrastRows<double, double> f64;
  ContrastRows<uint16_t, float> bf16;
};

// The kernels of simd_level() (simd_level.h: the best this CPU supports, capped by
// EDFAST_CPU_SIMD=baseline|avx2|avx512), chosen on first use. AVX2 and AVX-512 give bit-identical results; the baseline,
// without FMA, differs from them by about an ulp.
const ContrastRowKernels& contrast_row_kernels();

}  // namespace cpu
}  // namespace edfast
