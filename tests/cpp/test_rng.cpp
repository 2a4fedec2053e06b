// C++ tests of csrc/core randomness: Philox known answers, the row-stream layout, the exactly
// rounded maths of the normals, and the word -> draw conversions.
#include "harness.h"

// ------------------------------------------------------------------------ 1. Philox KATs

void check_kat(uint32_t k0, uint32_t k1, U32x4 counter, U32x4 expected) {
  const U32x4 got = philox4x32_10(counter, k0, k1);
  for (int i = 0; i < 4; ++i) {
    CHECK(got.v[i] == expected.v[i], "key {%08x,%08x} word %d: got %08x want %08x", k0, k1, i,
          got.v[i], expected.v[i]);
  }
}

TEST_CASE(core, philox_known_answers) {
  // Random123 kat_vectors, philox4x32 R=10.
  check_kat(0u, 0u, U32x4{{0u, 0u, 0u, 0u}},
            U32x4{{0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}});
  check_kat(0xa4093822u, 0x299f31d0u, U32x4{{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u}},
            U32x4{{0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}});
  check_kat(0xffffffffu, 0xffffffffu,
            U32x4{{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu}},
            U32x4{{0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}});
}

// ------------------------------------------------------------------------ 2. RowStream

TEST_CASE(core, row_stream_layout) {
  const uint64_t seed = 0x0123456789abcdefull;
  const uint64_t row = 0xfedcba9876543210ull;
  const uint32_t stream_id = 7u, block = 5u;
  const RowStream stream(seed, row, stream_id);
  CHECK(stream.key0 == 0x89abcdefu && stream.key1 == 0x01234567u, "seed split lo/hi");
  CHECK(stream.row_lo == 0x76543210u && stream.row_hi == 0xfedcba98u, "row split lo/hi");
  const U32x4 got = stream.block(block);
  const U32x4 want =
      philox4x32_10(U32x4{{block, stream_id, 0x76543210u, 0xfedcba98u}}, 0x89abcdefu, 0x01234567u);
  for (int i = 0; i < 4; ++i) CHECK(got.v[i] == want.v[i], "word %d", i);

  // Seed 0, row 0, stream 0, block 0 is the all-zero KAT.
  const U32x4 zero = RowStream(0, 0, kStreamY).block(0);
  CHECK(zero.v[0] == 0x6627e8d5u && zero.v[3] == 0x9b00dbd8u);

  // Stream ids: y is 0, negative j is j + 1.
  CHECK(kStreamY == 0u);
  CHECK(negative_stream(0) == 1u && negative_stream(31) == 32u);

  // Every field of the counter and key reaches the output.
  const U32x4 base = RowStream(seed, row, stream_id).block(block);
  const U32x4 variants[] = {
      RowStream(seed ^ 1u, row, stream_id).block(block),
      RowStream(seed ^ (1ull << 32), row, stream_id).block(block),
      RowStream(seed, row ^ 1u, stream_id).block(block),
      RowStream(seed, row ^ (1ull << 32), stream_id).block(block),
      RowStream(seed, row, stream_id + 1).block(block),
      RowStream(seed, row, stream_id).block(block + 1),
  };
  for (const U32x4& other : variants) {
    CHECK(std::memcmp(&base, &other, sizeof(U32x4)) != 0, "a counter/key field did not change the draw");
  }
}

// ------------------------------------------------------------------------ 3. exact maths

TEST_CASE(core, log_positive) {
  // Every 13th float in [2^-24, 1] (the range uniform_open produces), plus every float in the
  // last 2^16 below 1 and around the mantissa split at sqrt(1/2).
  const uint32_t low = 0x33800000u;  // 2^-24
  const uint32_t one = 0x3f800000u;  // 1.0
  double worst = 0.0;
  float worst_u = 0.0f;
  int64_t tested = 0;
  auto test_one = [&](uint32_t bits) {
    const float u = exact::bits_float(bits);
    const double want = std::log(static_cast<double>(u));
    const double got = exact::log_positive(u);
    ++tested;
    if (u == 1.0f) {
      CHECK(got == 0.0, "log_positive(1) = %.9g", got);
      return;
    }
    const double rel = std::fabs(got - want) / std::fabs(want);
    if (!(rel <= worst)) {
      worst = rel;
      worst_u = u;
    }
  };
  for (uint32_t bits = low; bits <= one; bits += 13u) test_one(bits);
  for (uint32_t bits = one - (1u << 16); bits <= one; ++bits) test_one(bits);
  const uint32_t split = exact::float_bits(0.70710678f);
  for (uint32_t bits = split - 4096u; bits <= split + 4096u; ++bits) test_one(bits);
  test_one(low);
  test_one(one);
  std::printf("  log_positive: %" PRId64 " values, worst relative error %.3g at u=%.9g\n", tested,
              worst, static_cast<double>(worst_u));
  CHECK(worst < 4e-7, "worst relative error %.3g at u=%.9g", worst, static_cast<double>(worst_u));
}

