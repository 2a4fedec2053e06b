// CPU contrastive logsumexp: one task per block of data rows; within a task the vectorised
// row kernels of csrc/cpu/contrastive_simd.h (a max sweep and an exp sweep over each row
// forward, one sweep backward). Rows with a NaN or +inf term, or with every term -inf, are
// recomputed forward by the scalar online logsumexp of csrc/core/contrastive.h, which
// defines those cases.
#include <ATen/Parallel.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "../core/contrastive.h"
#include "contrastive_simd.h"
#include "grain.h"
#include "kernels.h"

namespace edfast {
namespace cpu {
namespace {

template <typename scalar_t> struct Acc { using type = float; };
template <> struct Acc<double> { using type = double; };

// float16 rows are converted to float in blocks of about this many elements (L1-sized).
constexpr int64_t kHalfBlockElements = 4096;

// The vector kernels of an element type; c10::BFloat16 is its raw bits.
template <typename scalar_t> struct Kernel;
template <> struct Kernel<float> {
  using element = float;
  static const ContrastRows<float, float>& rows() { return contrast_row_kernels().f32; }
};
template <> struct Kernel<double> {
  using element = double;
  static const ContrastRows<double, double>& rows() { return contrast_row_kernels().f64; }
};
template <> struct Kernel<c10::BFloat16> {
  using element = uint16_t;
  static const ContrastRows<uint16_t, float>& rows() { return contrast_row_kernels().bf16; }
};
static_assert(sizeof(c10::BFloat16) == sizeof(uint16_t), "bfloat16 is passed as its bits");

template <typename scalar_t, typename acc_t>
acc_t scalar_log_normaliser(acc_t pos, const scalar_t* row, int64_t m, acc_t weight) {
  auto lse = core::OnlineLogSumExp<acc_t>::empty();
  lse.push_weight(weight);
  for (int64_t j = 0; j < m; ++j) lse.push(pos - static_cast<acc_t>(row[j]));
  return lse.value();
}

// Rows [begin, end) of log_normaliser and v by the vector kernels (float16: through float
// copies); returns the number of rows left NaN for the scalar core.
template <typename scalar_t, typename acc_t>
int64_t vector_log_normaliser(const scalar_t* e_pos, const scalar_t* e_neg, int64_t begin,
                              int64_t end, int64_t m, acc_t log_w, acc_t log_m,
                              acc_t* log_normaliser, scalar_t* v) {
  if constexpr (std::is_same<scalar_t, c10::Half>::value) {
    const int64_t block = std::max<int64_t>(1, kHalfBlockElements / m);
    std::vector<float> pos(block), neg(block * m), out_v(block);
    int64_t flagged = 0;
    for (int64_t i = begin; i < end; i += block) {
      const int64_t rows = std::min(block, end - i);
      std::copy(e_pos + i, e_pos + i + rows, pos.begin());
      std::copy(e_neg + i * m, e_neg + (i + rows) * m, neg.begin());
      flagged += contrast_row_kernels().f32.forward(pos.data(), neg.data(), rows, m, log_w,
                                                    log_m, log_normaliser + i, out_v.data());
      std::copy(out_v.begin(), out_v.begin() + rows, v + i);
    }
    return flagged;
  } else {
    using element = typename Kernel<scalar_t>::element;
    return Kernel<scalar_t>::rows().forward(
        reinterpret_cast<const element*>(e_pos) + begin,
        reinterpret_cast<const element*>(e_neg) + begin * m, end - begin, m, log_w, log_m,
        log_normaliser + begin, reinterpret_cast<element*>(v) + begin);
  }
}

template <typename scalar_t, typename acc_t>
void vector_contrast(const scalar_t* grad_v, const scalar_t* e_pos, const scalar_t* e_neg,
                     const acc_t* log_normaliser, int64_t begin, int64_t end, int64_t m,
                     scalar_t* grad_pos, scalar_t* grad_neg) {
  if constexpr (std::is_same<scalar_t, c10::Half>::value) {
    const int64_t block = std::max<int64_t>(1, kHalfBlockElements / m);
    std::vector<float> g(block), pos(block), neg(block * m), out_pos(block), out_neg(block * m);
    for (int64_t i = begin; i < end; i += block) {
      const int64_t rows = std::min(block, end - i);
      std::copy(grad_v + i, grad_v + i + rows, g.begin());
      std::copy(e_pos + i, e_pos + i + rows, pos.begin());
      std::copy(e_neg + i * m, e_neg + (i + rows) * m, neg.begin());
      contrast_row_kernels().f32.backward(g.data(), pos.data(), neg.data(), log_normaliser + i,
                                          rows, m, out_pos.data(), out_neg.data());
      std::copy(out_pos.begin(), out_pos.begin() + rows, grad_pos + i);
      std::copy(out_neg.begin(), out_neg.begin() + rows * m, grad_neg + i * m);
    }
  } else {
    using element = typename Kernel<scalar_t>::element;
    Kernel<scalar_t>::rows().backward(
        reinterpret_cast<const element*>(grad_v) + begin,
        reinterpret_cast<const element*>(e_pos) + begin,
        reinterpret_cast<const element*>(e_neg) + begin * m, log_normaliser + begin, end - begin,
        m, reinterpret_cast<element*>(grad_pos) + begin,
        reinterpret_cast<element*>(grad_neg) + begin * m);
  }
}

template <typename scalar_t>
void forward_typed(const scalar_t* e_pos, const scalar_t* e_neg, scalar_t* v,
                   typename Acc<scalar_t>::type* log_normaliser, const ContrastShape& shape) {
  using acc_t = typename Acc<scalar_t>::type;
  const int64_t m = shape.negatives;
  const acc_t weight = static_cast<acc_t>(shape.weight);
  // The term OnlineLogSumExp::push_weight adds, computed once.
  const acc_t log_w = weight > acc_t(0) ? core::acc_log(weight)
                                        : -std::numeric_limits<acc_t>::infinity();
  const acc_t log_m = static_cast<acc_t>(std::log(static_cast<double>(m)));
  at::parallel_for(0, shape.batch, rows_per_task(m), [&](int64_t begin, int64_t end) {
    if (vector_log_normaliser(e_pos, e_neg, begin, end, m, log_w, log_m, log_normaliser, v) == 0) {
      return;
    }
    for (int64_t i = begin; i < end; ++i) {
      if (std::isnan(log_normaliser[i])) {  // a row the vector kernel left to the scalar core
        log_normaliser[i] = scalar_log_normaliser(static_cast<acc_t>(e_pos[i]), e_neg + i * m,
                                                  m, weight);
        v[i] = static_cast<scalar_t>(log_normaliser[i] - log_m);
      }
    }
  });
}

template <typename scalar_t>
void backward_typed(const scalar_t* grad_v, const scalar_t* e_pos, const scalar_t* e_neg,
                    const typename Acc<scalar_t>::type* log_normaliser, scalar_t* grad_pos,
                    scalar_t* grad_neg, const ContrastShape& shape) {
  const int64_t m = shape.negatives;
  at::parallel_for(0, shape.batch, rows_per_task(m), [&](int64_t begin, int64_t end) {
    vector_contrast(grad_v, e_pos, e_neg, log_normaliser, begin, end, m, grad_pos, grad_neg);
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

const char* contrastive_simd_isa() { return contrast_row_kernels().isa; }

}  // namespace cpu
}  // namespace edfast
