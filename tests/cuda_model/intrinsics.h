// The device functions of CUDA C++ that edfast's kernels use, for the execution model:
// barriers and warp intrinsics (which really synchronise the block's fibers, runtime.cpp),
// atomics (real atomic instructions, so ThreadSanitizer sees them as such), fences, and the
// correctly rounded `_rn` arithmetic (plain IEEE operations: the model TUs are built with
// -ffp-contract=off, so nothing is fused).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <source_location>
#include <type_traits>

namespace cuda_model {

enum class BarrierOp { kSync, kCount, kAnd, kOr };
enum class WarpOp { kShflIdx, kShflUp, kShflDown, kShflXor, kBallot, kAny, kAll, kSyncwarp };

// Block-wide barrier; returns the reduction of `predicate` that `op` asks for.
int block_barrier(BarrierOp op, int predicate, const std::source_location& site);
// Warp collective over the lanes of `mask`; `value` is the lane's operand (bits), `operand`
// its source lane / delta / lane mask, `width` the shuffle width. Returns the lane's result.
uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int operand, int width,
                         const std::source_location& site);
// The lanes of the running warp that have not exited (an approximation of __activemask()).
unsigned active_mask();

template <typename T>
T shuffle(WarpOp op, unsigned mask, T var, int operand, int width, const std::source_location& site) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffles move 32 or 64 bits");
  uint64_t bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  bits = warp_collective(op, mask, bits, operand, width, site);
  T result;
  std::memcpy(&result, &bits, sizeof(T));
  return result;
}

}  // namespace cuda_model

using cuda_source_location = std::source_location;
#define CUDA_MODEL_SITE const cuda_source_location& site = cuda_source_location::current()

// ------------------------------------------------------------------------------- barriers
inline void __syncthreads(CUDA_MODEL_SITE) {
  cuda_model::block_barrier(cuda_model::BarrierOp::kSync, 0, site);
}
inline int __syncthreads_count(int predicate, CUDA_MODEL_SITE) {
  return cuda_model::block_barrier(cuda_model::BarrierOp::kCount, predicate != 0, site);
}
inline int __syncthreads_and(int predicate, CUDA_MODEL_SITE) {
  return cuda_model::block_barrier(cuda_model::BarrierOp::kAnd, predicate != 0, site);
}
inline int __syncthreads_or(int predicate, CUDA_MODEL_SITE) {
  return cuda_model::block_barrier(cuda_model::BarrierOp::kOr, predicate != 0, site);
}
inline void __syncwarp(unsigned mask = 0xffffffffu, CUDA_MODEL_SITE) {
  cuda_model::warp_collective(cuda_model::WarpOp::kSyncwarp, mask, 0, 0, 32, site);
}

// -------------------------------------------------------------------------- warp intrinsics
template <typename T>
T __shfl_sync(unsigned mask, T var, int src_lane, int width = 32, CUDA_MODEL_SITE) {
  return cuda_model::shuffle(cuda_model::WarpOp::kShflIdx, mask, var, src_lane, width, site);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = 32, CUDA_MODEL_SITE) {
  return cuda_model::shuffle(cuda_model::WarpOp::kShflUp, mask, var, static_cast<int>(delta), width, site);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = 32, CUDA_MODEL_SITE) {
  return cuda_model::shuffle(cuda_model::WarpOp::kShflDown, mask, var, static_cast<int>(delta), width, site);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = 32, CUDA_MODEL_SITE) {
  return cuda_model::shuffle(cuda_model::WarpOp::kShflXor, mask, var, lane_mask, width, site);
}
inline unsigned __ballot_sync(unsigned mask, int predicate, CUDA_MODEL_SITE) {
  return static_cast<unsigned>(
      cuda_model::warp_collective(cuda_model::WarpOp::kBallot, mask, predicate != 0, 0, 32, site));
}
inline int __any_sync(unsigned mask, int predicate, CUDA_MODEL_SITE) {
  return static_cast<int>(
      cuda_model::warp_collective(cuda_model::WarpOp::kAny, mask, predicate != 0, 0, 32, site));
}
inline int __all_sync(unsigned mask, int predicate, CUDA_MODEL_SITE) {
  return static_cast<int>(
      cuda_model::warp_collective(cuda_model::WarpOp::kAll, mask, predicate != 0, 0, 32, site));
}
inline unsigned __activemask() { return cuda_model::active_mask(); }

