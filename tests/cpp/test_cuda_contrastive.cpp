// The CUDA contrastive logsumexp (csrc/cuda/contrastive.cu) under the CPU execution model:
// forward and backward against a float64 reference, within the DESIGN §6 tolerance (at most
// twice the error of a reference computed in the input's precision, plus a small floor), for
// every dtype, on shapes that hit the edges (B not a multiple of the 8 rows of a block, M = 1,
// 31, 32, 33, 1000, grids that wrap, energies of magnitude 1e4, empty inputs).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cinttypes>
#include <cmath>
#include <random>
#include <string>

#include "check.h"
#include "cuda/launchers.h"
#include "device_buffer.h"
#include "runtime.h"

using edfast::ContrastShape;
using edfast::FloatType;
namespace cuda = edfast::cuda;

namespace {

// Storage types and their rounding; T's arithmetic is modelled by rounding every result.
float to_float(float v) { return v; }
double to_float(double v) { return v; }
float to_float(__half v) { return __half2float(v); }
float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> T from_double(double v);
template <> float from_double<float>(double v) { return static_cast<float>(v); }
template <> double from_double<double>(double v) { return v; }
template <> __half from_double<__half>(double v) { return __float2half_rn(static_cast<float>(v)); }
template <> __nv_bfloat16 from_double<__nv_bfloat16>(double v) { return __float2bfloat16_rn(static_cast<float>(v)); }
template <typename T> double rounded(double v) { return static_cast<double>(to_float(from_double<T>(v))); }

template <typename T> FloatType float_type();
template <> FloatType float_type<float>() { return FloatType::kFloat32; }
template <> FloatType float_type<double>() { return FloatType::kFloat64; }
template <> FloatType float_type<__half>() { return FloatType::kFloat16; }
template <> FloatType float_type<__nv_bfloat16>() { return FloatType::kBFloat16; }
template <typename T> using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;

struct Reference {
  std::vector<double> v, grad_pos, grad_neg;
};

// The ED contrast of every row (DESIGN §1) with each operation rounded by `round`: the float64
// reference with the identity, the same-precision reference with rounded<T>.
template <typename Round>
Reference reference(const std::vector<double>& pos, const std::vector<double>& neg, const std::vector<double>& g,
                    const ContrastShape& s, Round round) {
  Reference r{std::vector<double>(s.batch), std::vector<double>(s.batch), std::vector<double>(s.batch * s.negatives)};
  for (int64_t i = 0; i < s.batch; ++i) {
    double top = s.weight > 0 ? std::log(s.weight) : -INFINITY;
    for (int64_t j = 0; j < s.negatives; ++j) top = std::max(top, round(pos[i] - neg[i * s.negatives + j]));
    double sum = s.weight > 0 ? round(s.weight * std::exp(-top)) : 0.0;
    for (int64_t j = 0; j < s.negatives; ++j) sum = round(sum + round(std::exp(round(round(pos[i] - neg[i * s.negatives + j]) - top))));
    const double log_normaliser = round(top + round(std::log(sum)));
    r.v[i] = round(log_normaliser - std::log(static_cast<double>(s.negatives)));
    double total = 0;
    for (int64_t j = 0; j < s.negatives; ++j) {
      const double p = round(std::exp(round(round(pos[i] - neg[i * s.negatives + j]) - log_normaliser)));
      total = round(total + p);
      r.grad_neg[i * s.negatives + j] = round(-g[i] * p);
    }
    r.grad_pos[i] = round(g[i] * total);
  }
  return r;
}

// |kernel - exact| <= 2 |same precision - exact| + floor, elementwise.
bool within_rule(const std::vector<double>& kernel, const std::vector<double>& exact,
                 const std::vector<double>& same_precision, double floor, double* worst) {
  bool ok = true;
  *worst = 0;
  for (size_t k = 0; k < exact.size(); ++k) {
    const double err = std::fabs(kernel[k] - exact[k]);
    const double allowed = 2 * std::fabs(same_precision[k] - exact[k]) + floor * std::max(1.0, std::fabs(exact[k]));
    const bool good = std::isfinite(kernel[k]) && err <= allowed;
    *worst = std::max(*worst, good ? err / allowed : std::isfinite(err) ? err / allowed : INFINITY);
    ok = ok && good;
  }
  return ok;
}

template <typename T>
std::vector<double> read_back(const DeviceBuffer<T>& buffer) {
  std::vector<double> out(buffer.size());
  for (size_t k = 0; k < out.size(); ++k) out[k] = static_cast<double>(to_float(buffer[k]));
  return out;
}

template <typename T>
void check_case(const ContrastShape& s, double offset, double floor, std::mt19937_64& rng) {
  using acc_t = Acc<T>;
  std::normal_distribution<double> normal(0.0, 2.0);
  const size_t b = s.batch, bm = s.batch * s.negatives;
  std::vector<double> pos(b), neg(bm), g(b);
  for (auto& e : pos) e = rounded<T>(offset + normal(rng));
  for (auto& e : neg) e = rounded<T>(offset + normal(rng));
  for (auto& e : g) e = rounded<T>(normal(rng));
  auto stored = [](const std::vector<double>& values) {
    DeviceBuffer<T> out(values.size());
    for (size_t k = 0; k < values.size(); ++k) out[k] = from_double<T>(values[k]);
    return out;
  };
  DeviceBuffer<T> pos_dev = stored(pos), neg_dev = stored(neg), g_dev = stored(g);
  DeviceBuffer<T> v_dev(b), grad_pos_dev(b), grad_neg_dev(bm);
  DeviceBuffer<acc_t> log_normaliser(b);
  const cudaError_t forward = cuda::contrastive_forward(float_type<T>(), pos_dev.data(), neg_dev.data(), v_dev.data(),
                                                        log_normaliser.data(), s, nullptr);
  const cudaError_t backward =
      cuda::contrastive_backward(float_type<T>(), g_dev.data(), pos_dev.data(), neg_dev.data(), log_normaliser.data(),
                                 grad_pos_dev.data(), grad_neg_dev.data(), s, nullptr);
  char where[128];
  std::snprintf(where, sizeof(where), "%zu-byte floats B=%" PRId64 " M=%" PRId64 " w=%g offset=%g", sizeof(T),
                s.batch, s.negatives, s.weight, offset);
  CHECK(forward == cudaSuccess && backward == cudaSuccess, "%s", where);
  const Reference exact = reference(pos, neg, g, s, [](double v) { return v; });
  const Reference same = reference(pos, neg, g, s, [](double v) { return rounded<T>(v); });
  const struct {
    const char* name;
    std::vector<double> kernel;
    const std::vector<double>& exact;
    const std::vector<double>& same;
  } outputs[] = {{"v", read_back(v_dev), exact.v, same.v},
                 {"grad e_pos", read_back(grad_pos_dev), exact.grad_pos, same.grad_pos},
                 {"grad e_neg", read_back(grad_neg_dev), exact.grad_neg, same.grad_neg}};
  for (const auto& out : outputs) {
    double worst = 0;  // evaluated before CHECK reads it
    const bool ok = within_rule(out.kernel, out.exact, out.same, floor, &worst);
    CHECK(ok, "%s: %s off by %.3gx the allowance", where, out.name, worst);
  }
}

template <typename T>
void check_dtype(double floor) {
  const int saved = cuda_model::multiprocessor_count();
  cuda_model::set_multiprocessor_count(1);  // 8 blocks of 8 warps: B = 70 wraps the row loop
  std::mt19937_64 rng(sizeof(T));
  const int64_t batches[] = {1, 9, 70};
  const int64_t negatives[] = {1, 31, 32, 33};
  for (int64_t b : batches)
    for (int64_t m : negatives)
      for (double w : {1.0, 0.0}) check_case<T>(ContrastShape{b, m, w}, 0.0, floor, rng);
  check_case<T>(ContrastShape{7, 1000, 0.5}, 0.0, floor, rng);
  if constexpr (sizeof(T) >= 4) check_case<T>(ContrastShape{9, 33, 1.0}, 1e4, floor, rng);  // finite at 1e4
  cuda_model::set_multiprocessor_count(saved);
}

}  // namespace

TEST_CASE(cuda, contrastive_float32_within_tolerance) { check_dtype<float>(1e-6); }
TEST_CASE(cuda, contrastive_float64_within_tolerance) { check_dtype<double>(1e-13); }
TEST_CASE(cuda, contrastive_float16_within_tolerance) { check_dtype<__half>(1e-3); }
TEST_CASE(cuda, contrastive_bfloat16_within_tolerance) { check_dtype<__nv_bfloat16>(8e-3); }

TEST_CASE(cuda, contrastive_empty_batch_launches_nothing) {
  const int64_t launches = cuda_model::launches_run();
  DeviceBuffer<float> none(0);
  const ContrastShape empty{0, 32, 1.0};
  CHECK(cuda::contrastive_forward(FloatType::kFloat32, none.data(), none.data(), none.data(), none.data(), empty,
                                  nullptr) == cudaSuccess);
  CHECK(cuda::contrastive_backward(FloatType::kFloat32, none.data(), none.data(), none.data(), none.data(),
                                   none.data(), none.data(), empty, nullptr) == cudaSuccess);
  CHECK(cuda_model::launches_run() == launches, "an empty batch launched a kernel");
}
