// What the vector-extension kernels (contrastive_simd.cpp, rbm_simd.cpp) share: the compiler
// settings of their translation unit, the function attributes that compile one function for
// AVX-512 or AVX2, and Vec<A, kBytes>, the native vector of kBytes bytes of A. Include it in a
// .cpp file only, after any header whose maths must round as written: from there on a * b + c
// may contract to an FMA.
#pragma once

#include <cstdint>
#include <cstring>

// Vector arguments wider than the baseline's change the calling convention; the functions
// that take them are always inlined into functions of the right instruction set.
#pragma GCC diagnostic ignored "-Wpsabi"
// The extension builds with -ffp-contract=off for the noise maths (csrc/core/exact_float.h);
// these files have none, and FMA saves a third of exp's instructions.
#if defined(__clang__)
#pragma clang fp contract(fast)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=fast")
#endif

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define EDFAST_X86_DISPATCH 1
#define EDFAST_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))
#define EDFAST_TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace edfast {
namespace simd {

template <class A, int kBytes> struct VecOf {
  typedef A type __attribute__((vector_size(kBytes)));
};
template <class A, int kBytes> using Vec = typename VecOf<A, kBytes>::type;

// Float lanes of kBytes bytes and their loads and stores of the first min(n, kCount) floats of
// an array (zero-padded): a full vector is a constant-size copy (one unaligned load or store);
// only an array's tail pays a variable-size one.
template <int kBytes>
struct FloatLanes {
  using V = Vec<float, kBytes>;
  static constexpr int kCount = kBytes / 4;

  static inline __attribute__((always_inline)) V load(const float* p, int64_t n) {
    V v{};
    if (n >= kCount) std::memcpy(&v, p, sizeof(V));
    else std::memcpy(&v, p, static_cast<size_t>(n) * sizeof(float));
    return v;
  }
  static inline __attribute__((always_inline)) void store(float* p, V v, int64_t n) {
    if (n >= kCount) std::memcpy(p, &v, sizeof(V));
    else std::memcpy(p, &v, static_cast<size_t>(n) * sizeof(float));
  }
};

}  // namespace simd
}  // namespace edfast
