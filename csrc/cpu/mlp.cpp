// The fused MLP op on the CPU (mlp_ed; maths in csrc/core/mlp.h, outputs in csrc/mlp_args.h).
//
// Work is cut into tiles of items (a row's data point and negatives) small enough that every
// layer's activations, slopes and deltas of the tile stay in a core's L2 cache. A tile is a
// few whole rows ([R rows] x [M + 1 items]) or, when one row's M + 1 items do not fit, a chunk
// of one row's items. Per tile: draw the items from the seed (perturb_rows.h, the generic
// path's noise), run the layers as GEMMs on the tile (torch's CPU BLAS through ATen's
// at::cpu::mm_out / addmm_: MKL or OpenBLAS, whatever torch was built with) with the
// activation and its slope applied on vector lanes (mlp_simd.h), and reduce the row with an
// online logsumexp. Backward draws and evaluates the tile again, turns the row statistics
// into the items' coefficients and runs the layers backwards on the tile; nothing of size M
// outlives a tile.
//
// Gradients: units of rows are split into one partition per thread; each partition sums its
// units in order into its own buffer, and the buffers are added in partition order, so a run
// gives the same bits every time for a given thread count (no atomics, no race).
// The forward can also leave the gradient of sum_i v_i (every g_i = 1) when autograd will need
// it: a tile that holds whole rows is then differentiated while it is still in cache, and the
// backward only scales (edfast/_fused_mlp.py).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/ops/addmm_cpu_dispatch.h>  // at::cpu::addmm_
#include <ATen/ops/mm_cpu_dispatch.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "../core/contrastive.h"
#include "../core/mlp.h"
#include "kernels.h"
#include "mlp_simd.h"
#include "perturb_rows.h"

namespace edfast {
namespace cpu {
namespace {

// A tile's activations, slopes and deltas. Measured (forward with gradients, 2 threads, Xeon
// with 2 MB of L2 per core) on mlp-2x128x4 / mlp-32x256x3-silu: 0.5 MB tiles 52 / 58 ms,
// 1 MB 47 / 49, 2 MB 46 / 50, 3 MB 48 / 51, 4 MB 48 / 50. Beyond the L2 the tile falls back on
// the L3, not on memory, and longer GEMMs run a little faster.
constexpr int64_t kTileBytes = int64_t{2} << 20;
constexpr int64_t kMinTileItems = 32;
constexpr int64_t kMaxTileItems = 1024;
// At most this much memory of gradient partial sums (one per partition).
constexpr int64_t kPartialBytes = int64_t{32} << 20;

// A row-major [rows, cols] matrix with leading dimension ld over memory the kernel owns.
template <typename T>
at::Tensor matrix(const T* data, int64_t rows, int64_t cols, int64_t ld) {
  return at::from_blob(const_cast<T*>(data), {rows, cols}, {ld, 1},
                       at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value));
}
template <typename T>
at::Tensor matrix(const T* data, int64_t rows, int64_t cols) {
  return matrix(data, rows, cols, cols);
}

// Where a tile's per-layer blocks start, in items' worth of elements: h_l (the input of layer
// l) at act[l], slope_l = act'(pre of h_l) at slope[l] for the hidden layers l >= 1.
struct Layout {
  int layers;
  int64_t width[kMlpMaxLayers + 1];
  int64_t act[kMlpMaxLayers];
  int64_t act_per_item = 0;
  int64_t slope[kMlpMaxLayers];
  int64_t slope_per_item = 0;
  int64_t max_width = 1;  // of the layers' inputs and outputs

