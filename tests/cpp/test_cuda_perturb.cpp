// The CUDA perturbation kernels (csrc/cuda/perturb.cu) run under the CPU execution model, on the
// cases the CPU kernels are tested on: their noise must equal the CPU kernels' bit for bit
// (csrc/cpu/perturb_rows.h), for every perturbation and dtype, on shapes that hit the edges.
#include <cinttypes>
#include <random>
#include <string>

#include "check.h"
#include "cpu/perturb_rows.h"
#include "cuda/launchers.h"
#include "device_buffer.h"
#include "runtime.h"

using edfast::PerturbShape;
namespace cpu = edfast::cpu;
namespace cuda = edfast::cuda;

namespace {

// B (not a multiple of anything), D (not a multiple of 4, and 1), M (1, 31, 32, 33, 1000, and 0:
// y only), with offsets; with one modelled SM the grid holds 2048 threads, so the larger cases
// wrap the grid-stride loops several times.
const PerturbShape kShapes[] = {
    {37, 7, 33, 0x5eedull, 0, 0},     {5, 13, 32, 7ull, 1000, 3},  {9, 2, 31, 1ull << 40, 5, 0},
    {3, 5, 1000, 99ull, 0, 0},        {1, 1, 1, 3ull, (int64_t(1) << 33) + 7, 0},
    {64, 4, 2, 11ull, 0, 0},          {6, 784, 3, 13ull, 17, 1},   {4, 9, 0, 21ull, 0, 0},
};

std::string describe(const PerturbShape& s) {
  char text[160];
  std::snprintf(text, sizeof(text), "B=%" PRId64 " D=%" PRId64 " M=%" PRId64 " seed=%" PRIu64
                " row_offset=%" PRId64 " neg_offset=%" PRId64,
                s.batch, s.dim, s.negatives, s.seed, s.row_offset, s.neg_offset);
  return text;
}

struct ModelDevice {  // one SM: small grids, so grid-stride loops wrap
  int saved = cuda_model::multiprocessor_count();
  ModelDevice() { cuda_model::set_multiprocessor_count(1); }
  ~ModelDevice() { cuda_model::set_multiprocessor_count(saved); }
};

template <typename T>
std::vector<T> random_input(size_t n, std::mt19937_64& rng, T max_value) {
  std::vector<T> values(n);
  for (T& v : values) {
    if constexpr (std::is_floating_point_v<T>) {
      v = std::uniform_real_distribution<T>(-max_value, max_value)(rng);
    } else {
      v = static_cast<T>(rng() % static_cast<uint64_t>(max_value + 1));
    }
  }
  return values;
}

template <typename T>
bool same_bytes(const T* a, const T* b, size_t n) {
  return n == 0 || std::memcmp(a, b, n * sizeof(T)) == 0;
}

// Runs `cuda_call(x, y, negatives)` under the model and `cpu_call(...)` on the CPU rows for the
// same input; checks bitwise equality and that the noise changed something (`changed`).
template <typename T, typename CudaCall, typename CpuCall, typename Changed>
void compare(const char* what, const PerturbShape& shape, const std::vector<T>& x, CudaCall cuda_call,
             CpuCall cpu_call, Changed changed) {
  const size_t ny = shape.batch * shape.dim, nn = ny * shape.negatives;
  DeviceBuffer<T> x_dev(x), y_dev(ny), neg_dev(nn);
  std::vector<T> y_cpu(ny), neg_cpu(nn);
  const int64_t launches = cuda_model::launches_run();
  const cudaError_t status = cuda_call(x_dev.data(), y_dev.data(), neg_dev.data());
  cpu_call(x.data(), y_cpu.data(), neg_cpu.data());
  const std::string where = std::string(what) + " " + describe(shape);
  CHECK(status == cudaSuccess, "%s: status %d", where.c_str(), static_cast<int>(status));
  const int64_t expected_launches = shape.batch == 0 || shape.dim == 0 ? 0 : shape.negatives > 0 ? 2 : 1;
  CHECK(cuda_model::launches_run() - launches == expected_launches, "%s: %" PRId64 " launches", where.c_str(),
        cuda_model::launches_run() - launches);
  CHECK(same_bytes(y_dev.data(), y_cpu.data(), ny), "%s: y differs", where.c_str());
  CHECK(same_bytes(neg_dev.data(), neg_cpu.data(), nn), "%s: negatives differ", where.c_str());
  if (ny > 0) CHECK(changed(x, y_cpu, neg_cpu), "%s: the noise changed nothing", where.c_str());
}

template <typename T>
void check_gaussian(const char* name) {
  ModelDevice device;
  std::mt19937_64 rng(1);
  for (const PerturbShape& shape : kShapes) {
    const auto x = random_input<T>(shape.batch * shape.dim, rng, T(3));
    compare<T>(name, shape, x,
               [&](const T* xd, T* y, T* n) { return cuda::perturb_gaussian(xd, y, n, shape, 0.7, nullptr); },
               [&](const T* xh, T* y, T* n) { cpu::gaussian_rows(xh, y, n, shape, 0.7, 0, shape.batch); },
               [](const auto& xs, const auto& ys, const auto&) {
                 for (size_t i = 0; i < xs.size(); ++i)
                   if (xs[i] == ys[i]) return false;  // a normal draw is never exactly 0
                 return true;
               });
  }
}

// The binary dtypes by their bits: bool/uint8, float16, float32, int64 (one element size each).
const edfast::BinaryBits kBinaryDtypes[] = {
    {1, 0xff, 1}, {4, 0x7fffffff, 0x3f800000}, {2, 0x7fff, 0x3c00}, {8, ~0ull, 1}};
constexpr size_t kAllBinaryDtypes = 4;

// Runs the binary perturbation `cuda_call` / `cpu_rows` over the first `dtypes` binary dtypes
// and every shape.
template <typename CudaCall, typename CpuRows, typename Changed>
void check_binary(const char* name, size_t dtypes, CudaCall cuda_call, CpuRows cpu_rows, Changed changed) {
  ModelDevice device;
  std::mt19937_64 rng(2);
  for (size_t t = 0; t < dtypes; ++t) {
    const edfast::BinaryBits& bits = kBinaryDtypes[t];
    edfast::dispatch_binary(bits, [&](auto tag) {
      using U = decltype(tag);
      for (const PerturbShape& shape : kShapes) {
        std::vector<U> x(shape.batch * shape.dim);
        for (U& v : x) v = rng() % 2 ? static_cast<U>(bits.one) : U(0);
        const std::string what = std::string(name) + " " + std::to_string(sizeof(U)) + "-byte";
        compare<U>(what.c_str(), shape, x,
                   [&](const U* xd, U* y, U* n) { return cuda_call(xd, y, n, shape, bits); },
                   [&](const U* xh, U* y, U* n) { cpu_rows(xh, y, n, shape, bits.flip<U>()); },
                   [&](const auto& xs, const auto& ys, const auto& ns) { return changed(shape, bits, xs, ys, ns); });
      }
    });
  }
}

// Every value is 0 or the dtype's 1.
template <typename U>
bool all_binary(const std::vector<U>& values, const edfast::BinaryBits& bits) {
  for (U v : values)
    if (v != 0 && v != static_cast<U>(bits.one)) return false;
  return true;
}

}  // namespace

