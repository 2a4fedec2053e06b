// CUDA launchers: raw pointers, sizes and a stream; defined in the .cu files of this folder,
// which include no torch header. Every launcher enqueues on `stream` and returns the
// cudaError_t of the launch.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

#include "../fused_args.h"
#include "../launch_args.h"
#include "../mlp_args.h"

namespace edfast {
namespace cuda {

template <typename T>
cudaError_t perturb_gaussian(const T* x, T* y, T* negatives, const PerturbShape& shape,
                             double scale, cudaStream_t stream);
// Binary: x, y, negatives in x's own dtype, described by `bits`.
cudaError_t perturb_bernoulli(const void* x, void* y, void* negatives, const PerturbShape& shape,
                              double epsilon, const BinaryBits& bits, cudaStream_t stream);
cudaError_t perturb_bitflip(const void* x, void* y, void* negatives, const PerturbShape& shape,
                            const BinaryBits& bits, cudaStream_t stream);
cudaError_t perturb_transition(const int64_t* x, int64_t* y, int64_t* negatives,
                               const PerturbShape& shape, const double* cdf, int64_t num_classes,
                               cudaStream_t stream);

cudaError_t contrastive_forward(FloatType type, const void* e_pos, const void* e_neg, void* v,
                                void* log_normaliser, const ContrastShape& shape,
                                cudaStream_t stream);
cudaError_t contrastive_backward(FloatType type, const void* grad_v, const void* e_pos,
                                 const void* e_neg, const void* log_normaliser, void* grad_pos,
                                 void* grad_neg, const ContrastShape& shape, cudaStream_t stream);

// Where the fused launchers get their scratch memory: allocate(bytes, state) returns device
// memory valid until the launcher returns and usable by work enqueued on its stream (torch's
// caching allocator, ops_fused_cuda.cpp). Without one they take it from cudaMallocAsync.
struct WorkspaceAllocator {
  void* (*allocate)(size_t bytes, void* state) = nullptr;
  void* state = nullptr;
};

// The fused ED ops (csrc/cuda/fused.cu), with the outputs of their CPU twins (csrc/cpu/fused.cpp):
// forward v [B], log_normaliser [B] and, when not null, energies [B, M + 1] (E of each item:
// the row's own, then its negatives'; CPU backwards take them instead of recomputing);
// pairwise backward r [B, N] and s [N, N]; RBM backward
// a [B, H], r [B, D] and gwt [D, H]. The backwards zero s / gwt themselves and sum them with
// atomics (as r and a), so unlike the CPU's these sums are not bitwise deterministic.
template <typename T>
cudaError_t pairwise_forward(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in, T* v,
                             T* log_normaliser, T* energies, cudaStream_t stream, WorkspaceAllocator workspace = {});
template <typename T>
cudaError_t pairwise_backward(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in,
                              const T* grad_v, const T* log_normaliser, T* r, T* s, cudaStream_t stream,
                              WorkspaceAllocator workspace = {});
template <typename T>
cudaError_t rbm_forward(const FusedShape& shape, const FusedNoise& noise, const RbmInputs<T>& in, T* v,
                        T* log_normaliser, T* energies, cudaStream_t stream, WorkspaceAllocator workspace = {});
template <typename T>
cudaError_t rbm_backward(const FusedShape& shape, const FusedNoise& noise, const RbmInputs<T>& in, const T* grad_v,
                         const T* log_normaliser, T* a, T* r, T* gwt, cudaStream_t stream,
                         WorkspaceAllocator workspace = {});

// The fused MLP op (csrc/cuda/mlp.cu), with the outputs of its CPU twin (csrc/cpu/mlp.cpp):
// forward v [B] and row_stats [B, 3] (csrc/mlp_args.h); backward adds the gradients of
// sum_i grad_v[i] v_i into `grads`, which the caller has zeroed (grads.x may be null). The
// backward sums with atomics, so unlike the CPU's its gradients are not bitwise deterministic
// from run to run. B = 0 launches nothing; a network outside the documented range (1 to 9
// layers, hidden widths 1 to 256, one output, width[0] = D, M >= 1) is cudaErrorInvalidValue.
template <typename T>
cudaError_t mlp_forward(const FusedShape& shape, const MlpNoise& noise, const MlpInputs<T>& in, T* v, T* row_stats,
                        cudaStream_t stream, WorkspaceAllocator workspace = {});
template <typename T>
cudaError_t mlp_backward(const FusedShape& shape, const MlpNoise& noise, const MlpInputs<T>& in, const T* grad_v,
                         const T* row_stats, const MlpGrads<T>& grads, cudaStream_t stream,
                         WorkspaceAllocator workspace = {});

}  // namespace cuda
}  // namespace edfast
