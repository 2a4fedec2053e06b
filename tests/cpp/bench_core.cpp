// Single-thread throughput of the csrc/core building blocks, without torch: the compute floors
// quoted in bench/NOTES.md. Not a test (no ctest entry); run build/cmake/edfast_core_bench.
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "core/contrastive.h"
#include "core/noise.h"
#include "core/perturb.h"
#include "core/philox.h"

using namespace edfast::core;

namespace {

volatile uint32_t g_sink_u32;
volatile float g_sink_f32;

template <typename Fn>
double best_ns_per_item(int64_t items, Fn fn) {
  double best = 1e300;
  for (int rep = 0; rep < 5; ++rep) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    const auto stop = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::nano>(stop - start).count());
  }
  return best / static_cast<double>(items);
}

}  // namespace

int main() {
  const int64_t n = 1 << 22;

  const double philox_ns = best_ns_per_item(n, [&] {
    uint32_t acc = 0;
    for (int64_t i = 0; i < n; ++i) acc ^= RowStream(1u, static_cast<uint64_t>(i), 0).block(0).v[0];
    g_sink_u32 = acc;
  });

  const double normal4_ns = best_ns_per_item(n, [&] {
    float acc = 0;
    for (int64_t i = 0; i < n; ++i) {
      float z[4];
      normal4(U32x4{{static_cast<uint32_t>(i) * 2654435761u, static_cast<uint32_t>(i), ~static_cast<uint32_t>(i),
                     static_cast<uint32_t>(i) * 40503u}},
              z);
      acc += z[0] + z[1] + z[2] + z[3];
    }
    g_sink_f32 = acc;
  });

  const int64_t dim = 784, rows = 4096;
  std::vector<float> a(dim, 0.5f), b(dim);
  const double gaussian_ns = best_ns_per_item(rows * dim, [&] {
    for (int64_t r = 0; r < rows; ++r) {
      const RowStream stream(7u, static_cast<uint64_t>(r), 1);
      for (int64_t k = 0; k < blocks_per_row(dim); ++k) gaussian_block(stream, k, a.data(), b.data(), dim, 1.0f);
    }
    g_sink_f32 = b[3];
  });

  std::vector<uint8_t> ab(dim, 0), bb(dim);
  const uint64_t threshold = flip_threshold(0.005);
  const double bernoulli_ns = best_ns_per_item(rows * dim, [&] {
    for (int64_t r = 0; r < rows; ++r) {
      const RowStream stream(7u, static_cast<uint64_t>(r), 1);
      for (int64_t k = 0; k < blocks_per_row(dim); ++k)
        bernoulli_block(stream, k, ab.data(), bb.data(), dim, threshold, BinaryFlip<uint8_t>{0xff, 1});
    }
    g_sink_u32 = bb[5];
  });

  std::vector<int64_t> ac(dim, 2), bc(dim);
  std::vector<double> cdf(25);
  for (int64_t a = 0; a < 5; ++a)
    for (int64_t b2 = 0; b2 < 5; ++b2) cdf[a * 5 + b2] = (b2 >= a ? 0.9 : 0.0) + 0.02 * static_cast<double>(b2 + 1);
  const double transition_ns = best_ns_per_item(rows * dim, [&] {
    for (int64_t r = 0; r < rows; ++r) {
      const RowStream stream(7u, static_cast<uint64_t>(r), 1);
      for (int64_t k = 0; k < blocks_per_row(dim); ++k)
        transition_block(stream, k, ac.data(), bc.data(), dim, cdf.data(), 5);
    }
    g_sink_u32 = static_cast<uint32_t>(bc[5]);
  });

  const int64_t m = 32, batch = n / m;
  std::vector<float> e_neg(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) e_neg[i] = std::sin(static_cast<float>(i)) * 3.0f;
  const double lse_ns = best_ns_per_item(n, [&] {
    float acc = 0;
    for (int64_t i = 0; i < batch; ++i) {
      auto lse = OnlineLogSumExp<float>::empty();
      lse.push_weight(1.0f);
      for (int64_t j = 0; j < m; ++j) lse.push(0.5f - e_neg[i * m + j]);
      acc += lse.value();
    }
    g_sink_f32 = acc;
  });
  const double weight_ns = best_ns_per_item(n, [&] {
    float acc = 0;
    for (int64_t i = 0; i < n; ++i) acc += contrast_weight(0.5f, e_neg[i], 1.25f);
    g_sink_f32 = acc;
  });

  std::printf("single thread, ns per item (best of 5):\n");
  std::printf("  philox4x32_10 call          %6.2f ns  (%.2f ns per 32-bit word)\n", philox_ns, philox_ns / 4);
  std::printf("  normal4 (4 normals)         %6.2f ns  (%.2f ns per normal)\n", normal4_ns, normal4_ns / 4);
  std::printf("  gaussian_block, per coord   %6.2f ns  (Philox + Box-Muller pairs + mul_add)\n", gaussian_ns);
  std::printf("  bernoulli_block, per coord  %6.2f ns\n", bernoulli_ns);
  std::printf("  transition_block K=5, coord %6.2f ns  (K x K float64 CDF table)\n", transition_ns);
  std::printf("  OnlineLogSumExp push        %6.2f ns  (forward, per negative)\n", lse_ns);
  std::printf("  contrast_weight (expf)      %6.2f ns  (backward, per negative)\n", weight_ns);
  return 0;
}
