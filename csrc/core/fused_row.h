// Pieces of the fused ED rows in the form a CUDA warp splits among its lanes; the CPU rows
// (csrc/cpu/fused_rows.h) walk the same maths serially. The noise's per-block changes are in
// deltas.h and an entry's energy term in pairwise.h; here:
// - the data row's changes of one 4-coordinate block (x != y), as the noise's;
// - one hidden unit's pre-activation of an RBM item (a lane takes hidden units).
#pragma once

#include <cstdint>

#include "../launch_args.h"
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