  template <typename T>
  explicit Layout(const MlpInputs<T>& in) : layers(in.layers) {
    for (int l = 0; l <= layers; ++l) {
      width[l] = in.width[l];
      max_width = std::max(max_width, width[l]);
    }
    for (int l = 0; l < layers; ++l) {
      act[l] = act_per_item;
      act_per_item += width[l];
      slope[l] = slope_per_item;
      if (l >= 1) slope_per_item += width[l];
    }
  }
  template <typename T>
  int64_t bytes_per_item() const {  // activations, slopes, two deltas, energy and coefficient
    return static_cast<int64_t>(sizeof(T)) * (act_per_item + slope_per_item + 2 * max_width + 2);
  }
};

// How the B x (M + 1) items are cut: units of `rows` rows, each row's items in chunks of
// `chunk` (one chunk when a row fits a tile). A tile is one chunk of every row of a unit.
// The buffers hold `capacity` items, within half a row of the same number whatever M is, so
// that the op's memory is flat in M.
struct Plan {
  int64_t items;  // M + 1
  int64_t chunk;
  int64_t rows;
  int64_t units;
  int64_t capacity;  // >= rows * chunk
};

Plan make_plan(const FusedShape& shape, int64_t bytes_per_item) {
  const int64_t items = shape.negatives + 1;
  const int64_t fit = std::clamp(kTileBytes / bytes_per_item, kMinTileItems, kMaxTileItems);
  Plan plan{items, std::min(items, fit), 1, 0, fit};
  if (items <= fit) {
    // The nearest whole number of rows, so that a tile holds about `fit` items for every M
    // (rounding down would leave tiles of M = 128 half full, and the op's memory uneven in M).
    plan.rows = std::max<int64_t>(1, std::min((fit + items / 2) / items, shape.batch));
    plan.capacity = plan.rows * items;
  }
  plan.units = (shape.batch + plan.rows - 1) / plan.rows;
  return plan;
}

// A buffer on 64-byte boundaries from torch's CPU allocator. MKL's GEMM results may depend on
// its operands' alignment (its "conditional numerical reproducibility"), and a std::vector's
// alignment changes from run to run; aligned buffers make the op's bits repeatable.
template <typename T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(int64_t size, bool zeroed = false)
      : tensor_(zeroed ? at::zeros({size}, options()) : at::empty({size}, options())) {}
  T* data() { return tensor_.data_ptr<T>(); }
  const T* data() const { return tensor_.data_ptr<T>(); }

 private:
  static at::TensorOptions options() { return at::TensorOptions().dtype(c10::CppTypeToScalarType<T>::value); }
  at::Tensor tensor_;
};

// One thread's buffers, sized for a tile.
template <typename T>
struct Workspace {
  Buffer<T> act, slope, delta[2], energy, coef;
  std::vector<T> y;
  std::vector<double> column_sums, output_weight;
  std::vector<core::OnlineLogSumExp<T>> negatives;  // each row's logsumexp of U(x) - U(x'_j)
  std::vector<T> energy_x;                          // each row's U(x)

  Workspace(const Layout& layout, const Plan& plan, int64_t dim) {
    const int64_t n = plan.capacity;
    act = Buffer<T>(n * layout.act_per_item);
    slope = Buffer<T>(n * std::max<int64_t>(1, layout.slope_per_item));
    for (auto& d : delta) d = Buffer<T>(n * layout.max_width);
    energy = Buffer<T>(n);
    coef = Buffer<T>(n);
    y.resize(static_cast<size_t>(dim));
    column_sums.resize(static_cast<size_t>(layout.max_width));
    output_weight.resize(static_cast<size_t>(layout.width[layout.layers - 1]));
    negatives.resize(static_cast<size_t>(plan.rows));
    energy_x.resize(static_cast<size_t>(plan.rows));
  }
  T* h(const Layout& layout, int l, int64_t n) { return act.data() + n * layout.act[l]; }
  T* slope_of(const Layout& layout, int l, int64_t n) { return slope.data() + n * layout.slope[l]; }
};

// The gradient sums of one partition (or the outputs), laid out like MlpGrads.
template <typename T>
struct GradSums {
  T* weight[kMlpMaxLayers];
  T* bias[kMlpMaxLayers];
};

// h = act(h + bias) over a row-major [rows, cols] block, and slope = act'(h + bias) unless null.
template <typename T>
void activate(core::Activation activation, T* h, const T* bias, T* slope, int64_t rows, int64_t cols) {
  if constexpr (std::is_same_v<T, float>) {
    float_activation(activation)(h, bias, slope, rows, cols);
  } else {  // float64: torch's definitions with libm, exact where it matters for the tests
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) {
        const int64_t k = r * cols + c;
        h[k] = core::activate(activation, h[k] + bias[c], slope == nullptr ? nullptr : slope + k);
      }
    }
  }
}

// Everything a tile needs that does not change during the op.
template <typename T>
struct Context {
  const FusedShape& shape;
  const MlpNoise& noise;
  const MlpInputs<T>& in;
  Layout layout;
  Plan plan;

  std::vector<at::Tensor> weight_t;  // W_l^T [in, out], contiguous: the forward GEMMs run untransposed

  Context(const FusedShape& s, const MlpNoise& z, const MlpInputs<T>& i)
      : shape(s), noise(z), in(i), layout(i), plan(make_plan(s, layout.bytes_per_item<T>())) {
    for (int l = 0; l < layout.layers; ++l)
      weight_t.push_back(matrix(in.weight[l], layout.width[l + 1], layout.width[l]).t().contiguous());
  }

