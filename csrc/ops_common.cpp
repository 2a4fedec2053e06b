#include "ops_common.h"

#include <cmath>
#include <limits>

namespace edfast {

FloatType float_type_of(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kHalf: return FloatType::kFloat16;
    case at::kBFloat16: return FloatType::kBFloat16;
    case at::kFloat: return FloatType::kFloat32;
    case at::kDouble: return FloatType::kFloat64;
    default: TORCH_CHECK_TYPE(false, "edfast: expected a floating tensor, got ", t.scalar_type());
  }
}

at::ScalarType accumulate_type(at::ScalarType energy_type) {
  return energy_type == at::kDouble ? at::kDouble : at::kFloat;
}

namespace {

bool is_binary_dtype(at::ScalarType t) {
  return at::isFloatingType(t) || at::isIntegralType(t, /*includeBool=*/true);
}

// Whether every element of contiguous CPU data is valid(element), in one pass with no
// allocation (the tensor expression costs several passes and temporaries).
template <typename T, typename Valid>
bool all_of(const at::Tensor& x, Valid valid) {
  const at::Tensor data = x.contiguous();
  const T* values = static_cast<const T*>(data.data_ptr());
  bool ok = true;
  for (int64_t k = 0; k < data.numel(); ++k) ok &= valid(values[k]);  // no early exit: vectorises
  return ok;
}

bool binary_values_cpu(const at::Tensor& x) {
  const BinaryBits bits = binary_bits(x.scalar_type());
  bool ok = true;
  dispatch_binary(bits, [&](auto tag) {
    using U = decltype(tag);
    const U magnitude = static_cast<U>(bits.magnitude), one = static_cast<U>(bits.one);
    ok = all_of<U>(x, [=](U b) { return (b & magnitude) == 0 || b == one; });
  });
  return ok;
}

void check_binary_values(const at::Tensor& x) {
  if (x.scalar_type() == at::kBool || x.numel() == 0) return;
  const bool ok = x.is_cpu() ? binary_values_cpu(x) : at::logical_or(x == 0, x == 1).all().item<bool>();
  TORCH_CHECK_VALUE(ok, "edfast.perturb: x must hold only 0 and 1 for a binary perturbation "
                        "(Bernoulli, BitFlip)");
}

}  // namespace

PerturbShape check_perturb(const at::Tensor& x, int64_t kind, double param,
                           const c10::optional<at::Tensor>& transition_cdf, int64_t m,
                           int64_t seed, int64_t row_offset, int64_t neg_offset) {
  TORCH_CHECK_VALUE(x.dim() >= 1, "edfast.perturb: x must have shape [B, *event], got a 0-d tensor");
  TORCH_CHECK_VALUE(m >= 1, "edfast.perturb: m (negatives per data point) must be >= 1, got ", m);
  TORCH_CHECK_VALUE(seed >= 0, "edfast.perturb: seed must be >= 0, got ", seed);
  TORCH_CHECK_VALUE(row_offset >= 0, "edfast.perturb: row_offset must be >= 0, got ", row_offset);
  TORCH_CHECK_VALUE(neg_offset >= 0 && neg_offset + m < (int64_t{1} << 32) - 1,
                    "edfast.perturb: negative indices neg_offset .. neg_offset + m must lie in "
                    "[0, 2^32 - 1), got neg_offset=", neg_offset, " m=", m);
  const int64_t batch = x.size(0);
  int64_t dim = 1;
  for (int64_t d = 1; d < x.dim(); ++d) dim *= x.size(d);
  const auto type = x.scalar_type();
  switch (kind) {
    case core::kGaussian:
      TORCH_CHECK_TYPE(at::isFloatingType(type),
                       "edfast.perturb: Gaussian needs floating x (float16, bfloat16, float32, "
                       "float64), got ", type);
      TORCH_CHECK_VALUE(std::isfinite(param) && param > 0,
                        "edfast.perturb: Gaussian scale must be finite and > 0, got ", param);
      break;
    case core::kBernoulli:
    case core::kBitFlip:
      TORCH_CHECK_TYPE(is_binary_dtype(type),
                       "edfast.perturb: binary perturbations need real (floating, integer or bool) x "
                       "holding 0/1, got ", type);
      if (kind == core::kBernoulli) {
        TORCH_CHECK_VALUE(param > 0 && param < 1,
                          "edfast.perturb: Bernoulli epsilon must lie in (0, 1), got ", param);
      } else {
        TORCH_CHECK_VALUE(dim >= 1, "edfast.perturb: BitFlip needs at least one coordinate per row");
      }
      check_binary_values(x);
      break;
    case core::kTransition: {
      TORCH_CHECK_TYPE(type == at::kLong,
                       "edfast.perturb: categorical perturbations need int64 x, got ", type);
      TORCH_CHECK_VALUE(transition_cdf.has_value(),
                        "edfast.perturb: transition_cdf is required for categorical perturbations");
      const at::Tensor& cdf = *transition_cdf;
      TORCH_CHECK_VALUE(cdf.dim() == 2 && cdf.size(0) == cdf.size(1) && cdf.size(0) >= 2,
                        "edfast.perturb: transition_cdf must have shape [K, K] with K >= 2, got ",
                        cdf.sizes());
      TORCH_CHECK_TYPE(cdf.scalar_type() == at::kDouble,
                       "edfast.perturb: transition_cdf must be float64, got ", cdf.scalar_type());
      TORCH_CHECK(cdf.device() == x.device(), "edfast.perturb: transition_cdf is on ",
                  cdf.device(), " but x is on ", x.device());
      if (x.numel() > 0) {
        const int64_t k = cdf.size(0);
        const bool ok = x.is_cpu() ? all_of<int64_t>(x, [=](int64_t v) { return v >= 0 && v < k; })
                                   : at::logical_and(x >= 0, x < k).all().item<bool>();
        TORCH_CHECK_VALUE(ok, "edfast.perturb: categorical x must lie in [0, ", k - 1, "]");
      }
      break;
    }
    default:
      TORCH_CHECK_VALUE(false, "edfast.perturb: unknown perturbation kind ", kind);
  }
  return PerturbShape{batch, dim, m, static_cast<uint64_t>(seed), row_offset, neg_offset};
}

