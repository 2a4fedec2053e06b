// A torch-free reference of the fused MLP op (mlp_ed, csrc/mlp_args.h) for the C++ tests: the
// items drawn by the CPU perturbation rows (csrc/cpu/perturb_rows.h, the draws of
// edfast.perturb), then the MLP, the row statistics and the backward by naive backprop in
// plain loops, every sum in the accumulation type Acc. Run with Acc = double it is the float64
// reference; with Acc = T it is the same-precision reference whose error sets the float32
// tolerance (DESIGN §6).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/mlp.h"
#include "core/perturb.h"
#include "cpu/perturb_rows.h"
#include "launch_args.h"
#include "mlp_args.h"

namespace mlp_reference {

namespace core = edfast::core;

// The network on the host: weight[l] [width[l + 1], width[l]], bias[l] [width[l + 1]].
template <typename T>
struct Network {
  std::vector<int64_t> width;  // D, the hidden widths, 1
  std::vector<std::vector<T>> weight, bias;
  core::Activation activation;
  int layers() const { return static_cast<int>(weight.size()); }
};

// The items of every row, [B, M + 1, D]: item 0 = x_i, item 1 + j = negative j of row i, in T
// exactly as edfast.perturb draws them (binary data flipped in the bits of T).
template <typename T>
std::vector<T> draw_items(const edfast::FusedShape& shape, const edfast::MlpNoise& noise, const std::vector<T>& x) {
  const int64_t b = shape.batch, d = shape.dim, m = shape.negatives;
  const edfast::PerturbShape perturb{b, d, m, shape.seed, shape.row_offset, 0};
  std::vector<T> y(static_cast<size_t>(b * d)), negatives(static_cast<size_t>(b * m * d));
  using U = typename core::FloatFlip<T>::U;
  const core::BinaryFlip<U> flip = core::FloatFlip<T>::flip();
  // The binary rows work on the bits: copy through U arrays (no aliasing of T as U).
  std::vector<U> xb(x.size()), yb(y.size()), nb(negatives.size());
  switch (noise.kind) {
    case core::kGaussian:
      edfast::cpu::gaussian_rows(x.data(), y.data(), negatives.data(), perturb, noise.scale, 0, b);
      break;
    case core::kBernoulli:
      std::memcpy(xb.data(), x.data(), x.size() * sizeof(T));
      edfast::cpu::bernoulli_rows(xb.data(), yb.data(), nb.data(), perturb, noise.bernoulli, flip, 0, b);
      std::memcpy(negatives.data(), nb.data(), nb.size() * sizeof(T));
      break;
    default:
      std::memcpy(xb.data(), x.data(), x.size() * sizeof(T));
      edfast::cpu::bitflip_rows(xb.data(), yb.data(), nb.data(), perturb, flip, 0, b);
      std::memcpy(negatives.data(), nb.data(), nb.size() * sizeof(T));
      break;
  }
  std::vector<T> items(static_cast<size_t>(b * (m + 1) * d));
  for (int64_t i = 0; i < b; ++i) {
    std::copy(x.begin() + i * d, x.begin() + (i + 1) * d, items.begin() + i * (m + 1) * d);
    std::copy(negatives.begin() + i * m * d, negatives.begin() + (i + 1) * m * d, items.begin() + (i * (m + 1) + 1) * d);
  }
  return items;
}

// What the op returns, in double whatever Acc was.
struct Result {
  std::vector<double> v;                                // [B]
  std::vector<double> energy, normaliser, probability;  // row_stats' columns U(x_i), L_i, P_i
  std::vector<std::vector<double>> grad_weight, grad_bias;
  std::vector<double> grad_x;                           // [B, D]
};

template <typename Acc, typename T>
Acc to(T value) {
  return static_cast<Acc>(value);
}

// Forward and backward of the op on precomputed items, in Acc: v and row_stats, and the
// gradients of sum_i grad_v[i] v_i (grad x: every item for Gaussian noise, item 0 otherwise).
template <typename Acc, typename T>
Result evaluate(const Network<T>& net, const edfast::FusedShape& shape, bool gaussian, const std::vector<T>& items,
                const std::vector<T>& grad_v) {
  const int layers = net.layers();
  const int64_t b = shape.batch, m = shape.negatives, d = shape.dim, per_row = m + 1;
  // Every item's activations: h[l] [items, width[l]] (h[0] the items), slope[l] = act'(pre) of h[l].
  const int64_t count = b * per_row;
  std::vector<std::vector<Acc>> h(static_cast<size_t>(layers)), slope(static_cast<size_t>(layers));
  std::vector<Acc> energy(static_cast<size_t>(count));
  h[0].resize(static_cast<size_t>(count * d));
  for (size_t k = 0; k < h[0].size(); ++k) h[0][k] = to<Acc>(items[k]);
  for (int l = 0; l < layers; ++l) {
    const int64_t in = net.width[l], out = net.width[l + 1];
    const bool last = l + 1 == layers;
    if (!last) {
      h[l + 1].resize(static_cast<size_t>(count * out));
      slope[l + 1].resize(static_cast<size_t>(count * out));
    }
    for (int64_t n = 0; n < count; ++n) {
      for (int64_t o = 0; o < out; ++o) {
        Acc sum = Acc(0);
        for (int64_t k = 0; k < in; ++k) sum += h[l][n * in + k] * to<Acc>(net.weight[l][o * in + k]);
        const Acc pre = sum + to<Acc>(net.bias[l][o]);
        if (last) {
          energy[n] = pre;
        } else {
          Acc s;
          h[l + 1][n * out + o] = core::activate(net.activation, pre, &s);
          slope[l + 1][n * out + o] = s;
        }
      }
    }
  }
  // Row statistics: L' over the negatives (max-shifted), L = logaddexp(L', log w), P = exp(L' - L).
  Result r;
  r.v.resize(b);
  r.energy.resize(b);
  r.normaliser.resize(b);
  r.probability.resize(b);
  std::vector<Acc> coef(static_cast<size_t>(count));
  const Acc w = to<Acc>(shape.weight);
  for (int64_t i = 0; i < b; ++i) {
    const Acc u0 = energy[i * per_row];
    Acc top = -INFINITY;
    for (int64_t j = 1; j <= m; ++j) top = std::max(top, u0 - energy[i * per_row + j]);
    Acc sum = Acc(0);
    for (int64_t j = 1; j <= m; ++j) sum += std::exp(u0 - energy[i * per_row + j] - top);
    const Acc negatives = top + std::log(sum);
    Acc normaliser = negatives;
    if (w > Acc(0)) {
      const Acc log_w = std::log(w), high = std::max(negatives, log_w), low = std::min(negatives, log_w);
      normaliser = high + std::log1p(std::exp(low - high));
    }
    const Acc p = std::exp(negatives - normaliser);
    r.v[i] = static_cast<double>(normaliser - std::log(static_cast<Acc>(m)));
    r.energy[i] = static_cast<double>(u0);
    r.normaliser[i] = static_cast<double>(normaliser);
    r.probability[i] = static_cast<double>(p);
    const Acc g = to<Acc>(grad_v[i]);
    coef[i * per_row] = g * p;
    for (int64_t j = 1; j <= m; ++j) coef[i * per_row + j] = -g * std::exp(u0 - energy[i * per_row + j] - normaliser);
  }
  // Backprop, item by item: delta of the last layer is c_n.
  std::vector<std::vector<Acc>> gw(static_cast<size_t>(layers)), gb(static_cast<size_t>(layers));
  for (int l = 0; l < layers; ++l) {
    gw[l].assign(static_cast<size_t>(net.width[l + 1] * net.width[l]), Acc(0));
    gb[l].assign(static_cast<size_t>(net.width[l + 1]), Acc(0));
  }
  std::vector<Acc> gx(static_cast<size_t>(b * d), Acc(0));
  std::vector<Acc> delta, below;
  for (int64_t n = 0; n < count; ++n) {
    delta.assign(1, coef[n]);
    for (int l = layers - 1; l >= 0; --l) {
      const int64_t in = net.width[l], out = net.width[l + 1];
      for (int64_t o = 0; o < out; ++o) {
        gb[l][o] += delta[o];
        for (int64_t k = 0; k < in; ++k) gw[l][o * in + k] += delta[o] * h[l][n * in + k];
      }
      below.assign(static_cast<size_t>(in), Acc(0));
      for (int64_t o = 0; o < out; ++o)
        for (int64_t k = 0; k < in; ++k) below[k] += delta[o] * to<Acc>(net.weight[l][o * in + k]);
      if (l > 0) {
        for (int64_t k = 0; k < in; ++k) below[k] *= slope[l][n * in + k];
      } else if (gaussian || n % per_row == 0) {
        for (int64_t k = 0; k < in; ++k) gx[(n / per_row) * d + k] += below[k];
      }
      delta.swap(below);
    }
  }
  for (int l = 0; l < layers; ++l) {
    r.grad_weight.emplace_back(gw[l].begin(), gw[l].end());
    r.grad_bias.emplace_back(gb[l].begin(), gb[l].end());
  }
  r.grad_x.assign(gx.begin(), gx.end());
  return r;
}

}  // namespace mlp_reference
