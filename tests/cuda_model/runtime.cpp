// The CUDA execution model's scheduler: a block's threads run as fibers on the calling OS
// thread; each runs until it waits at a barrier or a warp collective, or exits. When every
// thread of the block is waiting or has exited, the scheduler completes the collectives whose
// participants have all arrived, with the hardware's semantics (PTX shfl.sync, vote.sync,
// bar.sync), and refuses what the hardware punishes silently. Blocks run one after another.
#include <sanitizer/common_interface_defs.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <cstdarg>
#include <string>
#include <vector>

#include "fiber.h"
#include "intrinsics.h"
#include "runtime.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#define TSAN_ACQUIRE(address) __tsan_acquire(address)
#define TSAN_RELEASE(address) __tsan_release(address)
#else
#define TSAN_ACQUIRE(address) (void)(address)
#define TSAN_RELEASE(address) (void)(address)
#endif

namespace cuda_model {
namespace {

constexpr unsigned kWarp = 32;

enum class State { kRunnable, kWaiting, kExited };
enum class Wait { kNone, kBarrier, kWarp };

struct Thread {
  Indices indices;
  unsigned linear = 0, warp = 0, lane = 0;
  State state = State::kRunnable;
  // What it waits at (state kWaiting).
  Wait wait = Wait::kNone;
  std::source_location site;
  BarrierOp barrier_op = BarrierOp::kSync;
  WarpOp warp_op = WarpOp::kSyncwarp;
  unsigned mask = 0;
  uint64_t value = 0;
  int operand = 0, width = 0;
  uint64_t result = 0;  // of the collective, set by the scheduler
  uint64_t barriers = 0;  // barriers arrived at
};

struct Launch {
  std::string kernel;
  dim3 grid, block;
  void (*body)(void*);
  void* context;
  unsigned threads_per_block = 0;
  std::vector<Thread> threads;  // of the running block
  std::unique_ptr<unsigned char[]> shared;
  std::string error;  // a refusal raised inside a fiber
  // ThreadSanitizer synchronisation objects (addresses only): launch and block order, barriers.
  char start_sync = 0, end_sync = 0, barrier_sync[2] = {0, 0};
  std::vector<char> warp_sync;
};

thread_local Launch* g_launch = nullptr;
thread_local Thread* g_thread = nullptr;
thread_local std::vector<std::unique_ptr<Fiber>> g_fibers;  // reused by every block and launch

std::atomic<int> g_multiprocessors{2};
std::atomic<int64_t> g_launches{0}, g_threads{0};


std::string triple(const uint3& v) { return format("(%u,%u,%u)", v.x, v.y, v.z); }
std::string triple(const dim3& v) { return format("(%u,%u,%u)", v.x, v.y, v.z); }

// "csrc/cuda/contrastive.cu:47" from an absolute path.
std::string site_text(const std::source_location& site) {
  std::string file = site.file_name();
  for (const char* root : {"/csrc/", "/tests/"}) {
    const size_t at = file.rfind(root);
    if (at != std::string::npos) {
      file = file.substr(at + 1);
      break;
    }
  }
  return format("%s:%u", file.c_str(), static_cast<unsigned>(site.line()));
}

std::string who(const Launch& launch, const Thread& t) {
  return "kernel " + launch.kernel + ", block " + triple(t.indices.block_idx) + ", thread " +
         triple(t.indices.thread_idx) + format(" [warp %u, lane %u]", t.warp, t.lane);
}

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::kShflIdx: return "__shfl_sync";
    case WarpOp::kShflUp: return "__shfl_up_sync";
    case WarpOp::kShflDown: return "__shfl_down_sync";
    case WarpOp::kShflXor: return "__shfl_xor_sync";
    case WarpOp::kBallot: return "__ballot_sync";
    case WarpOp::kAny: return "__any_sync";
    case WarpOp::kAll: return "__all_sync";
    case WarpOp::kSyncwarp: return "__syncwarp";
  }
  return "?";
}

const char* op_name(BarrierOp op) {
  switch (op) {
    case BarrierOp::kSync: return "__syncthreads";
    case BarrierOp::kCount: return "__syncthreads_count";
    case BarrierOp::kAnd: return "__syncthreads_and";
    case BarrierOp::kOr: return "__syncthreads_or";
  }
  return "?";
}

