// Prelude of the CUDA execution model: force-included (-include) into every CUDA source that
// the tests compile with the host compiler, so that the unmodified csrc/cuda/*.cu sources run
// on the CPU. README.md beside this file says what the model does and what it refuses.
#pragma once

#define EDFAST_CUDA_MODEL 1

// 1. The host view of the toolkit's own headers and of the standard library, before
//    __CUDA_ARCH__ exists: cuda_fp16.h and cuda_bf16.h give host conversions there.
#include <cuda_runtime_api.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "intrinsics.h"
#include "runtime.h"

// 2. The CUDA language on the host. Execution-space qualifiers mean nothing here; a
//    __shared__ variable is one object for the block (blocks run one after another), and a
//    function-local static keeps AddressSanitizer's redzones and UBSan's bounds checks.
#undef __host__
#undef __device__
#undef __global__
#undef __shared__
#undef __constant__
#define __host__
#define __device__
#define __global__
#define __shared__ static
#define __constant__
#define __launch_bounds__(...)

// 3. From here on our own code takes its device branches (e.g. the _rn paths of
//    csrc/core/exact_float.h), as nvcc's device pass does for sm_90.
#define __CUDA_ARCH__ 900
