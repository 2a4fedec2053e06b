// CUDA fused ED kernels (Ising, Potts, BernoulliRBM); the CPU twin is csrc/cpu/fused.cpp.
//
// Layout: one block per data row (a grid-stride loop over rows), its kWarps warps over the
// row's items: warp 0 takes the data row's item (item 0, where x and y differ), then warp w
// negatives w, w + kWarps, ... A warp builds an item's change list in its slot of a global
// workspace (capacity D entries, 2D for Potts' one-hot pairs; allocated per launch from the
// caller's allocator, torch's caching allocator in the ops, else cudaMallocAsync; sized by the
// grid, not by B): its lanes probe 4-coordinate blocks and a
// warp scan packs the changes in increasing d, except for BitFlip and sparse Bernoulli, whose
// few flips lane 0 draws in sequence. The lanes then split the item's delta energy (Ising/Potts:
// over entries; RBM: over hidden units, keeping the pre-activations in the slot) and reduce it
// by shuffles. The row's logsumexp and sum of p_j are merged across warps in shared memory.
//
// Backward regenerates the negatives and adds each item's terms with its coefficient c_n
// (c_j = -g p_j at once, since L is an input; c_0 = g sum_j p_j at the end, from item 0's
// list kept in its own slot): r and a rows (zeroed by the row's block), s and gwt (zeroed by
// the launcher) by atomicAdd. So the CUDA sums of r, a, s and gwt are not bitwise
// deterministic from run to run (the order of the atomics varies); the CPU's are.
#include <cmath>
#include <cstdint>

#include "../core/contrastive.h"
#include "../core/deltas.h"
#include "../core/fused_row.h"
#include "../core/pairwise.h"
#include "../core/rbm.h"
#include "../fused_args.h"
#include "launch.cuh"
#include "launchers.h"
#include "scratch.cuh"

namespace edfast {
namespace cuda {
namespace {

constexpr int kWarp = 32;
constexpr int kWarps = 4;  // warps per block, i.e. items of one row in flight
constexpr int kThreads = kWarps * kWarp;
constexpr int kSlots = kWarps + 1;  // one list per warp, and item 0's, kept for backward
constexpr unsigned kFullMask = 0xffffffffu;
// Dynamic shared memory, in T: E_0, then per warp its logsumexp (max, sum) or its sum of p_j.
constexpr int kSharedValues = 1 + 2 * kWarps;

template <typename A>
__device__ A warp_sum(A x) {
  // Butterfly: every lane ends with the same sum, bit for bit (addition commutes).
  for (int offset = kWarp / 2; offset > 0; offset /= 2) x += __shfl_xor_sync(kFullMask, x, offset);
  return x;
}

// The sum of `count` over the lanes below this one; the warp's total in *total.
__device__ int warp_exclusive_scan(int count, int lane, int* total) {
  int inclusive = count;
  for (int offset = 1; offset < kWarp; offset *= 2) {
    const int below = __shfl_up_sync(kFullMask, inclusive, offset);
    if (lane >= offset) inclusive += below;
  }
  *total = __shfl_sync(kFullMask, inclusive, kWarp - 1);
  return inclusive - count;
}

// One item's changes from its row's y: entries (index, value) as in cpu::RowItems, and (RBM)
// the item's hidden pre-activations.
template <typename T>
struct ItemList {
  int32_t* index;
  T* value;
  T* hidden;
  int64_t count;
};

// Slot s of the workspace: values [slots, capacity + hidden] then indices [slots, capacity].
template <typename T>
struct Workspace {
  T* values;
  int32_t* indices;
  int64_t capacity, hidden;