std::string waiting_at(const Thread& t) {
  const char* name = t.wait == Wait::kBarrier ? op_name(t.barrier_op) : op_name(t.warp_op);
  std::string text = std::string(name) + " (" + site_text(t.site) + ")";
  if (t.wait == Wait::kWarp) text += format(" with mask 0x%08x", t.mask);
  return text;
}

[[noreturn]] void refuse(const Launch& launch, const Thread& t, const std::string& what) {
  throw Refusal("cuda_model: " + who(launch, t) + ": " + what);
}

[[noreturn]] void refuse_launch(const std::string& kernel, const std::string& what) {
  throw Refusal("cuda_model: kernel " + kernel + ": " + what);
}

Thread& running_thread(const char* what) {
  if (!g_thread) throw Refusal(std::string("cuda_model: ") + what + " used outside a kernel");
  return *g_thread;
}

// Hides the model's own memory accesses (thread states written by a fiber and read by the
// scheduler, and back) from ThreadSanitizer: only the kernels' accesses are checked for races.
// Used by the scheduler for a whole launch and by the fibers around the runtime's code.
struct RuntimeAccessesUnchecked {
#if defined(__SANITIZE_THREAD__)
  RuntimeAccessesUnchecked() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  }
  ~RuntimeAccessesUnchecked() {
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
#endif
};

// The opposite, for the kernel's own code inside the fiber's entry function.
struct KernelAccessesChecked {
#if defined(__SANITIZE_THREAD__)
  KernelAccessesChecked() {
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
  ~KernelAccessesChecked() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  }
#endif
};

// ------------------------------------------------------------------------- the scheduler

unsigned lanes_in_warp(const Launch& launch, unsigned warp) {
  return std::min(kWarp, launch.threads_per_block - warp * kWarp);
}

Thread& lane_thread(Launch& launch, unsigned warp, unsigned lane) {
  return launch.threads[warp * kWarp + lane];
}

// PTX shfl.sync: the lane `t` reads from, given its mode, operand and width.
unsigned shuffle_source(const Thread& t) {
  const int lane = static_cast<int>(t.lane);
  const int b = t.operand & 31;
  const int segmask = (32 - t.width) & 31;
  const int clamp = t.warp_op == WarpOp::kShflUp ? 0 : 31;
  const int max_lane = (lane & segmask) | (clamp & ~segmask);
  const int min_lane = lane & segmask;
  int j = lane;
  bool in_range = true;
  switch (t.warp_op) {
    case WarpOp::kShflUp: j = lane - b; in_range = j >= max_lane; break;
    case WarpOp::kShflDown: j = lane + b; in_range = j <= max_lane; break;
    case WarpOp::kShflXor: j = lane ^ b; in_range = j <= max_lane; break;
    case WarpOp::kShflIdx: j = min_lane | (b & ~segmask); in_range = j <= max_lane; break;
    default: break;
  }
  return static_cast<unsigned>(in_range ? j : lane);
}

bool is_shuffle(WarpOp op) {
  return op == WarpOp::kShflIdx || op == WarpOp::kShflUp || op == WarpOp::kShflDown ||
         op == WarpOp::kShflXor;
}

