// tfm/backend/host/scratch.hpp — cache-line aligned scratch memory for host kernels (packed
// GEMM panels). Each calling thread keeps one growing buffer, so repeated calls do not pay for
// allocation and first-touch page faults; it is freed when the thread ends.
#pragma once
#include <cstddef>
#include <new>

#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"

namespace tfm::host {

inline constexpr std::size_t cache_line_bytes = 64;

// Rounds `bytes` up to a whole number of cache lines.
constexpr std::size_t round_up_to_cache_line(std::size_t bytes) {
  return (bytes + cache_line_bytes - 1) / cache_line_bytes * cache_line_bytes;
}

class aligned_scratch {
 public:
  aligned_scratch() = default;
  aligned_scratch(const aligned_scratch&) = delete;
  aligned_scratch& operator=(const aligned_scratch&) = delete;
  ~aligned_scratch() { release(); }

  // At least `bytes` bytes aligned to `cache_line_bytes`; the contents are unspecified and the
  // pointer stays valid until the next call to reserve() or release().
  std::byte* reserve(std::size_t bytes) {
    if (bytes > size_) {
      release();
      const std::size_t n = round_up_to_cache_line(bytes);
      try {
        data_ = static_cast<std::byte*>(::operator new (n, std::align_val_t{cache_line_bytes}));
      } catch (const std::bad_alloc&) {
        throw out_of_memory(tfm::detail::concat("host scratch: cannot allocate ", n, " bytes"));
      }
      size_ = n;
    }
    return data_;
  }

  void release() {
    if (data_) ::operator delete (data_, std::align_val_t{cache_line_bytes});
    data_ = nullptr;
    size_ = 0;
  }

  std::size_t size() const { return size_; }

 private:
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

// The calling thread's scratch buffer. A kernel that uses it must not call another kernel that
// uses it while it still needs the memory.
inline aligned_scratch& thread_scratch() {
  thread_local aligned_scratch scratch;
  return scratch;
}

}  // namespace tfm::host
