// Shared helpers of the csrc/core C++ tests (check.h is the framework). Statistical checks use
// fixed Philox seeds (deterministic) and bounds of about five standard errors from the sample size.
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

#include "check.h"
#include "core/contrastive.h"
#include "core/exact_float.h"
#include "core/noise.h"
#include "core/perturb.h"
#include "core/philox.h"

using namespace edfast::core;

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
