// tfm/ops/detail/gemm_host.hpp — host GEMM, C = alpha·A·B + beta·C, over strided operands:
// the policy tags the public op takes (gemm_ref, gemm_blocked), the plain-loop reference and the
// cache-blocked packed driver that runs one of the micro-kernels in gemm_host_<isa>.hpp.
//
// Contract of every variant (A: M×K, B: K×N, C: M×N; fp32, bf16 or fp16 inputs, A and B of one
// type, fp32 accumulation and C):
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
#include <limits>
#include <memory>
#include <type_traits>
#include <utility>

#include "tfm/backend/host/cpu.hpp"
#include "tfm/backend/host/scratch.hpp"
#include "tfm/backend/host/threading.hpp"
#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"
#include "tfm/ops/detail/gemm_host_amx.hpp"
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

// Throws shape_error unless A is M×K, B K×N and C M×N (none negative).
template <class T>
void gemm_host_check(const strided_matrix<const T>& a, const strided_matrix<const T>& b,
                     const strided_matrix<float>& c) {
  expects<shape_error>(a.rows >= 0 && a.cols >= 0 && b.rows >= 0 && b.cols >= 0 && c.rows >= 0 &&
                           c.cols >= 0 && a.rows == c.rows && a.cols == b.rows && b.cols == c.cols,
                       "gemm_host: A is ", a.rows, "x", a.cols, ", B is ", b.rows, "x", b.cols,
                       ", C is ", c.rows, "x", c.cols, "; expected A M×K, B K×N, C M×N");
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

// What the blocked driver does with finished blocks of C. gemm_no_epilogue: C is the result.
// Any other callable is called as epi(src, ld, i0, rows, j0, cols) once per finished block of C
// (rows i0 … i0+rows−1, columns j0 … j0+cols−1, every element once), by the thread that finished
// it and while the block is in its cache; src(i, j) = src[i·ld + j] is alpha·(A·B)(i0 + i, j0 + j).
// Calls run concurrently on disjoint blocks. With an epilogue beta must be 0 and C row-major
// (column stride 1): when K fits one KC block the blocks are computed in a float buffer of the
// thread's own and C's memory is never touched (a block of C then never leaves L2); otherwise C
// holds the sums across KC blocks.
struct gemm_no_epilogue {};

// A non-owning reference to an epilogue callable: the blocked driver is instantiated once per
// kernel with it, not once per caller's lambda (an indirect call per block of C costs nothing
// next to the block's product, and every mixed-precision layer kernel would otherwise compile its
// own copy of the driver for every ISA).
class gemm_epilogue_ref {
 public:
  using function = void(void* ctx, const float* src, std::int64_t ld, std::int64_t i0,
                        std::int64_t rows, std::int64_t j0, std::int64_t cols);

  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, gemm_epilogue_ref>)
  explicit gemm_epilogue_ref(F& f)
      : ctx_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))), fn_(&call<F>) {}

  void operator()(const float* src, std::int64_t ld, std::int64_t i0, std::int64_t rows,
                  std::int64_t j0, std::int64_t cols) const {
    fn_(ctx_, src, ld, i0, rows, j0, cols);
  }

 private:
  template <class F>
  static void call(void* ctx, const float* src, std::int64_t ld, std::int64_t i0,
                   std::int64_t rows, std::int64_t j0, std::int64_t cols) {
    (*static_cast<F*>(ctx))(src, ld, i0, rows, j0, cols);
  }

  void* ctx_;
  function* fn_;
};

// Width of a work item's chunk of B, in NR-panels, unless more items are needed to share the
// work: the chunk's packed B (kc × 8·NR: 192 KiB for the AVX2 kernel) is packed from memory
// and then read from L2 by every A panel of the row block. (4 and 16 measured the same.)
inline constexpr std::int64_t gemm_chunk_panels = 8;

// Panels per group when threads share the packing of an A block.
inline constexpr std::int64_t gemm_pack_group_panels = 8;

// Below this many multiply-adds per thread, another thread costs more (fork/join, ~5 µs) than
// it saves.
inline constexpr double gemm_min_fma_per_thread = 1 << 18;

// Splits `count` units into `parts` ranges whose sizes differ by at most one; range i is
// [split_point(i), split_point(i + 1)).
constexpr std::int64_t split_point(std::int64_t count, std::int64_t parts, std::int64_t i) {
  return count * i / parts;
}