// ------------------------------------------------------------------------ atomics, fences
// Relaxed, as CUDA's atomics are. Floating-point adds and max/min are compare-and-swap loops.
namespace cuda_model {
template <typename T, typename Op>
T atomic_update(T* address, Op op) {
  T old = __atomic_load_n(address, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(address, &old, op(old), true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
  }
  return old;
}
template <typename F, typename Bits>
F atomic_float_add(F* address, F value) {
  static_assert(sizeof(F) == sizeof(Bits));
  Bits* bits = reinterpret_cast<Bits*>(address);
  const Bits old = atomic_update(bits, [&](Bits current) {
    F f;
    std::memcpy(&f, &current, sizeof(F));
    f = f + value;
    Bits next;
    std::memcpy(&next, &f, sizeof(F));
    return next;
  });
  F result;
  std::memcpy(&result, &old, sizeof(F));
  return result;
}
}  // namespace cuda_model

#define CUDA_MODEL_INTEGER_ATOMICS(T)                                                                  \
  inline T atomicAdd(T* a, T v) { return __atomic_fetch_add(a, v, __ATOMIC_RELAXED); }                \
  inline T atomicSub(T* a, T v) { return __atomic_fetch_sub(a, v, __ATOMIC_RELAXED); }                \
  inline T atomicAnd(T* a, T v) { return __atomic_fetch_and(a, v, __ATOMIC_RELAXED); }                \
  inline T atomicOr(T* a, T v) { return __atomic_fetch_or(a, v, __ATOMIC_RELAXED); }                  \
  inline T atomicXor(T* a, T v) { return __atomic_fetch_xor(a, v, __ATOMIC_RELAXED); }                \
  inline T atomicExch(T* a, T v) { return __atomic_exchange_n(a, v, __ATOMIC_RELAXED); }              \
  inline T atomicMax(T* a, T v) { return cuda_model::atomic_update(a, [v](T c) { return c < v ? v : c; }); } \
  inline T atomicMin(T* a, T v) { return cuda_model::atomic_update(a, [v](T c) { return v < c ? v : c; }); } \
  inline T atomicCAS(T* a, T compare, T v) {                                                          \
    __atomic_compare_exchange_n(a, &compare, v, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);           \
    return compare;                                                                                    \
  }
CUDA_MODEL_INTEGER_ATOMICS(int)
CUDA_MODEL_INTEGER_ATOMICS(unsigned int)
CUDA_MODEL_INTEGER_ATOMICS(unsigned long long int)
CUDA_MODEL_INTEGER_ATOMICS(long long int)
#undef CUDA_MODEL_INTEGER_ATOMICS

inline float atomicAdd(float* a, float v) { return cuda_model::atomic_float_add<float, uint32_t>(a, v); }
inline double atomicAdd(double* a, double v) { return cuda_model::atomic_float_add<double, uint64_t>(a, v); }
inline float atomicExch(float* a, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  bits = __atomic_exchange_n(reinterpret_cast<uint32_t*>(a), bits, __ATOMIC_RELAXED);
  float old;
  std::memcpy(&old, &bits, 4);
  return old;
}

inline void __threadfence() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
inline void __threadfence_block() { __atomic_thread_fence(__ATOMIC_SEQ_CST); }

// ------------------------------------------------------------------ correctly rounded maths
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __frcp_rn(float a) { return 1.0f / a; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }

// --------------------------------------------------------------------------- integer bits
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<uint64_t>(a) * b) >> 32);
}
template <typename T>
T __ldg(const T* p) { return *p; }
