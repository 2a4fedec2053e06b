// Plain-data argument bundles passed from the torch-facing op layer (ops*.cpp) to the CPU and
// CUDA launchers, so that kernel translation units need no torch header.
#pragma once

#include <cstdint>

#include "core/perturb.h"

namespace edfast {

// The floating types the contrastive kernels accept.
enum class FloatType { kFloat16, kBFloat16, kFloat32, kFloat64 };

struct PerturbShape {
  int64_t batch;       // B
  int64_t dim;         // D: elements per data row
  int64_t negatives;   // m negatives drawn, with stream ids 1 + neg_offset + j
  uint64_t seed;
  int64_t row_offset;  // global index of row 0
  int64_t neg_offset;  // global index of negative 0
};

// The elements of a binary (Bernoulli, BitFlip) tensor, read and written in their own dtype:
// the size in bytes and the bits of core::BinaryFlip (magnitude mask, the bits of 1).
struct BinaryBits {
  int64_t element_size;  // 1, 2, 4 or 8
  uint64_t magnitude;
  uint64_t one;

  // The flip of these elements, read as the unsigned integer U of their size.
  template <typename U>
  core::BinaryFlip<U> flip() const {
    return core::BinaryFlip<U>{static_cast<U>(magnitude), static_cast<U>(one)};
  }
};

// Calls fn(U{}) with U the unsigned integer of the binary elements' size.
template <typename Fn>
void dispatch_binary(const BinaryBits& bits, Fn fn) {
  switch (bits.element_size) {
    case 1: fn(uint8_t{}); break;
    case 2: fn(uint16_t{}); break;
    case 4: fn(uint32_t{}); break;
    default: fn(uint64_t{}); break;
  }
}

// What the fused ops (ising_ed, potts_ed, rbm_ed) draw: the negatives of edfast::perturb.
struct FusedNoise {
  int64_t kind;                    // core::kBernoulli, core::kBitFlip or core::kTransition
  core::BernoulliNoise bernoulli;  // kBernoulli
  const double* cdf;               // kTransition: [K, K] row CDFs (float64, on the kernel's device)
  int64_t num_classes;             // kTransition: K
};

// The sizes of a fused op. `dim` is the data's D; `state` the length N of the vector the
// family's energy is quadratic in (Ising: D spins; Potts: D*K one-hot entries; RBM: D).
struct FusedShape {
  int64_t batch;       // B
  int64_t dim;         // D
  int64_t state;       // N
  int64_t negatives;   // M
  uint64_t seed;
  int64_t row_offset;  // global index of row 0
  double weight;       // w >= 0
};

struct ContrastShape {
  int64_t batch;       // B
  int64_t negatives;   // M
  double weight;       // w >= 0
};

}  // namespace edfast
