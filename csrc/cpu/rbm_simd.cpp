// The vectorised softplus and sigmoid of rbm_simd.h, written once over vector extensions
// (vec_exp.h) and instantiated for AVX-512, AVX2 and the baseline instruction set.
#include "rbm_simd.h"

#include <cstring>

#include "simd_level.h"
#include "simd_targets.h"
#include "vec_exp.h"

namespace edfast {
namespace cpu {
namespace {

template <int kBytes>
struct Lanes : simd::FloatLanes<kBytes> {
  using typename simd::FloatLanes<kBytes>::V;
  // max(z, 0) + log(1 + exp(-|z|)).
  static EDFAST_SIMD_INLINE V softplus(V z) {
    const V zero{};
    const V negative_abs = z < zero ? z : -z;
    const V positive = z > zero ? z : zero;
    return positive + simd::log_f32<V>(simd::exp_f32<V>(negative_abs) + 1.0f);
  }
  static EDFAST_SIMD_INLINE V sigmoid(V z) { return 1.0f / (simd::exp_f32<V>(-z) + 1.0f); }
};

template <int kBytes>
EDFAST_SIMD_INLINE float softplus_change_sum_impl(const float* pre, const float* softplus_y, int64_t n) {
  using L = Lanes<kBytes>;
  typename L::V sum{};
  for (int64_t h = 0; h < n; h += L::kCount) {
    const int64_t left = n - h;
    typename L::V change = L::softplus(L::load(pre + h, left)) - L::load(softplus_y + h, left);
    if (left < L::kCount) {  // the padded lanes hold softplus(0): drop them
      for (int lane = static_cast<int>(left); lane < L::kCount; ++lane) change[lane] = 0.0f;
    }
    sum += change;
  }
  float total = 0.0f;
  for (int lane = 0; lane < L::kCount; ++lane) total += sum[lane];
  return total;
}

template <int kBytes>
EDFAST_SIMD_INLINE void softplus_impl(const float* in, float* out, int64_t n) {
  using L = Lanes<kBytes>;
  for (int64_t h = 0; h < n; h += L::kCount) L::store(out + h, L::softplus(L::load(in + h, n - h)), n - h);
}

template <int kBytes>
EDFAST_SIMD_INLINE void sigmoid_accumulate_impl(const float* pre, float c, float* sigmoid, float* acc, int64_t n) {
  using L = Lanes<kBytes>;
  for (int64_t h = 0; h < n; h += L::kCount) {
    const typename L::V s = L::sigmoid(L::load(pre + h, n - h));
    L::store(sigmoid + h, s, n - h);
    L::store(acc + h, L::load(acc + h, n - h) + c * s, n - h);
  }
}

template <int kBytes>
EDFAST_SIMD_INLINE void item_pre_impl(const float* pre_y, const float* weight_t, const int32_t* index,
                                      const float* value, int64_t count, float* pre, int64_t n) {
  using L = Lanes<kBytes>;
  for (int64_t h = 0; h < n; h += L::kCount) {
    typename L::V acc = L::load(pre_y + h, n - h);
    for (int64_t a = 0; a < count; ++a) {
      acc += value[a] * L::load(weight_t + static_cast<int64_t>(index[a]) * n + h, n - h);
    }
    L::store(pre + h, acc, n - h);
  }
}

template <int kBytes>
EDFAST_SIMD_INLINE void axpy_impl(float a, const float* x, float* y, int64_t n) {
  using L = Lanes<kBytes>;
  for (int64_t h = 0; h < n; h += L::kCount) L::store(y + h, L::load(y + h, n - h) + a * L::load(x + h, n - h), n - h);
}

#define EDFAST_RBM_FUNCTIONS(NAME, BYTES, TARGET)                                                     \
  TARGET float softplus_change_sum_##NAME(const float* pre, const float* softplus_y, int64_t n) {     \
    return softplus_change_sum_impl<BYTES>(pre, softplus_y, n);                                       \
  }                                                                                                   \
  TARGET void softplus_##NAME(const float* in, float* out, int64_t n) { softplus_impl<BYTES>(in, out, n); } \
  TARGET void sigmoid_accumulate_##NAME(const float* pre, float c, float* sigmoid, float* acc, int64_t n) { \
    sigmoid_accumulate_impl<BYTES>(pre, c, sigmoid, acc, n);                                          \
  }                                                                                                   \
  TARGET void item_pre_##NAME(const float* pre_y, const float* weight_t, const int32_t* index,        \
                              const float* value, int64_t count, float* pre, int64_t n) {             \
    item_pre_impl<BYTES>(pre_y, weight_t, index, value, count, pre, n);                               \
  }                                                                                                   \
  TARGET void axpy_##NAME(float a, const float* x, float* y, int64_t n) { axpy_impl<BYTES>(a, x, y, n); } \
  RbmVectorKernels kernels_##NAME() {                                                                 \
    return {&softplus_change_sum_##NAME, &softplus_##NAME, &sigmoid_accumulate_##NAME, &item_pre_##NAME, \
            &axpy_##NAME};                                                                            \
  }

EDFAST_RBM_FUNCTIONS(baseline, 16, )
#ifdef EDFAST_X86_DISPATCH
EDFAST_RBM_FUNCTIONS(avx2, 32, EDFAST_TARGET_AVX2)
EDFAST_RBM_FUNCTIONS(avx512, 64, EDFAST_TARGET_AVX512)
#endif

RbmVectorKernels choose() {
#ifdef EDFAST_X86_DISPATCH
  switch (simd_level()) {
    case SimdLevel::kAvx512: return kernels_avx512();
    case SimdLevel::kAvx2: return kernels_avx2();
    default: break;
  }
#endif
  return kernels_baseline();
}

}  // namespace

const RbmVectorKernels& rbm_vector_kernels() {
  static const RbmVectorKernels chosen = choose();
  return chosen;
}

}  // namespace cpu
}  // namespace edfast
