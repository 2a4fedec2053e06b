// Tests of the CUDA execution model itself (compiled with cuda_model.h force-included, like the
// kernels): the semantics of indices, barriers, shared memory, warp intrinsics and atomics, and
// each refusal. The cases named sanitizer.* are meant to be caught by a sanitizer; CTest runs
// them alone and expects the sanitizer's report (CMakeLists.txt).
#include <string>

#include "../cpp/check.h"
#include "../cpp/device_buffer.h"
#include "cuda/launch.cuh"

using cuda_model::launch;

namespace {

// Runs `fn`, expecting a refusal whose message contains every fragment given.
template <typename Fn>
void expect_refusal(Fn fn, std::initializer_list<const char*> fragments) {
  try {
    fn();
  } catch (const cuda_model::Refusal& refusal) {
    const std::string message = refusal.what();
    for (const char* fragment : fragments) {
      CHECK(message.find(fragment) != std::string::npos, "message lacks \"%s\": %s", fragment, message.c_str());
    }
    return;
  }
  CHECK(false, "expected a refusal containing \"%s\"", *fragments.begin());
}

// ------------------------------------------------------------------------------- kernels

__global__ void write_indices(unsigned* out) {
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  out[block * threads + thread] = block * 100000u + thread;
}

// Reverses each block's slice through static shared memory: needs the barrier.
__global__ void reverse_static(const int* in, int* out) {
  __shared__ int tile[64];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  tile[threadIdx.x] = in[i];
  __syncthreads();
  out[i] = tile[blockDim.x - 1 - threadIdx.x];
}

// The same through csrc/cuda's helpers: dynamic shared memory, launched by edfast::cuda::launch.
__global__ void reverse_dynamic(const int* in, int* out) {
  int* tile = edfast::cuda::dynamic_shared_memory<int>();
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  tile[threadIdx.x] = in[i];
  __syncthreads();
  out[i] = tile[blockDim.x - 1 - threadIdx.x];
}

__global__ void barrier_reductions(const int* predicate, int* out) {
  const int p = predicate[threadIdx.x];
  const int count = __syncthreads_count(p);
  const int all = __syncthreads_and(p);
  const int any = __syncthreads_or(p);
  out[threadIdx.x * 3 + 0] = count;
  out[threadIdx.x * 3 + 1] = all;
  out[threadIdx.x * 3 + 2] = any;
}

// mode: 0 idx, 1 up, 2 down, 3 xor; value of lane l is 1000 + global thread index.
__global__ void shuffle_all(int mode, int operand, int width, int* out) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  const int v = 1000 + t;
  int r = 0;
  switch (mode) {
    case 0: r = __shfl_sync(0xffffffffu, v, (threadIdx.x + operand) % 32, width); break;
    case 1: r = __shfl_up_sync(0xffffffffu, v, operand, width); break;
    case 2: r = __shfl_down_sync(0xffffffffu, v, operand, width); break;
    default: r = __shfl_xor_sync(0xffffffffu, v, operand, width); break;
  }
  out[t] = r;
}

__global__ void shuffle_double(double* out) {
  const double v = 0.5 + threadIdx.x;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, v, 1);
}

// Two half-warps, each with its own mask: votes and a shuffle within each half.
__global__ void half_warp_votes(const int* predicate, unsigned* out) {
  const unsigned lane = threadIdx.x % 32;
  const unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  const int p = predicate[threadIdx.x];
  out[threadIdx.x * 4 + 0] = __ballot_sync(mask, p);
  out[threadIdx.x * 4 + 1] = __any_sync(mask, p);
  out[threadIdx.x * 4 + 2] = __all_sync(mask, p);
  out[threadIdx.x * 4 + 3] = __shfl_sync(mask, threadIdx.x, lane < 16 ? 0 : 16);
}

