// One step a -> b of each perturbation of DESIGN §1, for one data row and one stream.
//
// Draw layout (the RNG contract every fused kernel must follow): coordinate d of a row's
// event uses word d % 4 of Philox block d / 4 of the stream; BitFlip uses word 0 of block 0.
// The work is split into 4-coordinate blocks so that a CUDA thread can own one block and a
// CPU loop can walk them in order: both call the same function.
#pragma once

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

// b[d] = a[d] xor [word_d < threshold] on {0,1} bytes.
EDFAST_INLINE void bernoulli_block(const RowStream& stream, int64_t block, const uint8_t* a,
                                   uint8_t* b, int64_t dim, uint64_t threshold) {
  const U32x4 words = stream.block(static_cast<uint32_t>(block));
  const int64_t first = block * kCoordsPerBlock;
  for (int k = 0; k < kCoordsPerBlock && first + k < dim; ++k) {
    b[first + k] = a[first + k] ^ static_cast<uint8_t>(words.v[k] < threshold);
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
