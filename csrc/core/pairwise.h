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

// E of one item (see above), accumulated in A. `bias` may be null (b = 0). The quadratic
// sum runs over ordered pairs a <= c with the off-diagonal ones doubled: K is symmetric.
template <typename T, typename A>
EDFAST_INLINE A pairwise_item_energy(const T* coupling, int64_t state, const T* field, const T* bias,
                                     const int32_t* index, const T* value, int64_t count, A alpha) {
  A energy = A(0);
  for (int64_t a = 0; a < count; ++a) {
    const T* row = coupling + static_cast<int64_t>(index[a]) * state;
    const A va = static_cast<A>(value[a]);
    A pairs = A(0);  // sum over c > a of value_c K[index_a, index_c]
    for (int64_t c = a + 1; c < count; ++c) pairs += static_cast<A>(value[c]) * static_cast<A>(row[index[c]]);
    const A linear = A(2) * alpha * static_cast<A>(field[index[a]]) + (bias ? static_cast<A>(bias[index[a]]) : A(0));
    energy += va * (linear + alpha * (va * static_cast<A>(row[index[a]]) + A(2) * pairs));
  }
  return energy;
}

}  // namespace core
}  // namespace edfast
