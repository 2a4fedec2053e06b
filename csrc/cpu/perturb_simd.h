// SIMD versions of the dense perturbation rows of perturb_rows.h (Gaussian, dense Bernoulli,
// categorical), at the run-time simd_level(): AVX-512, AVX2, or none (the scalar rows). They draw
// bit-identical noise to the scalar core and so to CUDA (simd/simd_noise.h). Torch-free, so the
// C++ tests run them (tests/cpp/test_cpu_simd.cpp).
#pragma once

#include <cstdint>

#include "../core/perturb.h"
#include "../launch_args.h"
#include "simd_level.h"

namespace edfast {
namespace cpu {

namespace simd {

// Each returns false, doing nothing, where the scalar rows must run instead (level kBaseline,
// or a categorical table the SIMD path cannot take).
template <typename T>
bool gaussian_rows(const T* x, T* y, T* negatives, const PerturbShape& shape, double scale,
                   int64_t begin, int64_t end);
template <typename U>
bool dense_bernoulli_rows(const U* x, U* y, U* negatives, const PerturbShape& shape,
                          uint64_t threshold, core::BinaryFlip<U> flip, int64_t begin, int64_t end);
bool transition_rows(const int64_t* x, int64_t* y, int64_t* negatives, const PerturbShape& shape,
                     const double* cdf, int64_t num_classes, int64_t begin, int64_t end);

// The flips of `streams` dense Bernoulli streams (ids first_stream + s) of one row as bitmaps:
// bit d of bitmap[s * ceil(dim / 64) + d / 64] set where word d < threshold, bits past dim zero.
bool dense_flip_bitmap(uint64_t seed, uint64_t row, uint32_t first_stream, int64_t streams, int64_t dim,
                       uint64_t threshold, uint64_t* bitmap);

// Word 0 of block 0 of `streams` streams (ids first_stream + s) of one row: BitFlip's draws.
bool first_words(uint64_t seed, uint64_t row, uint32_t first_stream, int64_t streams, uint32_t* out);

}  // namespace simd
}  // namespace cpu
}  // namespace edfast
