// CPU launchers of the fused ED ops (Ising, Potts, RBM): the row functions of fused_rows.h in
// parallel over data rows, and the sparse gradient terms summed without races or atomics.
//
// Determinism: every row's work is independent, and the sparse terms (sum over items of
// c_n delta_n delta_n^T, or of c_n s_n delta_n^T for the RBM) are summed per output row k of
// the gradient, by the thread that owns k, over the items in (row, item) order. The result is
// the same for every run and every thread count. Backward takes rows in chunks of about
// kChunkBytes of records (at least kItemsPerChunk items), so their memory does not grow with
// B or M, while few-flip noise (BitFlip) takes the batch in a few chunks: each chunk costs two
// parallel regions, which dominated small steps.
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
constexpr int64_t kChunkBytes = int64_t{1} << 20;

template <typename Rows>
void parallel_rows(int64_t begin, int64_t end, int64_t work_per_row, Rows rows) {
  at::parallel_for(begin, end, rows_per_task(work_per_row), rows);
}

// Calls apply(k, row, item, entry) for every entry of items[0 .. rows), with the index range
// split over threads: each thread scans all the entries (cheap, in order) and applies those
// with k in its range, so each row k of the gradient is written by one thread, in (row, item,
// entry) order whatever the number of threads. No transposed index is built: its serial
// counting sort cost more than the scans.
template <typename T, typename Apply>
void for_each_entry_by_owner(const std::vector<RowItems<T>>& items, int64_t rows, int64_t state, Apply apply) {
  const int64_t ranges = std::max<int64_t>(1, std::min<int64_t>(state, at::get_num_threads()));
  at::parallel_for(0, ranges, 1, [&](int64_t first_range, int64_t last_range) {
    const int64_t k_begin = first_range * state / ranges, k_end = last_range * state / ranges;
    for (int64_t r = 0; r < rows; ++r) {
      const RowItems<T>& row = items[r];
      for (size_t n = 0; n + 1 < row.start.size(); ++n) {
        for (int64_t a = row.start[n]; a < row.start[n + 1]; ++a) {
          const int64_t k = row.index[a];
          if (k >= k_begin && k < k_end) apply(k, r, static_cast<int64_t>(n), a);
        }
      }
    }
  });
}

// Rows per backward chunk: about kChunkBytes of records, from the expected entries per item
// (Bernoulli: epsilon D + 1; BitFlip: 1; categorical: at most 2 D) and `payload` bytes more
// per item (the RBM's sigmoids).
int64_t rows_per_backward_chunk(const FusedShape& shape, const FusedNoise& noise, int64_t payload) {
  double entries = 2.0 * static_cast<double>(shape.dim);
  if (noise.kind == core::kBitFlip) entries = 1.0;
  if (noise.kind == core::kBernoulli) {
    entries = static_cast<double>(noise.bernoulli.threshold) / 4294967296.0 * static_cast<double>(shape.dim) + 1.0;
  }
  const int64_t item_bytes = static_cast<int64_t>(entries * 8.0) + payload + 16;
  const int64_t items = std::max<int64_t>(kItemsPerChunk, kChunkBytes / item_bytes);
  return std::max<int64_t>(1, items / (shape.negatives + 1));
}

}  // namespace

// ---------------------------------------------------------------- pairwise (Ising, Potts)

template <typename T>
void pairwise_forward(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in, T* v,
                      T* log_normaliser, T* energies) {
  const T log_m = static_cast<T>(std::log(static_cast<double>(shape.negatives)));
  const int64_t n_items = shape.negatives + 1;
  parallel_rows(0, shape.batch, shape.dim * n_items, [&](int64_t begin, int64_t end) {
    RowScratch<T> scratch;
    for (int64_t i = begin; i < end; ++i) {
      pairwise_row_items(in, shape, noise, i, scratch);
      pairwise_row_energies(in, shape, i, scratch);
      log_normaliser[i] = row_log_normaliser(scratch.energy.data(), shape.negatives, shape.weight);
      v[i] = log_normaliser[i] - log_m;
      std::copy(scratch.energy.begin(), scratch.energy.end(), energies + i * n_items);
    }
  });
}