  __device__ ItemList<T> slot(int64_t s) const {
    T* v = values + s * (capacity + hidden);
    return ItemList<T>{indices + s * capacity, v, v + capacity, 0};
  }
  static size_t slot_bytes(int64_t capacity, int64_t hidden) {
    return static_cast<size_t>(capacity + hidden) * sizeof(T) + static_cast<size_t>(capacity) * sizeof(int32_t);
  }
};

// Binary data (Ising spins, the RBM's x): one entry per flipped coordinate, the family's
// change of y's value there (core::spin_flip_delta / binary_flip_delta).
template <typename T>
struct BinaryChanges {
  using Data = T;
  static constexpr int kEntriesPerChange = 1;
  static constexpr bool kCategorical = false;
  bool spins;
  __device__ int write(ItemList<T>& list, int64_t at, const T* y, int64_t d, int64_t) const {
    list.index[at] = static_cast<int32_t>(d);
    list.value[at] = spins ? core::spin_flip_delta(y[d]) : core::binary_flip_delta(y[d]);
    return 1;
  }
};

// Categorical data in the one-hot state (Potts): coordinate d moving to class c gives
// (d*K + c, +1) and (d*K + y_d, -1), the entries of cpu::transition_row_items (which orders
// them by index; the sums here do not need it).
template <typename T>
struct OneHotChanges {
  using Data = int64_t;
  static constexpr int kEntriesPerChange = 2;
  static constexpr bool kCategorical = true;
  int64_t classes;
  __device__ int write(ItemList<T>& list, int64_t at, const int64_t* y, int64_t d, int64_t next) const {
    list.index[at] = static_cast<int32_t>(d * classes + next);
    list.value[at] = T(1);
    list.index[at + 1] = static_cast<int32_t>(d * classes + y[d]);
    list.value[at + 1] = T(-1);
    return 2;
  }
};

// Packs the changes that probe(block, next) reports (a bit mask per 4-coordinate block) into
// `list`, in increasing d: lane l probes block first + l, the scan gives its offset.
template <typename T, typename Changes, typename Probe>
__device__ int64_t pack_blocks(const Changes& changes, const typename Changes::Data* y, int64_t dim, int lane,
                               ItemList<T>& list, Probe probe) {
  const int64_t blocks = core::blocks_per_row(dim);
  int64_t count = 0;
  for (int64_t first = 0; first < blocks; first += kWarp) {  // the same trips for every lane
    const int64_t block = first + lane;
    int64_t next[core::kCoordsPerBlock] = {0, 0, 0, 0};
    const unsigned mask = block < blocks ? probe(block, next) : 0u;
    int total = 0;
    int64_t at = count + warp_exclusive_scan(__popc(mask) * Changes::kEntriesPerChange, lane, &total);
    for (int k = 0; k < core::kCoordsPerBlock; ++k) {
      if (mask >> k & 1u) at += changes.write(list, at, y, block * core::kCoordsPerBlock + k, next[k]);
    }
    count += total;
  }
  return count;
}

// Builds item `item` of row i (0: the data row; 1 + j: negative j, drawn from stream
// negative_stream(j) as edfast::perturb draws it) into `list`. Called by the whole warp;
// returns with the list visible to every lane.
template <typename T, typename Changes>
__device__ void build_item(const Changes& changes, const FusedShape& shape, const FusedNoise& noise,
                           const void* x_data, const void* y_data, int64_t i, int64_t item, int lane,
                           ItemList<T>& list) {
  using Data = typename Changes::Data;
  const int64_t dim = shape.dim;
  const Data* x = static_cast<const Data*>(x_data) + i * dim;
  const Data* y = static_cast<const Data*>(y_data) + i * dim;
  __syncwarp();  // every lane is done with the slot's previous item
  if (item == 0) {
    list.count = pack_blocks(changes, y, dim, lane, list, [&](int64_t block, int64_t* next) {
      return core::changed_mask(x, y, block, dim, next);
    });
  } else {
    const core::RowStream stream(shape.seed, static_cast<uint64_t>(shape.row_offset + i),
                                 core::negative_stream(item - 1));
    if constexpr (Changes::kCategorical) {
      list.count = pack_blocks(changes, y, dim, lane, list, [&](int64_t block, int64_t* next) {
        return core::transition_change_mask(stream, block, y, dim, noise, next);
      });
    } else if (noise.kind == core::kBernoulli && !noise.bernoulli.sparse) {
      list.count = pack_blocks(changes, y, dim, lane, list, [&](int64_t block, int64_t*) {
        return core::dense_flip_mask(stream, block, dim, noise.bernoulli.threshold);
      });
    } else {  // BitFlip, sparse Bernoulli: a few flips, drawn in sequence
      int64_t count = 0;
      if (lane == 0) {
        core::for_each_binary_flip(stream, dim, noise, [&](int64_t d) { count += changes.write(list, count, y, d, 0); });
      }
      list.count = __shfl_sync(kFullMask, count, 0);
    }
  }
  __syncwarp();  // the list, written by some lanes, is read by all
}

// ------------------------------------------------------------------ the families

// Ising and Potts (csrc/core/pairwise.h): E_n = sum over entries of pairwise_item_entry_energy.
template <typename T, typename Changes>
struct Pairwise {
  Changes changes;
  PairwiseInputs<T> in;
  int64_t state;  // N
  T* r;           // backward: [B, N]
  T* s;           // backward: [N, N]