__global__ void atomics(int* counter, float* fsum, double* dsum, unsigned* maximum, int* cas_winner) {
  const int t = blockIdx.x * blockDim.x + threadIdx.x;
  atomicAdd(counter, 1);
  atomicAdd(fsum, 0.5f);
  atomicAdd(dsum, 0.25);
  atomicMax(maximum, static_cast<unsigned>(t * 7 % 1000));
  atomicCAS(cas_winner, -1, t);
}

__global__ void exit_before_shuffle(int* out) {
  if (threadIdx.x == 7) return;  // lane 7 leaves; the others name it in a full mask
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

__global__ void full_mask_in_partial_warp(int* out) {
  out[threadIdx.x] = __shfl_down_sync(0xffffffffu, static_cast<int>(threadIdx.x), 1);
}

__global__ void exit_before_barrier(int* out) {
  if (threadIdx.x >= 40) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

__global__ void divergent_barriers(int* out) {
  if (threadIdx.x < 32) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  out[threadIdx.x] = 1;
}

__global__ void mask_without_caller(int* out) {
  out[threadIdx.x] = __shfl_sync(0x0000fffeu, 1, 0);
}

__global__ void read_outside_mask(int* out) {
  const unsigned lane = threadIdx.x % 32;
  const unsigned mask = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  out[threadIdx.x] = __shfl_sync(mask, static_cast<int>(lane), 20);  // lanes 0-15 read lane 20
}

__global__ void shared_hungry(int* out) {
  cuda_model::dynamic_shared()[0] = 1;
  out[0] = 1;
}

// Planted race: warp 1 reads what warp 0 wrote, without the barrier between.
__global__ void missing_barrier(int* out) {
  __shared__ int tile[64];
  tile[threadIdx.x] = static_cast<int>(threadIdx.x);
  out[threadIdx.x] = tile[63 - threadIdx.x];
}

__global__ void shared_overflow(int* out) {
  int* tile = reinterpret_cast<int*>(cuda_model::dynamic_shared());
  tile[threadIdx.x] = 1;  // one int per thread, but the launch gives blockDim.x - 1
  out[threadIdx.x] = tile[threadIdx.x];
}

__global__ void static_shared_overflow(int* out, int extra) {
  __shared__ int tile[32];
  tile[threadIdx.x + extra] = 1;
  __syncthreads();
  out[threadIdx.x] = tile[threadIdx.x];
}

}  // namespace

// --------------------------------------------------------------------------------- cases

TEST_CASE(model, indices_cover_grid_and_block) {
  const dim3 grids[] = {dim3(3), dim3(2, 3), dim3(2, 1, 2)};
  const dim3 blocks[] = {dim3(33), dim3(8, 4), dim3(5, 3, 2), dim3(1)};
  for (const dim3 grid : grids) {
    for (const dim3 block : blocks) {
      const unsigned nb = grid.x * grid.y * grid.z, nt = block.x * block.y * block.z;
      DeviceBuffer<unsigned> out(nb * nt, 0xdeadu);
      launch<write_indices>(grid, block, 0, nullptr, out.data());
      bool ok = true;
      for (unsigned b = 0; b < nb; ++b)
        for (unsigned t = 0; t < nt; ++t) ok = ok && out[b * nt + t] == b * 100000u + t;
      CHECK(ok, "grid (%u,%u,%u) block (%u,%u,%u)", grid.x, grid.y, grid.z, block.x, block.y, block.z);
    }
  }
}

TEST_CASE(model, barrier_orders_shared_memory) {
  const int blocks = 3, threads = 64;
  std::vector<int> input(blocks * threads);
  for (int i = 0; i < blocks * threads; ++i) input[i] = i * 3 + 1;
  DeviceBuffer<int> in(input), out_static(blocks * threads), out_dynamic(blocks * threads);
  launch<reverse_static>(dim3(blocks), dim3(threads), 0, nullptr, in.data(), out_static.data());
  edfast::cuda::launch<reverse_dynamic>(dim3(blocks), dim3(threads), threads * sizeof(int), nullptr, in.data(),
                                        out_dynamic.data());
  for (int b = 0; b < blocks; ++b) {
    for (int t = 0; t < threads; ++t) {
      const int want = input[b * threads + threads - 1 - t];
      CHECK(out_static[b * threads + t] == want, "static: block %d thread %d", b, t);
      CHECK(out_dynamic[b * threads + t] == want, "dynamic: block %d thread %d", b, t);
    }
  }
}

TEST_CASE(model, barrier_reductions) {
  const int threads = 70;  // a partial last warp
  for (int pattern = 0; pattern < 3; ++pattern) {
    std::vector<int> predicate(threads);
    int count = 0;
    for (int t = 0; t < threads; ++t) {
      predicate[t] = pattern == 0 ? 0 : pattern == 1 ? (t % 3 == 0) * 5 : 1;
      count += predicate[t] != 0;
    }
    DeviceBuffer<int> p(predicate), out(threads * 3, -1);
    launch<barrier_reductions>(dim3(1), dim3(threads), 0, nullptr, p.data(), out.data());
    for (int t = 0; t < threads; ++t) {
      CHECK(out[t * 3] == count && out[t * 3 + 1] == (count == threads) && out[t * 3 + 2] == (count > 0),
            "pattern %d thread %d: %d %d %d", pattern, t, out[t * 3], out[t * 3 + 1], out[t * 3 + 2]);
    }
  }
}

TEST_CASE(model, shuffles_follow_ptx) {
  // Expected source lanes written from the CUDA programming guide's description.
  const int threads = 64;
  for (int width : {32, 16, 8, 1}) {
    for (int mode = 0; mode < 4; ++mode) {
      for (int operand : {0, 1, 3, 5, 16}) {
        DeviceBuffer<int> out(threads, -1);
        launch<shuffle_all>(dim3(1), dim3(threads), 0, nullptr, mode, operand, width, out.data());
        bool ok = true;
        for (int t = 0; t < threads; ++t) {
          const int lane = t % 32, base = t - lane;
          const int segment = lane / width * width, in_segment = lane % width;
          int source = lane;
          if (mode == 0) source = segment + ((lane + operand) % 32) % width;
          if (mode == 1) source = in_segment >= operand ? lane - operand : lane;
          if (mode == 2) source = in_segment + operand < width ? lane + operand : lane;
          if (mode == 3) source = (lane ^ operand) < segment + width ? lane ^ operand : lane;
          ok = ok && out[t] == 1000 + base + source;
        }
        CHECK(ok, "width %d mode %d operand %d", width, mode, operand);
      }
    }
  }
  DeviceBuffer<double> out(32);
  launch<shuffle_double>(dim3(1), dim3(32), 0, nullptr, out.data());
  bool ok = true;
  for (int t = 0; t < 32; ++t) ok = ok && out[t] == 0.5 + (t ^ 1);
  CHECK(ok, "64-bit shuffle");
}

TEST_CASE(model, votes_within_partial_masks) {
  std::vector<int> predicate(32);
  for (int t = 0; t < 32; ++t) predicate[t] = t % 5 == 0 || t >= 16;
  DeviceBuffer<int> p(predicate);
  DeviceBuffer<unsigned> out(32 * 4);
  launch<half_warp_votes>(dim3(1), dim3(32), 0, nullptr, p.data(), out.data());
  unsigned low = 0, high = 0;
  for (int t = 0; t < 32; ++t) (t < 16 ? low : high) |= unsigned(predicate[t] != 0) << t;
  for (int t = 0; t < 32; ++t) {
    const unsigned ballot = t < 16 ? low : high;
    const unsigned mask = t < 16 ? 0x0000ffffu : 0xffff0000u;
    CHECK(out[t * 4] == ballot && out[t * 4 + 1] == (ballot != 0) && out[t * 4 + 2] == (ballot == mask) &&
              out[t * 4 + 3] == (t < 16 ? 0u : 16u),
          "lane %d: %x %u %u %u", t, out[t * 4], out[t * 4 + 1], out[t * 4 + 2], out[t * 4 + 3]);
  }
}

TEST_CASE(model, atomics_across_blocks) {
  DeviceBuffer<int> counter(1, 0), winner(1, -1);
  DeviceBuffer<float> fsum(1, 0.0f);
  DeviceBuffer<double> dsum(1, 0.0);
  DeviceBuffer<unsigned> maximum(1, 0u);
  launch<atomics>(dim3(5), dim3(96), 0, nullptr, counter.data(), fsum.data(), dsum.data(), maximum.data(),
                  winner.data());
  unsigned want_max = 0;
  for (int t = 0; t < 480; ++t) want_max = std::max(want_max, static_cast<unsigned>(t * 7 % 1000));
  CHECK(counter[0] == 480 && fsum[0] == 240.0f && dsum[0] == 120.0 && maximum[0] == want_max,
        "%d %g %g %u", counter[0], fsum[0], dsum[0], maximum[0]);
  CHECK(winner[0] >= 0 && winner[0] < 480, "atomicCAS winner %d", winner[0]);
}

// Stream-ordered memory: exact-size blocks, 0xff until written, memset, free; the kernel sees
// the bytes the host wrote (the model runs synchronously).
namespace {
__global__ void add_one(float* data, int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) atomicAdd(data + i, 1.0f);
}
}  // namespace