template <typename T>
void pairwise_backward(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in,
                       const T* grad_v, const T* log_normaliser, const T* energies, T* r, T* s) {
  const int64_t state = shape.state, chunk = rows_per_backward_chunk(shape, noise, 0), n_items = shape.negatives + 1;
  std::fill(s, s + state * state, T(0));
  const int64_t capacity = std::min(chunk, shape.batch);
  std::vector<RowItems<T>> items(static_cast<size_t>(capacity));
  std::vector<std::vector<T>> coef(static_cast<size_t>(capacity));
  for (int64_t first = 0; first < shape.batch; first += chunk) {
    const int64_t rows = std::min(chunk, shape.batch - first);
    // The items again (their energies are the forward's).
    parallel_rows(first, first + rows, shape.dim * n_items, [&](int64_t begin, int64_t end) {
      RowScratch<T> scratch;
      for (int64_t i = begin; i < end; ++i) {
        pairwise_row_items(in, shape, noise, i, scratch);
        std::swap(items[i - first], scratch.items);
        std::vector<T>& c = coef[i - first];
        row_coefficients(energies + i * n_items, shape.negatives, grad_v[i], log_normaliser[i], c);
        row_delta_sum(items[i - first], c, state, r + i * state);
      }
    });
    // S[k, l] += c_n delta_n[k] delta_n[l] for every item n with entries at k <= l (the
    // entries after a in the item: they are in increasing index order). Each thread owns rows
    // k of S and takes their entries in (row, item, entry) order: deterministic.
    for_each_entry_by_owner(items, rows, state, [&](int64_t k, int64_t row_index, int64_t item, int64_t a) {
      const RowItems<T>& row = items[row_index];
      const T c = coef[row_index][item] * row.value[a];
      T* s_row = s + k * state;
      for (int64_t b = a; b < row.start[item + 1]; ++b) s_row[row.index[b]] += c * row.value[b];
    });
  }
  // The lower triangle from the upper (S is symmetric), in 64 x 64 blocks so that the strided
  // reads stay in cache.
  constexpr int64_t kBlock = 64;
  const int64_t blocks = (state + kBlock - 1) / kBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t bl = begin; bl < end; ++bl) {
      for (int64_t bk = 0; bk <= bl; ++bk) {
        for (int64_t l = bl * kBlock; l < std::min(state, (bl + 1) * kBlock); ++l) {
          for (int64_t k = bk * kBlock; k < std::min(l, (bk + 1) * kBlock); ++k) s[l * state + k] = s[k * state + l];
        }
      }
    }
  });
}

template void pairwise_forward<float>(const FusedShape&, const FusedNoise&, const PairwiseInputs<float>&, float*, float*,
                                      float*);
template void pairwise_forward<double>(const FusedShape&, const FusedNoise&, const PairwiseInputs<double>&, double*,
                                       double*, double*);
template void pairwise_backward<float>(const FusedShape&, const FusedNoise&, const PairwiseInputs<float>&, const float*,
                                       const float*, const float*, float*, float*);
template void pairwise_backward<double>(const FusedShape&, const FusedNoise&, const PairwiseInputs<double>&,
                                        const double*, const double*, const double*, double*, double*);

// ---------------------------------------------------------------- RBM

