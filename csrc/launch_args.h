// Plain-data argument bundles passed from the torch-facing op layer (ops*.cpp) to the CPU and
// CUDA launchers, so that kernel translation units need no torch header.
#pragma once

#include <cstdint>

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

struct ContrastShape {
  int64_t batch;       // B
  int64_t negatives;   // M
  double weight;       // w >= 0
};

}  // namespace edfast
