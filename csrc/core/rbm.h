// Delta energies of the Bernoulli RBM's free energy, for the fused kernels.
//
//   U(x) = -b^T x - sum_h softplus(pre_h(x)),  pre(x) = W x + c,   W [H, V]
//
// An item (the data row, or a negative) differs from its row's y by flips: entries
// (index[a], value[a] = 1 - 2 y_index), a < count. Its pre-activations are y's plus the
// columns of W at the flips, pre = pre_y + sum_a value_a W[:, index_a] (O(count H) instead of
// O(V H)), and
//   U(x_n) - U(y) = -E_n,   E_n = sum_a value_a b_index_a + sum_h (softplus(pre_n,h) - softplus(pre_y,h)),
// so U(x) - U(x'_j) = E_j - E_x (U(y) cancels; the differences keep float32 sums small).
//
// Gradient (c_n the coefficient of item n, sum_n c_n = 0, s_n = sigmoid(pre_n)):
//   dW = -(sum_n c_n s_n) y^T - sum_n c_n s_n delta_n^T,  dc = -sum_n c_n s_n,  db = -sum_n c_n delta_n.
// The first term is a GEMM over the batch; the second adds c_n value_a s_n to column index_a.
#pragma once

#include <cmath>

#include "macros.h"

namespace edfast {
namespace core {

// log(1 + exp(z)) without overflow.
EDFAST_INLINE float softplus(float z) { return fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z))); }
EDFAST_INLINE double softplus(double z) { return fmax(z, 0.0) + log1p(exp(-fabs(z))); }

EDFAST_INLINE float sigmoid(float z) { return 1.0f / (1.0f + expf(-z)); }
EDFAST_INLINE double sigmoid(double z) { return 1.0 / (1.0 + exp(-z)); }

}  // namespace core
}  // namespace edfast
