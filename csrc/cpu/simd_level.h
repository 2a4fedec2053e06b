// The instruction set the CPU kernels' vector code runs with, chosen at run time: the best the
// CPU supports, capped by EDFAST_CPU_SIMD=baseline|avx2|avx512 (for tests of every path and for
// comparisons). Torch-free.
#pragma once

namespace edfast {
namespace cpu {

// kAvx512: AVX-512 F/BW/DQ/VL (with AVX2 and FMA); kAvx2: AVX2 and FMA; kBaseline: neither
// (x86-64's SSE2 or another architecture: the scalar noise rows, baseline vector maths).
enum class SimdLevel : int { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// The best level this CPU runs.
SimdLevel best_simd_level();
// The level in use: the best, capped by EDFAST_CPU_SIMD when it names a level.
SimdLevel simd_level();
// For tests: use `level` (capped at the best) from now on.
void set_simd_level(SimdLevel level);
const char* simd_level_name(SimdLevel level);

}  // namespace cpu
}  // namespace edfast
