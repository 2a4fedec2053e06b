// Vectorised rows of contrastive_logsumexp (csrc/cpu/contrastive_simd.h), written once over
// vector extensions (csrc/cpu/vec_exp.h, vec_reduce.h) and instantiated for three
// instruction sets.
//
// A row is summed in a fixed set of virtual lanes (RowShape: 16 float lanes, 8 double lanes,
// or 16 + 16 float lanes for the even and odd bfloat16 elements), held as 1, 2 or 4 native
// vectors each and reduced by one tree (vec_reduce.h); a * b + c contracts to an FMA in the
// AVX2 and AVX-512 paths. So AVX2 and AVX-512 agree bit for bit, and the baseline (no FMA)
// differs from them by about an ulp.
#include "contrastive_simd.h"
#include "simd_level.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "../core/contrastive.h"

// After core/contrastive.h, whose scalar maths rounds as written: FMA contraction from here on.
#include "simd_targets.h"
#include "vec_exp.h"
#include "vec_reduce.h"

namespace edfast {
namespace cpu {
namespace {

using simd::LaneOf;

template <class T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };
template <class T> using Acc = typename AccOf<T>::type;

using simd::Vec;

// Scalars of each element type as their accumulator type, and back.
EDFAST_SIMD_INLINE float to_acc(float x) { return x; }
EDFAST_SIMD_INLINE double to_acc(double x) { return x; }
EDFAST_SIMD_INLINE float to_acc(uint16_t x) { return simd::bf16_to_f32(x); }
template <class T> EDFAST_SIMD_INLINE T from_acc(Acc<T> x);
template <> EDFAST_SIMD_INLINE float from_acc<float>(float x) { return x; }
template <> EDFAST_SIMD_INLINE double from_acc<double>(double x) { return x; }
template <> EDFAST_SIMD_INLINE uint16_t from_acc<uint16_t>(float x) { return simd::f32_to_bf16(x); }

// +inf in each element type: the padding of a row's last, partial chunk of negatives.
template <class T> EDFAST_SIMD_INLINE T infinity() { return std::numeric_limits<T>::infinity(); }
template <> EDFAST_SIMD_INLINE uint16_t infinity<uint16_t>() { return 0x7F80; }

template <class V> EDFAST_SIMD_INLINE V load(const float* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V> EDFAST_SIMD_INLINE V load(const double* p) {
  V v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class V> EDFAST_SIMD_INLINE void store(float* p, V v) { std::memcpy(p, &v, sizeof v); }
template <class V> EDFAST_SIMD_INLINE void store(double* p, V v) { std::memcpy(p, &v, sizeof v); }
template <class V> EDFAST_SIMD_INLINE void store(uint16_t* p, V v) {
  typedef uint16_t H __attribute__((vector_size(sizeof(V) / 2)));
  const H h = simd::f32_to_bf16<H>(v);
  std::memcpy(p, &h, sizeof h);
}

template <simd::ExpDomain kDomain = simd::ExpDomain::kAll, class V>
EDFAST_SIMD_INLINE V exp(V x) {
  if constexpr (std::is_same<LaneOf<V>, float>::value) {
    return simd::exp_f32<V, kDomain>(x);
  } else {
    return simd::exp_f64(x);
  }
}

struct Add {
  template <class X> EDFAST_SIMD_INLINE X operator()(X a, X b) const { return a + b; }
};
struct Max {
  template <class X> EDFAST_SIMD_INLINE X operator()(X a, X b) const {
    if constexpr (std::is_arithmetic<X>::value) {
      return a > b ? a : b;
    } else {
      return simd::max(a, b);
    }
  }
};

// The shape of a row for an instruction set of kBytes-wide vectors. A row is read in chunks
// of 64 bytes of accumulator lanes: K native loads, each giving Q vectors of W lanes (Q = 2
// for bfloat16: its even and odd elements). Its partial results sit in K * Q vectors,
// accumulator q * K + k for load k's vector q, so that the reduction tree (vec_reduce.h)
// first joins even with odd, then the loads: the same virtual lanes on every instruction set.
template <int kBytes, class T> struct RowShape {
  using A = Acc<T>;
  using V = Vec<A, kBytes>;
  static constexpr int kWidth = kBytes / sizeof(A);                       // W
  static constexpr int kPerLoad = std::is_same<T, uint16_t>::value ? 2 : 1;  // Q
  static constexpr int kLoads = 64 / kBytes;                              // K
  static constexpr int kAccumulators = kLoads * kPerLoad;
  static constexpr int kChunk = kAccumulators * kWidth;  // elements per chunk
  // Rows are processed kRows at a time, interleaved, so that their chains of dependent
  // operations (the max, its reduction, the exps, the sum's reduction) overlap, which
  // matters for short rows: four loads in flight (4 rows with AVX-512, 2 with AVX2, 1 with
  // 16-byte vectors).
  static constexpr int kRows = kLoads >= 4 ? 1 : 4 / kLoads;
};

// Load k of a chunk as its Q vectors (fn(accumulator index, vector)).
template <int kBytes, class T, class Fn>
EDFAST_SIMD_INLINE void load_vectors(const T* chunk, int k, Fn fn) {
  using S = RowShape<kBytes, T>;
  using V = typename S::V;
  if constexpr (S::kPerLoad == 1) {
    fn(k, load<V>(chunk + k * S::kWidth));
  } else {
    simd::UIntVec<V> pairs;
    std::memcpy(&pairs, chunk + k * 2 * S::kWidth, sizeof pairs);
    V even, odd;
    simd::bf16_pairs_to_f32(pairs, even, odd);
    fn(k, even);
    fn(S::kLoads + k, odd);
  }
}

// Stores the Q vectors of load k of a chunk (accumulators k and K + k).
template <int kBytes, class T, class V>
EDFAST_SIMD_INLINE void store_vectors(T* chunk, int k, const V* values) {
  using S = RowShape<kBytes, T>;
  if constexpr (S::kPerLoad == 1) {
    store(chunk + k * S::kWidth, values[k]);
  } else {
    const auto pairs =
        simd::f32_to_bf16_pairs<simd::UIntVec<V>>(values[k], values[S::kLoads + k]);
    std::memcpy(chunk + k * 2 * S::kWidth, &pairs, sizeof pairs);
  }
}

// The terms pos[r] - neg[r*m + j] of R rows, chunk by chunk: fn(r, accumulator index, term
// vector). The last, partial chunk is padded with +inf negatives: terms -inf, which neither
// raise a max nor add to a sum of exps.
template <int kBytes, int R, class T, class Fn>
EDFAST_SIMD_INLINE void for_each_term(const T* pos, const T* neg, int64_t m, Fn fn) {
  using S = RowShape<kBytes, T>;
  using V = typename S::V;
  constexpr int K = S::kLoads, E = S::kChunk;
  const int64_t full = m - m % E;
  Acc<T> p[R];
  for (int r = 0; r < R; ++r) p[r] = to_acc(pos[r]);
  for (int64_t j = 0; j < full; j += E) {
    for (int r = 0; r < R; ++r) {
      for (int k = 0; k < K; ++k) {
        load_vectors<kBytes>(neg + r * m + j, k, [&](int a, V x) { fn(r, a, p[r] - x); });
      }
    }
  }
  if (full < m) {
    T tail[E];
    for (int r = 0; r < R; ++r) {
      for (int l = 0; l < E; ++l) tail[l] = infinity<T>();
      std::memcpy(tail, neg + r * m + full, (m - full) * sizeof(T));
      for (int k = 0; k < K; ++k) {
        load_vectors<kBytes>(tail, k, [&](int a, V x) { fn(r, a, p[r] - x); });
      }
    }
  }
}

// max_j (pos[r] - neg[r*m + j]) for R rows.
template <int kBytes, int R, class T>
EDFAST_SIMD_INLINE void rows_max(const T* pos, const T* neg, int64_t m, Acc<T>* out) {
  using S = RowShape<kBytes, T>;
  using V = typename S::V;
  V mx[R][S::kAccumulators];
  for (auto& row : mx) {
    for (V& lanes : row) lanes = simd::splat<V>(-std::numeric_limits<Acc<T>>::infinity());
  }
  for_each_term<kBytes, R>(pos, neg, m, [&](int r, int k, V term) {
    mx[r][k] = simd::max(mx[r][k], term);
  });
  simd::reduce_rows<R, S::kAccumulators>(mx, Max{}, out);
}

// sum_j exp(pos[r] - neg[r*m + j] - row_max[r]) for R rows. Every exponent is <= 0 (row_max is
// the max of the same terms, computed alike) or NaN, and each sum includes exp(0) = 1.
template <int kBytes, int R, class T>
EDFAST_SIMD_INLINE void rows_sum(const T* pos, const T* neg, int64_t m, const Acc<T>* row_max,
                                 Acc<T>* out) {
  using S = RowShape<kBytes, T>;
  using V = typename S::V;
  V sum[R][S::kAccumulators];
  for (auto& row : sum) {
    for (V& lanes : row) lanes = V{};
  }
  for_each_term<kBytes, R>(pos, neg, m, [&](int r, int k, V term) {
    sum[r][k] += exp<simd::ExpDomain::kSumTerm>(term - row_max[r]);
  });
  simd::reduce_rows<R, S::kAccumulators>(sum, Add{}, out);
}

// For n rows (the arrays padded to a whole number of vectors): log_normaliser =
// log(w + exp(max) * sum) and v = log_normaliser - log M, or NaN where the vector path
// cannot vouch for the row (max not finite: a +inf term, or every term -inf; sum NaN: a NaN
// term). Returns the number of NaN rows.
template <int kBytes, class T>
EDFAST_SIMD_INLINE int64_t finish_rows(const float* row_max, const float* row_sum, int64_t n,
                                       float log_w, float log_m, float* log_normaliser, T* v) {
  using V = Vec<float, kBytes>;
  using I = simd::IntVec<V>;
  constexpr int W = kBytes / sizeof(float);
  I vouched{};  // -1 per lane the vector path vouches for
  int64_t lanes = 0;
  for (int64_t i = 0; i < n; i += W, lanes += W) {
    const V mx = load<V>(row_max + i), sum = load<V>(row_sum + i);
    // Join the term log w as OnlineLogSumExp::push does; exp(-inf) = 0 leaves w = 0 out.
    const V d = log_w - mx;
    const auto w_above = d > 0.0f;
    const V e = exp(simd::select(w_above, -d, d));
    const V joined_sum = simd::select(w_above, sum * e + 1.0f, sum + e);
    const V joined_max = simd::select(w_above, simd::splat<V>(log_w), mx);
    V value = joined_max + simd::log_f32(joined_sum);
    // Both finite (x - x is 0 for finite x, NaN otherwise); one comparison, as GCC 12
    // scalarises the & of two AVX-512 comparisons here.
    const I ok = (I)((mx - mx) + (sum - sum) == 0.0f);
    value = simd::select(ok, value, simd::splat<V>(std::numeric_limits<float>::quiet_NaN()));
    vouched += ok;
    if (i + W <= n) {
      store(log_normaliser + i, value);
      store(v + i, value - log_m);
    } else {
      float l_out[W];
      T v_out[W];
      store(l_out, value);
      store(v_out, value - log_m);
      std::memcpy(log_normaliser + i, l_out, (n - i) * sizeof(float));
      std::memcpy(v + i, v_out, (n - i) * sizeof(T));
    }
  }
  return lanes + simd::reduce(vouched, Add{});  // padding lanes are vouched for
}
template <int kBytes>
EDFAST_SIMD_INLINE int64_t finish_rows(const double* row_max, const double* row_sum, int64_t n,
                                       double log_w, double log_m, double* log_normaliser,
                                       double* v) {
  int64_t flagged = 0;
  for (int64_t i = 0; i < n; ++i) {  // float64 is no hot path: one scalar log per row
    core::OnlineLogSumExp<double> lse{row_max[i], row_sum[i]};
    if (!std::isfinite(lse.max) || std::isnan(lse.sum)) {
      log_normaliser[i] = v[i] = std::numeric_limits<double>::quiet_NaN();
      ++flagged;
      continue;
    }
    if (log_w > -std::numeric_limits<double>::infinity()) lse.push(log_w);
    log_normaliser[i] = lse.value();
    v[i] = log_normaliser[i] - log_m;
  }
  return flagged;
}

template <int kBytes, class T>
EDFAST_SIMD_INLINE int64_t forward_rows(const T* pos, const T* neg, int64_t rows, int64_t m,
                                        Acc<T> log_w, Acc<T> log_m, Acc<T>* log_normaliser,
                                        T* v) {
  using S = RowShape<kBytes, T>;
  constexpr int R = S::kRows;
  // A block of rows gets a max sweep, then an exp sweep, then one vectorised finish: about
  // 16 KB of negatives, so that the exp sweep finds them in L1, and at most kBlock rows.
  constexpr int64_t kBlock = 64;
  const int64_t block = std::max<int64_t>(R, std::min<int64_t>(kBlock, 4096 / m));
  // Padding rows past the block's end: max 0, sum 1 (finite, and their results are dropped).
  Acc<T> row_max[kBlock], row_sum[kBlock];
  int64_t flagged = 0;
  for (int64_t begin = 0; begin < rows; begin += block) {
    const int64_t n = std::min(block, rows - begin);
    const T* block_pos = pos + begin;
    const T* block_neg = neg + begin * m;
    int64_t i = 0;
    for (; i + R <= n; i += R) rows_max<kBytes, R>(block_pos + i, block_neg + i * m, m, row_max + i);
    for (; i < n; ++i) rows_max<kBytes, 1>(block_pos + i, block_neg + i * m, m, row_max + i);
    for (i = 0; i + R <= n; i += R) {
      rows_sum<kBytes, R>(block_pos + i, block_neg + i * m, m, row_max + i, row_sum + i);
    }
    for (; i < n; ++i) {
      rows_sum<kBytes, 1>(block_pos + i, block_neg + i * m, m, row_max + i, row_sum + i);
    }
    for (; i < kBlock; ++i) {
      row_max[i] = 0;
      row_sum[i] = 1;
    }
    flagged += finish_rows<kBytes>(row_max, row_sum, n, log_w, log_m, log_normaliser + begin,
                                   v + begin);
  }
  return flagged;
}

// R rows of the backward, interleaved as the forward's.
template <int kBytes, int R, class T>
EDFAST_SIMD_INLINE void backward_row_group(const T* grad_v, const T* pos, const T* neg,
                                           const Acc<T>* log_normaliser, int64_t m, T* grad_pos,
                                           T* grad_neg) {
  using S = RowShape<kBytes, T>;
  using A = Acc<T>;
  using V = typename S::V;
  constexpr int W = S::kWidth, K = S::kLoads, Q = S::kPerLoad, E = S::kChunk;
  constexpr int kAcc = S::kAccumulators;
  const int64_t full = m - m % E;
  A g[R], p[R], normaliser[R];
  V minus_g[R], total[R][kAcc];
  for (int r = 0; r < R; ++r) {
    g[r] = to_acc(grad_v[r]);
    p[r] = to_acc(pos[r]);
    normaliser[r] = log_normaliser[r];
    minus_g[r] = simd::splat<V>(-g[r]);
    for (V& lanes : total[r]) lanes = V{};
  }
  for (int64_t j = 0; j < full; j += E) {
    for (int r = 0; r < R; ++r) {
      for (int k = 0; k < K; ++k) {
        V out[kAcc];
        load_vectors<kBytes>(neg + r * m + j, k, [&](int a, V x) {
          const V weight = exp((p[r] - x) - normaliser[r]);
          total[r][a] += weight;
          out[a] = minus_g[r] * weight;
        });
        store_vectors<kBytes>(grad_neg + r * m + j, k, out);
      }
    }
  }
  if (full < m) {  // the last, partial chunk through buffers, its padding lanes masked
    const int64_t rest = m - full;
    A element[kAcc * W];  // which element of the chunk each accumulator lane holds
    for (int k = 0; k < K; ++k) {
      for (int q = 0; q < Q; ++q) {
        for (int i = 0; i < W; ++i) element[(q * K + k) * W + i] = A((k * W + i) * Q + q);
      }
    }
    for (int r = 0; r < R; ++r) {
      T tail_in[E] = {}, tail_out[E];
      std::memcpy(tail_in, neg + r * m + full, rest * sizeof(T));
      for (int k = 0; k < K; ++k) {
        V out[kAcc];
        load_vectors<kBytes>(tail_in, k, [&](int a, V x) {
          V weight = exp((p[r] - x) - normaliser[r]);
          weight = simd::select(load<V>(element + a * W) < A(rest), weight, V{});
          total[r][a] += weight;
          out[a] = minus_g[r] * weight;
        });
        store_vectors<kBytes>(tail_out, k, out);
      }
      std::memcpy(grad_neg + r * m + full, tail_out, rest * sizeof(T));
    }
  }
  A sum[R];
  simd::reduce_rows<R, kAcc>(total, Add{}, sum);
  for (int r = 0; r < R; ++r) grad_pos[r] = from_acc<T>(g[r] * sum[r]);
}

template <int kBytes, class T>
EDFAST_SIMD_INLINE void backward_rows(const T* grad_v, const T* pos, const T* neg,
                                      const Acc<T>* log_normaliser, int64_t rows, int64_t m,
                                      T* grad_pos, T* grad_neg) {
  constexpr int R = RowShape<kBytes, T>::kRows;
  int64_t i = 0;
  for (; i + R <= rows; i += R) {
    backward_row_group<kBytes, R>(grad_v + i, pos + i, neg + i * m, log_normaliser + i, m,
                                  grad_pos + i, grad_neg + i * m);
  }
  for (; i < rows; ++i) {
    backward_row_group<kBytes, 1>(grad_v + i, pos + i, neg + i * m, log_normaliser + i, m,
                                  grad_pos + i, grad_neg + i * m);
  }
}

// The entry points, one per instruction set; each inlines the templates above.
#define EDFAST_FORWARD_ARGS(T)                                                          \
  const T *pos, const T *neg, int64_t rows, int64_t m, Acc<T> log_w, Acc<T> log_m,     \
      Acc<T> *log_normaliser, T *v
#define EDFAST_FORWARD_PASS pos, neg, rows, m, log_w, log_m, log_normaliser, v
#define EDFAST_BACKWARD_ARGS(T)                                                      \
  const T *grad_v, const T *pos, const T *neg, const Acc<T> *log_normaliser, int64_t rows, \
      int64_t m, T *grad_pos, T *grad_neg
#define EDFAST_BACKWARD_PASS grad_v, pos, neg, log_normaliser, rows, m, grad_pos, grad_neg

template <class T> int64_t forward_baseline(EDFAST_FORWARD_ARGS(T)) {
  return forward_rows<16>(EDFAST_FORWARD_PASS);
}
template <class T> void backward_baseline(EDFAST_BACKWARD_ARGS(T)) {
  backward_rows<16>(EDFAST_BACKWARD_PASS);
}
#ifdef EDFAST_X86_DISPATCH
template <class T> EDFAST_TARGET_AVX2 int64_t forward_avx2(EDFAST_FORWARD_ARGS(T)) {
  return forward_rows<32>(EDFAST_FORWARD_PASS);
}
template <class T> EDFAST_TARGET_AVX2 void backward_avx2(EDFAST_BACKWARD_ARGS(T)) {
  backward_rows<32>(EDFAST_BACKWARD_PASS);
}
template <class T> EDFAST_TARGET_AVX512 int64_t forward_avx512(EDFAST_FORWARD_ARGS(T)) {
  return forward_rows<64>(EDFAST_FORWARD_PASS);
}
template <class T> EDFAST_TARGET_AVX512 void backward_avx512(EDFAST_BACKWARD_ARGS(T)) {
  backward_rows<64>(EDFAST_BACKWARD_PASS);
}
#endif

#define EDFAST_KERNELS(NAME)                                                            \
  ContrastRowKernels {                                                                  \
    #NAME, {&forward_##NAME<float>, &backward_##NAME<float>},                          \
        {&forward_##NAME<double>, &backward_##NAME<double>},                            \
        {&forward_##NAME<uint16_t>, &backward_##NAME<uint16_t>},                        \
  }

ContrastRowKernels choose() {
#ifdef EDFAST_X86_DISPATCH
  switch (simd_level()) {
    case SimdLevel::kAvx512: return EDFAST_KERNELS(avx512);
    case SimdLevel::kAvx2: return EDFAST_KERNELS(avx2);
    default: break;
  }
#endif
  return EDFAST_KERNELS(baseline);
}

}  // namespace

const ContrastRowKernels& contrast_row_kernels() {
  static const ContrastRowKernels chosen = choose();
  return chosen;
}

}  // namespace cpu
}  // namespace edfast
