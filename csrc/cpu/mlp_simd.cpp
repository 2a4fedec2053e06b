// The vectorised activations of mlp_simd.h, written once over vector extensions (vec_exp.h)
// and instantiated for AVX-512, AVX2 and the baseline instruction set.
#include "mlp_simd.h"

#include <cstring>

#include "simd_level.h"
#include "simd_targets.h"
#include "vec_exp.h"

namespace edfast {
namespace cpu {
namespace {

using core::Activation;

template <int kBytes>
struct Lanes : simd::FloatLanes<kBytes> {
  using typename simd::FloatLanes<kBytes>::V;
  static EDFAST_SIMD_INLINE V splat(float a) { return V{} + a; }
  static EDFAST_SIMD_INLINE V exp(V z) { return simd::exp_f32<V>(z); }
  // exp(z) for z <= 0 where the result is only added to 1 or multiplied into something that
  // is: below exp(-87) it gives ~2^-126 instead of the exact tiny value (vec_exp.h's kSumTerm),
  // an absolute error under 1e-37, and skips the overflow and subnormal handling.
  static EDFAST_SIMD_INLINE V exp_nonpositive(V z) { return simd::exp_f32<V, simd::ExpDomain::kSumTerm>(z); }

  // Each returns act(z) and sets slope = act'(z), as csrc/core/mlp.h defines them.
  // torch's threshold (z > 20: z and slope 1) needs no branch in float: there exp(-z) < 2.1e-9
  // is under half an ulp of 1, so 1 + t rounds to 1 and max(z, 0) + log(1 + t) is z exactly.
  static EDFAST_SIMD_INLINE V softplus(V z, V& slope) {
    using simd::select;
    const V zero{}, one = splat(1.0f);
    const V t = exp_nonpositive(select(z < zero, z, -z));  // exp(-|z|)
    const V inverse = one / (one + t);
    // log_f32 reads a NaN's bits as a number: NaN is given back explicitly, as torch does.
    // (Tested on the bits: with a float comparison z == z, GCC splits the vector into scalars.)
    using Bits = typename simd::IntVecOf<V, float>::type;
    const auto nan = ((Bits)z & 0x7fffffff) > 0x7f800000;
    slope = select(nan, z, select(z < zero, t * inverse, inverse));
    return select(nan, z, select(z > zero, z, zero) + simd::log_f32<V>(one + t));
  }
  static EDFAST_SIMD_INLINE V silu(V z, V& slope) {
    const V one = splat(1.0f);
    const V s = one / (one + exp(-z));
    slope = s * (one + z * (one - s));
    return z * s;
  }
  static EDFAST_SIMD_INLINE V relu(V z, V& slope) {
    const V zero{};
    const V value = z < zero ? zero : z;  // NaN fails the comparison and propagates, as in torch
    slope = value > zero ? splat(1.0f) : zero;
    return value;
  }
  static EDFAST_SIMD_INLINE V leaky_relu(V z, V& slope) {
    const V zero{}, leak = splat(static_cast<float>(core::kLeakyReluSlope));
    slope = z > zero ? splat(1.0f) : leak;
    return z > zero ? z : z * leak;
  }
  static EDFAST_SIMD_INLINE V tanh(V z, V& slope) {
    const V zero{}, one = splat(1.0f);
    const V t = exp_nonpositive(splat(-2.0f) * (z < zero ? -z : z));  // exp(-2|z|)
    const V magnitude = (one - t) / (one + t);
    const V value = z < zero ? -magnitude : magnitude;  // NaN: magnitude is NaN
    slope = one - value * value;
    return value;
  }
  static EDFAST_SIMD_INLINE V elu(V z, V& slope) {
    const V zero{}, one = splat(1.0f);
    const V e = exp_nonpositive(z > zero ? zero : z);
    slope = z > zero ? one : e;
    return z > zero ? z : e - one;
  }
};

// kSlope: whether act' is stored (without it the compiler drops its maths, e.g. a division).
template <int kBytes, Activation kActivation, bool kSlope>
EDFAST_SIMD_INLINE void activate_impl(float* h, const float* bias, float* slope, int64_t rows, int64_t cols) {
  using L = Lanes<kBytes>;
  for (int64_t r = 0; r < rows; ++r, h += cols, slope += kSlope ? cols : 0) {
    for (int64_t k = 0; k < cols; k += L::kCount) {
      const typename L::V z = L::load(h + k, cols - k) + L::load(bias + k, cols - k);
      typename L::V s;
      typename L::V value;
      switch (kActivation) {
        case Activation::kSoftplus: value = L::softplus(z, s); break;
        case Activation::kSilu: value = L::silu(z, s); break;
        case Activation::kRelu: value = L::relu(z, s); break;
        case Activation::kLeakyRelu: value = L::leaky_relu(z, s); break;
        case Activation::kTanh: value = L::tanh(z, s); break;
        default: value = L::elu(z, s); break;
      }
      L::store(h + k, value, cols - k);
      if (kSlope) L::store(slope + k, s, cols - k);
    }
  }
}

#define EDFAST_MLP_ACTIVATION(NAME, BYTES, TARGET, ACT) \
  TARGET void NAME(float* h, const float* bias, float* slope, int64_t rows, int64_t cols) { \
    if (slope == nullptr) activate_impl<BYTES, ACT, false>(h, bias, slope, rows, cols);      \
    else activate_impl<BYTES, ACT, true>(h, bias, slope, rows, cols);                        \
  }

#define EDFAST_MLP_FUNCTIONS(LEVEL, BYTES, TARGET)                                           \
  EDFAST_MLP_ACTIVATION(softplus_##LEVEL, BYTES, TARGET, Activation::kSoftplus)              \
  EDFAST_MLP_ACTIVATION(silu_##LEVEL, BYTES, TARGET, Activation::kSilu)                      \
  EDFAST_MLP_ACTIVATION(relu_##LEVEL, BYTES, TARGET, Activation::kRelu)                      \
  EDFAST_MLP_ACTIVATION(leaky_relu_##LEVEL, BYTES, TARGET, Activation::kLeakyRelu)           \
  EDFAST_MLP_ACTIVATION(tanh_##LEVEL, BYTES, TARGET, Activation::kTanh)                      \
  EDFAST_MLP_ACTIVATION(elu_##LEVEL, BYTES, TARGET, Activation::kElu)                        \
  FloatActivation activation_##LEVEL(Activation activation) {                                \
    switch (activation) {                                                                    \
      case Activation::kSoftplus: return &softplus_##LEVEL;                                  \
      case Activation::kSilu: return &silu_##LEVEL;                                          \
      case Activation::kRelu: return &relu_##LEVEL;                                          \
      case Activation::kLeakyRelu: return &leaky_relu_##LEVEL;                               \
      case Activation::kTanh: return &tanh_##LEVEL;                                          \
      default: return &elu_##LEVEL;                                                          \
    }                                                                                        \
  }

EDFAST_MLP_FUNCTIONS(baseline, 16, )
#ifdef EDFAST_X86_DISPATCH
EDFAST_MLP_FUNCTIONS(avx2, 32, EDFAST_TARGET_AVX2)
EDFAST_MLP_FUNCTIONS(avx512, 64, EDFAST_TARGET_AVX512)
#endif

}  // namespace

FloatActivation float_activation(Activation activation) {
#ifdef EDFAST_X86_DISPATCH
  switch (simd_level()) {
    case SimdLevel::kAvx512: return activation_avx512(activation);
    case SimdLevel::kAvx2: return activation_avx2(activation);
    default: break;
  }
#endif
  return activation_baseline(activation);
}

}  // namespace cpu
}  // namespace edfast