// Completes each warp collective whose named lanes have all arrived, after checking that they
// met at the same intrinsic with the same mask. Lanes sharing a mask form one group, checked
// and completed once. Returns whether any completed.
bool complete_warp_collectives(Launch& launch) {
  bool progressed = false;
  const unsigned warps = (launch.threads_per_block + kWarp - 1) / kWarp;
  for (unsigned w = 0; w < warps; ++w) {
    const unsigned lanes = lanes_in_warp(launch, w);
    uint32_t completed = 0;  // lanes of the groups completed in this pass
    for (unsigned l = 0; l < lanes; ++l) {
      const Thread& t = lane_thread(launch, w, l);
      if (((completed >> l) & 1u) || t.state != State::kWaiting || t.wait != Wait::kWarp) continue;
      const unsigned mask = t.mask;
      for (unsigned k = 0; k < kWarp; ++k) {
        if (!((mask >> k) & 1u)) continue;
        if (k >= lanes) {
          refuse(launch, t, waiting_at(t) + format(" names lane %u, but warp %u has only %u lanes (block %s)", k, w,
                                                   lanes, triple(launch.block).c_str()));
        }
        const Thread& u = lane_thread(launch, w, k);
        if (u.state == State::kExited) refuse(launch, t, waiting_at(t) + format(" names lane %u, which has exited", k));
        if (u.wait == Wait::kBarrier) {
          refuse(launch, t, waiting_at(t) + format(" names lane %u, which waits at ", k) + waiting_at(u) + " instead");
        }
        if (((completed >> k) & 1u) || u.wait != Wait::kWarp || u.warp_op != t.warp_op || u.mask != mask) {
          refuse(launch, t, waiting_at(t) + format(" names lane %u, which is at ", k) + waiting_at(u) +
                                ": the lanes of a mask must meet at the same intrinsic with the same mask");
        }
      }
      uint64_t ballot = 0;
      for (unsigned k = 0; k < lanes; ++k) {
        if ((mask >> k) & 1u) ballot |= uint64_t(lane_thread(launch, w, k).value != 0) << k;
      }
      for (unsigned k = 0; k < lanes; ++k) {
        if (!((mask >> k) & 1u)) continue;
        Thread& u = lane_thread(launch, w, k);
        switch (u.warp_op) {
          case WarpOp::kBallot: u.result = ballot; break;
          case WarpOp::kAny: u.result = ballot != 0; break;
          case WarpOp::kAll: u.result = ballot == mask; break;
          case WarpOp::kSyncwarp: u.result = 0; break;
          default: {
            const unsigned source = shuffle_source(u);
            if (!((mask >> source) & 1u)) {
              refuse(launch, u, waiting_at(u) + format(" reads lane %u, which is not in the mask", source));
            }
            u.result = lane_thread(launch, w, source).value;
          }
        }
      }
      for (unsigned k = 0; k < lanes; ++k) {
        if (!((mask >> k) & 1u)) continue;
        Thread& u = lane_thread(launch, w, k);
        u.state = State::kRunnable;
        u.wait = Wait::kNone;
      }
      completed |= mask;
      progressed = true;
    }
  }
  return progressed;
}

// Releases a barrier that every thread of the block waits at. Returns whether it did.
bool complete_barrier(Launch& launch) {
  Thread* first = nullptr;
  for (Thread& t : launch.threads) {
    if (t.state == State::kWaiting && t.wait == Wait::kBarrier) {
      first = &t;
      break;
    }
  }
  if (!first) return false;
  int count = 0;
  for (Thread& t : launch.threads) {
    if (t.state == State::kExited) {
      refuse(launch, t, "exited, but thread " + triple(first->indices.thread_idx) + " waits at " +
                            waiting_at(*first) +
                            ": every thread of the block must reach each barrier (a barrier after an "
                            "early return is undefined behaviour)");
    }
    if (t.wait != Wait::kBarrier || t.barrier_op != first->barrier_op ||
        t.site.line() != first->site.line() ||
        std::string(t.site.file_name()) != first->site.file_name()) {
      refuse(launch, t, "waits at " + waiting_at(t) + " while thread " +
                            triple(first->indices.thread_idx) + " waits at " + waiting_at(*first) +
                            ": divergent barrier");
    }
    count += t.value != 0;
  }
  const int n = static_cast<int>(launch.threads.size());
  for (Thread& t : launch.threads) {
    switch (t.barrier_op) {
      case BarrierOp::kSync: t.result = 0; break;
      case BarrierOp::kCount: t.result = static_cast<uint64_t>(count); break;
      case BarrierOp::kAnd: t.result = count == n; break;
      case BarrierOp::kOr: t.result = count > 0; break;
    }
    t.state = State::kRunnable;
    t.wait = Wait::kNone;
  }
  return true;
}

