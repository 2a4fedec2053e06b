// The fused ED kernels (csrc/cuda/fused.cu) under the CPU execution model, against their CPU
// twin: the row functions of csrc/cpu/fused_rows.h in a plain serial loop, with s / gwt summed
// serially. Same noise, same inputs; v, L, r, s, a and gwt must agree to rounding (the CUDA
// reductions and atomics add in another order). With one modelled SM the grid has 16 blocks of
// one row each, so B = 19 and 23 wrap the grid-stride loop.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "core/fused_row.h"
#include "cpu/fused_rows.h"
#include "cuda/launchers.h"
#include "device_buffer.h"
#include "test_values.h"
#include "runtime.h"

using edfast::FusedNoise;
using edfast::FusedShape;
namespace core = edfast::core;
namespace cpu = edfast::cpu;
namespace cuda = edfast::cuda;

namespace {

struct Case {
  int64_t batch, dim, negatives, row_offset;
  double weight;
  uint64_t seed;
};

// D % 4 != 0 throughout; M = 1, 31, 32, 33, 1000; w = 0 once.
const Case kCases[] = {
    {23, 13, 33, 0, 1.0, 0x5eedull}, {5, 7, 1, 1000, 0.5, 7ull}, {19, 30, 31, 7, 1.0, 1ull << 40},
    {3, 45, 32, 0, 0.0, 99ull},      {2, 61, 1000, 3, 1.0, 3ull},
};

struct ModelDevice {  // one SM: 16 blocks of 128 threads, so the row loop wraps
  int saved = cuda_model::multiprocessor_count();
  ModelDevice() { cuda_model::set_multiprocessor_count(1); }
  ~ModelDevice() { cuda_model::set_multiprocessor_count(saved); }
};

template <typename T> constexpr double kTolerance = 1e-4;  // relative to the array's largest value
template <> constexpr double kTolerance<double> = 1e-10;
template <typename T> const char* kTypeName = "f32";
template <> const char* kTypeName<double> = "f64";

std::string describe(const char* what, const Case& c, bool bias) {
  char text[200];
  std::snprintf(text, sizeof(text), "%s B=%" PRId64 " D=%" PRId64 " M=%" PRId64 " w=%g%s", what, c.batch, c.dim,
                c.negatives, c.weight, bias ? " bias" : "");
  return text;
}

// got against want: every value finite and within tolerance * max(1, max |want|).
template <typename T>
void expect_close(const std::string& what, const char* name, const T* got, const std::vector<T>& want) {
  double scale = 1.0, worst = 0.0;
  size_t at = 0;
  bool finite = true;
  for (size_t k = 0; k < want.size(); ++k) scale = std::max(scale, std::fabs(static_cast<double>(want[k])));
  for (size_t k = 0; k < want.size(); ++k) {
    finite = finite && std::isfinite(static_cast<double>(got[k]));
    const double error = std::fabs(static_cast<double>(got[k]) - static_cast<double>(want[k]));
    if (!(error <= worst)) worst = error, at = k;
  }
  CHECK(finite && worst <= kTolerance<T> * scale, "%s %s: error %g at %zu (got %.9g, want %.9g), scale %g",
        what.c_str(), name, worst, at, want.empty() ? 0.0 : static_cast<double>(got[at]),
        want.empty() ? 0.0 : static_cast<double>(want[at]), scale);
}



// A symmetric [n, n] matrix.
template <typename T>
std::vector<T> symmetric(int64_t n, std::mt19937_64& rng, double scale) {
  std::vector<T> k(static_cast<size_t>(n * n));
  for (int64_t a = 0; a < n; ++a)
    for (int64_t b = 0; b <= a; ++b) k[a * n + b] = k[b * n + a] = static_cast<T>(std::uniform_real_distribution<double>(-scale, scale)(rng));
  return k;
}

// Binary x, and y = x with about a fifth of its coordinates flipped (the data row's item).
template <typename T>
void binary_pair(int64_t n, std::mt19937_64& rng, std::vector<T>& x, std::vector<T>& y) {
  x.resize(static_cast<size_t>(n));
  y.resize(static_cast<size_t>(n));
  for (int64_t k = 0; k < n; ++k) {
    x[k] = static_cast<T>(rng() % 2);
    y[k] = rng() % 5 == 0 ? T(1) - x[k] : x[k];
  }
}

// ------------------------------------------------------------------ the CPU twin, serially

template <typename T>
void cpu_pairwise(const FusedShape& shape, const FusedNoise& noise, const edfast::PairwiseInputs<T>& in,
                  const std::vector<T>& grad, std::vector<T>& v, std::vector<T>& norm, std::vector<T>& e,
                  std::vector<T>& r, std::vector<T>& s) {
  const int64_t n_state = shape.state, m = shape.negatives;
  e.assign(static_cast<size_t>(shape.batch * (m + 1)), T(0));
  const T log_m = static_cast<T>(std::log(static_cast<double>(m)));
  v.assign(shape.batch, T(0));
  norm.assign(shape.batch, T(0));
  r.assign(static_cast<size_t>(shape.batch * n_state), T(0));
  s.assign(static_cast<size_t>(n_state * n_state), T(0));
  cpu::RowScratch<T> scratch;
  std::vector<T> coef;
  for (int64_t i = 0; i < shape.batch; ++i) {
    cpu::pairwise_row_items(in, shape, noise, i, scratch);
    cpu::pairwise_row_energies(in, shape, i, scratch);
    std::copy(scratch.energy.begin(), scratch.energy.end(), e.begin() + i * (m + 1));
    norm[i] = cpu::row_log_normaliser(scratch.energy.data(), m, shape.weight);
    v[i] = norm[i] - log_m;
    cpu::row_coefficients(scratch.energy.data(), m, grad[i], norm[i], coef);
    cpu::row_delta_sum(scratch.items, coef, n_state, r.data() + i * n_state);
    const cpu::RowItems<T>& items = scratch.items;
    for (int64_t n = 0; n <= m; ++n)
      for (int64_t a = items.start[n]; a < items.start[n + 1]; ++a)
        for (int64_t b = items.start[n]; b < items.start[n + 1]; ++b)
          s[items.index[a] * n_state + items.index[b]] += coef[n] * items.value[a] * items.value[b];
  }
}

template <typename T>
void cpu_rbm(const FusedShape& shape, const FusedNoise& noise, const edfast::RbmInputs<T>& in,
             const std::vector<T>& grad, std::vector<T>& v, std::vector<T>& norm, std::vector<T>& e,
             std::vector<T>& a, std::vector<T>& r, std::vector<T>& gwt) {
  const int64_t m = shape.negatives, hidden = in.hidden, dim = shape.dim;
  e.assign(static_cast<size_t>(shape.batch * (m + 1)), T(0));
  const T log_m = static_cast<T>(std::log(static_cast<double>(m)));
  v.assign(shape.batch, T(0));
  norm.assign(shape.batch, T(0));
  a.assign(static_cast<size_t>(shape.batch * hidden), T(0));
  r.assign(static_cast<size_t>(shape.batch * dim), T(0));
  gwt.assign(static_cast<size_t>(dim * hidden), T(0));
  cpu::RowScratch<T> scratch;
  std::vector<T> coef, pre(static_cast<size_t>(hidden));
  for (int64_t i = 0; i < shape.batch; ++i) {
    cpu::rbm_row_items(in, shape, noise, i, scratch);
    cpu::rbm_row_energies(in, shape, i, scratch);
    std::copy(scratch.energy.begin(), scratch.energy.end(), e.begin() + i * (m + 1));
    norm[i] = cpu::row_log_normaliser(scratch.energy.data(), m, shape.weight);
    v[i] = norm[i] - log_m;
    cpu::row_coefficients(scratch.energy.data(), m, grad[i], norm[i], coef);
    cpu::row_delta_sum(scratch.items, coef, dim, r.data() + i * dim);
    const cpu::RowItems<T>& items = scratch.items;
    for (int64_t n = 0; n <= m; ++n) {
      cpu::rbm_item_pre(in, items, i, n, pre.data());
      for (int64_t h = 0; h < hidden; ++h) {
        const T sig = core::sigmoid(pre[h]);
        a[i * hidden + h] += coef[n] * sig;
        for (int64_t e = items.start[n]; e < items.start[n + 1]; ++e)
          gwt[items.index[e] * hidden + h] += coef[n] * items.value[e] * sig;
      }
    }
  }
}

// ------------------------------------------------------------------ the cases

template <typename T>
FusedShape fused_shape(const Case& c, int64_t state) {
  return FusedShape{c.batch, c.dim, state, c.negatives, c.seed, c.row_offset, c.weight};
}

// Runs forward and backward of the pairwise kernels under the model and the CPU twin.
template <typename T>
void compare_pairwise(const std::string& what, const FusedShape& shape, const FusedNoise& noise,
                      const edfast::PairwiseInputs<T>& host, const edfast::PairwiseInputs<T>& device,
                      std::mt19937_64& rng) {
  const std::vector<T> grad = uniform<T>(shape.batch, rng, -1.5, 1.5);
  std::vector<T> v, norm, e, r, s;
  cpu_pairwise(shape, noise, host, grad, v, norm, e, r, s);
  DeviceBuffer<T> v_dev(shape.batch), norm_dev(shape.batch), grad_dev(grad), norm_in(norm);
  DeviceBuffer<T> e_dev(shape.batch * (shape.negatives + 1), T(NAN));
  DeviceBuffer<T> r_dev(shape.batch * shape.state, T(NAN)), s_dev(shape.state * shape.state, T(NAN));
  CHECK(cuda::pairwise_forward(shape, noise, device, v_dev.data(), norm_dev.data(), e_dev.data(), nullptr) ==
        cudaSuccess);
  CHECK(cuda::pairwise_backward(shape, noise, device, grad_dev.data(), norm_in.data(), r_dev.data(), s_dev.data(),
                                nullptr) == cudaSuccess);
  expect_close(what, "v", v_dev.data(), v);
  expect_close(what, "log_normaliser", norm_dev.data(), norm);
  expect_close(what, "energies", e_dev.data(), e);
  expect_close(what, "r", r_dev.data(), r);
  expect_close(what, "s", s_dev.data(), s);
  CHECK(any_nonzero(s) && any_nonzero(r), "%s: the case has no sparse terms", what.c_str());
}

template <typename T>
void check_ising(const char* name, const FusedNoise& noise) {
  ModelDevice device;
  std::mt19937_64 rng(11);
  for (size_t k = 0; k < std::size(kCases); ++k) {
    const Case& c = kCases[k];
    const bool with_bias = k % 2 == 0;
    const FusedShape shape = fused_shape<T>(c, c.dim);
    std::vector<T> x, y;
    binary_pair(c.batch * c.dim, rng, x, y);
    const std::vector<T> coupling = symmetric<T>(c.dim, rng, 0.3), bias = uniform<T>(c.dim, rng, -1, 1);
    std::vector<T> field(static_cast<size_t>(c.batch * c.dim), T(0));  // h = s_y K
    for (int64_t i = 0; i < c.batch; ++i)
      for (int64_t n = 0; n < c.dim; ++n) {
        double sum = 0;
        for (int64_t d = 0; d < c.dim; ++d) sum += (2.0 * y[i * c.dim + d] - 1.0) * coupling[d * c.dim + n];
        field[i * c.dim + n] = static_cast<T>(sum);
      }
    DeviceBuffer<T> x_dev(x), y_dev(y), coupling_dev(coupling), field_dev(field), bias_dev(bias);
    const edfast::PairwiseInputs<T> host{x.data(), y.data(), coupling.data(), field.data(),
                                         with_bias ? bias.data() : nullptr, T(1)};
    const edfast::PairwiseInputs<T> dev{x_dev.data(), y_dev.data(), coupling_dev.data(), field_dev.data(),
                                        with_bias ? bias_dev.data() : nullptr, T(1)};
    const std::string what = describe((std::string(name) + " " + kTypeName<T>).c_str(), c, with_bias);
    compare_pairwise(what, shape, noise, host, dev, rng);
  }
}

FusedNoise bernoulli(double epsilon) { return FusedNoise{core::kBernoulli, core::bernoulli_noise(epsilon), nullptr, 0}; }
FusedNoise bitflip() { return FusedNoise{core::kBitFlip, core::bernoulli_noise(0.5), nullptr, 0}; }

// Categorical(K, epsilon) as a transition CDF table: Q = (1 - epsilon) I + epsilon / K.
std::vector<double> categorical_cdf(int64_t k, double epsilon) {
  std::vector<double> cdf(static_cast<size_t>(k * k));
  for (int64_t a = 0; a < k; ++a) {
    double running = 0;
    for (int64_t b = 0; b < k; ++b) cdf[a * k + b] = running += (a == b ? 1 - epsilon : 0) + epsilon / k;
    cdf[a * k + k - 1] = 1.0;
  }
  return cdf;
}

template <typename T>
void check_potts() {
  ModelDevice device;
  std::mt19937_64 rng(12);
  const int64_t k = 4;
  DeviceBuffer<double> cdf(categorical_cdf(k, 0.3));
  const FusedNoise noise{core::kTransition, core::bernoulli_noise(0.5), cdf.data(), k};
  for (size_t index = 0; index < std::size(kCases); ++index) {
    const Case& c = kCases[index];
    const bool with_bias = index % 2 == 1;
    const int64_t n_state = c.dim * k;
    const FusedShape shape = fused_shape<T>(c, n_state);
    // y must be edfast::perturb's draw from x here: the CPU rows regenerate it from x to draw
    // the negatives (binary flips do not depend on y, so there any y serves).
    std::vector<int64_t> x(static_cast<size_t>(c.batch * c.dim)), y(x.size()), unused(x.size());
    for (int64_t& v : x) v = static_cast<int64_t>(rng() % k);
    cpu::transition_rows(x.data(), y.data(), unused.data(), {c.batch, c.dim, 1, c.seed, c.row_offset, 0}, cdf.data(), k,
                         0, c.batch);
    const std::vector<T> coupling = symmetric<T>(n_state, rng, 0.3), bias = uniform<T>(n_state, rng, -1, 1);
    std::vector<T> field(static_cast<size_t>(c.batch * n_state));  // h = onehot(y) K
    for (int64_t i = 0; i < c.batch; ++i)
      for (int64_t n = 0; n < n_state; ++n) {
        double sum = 0;
        for (int64_t d = 0; d < c.dim; ++d) sum += coupling[(d * k + y[i * c.dim + d]) * n_state + n];
        field[i * n_state + n] = static_cast<T>(sum);
      }
    DeviceBuffer<int64_t> x_dev(x), y_dev(y);
    DeviceBuffer<T> coupling_dev(coupling), field_dev(field), bias_dev(bias);
    const edfast::PairwiseInputs<T> host{x.data(), y.data(), coupling.data(), field.data(),
                                         with_bias ? bias.data() : nullptr, T(0.5)};
    const edfast::PairwiseInputs<T> dev{x_dev.data(), y_dev.data(), coupling_dev.data(), field_dev.data(),
                                        with_bias ? bias_dev.data() : nullptr, T(0.5)};
    const std::string what = describe((std::string("potts ") + kTypeName<T>).c_str(), c, with_bias);
    compare_pairwise(what, shape, noise, host, dev, rng);
  }
}

template <typename T>
void check_rbm(const char* name, const FusedNoise& noise) {
  ModelDevice device;
  std::mt19937_64 rng(13);
  const int64_t hiddens[] = {5, 33, 32, 1, 40};  // H not a multiple of 32, and above it
  for (size_t k = 0; k < std::size(kCases); ++k) {
    const Case& c = kCases[k];
    const int64_t hidden = hiddens[k];
    const FusedShape shape = fused_shape<T>(c, c.dim);
    std::vector<T> x, y;
    binary_pair(c.batch * c.dim, rng, x, y);
    const std::vector<T> weight_t = uniform<T>(c.dim * hidden, rng, -0.5, 0.5);
    const std::vector<T> visible_bias = uniform<T>(c.dim, rng, -1, 1), hidden_bias = uniform<T>(hidden, rng, -1, 1);
    std::vector<T> pre_y(static_cast<size_t>(c.batch * hidden));  // y W^T + c
    for (int64_t i = 0; i < c.batch; ++i)
      for (int64_t h = 0; h < hidden; ++h) {
        double sum = hidden_bias[h];
        for (int64_t d = 0; d < c.dim; ++d) sum += y[i * c.dim + d] * weight_t[d * hidden + h];
        pre_y[i * hidden + h] = static_cast<T>(sum);
      }
    const std::vector<T> grad = uniform<T>(c.batch, rng, -1.5, 1.5);
    const edfast::RbmInputs<T> host{x.data(), y.data(), weight_t.data(), pre_y.data(), visible_bias.data(), hidden};
    std::vector<T> v, norm, e, a, r, gwt;
    cpu_rbm(shape, noise, host, grad, v, norm, e, a, r, gwt);

    DeviceBuffer<T> x_dev(x), y_dev(y), weight_dev(weight_t), pre_dev(pre_y), bias_dev(visible_bias);
    const edfast::RbmInputs<T> dev{x_dev.data(), y_dev.data(), weight_dev.data(), pre_dev.data(), bias_dev.data(), hidden};
    DeviceBuffer<T> v_dev(c.batch), norm_dev(c.batch), grad_dev(grad), norm_in(norm);
    DeviceBuffer<T> e_dev(c.batch * (c.negatives + 1), T(NAN));
    DeviceBuffer<T> a_dev(c.batch * hidden, T(NAN)), r_dev(c.batch * c.dim, T(NAN)), gwt_dev(c.dim * hidden, T(NAN));
    CHECK(cuda::rbm_forward(shape, noise, dev, v_dev.data(), norm_dev.data(), e_dev.data(), nullptr) == cudaSuccess);
    CHECK(cuda::rbm_backward(shape, noise, dev, grad_dev.data(), norm_in.data(), a_dev.data(), r_dev.data(),
                             gwt_dev.data(), nullptr) == cudaSuccess);
    const std::string what = describe((std::string(name) + " " + kTypeName<T>).c_str(), c, false) +
                             " H=" + std::to_string(hidden);
    expect_close(what, "v", v_dev.data(), v);
    expect_close(what, "log_normaliser", norm_dev.data(), norm);
    expect_close(what, "energies", e_dev.data(), e);
    expect_close(what, "a", a_dev.data(), a);
    expect_close(what, "r", r_dev.data(), r);
    expect_close(what, "gwt", gwt_dev.data(), gwt);
    CHECK(any_nonzero(gwt) && any_nonzero(r), "%s: the case has no sparse terms", what.c_str());
  }
}

}  // namespace

