// C++ tests of csrc/core/perturb.h: the 4-coordinate blocks of each perturbation and their draw
// layout.
#include "harness.h"

// ------------------------------------------------------------------------ 5. perturb blocks

TEST_CASE(core, bernoulli_block) {
  const int64_t dim = 783;  // partial last block
  const int64_t blocks = blocks_per_row(dim);
  CHECK(blocks == 196);
  std::vector<uint8_t> a(dim + 1), b(dim + 1);
  for (int64_t d = 0; d < dim; ++d) a[d] = static_cast<uint8_t>((d * 7) % 3 == 0);
  const double epsilons[] = {0.005, 0.1, 0.5};
  for (double eps : epsilons) {
    const uint64_t threshold = flip_threshold(eps);
    const double p = static_cast<double>(threshold) / 4294967296.0;
    int64_t flips = 0, trials = 0;
    bool binary = true, layout = true, tail_untouched = true;
    for (int64_t row = 0; row < 2000; ++row) {
      const RowStream stream(0xb17ull, static_cast<uint64_t>(row), static_cast<uint32_t>(row % 3));
      b[dim] = 0xAB;
      for (int64_t k = 0; k < blocks; ++k)
        bernoulli_block(stream, k, a.data(), b.data(), dim, threshold, BinaryFlip<uint8_t>{0xff, 1});
      tail_untouched = tail_untouched && b[dim] == 0xAB;
      for (int64_t d = 0; d < dim; ++d) {
        binary = binary && b[d] <= 1;
        const bool flipped = b[d] != a[d];
        layout = layout && flipped == (word_for(stream, d) < threshold);
        flips += flipped;
        ++trials;
      }
    }
    CHECK(binary, "eps=%g: output not {0,1}", eps);
    CHECK(layout, "eps=%g: coordinate d must use word d%%4 of block d/4", eps);
    CHECK(tail_untouched, "eps=%g: wrote past dim", eps);
    CHECK(binomial_ok(flips, trials, p), "eps=%g: %" PRId64 " flips in %" PRId64, eps, flips, trials);
  }
}

TEST_CASE(core, binary_flip_in_every_dtype) {
  // 0 <-> 1 in the bits of bool/integers and of float16, bfloat16, float32, float64; -0.0 is 0.
  const BinaryFlip<uint8_t> byte{0xff, 1};
  CHECK(byte(0) == 1 && byte(1) == 0);
  const BinaryFlip<uint16_t> half{0x7fff, 0x3c00}, bf16{0x7fff, 0x3f80};
  CHECK(half(0x0000) == 0x3c00 && half(0x8000) == 0x3c00 && half(0x3c00) == 0);
  CHECK(bf16(0x0000) == 0x3f80 && bf16(0x3f80) == 0);
  const BinaryFlip<uint32_t> f32{0x7fffffffu, 0x3f800000u};
  float one = 1.0f, zero = 0.0f, minus_zero = -0.0f;
  uint32_t one_bits, zero_bits, minus_zero_bits;
  std::memcpy(&one_bits, &one, 4);
  std::memcpy(&zero_bits, &zero, 4);
  std::memcpy(&minus_zero_bits, &minus_zero, 4);
  CHECK(f32(zero_bits) == one_bits && f32(minus_zero_bits) == one_bits && f32(one_bits) == zero_bits);
  const BinaryFlip<uint64_t> f64{0x7fffffffffffffffull, 0x3ff0000000000000ull}, i64{~0ull, 1};
  double done = 1.0;
  uint64_t done_bits;
  std::memcpy(&done_bits, &done, 8);
  CHECK(f64(0) == done_bits && f64(done_bits) == 0 && i64(0) == 1 && i64(1) == 0);
}

TEST_CASE(core, bernoulli_noise_layout_choice) {
  CHECK(bernoulli_noise(0.005).sparse && bernoulli_noise(kSparseFlipMax).sparse);
  CHECK(!bernoulli_noise(0.1).sparse && !bernoulli_noise(0.5).sparse);
  CHECK(std::fabs(bernoulli_noise(0.01).gap_scale * std::log1p(-0.01) - 1.0) < 1e-6);
}

