// tfm/backend/host/threading.hpp — the thread team tfm's host kernels run on: how many threads
// (OpenMP's default, so OMP_NUM_THREADS is honoured, unless set_num_threads says otherwise), a
// fork-join `parallel` region and a team barrier. Without OpenMP everything runs on the caller.
#pragma once
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <thread>

#include "tfm/backend/host/cpu.hpp"
#include "tfm/core/config.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tfm::host {

namespace detail {
// 0: follow OpenMP's default; > 0: the count set_num_threads asked for.
inline std::atomic<int> num_threads_override{0};
}  // namespace detail

// True when tfm's host kernels were compiled with OpenMP (and so can use more than one thread).
constexpr bool has_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

// Threads a host kernel called now may use: the count given to set_num_threads, otherwise
// omp_get_max_threads() (OMP_NUM_THREADS, else the number of cores); 1 without OpenMP.
inline int num_threads() {
#ifdef _OPENMP
  const int n = detail::num_threads_override.load(std::memory_order_relaxed);
  return n > 0 ? n : std::max(1, omp_get_max_threads());
#else
  return 1;
#endif
}

// Sets the thread count of tfm's host kernels for the whole process; n <= 0 goes back to
// OpenMP's default. Does not change OpenMP's own setting for the rest of the program.
inline void set_num_threads(int n) {
  detail::num_threads_override.store(n > 0 ? n : 0, std::memory_order_relaxed);
}

// Sets the thread count for the lifetime of the object, then puts the previous one back.
class scoped_num_threads {
 public:
  explicit scoped_num_threads(int n)
      : previous_(detail::num_threads_override.load(std::memory_order_relaxed)) {
    set_num_threads(n);
  }
  ~scoped_num_threads() { set_num_threads(previous_); }
  scoped_num_threads(const scoped_num_threads&) = delete;
  scoped_num_threads& operator=(const scoped_num_threads&) = delete;

 private:
  int previous_;
};

// Runs f(thread_index, team_size) on every thread of a team of at most n threads. The team can
// be smaller than asked (nested inside another parallel region it is 1): use team_size, never n.
template <class F>
void parallel(int n, F&& f) {
#ifdef _OPENMP
  if (n > 1) {
#pragma omp parallel num_threads(n)
    f(omp_get_thread_num(), omp_get_num_threads());
    return;
  }
#endif
  (void)n;
  f(0, 1);
}

// Waits until every thread of the current `parallel` team reaches it. Every thread of the team
// must call it the same number of times.
inline void barrier() {
#ifdef _OPENMP
#pragma omp barrier
#endif
}

// A hint to the core that this thread is spinning.
inline void cpu_relax() {
#if TFM_HOST_X86_SIMD
  __builtin_ia32_pause();
#endif
}

// Waits until done() holds: spinning at first (the common wait is microseconds), then
// yielding, so that a thread that was descheduled while others wait on it gets a core back.
template <class Done>
void spin_wait(Done&& done) {
  for (int i = 0; !done(); ++i) {
    if (i < 4096) {
      cpu_relax();
    } else {
      std::this_thread::yield();
    }
  }
}

// Work items dealt out as one contiguous range per thread, for any number of independent
// groups of items. A thread takes items from the front of its own range, then steals from the
// back of the others'. On idle cores this is a static schedule (no imbalance, neighbouring
// items on one thread); when another process slows a thread down, the others finish its share.
class work_ranges {
 public:
  // `groups` groups of n items (n < 2^32) each, dealt to `threads` ranges per group. Not
  // thread-safe: call while no thread takes items.
  void reset(int threads, std::int64_t n, std::int64_t groups = 1) {
    const std::size_t count = std::size_t(threads) * std::size_t(groups);
    if (count > capacity_) {
      ranges_ = std::make_unique<range[]>(count);
      capacity_ = count;
    }
    threads_ = threads;
    for (std::int64_t g = 0; g < groups; ++g) {
      for (int t = 0; t < threads; ++t) {
        const std::uint64_t begin = std::uint64_t(n * t / threads);
        const std::uint64_t end = std::uint64_t(n * (t + 1) / threads);
        ranges_[std::size_t(g * threads + t)].v.store(begin << 32 | end, std::memory_order_relaxed);
      }
    }
  }

  // The next item of `group` for thread `tid` in item; false when the group is exhausted.
  bool next(int tid, std::int64_t& item, std::int64_t group = 0) {
    range* r = &ranges_[std::size_t(group * threads_)];
    if (take(r[tid].v, /*front=*/true, item)) return true;
    for (int o = 1; o < threads_; ++o) {
      if (take(r[(tid + o) % threads_].v, /*front=*/false, item)) return true;
    }
    return false;
  }

 private:
  // (begin << 32) | end, so owner and thieves agree on both ends with one compare-exchange.
  struct alignas(64) range {
    std::atomic<std::uint64_t> v{0};
  };

  static bool take(std::atomic<std::uint64_t>& r, bool front, std::int64_t& item) {
    std::uint64_t cur = r.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint64_t begin = cur >> 32, end = cur & 0xffffffffu;
      if (begin >= end) return false;
      const std::uint64_t next = front ? (begin + 1) << 32 | end : begin << 32 | (end - 1);
      if (r.compare_exchange_weak(cur, next, std::memory_order_relaxed)) {
        item = std::int64_t(front ? begin : end - 1);
        return true;
      }
    }
  }

  std::unique_ptr<range[]> ranges_;
  std::size_t capacity_ = 0;
  int threads_ = 0;
};

}  // namespace tfm::host