// Sparse Bernoulli at the crossover (epsilon = 1/32, still sparse) and below it.
TEST_CASE(cuda, fused_ising_bernoulli_sparse_matches_cpu) {
  for (double epsilon : {core::kSparseFlipMax, 0.01}) {
    check_ising<float>("ising bernoulli sparse", bernoulli(epsilon));
    check_ising<double>("ising bernoulli sparse", bernoulli(epsilon));
  }
}
TEST_CASE(cuda, fused_ising_bernoulli_dense_matches_cpu) {
  check_ising<float>("ising bernoulli dense", bernoulli(0.1));
  check_ising<double>("ising bernoulli dense", bernoulli(0.1));
}
TEST_CASE(cuda, fused_ising_bitflip_matches_cpu) {
  check_ising<float>("ising bitflip", bitflip());
  check_ising<double>("ising bitflip", bitflip());
}
TEST_CASE(cuda, fused_potts_transition_matches_cpu) {
  check_potts<float>();
  check_potts<double>();
}
TEST_CASE(cuda, fused_rbm_bernoulli_matches_cpu) {
  for (double epsilon : {core::kSparseFlipMax, 0.1}) {
    check_rbm<float>("rbm bernoulli", bernoulli(epsilon));
    check_rbm<double>("rbm bernoulli", bernoulli(epsilon));
  }
}
TEST_CASE(cuda, fused_rbm_bitflip_matches_cpu) {
  check_rbm<float>("rbm bitflip", bitflip());
  check_rbm<double>("rbm bitflip", bitflip());
}

