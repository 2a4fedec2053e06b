// The per-row work of the CPU perturbation kernels: y from x, then the M negatives from y, for
// data rows [begin, end). Torch-free, so that the C++ tests run exactly this code next to the
// CUDA kernels under the execution model (tests/cpp/test_cuda_perturb.cpp); perturb.cpp runs
// it in parallel over rows. The dense draws take the SIMD rows of perturb_simd.h where the CPU
// has them (bit-identical noise); the scalar rows below are the fallback and the reference.
#pragma once

#include <cstdint>
#include <cstring>

#include "../core/perturb.h"
#include "../launch_args.h"
#include "perturb_simd.h"

namespace edfast {
namespace cpu {

// Runs `step(stream, in_row, out_row)` for y and each negative of rows [begin, end).
template <typename T, typename Step>
void perturb_rows(const T* x, T* y, T* negatives, const PerturbShape& shape, int64_t begin,
                  int64_t end, Step step) {
  const int64_t dim = shape.dim;
  for (int64_t i = begin; i < end; ++i) {
    const uint64_t row = static_cast<uint64_t>(shape.row_offset + i);
    T* y_row = y + i * dim;
    step(core::RowStream(shape.seed, row, core::kStreamY), x + i * dim, y_row);
    for (int64_t j = 0; j < shape.negatives; ++j) {
      const core::RowStream stream(shape.seed, row, core::negative_stream(shape.neg_offset + j));
      step(stream, y_row, negatives + (i * shape.negatives + j) * dim);
    }
  }
}

template <typename T>
void gaussian_rows(const T* x, T* y, T* negatives, const PerturbShape& shape, double scale,
                   int64_t begin, int64_t end) {
  if (simd::gaussian_rows(x, y, negatives, shape, scale, begin, end)) return;
  const int64_t dim = shape.dim, blocks = core::blocks_per_row(dim);
  const T s = static_cast<T>(scale);
  perturb_rows(x, y, negatives, shape, begin, end, [&](const core::RowStream& stream, const T* a, T* b) {
    for (int64_t k = 0; k < blocks; ++k) core::gaussian_block(stream, k, a, b, dim, s);
  });
}

template <typename U>
void bernoulli_rows(const U* x, U* y, U* negatives, const PerturbShape& shape,
                    const core::BernoulliNoise& noise, core::BinaryFlip<U> flip, int64_t begin,
                    int64_t end) {
  if (!noise.sparse && simd::dense_bernoulli_rows(x, y, negatives, shape, noise.threshold, flip, begin, end)) return;
  const int64_t dim = shape.dim, blocks = core::blocks_per_row(dim);
  perturb_rows(x, y, negatives, shape, begin, end, [&](const core::RowStream& stream, const U* a, U* b) {
    if (noise.sparse) {
      std::memcpy(b, a, static_cast<size_t>(dim) * sizeof(U));
      core::for_each_gap_flip(stream, dim, noise.gap_scale, [&](int64_t d) { b[d] = flip(b[d]); });
    } else {
      for (int64_t k = 0; k < blocks; ++k) core::bernoulli_block(stream, k, a, b, dim, noise.threshold, flip);
    }
  });
}

template <typename U>
void bitflip_rows(const U* x, U* y, U* negatives, const PerturbShape& shape, core::BinaryFlip<U> flip,
                  int64_t begin, int64_t end) {
  const int64_t dim = shape.dim;
  perturb_rows(x, y, negatives, shape, begin, end, [&](const core::RowStream& stream, const U* a, U* b) {
    std::memcpy(b, a, static_cast<size_t>(dim) * sizeof(U));
    const int64_t d = core::bitflip_coordinate(stream, dim);
    b[d] = flip(b[d]);
  });
}

inline void transition_rows(const int64_t* x, int64_t* y, int64_t* negatives,
                            const PerturbShape& shape, const double* cdf, int64_t num_classes,
                            int64_t begin, int64_t end) {
  if (simd::transition_rows(x, y, negatives, shape, cdf, num_classes, begin, end)) return;
  const int64_t dim = shape.dim, blocks = core::blocks_per_row(dim);
  perturb_rows(x, y, negatives, shape, begin, end,
               [&](const core::RowStream& stream, const int64_t* a, int64_t* b) {
                 for (int64_t k = 0; k < blocks; ++k)
                   core::transition_block(stream, k, a, b, dim, cdf, num_classes);
               });
}

}  // namespace cpu
}  // namespace edfast
