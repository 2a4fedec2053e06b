#include "simd_level.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

namespace edfast {
namespace cpu {
namespace {

SimdLevel detect() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl")) {
    return SimdLevel::kAvx512;
  }
  if (avx2) return SimdLevel::kAvx2;
#endif
  return SimdLevel::kBaseline;
}

SimdLevel capped(SimdLevel level) {
  return static_cast<SimdLevel>(std::min(static_cast<int>(level), static_cast<int>(best_simd_level())));
}

SimdLevel from_environment() {
  const char* wanted = std::getenv("EDFAST_CPU_SIMD");
  for (SimdLevel level : {SimdLevel::kBaseline, SimdLevel::kAvx2, SimdLevel::kAvx512}) {
    if (wanted != nullptr && std::strcmp(wanted, simd_level_name(level)) == 0) return capped(level);
  }
  return best_simd_level();
}

std::atomic<int>& level_in_use() {
  static std::atomic<int> level{static_cast<int>(from_environment())};
  return level;
}

}  // namespace

SimdLevel best_simd_level() {
  static const SimdLevel best = detect();
  return best;
}

SimdLevel simd_level() { return static_cast<SimdLevel>(level_in_use().load(std::memory_order_relaxed)); }

void set_simd_level(SimdLevel level) { level_in_use().store(static_cast<int>(capped(level)), std::memory_order_relaxed); }

const char* simd_level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::kAvx512: return "avx512";
    case SimdLevel::kAvx2: return "avx2";
    default: return "baseline";
  }
}

}  // namespace cpu
}  // namespace edfast
