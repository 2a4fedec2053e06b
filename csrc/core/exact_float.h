// Float arithmetic that rounds identically on host and device.
//
// The Gaussian noise must be bit-identical on CPU and CUDA (DESIGN §3). Library log/sin/cos
// differ between glibc and CUDA in the last bit, and nvcc contracts a*b+c into an FMA where
// the host compiler may not. So the noise maths uses only these correctly rounded primitives:
// on the device the _rn intrinsics, which the compiler never fuses; on the host plain IEEE
// operations (the build passes -ffp-contract=off). No FMA: without -mfma the host's std::fma
// is a library call (5x slower normals), and a*b then +c rounds the same everywhere.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "macros.h"

namespace edfast {
namespace core {
namespace exact {

EDFAST_INLINE float add(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

EDFAST_INLINE float mul(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

EDFAST_INLINE float div(float a, float b) {
#ifdef __CUDA_ARCH__
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}

EDFAST_INLINE double add(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

EDFAST_INLINE double mul(double a, double b) {
#ifdef __CUDA_ARCH__
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

// a * b + c with two roundings, identical on host and device.
EDFAST_INLINE float mul_add(float a, float b, float c) { return add(mul(a, b), c); }
EDFAST_INLINE double mul_add(double a, double b, double c) { return add(mul(a, b), c); }

EDFAST_INLINE float sqrt(float a) {
#ifdef __CUDA_ARCH__
  return __fsqrt_rn(a);
#else
  return std::sqrt(a);
#endif
}

EDFAST_INLINE uint32_t float_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof(u));
  return u;
}

EDFAST_INLINE float bits_float(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof(f));
  return f;
}

// Natural log for normal positive floats (u in (0, 1] here), ~1 ulp. u = 2^e * m with
// m in [sqrt(1/2), sqrt(2)), log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172.
EDFAST_INLINE float log_positive(float u) {
  const uint32_t bits = float_bits(u);
  int exponent = static_cast<int>((bits >> 23) & 0xFFu) - 127;
  float mantissa = bits_float((bits & 0x007FFFFFu) | 0x3F800000u);  // in [1, 2)
  if (mantissa > 1.41421356f) {
    mantissa = mul(mantissa, 0.5f);  // exact
    exponent += 1;
  }
  const float s = div(add(mantissa, -1.0f), add(mantissa, 1.0f));
  const float s2 = mul(s, s);
  // 2 atanh(s) = 2 s (1 + s^2/3 + s^4/5 + s^6/7 + s^8/9); the next term is below 1e-13.
  float poly = mul_add(s2, 1.0f / 9.0f, 1.0f / 7.0f);
  poly = mul_add(poly, s2, 1.0f / 5.0f);
  poly = mul_add(poly, s2, 1.0f / 3.0f);
  poly = mul_add(poly, s2, 1.0f);
  const float log_mantissa = mul(mul(2.0f, s), poly);
  return mul_add(static_cast<float>(exponent), 0.693147180559945309f, log_mantissa);
}

// sin and cos of a in [0, pi/2] by Taylor series (truncation below 1e-9).
EDFAST_INLINE void sincos_quarter(float a, float& sin_a, float& cos_a) {
  const float a2 = mul(a, a);
  float s = mul_add(a2, 1.0f / 6227020800.0f, -1.0f / 39916800.0f);
  s = mul_add(s, a2, 1.0f / 362880.0f);
  s = mul_add(s, a2, -1.0f / 5040.0f);
  s = mul_add(s, a2, 1.0f / 120.0f);
  s = mul_add(s, a2, -1.0f / 6.0f);
  sin_a = mul_add(mul(s, a2), a, a);
  float c = mul_add(a2, 1.0f / 87178291200.0f, -1.0f / 479001600.0f);
  c = mul_add(c, a2, 1.0f / 3628800.0f);
  c = mul_add(c, a2, -1.0f / 40320.0f);
  c = mul_add(c, a2, 1.0f / 720.0f);
  c = mul_add(c, a2, -1.0f / 24.0f);
  c = mul_add(c, a2, 0.5f);
  cos_a = mul_add(-c, a2, 1.0f);
}

// sin and cos of 2 pi v for v in [0, 1): quadrant from v exactly, then the quarter turn.
EDFAST_INLINE void sincos_turns(float v, float& sin_t, float& cos_t) {
  const float quarters = mul(v, 4.0f);  // exact: power of two
  const int quadrant = static_cast<int>(quarters);
  const float fraction = add(quarters, -static_cast<float>(quadrant));  // exact (Sterbenz)
  float s, c;
  sincos_quarter(mul(fraction, 1.57079632679489662f), s, c);
  switch (quadrant & 3) {
    case 0: sin_t = s; cos_t = c; break;
    case 1: sin_t = c; cos_t = -s; break;
    case 2: sin_t = -s; cos_t = -c; break;
    default: sin_t = -c; cos_t = s; break;
  }
}

}  // namespace exact
}  // namespace core
}  // namespace edfast