TEST_CASE(core, sincos_turns) {
  // Every v = k 2^-24 in [0, 1): the grid uniform_half_open produces.
  double worst_sin = 0.0, worst_cos = 0.0;
  float worst_v = 0.0f;
  for (uint32_t k = 0; k < (1u << 24); ++k) {
    const float v = static_cast<float>(k) * 5.9604644775390625e-8f;
    float s, c;
    exact::sincos_turns(v, s, c);
    const double angle = 2.0 * kPi * static_cast<double>(v);
    const double es = std::fabs(static_cast<double>(s) - std::sin(angle));
    const double ec = std::fabs(static_cast<double>(c) - std::cos(angle));
    if (!(es <= worst_sin)) { worst_sin = es; worst_v = v; }
    if (!(ec <= worst_cos)) { worst_cos = ec; worst_v = v; }
  }
  std::printf("  sincos_turns: 2^24 values, worst abs error sin %.3g cos %.3g\n", worst_sin, worst_cos);
  CHECK(worst_sin < 3e-7, "sin worst %.3g (v=%.9g)", worst_sin, static_cast<double>(worst_v));
  CHECK(worst_cos < 3e-7, "cos worst %.3g (v=%.9g)", worst_cos, static_cast<double>(worst_v));
  // Exact at the quadrant boundaries.
  float s, c;
  exact::sincos_turns(0.0f, s, c);
  CHECK(s == 0.0f && c == 1.0f);
  exact::sincos_turns(0.25f, s, c);
  CHECK(s == 1.0f && c == 0.0f);
  exact::sincos_turns(0.5f, s, c);
  CHECK(s == 0.0f && c == -1.0f);
  exact::sincos_turns(0.75f, s, c);
  CHECK(s == -1.0f && c == 0.0f);
}

TEST_CASE(core, normal4_moments) {
  // n = 1e6 normals from 250k Philox blocks spread over rows, streams and blocks.
  const int64_t blocks = 250000;
  const int64_t n = 4 * blocks;
  double s1 = 0, s2 = 0, s4 = 0, cross = 0, max_abs = 0;
  int64_t negative = 0, within_one = 0, nonfinite = 0;
  for (int64_t i = 0; i < blocks; ++i) {
    const RowStream stream(0x5eedull, static_cast<uint64_t>(i / 50), static_cast<uint32_t>(i % 5));
    float z[4];
    normal4(stream.block(static_cast<uint32_t>((i / 5) % 10)), z);
    for (int k = 0; k < 4; ++k) {
      const double x = z[k];
      if (!std::isfinite(x)) ++nonfinite;
      s1 += x;
      s2 += x * x;
      s4 += x * x * x * x;
      max_abs = std::max(max_abs, std::fabs(x));
      negative += x < 0;
      within_one += std::fabs(x) < 1.0;
    }
    cross += static_cast<double>(z[0]) * z[1] + static_cast<double>(z[2]) * z[3];
  }
  const double dn = static_cast<double>(n);
  const double mean = s1 / dn, second = s2 / dn, fourth = s4 / dn, corr = cross / (dn / 2);
  std::printf("  normal4: n=%" PRId64 " mean %.5f E[z^2] %.5f E[z^4] %.4f E[z0 z1] %.5f max|z| %.3f\n",
              n, mean, second, fourth, corr, max_abs);
  CHECK(nonfinite == 0, "%" PRId64 " non-finite draws", nonfinite);
  CHECK(std::fabs(mean) <= kZ / std::sqrt(dn), "mean %.6f", mean);
  // Moments about the known mean 0: Var(z^2) = 2, Var(z^4) = E z^8 - 9 = 96, Var(z0 z1) = 1.
  CHECK(std::fabs(second - 1.0) <= kZ * std::sqrt(2.0 / dn), "E[z^2] %.6f", second);
  CHECK(std::fabs(fourth - 3.0) <= kZ * std::sqrt(96.0 / dn), "E[z^4] %.5f", fourth);
  CHECK(std::fabs(corr) <= kZ / std::sqrt(dn / 2), "E[z0 z1] %.6f", corr);
  CHECK(binomial_ok(negative, n, 0.5), "P(z<0): %" PRId64 "/%" PRId64, negative, n);
  CHECK(binomial_ok(within_one, n, std::erf(1.0 / std::sqrt(2.0))), "P(|z|<1): %" PRId64, within_one);
  // Box-Muller from u >= 2^-24 bounds |z| by sqrt(-2 log 2^-24) = 5.77.
  CHECK(max_abs <= 5.78, "max |z| %.4f", max_abs);
}

