// How many data rows one CPU task takes. A parallel region costs microseconds on an idle
// machine and milliseconds when the cores are shared, so a problem is split only when each
// task gets at least kMinElementsPerTask elements of work (~0.3-1 ms for these kernels).
#pragma once

#include <algorithm>
#include <cstdint>

namespace edfast {
namespace cpu {

constexpr int64_t kMinElementsPerTask = 65536;

inline int64_t rows_per_task(int64_t elements_per_row) {
  return std::max<int64_t>(1, kMinElementsPerTask / std::max<int64_t>(1, elements_per_row));
}

}  // namespace cpu
}  // namespace edfast
