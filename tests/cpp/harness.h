// The tiny test harness and shared helpers of the csrc/core C++ tests (no framework):
// CHECK counts passes and failures and prints each failure. Statistical checks use fixed
// Philox seeds (deterministic) and bounds of about five standard errors from the sample size.
#pragma once

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "core/contrastive.h"
#include "core/exact_float.h"
#include "core/noise.h"
#include "core/perturb.h"
#include "core/philox.h"

using namespace edfast::core;

inline int g_passed = 0;
inline int g_failed = 0;

inline void check_impl(bool ok, const char* expr, const char* file, int line, const char* fmt, ...) {
  if (ok) {
    ++g_passed;
    return;
  }
  ++g_failed;
  std::printf("  FAIL %s:%d: %s", file, line, expr);
  if (fmt && fmt[0]) {
    std::printf("  [");
    va_list args;
    va_start(args, fmt);
    std::vprintf(fmt, args);
    va_end(args);
    std::printf("]");
  }
  std::printf("\n");
}

// CHECK(cond) or CHECK(cond, "printf format", args...)
#define CHECK(cond, ...) check_impl(static_cast<bool>(cond), #cond, __FILE__, __LINE__, "" __VA_ARGS__)


inline constexpr double kZ = 5.0;  // standard errors allowed in statistical checks
inline constexpr double kPi = 3.14159265358979323846;

// Binomial count against its probability: |hits - n p| <= 5 sd (+1 for the discreteness).
inline bool binomial_ok(int64_t hits, int64_t trials, double p) {
  const double sd = std::sqrt(static_cast<double>(trials) * p * (1.0 - p));
  return std::fabs(static_cast<double>(hits) - static_cast<double>(trials) * p) <= kZ * sd + 1.0;
}

// Upper bound of a chi-square with `dof` degrees of freedom at ~5 sigma (Wilson-Hilferty).
inline double chi_square_bound(double dof) {
  const double a = 2.0 / (9.0 * dof);
  const double c = 1.0 - a + kZ * std::sqrt(a);
  return dof * c * c * c;
}

inline double chi_square(const std::vector<int64_t>& counts, const std::vector<double>& probabilities,
                  int64_t trials) {
  double stat = 0.0;
  for (size_t k = 0; k < counts.size(); ++k) {
    const double expected = probabilities[k] * static_cast<double>(trials);
    const double diff = static_cast<double>(counts[k]) - expected;
    stat += diff * diff / expected;
  }
  return stat;
}

// The Philox word a perturbation uses for coordinate d (perturb.h draw layout).
inline uint32_t word_for(const RowStream& stream, int64_t d) {
  return stream.block(static_cast<uint32_t>(d / kCoordsPerBlock)).v[d % kCoordsPerBlock];
}

// The test cases, defined in test_rng.cpp, test_perturb_blocks.cpp and test_logsumexp.cpp.
void test_philox_known_answers();
void test_row_stream_layout();
void test_log_positive();
void test_sincos_turns();
void test_normal4_moments();
void test_normal4_pinned();
void test_uniform_conversions();
void test_bernoulli_block();
void test_bitflip_coordinate();
void test_transition_draw();
void test_gaussian_block();
void test_online_logsumexp();
void test_non_finite_terms();
