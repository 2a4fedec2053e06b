// What the vector-extension kernels (contrastive_simd.cpp, rbm_simd.cpp) share: the compiler
// settings of their translation unit, the function attributes that compile one function for
// AVX-512 or AVX2, and Vec<A, kBytes>, the native vector of kBytes bytes of A. Include it in a
// .cpp file only, after any header whose maths must round as written: from there on a * b + c
// may contract to an FMA.
#pragma once

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

}  // namespace simd
}  // namespace edfast
