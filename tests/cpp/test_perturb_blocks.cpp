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
      for (int64_t k = 0; k < blocks; ++k) bernoulli_block(stream, k, a.data(), b.data(), dim, threshold);
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