TEST_CASE(cuda, perturb_gaussian_float32_matches_cpu) { check_gaussian<float>("gaussian f32"); }
TEST_CASE(cuda, perturb_gaussian_float64_matches_cpu) { check_gaussian<double>("gaussian f64"); }

// Dense (0.3) and sparse (0.005 and the crossover itself) Bernoulli layouts. Where the noise
// goes does not depend on the dtype: every dtype with the dense layout, two with the sparse.
TEST_CASE(cuda, perturb_bernoulli_matches_cpu) {
  for (double epsilon : {0.3, edfast::core::kSparseFlipMax, 0.005}) {
    const edfast::core::BernoulliNoise noise = edfast::core::bernoulli_noise(epsilon);
    check_binary(
        noise.sparse ? "bernoulli (sparse)" : "bernoulli (dense)", noise.sparse ? 2 : kAllBinaryDtypes,
        [&](const auto* x, auto* y, auto* n, const PerturbShape& shape, const edfast::BinaryBits& bits) {
          return cuda::perturb_bernoulli(x, y, n, shape, epsilon, bits, nullptr);
        },
        [&](const auto* x, auto* y, auto* n, const PerturbShape& shape, auto flip) {
          cpu::bernoulli_rows(x, y, n, shape, noise, flip, 0, shape.batch);
        },
        [&](const PerturbShape& shape, const edfast::BinaryBits& bits, const auto& xs, const auto& ys, const auto& ns) {
          // Small cases at small epsilon may draw no flip at all: then only check the values.
          const bool expect_flips = epsilon * static_cast<double>(xs.size() + ns.size()) > 20;
          bool flipped = xs != ys;
          for (size_t k = 0; k < ns.size() && !flipped; ++k) flipped = ns[k] != ys[k / (shape.negatives * shape.dim) * shape.dim + k % shape.dim];
          return all_binary(ys, bits) && all_binary(ns, bits) && (!expect_flips || flipped);
        });
  }
}