// The pack state of one slot of packed panels, tagged with a generation (one per super-block
// and KC block, increasing) so it never needs resetting: 2g + 1 while being packed for
// generation g, 2g + 2 once ready. The first task that needs generation g waits until the
// slot's previous contents are no longer read (`drained`), claims it and packs; the others
// wait until it is ready (gemm_wait_packed).
template <class Drained, class Pack>
void gemm_claim_and_pack(std::atomic<std::int64_t>& state, std::int64_t generation,
                         Drained&& drained, Pack&& pack) {
  const std::int64_t packing = 2 * generation + 1;
  std::int64_t s = state.load(std::memory_order_acquire);
  if (s >= packing) return;  // being packed or ready
  host::spin_wait(drained);
  if (state.compare_exchange_strong(s, packing, std::memory_order_acq_rel)) {
    pack();
    state.store(packing + 1, std::memory_order_release);
  }
}

inline void gemm_wait_packed(std::atomic<std::int64_t>& state, std::int64_t generation) {
  const std::int64_t ready = 2 * generation + 2;
  if (state.load(std::memory_order_acquire) == ready) return;
  host::spin_wait([&] { return state.load(std::memory_order_acquire) == ready; });
}

// The blocked GEMM: BLIS's blocking (KC-deep rank updates of an MR×NR register tile, a KC×NR
// sliver of packed B in L1, an MC×KC block of packed A in L2) with a schedule that needs no
// barriers between KC blocks:
//   * C is cut into items, (MC-row block) × (chunk of NR-panels) tiles; a task is one item's
//     rank-kc update for one KC block: for each B panel of the chunk, for each A panel of the
//     block, one micro-kernel call. Threads run KC block after KC block; within one, the items
//     are dealt out statically (chunk-major: a thread's items share its B columns) and stolen
//     from the back of other threads' ranges once a thread runs dry, so a thread that another
//     process slows down does not hold up the rest;
//   * a task waits for its item's previous KC block (a progress counter per item), so each
//     element of C is summed in K order by one thread at a time: results do not depend on the
//     thread count;
//   * the A block of each (row block, KC block) is packed, in groups of panels, by the first
//     tasks that need it, into one of `slots` rotating buffers (two with threads, so that a thread
//     can pack KC block kb while another still computes on kb - 1); a slot is repacked once every
//     item reading it has moved past its KC block. Reusing the same memory matters: packing every
//     KC block into fresh memory was 5-10% slower on one thread;
//   * B: with one row block (M ≤ mc, as in GPT-2's 256-token products) each chunk serves one
//     task, which packs it into a buffer of its own that stays in L2, so B is read from memory
//     once and never written back. With several row blocks the chunks go through shared slots
//     like A;
//   * packed A and B are bounded (gemm_host_pack_budget_bytes, mp rows, nc columns): a bigger
//     product runs as super-blocks of C, with a barrier between them.
template <class Kernel, host_gemm_input T, class Epilogue = gemm_no_epilogue>
void gemm_blocked_run(gemm_block_sizes blocks, float alpha, strided_matrix<const T> a,
                      strided_matrix<const T> b, float beta, strided_matrix<float> c,
                      Epilogue&& epilogue = {}) {
  constexpr bool has_epilogue = !std::is_same_v<std::remove_cvref_t<Epilogue>, gemm_no_epilogue>;
  if constexpr (has_epilogue)
    expects<invalid_argument>(beta == 0.0f && c.col_stride == 1,
                              "gemm_blocked_run: an epilogue needs beta = 0 and a row-major C");
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
  // Super-blocks of C: at most mp rows and nc columns, shared packed slots within budget;
  // equal parts.
  const std::int64_t budget =
      gemm_host_pack_budget_bytes / std::int64_t(sizeof(packed)) / (slots * kc_max);
  const std::int64_t mp_max = std::max<std::int64_t>(
      mr, std::min(round_up(pick(blocks.mp, tuned.mp), mr), budget / mr * mr));
  const std::int64_t m_supers = ceil_div(m, mp_max);
  const std::int64_t ms_max = round_up(ceil_div(m, m_supers), mr);
  const std::int64_t m_blocks = ceil_div(ms_max, round_up(pick(blocks.mc, tuned.mc), mr));
  // With a single row block, a chunk's packed B serves one task only: each thread packs it
  // into a buffer of its own, reused chunk after chunk, so it stays in L2. (Packing into a
  // shared slot, which no cache held, cost a memory round trip per line written: 5% of a
  // 256×3072×768 product on one thread.)
  const bool private_b = m_blocks == 1;
  const std::int64_t np_max = std::max<std::int64_t>(
      nr, std::min(round_up(pick(blocks.nc, tuned.nc), nr),
                   private_b ? std::numeric_limits<std::int64_t>::max() : budget / nr * nr));
  const std::int64_t n_supers = ceil_div(n, np_max);
  const std::int64_t ns_max = round_up(ceil_div(n, n_supers), nr);
  const std::int64_t supers = m_supers * n_supers;

  // Items of a super-block: MC-row blocks of equal size × chunks of gemm_chunk_panels panels
  // (narrower when threads need more items: about 8 each). Item index: chunk-major, with the
  // row blocks rotated per chunk so that threads starting on different chunks start on
  // different A blocks.
  const std::int64_t ns_panels = ns_max / nr;
  const std::int64_t n_chunks =
      std::min(ns_panels, std::max(ceil_div(ns_panels, gemm_chunk_panels),
                                   threads == 1 ? 1 : ceil_div(8 * threads, m_blocks)));
  const std::int64_t n_items = m_blocks * n_chunks;
  const auto item_of = [m_blocks](std::int64_t ib, std::int64_t ch) {
    return ch * m_blocks + (ib - ch % m_blocks + m_blocks) % m_blocks;
  };

  // Scratch: packed A slots (MR-panels, panel p at p·MR·kc_max whatever the depth of the KC
  // block, so that row blocks never overlap), packed B slots (NR-panels, likewise), pack
  // states (A blocks, then B chunks, per slot) and item progress (KC blocks done, per
  // super-block).
  const std::int64_t a_slot = ms_max * kc_max, b_slot = ns_max * kc_max;
  const std::size_t a_bytes =
      host::round_up_to_cache_line(std::size_t(a_slot * slots) * sizeof(packed));
  const std::size_t b_bytes =
      host::round_up_to_cache_line(std::size_t(b_slot * slots) * sizeof(packed));
  const std::int64_t chunk_cols = ceil_div(ns_panels, n_chunks) * nr;
  const std::size_t b_private_bytes =
      private_b ? host::round_up_to_cache_line(std::size_t(chunk_cols * kc_max) * sizeof(packed))
                : 0;
  // With an epilogue and a single KC block, each item's block of C is computed in a float
  // buffer of the thread's own (at most an MC-row block × one chunk: it stays in L2).
  const bool private_c = has_epilogue && k_blocks == 1;
  const std::int64_t item_rows = ceil_div(ceil_div(ms_max, mr), m_blocks) * mr;
  const std::size_t c_private_bytes =
      private_c ? host::round_up_to_cache_line(std::size_t(item_rows * chunk_cols) * sizeof(float))
                : 0;
  // A blocks are packed in groups of panels, so that the threads sharing a block pack it
  // together instead of waiting for one of them.
  const std::int64_t a_groups = ceil_div(ceil_div(ms_max / mr, m_blocks), gemm_pack_group_panels);
  const std::size_t counters =
      std::size_t((m_blocks * a_groups + n_chunks) * slots + supers * n_items);
  const std::size_t b_shared_bytes = private_b ? 0 : b_bytes;
  std::byte* scratch = host::thread_scratch().reserve(
      a_bytes + b_shared_bytes + (b_private_bytes + c_private_bytes) * std::size_t(threads) +
      counters * sizeof(counter));
  packed* const a_pack = reinterpret_cast<packed*>(scratch);
  packed* const b_pack = reinterpret_cast<packed*>(scratch + a_bytes);
  std::byte* const b_private = scratch + a_bytes + b_shared_bytes;
  std::byte* const c_private = b_private + b_private_bytes * std::size_t(threads);
  counter* const a_state =
      reinterpret_cast<counter*>(c_private + c_private_bytes * std::size_t(threads));
  counter* const b_state = a_state + m_blocks * a_groups * slots;
  counter* const progress = b_state + n_chunks * slots;
  for (std::size_t i = 0; i < counters; ++i) new (a_state + i) counter(0);

  host::work_ranges tasks;
  tasks.reset(threads, n_items, supers * k_blocks);

  host::parallel(threads, [&](int tid, int team) {
    if constexpr (requires { Kernel::prepare_thread(); }) Kernel::prepare_thread();
    for (std::int64_t s = 0; s < supers; ++s) {
      const std::int64_t is = s % m_supers, js = s / m_supers;
      const std::int64_t m0 = is * ms_max, ms = std::min(ms_max, m - m0);
      const std::int64_t n0 = js * ns_max, ns = std::min(ns_max, n - n0);
      const std::int64_t m_panels = ceil_div(ms, mr), n_panels = ceil_div(ns, nr);
      counter* const item_progress = progress + s * n_items;

      for (std::int64_t kb = 0; kb < k_blocks; ++kb) {
        const std::int64_t pc = kb * kc_max, kc = std::min(kc_max, k - pc);
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
            host::spin_wait(
                [&] { return item_progress[item].load(std::memory_order_acquire) == kb; });
          }
          if (p_begin < p_end && q_begin < q_end) {
            // Panel q of the chunk is at b_chunk + (q - q_first)·nr·kc_max.
            const packed* b_chunk = b_kb;
            std::int64_t q_first = 0;
            if (private_b) {
              packed* const own =
                  reinterpret_cast<packed*>(b_private + b_private_bytes * std::size_t(tid));
              const std::int64_t col = q_begin * nr;
              Kernel::pack_b(sub_matrix(b, pc, n0 + col, kc, std::min(ns, q_end * nr) - col), own,
                             nr * kc_max);
              b_chunk = own;
              q_first = q_begin;
            } else {
              counter& state = b_state[ch * slots + slot];
              gemm_claim_and_pack(
                  state, generation,
                  [&] {
                    for (std::int64_t i = 0; i < m_blocks; ++i)
                      if (!done_with_previous(ch * m_blocks + i)) return false;
                    return true;
                  },
                  [&] {
                    const std::int64_t col = q_begin * nr;
                    Kernel::pack_b(sub_matrix(b, pc, n0 + col, kc, std::min(ns, q_end * nr) - col),
                                   b_kb + q_begin * nr * kc_max, nr * kc_max);
                  });
              gemm_wait_packed(state, generation);
            }
            // The A block's groups: claim those nobody packs yet (starting at a different group
            // on each thread), then wait for the rest.
            const std::int64_t groups = ceil_div(p_end - p_begin, gemm_pack_group_panels);
            counter* const group_state = a_state + ib * a_groups * slots;
            for (std::int64_t g0 = 0; g0 < groups; ++g0) {
              const std::int64_t g = (g0 + tid) % groups;
              gemm_claim_and_pack(
                  group_state[g * slots + slot], generation,
                  [&] {
                    for (std::int64_t j = 0; j < n_chunks; ++j)
                      if (!done_with_previous(item_of(ib, j))) return false;
                    return true;
                  },
                  [&] {
                    const std::int64_t p0 = p_begin + g * gemm_pack_group_panels;
                    const std::int64_t p1 = std::min(p_end, p0 + gemm_pack_group_panels);
                    Kernel::pack_a(
                        sub_matrix(a, m0 + p0 * mr, pc, std::min(ms, p1 * mr) - p0 * mr, kc),
                        a_kb + p0 * mr * kc_max, mr * kc_max);
                  });
            }
            for (std::int64_t g = 0; g < groups; ++g)
              gemm_wait_packed(group_state[g * slots + slot], generation);
            // The item's block of C: rows [i0, i0 + rows), columns [j0, j0 + cols).
            const std::int64_t i0 = m0 + p_begin * mr, j0 = n0 + q_begin * nr;
            const std::int64_t block_rows = std::min(ms, p_end * mr) - p_begin * mr;
            const std::int64_t block_cols = std::min(ns, q_end * nr) - q_begin * nr;
            float* const own_c =
                private_c ? reinterpret_cast<float*>(c_private + c_private_bytes * std::size_t(tid))
                          : nullptr;
            for (std::int64_t q = q_begin; q < q_end; ++q) {
              const packed* bq = b_chunk + (q - q_first) * nr * kc_max;
              const int cols = static_cast<int>(std::min<std::int64_t>(nr, ns - q * nr));
              for (std::int64_t p = p_begin; p < p_end; ++p) {
                const int rows = static_cast<int>(std::min<std::int64_t>(mr, ms - p * mr));
                const gemm_tile_out out =
                    private_c ? gemm_tile_out{own_c + (p - p_begin) * mr * chunk_cols + (q - q_begin) * nr,
                                              chunk_cols, 1, rows, cols, alpha, 0.0f}
                              : gemm_tile_out{&c(m0 + p * mr, n0 + q * nr),
                                              c.row_stride,
                                              c.col_stride,
                                              rows,
                                              cols,
                                              alpha,
                                              beta_k};
                Kernel::run(kc, a_kb + p * mr * kc_max, bq, out);
              }
            }
            if constexpr (has_epilogue) {
              if (private_c)
                epilogue(static_cast<const float*>(own_c), chunk_cols, i0, block_rows, j0, block_cols);
              else if (kb + 1 == k_blocks)
                epilogue(static_cast<const float*>(&c(i0, j0)), c.row_stride, i0, block_rows, j0,
                         block_cols);
            }
          }
          item_progress[item].store(kb + 1, std::memory_order_release);
        }
      }
      // The next super-block packs over these slots: wait until every thread is done.
      if (team > 1 && s + 1 < supers) host::barrier();
    }
    if constexpr (requires { Kernel::finish_thread(); }) Kernel::finish_thread();
  });
}

