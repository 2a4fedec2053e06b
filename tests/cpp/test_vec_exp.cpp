// C++ tests of csrc/cpu/vec_exp.h and vec_reduce.h, the vector maths of the CPU contrastive
// kernels: exp and log to about an ulp over their domains and at their special values, the
// bfloat16 conversions as c10's, and the transposed reduction as the per-row tree. Built
// here for the baseline instruction set, without FMA (-ffp-contract=off); the AVX paths
// contract a * b + c, which tests/test_contrastive_vector.py compares with this one.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>

#include "check.h"

#pragma GCC diagnostic ignored "-Wpsabi"  // 64-byte vectors below, in baseline functions

#include "cpu/vec_exp.h"
#include "cpu/vec_reduce.h"

namespace {

using namespace edfast::simd;

typedef float F4 __attribute__((vector_size(16)));
typedef double D2 __attribute__((vector_size(16)));
typedef float F16 __attribute__((vector_size(64)));

// |got - exact| in units of the last place of the format T at `exact` (subnormal spacing
// below the normal range); 0 when both are the same infinity or both NaN.
template <typename T> double ulps(T got, long double exact) {
  if (std::isnan(exact) || std::isnan(got)) return std::isnan(exact) && std::isnan(got) ? 0 : 1e30;
  const T rounded = static_cast<T>(exact);
  if (std::isinf(rounded) || std::isinf(got)) return got == rounded ? 0 : 1e30;
  int exponent = 0;
  std::frexp(static_cast<double>(exact == 0 ? std::numeric_limits<T>::denorm_min() : exact), &exponent);
  const int digits = std::numeric_limits<T>::digits, min_exp = std::numeric_limits<T>::min_exponent;
  const long double ulp = std::ldexp(1.0L, std::max(exponent - digits, min_exp - digits));
  return static_cast<double>(std::fabs(static_cast<long double>(got) - exact) / ulp);
}

bool same_bits(float a, float b) { return std::memcmp(&a, &b, sizeof a) == 0; }

template <typename V, typename F> V map4(V x, F f) {
  for (int i = 0; i < int(sizeof(V) / sizeof(x[0])); ++i) x[i] = f(x[i]);
  return x;
}

template <ExpDomain kDomain> double worst_exp_f32(float lo, float hi) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> dist(lo, hi);
  double worst = 0;
  for (int trial = 0; trial < 250000; ++trial) {
    F4 x = map4(F4{}, [&](float) { return dist(rng); });
    const F4 y = exp_f32<F4, kDomain>(x);
    for (int i = 0; i < 4; ++i) worst = std::max(worst, ulps(y[i], std::exp(static_cast<long double>(x[i]))));
  }
  return worst;
}

}  // namespace

TEST_CASE(vec_exp, exp_f32_within_an_ulp) {
  const double normal = worst_exp_f32<ExpDomain::kAll>(-87.0f, 88.7f);
  const double underflow = worst_exp_f32<ExpDomain::kAll>(-104.0f, -87.0f);  // subnormal results
  const double sum_term = worst_exp_f32<ExpDomain::kSumTerm>(-87.0f, 0.0f);
  CHECK(normal <= 1.5, "%.3f ulp", normal);
  CHECK(underflow <= 1.5, "%.3f ulp", underflow);
  CHECK(sum_term <= 1.5, "%.3f ulp", sum_term);
}

TEST_CASE(vec_exp, exp_f32_special_values) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const F4 a = exp_f32(F4{-inf, inf, nan, 0.0f});
  CHECK(a[0] == 0.0f && a[1] == inf && std::isnan(a[2]) && a[3] == 1.0f);
  const F4 b = exp_f32(F4{88.8f, 1e30f, -104.0f, -1e30f});  // overflow, underflow to 0
  CHECK(b[0] == inf && b[1] == inf && b[2] == 0.0f && b[3] == 0.0f);
  const F4 c = exp_f32(F4{-103.9f, -88.0f, 88.7f, -0.0f});  // smallest subnormal, FLT_MAX range
  CHECK(c[0] == std::exp(-103.9f) && c[1] == std::exp(-88.0f) && std::isfinite(c[2]) && c[3] == 1.0f);
  // kSumTerm: x <= 0; -inf gives at most about 2^-126, which a sum >= 1 rounds away.
  const F4 d = exp_f32<F4, ExpDomain::kSumTerm>(F4{-inf, 0.0f, nan, -200.0f});
  CHECK(d[0] <= 2.0f * std::numeric_limits<float>::min() && d[1] == 1.0f && std::isnan(d[2]));
  CHECK(1.0f + d[0] == 1.0f && 1.0f + d[3] == 1.0f);
}

