// Input checks and data preparation shared by the CPU (ops.cpp) and CUDA (ops_cuda.cpp)
// registrations of the edfast ops. Errors name the argument and what was expected.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "core/perturb.h"
#include "launch_args.h"

namespace edfast {

FloatType float_type_of(const at::Tensor& t);

// Validates the arguments of edfast::perturb; returns the launch shape.
PerturbShape check_perturb(const at::Tensor& x, int64_t kind, double param,
                           const c10::optional<at::Tensor>& transition_cdf, int64_t m,
                           int64_t seed, int64_t row_offset, int64_t neg_offset);

// Storage the kernels work on: float32/float64 (Gaussian), x's own dtype (binary), int64 (table).
at::Tensor kernel_input(const at::Tensor& x, int64_t kind);
// How a binary tensor's dtype holds 0 and 1 (csrc/core/perturb.h, BinaryFlip).
BinaryBits binary_bits(at::ScalarType type);
// The kernels' outputs turned back into x's dtype.
std::tuple<at::Tensor, at::Tensor> user_outputs(const at::Tensor& x, at::Tensor y,
                                                at::Tensor negatives, int64_t m);

ContrastShape check_contrastive(const at::Tensor& e_pos, const at::Tensor& e_neg, double w);
ContrastShape check_contrastive_backward(const at::Tensor& grad_v, const at::Tensor& e_pos,
                                         const at::Tensor& e_neg,
                                         const at::Tensor& log_normaliser);
// Float type the log-normaliser is kept in: float64 for float64 energies, else float32.
at::ScalarType accumulate_type(at::ScalarType energy_type);

}  // namespace edfast
