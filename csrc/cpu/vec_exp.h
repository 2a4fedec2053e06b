// Vectorised exp and log (and bfloat16 conversions) for the CPU kernels, torch-free.
//
// Written once over GCC/Clang vector extensions: every function takes a native vector type V
// (`float __attribute__((vector_size(N)))` or double) and is always inlined, so it is compiled
// for the instruction set of the function that calls it. csrc/cpu/contrastive_simd.cpp calls
// it from functions marked __attribute__((target("avx512f,..."))) (64-byte vectors),
// target("avx2,fma") (32-byte) or nothing (16-byte: SSE2, NEON), and picks one at run time.
// Why not at::vec (Sleef): at::vec is compiled for one instruction set per translation unit
// (CPU_CAPABILITY macros plus matching -m flags), which a torch extension built with one flag
// set for all files cannot do, and its Sleef calls rely on libtorch_cpu exporting Sleef
// symbols, a build detail of torch rather than an API.
//
// Rounding: the includer decides whether a * b + c contracts to an FMA
// (csrc/cpu/contrastive_simd.cpp turns contraction on, so the AVX2 and AVX-512 paths fuse
// identically and the baseline, which has no FMA, rounds twice). Accuracy, either way:
// - exp_f32: Cephes expf (Cody-Waite reduction by ln 2, degree-5 polynomial), under 1 ulp;
//   exp_f64: Cephes exp (Pade form), under 2 ulp. Full domain: -inf -> 0, +inf -> inf,
//   NaN -> NaN, overflow -> inf, gradual underflow to subnormals and 0.
// - log_f32: Cephes logf (degree-8 polynomial), under 1 ulp, for positive normal finite x
//   only (the callers pass sums >= 1).
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#define EDFAST_SIMD_INLINE inline __attribute__((always_inline))

