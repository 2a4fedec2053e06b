// The tiny test framework of the C++ tests (no dependency): CHECK counts passes and failures
// and prints each failure; TEST_CASE registers a named case that main.cpp runs, lists
// (--list, which CTest uses to add one test per case) or runs alone (by name).
#pragma once

#include <cstdarg>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

inline int g_passed = 0;
inline int g_failed = 0;

inline void check_impl(bool ok, const char* expr, const char* file, int line, const char* fmt, ...) {
  if (ok) {
    ++g_passed;
    return;
  }
  ++g_failed;
  std::printf("  FAIL %s:%d: %s", file, line, expr);
  if (fmt && fmt[0]) {
    std::printf("  [");
    va_list args;
    va_start(args, fmt);
    std::vprintf(fmt, args);
    va_end(args);
    std::printf("]");
  }
  std::printf("\n");
}

// CHECK(cond) or CHECK(cond, "printf format", args...)
#define CHECK(cond, ...) check_impl(static_cast<bool>(cond), #cond, __FILE__, __LINE__, "" __VA_ARGS__)

struct TestCase {
  std::string name;
  void (*fn)();
};

inline std::vector<TestCase>& test_registry() {
  static std::vector<TestCase> cases;
  return cases;
}

struct RegisterTest {
  RegisterTest(const char* name, void (*fn)()) { test_registry().push_back({name, fn}); }
};

// TEST_CASE(group, name) { ... }: a case named "group.name".
#define TEST_CASE(group, name)                                                        \
  static void test_##group##_##name();                                                \
  static const RegisterTest register_##group##_##name(#group "." #name, test_##group##_##name); \
  static void test_##group##_##name()