  // Items [first, first + count) of rows [row0, row0 + rows) into h_0, item n = r * count + k:
  // the data point itself (item 0) and negatives first - 1 ..., drawn as edfast.perturb does.
  void draw(Workspace<T>& ws, int64_t row0, int64_t rows, int64_t first, int64_t count) const {
    const int64_t dim = shape.dim;
    T* h0 = ws.h(layout, 0, rows * count);
    for (int64_t r = 0; r < rows; ++r) {
      const T* x_row = in.x + (row0 + r) * dim;
      T* out = h0 + r * count * dim;
      int64_t negative = first - 1, negatives = count;
      if (first == 0) {
        std::memcpy(out, x_row, static_cast<size_t>(dim) * sizeof(T));
        out += dim;
        negative = 0;
        negatives = count - 1;
      }
      if (negatives == 0) continue;
      const PerturbShape one{1, dim, negatives, shape.seed, shape.row_offset + row0 + r, negative};
      using U = typename core::FloatFlip<T>::U;
      const auto bits = [](const T* p) { return reinterpret_cast<const U*>(p); };
      const auto bits_out = [](T* p) { return reinterpret_cast<U*>(p); };
      switch (noise.kind) {
        case core::kGaussian:
          gaussian_rows(x_row, ws.y.data(), out, one, noise.scale, 0, 1);
          break;
        case core::kBernoulli:
          bernoulli_rows(bits(x_row), bits_out(ws.y.data()), bits_out(out), one, noise.bernoulli,
                         core::FloatFlip<T>::flip(), 0, 1);
          break;
        default:
          bitflip_rows(bits(x_row), bits_out(ws.y.data()), bits_out(out), one, core::FloatFlip<T>::flip(), 0, 1);
      }
    }
  }

  // Runs the n items of h_0 through the network into ws.energy; with slopes, keeps act'.
  void evaluate(Workspace<T>& ws, int64_t n, bool slopes) const {
    for (int l = 0; l < layout.layers; ++l) {
      const int64_t in_width = layout.width[l], out_width = layout.width[l + 1];
      const bool hidden = l + 1 < layout.layers;
      T* out = hidden ? ws.h(layout, l + 1, n) : ws.energy.data();
      at::Tensor result = matrix(out, n, out_width);
      at::cpu::mm_out(result, matrix(ws.h(layout, l, n), n, in_width), weight_t[l]);
      if (hidden) {
        activate(in.activation, out, in.bias[l], slopes ? ws.slope_of(layout, l + 1, n) : nullptr, n, out_width);
      } else {
        for (int64_t k = 0; k < n; ++k) out[k] += in.bias[l][0];
      }
    }
  }

  // The output layer's weight gradient sum_n c_n h_n of a tile of whole rows of `items`
  // items, as sum over rows of sum_j c_j (h_j - h_0): each row's coefficients sum to 0
  // exactly (c_0 = g P, P = sum_j p_j), so the row's shared part h_0 cancels in exact
  // arithmetic and is left out rather than cancelled in float. A unit that saturates (the
  // same large h for every item) would otherwise lose digits to that cancellation. In double.
  void output_weight_gradient(Workspace<T>& ws, int64_t n, int64_t items, T* grad_weight) const {
    const int l = layout.layers - 1;
    const int64_t width = layout.width[l];
    const T* h = ws.h(layout, l, n);
    const T* c = ws.coef.data();
    double* acc = ws.output_weight.data();
    std::fill(acc, acc + width, 0.0);
    for (int64_t row = 0; row < n; row += items) {
      const T* h0 = h + row * width;
      for (int64_t k = 1; k < items; ++k) {
        const double ck = static_cast<double>(c[row + k]);
        const T* hk = h0 + k * width;
        for (int64_t j = 0; j < width; ++j) acc[j] += ck * static_cast<double>(hk[j] - h0[j]);
      }
    }
    for (int64_t j = 0; j < width; ++j) grad_weight[j] += static_cast<T>(acc[j]);
  }

