// CUDA registrations of the edfast ops: input checks, device guard and stream, then the
// torch-free launchers of csrc/cuda/.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "cuda/launchers.h"
#include "ops_common.h"

namespace edfast {
namespace {

void check_launch(cudaError_t status, const char* op) {
  TORCH_CHECK(status == cudaSuccess, "edfast.", op, ": CUDA launch failed: ",
              cudaGetErrorString(status));
}

std::tuple<at::Tensor, at::Tensor> perturb_cuda(const at::Tensor& x, int64_t kind, double param,
                                                const c10::optional<at::Tensor>& transition_cdf,
                                                int64_t m, int64_t seed, int64_t row_offset,
                                                int64_t neg_offset) {
  const PerturbShape shape =
      check_perturb(x, kind, param, transition_cdf, m, seed, row_offset, neg_offset);
  const c10::cuda::CUDAGuard guard(x.device());
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const at::Tensor input = kernel_input(x, kind);
  at::Tensor y = at::empty({shape.batch, shape.dim}, input.options());
  at::Tensor negatives = at::empty({shape.batch, m, shape.dim}, input.options());
  cudaError_t status;
  switch (kind) {
    case core::kGaussian:
      status = input.scalar_type() == at::kDouble
                   ? cuda::perturb_gaussian(input.data_ptr<double>(), y.data_ptr<double>(),
                                            negatives.data_ptr<double>(), shape, param, stream)
                   : cuda::perturb_gaussian(input.data_ptr<float>(), y.data_ptr<float>(),
                                            negatives.data_ptr<float>(), shape, param, stream);
      break;
    case core::kBernoulli:
      status = cuda::perturb_bernoulli(input.data_ptr(), y.data_ptr(), negatives.data_ptr(), shape, param,
                                       binary_bits(input.scalar_type()), stream);
      break;
    case core::kBitFlip:
      status = cuda::perturb_bitflip(input.data_ptr(), y.data_ptr(), negatives.data_ptr(), shape,
                                     binary_bits(input.scalar_type()), stream);
      break;
    default: {
      const at::Tensor cdf = transition_cdf->contiguous();
      status = cuda::perturb_transition(input.data_ptr<int64_t>(), y.data_ptr<int64_t>(),
                                        negatives.data_ptr<int64_t>(), shape,
                                        cdf.data_ptr<double>(), cdf.size(0), stream);
    }
  }
  check_launch(status, "perturb");
  return user_outputs(x, y, negatives, m);
}

std::tuple<at::Tensor, at::Tensor> contrastive_cuda(const at::Tensor& e_pos,
                                                    const at::Tensor& e_neg, double w) {
  const ContrastShape shape = check_contrastive(e_pos, e_neg, w);
  const c10::cuda::CUDAGuard guard(e_pos.device());
  const at::Tensor pos = e_pos.contiguous(), neg = e_neg.contiguous();
  at::Tensor v = at::empty_like(pos);
  at::Tensor log_normaliser =
      at::empty(pos.sizes(), pos.options().dtype(accumulate_type(pos.scalar_type())));
  check_launch(cuda::contrastive_forward(float_type_of(pos), pos.data_ptr(), neg.data_ptr(),
                                         v.data_ptr(), log_normaliser.data_ptr(), shape,
                                         at::cuda::getCurrentCUDAStream()),
               "contrastive_logsumexp");
  return {v, log_normaliser};
}

std::tuple<at::Tensor, at::Tensor> contrastive_backward_cuda(const at::Tensor& grad_v,
                                                             const at::Tensor& e_pos,
                                                             const at::Tensor& e_neg,
                                                             const at::Tensor& log_normaliser) {
  const ContrastShape shape = check_contrastive_backward(grad_v, e_pos, e_neg, log_normaliser);
  const c10::cuda::CUDAGuard guard(e_pos.device());
  const at::Tensor g = grad_v.contiguous(), pos = e_pos.contiguous(), neg = e_neg.contiguous(),
                   norm = log_normaliser.contiguous();
  at::Tensor grad_pos = at::empty_like(pos);
  at::Tensor grad_neg = at::empty_like(neg);
  check_launch(cuda::contrastive_backward(float_type_of(pos), g.data_ptr(), pos.data_ptr(),
                                          neg.data_ptr(), norm.data_ptr(), grad_pos.data_ptr(),
                                          grad_neg.data_ptr(), shape,
                                          at::cuda::getCurrentCUDAStream()),
               "contrastive_logsumexp_backward");
  return {grad_pos, grad_neg};
}

}  // namespace

TORCH_LIBRARY_IMPL(edfast, CUDA, m) {
  m.impl("perturb", &perturb_cuda);
  m.impl("contrastive_logsumexp", &contrastive_cuda);
  m.impl("contrastive_logsumexp_backward", &contrastive_backward_cuda);
}

}  // namespace edfast
