// The AVX2 lanes of the SIMD noise kernels (simd_noise.h): 8 x 32-bit. Included by
// perturb_simd.cpp inside a `#pragma GCC target("avx2")` region and a namespace of its own; no
// include guard on purpose. The same interface as avx512.h; a mask is a vector of all-ones or
// all-zeros lanes.
struct Lanes {
  static constexpr int kCount = 8;
  using I = __m256i;
  using F = __m256;
  using M = __m256i;

  static I set1(uint32_t v) { return _mm256_set1_epi32(static_cast<int>(v)); }
  static I load(const uint32_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
  static void store(uint32_t* p, I v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), v); }
  static I add(I a, I b) { return _mm256_add_epi32(a, b); }
  static I sub(I a, I b) { return _mm256_sub_epi32(a, b); }
  static I bit_and(I a, I b) { return _mm256_and_si256(a, b); }
  static I bit_or(I a, I b) { return _mm256_or_si256(a, b); }
  static I bit_xor(I a, I b) { return _mm256_xor_si256(a, b); }
  template <int N> static I shift_right(I a) { return _mm256_srli_epi32(a, N); }
  template <int N> static I shift_left(I a) { return _mm256_slli_epi32(a, N); }
  static void mulhilo(I a, uint32_t m, I& hi, I& lo) {
    const I mul = set1(m);
    const I even = _mm256_mul_epu32(a, mul), odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), mul);
    lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
    hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
  }
  // Unsigned comparisons through the signed one, with the sign bits flipped.
  static M greater_u32(I a, I b) {
    const I sign = set1(0x80000000u);
    return _mm256_cmpgt_epi32(bit_xor(a, sign), bit_xor(b, sign));
  }
  static M less_u32(I a, I b) { return greater_u32(b, a); }
  static M equal(I a, I b) { return _mm256_cmpeq_epi32(a, b); }
  static I select(M m, I a, I b) { return _mm256_blendv_epi8(a, b, m); }
  static I add_one_where(M m, I a) { return _mm256_sub_epi32(a, m); }  // m is -1 where set
  static I lookup(I table, I index) { return _mm256_permutevar8x32_epi32(table, index); }
  static uint32_t mask_bits(M m) { return static_cast<uint32_t>(_mm256_movemask_ps(_mm256_castsi256_ps(m))); }
  static I gather(const uint32_t* base, I index) {
    return _mm256_i32gather_epi32(reinterpret_cast<const int*>(base), index, 4);
  }

  static F fset1(float v) { return _mm256_set1_ps(v); }
  static F fadd(F a, F b) { return _mm256_add_ps(a, b); }
  static F fmul(F a, F b) { return _mm256_mul_ps(a, b); }
  static F fdiv(F a, F b) { return _mm256_div_ps(a, b); }
  static F fsqrt(F a) { return _mm256_sqrt_ps(a); }
  static F fneg(F a) { return _mm256_xor_ps(a, _mm256_castsi256_ps(set1(0x80000000u))); }
  static F to_float(I a) { return _mm256_cvtepi32_ps(a); }
  static I truncate(F a) { return _mm256_cvttps_epi32(a); }
  static F as_float(I a) { return _mm256_castsi256_ps(a); }
  static I as_int(F a) { return _mm256_castps_si256(a); }
  static M fgreater(F a, F b) { return _mm256_castps_si256(_mm256_cmp_ps(a, b, _CMP_GT_OQ)); }
  static F fselect(M m, F a, F b) { return _mm256_blendv_ps(a, b, _mm256_castsi256_ps(m)); }

  static I lane_index() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }

  // out[2 * lane + k] = v[k][lane] for k < 2.
  static void interleave2(const I v[2], uint32_t* out) {
    const I lo = _mm256_unpacklo_epi32(v[0], v[1]), hi = _mm256_unpackhi_epi32(v[0], v[1]);
    store(out, _mm256_permute2x128_si256(lo, hi, 0x20));
    store(out + 8, _mm256_permute2x128_si256(lo, hi, 0x31));
  }

  // out[4 * lane + k] = v[k][lane]: the lanes' 4 values each, lane after lane.
  static void interleave4(const I v[4], uint32_t* out) {
    const I t0 = _mm256_unpacklo_epi32(v[0], v[1]), t1 = _mm256_unpackhi_epi32(v[0], v[1]);
    const I t2 = _mm256_unpacklo_epi32(v[2], v[3]), t3 = _mm256_unpackhi_epi32(v[2], v[3]);
    // u_j holds, in each 128-bit half h, the 4 values of lane 4h + j.
    const I u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
    const I u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
    store(out, _mm256_permute2x128_si256(u0, u1, 0x20));
    store(out + 8, _mm256_permute2x128_si256(u2, u3, 0x20));
    store(out + 16, _mm256_permute2x128_si256(u0, u1, 0x31));
    store(out + 24, _mm256_permute2x128_si256(u2, u3, 0x31));
  }
};