  __device__ const void* x() const { return in.x; }
  __device__ const void* y() const { return in.y; }

  __device__ T energy(const ItemList<T>& list, int64_t i, int lane) const {
    const T* field = in.field + i * state;
    T partial = T(0);
    for (int64_t a = lane; a < list.count; a += kWarp) {
      partial += core::pairwise_item_entry_energy<T, T>(in.coupling, state, field, in.bias, list.index,
                                                        list.value, list.count, a, in.alpha);
    }
    return warp_sum(partial);
  }

  // The block zeroes row i's r before any warp adds to it.
  __device__ void zero_row(int64_t i) const {
    for (int64_t k = threadIdx.x; k < state; k += blockDim.x) r[i * state + k] = T(0);
  }

  // r_i += c delta_n; s += c delta_n delta_n^T (every ordered pair of entries, diagonal too).
  __device__ void accumulate(const ItemList<T>& list, T c, int64_t i, int lane) const {
    const int64_t count = list.count;
    for (int64_t a = lane; a < count; a += kWarp) atomicAdd(r + i * state + list.index[a], c * list.value[a]);
    for (int64_t pair = lane; pair < count * count; pair += kWarp) {
      const int64_t a = pair / count, b = pair % count;
      atomicAdd(s + static_cast<int64_t>(list.index[a]) * state + list.index[b], c * list.value[a] * list.value[b]);
    }
  }
};

// BernoulliRBM (csrc/core/rbm.h): lanes over hidden units, pre-activations kept in the slot.
template <typename T>
struct Rbm {
  BinaryChanges<T> changes;
  RbmInputs<T> in;
  int64_t dim;  // D
  T* a;         // backward: [B, H]
  T* r;         // backward: [B, D]
  T* gwt;       // backward: [D, H]

  __device__ const void* x() const { return in.x; }
  __device__ const void* y() const { return in.y; }

  __device__ T energy(const ItemList<T>& list, int64_t i, int lane) const {
    const int64_t hidden = in.hidden;
    const T* pre_y = in.pre_y + i * hidden;
    T softplus_sum = T(0);
    for (int64_t h = lane; h < hidden; h += kWarp) {
      const T pre = core::rbm_item_pre_at(pre_y, in.weight_t, hidden, h, list.index, list.value, list.count);
      list.hidden[h] = pre;  // read back only by this lane, in accumulate()
      softplus_sum += core::softplus(pre) - core::softplus(pre_y[h]);
    }
    T visible = T(0);
    for (int64_t e = lane; e < list.count; e += kWarp) visible += list.value[e] * in.visible_bias[list.index[e]];
    return warp_sum(visible) + warp_sum(softplus_sum);
  }

