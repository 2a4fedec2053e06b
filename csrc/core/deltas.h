// Where a negative differs from its row's y, drawn from the same streams as edfast::perturb
// (csrc/core/perturb.h), without writing the negative out. The fused kernels build each
// negative's energy from these changes (csrc/core/pairwise.h, csrc/core/rbm.h).
#pragma once

#include <cstdint>

#include "../launch_args.h"
#include "perturb.h"

namespace edfast {
namespace core {

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
      const U32x4 words = stream.block(static_cast<uint32_t>(block));
      for (int k = 0; k < kCoordsPerBlock && block * kCoordsPerBlock + k < dim; ++k) {
        if (words.v[k] < noise.bernoulli.threshold) at(block * kCoordsPerBlock + k);
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
    const U32x4 words = stream.block(static_cast<uint32_t>(block));
    for (int k = 0; k < kCoordsPerBlock && block * kCoordsPerBlock + k < dim; ++k) {
      const int64_t d = block * kCoordsPerBlock + k;
      const int64_t next = transition_draw(words.v[k], from[d], noise.cdf, noise.num_classes);
      if (next != from[d]) at(d, next);
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
