// The per-row work of the fused ED kernels on the CPU (Ising, Potts, RBM): for one data row,
// the changes of its items (the row itself and its M negatives) from its y, their delta
// energies (csrc/core/pairwise.h, csrc/core/rbm.h), the online logsumexp and, in backward, the
// items' coefficients and dense per-row gradient terms. Torch-free, so that the C++ tests run
// exactly this code next to the CUDA kernels under the execution model; fused.cpp runs it in
// parallel over rows and sums the sparse gradient terms.
#pragma once

#include <algorithm>
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
#include "rbm_simd.h"

namespace edfast {
namespace cpu {

// The changes of one row's items from its y: item n has entries [start[n], start[n + 1]), in
// increasing index order (the backward sums the upper triangle of delta delta^T).
template <typename T>
struct RowItems {
  std::vector<int32_t> index;  // entries [0, size()); the storage may be longer
  std::vector<T> value;
  std::vector<int64_t> start;

  void clear() {
    entries_ = 0;
    start.clear();
    start.push_back(0);
  }
  // The hot loop of the row builders: a capacity check, two stores (std::vector::push_back
  // did not inline there).
  void push(int64_t i, T v) {
    if (entries_ == static_cast<int64_t>(index.size())) grow();
    push_unchecked(i, v);
  }
  // Room for `more` entries, for push_unchecked.
  void reserve_more(int64_t more) {
    while (entries_ + more > static_cast<int64_t>(index.size())) grow();
  }
  void push_unchecked(int64_t i, T v) {
    index[entries_] = static_cast<int32_t>(i);
    value[entries_] = v;
    ++entries_;
  }
  void close() { start.push_back(entries_); }
  int64_t size() const { return entries_; }
  int64_t count(int64_t n) const { return start[n + 1] - start[n]; }