namespace edfast {
namespace simd {

// The integer vector of the same shape as V (int32 lanes for float, int64 for double).
template <class V, class Lane> struct IntVecOf;
template <class V> struct IntVecOf<V, float> {
  typedef int32_t type __attribute__((vector_size(sizeof(V))));
  typedef uint32_t unsigned_type __attribute__((vector_size(sizeof(V))));
};
template <class V> struct IntVecOf<V, double> {
  typedef int64_t type __attribute__((vector_size(sizeof(V))));
  typedef uint64_t unsigned_type __attribute__((vector_size(sizeof(V))));
};
template <class V> using LaneOf = typename std::remove_reference<decltype(V{}[0])>::type;
template <class V> using IntVec = typename IntVecOf<V, LaneOf<V>>::type;
template <class V> using UIntVec = typename IntVecOf<V, LaneOf<V>>::unsigned_type;

template <class V> EDFAST_SIMD_INLINE V splat(LaneOf<V> x) { return V{} + x; }

// mask ? a : b, with mask lanes all-ones or all-zeros (the result of a vector comparison,
// whose integer lane type varies: long or long long for double lanes). GCC's vector
// conditional lets it emit blends and, for max below, vmaxps.
template <class V, class M> EDFAST_SIMD_INLINE V select(M mask, V a, V b) {
  using I = IntVec<V>;
#if defined(__GNUC__) && !defined(__clang__)
  return (I)mask ? a : b;
#else
  return (V)(((I)mask & (I)a) | (~(I)mask & (I)b));
#endif
}

// a > b ? a : b (b where either is NaN): maxps.
template <class V> EDFAST_SIMD_INLINE V max(V a, V b) { return select(a > b, a, b); }

// What a caller of exp_f32 knows about x, which lets it skip work.
enum class ExpDomain {
  kAll,      // any x: under 1 ulp everywhere, with subnormals, 0, inf and NaN where exp has them
  kSumTerm,  // x <= 0 or NaN, and the result is added to a sum >= 1 (a max-shifted logsumexp):
             // below exp(-87) ~ 2^-125.5 it returns about 2^-126 instead, which such a sum
             // rounds away exactly as it rounds away the true value
};

// exp(x), float lanes.
template <class V, ExpDomain kDomain = ExpDomain::kAll> EDFAST_SIMD_INLINE V exp_f32(V x) {
  using I = IntVec<V>;
  constexpr bool kAll = kDomain == ExpDomain::kAll;
  // Clamped, the formula itself gives 0 below (exp(-104) < half the smallest subnormal) and
  // inf above (exp(89) > FLT_MAX). NaN fails both comparisons and propagates.
  x = select(x < (kAll ? -104.0f : -87.0f), splat<V>(kAll ? -104.0f : -87.0f), x);
  if constexpr (kAll) x = select(x > 89.0f, splat<V>(89.0f), x);
  // n = round(x / ln 2) by adding 1.5 * 2^23: n lands in the low mantissa bits of t.
  const V magic = splat<V>(12582912.0f);
  const V t = x * 1.44269504088896341f + magic;
  const V n_float = t - magic;
  V r = x - n_float * 0.693359375f;  // ln 2 in two parts (Cody-Waite): n * C1 is exact
  r = r - n_float * -2.12194440e-4f;
  V p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  if constexpr (!kAll) {  // n >= -126: 2^n is a normal float
    return p * (V)(((I)t - ((I)magic - 127)) << 23);
  } else {
    // 2^n as two factors 2^a * 2^b, a = floor(n/2), b = n - a, each a normal float for n in
    // [-150, 128], so the product rounds once, into a subnormal or to inf where exp does.
    // Biased exponents: n + 254 = bits(t) - (bits(magic) - 254), a + 127 = (n + 254) >> 1.
    const I biased_n = (I)t - ((I)magic - 254);
    const I biased_a = biased_n >> 1;
    return p * (V)(biased_a << 23) * (V)((biased_n - biased_a) << 23);
  }
}

// exp(x), double lanes.
template <class V> EDFAST_SIMD_INLINE V exp_f64(V x) {
  using I = IntVec<V>;
  x = select(x < -746.0, splat<V>(-746.0), x);
  x = select(x > 710.0, splat<V>(710.0), x);
  const V magic = splat<V>(6755399441055744.0);  // 1.5 * 2^52
  const V t = x * 1.4426950408889634073599 + magic;
  const V n_float = t - magic;
  const I n = (I)t - (I)magic;
  V r = x - n_float * 6.93145751953125E-1;
  r = r - n_float * 1.42860682030941723212E-6;
  const V rr = r * r;
  const V px = r * ((rr * 1.26177193074810590878E-4 + 3.02994407707441961300E-2) * rr +
                    9.99999999999999999910E-1);
  const V qx = ((rr * 3.00198505138664455042E-6 + 2.52448340349684104192E-3) * rr +
                2.27265548208155028766E-1) * rr + 2.00000000000000000009E0;
  const V e = px / (qx - px) * 2.0 + 1.0;
  // floor(n / 2) without a 64-bit arithmetic shift (AVX2 has none): round n/2 - 1/4.
  const I half = (I)(n_float * 0.5 - 0.25 + magic) - (I)magic;
  const V scale_a = (V)((half + 1023) << 52);
  const V scale_b = (V)((n - half + 1023) << 52);
  return e * scale_a * scale_b;
}

// log(x) for positive, normal, finite x; float lanes.
template <class V> EDFAST_SIMD_INLINE V log_f32(V x) {
  using I = IntVec<V>;
  const I bits = (I)x;
  // x = f * 2^e with f in [sqrt(1/2), sqrt(2)).
  const I mantissa = (bits & 0x007FFFFF) | 0x3F800000;  // f' in [1, 2)
  V e = __builtin_convertvector((bits >> 23) - 127, V);
  V f = (V)mantissa;
  const auto big = f > 1.41421356237309504880f;
  f = select(big, f * 0.5f, f) - 1.0f;
  e = select(big, e + 1.0f, e);
  const V z = f * f;
  V y = f * 7.0376836292E-2f - 1.1514610310E-1f;
  y = y * f + 1.1676998740E-1f;
  y = y * f - 1.2420140846E-1f;
  y = y * f + 1.4249322787E-1f;
  y = y * f - 1.6668057665E-1f;
  y = y * f + 2.0000714765E-1f;
  y = y * f - 2.4999993993E-1f;
  y = y * f + 3.3333331174E-1f;
  y = y * f * z;
  y = y + e * -2.12194440e-4f;
  y = y - z * 0.5f;
  return f + y + e * 0.693359375f;
}

// bfloat16 (raw bits, uint16 lanes) <-> float: exact widening; narrowing rounds to nearest
// even with NaN -> 0x7FC0, as c10::BFloat16(float).
template <class V, class H> EDFAST_SIMD_INLINE V bf16_to_f32(H h) {
  return (V)(__builtin_convertvector(h, UIntVec<V>) << 16);
}
template <class H, class V> EDFAST_SIMD_INLINE H f32_to_bf16(V v) {
  using U = UIntVec<V>;
  const U u = (U)v;
  U r = (u + 0x7FFFu + ((u >> 16) & 1u)) >> 16;
  r = (U)select(v != v, (V)(U{} + 0x7FC0u), (V)r);
  return __builtin_convertvector(r, H);
}

// bfloat16 pairs: 2n values in n 32-bit lanes (element 2i in the low half of lane i, on a
// little-endian machine) as n even and n odd elements in float, and back: a shift or a mask
// per vector instead of a widening.
template <class V, class U> EDFAST_SIMD_INLINE void bf16_pairs_to_f32(U pairs, V& even, V& odd) {
  even = (V)(pairs << 16);
  odd = (V)(pairs & 0xFFFF0000u);
}
template <class U, class V> EDFAST_SIMD_INLINE U f32_to_bf16_pairs(V even, V odd) {
  const U e = (U)even, o = (U)odd;
  U low = (e + 0x7FFFu + ((e >> 16) & 1u)) >> 16;
  U high = (o + 0x7FFFu + ((o >> 16) & 1u)) & 0xFFFF0000u;
  low = (U)select(even != even, (V)(U{} + 0x7FC0u), (V)low);
  high = (U)select(odd != odd, (V)(U{} + 0x7FC00000u), (V)high);
  return low | high;
}
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "bfloat16 pairs assume little-endian");

inline float bf16_to_f32(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
inline uint16_t f32_to_bf16(float f) {
  if (f != f) return 0x7FC0;
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return uint16_t((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

}  // namespace simd
}  // namespace edfast
