// Fibers for the CUDA execution model: each CUDA thread of a block runs on a fiber of its own,
// with its own stack, on the one OS thread that runs the block. A fiber runs until it yields
// (at a barrier or a warp intrinsic) or returns; the scheduler then resumes another. Switches
// are annotated for AddressSanitizer (stack bounds) and ThreadSanitizer (each fiber is a
// thread of its own, and a switch implies no synchronisation: only the model's barriers do).
#pragma once

#include <ucontext.h>

#include <cstddef>

namespace cuda_model {

class Fiber {
 public:
  Fiber() = default;
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;
  ~Fiber();

  // (Re)starts the fiber at `entry`; it runs from the next resume().
  void start(void (*entry)(), const char* name);
  // From the scheduler: runs the fiber until it yields or finishes.
  void resume();
  // From inside the running fiber: back to the scheduler (finished: never resumed again).
  static void yield();
  static void finish();
  // From the fiber's entry function, first thing: completes the switch that started it.
  static void entered();

 private:
  void allocate();

  ucontext_t context_{};
  char* mapping_ = nullptr;  // guard page + stack
  char* stack_ = nullptr;
  size_t stack_size_ = 0;
  bool dirty_ = false;       // abandoned mid-run: its stack's sanitizer state must be reset
  void* fake_stack_ = nullptr;
  void* tsan_fiber_ = nullptr;
};

}  // namespace cuda_model
