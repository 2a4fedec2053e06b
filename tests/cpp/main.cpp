// Runs the csrc/core C++ tests; exit code nonzero when any check failed.
#include "harness.h"

namespace {
struct TestCase {
  const char* name;
  void (*fn)();
};

int run(const TestCase* tests, size_t count) {
  int failed_tests = 0;
  for (size_t t = 0; t < count; ++t) {
    const int before = g_failed;
    std::printf("[ RUN  ] %s\n", tests[t].name);
    tests[t].fn();
    const bool ok = g_failed == before;
    failed_tests += !ok;
    std::printf("[ %s ] %s\n", ok ? " OK " : "FAIL", tests[t].name);
    std::fflush(stdout);
  }
  std::printf("%d passed, %d failed (checks; %d of %zu test cases failed)\n", g_passed, g_failed,
              failed_tests, count);
  return g_failed == 0 ? 0 : 1;
}

}  // namespace

int main() {
  const TestCase tests[] = {
      {"philox_known_answers", test_philox_known_answers},
      {"row_stream_layout", test_row_stream_layout},
      {"log_positive", test_log_positive},
      {"sincos_turns", test_sincos_turns},
      {"normal4_moments", test_normal4_moments},
      {"normal4_pinned", test_normal4_pinned},
      {"uniform_conversions", test_uniform_conversions},
      {"bernoulli_block", test_bernoulli_block},
      {"bitflip_coordinate", test_bitflip_coordinate},
      {"transition_draw", test_transition_draw},
      {"gaussian_block", test_gaussian_block},
      {"online_logsumexp", test_online_logsumexp},
      {"non_finite_terms", test_non_finite_terms},
  };
  return run(tests, sizeof(tests) / sizeof(tests[0]));
}