  // Adds the gradient of sum_n coef[n] U(item n) to sums; with input, also writes the input
  // gradients [rows_of_input, D] of items 0, stride, 2 stride, ... (stride 1: every item).
  // whole_row_items: the items per row when the tile holds whole rows, else 0.
  void differentiate(Workspace<T>& ws, int64_t n, const GradSums<T>& sums, T* input, int64_t stride,
                     int64_t whole_row_items) const {
    const T* delta = ws.coef.data();
    // Each bias's gradient sums the tile's deltas in double (a float running sum over hundreds
    // of items would lose more than the generic path's cascade sum does), in the pass that
    // makes the deltas.
    double* column = ws.column_sums.data();
    column[0] = 0.0;
    for (int64_t k = 0; k < n; ++k) column[0] += static_cast<double>(delta[k]);
    int which = 0;
    for (int l = layout.layers - 1; l >= 0; --l) {
      const int64_t in_width = layout.width[l], out_width = layout.width[l + 1];
      if (l == layout.layers - 1 && whole_row_items > 0) {
        output_weight_gradient(ws, n, whole_row_items, sums.weight[l]);
      } else {
        at::Tensor grad_weight = matrix(sums.weight[l], out_width, in_width);
        at::cpu::addmm_(grad_weight, matrix(delta, n, out_width).t(), matrix(ws.h(layout, l, n), n, in_width));
      }
      for (int64_t j = 0; j < out_width; ++j) sums.bias[l][j] += static_cast<T>(column[j]);
      const at::Tensor weight = matrix(in.weight[l], out_width, in_width);
      if (l > 0) {
        T* next = ws.delta[which].data();
        which ^= 1;
        at::Tensor next_matrix = matrix(next, n, in_width);
        at::cpu::mm_out(next_matrix, matrix(delta, n, out_width), weight);
        const T* slope = ws.slope_of(layout, l, n);
        std::fill(column, column + in_width, 0.0);
        for (int64_t k = 0; k < n; ++k) {
          T* d = next + k * in_width;
          const T* s = slope + k * in_width;
          for (int64_t j = 0; j < in_width; ++j) {
            d[j] *= s[j];
            column[j] += static_cast<double>(d[j]);
          }
        }
        delta = next;
      } else if (input != nullptr) {
        const int64_t rows = (n + stride - 1) / stride;
        at::Tensor input_matrix = matrix(input, rows, in_width);
        at::cpu::mm_out(input_matrix, matrix(delta, rows, out_width, stride * out_width), weight);
      }
    }
  }
};

// ------------------------------------------------------------------ row statistics

template <typename T>
void start_rows(Workspace<T>& ws, int64_t rows) {
  for (int64_t r = 0; r < rows; ++r) ws.negatives[static_cast<size_t>(r)] = core::OnlineLogSumExp<T>::empty();
}

// Pushes the evaluated items [first, first + count) of each row into its logsumexp.
template <typename T>
void push_rows(Workspace<T>& ws, int64_t rows, int64_t first, int64_t count) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* e = ws.energy.data() + r * count;
    int64_t k = 0;
    if (first == 0) ws.energy_x[static_cast<size_t>(r)] = e[k++];
    const T u0 = ws.energy_x[static_cast<size_t>(r)];
    auto& lse = ws.negatives[static_cast<size_t>(r)];
    for (; k < count; ++k) lse.push(u0 - e[k]);
  }
}

// v and the row statistics (mlp_args.h) of rows [row0, row0 + rows).
template <typename T>
void finish_rows(const FusedShape& shape, Workspace<T>& ws, int64_t row0, int64_t rows, T* v, T* stats) {
  const T log_m = static_cast<T>(std::log(static_cast<double>(shape.negatives)));
  for (int64_t r = 0; r < rows; ++r) {
    const auto& negatives = ws.negatives[static_cast<size_t>(r)];
    auto total = negatives;
    total.push_weight(static_cast<T>(shape.weight));
    const T normaliser = total.value();
    T* s = stats + (row0 + r) * kMlpRowStats;
    s[0] = ws.energy_x[static_cast<size_t>(r)];
    s[1] = normaliser;
    s[2] = core::acc_exp(negatives.value() - normaliser);
    v[row0 + r] = normaliser - log_m;
  }
}