  __device__ void zero_row(int64_t i) const {
    for (int64_t k = threadIdx.x; k < dim; k += blockDim.x) r[i * dim + k] = T(0);
    for (int64_t h = threadIdx.x; h < in.hidden; h += blockDim.x) a[i * in.hidden + h] = T(0);
  }

  // r_i += c delta_n; a_i += c sigmoid(pre_n); gwt[k, :] += c delta_n[k] sigmoid(pre_n).
  __device__ void accumulate(const ItemList<T>& list, T c, int64_t i, int lane) const {
    const int64_t hidden = in.hidden;
    for (int64_t e = lane; e < list.count; e += kWarp) atomicAdd(r + i * dim + list.index[e], c * list.value[e]);
    for (int64_t h = lane; h < hidden; h += kWarp) {
      const T sig = core::sigmoid(list.hidden[h]);
      atomicAdd(a + i * hidden + h, c * sig);
      for (int64_t e = 0; e < list.count; ++e) {
        atomicAdd(gwt + static_cast<int64_t>(list.index[e]) * hidden + h, c * list.value[e] * sig);
      }
    }
  }
};

// ------------------------------------------------------------------ kernels

// v_i and L_i = log(w + sum_j exp(E_j - E_0)) of each row (cf. cpu::row_log_normaliser).
template <typename T, typename Family>
__global__ void forward_kernel(Workspace<T> workspace, Family family, FusedShape shape, FusedNoise noise, T* v,
                               T* log_normaliser, T* energies, T log_m) {
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  T* shared = dynamic_shared_memory<T>();  // [0] E_0; [1 + w] and [1 + kWarps + w]: warp w's max, sum
  ItemList<T> list = workspace.slot(static_cast<int64_t>(blockIdx.x) * kSlots + warp);
  for (int64_t i = blockIdx.x; i < shape.batch; i += gridDim.x) {
    if (warp == 0) {
      build_item(family.changes, shape, noise, family.x(), family.y(), i, 0, lane, list);
      const T e0 = family.energy(list, i, lane);
      if (lane == 0) shared[0] = e0;
      if (lane == 0 && energies != nullptr) energies[i * (shape.negatives + 1)] = e0;
    }
    __syncthreads();
    const T e0 = shared[0];
    auto lse = core::OnlineLogSumExp<T>::empty();
    for (int64_t j = warp; j < shape.negatives; j += kWarps) {
      build_item(family.changes, shape, noise, family.x(), family.y(), i, 1 + j, lane, list);
      const T energy = family.energy(list, i, lane);  // the same on every lane
      if (lane == 0 && energies != nullptr) energies[i * (shape.negatives + 1) + 1 + j] = energy;
      lse.push(energy - e0);
    }
    if (lane == 0) {
      shared[1 + warp] = lse.max;
      shared[1 + kWarps + warp] = lse.sum;
    }
    __syncthreads();
    // No barrier at the end: the next row writes shared[0] and the warps' entries only after
    // passing its first barrier, which thread 0 reaches after reading them here.
    if (threadIdx.x == 0) {
      auto total = core::OnlineLogSumExp<T>::empty();
      total.push_weight(static_cast<T>(shape.weight));
      for (int w = 0; w < kWarps; ++w) total.merge(core::OnlineLogSumExp<T>{shared[1 + w], shared[1 + kWarps + w]});
      const T normaliser = total.value();
      log_normaliser[i] = normaliser;
      v[i] = normaliser - log_m;
    }
  }
}

// The family's gradient terms of each row with c_j = -g p_j, c_0 = g sum_j p_j
// (cf. cpu::row_coefficients), given L_i from forward.
template <typename T, typename Family>
__global__ void backward_kernel(Workspace<T> workspace, Family family, FusedShape shape, FusedNoise noise,
                                const T* grad_v, const T* log_normaliser) {
  const int warp = threadIdx.x / kWarp, lane = threadIdx.x % kWarp;
  T* shared = dynamic_shared_memory<T>();  // [0] E_0; [1 + w] warp w's sum of p_j
  ItemList<T> list = workspace.slot(static_cast<int64_t>(blockIdx.x) * kSlots + warp);
  ItemList<T> data_item = workspace.slot(static_cast<int64_t>(blockIdx.x) * kSlots + kWarps);
  for (int64_t i = blockIdx.x; i < shape.batch; i += gridDim.x) {
    family.zero_row(i);
    if (warp == 0) {
      build_item(family.changes, shape, noise, family.x(), family.y(), i, 0, lane, data_item);
      const T e0 = family.energy(data_item, i, lane);
      if (lane == 0) shared[0] = e0;
    }
    __syncthreads();  // E_0 known, the row's r (and a) zeroed
    const T e0 = shared[0], g = grad_v[i], normaliser = log_normaliser[i];
    T total = T(0);
    for (int64_t j = warp; j < shape.negatives; j += kWarps) {
      build_item(family.changes, shape, noise, family.x(), family.y(), i, 1 + j, lane, list);
      const T p = core::contrast_weight(family.energy(list, i, lane), e0, normaliser);
      total += p;
      family.accumulate(list, -g * p, i, lane);
    }
    if (lane == 0) shared[1 + warp] = total;
    __syncthreads();
    // As in forward, no barrier at the end: warp 0 reads the sums before the next row's first
    // barrier, and nothing else of this row's shared memory or slots is rewritten before it.
    if (warp == 0) {
      T sum = T(0);
      for (int w = 0; w < kWarps; ++w) sum += shared[1 + w];
      __syncwarp();  // data_item was written by some lanes of this warp before the barriers
      family.accumulate(data_item, g * sum, i, lane);
    }
  }
}

// ------------------------------------------------------------------ launch

// Runs `Kernel` over the rows with a workspace of `capacity` entries (+ `hidden` values) per
// slot, allocated on the stream for this launch.
template <typename T, auto Kernel, typename... Args>
cudaError_t launch_rows(const FusedShape& shape, int64_t capacity, int64_t hidden, cudaStream_t stream,
                        WorkspaceAllocator allocator, Args... args) {
  if (shape.batch == 0) return cudaSuccess;
  capacity = capacity > 0 ? capacity : 1;  // no zero-byte allocation for D = 0
  const size_t block_bytes = kSlots * Workspace<T>::slot_bytes(capacity, hidden);
  const int64_t affordable = static_cast<int64_t>(static_cast<size_t>(kWorkspaceBudget) / block_bytes);
  const int64_t grid = std::min<int64_t>(grid_stride_blocks(shape.batch, 1, kThreads), std::max<int64_t>(1, affordable));
  Scratch scratch{allocator, stream};
  cudaError_t status = scratch.allocate(static_cast<size_t>(grid) * block_bytes);
  if (status != cudaSuccess) return status;
  T* values = static_cast<T*>(scratch.memory);
  const Workspace<T> workspace{values, reinterpret_cast<int32_t*>(values + grid * kSlots * (capacity + hidden)),
                               capacity, hidden};
  status = launch<Kernel>(dim3(static_cast<unsigned>(grid)), dim3(kThreads), kSharedValues * sizeof(T), stream,
                          workspace, args...);
  return scratch.release(status);
}

template <typename T>
T log_negatives(const FusedShape& shape) {
  return static_cast<T>(std::log(static_cast<double>(shape.negatives)));
}

// Calls fn(Pairwise family, list capacity): Potts under transition noise, else Ising.
template <typename T, typename Fn>
cudaError_t with_pairwise(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in, T* r, T* s,
                          Fn fn) {
  if (noise.kind == core::kTransition) {
    return fn(Pairwise<T, OneHotChanges<T>>{{noise.num_classes}, in, shape.state, r, s}, 2 * shape.dim);
  }
  return fn(Pairwise<T, BinaryChanges<T>>{{true}, in, shape.state, r, s}, shape.dim);
}

}  // namespace

template <typename T>
cudaError_t pairwise_forward(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in, T* v,
                             T* log_normaliser, T* energies, cudaStream_t stream, WorkspaceAllocator allocator) {
  return with_pairwise<T>(shape, noise, in, nullptr, nullptr, [&](auto family, int64_t capacity) {
    return launch_rows<T, forward_kernel<T, decltype(family)>>(shape, capacity, 0, stream, allocator, family, shape, noise, v,
                                                               log_normaliser, energies, log_negatives<T>(shape));
  });
}

template <typename T>
cudaError_t pairwise_backward(const FusedShape& shape, const FusedNoise& noise, const PairwiseInputs<T>& in,
                              const T* grad_v, const T* log_normaliser, T* r, T* s, cudaStream_t stream,
                              WorkspaceAllocator allocator) {
  if (shape.state > 0) {
    const cudaError_t status =
        cudaMemsetAsync(s, 0, static_cast<size_t>(shape.state * shape.state) * sizeof(T), stream);
    if (status != cudaSuccess) return status;
  }
  return with_pairwise<T>(shape, noise, in, r, s, [&](auto family, int64_t capacity) {
    return launch_rows<T, backward_kernel<T, decltype(family)>>(shape, capacity, 0, stream, allocator, family, shape, noise,
                                                                grad_v, log_normaliser);
  });
}

template <typename T>
cudaError_t rbm_forward(const FusedShape& shape, const FusedNoise& noise, const RbmInputs<T>& in, T* v,
                        T* log_normaliser, T* energies, cudaStream_t stream, WorkspaceAllocator allocator) {
  const Rbm<T> family{{false}, in, shape.dim, nullptr, nullptr, nullptr};
  return launch_rows<T, forward_kernel<T, Rbm<T>>>(shape, shape.dim, in.hidden, stream, allocator, family, shape, noise, v,
                                                   log_normaliser, energies, log_negatives<T>(shape));
}

template <typename T>
cudaError_t rbm_backward(const FusedShape& shape, const FusedNoise& noise, const RbmInputs<T>& in, const T* grad_v,
                         const T* log_normaliser, T* a, T* r, T* gwt, cudaStream_t stream,
                         WorkspaceAllocator allocator) {
  if (shape.dim > 0 && in.hidden > 0) {
    const cudaError_t status =
        cudaMemsetAsync(gwt, 0, static_cast<size_t>(shape.dim * in.hidden) * sizeof(T), stream);
    if (status != cudaSuccess) return status;
  }
  const Rbm<T> family{{false}, in, shape.dim, a, r, gwt};
  return launch_rows<T, backward_kernel<T, Rbm<T>>>(shape, shape.dim, in.hidden, stream, allocator, family, shape, noise, grad_v,
                                                    log_normaliser);
}

#define EDFAST_FUSED_INSTANTIATE(T)                                                                                \
  template cudaError_t pairwise_forward<T>(const FusedShape&, const FusedNoise&, const PairwiseInputs<T>&, T*, T*, \
                                           T*, cudaStream_t, WorkspaceAllocator);                                      \
  template cudaError_t pairwise_backward<T>(const FusedShape&, const FusedNoise&, const PairwiseInputs<T>&,        \
                                            const T*, const T*, T*, T*, cudaStream_t, WorkspaceAllocator);         \
  template cudaError_t rbm_forward<T>(const FusedShape&, const FusedNoise&, const RbmInputs<T>&, T*, T*, T*,       \
                                      cudaStream_t, WorkspaceAllocator);                                           \
  template cudaError_t rbm_backward<T>(const FusedShape&, const FusedNoise&, const RbmInputs<T>&, const T*,        \
                                       const T*, T*, T*, T*, cudaStream_t, WorkspaceAllocator);
EDFAST_FUSED_INSTANTIATE(float)
EDFAST_FUSED_INSTANTIATE(double)
#undef EDFAST_FUSED_INSTANTIATE

}  // namespace cuda
}  // namespace edfast
