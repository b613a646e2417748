// tfm/ops/detail/gemm_host.hpp — host GEMM, C = alpha·A·B + beta·C, over strided operands:
// the policy tags the public op takes (gemm_ref, gemm_blocked), the plain-loop reference and the
// cache-blocked packed driver that runs one of the micro-kernels in gemm_host_<isa>.hpp.
//
// Contract of every variant (A: M×K, B: K×N, C: M×N; fp32 or bf16 inputs, fp32 C):
//   * any row and column strides (transposes are folded into them by the caller); C must not
//     overlap A or B;
//   * beta == 0 never reads C (it may hold NaN); alpha == 0 or K == 0 give C = beta·C without
//     reading A or B (BLAS semantics); M == 0 or N == 0 do nothing;
//   * threads: tfm::host::num_threads() (OMP_NUM_THREADS unless host::set_num_threads says so).
#pragma once
#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "tfm/backend/host/cpu.hpp"
#include "tfm/backend/host/scratch.hpp"
#include "tfm/backend/host/threading.hpp"
#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"
#include "tfm/ops/detail/gemm_host_avx2.hpp"
#include "tfm/ops/detail/gemm_host_avx512.hpp"
#include "tfm/ops/detail/gemm_host_pack.hpp"
#include "tfm/ops/detail/gemm_host_scalar.hpp"
#include "tfm/ops/detail/gemm_host_tuning.hpp"
#include "tfm/ops/detail/matrix.hpp"

namespace tfm {

// Plain triple loop accumulating in double, then one rounding to fp32: the reference every
// other host variant is tested against. Single-threaded, O(M·N·K) with no blocking.
struct gemm_ref {};

// Cache-blocked, packed GEMM with a register-blocked micro-kernel, threaded over OpenMP.
// Isa picks the micro-kernel (default: the best one this translation unit is compiled for);
// Blocks overrides the tuned cache blocks (zero fields keep the tuned value). Both exist so
// tests can run every kernel the CPU supports and exercise block edges on small matrices;
// a kernel the CPU cannot run must not be called (check host::cpu_supports).
template <host::isa Isa = host::native_isa, gemm_block_sizes Blocks = gemm_block_sizes{}>
struct basic_gemm_blocked {
  static constexpr host::isa isa = Isa;
  static constexpr gemm_block_sizes blocks = Blocks;
};
using gemm_blocked = basic_gemm_blocked<>;

namespace detail {
template <class P>
inline constexpr bool is_basic_gemm_blocked = false;
template <host::isa I, gemm_block_sizes B>
inline constexpr bool is_basic_gemm_blocked<basic_gemm_blocked<I, B>> = true;
}  // namespace detail

// The closed set of host GEMM variants.
template <class P>
concept host_gemm_policy = std::same_as<P, gemm_ref> || detail::is_basic_gemm_blocked<P>;

namespace detail {

template <class T>
strided_matrix<const T> const_view(const strided_matrix<T>& m) {
  return {m.data, m.rows, m.cols, m.row_stride, m.col_stride};
}

// C = beta·C, not reading C when beta == 0.
inline void gemm_scale_c(float beta, strided_matrix<float> c) {
  if (beta == 1.0f) return;
  for (std::int64_t i = 0; i < c.rows; ++i) {
    for (std::int64_t j = 0; j < c.cols; ++j) {
      float& x = c(i, j);
      x = beta == 0.0f ? 0.0f : beta * x;
    }
  }
}

template <host_gemm_input T>
void gemm_ref_run(float alpha, strided_matrix<const T> a, strided_matrix<const T> b, float beta,
                  strided_matrix<float> c) {
  for (std::int64_t i = 0; i < c.rows; ++i) {
    for (std::int64_t j = 0; j < c.cols; ++j) {
      double sum = 0.0;
      for (std::int64_t k = 0; k < a.cols; ++k) {
        sum += double{gemm_to_float(a(i, k))} * double{gemm_to_float(b(k, j))};
      }
      double r = double{alpha} * sum;
      if (beta != 0.0f) r += double{beta} * double{c(i, j)};
      c(i, j) = static_cast<float>(r);
    }
  }
}

// ---------------------------------------------------------------------------- blocked driver

// Width of a work item's chunk of B, in NR-panels, unless more items are needed to share the
// work: the chunk's packed B (kc × 8·NR, 128 KiB for the AVX2 kernel) is read from L2 by every
// row block, and its source is read from memory just before.
inline constexpr std::int64_t gemm_chunk_panels = 8;

// Below this many multiply-adds per thread, another thread costs more (fork/join, ~5 µs) than
// it saves.
inline constexpr double gemm_min_fma_per_thread = 1 << 18;

// Splits `count` units into `parts` ranges whose sizes differ by at most one; range i is
// [split_point(i), split_point(i + 1)).
constexpr std::int64_t split_point(std::int64_t count, std::int64_t parts, std::int64_t i) {
  return count * i / parts;
}

// Prefetches a block of an operand a few cache lines at a time, so that reading it from memory
// overlaps with computing on another block. Operands with neither stride 1 are not prefetched.
template <class T>
class gemm_block_prefetcher {
 public:
  gemm_block_prefetcher() = default;
  explicit gemm_block_prefetcher(strided_matrix<const T> m) {
    if (m.rows <= 0 || m.cols <= 0) return;
    const bool rows_contiguous = m.col_stride == 1;
    if (!rows_contiguous && m.row_stride != 1) return;
    base_ = reinterpret_cast<const char*>(m.data);
    runs_ = rows_contiguous ? m.rows : m.cols;
    run_stride_ = std::int64_t(sizeof(T)) * (rows_contiguous ? m.row_stride : m.col_stride);
    lines_per_run_ = (std::int64_t(sizeof(T)) * (rows_contiguous ? m.cols : m.rows) + 63) / 64 + 1;
    total_ = runs_ * lines_per_run_;
  }
  std::int64_t lines() const { return total_; }
  // Issues the next `count` prefetches (into L2: the block is packed within the next KC block).
  void issue(std::int64_t count) {
    for (; count > 0 && next_ < total_; --count, ++next_) {
      const char* p = base_ + next_ / lines_per_run_ * run_stride_ + next_ % lines_per_run_ * 64;
#if defined(__GNUC__) || defined(__clang__)
      __builtin_prefetch(p, 0, 2);
#else
      (void)p;
#endif
    }
  }

