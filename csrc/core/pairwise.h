// Delta energies of the pairwise families (Ising, Potts), for the fused kernels.
//
// Both energies are quadratic in a state vector v of length N:
//   U(v) = -(alpha v^T K v + b^T v),  K symmetric [N, N]
// Ising: v = s = 2x - 1 (N = D), alpha = 1. Potts: v = one-hot(x) (N = D*K), alpha = 1/2 (the
// module's sum over i < j is half the sum over ordered pairs).
//
// An item (the data row x, or a negative x'_j) differs from its row's y by a sparse change
// delta: entries (index[a], value[a]), a < count. With h = K v_y (one GEMM over the batch),
//   U(v_y + delta) - U(v_y) = -E,   E = sum_a value_a (2 alpha h_a + b_a)
//                                     + alpha sum_{a,c} value_a value_c K[index_a, index_c],
// so an item costs O(count^2) instead of O(N^2), and U(y) cancels from every contrast term:
//   U(x) - U(x'_j) = E_j - E_x.
//
// Gradient (DESIGN §1; c_n the coefficient of item n, sum_n c_n = 0):
//   sum_n c_n dU(v_n)/dK = -alpha (v_y r^T + r v_y^T + sum_n c_n delta_n delta_n^T),
//   sum_n c_n dU(v_n)/db = -r,   r = sum_n c_n delta_n.
// The first two terms are a GEMM over the batch; the last is the sparse part the kernels sum.
#pragma once

#include <cstdint>

#include "macros.h"

namespace edfast {
namespace core {

// sum over c in [begin, end) of value[c] * row[index[c]], in four interleaved partial sums:
// the loop is then bound by its loads, not by the add latency of a single accumulator.
template <typename T, typename A>
EDFAST_INLINE A gathered_dot(const T* row, const int32_t* index, const T* value, int64_t begin, int64_t end) {
  A s0 = A(0), s1 = A(0), s2 = A(0), s3 = A(0);
  int64_t c = begin;
  for (; c + 4 <= end; c += 4) {
    s0 += static_cast<A>(value[c]) * static_cast<A>(row[index[c]]);
    s1 += static_cast<A>(value[c + 1]) * static_cast<A>(row[index[c + 1]]);
    s2 += static_cast<A>(value[c + 2]) * static_cast<A>(row[index[c + 2]]);
    s3 += static_cast<A>(value[c + 3]) * static_cast<A>(row[index[c + 3]]);
  }
  for (; c < end; ++c) s0 += static_cast<A>(value[c]) * static_cast<A>(row[index[c]]);
  return (s0 + s1) + (s2 + s3);
}

// Entry a's term of E: value_a (2 alpha h_a + b_a + alpha (value_a K_aa + 2 pairs)), with
// pairs = sum over the item's later entries c > a of value_c K[index_a, index_c].
template <typename A>
EDFAST_INLINE A pairwise_entry_energy(A value, A pairs, A field, A bias, A diagonal, A alpha) {
  const A linear = A(2) * alpha * field + bias;
  return value * (linear + alpha * (value * diagonal + A(2) * pairs));
}

// Entry a's term of an item's E (below), so that CUDA lanes can split an item's entries.
template <typename T, typename A>
EDFAST_INLINE A pairwise_item_entry_energy(const T* coupling, int64_t state, const T* field, const T* bias,
                                           const int32_t* index, const T* value, int64_t count, int64_t a, A alpha) {
  const T* row = coupling + static_cast<int64_t>(index[a]) * state;
  const A pairs = gathered_dot<T, A>(row, index, value, a + 1, count);  // sum over c > a
  return pairwise_entry_energy(static_cast<A>(value[a]), pairs, static_cast<A>(field[index[a]]),
                               bias ? static_cast<A>(bias[index[a]]) : A(0), static_cast<A>(row[index[a]]), alpha);
}

// E of one item (see above), accumulated in A: its entries' terms in order. `bias` may be
// null (b = 0). The quadratic sum runs over ordered pairs a <= c with the off-diagonal ones
// doubled: K is symmetric.
template <typename T, typename A>
EDFAST_INLINE A pairwise_item_energy(const T* coupling, int64_t state, const T* field, const T* bias,
                                     const int32_t* index, const T* value, int64_t count, A alpha) {
  A energy = A(0);
  for (int64_t a = 0; a < count; ++a) {
    energy += pairwise_item_entry_energy<T, A>(coupling, state, field, bias, index, value, count, a, alpha);
  }
  return energy;
}

}  // namespace core
}  // namespace edfast