// The gaps' draw layout and, over many streams, the law of independent Bernoulli(eps) flips:
// the rate at every coordinate, the variance of the number of flips per row (binomial) and the
// rate of adjacent pairs flipping together (eps^2).
TEST_CASE(core, gap_flips) {
  const int64_t dim = 301;
  for (double eps : {0.002, 0.01, kSparseFlipMax}) {
    const BernoulliNoise noise = bernoulli_noise(eps);
    const int64_t rows = eps < 0.005 ? 60000 : 20000;
    std::vector<int64_t> per_coordinate(dim, 0);
    int64_t pairs = 0, total = 0;
    double sum_sq = 0;
    bool increasing = true, in_range = true, layout = true;
    for (int64_t row = 0; row < rows; ++row) {
      const RowStream stream(0x6a9ull, static_cast<uint64_t>(row), negative_stream(row % 5));
      std::vector<int64_t> flips;
      for_each_gap_flip(stream, dim, noise.gap_scale, [&](int64_t d) { flips.push_back(d); });
      // Re-derive the positions from the words: word k is the k-th gap.
      int64_t position = -1;
      for (size_t k = 0; k < flips.size(); ++k) {
        const float u = uniform_open(word_for(stream, static_cast<int64_t>(k)));
        position += 1 + static_cast<int64_t>(exact::mul(exact::log_positive(u), noise.gap_scale));
        layout = layout && position == flips[k];
      }
      for (size_t k = 0; k < flips.size(); ++k) {
        in_range = in_range && flips[k] >= 0 && flips[k] < dim;
        increasing = increasing && (k == 0 || flips[k] > flips[k - 1]);
        if (flips[k] >= 0 && flips[k] < dim) ++per_coordinate[flips[k]];
        pairs += k > 0 && flips[k] == flips[k - 1] + 1;
      }
      total += static_cast<int64_t>(flips.size());
      sum_sq += static_cast<double>(flips.size()) * static_cast<double>(flips.size());
    }
    CHECK(in_range && increasing, "eps=%g: flips out of range or not increasing", eps);
    CHECK(layout, "eps=%g: the k-th flip must come from word k (word k%%4 of block k/4)", eps);
    CHECK(binomial_ok(total, rows * dim, eps), "eps=%g: %" PRId64 " flips in %" PRId64, eps, total, rows * dim);
    const std::vector<double> uniform(dim, 1.0 / static_cast<double>(dim));
    const double stat = chi_square(per_coordinate, uniform, total);
    CHECK(stat < chi_square_bound(static_cast<double>(dim - 1)), "eps=%g: rate varies with the coordinate (chi2 %.1f)", eps, stat);
    // Flips per row ~ Binomial(dim, eps): variance dim eps (1 - eps); its estimate has a
    // relative standard error of about sqrt(2 / rows).
    const double mean = static_cast<double>(total) / rows;
    const double variance = sum_sq / rows - mean * mean, expected = dim * eps * (1 - eps);
    CHECK(std::fabs(variance / expected - 1.0) < kZ * std::sqrt(2.0 / rows) + 0.01,
          "eps=%g: variance of flips per row %.4f, binomial %.4f", eps, variance, expected);
    CHECK(binomial_ok(pairs, rows * (dim - 1), eps * eps), "eps=%g: %" PRId64 " adjacent pairs", eps, pairs);
  }
}

TEST_CASE(core, bitflip_coordinate) {
  const int64_t dims[] = {1, 7, 784};
  for (int64_t dim : dims) {
    const int64_t rows = std::max<int64_t>(20000, dim * 200);
    std::vector<int64_t> counts(dim, 0);
    bool in_range = true, layout = true;
    for (int64_t row = 0; row < rows; ++row) {
      const RowStream stream(42u, static_cast<uint64_t>(row / 4), negative_stream(row % 4));
      const int64_t c = bitflip_coordinate(stream, dim);
      layout = layout && c == uniform_index(stream.block(0).v[0], dim);
      if (c < 0 || c >= dim) {
        in_range = false;
        continue;
      }
      ++counts[c];
    }
    CHECK(in_range, "dim=%" PRId64 ": coordinate out of range", dim);
    CHECK(layout, "dim=%" PRId64 ": BitFlip must use word 0 of block 0", dim);
    if (dim > 1) {
      const std::vector<double> uniform(dim, 1.0 / static_cast<double>(dim));
      const double stat = chi_square(counts, uniform, rows);
      const double bound = chi_square_bound(static_cast<double>(dim - 1));
      std::printf("  bitflip dim=%" PRId64 ": chi2 %.1f (dof %" PRId64 ", bound %.1f)\n", dim, stat,
                  dim - 1, bound);
      CHECK(stat <= bound, "dim=%" PRId64 ": chi2 %.1f > %.1f", dim, stat, bound);
    }
  }
}