template <host::isa Isa, gemm_block_sizes Blocks, host_gemm_input T, class Epilogue = gemm_no_epilogue>
void gemm_blocked_dispatch(float alpha, strided_matrix<const T> a, strided_matrix<const T> b,
                           float beta, strided_matrix<float> c, Epilogue&& epilogue = {}) {
  static_assert(host::isa_compiled(Isa), "this host GEMM kernel is not compiled for this target");
  if constexpr (Isa == host::isa::amx_bf16 && std::same_as<T, bfloat16>) {
    // The default kernel of an AMX build: where the OS does not grant the tile state (or a tool
    // such as valgrind hides AMX), the AVX512_BF16 kernel runs instead.
    if (!host::cpu_supports(Isa)) {
      gemm_blocked_dispatch<host::isa::avx512_bf16, Blocks>(alpha, a, b, beta, c,
                                                           std::forward<Epilogue>(epilogue));
      return;
    }
  }
  if constexpr (host::isa_compiled(Isa)) {
    using kernel = gemm_host_kernel<Isa, T>;
    // The kernels store rows of C with vector stores: a column-major C is the row-major C^T of
    // C^T = B^T·A^T (not with an epilogue, whose C is row-major).
    if (std::is_same_v<std::remove_cvref_t<Epilogue>, gemm_no_epilogue> && c.col_stride != 1 &&
        c.row_stride == 1) {
      gemm_blocked_run<kernel>(Blocks, alpha, b.transposed(), a.transposed(), beta, c.transposed());
    } else {
      gemm_blocked_run<kernel>(Blocks, alpha, a, b, beta, c, std::forward<Epilogue>(epilogue));
    }
  }
}

