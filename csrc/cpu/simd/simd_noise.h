// The noise maths of csrc/core on SIMD lanes (`Lanes`: avx512.h or avx2.h), operation for
// operation: Philox4x32-10 (core/philox.h), the word -> uniform conversions (core/noise.h) and
// the exactly rounded Box-Muller (core/exact_float.h). Every operation is an IEEE add, mul,
// div or sqrt, an exact conversion or bit manipulation, applied lane by lane in the order the
// scalar code applies it (no FMA: the build passes -ffp-contract=off), so each lane's result
// is bit-identical to the scalar core, and so to CUDA. Tested against the core bit for bit
// (tests/cpp/test_cpu_simd.cpp). Included inside perturb_simd.cpp's ISA namespaces.
using I = Lanes::I;
using F = Lanes::F;
using M = Lanes::M;

// Philox4x32-10 on the lanes' counters c[0..3], in place.
inline void philox(I c[4], uint32_t key0, uint32_t key1) {
  for (int round = 0; round < 10; ++round) {
    I hi0, lo0, hi1, lo1;
    Lanes::mulhilo(c[0], core::philox_detail::kMul0, hi0, lo0);
    Lanes::mulhilo(c[2], core::philox_detail::kMul1, hi1, lo1);
    const I next0 = Lanes::bit_xor(Lanes::bit_xor(hi1, c[1]), Lanes::set1(key0));
    const I next2 = Lanes::bit_xor(Lanes::bit_xor(hi0, c[3]), Lanes::set1(key1));
    c[0] = next0;
    c[1] = lo1;
    c[2] = next2;
    c[3] = lo0;
    key0 += core::philox_detail::kWeyl0;
    key1 += core::philox_detail::kWeyl1;
  }
}

// core::uniform_open and core::uniform_half_open.
inline F uniform_open(I word) {
  const I odd = Lanes::bit_or(Lanes::shift_left<1>(Lanes::shift_right<9>(word)), Lanes::set1(1));
  return Lanes::fmul(Lanes::to_float(odd), Lanes::fset1(5.9604644775390625e-8f));
}
inline F uniform_half_open(I word) {
  return Lanes::fmul(Lanes::to_float(Lanes::shift_right<8>(word)), Lanes::fset1(5.9604644775390625e-8f));
}

inline F mul_add(F a, F b, F c) { return Lanes::fadd(Lanes::fmul(a, b), c); }
inline F mul_add(F a, float b, float c) { return mul_add(a, Lanes::fset1(b), Lanes::fset1(c)); }

// core::exact::log_positive.
inline F log_positive(F u) {
  const I bits = Lanes::as_int(u);
  I exponent = Lanes::sub(Lanes::bit_and(Lanes::shift_right<23>(bits), Lanes::set1(0xFFu)), Lanes::set1(127));
  F mantissa = Lanes::as_float(Lanes::bit_or(Lanes::bit_and(bits, Lanes::set1(0x007FFFFFu)), Lanes::set1(0x3F800000u)));
  const M big = Lanes::fgreater(mantissa, Lanes::fset1(1.41421356f));
  mantissa = Lanes::fselect(big, mantissa, Lanes::fmul(mantissa, Lanes::fset1(0.5f)));
  exponent = Lanes::select(big, exponent, Lanes::add(exponent, Lanes::set1(1)));
  const F s = Lanes::fdiv(Lanes::fadd(mantissa, Lanes::fset1(-1.0f)), Lanes::fadd(mantissa, Lanes::fset1(1.0f)));
  const F s2 = Lanes::fmul(s, s);
  F poly = mul_add(s2, 1.0f / 9.0f, 1.0f / 7.0f);
  poly = mul_add(poly, s2, Lanes::fset1(1.0f / 5.0f));
  poly = mul_add(poly, s2, Lanes::fset1(1.0f / 3.0f));
  poly = mul_add(poly, s2, Lanes::fset1(1.0f));
  const F log_mantissa = Lanes::fmul(Lanes::fmul(Lanes::fset1(2.0f), s), poly);
  return mul_add(Lanes::to_float(exponent), Lanes::fset1(0.693147180559945309f), log_mantissa);
}

// core::exact::sincos_quarter: sin and cos of a in [0, pi/2].
inline void sincos_quarter(F a, F& sin_a, F& cos_a) {
  const F a2 = Lanes::fmul(a, a);
  F s = mul_add(a2, 1.0f / 6227020800.0f, -1.0f / 39916800.0f);
  s = mul_add(s, a2, Lanes::fset1(1.0f / 362880.0f));
  s = mul_add(s, a2, Lanes::fset1(-1.0f / 5040.0f));
  s = mul_add(s, a2, Lanes::fset1(1.0f / 120.0f));
  s = mul_add(s, a2, Lanes::fset1(-1.0f / 6.0f));
  sin_a = mul_add(Lanes::fmul(s, a2), a, a);
  F c = mul_add(a2, 1.0f / 87178291200.0f, -1.0f / 479001600.0f);
  c = mul_add(c, a2, Lanes::fset1(1.0f / 3628800.0f));
  c = mul_add(c, a2, Lanes::fset1(-1.0f / 40320.0f));
  c = mul_add(c, a2, Lanes::fset1(1.0f / 720.0f));
  c = mul_add(c, a2, Lanes::fset1(-1.0f / 24.0f));
  c = mul_add(c, a2, Lanes::fset1(0.5f));
  cos_a = mul_add(Lanes::fneg(c), a2, Lanes::fset1(1.0f));
}

// core::exact::sincos_turns: sin and cos of 2 pi v, v in [0, 1).
inline void sincos_turns(F v, F& sin_t, F& cos_t) {
  const F quarters = Lanes::fmul(v, Lanes::fset1(4.0f));
  const I quadrant = Lanes::truncate(quarters);
  const F fraction = Lanes::fadd(quarters, Lanes::fneg(Lanes::to_float(quadrant)));
  F s, c;
  sincos_quarter(Lanes::fmul(fraction, Lanes::fset1(1.57079632679489662f)), s, c);
  const I q = Lanes::bit_and(quadrant, Lanes::set1(3));
  const M q1 = Lanes::equal(q, Lanes::set1(1)), q2 = Lanes::equal(q, Lanes::set1(2)), q3 = Lanes::equal(q, Lanes::set1(3));
  const F ns = Lanes::fneg(s), nc = Lanes::fneg(c);
  // quadrant 0: (s, c); 1: (c, -s); 2: (-s, -c); 3: (-c, s)
  sin_t = Lanes::fselect(q3, Lanes::fselect(q2, Lanes::fselect(q1, s, c), ns), nc);
  cos_t = Lanes::fselect(q3, Lanes::fselect(q2, Lanes::fselect(q1, c, ns), nc), s);
}

// core::normal_pair: two standard normals from two words per lane.
inline void normal_pair(I word_radius, I word_angle, F& z0, F& z1) {
  const F radius = Lanes::fsqrt(Lanes::fmul(Lanes::fset1(-2.0f), log_positive(uniform_open(word_radius))));
  F sin_t, cos_t;
  sincos_turns(uniform_half_open(word_angle), sin_t, cos_t);
  z0 = Lanes::fmul(radius, cos_t);
  z1 = Lanes::fmul(radius, sin_t);
}
