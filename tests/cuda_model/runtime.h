// The CUDA execution model's runtime: kernel launches, the built-in index variables, dynamic
// shared memory, the refusals and the controls the tests use. See README.md beside this file.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <source_location>
#include <stdexcept>
#include <string>

namespace cuda_model {

// What the model throws out of a launch when a kernel does something real hardware punishes
// silently (or rejects): the message names the kernel, the block, the thread and the call site.
class Refusal : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The limits of the GPU the model stands for (an H100, sm_90).
constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr size_t kDefaultDynamicShared = 48 * 1024;  // without the opt-in attribute
constexpr size_t kMaxDynamicShared = 227 * 1024;     // cudaFuncAttributeMaxDynamicSharedMemorySize

struct Indices {
  uint3 thread_idx;
  uint3 block_idx;
  dim3 block_dim;
  dim3 grid_dim;
};

// The running CUDA thread's indices; refused outside a kernel.
const Indices& indices();

// The running block's dynamic shared memory (`extern __shared__`), exactly the launch's size.
unsigned char* dynamic_shared();

// Runs a kernel: blocks one after another on the calling thread, the threads of a block as
// fibers (fiber.h). `body` runs once per CUDA thread.
void run_grid(const std::string& kernel, const void* function, dim3 grid, dim3 block,
              size_t dynamic_shared_bytes, void (*body)(void*), void* context);

// "edfast::cuda::{anonymous}::forward_kernel<float, float>" from a kernel's function pointer.
template <auto Kernel>
std::string kernel_name() {
  // "... [with auto Kernel = NAME; std::string = ...]"
  const std::string pretty = __PRETTY_FUNCTION__;
  const size_t begin = pretty.find("Kernel = ");
  if (begin == std::string::npos) return pretty;
  const size_t end = std::min(pretty.find(';', begin), pretty.rfind(']'));
  return pretty.substr(begin + 9, end - begin - 9);
}

// The model's `kernel<<<grid, block, shared, stream>>>(args...)`: synchronous; the stream is
// ignored. Each CUDA thread receives its own copies of the arguments, as on the device.
template <auto Kernel, typename... Args>
cudaError_t launch(dim3 grid, dim3 block, size_t shared, cudaStream_t, Args... args) {
  auto body = [&] { Kernel(args...); };
  run_grid(kernel_name<Kernel>(), reinterpret_cast<const void*>(Kernel), grid, block, shared,
           [](void* context) { (*static_cast<decltype(body)*>(context))(); }, &body);
  return cudaSuccess;
}

// Test controls.
// What cudaDeviceGetAttribute(cudaDevAttrMultiProcessorCount) reports (default 2): launchers
// that size their grid by the device cap it, so small tests exercise grid-stride loops.
// printf into a std::string (the refusals' messages).
std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

// A kernel's dynamic shared memory limit: cudaFuncAttributeMaxDynamicSharedMemorySize as
// cudaFuncSetAttribute set it, else the 48 KiB default (runtime_api.cpp).
int max_dynamic_shared(const void* function);
void set_max_dynamic_shared(const void* function, int bytes);

void set_multiprocessor_count(int count);
int multiprocessor_count();
// Number of kernel launches and CUDA threads run so far (tests check that work happened).
int64_t launches_run();
int64_t threads_run();

}  // namespace cuda_model

// The built-in variables of CUDA C++.
#define threadIdx (::cuda_model::indices().thread_idx)
#define blockIdx (::cuda_model::indices().block_idx)
#define blockDim (::cuda_model::indices().block_dim)
#define gridDim (::cuda_model::indices().grid_dim)
inline constexpr int warpSize = 32;
