// The per-row work of the fused ED kernels on the CPU (Ising, Potts, RBM): for one data row,
// the changes of its items (the row itself and its M negatives) from its y, their delta
// energies (csrc/core/pairwise.h, csrc/core/rbm.h), the online logsumexp and, in backward, the
// items' coefficients and dense per-row gradient terms. Torch-free, so that the C++ tests run
// exactly this code next to the CUDA kernels under the execution model; fused.cpp runs it in
// parallel over rows and sums the sparse gradient terms.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "../core/contrastive.h"
#include "../core/deltas.h"
#include "../core/pairwise.h"
#include "../core/rbm.h"
#include "../fused_args.h"
#include "../launch_args.h"
#include "perturb_rows.h"

namespace edfast {
namespace cpu {

// The changes of one row's items from its y: item n has entries [start[n], start[n + 1]).
template <typename T>
struct RowItems {
  std::vector<int32_t> index;
  std::vector<T> value;
  std::vector<int64_t> start;

  void clear() {
    index.clear();
    value.clear();
    start.assign(1, 0);
  }
  void push(int64_t i, T v) {
    index.push_back(static_cast<int32_t>(i));
    value.push_back(v);
  }
  void close() { start.push_back(static_cast<int64_t>(index.size())); }
  int64_t count(int64_t n) const { return start[n + 1] - start[n]; }
};

// Negatives drawn at once into a per-thread buffer when the noise is dense (one word per
// coordinate): the SIMD rows of perturb_rows.h write them, a compare finds the changes.
constexpr int64_t kNegativesPerChunk = 16;

// The bits of a binary T value and its flip (csrc/core/perturb.h, BinaryFlip).
template <typename T> struct BinaryBitsOf;
template <> struct BinaryBitsOf<float> {
  using U = uint32_t;
  static core::BinaryFlip<U> flip() { return {0x7fffffffu, 0x3f800000u}; }
};
template <> struct BinaryBitsOf<double> {
  using U = uint64_t;
  static core::BinaryFlip<U> flip() { return {0x7fffffffffffffffull, 0x3ff0000000000000ull}; }
};

// Row i's items for binary data: the row (where x and y differ) and the flips of each
// negative; `delta(y_d)` is the family's change of a flipped coordinate.
template <typename T, typename Delta>
void binary_row_items(const T* x_row, const T* y_row, const FusedShape& shape, const FusedNoise& noise,
                      int64_t i, Delta delta, RowItems<T>& items, std::vector<T>& scratch) {
  const int64_t dim = shape.dim, m = shape.negatives;
  const uint64_t row = static_cast<uint64_t>(shape.row_offset + i);
  items.clear();
  for (int64_t d = 0; d < dim; ++d) {
    if (x_row[d] != y_row[d]) items.push(d, delta(y_row[d]));
  }
  items.close();
  if (noise.kind == core::kBernoulli && !noise.bernoulli.sparse) {
    using U = typename BinaryBitsOf<T>::U;
    scratch.resize(static_cast<size_t>((1 + kNegativesPerChunk) * dim));
    U* y_bits = reinterpret_cast<U*>(scratch.data());
    U* negatives = y_bits + dim;
    for (int64_t first = 0; first < m; first += kNegativesPerChunk) {
      const int64_t chunk = m - first < kNegativesPerChunk ? m - first : kNegativesPerChunk;
      const PerturbShape one{1, dim, chunk, shape.seed, shape.row_offset + i, first};
      bernoulli_rows(reinterpret_cast<const U*>(x_row), y_bits, negatives, one, noise.bernoulli,
                     BinaryBitsOf<T>::flip(), 0, 1);
      for (int64_t j = 0; j < chunk; ++j) {
        const U* negative = negatives + j * dim;
        for (int64_t d = 0; d < dim; ++d) {
          if (negative[d] != y_bits[d]) items.push(d, delta(y_row[d]));
        }
        items.close();
      }
    }
    return;
  }
  for (int64_t j = 0; j < m; ++j) {
    core::for_each_binary_flip(core::RowStream(shape.seed, row, core::negative_stream(j)), dim, noise,
                               [&](int64_t d) { items.push(d, delta(y_row[d])); });
    items.close();
  }
}

// Row i's items for categorical data in the one-hot state (entry d*K + class): a changed
// coordinate moves +1 to its new class and -1 from y's.
template <typename T>
void transition_row_items(const int64_t* x_row, const int64_t* y_row, const FusedShape& shape,
                          const FusedNoise& noise, int64_t i, RowItems<T>& items, std::vector<int64_t>& scratch) {
  const int64_t dim = shape.dim, m = shape.negatives, k = noise.num_classes;
  const auto change = [&](int64_t d, int64_t next) {
    items.push(d * k + next, T(1));
    items.push(d * k + y_row[d], T(-1));
  };
  items.clear();
  for (int64_t d = 0; d < dim; ++d) {
    if (x_row[d] != y_row[d]) change(d, x_row[d]);
  }
  items.close();
  scratch.resize(static_cast<size_t>((1 + kNegativesPerChunk) * dim));
  int64_t* y_again = scratch.data();
  int64_t* negatives = y_again + dim;
  for (int64_t first = 0; first < m; first += kNegativesPerChunk) {
    const int64_t chunk = m - first < kNegativesPerChunk ? m - first : kNegativesPerChunk;
    const PerturbShape one{1, dim, chunk, shape.seed, shape.row_offset + i, first};
    transition_rows(x_row, y_again, negatives, one, noise.cdf, k, 0, 1);
    for (int64_t j = 0; j < chunk; ++j) {
      const int64_t* negative = negatives + j * dim;
      for (int64_t d = 0; d < dim; ++d) {
        if (negative[d] != y_row[d]) change(d, negative[d]);
      }
      items.close();
    }
  }
}

// Per-thread buffers of the row functions below.
template <typename T>
struct RowScratch {
  RowItems<T> items;
  std::vector<T> binary;        // dense binary negatives
  std::vector<int64_t> classes;  // dense categorical negatives
  std::vector<T> energy;        // E of each item
  std::vector<T> hidden;        // RBM: pre-activations of one item, softplus(pre_y)
};

template <typename T>
void pairwise_row_items(const PairwiseInputs<T>& in, const FusedShape& shape, const FusedNoise& noise, int64_t i,
                        RowScratch<T>& scratch) {
  if (noise.kind == core::kTransition) {
    const int64_t* x = static_cast<const int64_t*>(in.x) + i * shape.dim;
    const int64_t* y = static_cast<const int64_t*>(in.y) + i * shape.dim;
    transition_row_items(x, y, shape, noise, i, scratch.items, scratch.classes);
  } else {
    const T* x = static_cast<const T*>(in.x) + i * shape.dim;
    const T* y = static_cast<const T*>(in.y) + i * shape.dim;
    binary_row_items(x, y, shape, noise, i, core::spin_flip_delta<T>, scratch.items, scratch.binary);
  }
}

// E of every item of row i into scratch.energy (call pairwise_row_items first).
template <typename T>
void pairwise_row_energies(const PairwiseInputs<T>& in, const FusedShape& shape, int64_t i, RowScratch<T>& scratch) {
  const RowItems<T>& items = scratch.items;
  const int64_t n = shape.negatives + 1;
  scratch.energy.resize(static_cast<size_t>(n));
  const T* field = in.field + i * shape.state;
  for (int64_t item = 0; item < n; ++item) {
    const int64_t first = items.start[item];
    scratch.energy[item] = core::pairwise_item_energy<T, T>(in.coupling, shape.state, field, in.bias,
                                                           items.index.data() + first, items.value.data() + first,
                                                           items.count(item), in.alpha);
  }
}

template <typename T>
void rbm_row_items(const RbmInputs<T>& in, const FusedShape& shape, const FusedNoise& noise, int64_t i,
                   RowScratch<T>& scratch) {
  binary_row_items(in.x + i * shape.dim, in.y + i * shape.dim, shape, noise, i, core::binary_flip_delta<T>,
                   scratch.items, scratch.binary);
}

// The pre-activations of item n of row i into pre[0, H).
template <typename T>
void rbm_item_pre(const RbmInputs<T>& in, const RowItems<T>& items, int64_t i, int64_t n, T* pre) {
  const int64_t hidden = in.hidden;
  std::memcpy(pre, in.pre_y + i * hidden, static_cast<size_t>(hidden) * sizeof(T));
  for (int64_t a = items.start[n]; a < items.start[n + 1]; ++a) {
    const T* column = in.weight_t + static_cast<int64_t>(items.index[a]) * hidden;
    const T v = items.value[a];
    for (int64_t h = 0; h < hidden; ++h) pre[h] += v * column[h];
  }
}

// E of every item of row i into scratch.energy; scratch.hidden holds [pre of the last item,
// softplus(pre_y)].
template <typename T>
void rbm_row_energies(const RbmInputs<T>& in, const FusedShape& shape, int64_t i, RowScratch<T>& scratch) {
  const RowItems<T>& items = scratch.items;
  const int64_t n = shape.negatives + 1, hidden = in.hidden;
  scratch.energy.resize(static_cast<size_t>(n));
  scratch.hidden.resize(static_cast<size_t>(2 * hidden));
  T* pre = scratch.hidden.data();
  T* softplus_y = pre + hidden;
  const T* pre_y = in.pre_y + i * hidden;
  for (int64_t h = 0; h < hidden; ++h) softplus_y[h] = core::softplus(pre_y[h]);
  for (int64_t item = 0; item < n; ++item) {
    rbm_item_pre(in, items, i, item, pre);
    T energy = T(0);
    for (int64_t a = items.start[item]; a < items.start[item + 1]; ++a) energy += items.value[a] * in.visible_bias[items.index[a]];
    T hidden_sum = T(0);
    for (int64_t h = 0; h < hidden; ++h) hidden_sum += core::softplus(pre[h]) - softplus_y[h];
    scratch.energy[item] = energy + hidden_sum;
  }
}

// L_i = log(w + sum_j exp(E_j - E_0)) from the row's item energies.
template <typename T>
T row_log_normaliser(const std::vector<T>& energy, int64_t m, double w) {
  core::OnlineLogSumExp<T> lse = core::OnlineLogSumExp<T>::empty();
  lse.push_weight(static_cast<T>(w));
  for (int64_t j = 1; j <= m; ++j) lse.push(energy[j] - energy[0]);
  return lse.value();
}

// The items' gradient coefficients of row i: dv_i = sum_n c_n dU(item n), c_0 = g P and
// c_j = -g p_j with p_j = exp(E_j - E_0 - L_i) and P = sum_j p_j (DESIGN §1).
template <typename T>
void row_coefficients(const std::vector<T>& energy, int64_t m, T grad, T log_normaliser, std::vector<T>& coef) {
  coef.resize(static_cast<size_t>(m + 1));
  T total = T(0);
  for (int64_t j = 1; j <= m; ++j) {
    const T p = core::contrast_weight(energy[j], energy[0], log_normaliser);  // exp(a_j - L), a_j = E_j - E_0
    total += p;
    coef[j] = -grad * p;
  }
  coef[0] = grad * total;
}

// r_i = sum_n c_n delta_n: the dense per-row gradient term, [N] (zeroed here).
template <typename T>
void row_delta_sum(const RowItems<T>& items, const std::vector<T>& coef, int64_t state, T* r_row) {
  std::memset(r_row, 0, static_cast<size_t>(state) * sizeof(T));
  for (size_t n = 0; n + 1 < items.start.size(); ++n) {
    for (int64_t a = items.start[n]; a < items.start[n + 1]; ++a) r_row[items.index[a]] += coef[n] * items.value[a];
  }
}

}  // namespace cpu
}  // namespace edfast
