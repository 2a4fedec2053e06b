// Pieces of the fused ED rows in the form a CUDA warp splits among its lanes; the CPU rows
// (csrc/cpu/fused_rows.h) walk the same maths serially through deltas.h and pairwise.h.
// - The changes of one 4-coordinate block (a lane takes a block, a warp scan orders them):
//   per block, exactly the changes for_each_binary_flip's dense branch,
//   for_each_transition_change and the data row's x != y compare find, in the same order.
// - One entry's term of an item's delta energy (a lane takes entries).
#pragma once

#include <cstdint>

#include "../launch_args.h"
#include "deltas.h"
#include "pairwise.h"
#include "perturb.h"

namespace edfast {
namespace core {

// The data row's item: bit k set where x and y differ at d = 4 block + k, with x's value
// (the new class, for categorical data) in next[k].
template <typename V>
EDFAST_INLINE unsigned changed_mask(const V* x, const V* y, int64_t block, int64_t dim,
                                    int64_t next[kCoordsPerBlock]) {
  unsigned mask = 0;
  for (int k = 0; k < kCoordsPerBlock && block * kCoordsPerBlock + k < dim; ++k) {
    const int64_t d = block * kCoordsPerBlock + k;
    if (x[d] != y[d]) {
      mask |= 1u << k;
      next[k] = static_cast<int64_t>(x[d]);
    }
  }
  return mask;
}

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

// Entry a's term of pairwise_item_energy (the same operations: summed over a in order they
// give its result bit for bit), so that lanes can split an item's entries.
template <typename T, typename A>
EDFAST_INLINE A pairwise_item_entry_energy(const T* coupling, int64_t state, const T* field, const T* bias,
                                           const int32_t* index, const T* value, int64_t count, int64_t a, A alpha) {
  const T* row = coupling + static_cast<int64_t>(index[a]) * state;
  const A pairs = gathered_dot<T, A>(row, index, value, a + 1, count);  // sum over c > a
  return pairwise_entry_energy(static_cast<A>(value[a]), pairs, static_cast<A>(field[index[a]]),
                               bias ? static_cast<A>(bias[index[a]]) : A(0), static_cast<A>(row[index[a]]), alpha);
}

// Hidden unit h's pre-activation of an RBM item: pre_y[h] plus the columns of W at its flips
// (entry h of cpu::rbm_item_pre, the same order of additions).
template <typename T>
EDFAST_INLINE T rbm_item_pre_at(const T* pre_y, const T* weight_t, int64_t hidden, int64_t h, const int32_t* index,
                                const T* value, int64_t count) {
  T pre = pre_y[h];
  for (int64_t a = 0; a < count; ++a) pre += value[a] * weight_t[static_cast<int64_t>(index[a]) * hidden + h];
  return pre;
}

}  // namespace core
}  // namespace edfast
