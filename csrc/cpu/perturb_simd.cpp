// The SIMD perturbation rows (perturb_simd.h), compiled once per instruction set: the same
// source (simd/perturb_lanes.h over simd/avx512.h or simd/avx2.h) inside a GCC target region
// and a namespace of its own, and chosen at run time, as torch's CPU_CAPABILITY kernels are.
#include "perturb_simd.h"

#include <cmath>
#include <cstring>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define EDFAST_X86_SIMD 1
#endif

namespace edfast {
namespace cpu {

#ifdef EDFAST_X86_SIMD
// GCC 12 warns about the intrinsics headers' own undefined-register idiom (_mm512_undefined).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC push_options
#pragma GCC target("avx512f")
namespace avx512 {
#include "simd/avx512.h"
#include "simd/simd_noise.h"
#include "simd/perturb_lanes.h"
}  // namespace avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2")
namespace avx2 {
#include "simd/avx2.h"
#include "simd/simd_noise.h"
#include "simd/perturb_lanes.h"
}  // namespace avx2
#pragma GCC pop_options
#pragma GCC diagnostic pop
#endif

namespace simd {

// Calls the avx512 or avx2 instance of `call` for the level in use; false at kBaseline.
#ifdef EDFAST_X86_SIMD
#define EDFAST_SIMD_DISPATCH(call)                                  \
  switch (simd_level()) {                                           \
    case SimdLevel::kAvx512: return avx512::call;                   \
    case SimdLevel::kAvx2: return avx2::call;                       \
    default: return false;                                          \
  }
#else
#define EDFAST_SIMD_DISPATCH(call) return false;
#endif

template <typename T>
bool gaussian_rows(const T* x, T* y, T* negatives, const PerturbShape& shape, double scale,
                   int64_t begin, int64_t end) {
  EDFAST_SIMD_DISPATCH(gaussian_rows(x, y, negatives, shape, scale, begin, end))
}
template bool gaussian_rows<float>(const float*, float*, float*, const PerturbShape&, double, int64_t, int64_t);
template bool gaussian_rows<double>(const double*, double*, double*, const PerturbShape&, double, int64_t, int64_t);

template <typename U>
bool dense_bernoulli_rows(const U* x, U* y, U* negatives, const PerturbShape& shape,
                          uint64_t threshold, core::BinaryFlip<U> flip, int64_t begin, int64_t end) {
  EDFAST_SIMD_DISPATCH(dense_bernoulli_rows(x, y, negatives, shape, threshold, flip, begin, end))
}
#define EDFAST_BERNOULLI_INSTANCE(U)                                                                  \
  template bool dense_bernoulli_rows<U>(const U*, U*, U*, const PerturbShape&, uint64_t, core::BinaryFlip<U>, \
                                        int64_t, int64_t);
EDFAST_BERNOULLI_INSTANCE(uint8_t)
EDFAST_BERNOULLI_INSTANCE(uint16_t)
EDFAST_BERNOULLI_INSTANCE(uint32_t)
EDFAST_BERNOULLI_INSTANCE(uint64_t)
#undef EDFAST_BERNOULLI_INSTANCE

bool transition_rows(const int64_t* x, int64_t* y, int64_t* negatives, const PerturbShape& shape,
                     const double* cdf, int64_t num_classes, int64_t begin, int64_t end) {
  EDFAST_SIMD_DISPATCH(transition_rows(x, y, negatives, shape, cdf, num_classes, begin, end))
}

bool dense_flip_bitmap(uint64_t seed, uint64_t row, uint32_t first_stream, int64_t streams, int64_t dim,
                       uint64_t threshold, uint64_t* bitmap) {
#ifdef EDFAST_X86_SIMD
  switch (simd_level()) {
    case SimdLevel::kAvx512: avx512::dense_flip_bitmap(seed, row, first_stream, streams, dim, threshold, bitmap); return true;
    case SimdLevel::kAvx2: avx2::dense_flip_bitmap(seed, row, first_stream, streams, dim, threshold, bitmap); return true;
    default: return false;
  }
#else
  return false;
#endif
}

bool first_words(uint64_t seed, uint64_t row, uint32_t first_stream, int64_t streams, uint32_t* out) {
#ifdef EDFAST_X86_SIMD
  switch (simd_level()) {
    case SimdLevel::kAvx512: avx512::first_words(seed, row, first_stream, streams, out); return true;
    case SimdLevel::kAvx2: avx2::first_words(seed, row, first_stream, streams, out); return true;
    default: return false;
  }
#else
  return false;
#endif
}

#undef EDFAST_SIMD_DISPATCH

}  // namespace simd
}  // namespace cpu
}  // namespace edfast
