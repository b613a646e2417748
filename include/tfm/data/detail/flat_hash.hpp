// tfm/data/detail/flat_hash.hpp — a small open-addressing counter over 64-bit hashes, reused
// across documents so the repetition filters do not allocate per n-gram.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tfm::data::detail {

// 64-bit finaliser (the murmur3 fmix64 constants): spreads a combined hash over all bits.
inline uint64_t mix64(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// Counts occurrences of 64-bit keys. Key 0 is stored as 1 (a collision we accept).
class flat_counter {
 public:
  struct slot {
    uint64_t key = 0;
    uint32_t count = 0;
    uint32_t first = 0;  // the `pos` given when the key was first added
  };

  // Prepares for up to `n` distinct keys, forgetting the previous contents.
  void reset(std::size_t n) {
    std::size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    if (slots_.size() < cap) {  // grow; never shrink, so small documents reuse the memory
      slots_.assign(cap, slot{});
    } else {
      std::fill(slots_.begin(), slots_.begin() + static_cast<std::ptrdiff_t>(cap), slot{});
    }
    mask_ = cap - 1;
  }
  // Adds one occurrence; returns the count after adding.
  uint32_t add(uint64_t key) { return add(key, 0).count; }
  // Adds one occurrence seen at `pos`; returns the key's slot.
  const slot& add(uint64_t key, uint32_t pos) {
    if (key == 0) key = 1;
    std::size_t i = static_cast<std::size_t>(key) & mask_;
    while (true) {
      slot& e = slots_[i];
      if (e.key == key) {
        ++e.count;
        return e;
      }
      if (e.key == 0) {
        e.key = key;
        e.count = 1;
        e.first = pos;
        return e;
      }
      i = (i + 1) & mask_;
    }
  }

 private:
  std::vector<slot> slots_;
  std::size_t mask_ = 0;
};

}  // namespace tfm::data::detail
