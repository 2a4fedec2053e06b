// CPU launchers: parallel loops over data rows calling csrc/core/.
#pragma once

#include <cstdint>

#include "../fused_args.h"
#include "../launch_args.h"
#include "../mlp_args.h"

namespace edfast {
namespace cpu {

// y = q(x) and negatives[:, j] = q(y); x, y: [B, D]; negatives: [B, m, D], all contiguous.
template <typename T>
void perturb_gaussian(const T* x, T* y, T* negatives, const PerturbShape& shape, double scale);
// Binary: x, y, negatives in x's own dtype, described by `bits` (no conversion pass).
void perturb_bernoulli(const void* x, void* y, void* negatives, const PerturbShape& shape,
                       double epsilon, const BinaryBits& bits);
void perturb_bitflip(const void* x, void* y, void* negatives, const PerturbShape& shape,
                     const BinaryBits& bits);
void perturb_transition(const int64_t* x, int64_t* y, int64_t* negatives,
                        const PerturbShape& shape, const double* cdf, int64_t num_classes);

// v [B] (input type) and log_normaliser [B] (float32, float64 for float64 input).
void contrastive_forward(FloatType type, const void* e_pos, const void* e_neg, void* v,
                         void* log_normaliser, const ContrastShape& shape);
// grad_pos [B], grad_neg [B, M] (input type) from grad_v [B] (input type).
void contrastive_backward(FloatType type, const void* grad_v, const void* e_pos, const void* e_neg,
                          const void* log_normaliser, void* grad_pos, void* grad_neg,
                          const ContrastShape& shape);
// Fused ED (csrc/cpu/fused.cpp). Forward: v [B], log_normaliser [B] and energies [B, M + 1]
// (E of each item, the row's own first), which the backwards take instead of recomputing.
// Pairwise backward: r [B, N] (sum_n c_n delta_n per row) and s [N, N] (sum_n c_n delta_n
// delta_n^T, symmetric); RBM backward: a [B, H] (sum_n c_n sigmoid(pre_n)), r [B, V] and gwt [V, H] (sum_n c_n
// delta_n sigmoid(pre_n)^T). See csrc/core/pairwise.h and csrc/core/rbm.h.
template <typename T>
void pairwise_forward(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in, T* v,
                      T* log_normaliser, T* energies);
template <typename T>
void pairwise_backward(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in,
                       const T* grad_v, const T* log_normaliser, const T* energies, T* r, T* s);
template <typename T>
void rbm_forward(const FusedShape& shape, const FusedNoise& noise, const RbmInputs<T>& in, T* v, T* log_normaliser,
                 T* energies);
template <typename T>
void rbm_backward(const FusedShape& shape, const FusedNoise& noise, const RbmInputs<T>& in, const T* grad_v,
                  const T* log_normaliser, const T* energies, T* a, T* r, T* gwt);

// Fused MLP (csrc/cpu/mlp.cpp). Forward: v [B] and row_stats [B, 3] (mlp_args.h); with grads,
// also adds the gradients of sum_i v_i to them. Backward adds those of sum_i grad_v[i] v_i.
template <typename T>
void mlp_forward(const FusedShape& shape, const MlpNoise& noise, const MlpInputs<T>& in, T* v, T* row_stats,
                 const MlpGrads<T>* grads);
template <typename T>
void mlp_backward(const FusedShape& shape, const MlpNoise& noise, const MlpInputs<T>& in, const T* grad_v,
                  const T* row_stats, const MlpGrads<T>& grads);

// The instruction set the contrastive kernels run on: "avx512", "avx2" or "baseline"
// (csrc/cpu/contrastive_simd.h).
const char* contrastive_simd_isa();

}  // namespace cpu
}  // namespace edfast
