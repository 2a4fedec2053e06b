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

bool some_coordinate_changed(const std::vector<uint8_t>& x, const std::vector<uint8_t>& y,
                             const std::vector<uint8_t>&) {
  return x != y;
}

}  // namespace

TEST_CASE(cuda, perturb_gaussian_float32_matches_cpu) { check_gaussian<float>("gaussian f32"); }
TEST_CASE(cuda, perturb_gaussian_float64_matches_cpu) { check_gaussian<double>("gaussian f64"); }

TEST_CASE(cuda, perturb_bernoulli_matches_cpu) {
  ModelDevice device;
  std::mt19937_64 rng(2);
  for (double epsilon : {0.3, 0.005}) {
    for (const PerturbShape& shape : kShapes) {
      const auto x = random_input<uint8_t>(shape.batch * shape.dim, rng, 1);
      compare<uint8_t>(
          "bernoulli", shape, x,
          [&](const uint8_t* xd, uint8_t* y, uint8_t* n) { return cuda::perturb_bernoulli(xd, y, n, shape, epsilon, nullptr); },
          [&](const uint8_t* xh, uint8_t* y, uint8_t* n) { cpu::bernoulli_rows(xh, y, n, shape, epsilon, 0, shape.batch); },
          [&](const auto& xs, const auto& ys, const auto& ns) {
            // With eps = 0.005 a small case may draw no flip at all: then only check {0,1}.
            bool binary = true;
            for (uint8_t v : ys) binary = binary && v <= 1;
            for (uint8_t v : ns) binary = binary && v <= 1;
            return binary && (epsilon < 0.1 || xs.size() < 8 || some_coordinate_changed(xs, ys, ns));
          });
    }
  }
}

TEST_CASE(cuda, perturb_bitflip_matches_cpu) {
  ModelDevice device;
  std::mt19937_64 rng(3);
  for (const PerturbShape& shape : kShapes) {
    const auto x = random_input<uint8_t>(shape.batch * shape.dim, rng, 1);
    compare<uint8_t>(
        "bitflip", shape, x,
        [&](const uint8_t* xd, uint8_t* y, uint8_t* n) { return cuda::perturb_bitflip(xd, y, n, shape, nullptr); },
        [&](const uint8_t* xh, uint8_t* y, uint8_t* n) { cpu::bitflip_rows(xh, y, n, shape, 0, shape.batch); },
        [&](const auto& xs, const auto& ys, const auto&) {
          for (int64_t i = 0; i < shape.batch; ++i) {  // exactly one flip from x to y
            int flips = 0;
            for (int64_t d = 0; d < shape.dim; ++d) flips += xs[i * shape.dim + d] != ys[i * shape.dim + d];
            if (flips != 1) return false;
          }
          return true;
        });
  }
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
