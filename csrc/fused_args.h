// Plain-data inputs of the fused ED ops (Ising, Potts, RBM), passed from the op layer
// (ops_fused.cpp) to the CPU and CUDA launchers. All pointers are on the kernel's device.
#pragma once

#include <cstdint>

#include "launch_args.h"

namespace edfast {

// Inputs of the pairwise ops. Ising: x, y binary in T [B, D]. Potts: x, y int64 classes [B, D].
template <typename T>
struct PairwiseInputs {
  const void* x;
  const void* y;
  const T* coupling;  // K [N, N], symmetric
  const T* field;     // h = v_y K, [B, N]
  const T* bias;      // [N] or null
  T alpha;            // 1 (Ising) or 1/2 (Potts)
};

// Inputs of the RBM op: x, y binary in T [B, V].
template <typename T>
struct RbmInputs {
  const T* x;
  const T* y;
  const T* weight_t;       // W^T [V, H]
  const T* pre_y;          // y W^T + c, [B, H]
  const T* visible_bias;   // [V]
  int64_t hidden;          // H
};

}  // namespace edfast
