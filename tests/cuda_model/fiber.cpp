#include "fiber.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CUDA_MODEL_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define CUDA_MODEL_TSAN 1
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#endif

namespace cuda_model {
namespace {

// Kernel frames are small; sanitizers enlarge them. A guard page turns an overflow into a crash.
constexpr size_t kStackSize = 256 * 1024;

struct Scheduler {
  ucontext_t context;
  Fiber* running = nullptr;
  const void* stack_bottom = nullptr;  // the scheduler's own stack, as ASan reports it
  size_t stack_size = 0;
  void* tsan_fiber = nullptr;
};
thread_local Scheduler scheduler;

void fail(const char* what) {
  std::fprintf(stderr, "cuda_model: %s\n", what);
  std::abort();
}

}  // namespace

Fiber::~Fiber() {
#ifdef CUDA_MODEL_TSAN
  if (tsan_fiber_) __tsan_destroy_fiber(tsan_fiber_);
#endif
  if (mapping_) munmap(mapping_, stack_size_ + static_cast<size_t>(getpagesize()));
}

void Fiber::allocate() {
  const size_t page = static_cast<size_t>(getpagesize());
  stack_size_ = kStackSize;
  void* mapping = mmap(nullptr, stack_size_ + page, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (mapping == MAP_FAILED) fail("cannot map a fiber stack");
  mapping_ = static_cast<char*>(mapping);
  if (mprotect(mapping_, page, PROT_NONE) != 0) fail("cannot protect a fiber stack's guard page");
  stack_ = mapping_ + page;
#ifdef CUDA_MODEL_TSAN
  tsan_fiber_ = __tsan_create_fiber(0);
#endif
}

void Fiber::start(void (*entry)(), const char* name) {
  if (!mapping_) allocate();
#ifdef CUDA_MODEL_ASAN
  // A fiber abandoned mid-run (its block was refused) left poisoned frames on its stack.
  if (dirty_) __asan_unpoison_memory_region(stack_, stack_size_);
#endif
#ifdef CUDA_MODEL_TSAN
  __tsan_set_fiber_name(tsan_fiber_, name);
#else
  (void)name;
#endif
  dirty_ = true;  // until it finishes
  if (getcontext(&context_) != 0) fail("getcontext failed");
  context_.uc_stack.ss_sp = stack_;
  context_.uc_stack.ss_size = stack_size_;
  context_.uc_link = nullptr;
  makecontext(&context_, entry, 0);
}

void Fiber::resume() {
  scheduler.running = this;
#ifdef CUDA_MODEL_TSAN
  if (!scheduler.tsan_fiber) scheduler.tsan_fiber = __tsan_get_current_fiber();
  __tsan_switch_to_fiber(tsan_fiber_, __tsan_switch_to_fiber_no_sync);
#endif
#ifdef CUDA_MODEL_ASAN
  void* fake_stack = nullptr;
  __sanitizer_start_switch_fiber(&fake_stack, stack_, stack_size_);
#endif
  if (swapcontext(&scheduler.context, &context_) != 0) fail("swapcontext failed");
#ifdef CUDA_MODEL_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
  scheduler.running = nullptr;
}

void Fiber::entered() {
#ifdef CUDA_MODEL_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &scheduler.stack_bottom, &scheduler.stack_size);
#endif
}

void Fiber::yield() {
  Fiber* self = scheduler.running;
#ifdef CUDA_MODEL_ASAN
  __sanitizer_start_switch_fiber(&self->fake_stack_, scheduler.stack_bottom, scheduler.stack_size);
#endif
#ifdef CUDA_MODEL_TSAN
  __tsan_switch_to_fiber(scheduler.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
  if (swapcontext(&self->context_, &scheduler.context) != 0) fail("swapcontext failed");
#ifdef CUDA_MODEL_ASAN
  __sanitizer_finish_switch_fiber(self->fake_stack_, &scheduler.stack_bottom, &scheduler.stack_size);
#endif
}

void Fiber::finish() {
  Fiber* self = scheduler.running;
#ifdef CUDA_MODEL_TSAN
  AnnotateIgnoreWritesBegin(__FILE__, __LINE__);  // the model's state, not the kernel's
  self->dirty_ = false;
  AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
#else
  self->dirty_ = false;
#endif
#ifdef CUDA_MODEL_ASAN
  __sanitizer_start_switch_fiber(nullptr, scheduler.stack_bottom, scheduler.stack_size);
#endif
#ifdef CUDA_MODEL_TSAN
  __tsan_switch_to_fiber(scheduler.tsan_fiber, __tsan_switch_to_fiber_no_sync);
#endif
  setcontext(&scheduler.context);
  fail("setcontext returned");
}

}  // namespace cuda_model