 private:
  const char* base_ = nullptr;
  std::int64_t runs_ = 0, run_stride_ = 0, lines_per_run_ = 0, total_ = 0, next_ = 0;
};

// The pack state of one slot of packed panels, tagged with a generation (one per super-block
// and KC block, increasing) so it never needs resetting: 2g + 1 while being packed for
// generation g, 2g + 2 once ready. The first task that needs generation g waits until the
// slot's previous contents are no longer read (`drained`), claims it and packs; the others wait
// until it is ready.
template <class Drained, class Pack>
void gemm_ensure_packed(std::atomic<std::int64_t>& state, std::int64_t generation,
                        Drained&& drained, Pack&& pack) {
  const std::int64_t ready = 2 * generation + 2, packing = 2 * generation + 1;
  std::int64_t s = state.load(std::memory_order_acquire);
  if (s == ready) return;
  if (s < packing) {
    host::spin_wait(drained);
    if (state.compare_exchange_strong(s, packing, std::memory_order_acq_rel)) {
      pack();
      state.store(ready, std::memory_order_release);
      return;
    }
  }
  host::spin_wait([&] { return state.load(std::memory_order_acquire) == ready; });
}

// The blocked GEMM: BLIS's blocking (KC-deep rank updates of an MR×NR register tile, a KC×NR
// sliver of B in L1, an MC×KC block of A in L2, a KC×NC panel of packed B in L3) with a
// schedule that needs no barriers between KC blocks:
//   * C is cut into items, (MC-row block) × (chunk of NR-panels) tiles; a task is one item's
//     rank-kc update for one KC block. Threads run KC block after KC block; within one, the
//     items are dealt out statically (chunk-major: a thread's items share its B columns) and
//     stolen from the back of other threads' ranges once a thread runs dry, so a thread that
//     another process slows down does not hold up the rest;
//   * a task waits for its item's previous KC block (a progress counter per item), so each
//     element of C is summed in K order by one thread at a time: results do not depend on the
//     thread count;
//   * the panels of each (row block, KC block) and (column chunk, KC block) are packed by the
//     first task that needs them, into one of `slots` rotating buffers (two with threads, so
//     a thread can pack KC block kb while another still computes kb - 1); a slot is repacked
//     once every item reading it has moved past its KC block. Reusing the same memory matters:
//     packing every KC block into fresh memory was 5-10% slower on one thread;
//   * packed A and B are bounded (gemm_host_pack_budget_bytes, mp rows, nc columns): a bigger
//     product runs as super-blocks of C, with a barrier between them.
// One thread has one chunk: for each KC block, for each row block, pack (A block, and B on the
// first row block), then for each B panel, for each A panel, the micro-kernel: BLIS's order.
template <class Kernel, host_gemm_input T>
void gemm_blocked_run(gemm_block_sizes blocks, float alpha, strided_matrix<const T> a,
                      strided_matrix<const T> b, float beta, strided_matrix<float> c) {
  using packed = typename Kernel::packed_type;
  using counter = std::atomic<std::int64_t>;
  constexpr int mr = Kernel::mr;
  constexpr int nr = Kernel::nr;
  constexpr int kg = Kernel::k_group;
  constexpr gemm_block_sizes tuned = Kernel::blocks;
  static_assert(tuned.mc % mr == 0 && tuned.nc % nr == 0 && tuned.kc % kg == 0 &&
                tuned.mp % tuned.mc == 0);
  const std::int64_t m = c.rows, n = c.cols, k = a.cols;
  const auto round_up = [](std::int64_t x, std::int64_t to) { return (x + to - 1) / to * to; };
  const auto ceil_div = [](std::int64_t x, std::int64_t y) { return (x + y - 1) / y; };
  const auto pick = [](std::int64_t asked, std::int64_t tuned_value) {
    return asked > 0 ? asked : tuned_value;
  };

  const double fma = double(m) * double(n) * double(k);
  const int threads = static_cast<int>(std::clamp<double>(
      std::min(fma / gemm_min_fma_per_thread, double(ceil_div(m, mr) * ceil_div(n, nr))), 1.0,
      double(host::num_threads())));
  const std::int64_t slots = threads > 1 ? 2 : 1;

  // K in KC blocks of equal depth (so the last is not a sliver).
  const std::int64_t kc_max = round_up(ceil_div(k, ceil_div(k, pick(blocks.kc, tuned.kc))), kg);
  const std::int64_t k_blocks = ceil_div(k, kc_max);
  // Super-blocks of C: at most mp rows and nc columns, packed slots within budget; equal parts.
  const std::int64_t budget =
      gemm_host_pack_budget_bytes / std::int64_t(sizeof(packed)) / (slots * kc_max);
  const std::int64_t mp_max = std::max<std::int64_t>(
      mr, std::min(round_up(pick(blocks.mp, tuned.mp), mr), budget / mr * mr));
  const std::int64_t np_max = std::max<std::int64_t>(
      nr, std::min(round_up(pick(blocks.nc, tuned.nc), nr), budget / nr * nr));
  const std::int64_t m_supers = ceil_div(m, mp_max);
  const std::int64_t n_supers = ceil_div(n, np_max);
  const std::int64_t ms_max = round_up(ceil_div(m, m_supers), mr);
  const std::int64_t ns_max = round_up(ceil_div(n, n_supers), nr);
  const std::int64_t supers = m_supers * n_supers;

  // Items of a super-block: MC-row blocks of equal size × chunks of panels, about 8 per thread
  // with chunks at least 4 panels wide; one thread: one chunk. Item index: chunk-major, with
  // the row blocks rotated per chunk so that threads starting on different chunks start on
  // different A blocks.
  const std::int64_t m_blocks = ceil_div(ms_max, round_up(pick(blocks.mc, tuned.mc), mr));
  const std::int64_t ns_panels = ns_max / nr;
  const std::int64_t n_chunks = std::min(
      ns_panels, std::max(ceil_div(ns_panels, gemm_chunk_panels),
                          threads == 1 ? 1 : ceil_div(8 * threads, m_blocks)));
  const std::int64_t n_items = m_blocks * n_chunks;
  const auto item_of = [m_blocks](std::int64_t ib, std::int64_t ch) {
    return ch * m_blocks + (ib - ch % m_blocks + m_blocks) % m_blocks;
  };

  // Scratch: packed A slots (MR-panels of kcp = kc rounded up to k_group), packed B slots
  // (NR-panels), pack states (A blocks, then B chunks, per slot) and item progress (KC blocks
  // done, per super-block).
  const std::int64_t a_slot = ms_max * kc_max, b_slot = ns_max * kc_max;
  const std::size_t a_bytes =
      host::round_up_to_cache_line(std::size_t(a_slot * slots) * sizeof(packed));
  const std::size_t b_bytes =
      host::round_up_to_cache_line(std::size_t(b_slot * slots) * sizeof(packed));
  const std::size_t counters = std::size_t((m_blocks + n_chunks) * slots + supers * n_items);
  std::byte* scratch = host::thread_scratch().reserve(a_bytes + b_bytes + counters * sizeof(counter));
  packed* const a_pack = reinterpret_cast<packed*>(scratch);
  packed* const b_pack = reinterpret_cast<packed*>(scratch + a_bytes);
  counter* const a_state = reinterpret_cast<counter*>(scratch + a_bytes + b_bytes);
  counter* const b_state = a_state + m_blocks * slots;
  counter* const progress = b_state + n_chunks * slots;
  for (std::size_t i = 0; i < counters; ++i) new (a_state + i) counter(0);

  host::work_ranges tasks;
  tasks.reset(threads, n_items, supers * k_blocks);

  host::parallel(threads, [&](int tid, int team) {
    for (std::int64_t s = 0; s < supers; ++s) {
      const std::int64_t is = s % m_supers, js = s / m_supers;
      const std::int64_t m0 = is * ms_max, ms = std::min(ms_max, m - m0);
      const std::int64_t n0 = js * ns_max, ns = std::min(ns_max, n - n0);
      const std::int64_t m_panels = ceil_div(ms, mr), n_panels = ceil_div(ns, nr);
      counter* const item_progress = progress + s * n_items;

      for (std::int64_t kb = 0; kb < k_blocks; ++kb) {
        const std::int64_t pc = kb * kc_max, kc = std::min(kc_max, k - pc);
        const std::int64_t kcp = round_up(kc, kg);
        const std::int64_t slot = kb % slots;
        const std::int64_t generation = s * k_blocks + kb;
        packed* const a_kb = a_pack + slot * a_slot;
        packed* const b_kb = b_pack + slot * b_slot;
        // A slot is free once every item reading it is past KC block kb - slots.
        const auto done_with_previous = [&](std::int64_t i) {
          return item_progress[i].load(std::memory_order_acquire) >= kb - slots + 1;
        };
        const float beta_k = kb == 0 ? beta : 1.0f;
        std::int64_t item;
        while (tasks.next(tid, item, s * k_blocks + kb)) {
          const std::int64_t ch = item / m_blocks, ib = (item % m_blocks + ch) % m_blocks;
          const std::int64_t p_begin = split_point(m_panels, m_blocks, ib);
          const std::int64_t p_end = split_point(m_panels, m_blocks, ib + 1);
          const std::int64_t q_begin = split_point(n_panels, n_chunks, ch);
          const std::int64_t q_end = split_point(n_panels, n_chunks, ch + 1);
          if (kb > 0) {
            host::spin_wait([&] { return item_progress[item].load(std::memory_order_acquire) == kb; });
          }
          if (p_begin < p_end && q_begin < q_end) {
            gemm_ensure_packed(
                b_state[ch * slots + slot], generation,
                [&] {
                  for (std::int64_t i = 0; i < m_blocks; ++i)
                    if (!done_with_previous(ch * m_blocks + i)) return false;
                  return true;
                },
                [&] {
                  const std::int64_t col = q_begin * nr;
                  Kernel::pack_b(sub_matrix(b, pc, n0 + col, kc, std::min(ns, q_end * nr) - col),
                                 b_kb + q_begin * nr * kcp, nr * kcp);
                });
            gemm_ensure_packed(
                a_state[ib * slots + slot], generation,
                [&] {
                  for (std::int64_t j = 0; j < n_chunks; ++j)
                    if (!done_with_previous(item_of(ib, j))) return false;
                  return true;
                },
                [&] {
                  const std::int64_t row = p_begin * mr;
                  Kernel::pack_a(sub_matrix(a, m0 + row, pc, std::min(ms, p_end * mr) - row, kc),
                                 a_kb + p_begin * mr * kcp, mr * kcp);
                });
            // While computing, fetch this row block's share of the chunk's B for the next KC
            // block: B is read once per product, usually from memory (5-6 GB/s here), and
            // packing it without this cost ~10% of the time.
            gemm_block_prefetcher<T> next_b;
            if (kb + 1 < k_blocks) {
              const std::int64_t pc1 = pc + kc_max, kc1 = std::min(kc_max, k - pc1);
              const std::int64_t r0 = split_point(kc1, m_blocks, ib);
              const std::int64_t r1 = split_point(kc1, m_blocks, ib + 1);
              const std::int64_t col = q_begin * nr;
              next_b = gemm_block_prefetcher<T>(
                  sub_matrix(b, pc1 + r0, n0 + col, r1 - r0, std::min(ns, q_end * nr) - col));
            }
            const std::int64_t calls = (q_end - q_begin) * (p_end - p_begin);
            const std::int64_t per_call = (next_b.lines() + calls - 1) / calls;
            for (std::int64_t q = q_begin; q < q_end; ++q) {
              const packed* bq = b_kb + q * nr * kcp;
              const int cols = static_cast<int>(std::min<std::int64_t>(nr, ns - q * nr));
              for (std::int64_t p = p_begin; p < p_end; ++p) {
                const int rows = static_cast<int>(std::min<std::int64_t>(mr, ms - p * mr));
                const gemm_tile_out out{&c(m0 + p * mr, n0 + q * nr), c.row_stride,
                                        c.col_stride, rows, cols, alpha, beta_k};
                Kernel::run(kc, a_kb + p * mr * kcp, bq, out);
                next_b.issue(per_call);
              }
            }
          }
          item_progress[item].store(kb + 1, std::memory_order_release);
        }
      }
      // The next super-block packs over these slots: wait until every thread is done.
      if (team > 1 && s + 1 < supers) host::barrier();
    }
  });
}

template <host::isa Isa, gemm_block_sizes Blocks, host_gemm_input T>
void gemm_blocked_dispatch(float alpha, strided_matrix<const T> a, strided_matrix<const T> b,
                           float beta, strided_matrix<float> c) {
  static_assert(host::isa_compiled(Isa), "this host GEMM kernel is not compiled for this target");
  if constexpr (host::isa_compiled(Isa)) {
    using kernel = gemm_host_kernel<Isa, T>;
    // The kernels store rows of C with vector stores: a column-major C is the row-major C^T of
    // C^T = B^T·A^T.
    if (c.col_stride != 1 && c.row_stride == 1) {
      gemm_blocked_run<kernel>(Blocks, alpha, b.transposed(), a.transposed(), beta, c.transposed());
    } else {
      gemm_blocked_run<kernel>(Blocks, alpha, a, b, beta, c);
    }
  }
}

// C = alpha·A·B + beta·C with the variant `Policy`. Throws shape_error when the extents do not
// match (A: M×K, B: K×N, C: M×N) or are negative.
template <host_gemm_policy Policy, host_gemm_input T>
void gemm_host(Policy, float alpha, strided_matrix<const T> a, strided_matrix<const T> b,
               float beta, strided_matrix<float> c) {
  expects<shape_error>(a.rows >= 0 && a.cols >= 0 && b.rows >= 0 && b.cols >= 0 && c.rows >= 0 &&
                           c.cols >= 0 && a.rows == c.rows && a.cols == b.rows && b.cols == c.cols,
                       "gemm_host: A is ", a.rows, "x", a.cols, ", B is ", b.rows, "x", b.cols,
                       ", C is ", c.rows, "x", c.cols, "; expected A M×K, B K×N, C M×N");
  if (c.rows == 0 || c.cols == 0) return;
  if (alpha == 0.0f || a.cols == 0) {
    gemm_scale_c(beta, c);
    return;
  }
  if constexpr (std::same_as<Policy, gemm_ref>) {
    gemm_ref_run(alpha, a, b, beta, c);
  } else {
    gemm_blocked_dispatch<Policy::isa, Policy::blocks>(alpha, a, b, beta, c);
  }
}

// Convenience overload for non-const A and B views.
template <host_gemm_policy Policy, host_gemm_input T>
void gemm_host(Policy policy, float alpha, strided_matrix<T> a, strided_matrix<T> b, float beta,
               strided_matrix<float> c) {
  gemm_host(policy, alpha, const_view(a), const_view(b), beta, c);
}

}  // namespace detail
}  // namespace tfm