// Pinned bits of the Gaussian noise: normal4 of blocks 0..2 of (seed 12345, row 7, stream y).
// The same bits are what `edfast.perturb(torch.zeros(1, 12), edfast.Gaussian(1.0), m,
// seed=12345, row_offset=7)[0]` returns (checked on CPU when this test was written), and CUDA
// must return them too (DESIGN §3). A change here changes every Gaussian draw edfast makes.
TEST_CASE(core, normal4_pinned) {
  const uint32_t expected[12] = {0xbed7c455u, 0xbe2bd0c8u, 0xbf6a7271u, 0x3f7b1461u,
                                 0xbed195ffu, 0xbf5dd9bau, 0x3db5e23du, 0x3eb48723u,
                                 0xbf4905f8u, 0x40012ae8u, 0x3e187880u, 0xbed3ad4bu};
  const RowStream stream(12345u, 7u, kStreamY);
  for (uint32_t blk = 0; blk < 3; ++blk) {
    float z[4];
    normal4(stream.block(blk), z);
    for (int k = 0; k < 4; ++k) {
      const uint32_t got = exact::float_bits(z[k]);
      CHECK(got == expected[blk * 4 + k], "z[%u]: got %08x want %08x", blk * 4 + k, got,
            expected[blk * 4 + k]);
    }
  }
}

// ------------------------------------------------------------------------ 4. word -> draw

TEST_CASE(core, uniform_conversions) {
  const float u0 = uniform_open(0u), u1 = uniform_open(0xffffffffu);
  CHECK(u0 > 0.0f && u0 < 1.0f && u0 == std::ldexp(1.0f, -24), "uniform_open(0) = %.9g", static_cast<double>(u0));
  CHECK(u1 > 0.0f && u1 < 1.0f && u1 == 1.0f - std::ldexp(1.0f, -24), "uniform_open(~0) = %.9g", static_cast<double>(u1));
  CHECK(std::isfinite(exact::log_positive(u0)) && exact::log_positive(u1) < 0.0f);

  const float h0 = uniform_half_open(0u), h1 = uniform_half_open(0xffffffffu);
  CHECK(h0 == 0.0f);
  CHECK(h1 < 1.0f && h1 == 1.0f - std::ldexp(1.0f, -24), "uniform_half_open(~0) = %.9g", static_cast<double>(h1));
  CHECK(uniform_double(0u) == 0.0 && uniform_double(0xffffffffu) < 1.0);

  // Sweep of words: all in range.
  bool open_ok = true, half_ok = true;
  for (uint64_t w = 0; w <= 0xffffffffull; w += 65537ull) {
    const float a = uniform_open(static_cast<uint32_t>(w));
    const float b = uniform_half_open(static_cast<uint32_t>(w));
    open_ok = open_ok && a > 0.0f && a < 1.0f;
    half_ok = half_ok && b >= 0.0f && b < 1.0f;
  }
  CHECK(open_ok, "uniform_open left (0, 1)");
  CHECK(half_ok, "uniform_half_open left [0, 1)");

  const int64_t sizes[] = {1, 2, 3, 7, 100, 784, 65537, 2147483647ll, 4294967296ll};
  for (int64_t n : sizes) {
    bool in_range = true;
    for (uint64_t w = 0; w <= 0xffffffffull; w += 16777259ull) {
      const int64_t i = uniform_index(static_cast<uint32_t>(w), n);
      in_range = in_range && i >= 0 && i < n;
    }
    CHECK(in_range, "uniform_index out of [0, %" PRId64 ")", n);
    CHECK(uniform_index(0u, n) == 0 && uniform_index(0xffffffffu, n) == n - 1, "ends for n=%" PRId64, n);
  }

  CHECK(flip_threshold(0.5) == (1ull << 31), "flip_threshold(0.5) = %" PRIu64, flip_threshold(0.5));
  CHECK(flip_threshold(0.0) == 0u);
  CHECK(flip_threshold(1.0) == (1ull << 32), "probability 1 must flip every word");
}
