// Turning Philox words into the draws the perturbations need. Every conversion is exact or
// uses exact_float.h, so host and device draw bit-identical noise.
#pragma once

#include <cstdint>

#include "exact_float.h"
#include "philox.h"

namespace edfast {
namespace core {

// Uniform in the open interval (0, 1): an odd multiple of 2^-24 (exact in float).
EDFAST_INLINE float uniform_open(uint32_t word) {
  return static_cast<float>(((word >> 9) << 1) | 1u) * 5.9604644775390625e-8f;
}

// Uniform in [0, 1) on a 2^-24 grid (exact in float).
EDFAST_INLINE float uniform_half_open(uint32_t word) {
  return static_cast<float>(word >> 8) * 5.9604644775390625e-8f;
}

// Uniform in [0, 1) on the 2^-32 grid (exact in double): for inverse-CDF sampling.
EDFAST_INLINE double uniform_double(uint32_t word) {
  return static_cast<double>(word) * 2.3283064365386962890625e-10;
}

// A uniform integer in [0, n) by Lemire's multiply-shift (bias below n / 2^32).
EDFAST_INLINE int64_t uniform_index(uint32_t word, int64_t n) {
  return static_cast<int64_t>((static_cast<uint64_t>(word) * static_cast<uint64_t>(n)) >> 32);
}

// The 32-bit threshold below which a word means "flip": P = threshold / 2^32.
EDFAST_INLINE uint64_t flip_threshold(double probability) {
  return static_cast<uint64_t>(probability * 4294967296.0);
}

// Box-Muller: two standard normals from two words.
EDFAST_INLINE void normal_pair(uint32_t word_radius, uint32_t word_angle, float& z0, float& z1) {
  const float radius = exact::sqrt(exact::mul(-2.0f, exact::log_positive(uniform_open(word_radius))));
  float sin_t, cos_t;
  exact::sincos_turns(uniform_half_open(word_angle), sin_t, cos_t);
  z0 = exact::mul(radius, cos_t);
  z1 = exact::mul(radius, sin_t);
}

// Four standard normals from one Philox block.
EDFAST_INLINE void normal4(const U32x4& words, float z[4]) {
  normal_pair(words.v[0], words.v[1], z[0], z[1]);
  normal_pair(words.v[2], words.v[3], z[2], z[3]);
}

}  // namespace core
}  // namespace edfast