TEST_CASE(vec_exp, exp_f64_within_two_ulps) {
  std::mt19937_64 rng(8);
  std::uniform_real_distribution<double> dist(-745.0, 709.7);
  double worst = 0;
  for (int trial = 0; trial < 250000; ++trial) {
    const D2 x = {dist(rng), dist(rng) / 700.0};
    const D2 y = exp_f64(x);
    for (int i = 0; i < 2; ++i) worst = std::max(worst, ulps(y[i], std::exp(static_cast<long double>(x[i]))));
  }
  CHECK(worst <= 2.0, "%.3f ulp", worst);
  const double inf = std::numeric_limits<double>::infinity();
  const D2 a = exp_f64(D2{-inf, inf}), b = exp_f64(D2{std::nan(""), 709.8});
  CHECK(a[0] == 0.0 && a[1] == inf && std::isnan(b[0]) && b[1] == inf);
}

TEST_CASE(vec_exp, log_f32_within_an_ulp) {
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<float> wide(-87.0f, 88.0f), sums(1.0f, 1000.0f);
  double worst = 0;
  for (int trial = 0; trial < 250000; ++trial) {
    const F4 x = {std::exp(wide(rng)), sums(rng), 1.0f + sums(rng) * 1e-6f, std::exp(wide(rng))};
    const F4 y = log_f32(x);
    for (int i = 0; i < 4; ++i) worst = std::max(worst, ulps(y[i], std::log(static_cast<long double>(x[i]))));
  }
  CHECK(worst <= 1.0, "%.3f ulp", worst);
  CHECK(log_f32(F4{1.0f, 2.0f, 4.0f, 0.5f})[0] == 0.0f);
}

TEST_CASE(vec_exp, bfloat16_conversions_match_c10) {
  // c10::BFloat16(float): round to nearest even, NaN -> 0x7FC0.
  std::mt19937 rng(10);
  for (int trial = 0; trial < 100000; ++trial) {
    uint32_t bits[8];
    for (uint32_t& b : bits) b = rng();
    bits[0] = 0x7FC00000u;  // NaN
    bits[1] = 0x3F808000u;  // a tie, rounds to even
    bits[2] = 0x7F7FFFFFu;  // FLT_MAX rounds up to inf
    F4 even, odd;
    std::memcpy(&even, bits, 16);
    std::memcpy(&odd, bits + 4, 16);
    typedef uint32_t U4 __attribute__((vector_size(16)));
    const U4 pairs = f32_to_bf16_pairs<U4>(even, odd);
    F4 back_even, back_odd;
    bf16_pairs_to_f32(pairs, back_even, back_odd);
    for (int i = 0; i < 4; ++i) {
      CHECK(uint16_t(pairs[i]) == f32_to_bf16(even[i]) && uint16_t(pairs[i] >> 16) == f32_to_bf16(odd[i]));
      CHECK(same_bits(back_even[i], bf16_to_f32(uint16_t(pairs[i]))));
      CHECK(same_bits(back_odd[i], bf16_to_f32(uint16_t(pairs[i] >> 16))));
    }
  }
  CHECK(f32_to_bf16(std::numeric_limits<float>::quiet_NaN()) == 0x7FC0);
  CHECK(f32_to_bf16(1.0f + 1.0f / 256) == 0x3F80 && f32_to_bf16(1.0f + 3.0f / 256) == 0x3F82);
}

TEST_CASE(vec_reduce, transposed_rows_follow_the_per_row_tree) {
  // Sums of values of very different sizes depend on the order: the transposed reduction of
  // R rows must add exactly as the halving tree of each row, whatever the vector width.
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  auto add = [](auto a, auto b) { return a + b; };
  for (int trial = 0; trial < 1000; ++trial) {
    F16 rows16[4][1];
    F4 rows4[4][4];
    float want[4], got16[4], got4[4];
    for (int r = 0; r < 4; ++r) {
      for (int l = 0; l < 16; ++l) {
        const float v = dist(rng) * std::ldexp(1.0f, int(rng() % 40) - 20);
        rows16[r][0][l] = v;
        rows4[r][l / 4][l % 4] = v;
      }
      want[r] = reduce(rows16[r][0], add);
    }
    reduce_rows<4, 1>(rows16, add, got16);
    reduce_rows<4, 4>(rows4, add, got4);
    CHECK(std::memcmp(want, got16, sizeof want) == 0 && std::memcmp(want, got4, sizeof want) == 0);
  }
}
