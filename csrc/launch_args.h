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

struct ContrastShape {
  int64_t batch;       // B
  int64_t negatives;   // M
  double weight;       // w >= 0
};

}  // namespace edfast