// C = alpha·A·B + beta·C with the variant `Policy`. Throws shape_error when the extents do not
// match (A: M×K, B: K×N, C: M×N) or are negative.
template <host_gemm_policy Policy, host_gemm_input T>
void gemm_host(Policy, float alpha, strided_matrix<const T> a, strided_matrix<const T> b,
               float beta, strided_matrix<float> c) {
  gemm_host_check(a, b, c);
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

// alpha·A·B handed to `epilogue` block by block (see gemm_no_epilogue): every element of the
// M×N product reaches exactly one epilogue call, while the block is in cache, so a caller that
// rounds or adds to the product needs no second pass over a float C. c (row-major, M×N) is
// memory the blocked driver may use for sums across KC blocks; with K within one KC block it
// is never touched.
template <host_gemm_policy Policy, host_gemm_input T, class Epilogue>
void gemm_host_epilogue(Policy, float alpha, strided_matrix<const T> a, strided_matrix<const T> b,
                        strided_matrix<float> c, Epilogue&& epilogue) {
  gemm_host_check(a, b, c);
  expects<invalid_argument>(c.col_stride == 1, "gemm_host_epilogue: C must be row-major");
  if (c.rows == 0 || c.cols == 0) return;
  if constexpr (!std::same_as<Policy, gemm_ref>) {
    if (alpha != 0.0f && a.cols != 0) {
      gemm_blocked_dispatch<Policy::isa, Policy::blocks>(alpha, a, b, 0.0f, c,
                                                         gemm_epilogue_ref(epilogue));
      return;
    }
  }
  if (alpha == 0.0f || a.cols == 0)
    gemm_scale_c(0.0f, c);
  else
    gemm_ref_run(alpha, a, b, 0.0f, c);
  epilogue(static_cast<const float*>(c.data), c.row_stride, std::int64_t{0}, c.rows, std::int64_t{0},
           c.cols);
}

// Convenience overload for non-const A and B views.
template <host_gemm_policy Policy, host_gemm_input T>
void gemm_host(Policy policy, float alpha, strided_matrix<T> a, strided_matrix<T> b, float beta,
               strided_matrix<float> c) {
  gemm_host(policy, alpha, const_view(a), const_view(b), beta, c);
}

}  // namespace detail
}  // namespace tfm
