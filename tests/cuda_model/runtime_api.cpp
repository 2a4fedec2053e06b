// The part of the CUDA runtime API that csrc/cuda calls, as the execution model implements it:
// errors, device attributes, the function attribute for dynamic shared memory (which
// run_grid checks launches against), and stream-ordered memory, which acts at once because
// the model runs everything synchronously.
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#include "runtime.h"

namespace cuda_model {
namespace {

std::mutex g_attributes_mutex;
std::map<const void*, int> g_max_dynamic_shared;  // cudaFuncAttributeMaxDynamicSharedMemorySize

}  // namespace

int max_dynamic_shared(const void* function) {
  std::lock_guard<std::mutex> lock(g_attributes_mutex);
  const auto found = g_max_dynamic_shared.find(function);
  return found == g_max_dynamic_shared.end() ? static_cast<int>(kDefaultDynamicShared) : found->second;
}

void set_max_dynamic_shared(const void* function, int bytes) {
  std::lock_guard<std::mutex> lock(g_attributes_mutex);
  g_max_dynamic_shared[function] = bytes;
}

}  // namespace cuda_model

extern "C" {

cudaError_t cudaGetLastError(void) { return cudaSuccess; }  // refusals throw instead
cudaError_t cudaPeekAtLastError(void) { return cudaSuccess; }
const char* cudaGetErrorString(cudaError_t error) {
  return error == cudaSuccess ? "no error" : "error (cuda_model)";
}
const char* cudaGetErrorName(cudaError_t error) {
  return error == cudaSuccess ? "cudaSuccess" : "cudaError (cuda_model)";
}
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, enum cudaDeviceAttr attribute, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  switch (attribute) {
    case cudaDevAttrMultiProcessorCount: *value = cuda_model::multiprocessor_count(); break;
    case cudaDevAttrMaxThreadsPerBlock: *value = static_cast<int>(cuda_model::kMaxThreadsPerBlock); break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: *value = 2048; break;
    case cudaDevAttrMaxBlocksPerMultiprocessor: *value = 32; break;
    case cudaDevAttrWarpSize: *value = 32; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = static_cast<int>(cuda_model::kDefaultDynamicShared); break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = static_cast<int>(cuda_model::kMaxDynamicShared); break;
    default:
      throw cuda_model::Refusal(cuda_model::format("cuda_model: cudaDeviceGetAttribute(%d) is not modelled",
                                                   static_cast<int>(attribute)));
  }
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* function, enum cudaFuncAttribute attribute, int value) {
  if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize) {
    throw cuda_model::Refusal(cuda_model::format("cuda_model: cudaFuncSetAttribute(%d) is not modelled",
                                                 static_cast<int>(attribute)));
  }
  if (value < 0 || static_cast<size_t>(value) > cuda_model::kMaxDynamicShared) {
    throw cuda_model::Refusal(cuda_model::format(
        "cuda_model: cudaFuncSetAttribute(cudaFuncAttributeMaxDynamicSharedMemorySize, %d): the H100 "
        "allows at most %zu bytes (227 KiB) of dynamic shared memory per block",
        value, cuda_model::kMaxDynamicShared));
  }
  cuda_model::set_max_dynamic_shared(function, value);
  return cudaSuccess;
}

// Stream-ordered memory: the model runs everything synchronously, so these act at once. An
// allocation is a heap block of exactly `size` bytes (AddressSanitizer sees an access past its
// end), filled with 0xff bytes (NaN floats) like dynamic shared memory, so a read before a
// write shows.
cudaError_t cudaMallocAsync(void** pointer, size_t size, cudaStream_t) {
  if (pointer == nullptr) return cudaErrorInvalidValue;
  *pointer = size == 0 ? nullptr : std::malloc(size);
  if (size != 0 && *pointer == nullptr) return cudaErrorMemoryAllocation;
  if (size != 0) std::memset(*pointer, 0xff, size);
  return cudaSuccess;
}

cudaError_t cudaFreeAsync(void* pointer, cudaStream_t) {
  std::free(pointer);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* pointer, int value, size_t count, cudaStream_t) {
  if (count != 0) std::memset(pointer, value, count);
  return cudaSuccess;
}

}  // extern "C"