// B = 0: no kernel runs, but the backwards still zero their sums over the batch.
TEST_CASE(cuda, fused_empty_batch) {
  const int64_t launches = cuda_model::launches_run();
  const FusedShape shape{0, 6, 6, 4, 1, 0, 1.0};
  DeviceBuffer<float> none(0), coupling(36, 0.5f), s(36, NAN), gwt(6 * 3, NAN);
  const edfast::PairwiseInputs<float> pairwise{none.data(), none.data(), coupling.data(), none.data(), nullptr, 1.0f};
  const edfast::RbmInputs<float> rbm{none.data(), none.data(), coupling.data(), none.data(), coupling.data(), 3};
  CHECK(cuda::pairwise_forward(shape, bitflip(), pairwise, none.data(), none.data(), none.data(), nullptr) ==
        cudaSuccess);
  CHECK(cuda::pairwise_backward(shape, bitflip(), pairwise, none.data(), none.data(), none.data(), s.data(), nullptr) ==
        cudaSuccess);
  CHECK(cuda::rbm_forward(shape, bitflip(), rbm, none.data(), none.data(), none.data(), nullptr) == cudaSuccess);
  CHECK(cuda::rbm_backward(shape, bitflip(), rbm, none.data(), none.data(), none.data(), none.data(), gwt.data(),
                           nullptr) == cudaSuccess);
  CHECK(cuda_model::launches_run() == launches, "an empty batch launched a kernel");
  CHECK(!any_nonzero(s.to_vector()) && !any_nonzero(gwt.to_vector()), "s or gwt not zeroed");
}

