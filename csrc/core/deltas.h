// Where a negative differs from its row's y, drawn from the same streams as edfast::perturb
// (csrc/core/perturb.h), without writing the negative out: per 4-coordinate block (a CUDA lane
// takes a block) and, built on those, per row in increasing order. The fused kernels build each
// negative's energy from these changes (csrc/core/pairwise.h, csrc/core/rbm.h).
#pragma once

#include <cstdint>

#include "../launch_args.h"
#include "perturb.h"

namespace edfast {
namespace core {

// Dense Bernoulli: bit k set where the stream flips coordinate 4 block + k (word < threshold).
EDFAST_INLINE unsigned dense_flip_mask(const RowStream& stream, int64_t block, int64_t dim, uint64_t threshold) {
  const U32x4 words = stream.block(static_cast<uint32_t>(block));
  unsigned mask = 0;
  for (int k = 0; k < kCoordsPerBlock && block * kCoordsPerBlock + k < dim; ++k) {
    if (words.v[k] < threshold) mask |= 1u << k;
  }
  return mask;
}

// Transition noise: bit k set where the stream changes the class of d = 4 block + k from
// from[d], with the new class in next[k].
EDFAST_INLINE unsigned transition_change_mask(const RowStream& stream, int64_t block, const int64_t* from,
                                              int64_t dim, const FusedNoise& noise,
                                              int64_t next[kCoordsPerBlock]) {
  const U32x4 words = stream.block(static_cast<uint32_t>(block));
  unsigned mask = 0;
  for (int k = 0; k < kCoordsPerBlock && block * kCoordsPerBlock + k < dim; ++k) {
    const int64_t d = block * kCoordsPerBlock + k;
    const int64_t to = transition_draw(words.v[k], from[d], noise.cdf, noise.num_classes);
    if (to != from[d]) {
      mask |= 1u << k;
      next[k] = to;
    }
  }
  return mask;
}

// Calls at(d) for each coordinate that `stream` flips in a row of `dim` binary values: the one
// of BitFlip, the geometric gaps of sparse Bernoulli, or word d < threshold of dense Bernoulli.
// In increasing order of d. The same draws as bernoulli_block / for_each_gap_flip /
// bitflip_coordinate, so the flips are those of edfast::perturb's negative.
template <typename At>
EDFAST_INLINE void for_each_binary_flip(const RowStream& stream, int64_t dim, const FusedNoise& noise, At&& at) {
  if (noise.kind == kBitFlip) {
    at(bitflip_coordinate(stream, dim));
  } else if (noise.bernoulli.sparse) {
    for_each_gap_flip(stream, dim, noise.bernoulli.gap_scale, at);
  } else {
    const int64_t blocks = blocks_per_row(dim);
    for (int64_t block = 0; block < blocks; ++block) {
      const unsigned mask = dense_flip_mask(stream, block, dim, noise.bernoulli.threshold);
      for (int k = 0; k < kCoordsPerBlock; ++k) {
        if (mask & (1u << k)) at(block * kCoordsPerBlock + k);
      }
    }
  }
}

// Calls at(d, next) for each coordinate d whose class `stream` changes (next != from[d]), in
// increasing order of d: the inverse-CDF draws of transition_block.
template <typename At>
EDFAST_INLINE void for_each_transition_change(const RowStream& stream, const int64_t* from, int64_t dim,
                                              const FusedNoise& noise, At&& at) {
  const int64_t blocks = blocks_per_row(dim);
  for (int64_t block = 0; block < blocks; ++block) {
    int64_t next[kCoordsPerBlock] = {0, 0, 0, 0};
    const unsigned mask = transition_change_mask(stream, block, from, dim, noise, next);
    for (int k = 0; k < kCoordsPerBlock; ++k) {
      if (mask & (1u << k)) at(block * kCoordsPerBlock + k, next[k]);
    }
  }
}

// The change of one flipped coordinate in the families' state vectors, from y's value there:
// Ising spins s = 2y - 1 move by -2s = 2 - 4y; the RBM's x moves by 1 - 2y.
// Arithmetic, not a branch: y is an exact 0 or 1 (or -0), and a branch on it mispredicts half
// the time.
template <typename T>
EDFAST_INLINE T spin_flip_delta(T y) { return T(2) - T(4) * y; }
template <typename T>
EDFAST_INLINE T binary_flip_delta(T y) { return T(1) - T(2) * y; }

}  // namespace core
}  // namespace edfast
