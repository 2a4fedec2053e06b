// Horizontal reductions by one fixed tree, whatever the vector width, torch-free.
//
// Lanes are numbered as "virtual lanes" across the K native vectors that hold a row's partial
// results in order (K = 1, 2 or 4 for 64-, 32- and 16-byte vectors). The tree combines lane l
// with lane l + n/2, then l + n/4, ..., always as op(lower, upper), so a sum over 16 virtual
// lanes has the same bits in one 64-byte vector, two 32-byte or four 16-byte ones.
//
// reduce_rows does the same tree for R rows at once, "transposed": each step gathers the
// lower and upper halves of the rows' segments into two vectors (__builtin_shufflevector) and
// combines them with one operation, so four rows cost about as much as two single-row trees.
#pragma once

#include <cstddef>
#include <cstring>
#include <utility>

#include "vec_exp.h"

#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define EDFAST_HAS_SHUFFLEVECTOR 1
#endif
#endif

namespace edfast {
namespace simd {

template <class V> constexpr int lanes() { return int(sizeof(V) / sizeof(LaneOf<V>)); }

template <class V> struct HalfOf {
  typedef LaneOf<V> type __attribute__((vector_size(sizeof(V) / 2)));
};

// One lane from a vector: lane l meets lane l + n/2, down to lane 0.
template <class V, class Op> EDFAST_SIMD_INLINE LaneOf<V> reduce(V v, Op op) {
  if constexpr (lanes<V>() == 2) {
    return op(v[0], v[1]);
  } else {
    typename HalfOf<V>::type lo, hi;
    std::memcpy(&lo, &v, sizeof lo);
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
    return reduce(op(lo, hi), op);
  }
}

// The virtual lanes held in v[0..K) folded into v[0] by the top levels of the tree.
template <int K, class V, class Op> EDFAST_SIMD_INLINE void fold(V (&v)[K], Op op) {
  for (int half = K / 2; half >= 1; half /= 2) {
    for (int k = 0; k < half; ++k) v[k] = op(v[k], v[k + half]);
  }
}

#ifdef EDFAST_HAS_SHUFFLEVECTOR
// Lane p of the gathered lower (high = false) or upper halves of the `segments` segments of
// length `length` of x, then of y (whose lanes shufflevector numbers from `width`).
constexpr int gather_index(int p, int segments, int length, int width, bool high) {
  const int half = length / 2, segment = p / half, offset = p % half;
  return (segment < segments ? 0 : width) + (segment % segments) * length + offset +
         (high ? half : 0);
}

template <int S, int L, bool kHigh, class V, std::size_t... P>
EDFAST_SIMD_INLINE V gather_pair(V x, V y, std::index_sequence<P...>) {
  return __builtin_shufflevector(x, y, gather_index(int(P), S, L, lanes<V>(), kHigh)...);
}
template <int S, int L, bool kHigh, class V, std::size_t... P>
EDFAST_SIMD_INLINE typename HalfOf<V>::type gather_half(V x, std::index_sequence<P...>) {
  return __builtin_shufflevector(x, x, gather_index(int(P), S, L, lanes<V>(), kHigh)...);
}

// N vectors, each holding S rows' segments of lanes<V>() / S lanes, reduced to the rows'
// values in out[0 .. N*S).
template <int N, int S, class V, class Op>
EDFAST_SIMD_INLINE void reduce_segments(V (&v)[N], Op op, LaneOf<V>* out) {
  constexpr int W = lanes<V>(), L = W / S;
  if constexpr (N > 1) {  // pair neighbours: rows stay in order
    constexpr auto all = std::make_index_sequence<W>();
    V next[N / 2];
    for (int i = 0; i < N / 2; ++i) {
      next[i] = op(gather_pair<S, L, false>(v[2 * i], v[2 * i + 1], all),
                   gather_pair<S, L, true>(v[2 * i], v[2 * i + 1], all));
    }
    reduce_segments<N / 2, 2 * S>(next, op, out);
  } else if constexpr (L > 1) {
    constexpr auto half = std::make_index_sequence<W / 2>();
    typename HalfOf<V>::type next[1] = {
        op(gather_half<S, L, false>(v[0], half), gather_half<S, L, true>(v[0], half))};
    reduce_segments<1, S>(next, op, out);
  } else {
    std::memcpy(out, &v[0], sizeof v[0]);
  }
}
#endif

// out[r] = the tree's result over the K vectors v[r][0..K) of row r, for R rows.
template <int R, int K, class V, class Op>
EDFAST_SIMD_INLINE void reduce_rows(V (&v)[R][K], Op op, LaneOf<V>* out) {
  V rows[R];
  for (int r = 0; r < R; ++r) {
    fold<K>(v[r], op);
    rows[r] = v[r][0];
  }
#ifdef EDFAST_HAS_SHUFFLEVECTOR
  if constexpr (R > 1 && lanes<V>() >= R) {
    reduce_segments<R, 1>(rows, op, out);
    return;
  }
#endif
  for (int r = 0; r < R; ++r) out[r] = reduce(rows[r], op);
}

}  // namespace simd
}  // namespace edfast