// The life of one CUDA thread, in its fiber: the kernel, then its exit.
void run_thread() {
  RuntimeAccessesUnchecked unchecked;
  Launch& launch = *g_launch;
  Thread& self = *g_thread;
  TSAN_ACQUIRE(&launch.start_sync);
  try {
    KernelAccessesChecked checked;
    launch.body(launch.context);
  } catch (const Refusal& refusal) {
    launch.error = refusal.what();
  } catch (const std::exception& e) {
    launch.error = "cuda_model: " + who(launch, self) + ": the kernel threw " + e.what();
  }
  self.state = State::kExited;
  self.wait = Wait::kNone;
  TSAN_RELEASE(&launch.end_sync);
}

void fiber_entry() {
  Fiber::entered();
  run_thread();
  Fiber::finish();  // every guard of run_thread() has ended: a fiber's ignores must not outlive it
}

void run_block(Launch& launch, uint3 block_idx, size_t shared_bytes) {
  // Fresh dynamic shared memory of exactly the launch's size (AddressSanitizer sees its end),
  // filled with 0xff bytes (NaN floats) so that a read before a write shows.
  launch.shared.reset(new unsigned char[shared_bytes]);
  std::memset(launch.shared.get(), 0xff, shared_bytes);
  const dim3 b = launch.block;
  for (unsigned linear = 0; linear < launch.threads_per_block; ++linear) {
    Thread& t = launch.threads[linear];
    t = Thread{};
    t.indices = Indices{uint3{linear % b.x, (linear / b.x) % b.y, linear / (b.x * b.y)}, block_idx,
                        launch.block, launch.grid};
    t.linear = linear;
    t.warp = linear / kWarp;
    t.lane = linear % kWarp;
    const std::string name = "block " + triple(block_idx) + " thread " + triple(t.indices.thread_idx);
    g_fibers[linear]->start(fiber_entry, name.c_str());
  }
  TSAN_RELEASE(&launch.start_sync);
  // The host sees everything the block's threads did, even when the block is refused.
  struct AcquireBlock {
    char* sync;
    ~AcquireBlock() { TSAN_ACQUIRE(sync); }
  } acquire{&launch.end_sync};
  for (;;) {
    bool all_exited = true;
    for (unsigned linear = 0; linear < launch.threads_per_block; ++linear) {
      Thread& t = launch.threads[linear];
      if (t.state == State::kRunnable) {
        g_thread = &t;
        g_fibers[linear]->resume();
        g_thread = nullptr;
        if (!launch.error.empty()) throw Refusal(launch.error);
      }
      all_exited = all_exited && t.state == State::kExited;
    }
    if (all_exited) break;
    if (complete_warp_collectives(launch) || complete_barrier(launch)) continue;
    for (const Thread& t : launch.threads) {
      if (t.state == State::kWaiting) refuse(launch, t, "deadlock: waits at " + waiting_at(t));
    }
  }
  g_threads += launch.threads_per_block;
}

}  // namespace

// ----------------------------------------------------------------------------- runtime.h

std::string format(const char* fmt, ...) {
  char buffer[1024];
  va_list args;
  va_start(args, fmt);
  std::vsnprintf(buffer, sizeof(buffer), fmt, args);
  va_end(args);
  return buffer;
}


const Indices& indices() { return running_thread("threadIdx/blockIdx/blockDim/gridDim").indices; }

unsigned char* dynamic_shared() {
  running_thread("extern __shared__ memory");
  return g_launch->shared.get();
}

void run_grid(const std::string& kernel, const void* function, dim3 grid, dim3 block,
              size_t shared_bytes, void (*body)(void*), void* context) {
  if (g_launch) refuse_launch(kernel, "launched from inside a kernel (dynamic parallelism is not modelled)");
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  if (threads == 0 || threads > kMaxThreadsPerBlock || block.z > 64) {
    refuse_launch(kernel, "block " + triple(block) + format(" has %llu threads; a block has 1 to %u (and z <= 64)",
                                                            static_cast<unsigned long long>(threads),
                                                            kMaxThreadsPerBlock));
  }
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535 || grid.z > 65535) {
    refuse_launch(kernel, "grid " + triple(grid) + " is empty or exceeds (2^31-1, 65535, 65535)");
  }
  const int limit = max_dynamic_shared(function);
  if (shared_bytes > static_cast<size_t>(limit)) {
    refuse_launch(kernel, format("asks for %zu bytes of dynamic shared memory; its limit is %d (the H100 "
                                 "allows 48 KiB, or up to 227 KiB after cudaFuncSetAttribute("
                                 "cudaFuncAttributeMaxDynamicSharedMemorySize))",
                                 shared_bytes, limit));
  }
  RuntimeAccessesUnchecked unchecked;
  Launch launch{kernel, grid, block, body, context};
  launch.threads_per_block = static_cast<unsigned>(threads);
  launch.threads.resize(threads);
  launch.warp_sync.resize((threads + kWarp - 1) / kWarp);
  while (g_fibers.size() < threads) g_fibers.push_back(std::make_unique<Fiber>());
  g_launch = &launch;
  struct Reset {
    ~Reset() { g_launch = nullptr; }
  } reset;
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) run_block(launch, uint3{x, y, z}, shared_bytes);
  ++g_launches;
}