// The coefficients dv/dU of the tile's items, times g_row (1 without grad_v). When the tile
// holds a whole row, the data point's is minus the sum of its negatives' (P up to rounding), so
// that they cancel in float as the generic path's do (the output bias's gradient is 0).
template <typename T>
void coefficients(Workspace<T>& ws, const T* stats, const T* grad_v, int64_t row0, int64_t rows, int64_t first,
                  int64_t count, bool whole_rows) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* s = stats + (row0 + r) * kMlpRowStats;
    const T g = grad_v == nullptr ? T(1) : grad_v[row0 + r];
    const T* e = ws.energy.data() + r * count;
    T* c = ws.coef.data() + r * count;
    double negatives = 0.0;  // in double, so that c_0 is their sum rounded once
    for (int64_t k = first == 0 ? 1 : 0; k < count; ++k) {
      c[k] = -g * core::contrast_weight(s[0], e[k], s[1]);
      negatives += static_cast<double>(c[k]);
    }
    if (first == 0) c[0] = whole_rows ? static_cast<T>(-negatives) : g * s[2];
  }
}

// ------------------------------------------------------------------ units

// Forward of one unit: v and the statistics of its rows. With keep_tile, the unit is one tile
// and its slopes stay in ws for differentiate.
template <typename T>
void unit_statistics(const Context<T>& ctx, Workspace<T>& ws, int64_t unit, T* v, T* stats, bool keep_tile) {
  const Plan& plan = ctx.plan;
  const int64_t row0 = unit * plan.rows, rows = std::min(plan.rows, ctx.shape.batch - row0);
  start_rows(ws, rows);
  for (int64_t first = 0; first < plan.items; first += plan.chunk) {
    const int64_t count = std::min(plan.chunk, plan.items - first);
    ctx.draw(ws, row0, rows, first, count);
    ctx.evaluate(ws, rows * count, keep_tile);
    push_rows(ws, rows, first, count);
  }
  finish_rows(ctx.shape, ws, row0, rows, v, stats);
}

// Gradient of one unit's sum_i g_i v_i into sums (and the rows of grad_x). tile_ready: the
// unit is one tile already evaluated with slopes (unit_statistics with keep_tile).
template <typename T>
void unit_gradient(const Context<T>& ctx, Workspace<T>& ws, int64_t unit, const T* stats, const T* grad_v,
                   const GradSums<T>& sums, T* grad_x, Buffer<T>& input, bool tile_ready) {
  const Plan& plan = ctx.plan;
  const int64_t row0 = unit * plan.rows, rows = std::min(plan.rows, ctx.shape.batch - row0);
  const int64_t dim = ctx.shape.dim;
  const bool gaussian = ctx.noise.kind == core::kGaussian;
  for (int64_t first = 0; first < plan.items; first += plan.chunk) {
    const int64_t count = std::min(plan.chunk, plan.items - first), n = rows * count;
    if (!tile_ready) {
      ctx.draw(ws, row0, rows, first, count);
      ctx.evaluate(ws, n, true);
    }
    coefficients(ws, stats, grad_v, row0, rows, first, count, count == plan.items);
    // The input gradient: every item's under Gaussian noise (the negatives are x plus noise),
    // only the data point's under binary noise.
    const bool wants_input = grad_x != nullptr && (gaussian || first == 0);
    ctx.differentiate(ws, n, sums, wants_input ? input.data() : nullptr, gaussian ? 1 : count,
                      count == plan.items ? count : 0);
    if (!wants_input) continue;
    for (int64_t r = 0; r < rows; ++r) {
      T* out = grad_x + (row0 + r) * dim;
      const int64_t items = gaussian ? count : 1;
      const T* g = input.data() + r * items * dim;
      for (int64_t k = 0; k < items; ++k)
        for (int64_t d = 0; d < dim; ++d) out[d] += g[k * dim + d];
    }
  }
}

// ------------------------------------------------------------------ gradient partitions

int64_t parameter_count(const Layout& layout) {
  int64_t count = 0;
  for (int l = 0; l < layout.layers; ++l) count += layout.width[l + 1] * (layout.width[l] + 1);
  return count;
}

template <typename T>
GradSums<T> sums_in(const Layout& layout, T* flat) {
  GradSums<T> sums{};
  for (int l = 0; l < layout.layers; ++l) {
    sums.weight[l] = flat;
    flat += layout.width[l + 1] * layout.width[l];
    sums.bias[l] = flat;
    flat += layout.width[l + 1];
  }
  return sums;
}

