// Random inputs and a sanity check on references, shared by the CUDA kernels' tests.
#pragma once

#include <cstddef>
#include <random>
#include <vector>

// n values uniform in [low, high) from rng, as T.
template <typename T>
std::vector<T> uniform(size_t n, std::mt19937_64& rng, double low, double high) {
  std::vector<T> values(n);
  for (T& v : values) v = static_cast<T>(std::uniform_real_distribution<double>(low, high)(rng));
  return values;
}

// Whether a reference has anything to test against (a gradient of zeros would pass anything).
template <typename T>
bool any_nonzero(const std::vector<T>& values) {
  for (T v : values)
    if (v != T(0)) return true;
  return false;
}