// The warp forms in csrc/core/fused_row.h against the serial ones the CPU rows use.
TEST_CASE(cuda, fused_row_pieces_match_serial_core) {
  std::mt19937_64 rng(14);
  const int64_t dim = 37, k = 5;
  const std::vector<double> cdf = categorical_cdf(k, 0.6);
  std::vector<int64_t> from(dim);
  for (int64_t& v : from) v = static_cast<int64_t>(rng() % k);
  const FusedNoise dense = bernoulli(0.3), transition{core::kTransition, core::bernoulli_noise(0.5), cdf.data(), k};
  for (uint32_t stream_id = 1; stream_id < 20; ++stream_id) {
    const core::RowStream stream(stream_id * 7919ull, 3, stream_id);
    std::vector<int64_t> serial, blocked, serial_next, blocked_next;
    core::for_each_binary_flip(stream, dim, dense, [&](int64_t d) { serial.push_back(d); });
    core::for_each_transition_change(stream, from.data(), dim, transition, [&](int64_t d, int64_t next) {
      serial_next.push_back(d * k + next);
    });
    for (int64_t block = 0; block < core::blocks_per_row(dim); ++block) {
      int64_t next[core::kCoordsPerBlock] = {};
      const unsigned flips = core::dense_flip_mask(stream, block, dim, dense.bernoulli.threshold);
      const unsigned changes = core::transition_change_mask(stream, block, from.data(), dim, transition, next);
      for (int c = 0; c < core::kCoordsPerBlock; ++c) {
        if (flips >> c & 1u) blocked.push_back(block * core::kCoordsPerBlock + c);
        if (changes >> c & 1u) blocked_next.push_back((block * core::kCoordsPerBlock + c) * k + next[c]);
      }
    }
    CHECK(serial == blocked && !serial.empty(), "stream %u: dense flips differ", stream_id);
    CHECK(serial_next == blocked_next && !serial_next.empty(), "stream %u: transition changes differ", stream_id);
  }
  // Entry terms summed in order are pairwise_item_energy bit for bit; rbm_item_pre_at is rbm_item_pre.
  const int64_t state = 23, count = 9, hidden = 6;
  const std::vector<float> coupling = symmetric<float>(state, rng, 0.4), field = uniform<float>(state, rng, -2, 2);
  const std::vector<float> bias = uniform<float>(state, rng, -1, 1), pre_y = uniform<float>(hidden, rng, -1, 1);
  const std::vector<float> weight_t = uniform<float>(state * hidden, rng, -1, 1);
  std::vector<int32_t> index = {0, 3, 4, 7, 11, 12, 17, 20, 22};
  std::vector<float> value = {2, -2, 2, 2, -2, 1, -1, 2, -2};
  const float whole = core::pairwise_item_energy<float, float>(coupling.data(), state, field.data(), bias.data(),
                                                               index.data(), value.data(), count, 0.5f);
  float sum = 0;
  for (int64_t a = 0; a < count; ++a)
    sum += core::pairwise_item_entry_energy<float, float>(coupling.data(), state, field.data(), bias.data(), index.data(),
                                                     value.data(), count, a, 0.5f);
  CHECK(sum == whole, "entry terms %.9g, item %.9g", sum, whole);
  cpu::RowItems<float> items;
  items.clear();
  for (int64_t a = 0; a < count; ++a) items.push(index[a], value[a]);
  items.close();
  const edfast::RbmInputs<float> in{nullptr, nullptr, weight_t.data(), pre_y.data(), nullptr, hidden};
  std::vector<float> pre(hidden);
  cpu::rbm_item_pre(in, items, 0, 0, pre.data());
  for (int64_t h = 0; h < hidden; ++h) {
    const float at = core::rbm_item_pre_at(pre_y.data(), weight_t.data(), hidden, h, index.data(), value.data(), count);
    CHECK(at == pre[h], "pre %" PRId64 ": %.9g vs %.9g", h, at, pre[h]);
  }
}
