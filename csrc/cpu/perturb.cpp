// CPU perturbation kernels: one task per data row; the row's y, then its negatives.
#include <ATen/Parallel.h>

#include <cstring>

#include "../core/perturb.h"
#include "grain.h"
#include "kernels.h"

namespace edfast {
namespace cpu {
namespace {

// Runs `step(stream, in_row, out_row)` for y and each negative of every row.
template <typename T, typename Step>
void for_each_row_step(const T* x, T* y, T* negatives, const PerturbShape& shape, Step step) {
  const int64_t dim = shape.dim;
  at::parallel_for(0, shape.batch, rows_per_task(dim * (shape.negatives + 1)), [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const uint64_t row = static_cast<uint64_t>(shape.row_offset + i);
      T* y_row = y + i * dim;
      step(core::RowStream(shape.seed, row, core::kStreamY), x + i * dim, y_row);
      for (int64_t j = 0; j < shape.negatives; ++j) {
        const core::RowStream stream(shape.seed, row, core::negative_stream(shape.neg_offset + j));
        step(stream, y_row, negatives + (i * shape.negatives + j) * dim);
      }
    }
  });
}

}  // namespace

template <typename T>
void perturb_gaussian(const T* x, T* y, T* negatives, const PerturbShape& shape, double scale) {
  const int64_t dim = shape.dim, blocks = core::blocks_per_row(dim);
  const T s = static_cast<T>(scale);
  for_each_row_step(x, y, negatives, shape, [&](const core::RowStream& stream, const T* a, T* b) {
    for (int64_t k = 0; k < blocks; ++k) core::gaussian_block(stream, k, a, b, dim, s);
  });
}
template void perturb_gaussian<float>(const float*, float*, float*, const PerturbShape&, double);
template void perturb_gaussian<double>(const double*, double*, double*, const PerturbShape&, double);

void perturb_bernoulli(const uint8_t* x, uint8_t* y, uint8_t* negatives, const PerturbShape& shape,
                       double epsilon) {
  const int64_t dim = shape.dim, blocks = core::blocks_per_row(dim);
  const uint64_t threshold = core::flip_threshold(epsilon);
  for_each_row_step(x, y, negatives, shape,
                    [&](const core::RowStream& stream, const uint8_t* a, uint8_t* b) {
                      for (int64_t k = 0; k < blocks; ++k)
                        core::bernoulli_block(stream, k, a, b, dim, threshold);
                    });
}

void perturb_bitflip(const uint8_t* x, uint8_t* y, uint8_t* negatives, const PerturbShape& shape) {
  const int64_t dim = shape.dim;
  for_each_row_step(x, y, negatives, shape,
                    [&](const core::RowStream& stream, const uint8_t* a, uint8_t* b) {
                      std::memcpy(b, a, static_cast<size_t>(dim));
                      b[core::bitflip_coordinate(stream, dim)] ^= 1u;
                    });
}

void perturb_transition(const int64_t* x, int64_t* y, int64_t* negatives,
                        const PerturbShape& shape, const double* cdf, int64_t num_classes) {
  const int64_t dim = shape.dim, blocks = core::blocks_per_row(dim);
  for_each_row_step(x, y, negatives, shape,
                    [&](const core::RowStream& stream, const int64_t* a, int64_t* b) {
                      for (int64_t k = 0; k < blocks; ++k)
                        core::transition_block(stream, k, a, b, dim, cdf, num_classes);
                    });
}

}  // namespace cpu
}  // namespace edfast
