// CPU launchers of the fused ED ops (Ising, Potts, RBM): the row functions of fused_rows.h in
// parallel over data rows, and the sparse gradient terms summed without races or atomics.
//
// Determinism: every row's work is independent, and the sparse terms (sum over items of
// c_n delta_n delta_n^T, or of c_n s_n delta_n^T for the RBM) are summed per output row k of
// the gradient, by the thread that owns k, over the items in (row, item) order. The result is
// the same for every run and every thread count. Rows are taken in chunks of about
// kItemsPerChunk items, so the memory of the records does not grow with B or M.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "fused_rows.h"
#include "grain.h"
#include "kernels.h"

namespace edfast {
namespace cpu {
namespace {

constexpr int64_t kItemsPerChunk = 512;

// What backward keeps of a row for the sparse pass: its items, their coefficients and (RBM)
// the sigmoid of each item's pre-activations.
template <typename T>
struct RowRecord {
  RowItems<T> items;
  std::vector<T> coef;
  std::vector<T> sigmoid;  // RBM: [items, H]
};

template <typename Rows>
void parallel_rows(int64_t begin, int64_t end, int64_t work_per_row, Rows rows) {
  at::parallel_for(begin, end, rows_per_task(work_per_row), rows);
}

// Calls apply(k, record, n, a) for every entry a (item n) of the records' items whose index
// is k, with k split over threads and, for each k, the entries in (row, item, entry) order.
template <typename T, typename Apply>
void for_each_entry_by_index(const std::vector<RowRecord<T>>& records, int64_t rows, int64_t state,
                             int64_t work_per_entry, Apply apply) {
  std::vector<int64_t> offset(static_cast<size_t>(state + 1), 0);
  int64_t total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    for (int32_t k : records[r].items.index) ++offset[k + 1];
    total += static_cast<int64_t>(records[r].items.index.size());
  }
  if (total == 0) return;
  for (int64_t k = 0; k < state; ++k) offset[k + 1] += offset[k];
  struct Entry {
    int32_t row, item, entry;
  };
  std::vector<Entry> entries(static_cast<size_t>(total));
  std::vector<int64_t> fill(offset.begin(), offset.end() - 1);
  for (int64_t r = 0; r < rows; ++r) {
    const RowItems<T>& items = records[r].items;
    for (size_t n = 0; n + 1 < items.start.size(); ++n) {
      for (int64_t a = items.start[n]; a < items.start[n + 1]; ++a) {
        entries[fill[items.index[a]]++] = Entry{static_cast<int32_t>(r), static_cast<int32_t>(n), static_cast<int32_t>(a)};
      }
    }
  }
  const int64_t per_k = std::max<int64_t>(1, total / state) * work_per_entry;
  at::parallel_for(0, state, rows_per_task(per_k), [&](int64_t begin, int64_t end) {
    for (int64_t k = begin; k < end; ++k) {
      for (int64_t e = offset[k]; e < offset[k + 1]; ++e) {
        const Entry& entry = entries[e];
        apply(k, records[entry.row], entry.item, entry.entry);
      }
    }
  });
}

int64_t rows_per_chunk(int64_t negatives) { return std::max<int64_t>(1, kItemsPerChunk / (negatives + 1)); }

}  // namespace

// ---------------------------------------------------------------- pairwise (Ising, Potts)

template <typename T>
void pairwise_forward(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in, T* v,
                      T* log_normaliser) {
  const T log_m = static_cast<T>(std::log(static_cast<double>(shape.negatives)));
  parallel_rows(0, shape.batch, shape.dim * (shape.negatives + 1), [&](int64_t begin, int64_t end) {
    RowScratch<T> scratch;
    for (int64_t i = begin; i < end; ++i) {
      pairwise_row_items(in, shape, noise, i, scratch);
      pairwise_row_energies(in, shape, i, scratch);
      log_normaliser[i] = row_log_normaliser(scratch.energy, shape.negatives, shape.weight);
      v[i] = log_normaliser[i] - log_m;
    }
  });
}

template <typename T>
void pairwise_backward(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in,
                       const T* grad_v, const T* log_normaliser, T* r, T* s) {
  const int64_t state = shape.state, chunk = rows_per_chunk(shape.negatives);
  std::fill(s, s + state * state, T(0));
  std::vector<RowRecord<T>> records(static_cast<size_t>(std::min(chunk, shape.batch)));
  for (int64_t first = 0; first < shape.batch; first += chunk) {
    const int64_t rows = std::min(chunk, shape.batch - first);
    parallel_rows(first, first + rows, shape.dim * (shape.negatives + 1), [&](int64_t begin, int64_t end) {
      RowScratch<T> scratch;
      for (int64_t i = begin; i < end; ++i) {
        pairwise_row_items(in, shape, noise, i, scratch);
        pairwise_row_energies(in, shape, i, scratch);
        RowRecord<T>& record = records[i - first];
        row_coefficients(scratch.energy, shape.negatives, grad_v[i], log_normaliser[i], record.coef);
        row_delta_sum(scratch.items, record.coef, state, r + i * state);
        std::swap(record.items, scratch.items);
      }
    });
    // S[k, l] += c_n delta_n[k] delta_n[l] for every item n with entries at k <= l (the
    // entries after a in the item: they are in increasing index order).
    for_each_entry_by_index(records, rows, state, 8, [&](int64_t k, const RowRecord<T>& record, int64_t n, int64_t a) {
      const RowItems<T>& items = record.items;
      const T c = record.coef[n] * items.value[a];
      T* row = s + k * state;
      for (int64_t b = a; b < items.start[n + 1]; ++b) row[items.index[b]] += c * items.value[b];
    });
  }
}

template void pairwise_forward<float>(const FusedShape&, const FusedNoise&, const PairwiseInputs<float>&, float*, float*);
template void pairwise_forward<double>(const FusedShape&, const FusedNoise&, const PairwiseInputs<double>&, double*, double*);
template void pairwise_backward<float>(const FusedShape&, const FusedNoise&, const PairwiseInputs<float>&, const float*,
                                       const float*, float*, float*);
template void pairwise_backward<double>(const FusedShape&, const FusedNoise&, const PairwiseInputs<double>&,
                                        const double*, const double*, double*, double*);

// ---------------------------------------------------------------- RBM

template <typename T>
void rbm_forward(const FusedShape& shape, const FusedNoise& noise, const RbmInputs<T>& in, T* v, T* log_normaliser) {
  const T log_m = static_cast<T>(std::log(static_cast<double>(shape.negatives)));
  parallel_rows(0, shape.batch, (shape.dim + in.hidden) * (shape.negatives + 1), [&](int64_t begin, int64_t end) {
    RowScratch<T> scratch;
    for (int64_t i = begin; i < end; ++i) {
      rbm_row_items(in, shape, noise, i, scratch);
      rbm_row_energies(in, shape, i, scratch);
      log_normaliser[i] = row_log_normaliser(scratch.energy, shape.negatives, shape.weight);
      v[i] = log_normaliser[i] - log_m;
    }
  });
}

template <typename T>
void rbm_backward(const FusedShape& shape, const FusedNoise& noise, const RbmInputs<T>& in, const T* grad_v,
                  const T* log_normaliser, T* a, T* r, T* gwt) {
  const int64_t hidden = in.hidden, chunk = rows_per_chunk(shape.negatives);
  std::fill(gwt, gwt + shape.dim * hidden, T(0));
  std::vector<RowRecord<T>> records(static_cast<size_t>(std::min(chunk, shape.batch)));
  for (int64_t first = 0; first < shape.batch; first += chunk) {
    const int64_t rows = std::min(chunk, shape.batch - first);
    parallel_rows(first, first + rows, (shape.dim + hidden) * (shape.negatives + 1), [&](int64_t begin, int64_t end) {
      RowScratch<T> scratch;
      for (int64_t i = begin; i < end; ++i) {
        rbm_row_items(in, shape, noise, i, scratch);
        rbm_row_energies(in, shape, i, scratch);
        RowRecord<T>& record = records[i - first];
        row_coefficients(scratch.energy, shape.negatives, grad_v[i], log_normaliser[i], record.coef);
        row_delta_sum(scratch.items, record.coef, shape.dim, r + i * shape.dim);
        // a_i = sum_n c_n sigmoid(pre_n); the sigmoids are kept for the sparse pass.
        const int64_t n_items = shape.negatives + 1;
        record.sigmoid.resize(static_cast<size_t>(n_items * hidden));
        T* a_row = a + i * hidden;
        std::fill(a_row, a_row + hidden, T(0));
        T* pre = scratch.hidden.data();
        for (int64_t n = 0; n < n_items; ++n) {
          rbm_item_pre(in, scratch.items, i, n, pre);
          T* sig = record.sigmoid.data() + n * hidden;
          sigmoid_accumulate(pre, record.coef[n], sig, a_row, hidden);
        }
        std::swap(record.items, scratch.items);
      }
    });
    // G[k, :] += c_n delta_n[k] sigmoid(pre_n) for every item n with a flip at k.
    for_each_entry_by_index(records, rows, shape.dim, hidden, [&](int64_t k, const RowRecord<T>& record, int64_t n, int64_t e) {
      const T c = record.coef[n] * record.items.value[e];
      const T* sig = record.sigmoid.data() + n * hidden;
      T* row = gwt + k * hidden;
      for (int64_t h = 0; h < hidden; ++h) row[h] += c * sig[h];
    });
  }
}

template void rbm_forward<float>(const FusedShape&, const FusedNoise&, const RbmInputs<float>&, float*, float*);
template void rbm_forward<double>(const FusedShape&, const FusedNoise&, const RbmInputs<double>&, double*, double*);
template void rbm_backward<float>(const FusedShape&, const FusedNoise&, const RbmInputs<float>&, const float*,
                                  const float*, float*, float*, float*);
template void rbm_backward<double>(const FusedShape&, const FusedNoise&, const RbmInputs<double>&, const double*,
                                   const double*, double*, double*, double*);

}  // namespace cpu
}  // namespace edfast