 private:
  void grow() {
    const size_t capacity = index.empty() ? 256 : 2 * index.size();
    index.resize(capacity);
    value.resize(capacity);
  }
  int64_t entries_ = 0;
};

// Categorical negatives drawn at once into a per-thread buffer (one word per coordinate): the
// SIMD rows of perturb_rows.h write them, a compare finds the changes.
constexpr int64_t kNegativesPerChunk = 16;

// Row i's items for binary data: the row (where x and y differ) and the flips of each
// negative; `delta(y_d)` is the family's change of a flipped coordinate.
template <typename T, typename Delta>
void binary_row_items(const T* x_row, const T* y_row, const FusedShape& shape, const FusedNoise& noise,
                      int64_t i, Delta delta, RowItems<T>& items, std::vector<uint64_t>& scratch) {
  const int64_t dim = shape.dim, m = shape.negatives;
  const uint64_t row = static_cast<uint64_t>(shape.row_offset + i);
  items.clear();
  for (int64_t d = 0; d < dim; ++d) {
    if (x_row[d] != y_row[d]) items.push(d, delta(y_row[d]));
  }
  items.close();
  if (noise.kind == core::kBernoulli && !noise.bernoulli.sparse) {
    // Dense noise: the flips of all M negatives as bitmaps from the SIMD Philox lanes, then
    // one count-trailing-zeros per flip.
    const int64_t words = (dim + 63) / 64;
    scratch.resize(static_cast<size_t>(m * words));
    if (simd::dense_flip_bitmap(shape.seed, row, core::negative_stream(0), m, dim, noise.bernoulli.threshold,
                                scratch.data())) {
      int64_t flips = 0;
      for (int64_t w = 0; w < m * words; ++w) flips += __builtin_popcountll(scratch[w]);
      items.reserve_more(flips);
      for (int64_t j = 0; j < m; ++j) {
        for (int64_t w = 0; w < words; ++w) {
          for (uint64_t bits = scratch[j * words + w]; bits != 0; bits &= bits - 1) {
            const int64_t d = w * 64 + __builtin_ctzll(bits);
            items.push_unchecked(d, delta(y_row[d]));
          }
        }
        items.close();
      }
      return;
    }
  }
  if (noise.kind == core::kBitFlip) {
    // One word per negative, drawn for 8 or 16 negatives at once on the SIMD lanes.
    scratch.resize(static_cast<size_t>((m + 1) / 2));
    uint32_t* words = reinterpret_cast<uint32_t*>(scratch.data());
    if (simd::first_words(shape.seed, row, core::negative_stream(0), m, words)) {
      items.reserve_more(m);
      for (int64_t j = 0; j < m; ++j) {
        const int64_t d = core::uniform_index(words[j], dim);
        items.push_unchecked(d, delta(y_row[d]));
        items.close();
      }
      return;
    }
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
  const auto change = [&](int64_t d, int64_t next) {  // in increasing index order
    if (next < y_row[d]) items.push(d * k + next, T(1));
    items.push(d * k + y_row[d], T(-1));
    if (next > y_row[d]) items.push(d * k + next, T(1));
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
  std::vector<uint64_t> binary;  // dense Bernoulli flips as bitmaps
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
    binary_row_items(x, y, shape, noise, i, [](T y_d) { return core::spin_flip_delta(y_d); }, scratch.items,
                     scratch.binary);
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
  binary_row_items(in.x + i * shape.dim, in.y + i * shape.dim, shape, noise, i,
                   [](T y_d) { return core::binary_flip_delta(y_d); },
                   scratch.items, scratch.binary);
}

// softplus and sigmoid over the hidden units: vectorised for float (rbm_simd.h), scalar core
// functions for double.
inline float softplus_change_sum(const float* pre, const float* softplus_y, int64_t n) {
  return rbm_vector_kernels().softplus_change_sum(pre, softplus_y, n);
}
inline double softplus_change_sum(const double* pre, const double* softplus_y, int64_t n) {
  double sum = 0.0;
  for (int64_t h = 0; h < n; ++h) sum += core::softplus(pre[h]) - softplus_y[h];
  return sum;
}
inline void softplus_into(const float* in, float* out, int64_t n) { rbm_vector_kernels().softplus(in, out, n); }
inline void softplus_into(const double* in, double* out, int64_t n) {
  for (int64_t h = 0; h < n; ++h) out[h] = core::softplus(in[h]);
}
inline void sigmoid_accumulate(const float* pre, float c, float* sigmoid, float* acc, int64_t n) {
  rbm_vector_kernels().sigmoid_accumulate(pre, c, sigmoid, acc, n);
}
inline void axpy(float a, const float* x, float* y, int64_t n) { rbm_vector_kernels().axpy(a, x, y, n); }
inline void axpy(double a, const double* x, double* y, int64_t n) {
  for (int64_t h = 0; h < n; ++h) y[h] += a * x[h];
}
inline void sigmoid_accumulate(const double* pre, double c, double* sigmoid, double* acc, int64_t n) {
  for (int64_t h = 0; h < n; ++h) {
    sigmoid[h] = core::sigmoid(pre[h]);
    acc[h] += c * sigmoid[h];
  }
}

// The pre-activations of item n of row i into pre[0, H): y's plus the columns of W at its
// flips. Vectorised for float; the double version is the loop below.
inline void rbm_item_pre(const RbmInputs<float>& in, const RowItems<float>& items, int64_t i, int64_t n, float* pre) {
  const int64_t first = items.start[n];
  rbm_vector_kernels().item_pre(in.pre_y + i * in.hidden, in.weight_t, items.index.data() + first,
                                items.value.data() + first, items.count(n), pre, in.hidden);
}
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
  softplus_into(in.pre_y + i * hidden, softplus_y, hidden);
  for (int64_t item = 0; item < n; ++item) {
    rbm_item_pre(in, items, i, item, pre);
    T energy = T(0);
    for (int64_t a = items.start[item]; a < items.start[item + 1]; ++a) energy += items.value[a] * in.visible_bias[items.index[a]];
    scratch.energy[item] = energy + softplus_change_sum(pre, softplus_y, hidden);
  }
}

// L_i = log(w + sum_j exp(E_j - E_0)) from the row's item energies energy[0 .. m].
template <typename T>
T row_log_normaliser(const T* energy, int64_t m, double w) {
  core::OnlineLogSumExp<T> lse = core::OnlineLogSumExp<T>::empty();
  lse.push_weight(static_cast<T>(w));
  for (int64_t j = 1; j <= m; ++j) lse.push(energy[j] - energy[0]);
  return lse.value();
}

// The items' gradient coefficients of row i: dv_i = sum_n c_n dU(item n), c_0 = g P and
// c_j = -g p_j with p_j = exp(E_j - E_0 - L_i) and P = sum_j p_j (DESIGN §1).
template <typename T>
void row_coefficients(const T* energy, int64_t m, T grad, T log_normaliser, std::vector<T>& coef) {
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
