// tfm/core/memory.hpp — memory spaces as types, and `buffer<T, Space>`, the owning, aligned,
// RAII allocation that tensors view. Copies between spaces and fills live in tensor.hpp.
//
// The `cuda` space is declared everywhere (so templates can name it) but allocating in it
// needs TFM_HAS_CUDA (nvcc, or a target set up with tfm_enable_cuda()).
#pragma once
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <new>
#include <type_traits>
#include <utility>

#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"

#if TFM_HAS_CUDA
#include "tfm/backend/cuda/runtime.hpp"
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace tfm {

namespace space {
// Ordinary host memory, 64-byte aligned (one cache line, one AVX-512 register).
struct host {
  static constexpr const char* name = "host";
  static constexpr std::size_t alignment = 64;
};
// CUDA device global memory (cudaMalloc: 256-byte aligned).
struct cuda {
  static constexpr const char* name = "cuda";
  static constexpr std::size_t alignment = 256;
};
}  // namespace space

template <class S>
concept memory_space = std::same_as<S, space::host> || std::same_as<S, space::cuda>;

namespace detail {

inline std::size_t checked_bytes(std::size_t count, std::size_t elem, const char* what) {
  if (elem != 0 && count > std::numeric_limits<std::size_t>::max() / elem)
    throw out_of_memory(detail::concat(what, ": ", count, " elements of ", elem,
                                       " bytes overflow the address space"));
  return count * elem;
}

template <memory_space S>
struct allocator;

// Host allocations of at least huge_bytes are aligned to 2 MiB and, on Linux, offered to
// transparent huge pages (madvise; most distributions enable THP only where asked). Parameters,
// gradients, optimizer state and activations are then mapped with 512× fewer TLB entries: a GEMM
// packing rows of a 2048×50257 logit gradient touches a new 4 KiB page with every row otherwise.
template <>
struct allocator<space::host> {
  static constexpr std::size_t huge_bytes = std::size_t{4} << 20;
  static constexpr std::size_t huge_alignment = std::size_t{2} << 20;
  static constexpr std::size_t alignment_for(std::size_t bytes) {
    return bytes >= huge_bytes ? huge_alignment : space::host::alignment;
  }
  static void* allocate(std::size_t bytes) {
    if (bytes == 0) return nullptr;
    void* p = ::operator new(bytes, std::align_val_t{alignment_for(bytes)}, std::nothrow);
    if (!p)
      throw out_of_memory(detail::concat("host allocation of ", bytes, " bytes (",
                                         static_cast<double>(bytes) / (1 << 20), " MiB) failed"));
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= huge_bytes) (void)::madvise(p, bytes, MADV_HUGEPAGE);  // advice: failure is harmless
#endif
    return p;
  }
  // bytes: what allocate was asked for (it picks the alignment)
  static void deallocate(void* p, std::size_t bytes) noexcept {
    if (p) ::operator delete(p, std::align_val_t{alignment_for(bytes)});
  }
};

#if TFM_HAS_CUDA
template <>
struct allocator<space::cuda> {
  static void* allocate(std::size_t bytes) { return bytes ? cuda::allocate(bytes) : nullptr; }
  static void deallocate(void* p, std::size_t) noexcept {
    if (p) cuda::deallocate(p);
  }
};
#endif

}  // namespace detail

// An owning, uninitialised array of `count` T in memory space S. Move-only.
template <class T, memory_space S = space::host>
class buffer {
  static_assert(std::is_trivially_copyable_v<T>, "buffer<T>: T must be trivially copyable (it is copied with memcpy)");
  static_assert(alignof(T) <= S::alignment, "buffer<T>: T is over-aligned for this memory space");

 public:
  using value_type = T;
  using space_type = S;

  buffer() noexcept = default;
  explicit buffer(std::size_t count)
      : data_(static_cast<T*>(detail::allocator<S>::allocate(detail::checked_bytes(count, sizeof(T), "buffer")))),
        size_(count) {}
  buffer(buffer&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  buffer& operator=(buffer&& o) noexcept {
    if (this != &o) {
      reset();
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  buffer(const buffer&) = delete;
  buffer& operator=(const buffer&) = delete;
  ~buffer() { reset(); }

  void reset() noexcept {
    detail::allocator<S>::deallocate(data_, size_ * sizeof(T));
    data_ = nullptr;
    size_ = 0;
  }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t bytes() const noexcept { return size_ * sizeof(T); }
  bool empty() const noexcept { return size_ == 0; }

  // Element access is only meaningful for host memory.
  T& operator[](std::size_t i) noexcept
    requires std::same_as<S, space::host>
  {
    return data_[i];
  }
  const T& operator[](std::size_t i) const noexcept
    requires std::same_as<S, space::host>
  {
    return data_[i];
  }
  T* begin() noexcept
    requires std::same_as<S, space::host>
  {
    return data_;
  }
  T* end() noexcept
    requires std::same_as<S, space::host>
  {
    return data_ + size_;
  }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace tfm