void set_multiprocessor_count(int count) { g_multiprocessors = count; }
int multiprocessor_count() { return g_multiprocessors; }
int64_t launches_run() { return g_launches; }
int64_t threads_run() { return g_threads; }

// --------------------------------------------------------------------------- intrinsics.h

// In both collectives the runtime's accesses are hidden from ThreadSanitizer in two scopes,
// before and after the switch: an ignore held across a yield would outlive an abandoned fiber.
int block_barrier(BarrierOp op, int predicate, const std::source_location& site) {
  Thread* self;
  uint64_t parity;
  {
    RuntimeAccessesUnchecked unchecked;
    self = &running_thread(op_name(op));
    self->state = State::kWaiting;
    self->wait = Wait::kBarrier;
    self->barrier_op = op;
    self->value = static_cast<uint64_t>(predicate);
    self->site = site;
    parity = self->barriers++ & 1u;
  }
  // One sync object per barrier parity: with a single one, a thread that resumes late would
  // also acquire what faster threads released at the *next* barrier, and TSan would take
  // their writes between the two barriers as ordered (a missing __syncthreads went unseen).
  TSAN_RELEASE(&g_launch->barrier_sync[parity]);
  TSAN_RELEASE(&g_launch->end_sync);  // the host acquires it however the block ends
  Fiber::yield();
  TSAN_ACQUIRE(&g_launch->barrier_sync[parity]);
  RuntimeAccessesUnchecked unchecked;
  return static_cast<int>(self->result);
}

uint64_t warp_collective(WarpOp op, unsigned mask, uint64_t value, int operand, int width,
                         const std::source_location& site) {
  Thread* self;
  char* sync;
  {
    RuntimeAccessesUnchecked unchecked;
    self = &running_thread(op_name(op));
    if (is_shuffle(op) && (width < 1 || width > 32 || (width & (width - 1)) != 0)) {
      refuse(*g_launch, *self, std::string(op_name(op)) + " (" + site_text(site) +
                                   format(") with width %d: the width must be a power of two up to 32", width));
    }
    if (!((mask >> self->lane) & 1u)) {
      refuse(*g_launch, *self, std::string(op_name(op)) + " (" + site_text(site) +
                                   format(") with mask 0x%08x, which does not name the calling lane %u", mask,
                                          self->lane));
    }
    self->state = State::kWaiting;
    self->wait = Wait::kWarp;
    self->warp_op = op;
    self->mask = mask;
    self->value = value;
    self->operand = operand;
    self->width = width;
    self->site = site;
    sync = &g_launch->warp_sync[self->warp];
  }
  // Only __syncwarp orders memory between lanes; shuffles and votes move registers.
  if (op == WarpOp::kSyncwarp) TSAN_RELEASE(sync);
  TSAN_RELEASE(&g_launch->end_sync);
  Fiber::yield();
  if (op == WarpOp::kSyncwarp) TSAN_ACQUIRE(sync);
  RuntimeAccessesUnchecked unchecked;
  return self->result;
}

unsigned active_mask() {
  RuntimeAccessesUnchecked unchecked;
  const Thread& self = running_thread("__activemask");
  unsigned mask = 0;
  const unsigned lanes = lanes_in_warp(*g_launch, self.warp);
  for (unsigned k = 0; k < lanes; ++k) {
    if (lane_thread(*g_launch, self.warp, k).state != State::kExited) mask |= 1u << k;
  }
  return mask;
}

}  // namespace cuda_model
