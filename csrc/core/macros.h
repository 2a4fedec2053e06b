// Portability macros for the header-only maths shared by the CPU and CUDA kernels.
#pragma once

#if defined(__CUDACC__) || defined(__HIPCC__)
#define EDFAST_HD __host__ __device__
#else
#define EDFAST_HD
#endif

#define EDFAST_INLINE EDFAST_HD inline
