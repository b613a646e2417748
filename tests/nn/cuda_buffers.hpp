// Host <-> device copies of whole test arrays (cuda::device_buffer), for the CUDA tests of nn/.
#pragma once

#include <cstddef>
#include <vector>

#include "tfm/backend/cuda/runtime.hpp"

namespace tfm::test {

template <class T>
cuda::device_buffer<T> to_device(const std::vector<T>& h) {
  cuda::device_buffer<T> d(h.size());
  cuda::copy(d.data(), h.data(), h.size() * sizeof(T), cuda::copy_kind::host_to_device);
  return d;
}
// Elements [off, off + n) of d; all of them by default.
template <class T>
std::vector<T> to_host(const cuda::device_buffer<T>& d, std::size_t n, std::size_t off = 0) {
  std::vector<T> h(n);
  cuda::copy(h.data(), d.data() + off, n * sizeof(T), cuda::copy_kind::device_to_host);
  return h;
}
template <class T>
std::vector<T> to_host(const cuda::device_buffer<T>& d) {
  return to_host(d, d.size());
}

}  // namespace tfm::test