at::Tensor kernel_input(const at::Tensor& x, int64_t kind) {
  switch (kind) {
    case core::kGaussian:
      return (x.scalar_type() == at::kDouble ? x : x.to(at::kFloat)).contiguous();
    default:
      return x.contiguous();
  }
}

BinaryBits binary_bits(at::ScalarType type) {
  const int64_t size = static_cast<int64_t>(c10::elementSize(type));
  const uint64_t all = size == 8 ? ~uint64_t{0} : (uint64_t{1} << (8 * size)) - 1;
  switch (type) {  // floating: 0 and 1 as IEEE bits; the sign bit is ignored (-0.0 is 0)
    case at::kHalf: return {2, 0x7fff, 0x3c00};
    case at::kBFloat16: return {2, 0x7fff, 0x3f80};
    case at::kFloat: return {4, 0x7fffffff, 0x3f800000};
    case at::kDouble: return {8, 0x7fffffffffffffffull, 0x3ff0000000000000ull};
    default: return {size, all, 1};  // bool and integers
  }
}

std::tuple<at::Tensor, at::Tensor> user_outputs(const at::Tensor& x, at::Tensor y,
                                                at::Tensor negatives, int64_t m) {
  std::vector<int64_t> neg_shape(x.sizes().begin(), x.sizes().end());
  neg_shape.insert(neg_shape.begin() + 1, m);
  return {y.view(x.sizes()).to(x.scalar_type()), negatives.view(neg_shape).to(x.scalar_type())};
}

ContrastShape check_contrastive(const at::Tensor& e_pos, const at::Tensor& e_neg, double w) {
  TORCH_CHECK_VALUE(e_pos.dim() == 1, "edfast.contrastive_logsumexp: e_pos must have shape [B], got ",
                    e_pos.sizes());
  TORCH_CHECK_VALUE(e_neg.dim() == 2 && e_neg.size(0) == e_pos.size(0),
                    "edfast.contrastive_logsumexp: e_neg must have shape [B, M] with B = ",
                    e_pos.size(0), " (from e_pos), got ", e_neg.sizes());
  TORCH_CHECK_VALUE(e_neg.size(1) >= 1,
                    "edfast.contrastive_logsumexp: e_neg needs at least one negative (M >= 1)");
  TORCH_CHECK_TYPE(at::isFloatingType(e_pos.scalar_type()) &&
                       e_pos.scalar_type() == e_neg.scalar_type(),
                   "edfast.contrastive_logsumexp: e_pos and e_neg must share one floating dtype, "
                   "got ", e_pos.scalar_type(), " and ", e_neg.scalar_type());
  TORCH_CHECK(e_pos.device() == e_neg.device(), "edfast.contrastive_logsumexp: e_pos is on ",
              e_pos.device(), " but e_neg is on ", e_neg.device());
  TORCH_CHECK_VALUE(std::isfinite(w) && w >= 0,
                    "edfast.contrastive_logsumexp: w must be finite and >= 0, got ", w);
  return ContrastShape{e_pos.size(0), e_neg.size(1), w};
}

ContrastShape check_contrastive_backward(const at::Tensor& grad_v, const at::Tensor& e_pos,
                                         const at::Tensor& e_neg,
                                         const at::Tensor& log_normaliser) {
  ContrastShape shape = check_contrastive(e_pos, e_neg, 0.0);
  TORCH_CHECK_VALUE(grad_v.sizes() == e_pos.sizes() && grad_v.scalar_type() == e_pos.scalar_type(),
                    "edfast.contrastive_logsumexp_backward: grad_v must match e_pos");
  TORCH_CHECK_VALUE(log_normaliser.sizes() == e_pos.sizes() &&
                        log_normaliser.scalar_type() == accumulate_type(e_pos.scalar_type()),
                    "edfast.contrastive_logsumexp_backward: log_normaliser must be [B] in the "
                    "accumulation type");
  TORCH_CHECK(grad_v.device() == e_pos.device() && log_normaliser.device() == e_pos.device(),
              "edfast.contrastive_logsumexp_backward: all tensors must be on one device");
  return shape;
}

}  // namespace edfast
