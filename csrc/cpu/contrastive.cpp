// CPU contrastive logsumexp: one task per block of data rows, one pass over the M negatives
// forward and one backward (csrc/core/contrastive.h).
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cmath>

#include "../core/contrastive.h"
#include "grain.h"
#include "kernels.h"

namespace edfast {
namespace cpu {
namespace {

template <typename scalar_t> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

template <typename scalar_t>
void forward_typed(const scalar_t* e_pos, const scalar_t* e_neg, scalar_t* v,
                   typename Acc<scalar_t>::type* log_normaliser, const ContrastShape& shape) {
  using acc_t = typename Acc<scalar_t>::type;
  const int64_t m = shape.negatives;
  const acc_t weight = static_cast<acc_t>(shape.weight);
  const acc_t log_m = static_cast<acc_t>(std::log(static_cast<double>(m)));
  at::parallel_for(0, shape.batch, rows_per_task(m), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const acc_t pos = static_cast<acc_t>(e_pos[i]);
      auto lse = core::OnlineLogSumExp<acc_t>::empty();
      lse.push_weight(weight);
      for (int64_t j = 0; j < m; ++j) lse.push(pos - static_cast<acc_t>(e_neg[i * m + j]));
      const acc_t normaliser = lse.value();
      log_normaliser[i] = normaliser;
      v[i] = static_cast<scalar_t>(normaliser - log_m);
    }
  });
}

template <typename scalar_t>
void backward_typed(const scalar_t* grad_v, const scalar_t* e_pos, const scalar_t* e_neg,
                    const typename Acc<scalar_t>::type* log_normaliser, scalar_t* grad_pos,
                    scalar_t* grad_neg, const ContrastShape& shape) {
  using acc_t = typename Acc<scalar_t>::type;
  const int64_t m = shape.negatives;
  at::parallel_for(0, shape.batch, rows_per_task(m), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const acc_t g = static_cast<acc_t>(grad_v[i]);
      const acc_t pos = static_cast<acc_t>(e_pos[i]);
      acc_t total = 0;
      for (int64_t j = 0; j < m; ++j) {
        const acc_t p =
            core::contrast_weight(pos, static_cast<acc_t>(e_neg[i * m + j]), log_normaliser[i]);
        total += p;
        grad_neg[i * m + j] = static_cast<scalar_t>(-g * p);
      }
      grad_pos[i] = static_cast<scalar_t>(g * total);
    }
  });
}

template <typename Fn>
void dispatch(FloatType type, Fn fn) {
  switch (type) {
    case FloatType::kFloat16: fn(c10::Half{}); break;
    case FloatType::kBFloat16: fn(c10::BFloat16{}); break;
    case FloatType::kFloat32: fn(float{}); break;
    case FloatType::kFloat64: fn(double{}); break;
  }
}

}  // namespace

void contrastive_forward(FloatType type, const void* e_pos, const void* e_neg, void* v,
                         void* log_normaliser, const ContrastShape& shape) {
  dispatch(type, [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = typename Acc<scalar_t>::type;
    forward_typed(static_cast<const scalar_t*>(e_pos), static_cast<const scalar_t*>(e_neg),
                  static_cast<scalar_t*>(v), static_cast<acc_t*>(log_normaliser), shape);
  });
}

void contrastive_backward(FloatType type, const void* grad_v, const void* e_pos, const void* e_neg,
                          const void* log_normaliser, void* grad_pos, void* grad_neg,
                          const ContrastShape& shape) {
  dispatch(type, [&](auto tag) {
    using scalar_t = decltype(tag);
    using acc_t = typename Acc<scalar_t>::type;
    backward_typed(static_cast<const scalar_t*>(grad_v), static_cast<const scalar_t*>(e_pos),
                   static_cast<const scalar_t*>(e_neg), static_cast<const acc_t*>(log_normaliser),
                   static_cast<scalar_t*>(grad_pos), static_cast<scalar_t*>(grad_neg), shape);
  });
}

}  // namespace cpu
}  // namespace edfast