TEST_CASE(model, stream_ordered_memory) {
  void* memory = nullptr;
  CHECK(cudaMallocAsync(&memory, 40, nullptr) == cudaSuccess && memory != nullptr);
  const unsigned char* bytes = static_cast<const unsigned char*>(memory);
  CHECK(bytes[0] == 0xff && bytes[39] == 0xff, "fresh memory is not 0xff: %x %x", bytes[0], bytes[39]);
  CHECK(cudaMemsetAsync(memory, 0, 40, nullptr) == cudaSuccess);
  float* data = static_cast<float*>(memory);
  launch<add_one>(dim3(1), dim3(64), 0, nullptr, data, 10);
  bool ones = true;
  for (int i = 0; i < 10; ++i) ones = ones && data[i] == 1.0f;
  CHECK(ones, "memset then atomicAdd gave %g ... %g", data[0], data[9]);
  CHECK(cudaFreeAsync(memory, nullptr) == cudaSuccess);
  void* empty = &memory;
  CHECK(cudaMallocAsync(&empty, 0, nullptr) == cudaSuccess && empty == nullptr);
  CHECK(cudaFreeAsync(nullptr, nullptr) == cudaSuccess);
}

TEST_CASE(model, device_attributes) {
  int sms = 0, optin = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0);
  CHECK(sms == cuda_model::multiprocessor_count() && optin == 227 * 1024, "%d %d", sms, optin);
}

