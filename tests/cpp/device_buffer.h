// "Device" memory for the tests under the CUDA execution model: a heap allocation of exactly n
// elements, so that AddressSanitizer reports a kernel's access one past the end.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t n, T fill = T()) : size_(n), data_(new T[n]) {
    for (size_t i = 0; i < n; ++i) data_[i] = fill;
  }
  explicit DeviceBuffer(const std::vector<T>& values) : DeviceBuffer(values.size()) {
    for (size_t i = 0; i < size_; ++i) data_[i] = values[i];
  }
  T* data() { return data_.get(); }
  const T* data() const { return data_.get(); }
  size_t size() const { return size_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  std::vector<T> to_vector() const { return std::vector<T>(data_.get(), data_.get() + size_); }

 private:
  size_t size_;
  std::unique_ptr<T[]> data_;
};