TEST_CASE(core, transition_draw) {
  // Categorical(5, 0.1): Q = 0.9 I + 0.02, and a table with zero-probability classes.
  const int64_t k = 5;
  std::vector<double> q(k * k);
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b) q[a * k + b] = (a == b ? 0.9 : 0.0) + 0.1 / k;
  std::vector<double> sparse = {0.0, 0.5, 0.0, 0.25, 0.25,  // row 0
                                0.2, 0.2, 0.2, 0.2, 0.2,    // row 1
                                0.0, 0.0, 0.0, 0.0, 1.0,    // row 2
                                1.0, 0.0, 0.0, 0.0, 0.0,    // row 3
                                0.1, 0.0, 0.3, 0.0, 0.6};   // row 4
  for (const std::vector<double>* table : {&q, &sparse}) {
    std::vector<double> cdf(k * k);
    for (int64_t a = 0; a < k; ++a) {
      double total = 0.0;
      for (int64_t b = 0; b < k; ++b) cdf[a * k + b] = (total += (*table)[a * k + b]);
      cdf[a * k + k - 1] = 1.0;  // as edfast.perturbations does
    }
    for (int64_t state = 0; state < k; ++state) {
      const int64_t trials = 200000;
      std::vector<int64_t> counts(k, 0);
      bool in_range = true;
      for (int64_t i = 0; i < trials; ++i) {
        const uint32_t word = RowStream(77u, static_cast<uint64_t>(state), 0).block(static_cast<uint32_t>(i / 4)).v[i % 4];
        const int64_t next = transition_draw(word, state, cdf.data(), k);
        if (next < 0 || next >= k) {
          in_range = false;
          continue;
        }
        ++counts[next];
      }
      CHECK(in_range, "state %" PRId64 ": class out of range", state);
      for (int64_t b = 0; b < k; ++b) {
        const double p = (*table)[state * k + b];
        if (p == 0.0) {
          CHECK(counts[b] == 0, "state %" PRId64 ": zero-probability class %" PRId64 " drawn %" PRId64 " times",
                state, b, counts[b]);
        } else {
          CHECK(binomial_ok(counts[b], trials, p), "state %" PRId64 " -> %" PRId64 ": %" PRId64 "/%" PRId64 " vs %g",
                state, b, counts[b], trials, p);
        }
      }
      // Extreme words: 0 gives the first class with positive mass, ~0 the last.
      int64_t first = 0;
      while ((*table)[state * k + first] == 0.0) ++first;
      int64_t last = k - 1;
      while ((*table)[state * k + last] == 0.0) --last;
      CHECK(transition_draw(0u, state, cdf.data(), k) == first, "word 0, state %" PRId64, state);
      CHECK(transition_draw(0xffffffffu, state, cdf.data(), k) == last, "word ~0, state %" PRId64, state);
    }

    // transition_block: layout and partial last block.
    const int64_t dim = 10;
    std::vector<int64_t> a(dim + 2), b(dim + 2, -7);
    for (int64_t d = 0; d < dim; ++d) a[d] = d % k;
    const RowStream stream(5u, 3u, negative_stream(2));
    for (int64_t blk = 0; blk < blocks_per_row(dim); ++blk)
      transition_block(stream, blk, a.data(), b.data(), dim, cdf.data(), k);
    bool layout = true;
    for (int64_t d = 0; d < dim; ++d)
      layout = layout && b[d] == transition_draw(word_for(stream, d), a[d], cdf.data(), k);
    CHECK(layout, "transition_block: coordinate d must use word d%%4 of block d/4");
    CHECK(b[dim] == -7 && b[dim + 1] == -7, "transition_block wrote past dim");
  }
}

template <typename T>
void check_gaussian_block(const char* type_name) {
  const int64_t dims[] = {1, 4, 7, 13, 784};
  const T scales[] = {T(1), T(0.1), T(2.5)};
  for (int64_t dim : dims) {
    for (T scale : scales) {
      std::vector<T> a(dim + 3), b(dim + 3, T(-1234.5));
      for (int64_t d = 0; d < dim; ++d) a[d] = static_cast<T>(0.37 * static_cast<double>(d) - 3.0);
      const RowStream stream(0xfeedull, 11u, negative_stream(4));
      for (int64_t blk = 0; blk < blocks_per_row(dim); ++blk)
        gaussian_block(stream, blk, a.data(), b.data(), dim, scale);
      bool exact = true;
      for (int64_t d = 0; d < dim; ++d) {
        float z[4];
        normal4(stream.block(static_cast<uint32_t>(d / 4)), z);
        const T step = scale * static_cast<T>(z[d % 4]);  // rounded, then added (no FMA)
        const T want = step + a[d];
        exact = exact && std::memcmp(&want, &b[d], sizeof(T)) == 0;
      }
      CHECK(exact, "%s dim=%" PRId64 " scale=%g: b != a + (scale * z)", type_name, dim,
            static_cast<double>(scale));
      CHECK(b[dim] == T(-1234.5) && b[dim + 1] == T(-1234.5) && b[dim + 2] == T(-1234.5),
            "%s dim=%" PRId64 ": wrote past dim", type_name, dim);
    }
  }
  // b - a ~ scale * N(0, 1) in distribution: mean and variance over 4e5 coordinates.
  const int64_t dim = 1000, rows = 400;
  const T scale = T(0.5);
  std::vector<T> a(dim, T(0)), b(dim);
  double s1 = 0, s2 = 0;
  for (int64_t row = 0; row < rows; ++row) {
    const RowStream stream(9u, static_cast<uint64_t>(row), kStreamY);
    for (int64_t blk = 0; blk < blocks_per_row(dim); ++blk)
      gaussian_block(stream, blk, a.data(), b.data(), dim, scale);
    for (int64_t d = 0; d < dim; ++d) {
      const double x = static_cast<double>(b[d]) / static_cast<double>(scale);
      s1 += x;
      s2 += x * x;
    }
  }
  const double n = static_cast<double>(dim * rows);
  CHECK(std::fabs(s1 / n) <= kZ / std::sqrt(n), "%s: mean %.5f", type_name, s1 / n);
  CHECK(std::fabs(s2 / n - 1.0) <= kZ * std::sqrt(2.0 / n), "%s: var %.5f", type_name, s2 / n);
}

TEST_CASE(core, gaussian_block) {
  check_gaussian_block<float>("float");
  check_gaussian_block<double>("double");
}