TEST_CASE(model, refuses_lane_exited_before_shuffle) {
  DeviceBuffer<int> out(32);
  expect_refusal([&] { launch<exit_before_shuffle>(dim3(1), dim3(32), 0, nullptr, out.data()); },
                 {"exit_before_shuffle", "block (0,0,0)", "__shfl_xor_sync", "test_model.cpp:", "names lane 7, which has exited"});
}

TEST_CASE(model, refuses_mask_naming_absent_lane) {
  DeviceBuffer<int> out(48);
  expect_refusal([&] { launch<full_mask_in_partial_warp>(dim3(1), dim3(48), 0, nullptr, out.data()); },
                 {"full_mask_in_partial_warp", "[warp 1, lane 0]", "names lane 16, but warp 1 has only 16 lanes"});
}

TEST_CASE(model, refuses_barrier_after_early_exit) {
  DeviceBuffer<int> out(64);
  expect_refusal([&] { launch<exit_before_barrier>(dim3(1), dim3(64), 0, nullptr, out.data()); },
                 {"exit_before_barrier", "thread (40,0,0)", "exited, but thread (0,0,0) waits at __syncthreads"});
}

TEST_CASE(model, refuses_divergent_barriers) {
  DeviceBuffer<int> out(64);
  expect_refusal([&] { launch<divergent_barriers>(dim3(1), dim3(64), 0, nullptr, out.data()); },
                 {"divergent_barriers", "thread (32,0,0)", "divergent barrier"});
}