// Runs unit_work(ws, unit, sums) over all units, partition by partition, and adds the
// partitions' sums into grads in partition order.
template <typename T, typename UnitWork>
void gradient_over_units(const Context<T>& ctx, const MlpGrads<T>& grads, UnitWork unit_work) {
  const Layout& layout = ctx.layout;
  const int64_t params = parameter_count(layout);
  const int64_t budget = std::max<int64_t>(1, kPartialBytes / (params * static_cast<int64_t>(sizeof(T))));
  // One partition per thread: each sums its units in order, so a run's bits depend on the
  // shapes and the thread count only (the BLAS's own kernels may differ between thread
  // counts anyway).
  const int64_t partitions = std::min({ctx.plan.units, static_cast<int64_t>(at::get_num_threads()), budget});
  Buffer<T> partial(partitions * params, /*zeroed=*/true);
  at::parallel_for(0, partitions, 1, [&](int64_t begin, int64_t end) {
    Workspace<T> ws(layout, ctx.plan, ctx.shape.dim);
    Buffer<T> input = grads.x != nullptr ? Buffer<T>(ctx.plan.capacity * ctx.shape.dim) : Buffer<T>();  // grad x's rows
    for (int64_t p = begin; p < end; ++p) {
      const GradSums<T> sums = sums_in(layout, partial.data() + p * params);
      const int64_t first = p * ctx.plan.units / partitions, last = (p + 1) * ctx.plan.units / partitions;
      for (int64_t unit = first; unit < last; ++unit) unit_work(ws, input, unit, sums);
    }
  });
  // dst[k] += sum over partitions of their [offset, offset + size) entries, in partition order.
  const auto add = [&](T* dst, int64_t offset, int64_t size) {
    at::parallel_for(0, size, 4096, [&](int64_t begin, int64_t end) {
      for (int64_t p = 0; p < partitions; ++p) {
        const T* from = partial.data() + p * params + offset;
        for (int64_t k = begin; k < end; ++k) dst[k] += from[k];
      }
    });
  };
  const GradSums<T> first = sums_in(layout, partial.data());
  for (int l = 0; l < layout.layers; ++l) {
    add(grads.weight[l], first.weight[l] - partial.data(), layout.width[l + 1] * layout.width[l]);
    add(grads.bias[l], first.bias[l] - partial.data(), layout.width[l + 1]);
  }
}

}  // namespace

template <typename T>
void mlp_forward(const FusedShape& shape, const MlpNoise& noise, const MlpInputs<T>& in, T* v, T* row_stats,
                 const MlpGrads<T>* grads) {
  if (shape.batch == 0) return;
  const Context<T> ctx(shape, noise, in);
  if (grads == nullptr) {
    at::parallel_for(0, ctx.plan.units, 1, [&](int64_t begin, int64_t end) {
      Workspace<T> ws(ctx.layout, ctx.plan, shape.dim);
      for (int64_t unit = begin; unit < end; ++unit) unit_statistics(ctx, ws, unit, v, row_stats, false);
    });
    return;
  }
  // The gradient of sum_i v_i as well: a unit that is one tile is differentiated while its
  // activations are in cache; a unit of chunks needs its rows' statistics first, so it is
  // evaluated again.
  const bool one_tile = ctx.plan.chunk == ctx.plan.items;
  gradient_over_units(ctx, *grads, [&](Workspace<T>& ws, Buffer<T>& input, int64_t unit, const GradSums<T>& sums) {
    unit_statistics(ctx, ws, unit, v, row_stats, one_tile);
    unit_gradient(ctx, ws, unit, row_stats, static_cast<const T*>(nullptr), sums, grads->x, input, one_tile);
  });
}

template <typename T>
void mlp_backward(const FusedShape& shape, const MlpNoise& noise, const MlpInputs<T>& in, const T* grad_v,
                  const T* row_stats, const MlpGrads<T>& grads) {
  if (shape.batch == 0) return;
  const Context<T> ctx(shape, noise, in);
  gradient_over_units(ctx, grads, [&](Workspace<T>& ws, Buffer<T>& input, int64_t unit, const GradSums<T>& sums) {
    unit_gradient(ctx, ws, unit, row_stats, grad_v, sums, grads.x, input, false);
  });
}

template void mlp_forward<float>(const FusedShape&, const MlpNoise&, const MlpInputs<float>&, float*, float*,
                                 const MlpGrads<float>*);
template void mlp_forward<double>(const FusedShape&, const MlpNoise&, const MlpInputs<double>&, double*, double*,
                                  const MlpGrads<double>*);
template void mlp_backward<float>(const FusedShape&, const MlpNoise&, const MlpInputs<float>&, const float*,
                                  const float*, const MlpGrads<float>&);
template void mlp_backward<double>(const FusedShape&, const MlpNoise&, const MlpInputs<double>&, const double*,
                                   const double*, const MlpGrads<double>&);

}  // namespace cpu
}  // namespace edfast
