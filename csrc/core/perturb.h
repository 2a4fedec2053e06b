// One step a -> b of each perturbation of DESIGN §1, for one data row and one stream.
//
// Draw layout (the RNG contract every fused kernel must follow). Word k of a stream is word
// k % 4 of its Philox block k / 4.
// - Gaussian, categorical (transition) and dense Bernoulli: coordinate d uses word d.
// - Sparse Bernoulli (epsilon <= kSparseFlipMax): word k draws the k-th gap between flipped
//   coordinates (for_each_gap_flip), so a step costs one word and one exact log per flip.
// - BitFlip: word 0.
// The dense work is split into 4-coordinate blocks so that a CUDA thread can own one block and
// a CPU loop can walk them in order: both call the same function.
#pragma once

#include <cmath>
#include <cstdint>

#include "noise.h"
#include "philox.h"

namespace edfast {
namespace core {

// Perturbation kinds as the ops encode them.
enum PerturbKind : int64_t {
  kGaussian = 0,     // real data, param = standard deviation
  kBernoulli = 1,    // {0,1} data as uint8, param = flip probability
  kBitFlip = 2,      // {0,1} data as uint8, flip one uniformly chosen coordinate
  kTransition = 3,   // {0..K-1} data as int64, each coordinate resampled from a K x K CDF table
};

constexpr int64_t kCoordsPerBlock = 4;

EDFAST_INLINE int64_t blocks_per_row(int64_t dim) {
  return (dim + kCoordsPerBlock - 1) / kCoordsPerBlock;
}

// b[d] = a[d] + scale * z_d for the coordinates of `block` (T = float or double).
template <typename T>
EDFAST_INLINE void gaussian_block(const RowStream& stream, int64_t block, const T* a, T* b,
                                  int64_t dim, T scale) {
  const U32x4 words = stream.block(static_cast<uint32_t>(block));
  const int64_t first = block * kCoordsPerBlock;
  // Box-Muller pair by pair: a partial last block (D = 2, odd D) skips the unused pair.
  for (int k = 0; k < kCoordsPerBlock && first + k < dim; k += 2) {
    float z[2];
    normal_pair(words.v[k], words.v[k + 1], z[0], z[1]);
    b[first + k] = exact::mul_add(scale, static_cast<T>(z[0]), a[first + k]);
    if (first + k + 1 < dim) b[first + k + 1] = exact::mul_add(scale, static_cast<T>(z[1]), a[first + k + 1]);
  }
}

// A {0,1} value in the bits of its dtype, U the unsigned integer of its size: flipping maps
// zero (either sign) to `one` and anything else to 0. With magnitude = all bits and one = 1
// it serves bool and integer dtypes; with magnitude = all but the sign bit and one = the bits
// of 1.0 the floating dtypes (0x3f800000 for float32, 0x3c00 for float16, 0x3f80 for bfloat16).
template <typename U>
struct BinaryFlip {
  U magnitude;
  U one;
  EDFAST_INLINE U operator()(U a) const { return (a & magnitude) == 0 ? one : U(0); }
};

// The flip of {0, 1} float and double data in their IEEE bits (as edfast::perturb flips them;
// binary_bits in ops_common.cpp gives the same for every dtype): U is the unsigned integer of
// T's size.
template <typename T>
struct FloatFlip;
template <>
struct FloatFlip<float> {
  using U = uint32_t;
  EDFAST_INLINE static BinaryFlip<U> flip() { return BinaryFlip<U>{0x7fffffffu, 0x3f800000u}; }
};
template <>
struct FloatFlip<double> {
  using U = uint64_t;
  EDFAST_INLINE static BinaryFlip<U> flip() { return BinaryFlip<U>{0x7fffffffffffffffull, 0x3ff0000000000000ull}; }
};

// Bernoulli(epsilon): at or below kSparseFlipMax a step draws the gaps between flips (one word
// and one log per flip, O(epsilon D)); above it one word per coordinate is cheaper.
constexpr double kSparseFlipMax = 1.0 / 32;

struct BernoulliNoise {
  bool sparse;
  uint64_t threshold;  // dense: flip where the word < threshold, P = threshold / 2^32
  float gap_scale;     // sparse: 1 / log(1 - epsilon) < 0, in float as both devices use it
};

// Computed once on the host for CPU and CUDA alike (a device log could differ in the last bit).
inline BernoulliNoise bernoulli_noise(double epsilon) {
  return BernoulliNoise{epsilon <= kSparseFlipMax, flip_threshold(epsilon),
                        static_cast<float>(1.0 / std::log1p(-epsilon))};
}

// Dense Bernoulli: b[d] = flip(a[d]) where word d < threshold, else a[d].
template <typename U>
EDFAST_INLINE void bernoulli_block(const RowStream& stream, int64_t block, const U* a, U* b,
                                   int64_t dim, uint64_t threshold, BinaryFlip<U> flip) {
  const U32x4 words = stream.block(static_cast<uint32_t>(block));
  const int64_t first = block * kCoordsPerBlock;
  for (int k = 0; k < kCoordsPerBlock && first + k < dim; ++k) {
    b[first + k] = words.v[k] < threshold ? flip(a[first + k]) : a[first + k];
  }
}

// Sparse Bernoulli: calls at(d) for each flipped coordinate d of the stream, in increasing
// order. Gap k = floor(log(u_k) / log(1 - epsilon)), u_k = uniform_open(word k), is the number
// of unflipped coordinates before the next flip: geometric, so each coordinate flips
// independently with probability epsilon (to the 2^-24 resolution of u).
template <typename At>
EDFAST_INLINE void for_each_gap_flip(const RowStream& stream, int64_t dim, float gap_scale, At&& at) {
  int64_t position = -1;  // the last flipped coordinate
  U32x4 words{};
  for (uint32_t k = 0;; ++k) {
    if ((k & 3u) == 0) words = stream.block(k >> 2);
    const float gap = exact::mul(exact::log_positive(uniform_open(words.v[k & 3u])), gap_scale);
    if (!(gap < static_cast<float>(dim - 1 - position))) return;  // the next flip is past the row
    position += 1 + static_cast<int64_t>(gap);
    at(position);
  }
}

// The coordinate BitFlip flips in this stream.
EDFAST_INLINE int64_t bitflip_coordinate(const RowStream& stream, int64_t dim) {
  return uniform_index(stream.block(0).v[0], dim);
}

// Inverse-CDF draw of the next state from row `state` of a K x K cumulative table (float64,
// last column 1). Linear search: K is small for the categorical data edfast targets.
EDFAST_INLINE int64_t transition_draw(uint32_t word, int64_t state, const double* cdf,
                                      int64_t num_classes) {
  const double u = uniform_double(word);
  const double* row = cdf + state * num_classes;
  int64_t next = 0;
  while (next < num_classes - 1 && u >= row[next]) ++next;
  return next;
}

EDFAST_INLINE void transition_block(const RowStream& stream, int64_t block, const int64_t* a,
                                    int64_t* b, int64_t dim, const double* cdf,
                                    int64_t num_classes) {
  const U32x4 words = stream.block(static_cast<uint32_t>(block));
  const int64_t first = block * kCoordsPerBlock;
  for (int k = 0; k < kCoordsPerBlock && first + k < dim; ++k) {
    b[first + k] = transition_draw(words.v[k], a[first + k], cdf, num_classes);
  }
}

}  // namespace core
}  // namespace edfast