TEST_CASE(model, refuses_mask_without_calling_lane) {
  DeviceBuffer<int> out(32);
  expect_refusal([&] { launch<mask_without_caller>(dim3(1), dim3(32), 0, nullptr, out.data()); },
                 {"thread (0,0,0)", "mask 0x0000fffe, which does not name the calling lane 0"});
}

TEST_CASE(model, refuses_shuffle_reading_outside_mask) {
  DeviceBuffer<int> out(32);
  expect_refusal([&] { launch<read_outside_mask>(dim3(1), dim3(32), 0, nullptr, out.data()); },
                 {"thread (0,0,0)", "reads lane 20, which is not in the mask"});
}

TEST_CASE(model, refuses_bad_launch_configurations) {
  DeviceBuffer<int> out(1);
  expect_refusal([&] { launch<shared_hungry>(dim3(1), dim3(1025), 0, nullptr, out.data()); },
                 {"shared_hungry", "(1025,1,1) has 1025 threads; a block has 1 to 1024"});
  expect_refusal([&] { launch<shared_hungry>(dim3(0), dim3(32), 0, nullptr, out.data()); }, {"grid (0,1,1)"});
  expect_refusal([&] { launch<shared_hungry>(dim3(1), dim3(1), 48 * 1024 + 1, nullptr, out.data()); },
                 {"shared_hungry", "49153 bytes of dynamic shared memory; its limit is 49152"});
  expect_refusal([&] {
    cudaFuncSetAttribute(reinterpret_cast<const void*>(&shared_hungry),
                         cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024 + 1);
  }, {"at most 232448 bytes"});
  // With the opt-in attribute, up to 227 KiB runs.
  cudaFuncSetAttribute(reinterpret_cast<const void*>(&shared_hungry),
                       cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024);
  launch<shared_hungry>(dim3(1), dim3(1), 227 * 1024, nullptr, out.data());
  CHECK(out[0] == 1);
  expect_refusal([&] { launch<shared_hungry>(dim3(1), dim3(1), 227 * 1024 + 1, nullptr, out.data()); },
                 {"its limit is 232448"});
}

TEST_CASE(model, refuses_indices_outside_kernel) {
  expect_refusal([] { (void)threadIdx.x; }, {"used outside a kernel"});
}

TEST_CASE(model, recovers_after_refusal) {
  // A refused launch leaves fibers abandoned mid-run; the next launch must still work.
  DeviceBuffer<int> out(32);
  expect_refusal([&] { launch<exit_before_shuffle>(dim3(1), dim3(32), 0, nullptr, out.data()); }, {"exited"});
  const int blocks = 2, threads = 64;
  std::vector<int> input(blocks * threads);
  for (int i = 0; i < blocks * threads; ++i) input[i] = i;
  DeviceBuffer<int> in(input), reversed(blocks * threads);
  launch<reverse_static>(dim3(blocks), dim3(threads), 0, nullptr, in.data(), reversed.data());
  CHECK(reversed[0] == 63 && reversed[64] == 127, "%d %d", reversed[0], reversed[64]);
}

// Run alone by CTest, each expecting its sanitizer's report.
TEST_CASE(sanitizer, missing_barrier_race) {
  DeviceBuffer<int> out(64);
  launch<missing_barrier>(dim3(1), dim3(64), 0, nullptr, out.data());
}

TEST_CASE(sanitizer, dynamic_shared_out_of_bounds) {
  DeviceBuffer<int> out(32);
  launch<shared_overflow>(dim3(1), dim3(32), 31 * sizeof(int), nullptr, out.data());
}

TEST_CASE(sanitizer, static_shared_out_of_bounds) {
  DeviceBuffer<int> out(32);
  launch<static_shared_overflow>(dim3(1), dim3(32), 0, nullptr, out.data(), 1);
}