template <typename T>
void rbm_forward(const FusedShape& shape, const FusedNoise& noise, const RbmInputs<T>& in, T* v, T* log_normaliser,
                 T* energies) {
  const T log_m = static_cast<T>(std::log(static_cast<double>(shape.negatives)));
  parallel_rows(0, shape.batch, (shape.dim + in.hidden) * (shape.negatives + 1), [&](int64_t begin, int64_t end) {
    RowScratch<T> scratch;
    for (int64_t i = begin; i < end; ++i) {
      rbm_row_items(in, shape, noise, i, scratch);
      rbm_row_energies(in, shape, i, scratch);
      log_normaliser[i] = row_log_normaliser(scratch.energy.data(), shape.negatives, shape.weight);
      v[i] = log_normaliser[i] - log_m;
      std::copy(scratch.energy.begin(), scratch.energy.end(), energies + i * (shape.negatives + 1));
    }
  });
}

template <typename T>
void rbm_backward(const FusedShape& shape, const FusedNoise& noise, const RbmInputs<T>& in, const T* grad_v,
                  const T* log_normaliser, const T* energies, T* a, T* r, T* gwt) {
  const int64_t hidden = in.hidden, n_items = shape.negatives + 1;
  const int64_t chunk = rows_per_backward_chunk(shape, noise, hidden * static_cast<int64_t>(sizeof(T)));
  std::fill(gwt, gwt + shape.dim * hidden, T(0));
  const int64_t capacity = std::min(chunk, shape.batch);
  std::vector<RowItems<T>> items(static_cast<size_t>(capacity));
  std::vector<std::vector<T>> coef(static_cast<size_t>(capacity));
  std::vector<std::vector<T>> sigmoid(static_cast<size_t>(capacity));  // [items, H] per row
  for (int64_t first = 0; first < shape.batch; first += chunk) {
    const int64_t rows = std::min(chunk, shape.batch - first);
    parallel_rows(first, first + rows, (shape.dim + hidden) * n_items, [&](int64_t begin, int64_t end) {
      RowScratch<T> scratch;
      for (int64_t i = begin; i < end; ++i) {
        rbm_row_items(in, shape, noise, i, scratch);
        // The items' pre-activations (their energies are the forward's) in the row's record,
        // to become its sigmoids.
        std::vector<T>& sig = sigmoid[i - first];
        sig.resize(static_cast<size_t>(n_items * hidden));
        for (int64_t n = 0; n < n_items; ++n) rbm_item_pre(in, scratch.items, i, n, sig.data() + n * hidden);
        std::vector<T>& c = coef[i - first];
        row_coefficients(energies + i * n_items, shape.negatives, grad_v[i], log_normaliser[i], c);
        row_delta_sum(scratch.items, c, shape.dim, r + i * shape.dim);
        // a_i = sum_n c_n sigmoid(pre_n), the sigmoids written over the pre-activations.
        T* a_row = a + i * hidden;
        std::fill(a_row, a_row + hidden, T(0));
        for (int64_t n = 0; n < n_items; ++n) {
          T* item_sig = sig.data() + n * hidden;
          sigmoid_accumulate(item_sig, c[n], item_sig, a_row, hidden);
        }
        std::swap(items[i - first], scratch.items);
      }
    });
    // G[k, :] += c_n delta_n[k] sigmoid(pre_n) for every item n with a flip at k.
    for_each_entry_by_owner(items, rows, shape.dim, [&](int64_t k, int64_t row_index, int64_t item, int64_t a) {
      const T c = coef[row_index][item] * items[row_index].value[a];
      axpy(c, sigmoid[row_index].data() + item * hidden, gwt + k * hidden, hidden);
    });
  }
}

template void rbm_forward<float>(const FusedShape&, const FusedNoise&, const RbmInputs<float>&, float*, float*,
                                 float*);
template void rbm_forward<double>(const FusedShape&, const FusedNoise&, const RbmInputs<double>&, double*, double*,
                                  double*);
template void rbm_backward<float>(const FusedShape&, const FusedNoise&, const RbmInputs<float>&, const float*,
                                  const float*, const float*, float*, float*, float*);
template void rbm_backward<double>(const FusedShape&, const FusedNoise&, const RbmInputs<double>&, const double*,
                                   const double*, const double*, double*, double*, double*);

}  // namespace cpu
}  // namespace edfast