TEST_CASE(cuda, perturb_bitflip_matches_cpu) {
  check_binary(
      "bitflip", kAllBinaryDtypes,
      [](const auto* x, auto* y, auto* n, const PerturbShape& shape, const edfast::BinaryBits& bits) {
        return cuda::perturb_bitflip(x, y, n, shape, bits, nullptr);
      },
      [](const auto* x, auto* y, auto* n, const PerturbShape& shape, auto flip) {
        cpu::bitflip_rows(x, y, n, shape, flip, 0, shape.batch);
      },
      [](const PerturbShape& shape, const edfast::BinaryBits& bits, const auto& xs, const auto& ys, const auto&) {
        for (int64_t i = 0; i < shape.batch; ++i) {  // exactly one flip from x to y
          int flips = 0;
          for (int64_t d = 0; d < shape.dim; ++d) flips += xs[i * shape.dim + d] != ys[i * shape.dim + d];
          if (flips != 1) return false;
        }
        return all_binary(ys, bits);
      });
}
TEST_CASE(cuda, perturb_transition_matches_cpu) {
  ModelDevice device;
  std::mt19937_64 rng(4);
  const int64_t k = 5;
  // A random stochastic matrix as its row-wise CDF (last column exactly 1).
  std::vector<double> cdf(k * k);
  for (int64_t r = 0; r < k; ++r) {
    double total = 0;
    for (int64_t c = 0; c < k; ++c) total += cdf[r * k + c] = 0.1 + std::uniform_real_distribution<double>()(rng);
    double running = 0;
    for (int64_t c = 0; c < k; ++c) cdf[r * k + c] = (running += cdf[r * k + c] / total);
    cdf[r * k + k - 1] = 1.0;
  }
  DeviceBuffer<double> cdf_dev(cdf);
  for (const PerturbShape& shape : kShapes) {
    const auto x = random_input<int64_t>(shape.batch * shape.dim, rng, k - 1);
    compare<int64_t>(
        "transition", shape, x,
        [&](const int64_t* xd, int64_t* y, int64_t* n) {
          return cuda::perturb_transition(xd, y, n, shape, cdf_dev.data(), k, nullptr);
        },
        [&](const int64_t* xh, int64_t* y, int64_t* n) {
          cpu::transition_rows(xh, y, n, shape, cdf.data(), k, 0, shape.batch);
        },
        [&](const auto& xs, const auto& ys, const auto& ns) {
          bool in_range = true;
          for (int64_t v : ys) in_range = in_range && v >= 0 && v < k;
          for (int64_t v : ns) in_range = in_range && v >= 0 && v < k;
          return in_range && (xs.size() < 4 || xs != ys);
        });
  }
}

TEST_CASE(cuda, perturb_empty_inputs_launch_nothing) {
  const int64_t launches = cuda_model::launches_run();
  const PerturbShape no_rows{0, 7, 33, 1, 0, 0}, no_dims{5, 0, 33, 1, 0, 0};
  DeviceBuffer<float> none(0);
  CHECK(cuda::perturb_gaussian(none.data(), none.data(), none.data(), no_rows, 1.0, nullptr) == cudaSuccess);
  CHECK(cuda::perturb_gaussian(none.data(), none.data(), none.data(), no_dims, 1.0, nullptr) == cudaSuccess);
  CHECK(cuda_model::launches_run() == launches, "an empty input launched a kernel");
}
