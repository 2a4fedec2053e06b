// Runs the registered C++ test cases (check.h):
//   tests            every case
//   tests NAME...    the named cases (CTest runs one case per test this way)
//   tests --list     the names, one a line
// Cases named sanitizer.* are meant to be stopped by a sanitizer: they run only by name.
// Exit status nonzero when a check failed or a name is unknown.
#include <cstring>
#include <exception>

#include "check.h"

static bool runs_by_default(const TestCase& c) { return c.name.rfind("sanitizer.", 0) != 0; }

int main(int argc, char** argv) {
  const std::vector<TestCase>& cases = test_registry();
  if (argc == 2 && std::strcmp(argv[1], "--list") == 0) {
    for (const TestCase& c : cases) {
      if (runs_by_default(c)) std::printf("%s\n", c.name.c_str());
    }
    return 0;
  }
  std::vector<const TestCase*> selected;
  for (int a = 1; a < argc; ++a) {
    const TestCase* found = nullptr;
    for (const TestCase& c : cases) found = c.name == argv[a] ? &c : found;
    if (!found) {
      std::printf("unknown test case %s (--list shows them)\n", argv[a]);
      return 2;
    }
    selected.push_back(found);
  }
  if (argc == 1) {
    for (const TestCase& c : cases) {
      if (runs_by_default(c)) selected.push_back(&c);
    }
  }
  int failed_cases = 0;
  for (const TestCase* c : selected) {
    const int before = g_failed;
    std::printf("[ RUN  ] %s\n", c->name.c_str());
    std::fflush(stdout);
    try {
      c->fn();
    } catch (const std::exception& e) {
      ++g_failed;
      std::printf("  FAIL: uncaught exception: %s\n", e.what());
    }
    const bool ok = g_failed == before;
    failed_cases += !ok;
    std::printf("[ %s ] %s\n", ok ? " OK " : "FAIL", c->name.c_str());
    std::fflush(stdout);
  }
  std::printf("%d checks passed, %d failed; %d of %zu test cases failed\n", g_passed, g_failed,
              failed_cases, selected.size());
  return g_failed == 0 ? 0 : 1;
}
