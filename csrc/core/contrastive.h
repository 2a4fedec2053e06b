// The ED contrast of one data row (DESIGN §1):
//   L_i = log(w + sum_j exp(a_ij)),  a_ij = e_pos_i - e_neg_ij,   v_i = L_i - log M
//   dv_i/da_ij = p_ij = exp(a_ij - L_i),  dv_i/de_pos_i = sum_j p_ij,  dv_i/de_neg_ij = -p_ij
// kept as an online (max-shifted) logsumexp so that one pass over the M negatives suffices
// and energies of magnitude 1e4 stay finite.
#pragma once

#include <cmath>
#include <limits>

#include "macros.h"

namespace edfast {
namespace core {

EDFAST_INLINE float acc_exp(float x) { return expf(x); }
EDFAST_INLINE double acc_exp(double x) { return exp(x); }
EDFAST_INLINE float acc_log(float x) { return logf(x); }
EDFAST_INLINE double acc_log(double x) { return log(x); }

// -inf of acc_t from the INFINITY macro: std::numeric_limits<>::infinity() is a host-only
// constexpr function that device code may not call (nvcc warning 20013).
template <typename acc_t>
EDFAST_INLINE acc_t negative_infinity() { return -static_cast<acc_t>(INFINITY); }

template <typename acc_t>
struct OnlineLogSumExp {
  acc_t max;  // running maximum of the terms pushed (-inf when none)
  acc_t sum;  // sum of exp(term - max)

  EDFAST_INLINE static OnlineLogSumExp empty() {
    return OnlineLogSumExp{negative_infinity<acc_t>(), acc_t(0)};
  }

  // Adds exp(term). -inf terms contribute nothing; a NaN term becomes the max so that it
  // survives any later merge; equal infinite terms add 1 each instead of exp(inf - inf).
  EDFAST_INLINE void push(acc_t term) {
    if (term > max || term != term) {
      sum = sum * acc_exp(max - term) + acc_t(1);
      max = term;
    } else if (term == negative_infinity<acc_t>()) {
      return;
    } else if (term == max) {
      sum += acc_t(1);
    } else {
      sum += acc_exp(term - max);
    }
  }

  // Adds a weight w >= 0 (the stabiliser): the term log w.
  EDFAST_INLINE void push_weight(acc_t weight) {
    if (weight > acc_t(0)) push(acc_log(weight));
  }

  EDFAST_INLINE void merge(const OnlineLogSumExp& other) {
    if (other.max > max || other.max != other.max) {
      sum = sum * acc_exp(max - other.max) + other.sum;
      max = other.max;
    } else if (other.max == negative_infinity<acc_t>()) {
      return;
    } else if (other.max == max) {
      sum += other.sum;
    } else {
      sum += other.sum * acc_exp(other.max - max);
    }
  }

  // log(sum of everything pushed); -inf when empty.
  EDFAST_INLINE acc_t value() const { return max + acc_log(sum); }
};

// p_ij for one negative, given the row's L_i.
template <typename acc_t>
EDFAST_INLINE acc_t contrast_weight(acc_t e_pos, acc_t e_neg, acc_t log_normaliser) {
  return acc_exp(e_pos - e_neg - log_normaliser);
}

}  // namespace core
}  // namespace edfast
