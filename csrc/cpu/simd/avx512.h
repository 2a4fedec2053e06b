// The AVX-512 lanes of the SIMD noise kernels (simd_noise.h): 16 x 32-bit. Included by
// perturb_simd.cpp inside a `#pragma GCC target("avx512f,...")` region and a namespace of its
// own; no include guard on purpose. The same interface as avx2.h.
struct Lanes {
  static constexpr int kCount = 16;
  using I = __m512i;     // 16 x uint32 / int32
  using F = __m512;      // 16 x float
  using M = __mmask16;   // a lane mask

  static I set1(uint32_t v) { return _mm512_set1_epi32(static_cast<int>(v)); }
  static I load(const uint32_t* p) { return _mm512_loadu_si512(p); }
  static void store(uint32_t* p, I v) { _mm512_storeu_si512(p, v); }
  static I add(I a, I b) { return _mm512_add_epi32(a, b); }
  static I sub(I a, I b) { return _mm512_sub_epi32(a, b); }
  static I bit_and(I a, I b) { return _mm512_and_si512(a, b); }
  static I bit_or(I a, I b) { return _mm512_or_si512(a, b); }
  static I bit_xor(I a, I b) { return _mm512_xor_si512(a, b); }
  template <int N> static I shift_right(I a) { return _mm512_srli_epi32(a, N); }
  template <int N> static I shift_left(I a) { return _mm512_slli_epi32(a, N); }
  // The high and low halves of a * m for every lane (Philox's mulhilo).
  static void mulhilo(I a, uint32_t m, I& hi, I& lo) {
    const I mul = set1(m);
    const I even = _mm512_mul_epu32(a, mul), odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), mul);
    lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
    hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
  }
  static M greater_u32(I a, I b) { return _mm512_cmpgt_epu32_mask(a, b); }
  static M less_u32(I a, I b) { return _mm512_cmplt_epu32_mask(a, b); }
  static M equal(I a, I b) { return _mm512_cmpeq_epi32_mask(a, b); }
  static I select(M m, I a, I b) { return _mm512_mask_blend_epi32(m, a, b); }  // m ? b : a
  static I add_one_where(M m, I a) { return _mm512_mask_add_epi32(a, m, a, set1(1)); }
  // table[index] per lane, for tables of at most kCount entries.
  static I lookup(I table, I index) { return _mm512_permutexvar_epi32(index, table); }
  static uint32_t mask_bits(M m) { return m; }
  static I gather(const uint32_t* base, I index) { return _mm512_i32gather_epi32(index, base, 4); }

  static F fset1(float v) { return _mm512_set1_ps(v); }
  static F fadd(F a, F b) { return _mm512_add_ps(a, b); }
  static F fmul(F a, F b) { return _mm512_mul_ps(a, b); }
  static F fdiv(F a, F b) { return _mm512_div_ps(a, b); }
  static F fsqrt(F a) { return _mm512_sqrt_ps(a); }
  static F fneg(F a) { return _mm512_castsi512_ps(_mm512_xor_si512(_mm512_castps_si512(a), set1(0x80000000u))); }
  static F to_float(I a) { return _mm512_cvtepi32_ps(a); }       // signed, exact below 2^24
  static I truncate(F a) { return _mm512_cvttps_epi32(a); }     // toward zero, as static_cast<int>
  static F as_float(I a) { return _mm512_castsi512_ps(a); }
  static I as_int(F a) { return _mm512_castps_si512(a); }
  static M fgreater(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static F fselect(M m, F a, F b) { return _mm512_mask_blend_ps(m, a, b); }  // m ? b : a

  static I lane_index() { return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15); }

  // out[2 * lane + k] = v[k][lane] for k < 2.
  static void interleave2(const I v[2], uint32_t* out) {
    const I first = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const I second = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    store(out, _mm512_permutex2var_epi32(v[0], first, v[1]));
    store(out + 16, _mm512_permutex2var_epi32(v[0], second, v[1]));
  }

  // out[4 * lane + k] = v[k][lane]: the lanes' 4 values each, lane after lane.
  static void interleave4(const I v[4], uint32_t* out) {
    const I t0 = _mm512_unpacklo_epi32(v[0], v[1]), t1 = _mm512_unpackhi_epi32(v[0], v[1]);
    const I t2 = _mm512_unpacklo_epi32(v[2], v[3]), t3 = _mm512_unpackhi_epi32(v[2], v[3]);
    // u_j holds, in each 128-bit segment g, the 4 values of lane 4g + j.
    const I u0 = _mm512_unpacklo_epi64(t0, t2), u1 = _mm512_unpackhi_epi64(t0, t2);
    const I u2 = _mm512_unpacklo_epi64(t1, t3), u3 = _mm512_unpackhi_epi64(t1, t3);
    const I a = _mm512_shuffle_i32x4(u0, u1, 0x44), b = _mm512_shuffle_i32x4(u2, u3, 0x44);
    const I c = _mm512_shuffle_i32x4(u0, u1, 0xEE), d = _mm512_shuffle_i32x4(u2, u3, 0xEE);
    store(out, _mm512_shuffle_i32x4(a, b, 0x88));
    store(out + 16, _mm512_shuffle_i32x4(a, b, 0xDD));
    store(out + 32, _mm512_shuffle_i32x4(c, d, 0x88));
    store(out + 48, _mm512_shuffle_i32x4(c, d, 0xDD));
  }
};
