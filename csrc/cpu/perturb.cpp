// CPU perturbation kernels: the per-row work of perturb_rows.h, in parallel over data rows.
#include <ATen/Parallel.h>

#include "grain.h"
#include "kernels.h"
#include "perturb_rows.h"

namespace edfast {
namespace cpu {
namespace {

// Runs rows(begin, end) over all data rows, in tasks of enough work to pay for a thread.
template <typename Rows>
void parallel_rows(const PerturbShape& shape, Rows rows) {
  at::parallel_for(0, shape.batch, rows_per_task(shape.dim * (shape.negatives + 1)), rows);
}

}  // namespace

template <typename T>
void perturb_gaussian(const T* x, T* y, T* negatives, const PerturbShape& shape, double scale) {
  parallel_rows(shape, [&](int64_t begin, int64_t end) {
    gaussian_rows(x, y, negatives, shape, scale, begin, end);
  });
}
template void perturb_gaussian<float>(const float*, float*, float*, const PerturbShape&, double);
template void perturb_gaussian<double>(const double*, double*, double*, const PerturbShape&, double);

void perturb_bernoulli(const void* x, void* y, void* negatives, const PerturbShape& shape,
                       double epsilon, const BinaryBits& bits) {
  const core::BernoulliNoise noise = core::bernoulli_noise(epsilon);
  dispatch_binary(bits, [&](auto tag) {
    using U = decltype(tag);
    parallel_rows(shape, [&](int64_t begin, int64_t end) {
      bernoulli_rows(static_cast<const U*>(x), static_cast<U*>(y), static_cast<U*>(negatives), shape,
                     noise, bits.flip<U>(), begin, end);
    });
  });
}

void perturb_bitflip(const void* x, void* y, void* negatives, const PerturbShape& shape,
                     const BinaryBits& bits) {
  dispatch_binary(bits, [&](auto tag) {
    using U = decltype(tag);
    parallel_rows(shape, [&](int64_t begin, int64_t end) {
      bitflip_rows(static_cast<const U*>(x), static_cast<U*>(y), static_cast<U*>(negatives), shape,
                   bits.flip<U>(), begin, end);
    });
  });
}

void perturb_transition(const int64_t* x, int64_t* y, int64_t* negatives,
                        const PerturbShape& shape, const double* cdf, int64_t num_classes) {
  parallel_rows(shape, [&](int64_t begin, int64_t end) {
    transition_rows(x, y, negatives, shape, cdf, num_classes, begin, end);
  });
}

}  // namespace cpu
}  // namespace edfast
