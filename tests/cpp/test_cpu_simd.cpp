// The SIMD perturbation rows (csrc/cpu/perturb_simd.h) against the scalar rows, bit for bit,
// at every instruction-set level this CPU runs: Gaussian (float, double), dense Bernoulli (every
// element size), categorical (K small, K at and past one register of lanes, and a table the
// SIMD path must refuse), on shapes that hit the edges of the lanes and of the 4-word blocks.
#include <cinttypes>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "cpu/perturb_rows.h"

using edfast::PerturbShape;
using edfast::cpu::SimdLevel;
namespace cpu = edfast::cpu;

namespace {

const PerturbShape kShapes[] = {
    {37, 13, 33, 0x5eedull, 0, 0},   {5, 2, 31, 7ull, 1000, 3},  {9, 1, 17, 1ull << 40, 5, 0},
    {3, 5, 1, 99ull, (int64_t(1) << 33) + 7, 2},                {4, 784, 3, 13ull, 17, 1},
    {2, 4, 0, 11ull, 0, 0},          {6, 7, 16, 3ull << 50, 2, 9},
    // y's rows cross 2^32 inside one batch of lanes (the counter's high word carries).
    {9, 2, 2, 5ull, (int64_t(1) << 32) - 3, 0}, {9, 4, 1, 6ull, (int64_t(1) << 32) - 5, 0},
};

// Runs `rows(y, negatives)` at the baseline level (the scalar rows) and at `level`; the outputs must be equal.
template <typename T, typename Rows>
void compare_levels(const char* what, SimdLevel level, const PerturbShape& shape, Rows rows) {
  const size_t ny = shape.batch * shape.dim, nn = ny * shape.negatives;
  std::vector<T> y_scalar(ny), neg_scalar(nn), y_simd(ny), neg_simd(nn);
  cpu::set_simd_level(SimdLevel::kBaseline);
  rows(y_scalar.data(), neg_scalar.data());
  cpu::set_simd_level(level);
  rows(y_simd.data(), neg_simd.data());
  cpu::set_simd_level(cpu::best_simd_level());
  CHECK(y_scalar == y_simd && neg_scalar == neg_simd, "%s at %s: B=%" PRId64 " D=%" PRId64 " M=%" PRId64, what,
        cpu::simd_level_name(level), shape.batch, shape.dim, shape.negatives);
}

std::vector<SimdLevel> simd_levels() {
  std::vector<SimdLevel> levels;
  for (SimdLevel level : {SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    if (static_cast<int>(level) <= static_cast<int>(cpu::best_simd_level())) levels.push_back(level);
  }
  return levels;
}

template <typename T>
void check_gaussian() {
  std::mt19937_64 rng(7);
  for (SimdLevel level : simd_levels()) {
    for (const PerturbShape& shape : kShapes) {
      std::vector<T> x(shape.batch * shape.dim);
      for (T& v : x) v = std::uniform_real_distribution<T>(-3, 3)(rng);
      compare_levels<T>("gaussian", level, shape, [&](T* y, T* n) {
        cpu::gaussian_rows(x.data(), y, n, shape, 0.37, 0, shape.batch);
      });
    }
  }
}

// A random stochastic matrix's row CDFs (last column exactly 1).
std::vector<double> random_cdf(int64_t k, std::mt19937_64& rng) {
  std::vector<double> cdf(k * k);
  for (int64_t r = 0; r < k; ++r) {
    double total = 0, running = 0;
    std::vector<double> p(k);
    for (double& v : p) total += v = std::uniform_real_distribution<double>(0.0, 1.0)(rng) < 0.2 ? 0.0 : 0.05 + std::uniform_real_distribution<double>()(rng);
    if (total == 0) p[r] = total = 1.0;
    for (int64_t c = 0; c < k; ++c) cdf[r * k + c] = (running += p[c] / total);
    cdf[r * k + k - 1] = 1.0;
  }
  return cdf;
}

}  // namespace

TEST_CASE(cpu, simd_levels_known) {
  CHECK(static_cast<int>(cpu::simd_level()) <= static_cast<int>(cpu::best_simd_level()));
  std::printf("  best SIMD level here: %s\n", cpu::simd_level_name(cpu::best_simd_level()));
}

TEST_CASE(cpu, simd_gaussian_float32_matches_scalar) { check_gaussian<float>(); }
TEST_CASE(cpu, simd_gaussian_float64_matches_scalar) { check_gaussian<double>(); }

TEST_CASE(cpu, simd_bernoulli_matches_scalar) {
  std::mt19937_64 rng(8);
  for (SimdLevel level : simd_levels()) {
    for (double epsilon : {0.05, 0.3, 0.9}) {
      const edfast::core::BernoulliNoise noise = edfast::core::bernoulli_noise(epsilon);
      for (const edfast::BinaryBits& bits :
           {edfast::BinaryBits{1, 0xff, 1}, edfast::BinaryBits{2, 0x7fff, 0x3c00},
            edfast::BinaryBits{4, 0x7fffffff, 0x3f800000}, edfast::BinaryBits{8, ~0ull, 1}}) {
        edfast::dispatch_binary(bits, [&](auto tag) {
          using U = decltype(tag);
          for (const PerturbShape& shape : kShapes) {
            std::vector<U> x(shape.batch * shape.dim);
            for (U& v : x) v = rng() % 2 ? static_cast<U>(bits.one) : U(0);
            compare_levels<U>("dense bernoulli", level, shape, [&](U* y, U* n) {
              cpu::bernoulli_rows(x.data(), y, n, shape, noise, bits.flip<U>(), 0, shape.batch);
            });
          }
        });
      }
    }
  }
}

TEST_CASE(cpu, simd_transition_matches_scalar) {
  std::mt19937_64 rng(9);
  for (SimdLevel level : simd_levels()) {
    // 8 and 16 fill one register of AVX2 / AVX-512 lanes; 17 is past both (scalar search).
    for (int64_t k : {2, 5, 8, 9, 16, 17}) {
      std::vector<double> cdf = random_cdf(k, rng);
      if (k == 9) {  // row 3 not nondecreasing: for u in [0.35, 0.6) a count would differ from the search
        cdf[3 * k] = 0.6;
        cdf[3 * k + 1] = 0.35;
      }
      for (const PerturbShape& shape : kShapes) {
        std::vector<int64_t> x(shape.batch * shape.dim);
        for (int64_t& v : x) v = static_cast<int64_t>(rng() % static_cast<uint64_t>(k));
        compare_levels<int64_t>("transition", level, shape, [&](int64_t* y, int64_t* n) {
          cpu::transition_rows(x.data(), y, n, shape, cdf.data(), k, 0, shape.batch);
        });
      }
    }
  }
}
