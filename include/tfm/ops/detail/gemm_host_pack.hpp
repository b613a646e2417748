// tfm/ops/detail/gemm_host_pack.hpp — the pieces every host GEMM micro-kernel shares: the packed
// panel layouts, portable packing routines, the C-tile update and the micro-kernel trait that
// each instruction set specialises.
//
// Packed layouts (fp32 kernels; the AVX512_BF16 kernel packs K in pairs, see its header):
//   A block (mc × kc) -> ceil(mc/MR) panels, panel p holds rows [p·MR, p·MR + MR):
//                        element (i, k) at p·MR·kc + k·MR + i, rows past mc are zero.
//   B panel (kc × nc) -> ceil(nc/NR) panels, panel q holds columns [q·NR, q·NR + NR):
//                        element (k, j) at q·NR·kc + k·NR + j, columns past nc are zero.
// Zero padding lets the micro-kernel always compute whole MR×NR tiles.
#pragma once
#include <algorithm>
#include <concepts>
#include <cstdint>

#include "tfm/backend/host/cpu.hpp"
#include "tfm/backend/host/simd.hpp"
#include "tfm/core/config.hpp"
#include "tfm/core/dtype.hpp"
#include "tfm/ops/detail/matrix.hpp"

namespace tfm::detail {

// Element types the host GEMM reads A and B in (both the same). Every kernel accumulates in
// fp32; bf16 and fp16 are widened to fp32 while packing (except by the AVX512_BF16 kernel).
template <class T>
concept host_gemm_input =
    std::same_as<T, float> || std::same_as<T, bfloat16> || std::same_as<T, half>;

inline float gemm_to_float(float x) { return x; }
inline float gemm_to_float(bfloat16 x) { return host::bf16_bits_to_float(x.bits()); }
// F16C where the translation unit is compiled for it, else the portable conversion.
inline float gemm_to_float(half x) { return static_cast<float>(x); }

// The rows × cols block of m whose top-left element is (r0, c0).
template <class T>
strided_matrix<T> sub_matrix(const strided_matrix<T>& m, std::int64_t r0, std::int64_t c0,
                             std::int64_t rows, std::int64_t cols) {
  return {m.data + r0 * m.row_stride + c0 * m.col_stride, rows, cols, m.row_stride, m.col_stride};
}

// Where a micro-kernel writes its tile: C(i, j) = alpha·acc(i, j) + beta·C(i, j) for i < m,
// j < n, and C is not read when beta == 0.
struct gemm_tile_out {
  float* c;
  std::int64_t row_stride;
  std::int64_t col_stride;
  int m;
  int n;
  float alpha;
  float beta;
};

// The C update from an MR×NR accumulator tile held in memory (row-major, NR per row); used for
// edge tiles and C layouts the vector stores do not cover.
template <int MR, int NR>
void gemm_store_tile(const float* acc, const gemm_tile_out& o) {
  for (int i = 0; i < o.m; ++i) {
    float* ci = o.c + i * o.row_stride;
    for (int j = 0; j < o.n; ++j) {
      const float v = o.alpha * acc[i * NR + j];
      float& cij = ci[j * o.col_stride];
      cij = o.beta == 0.0f ? v : v + o.beta * cij;
    }
  }
}

// Packing an operand whose K direction runs across memory rows (a transposed A: the output head's
// gradient, rows of 50,257 elements, for its weight gradient; a row-major B: a weight matrix, one
// or two cache lines of each row per panel) takes a few cache lines from each of many rows a page
// or more apart, which the hardware prefetchers do not follow: those packing loops prefetch the
// row or column this many K steps ahead.
inline constexpr std::int64_t gemm_pack_prefetch_columns = 16;

// Prefetches the cache lines of [p, p + bytes) into L1.
TFM_ALWAYS_INLINE void gemm_prefetch_span(const void* p, std::int64_t bytes) {
  const char* c = static_cast<const char*>(p);
  for (std::int64_t off = 0; off < bytes; off += 64) __builtin_prefetch(c + off, 0, 3);
  if (bytes > 0) __builtin_prefetch(c + bytes - 1, 0, 3);  // the last line when p is not aligned
}

// Packs a (r ≤ MR rows × kc) into one A panel.
template <int MR, class T>
void gemm_pack_a_panel_generic(strided_matrix<const T> a, float* TFM_RESTRICT dst) {
  const std::int64_t kc = a.cols;
  if (a.rows == MR && a.row_stride == 1) {  // a column of the panel is contiguous
    for (std::int64_t k = 0; k < kc; ++k) {
      const T* s = a.data + k * a.col_stride;
      for (int i = 0; i < MR; ++i) dst[k * MR + i] = gemm_to_float(s[i]);
    }
    return;
  }
  for (int i = 0; i < MR; ++i) {
    if (i < a.rows) {
      const T* s = a.data + i * a.row_stride;
      for (std::int64_t k = 0; k < kc; ++k) dst[k * MR + i] = gemm_to_float(s[k * a.col_stride]);
    } else {
      for (std::int64_t k = 0; k < kc; ++k) dst[k * MR + i] = 0.0f;
    }
  }
}

// Packs b (kc × c ≤ NR columns) into one B panel.
template <int NR, class T>
void gemm_pack_b_panel_generic(strided_matrix<const T> b, float* TFM_RESTRICT dst) {
  const std::int64_t kc = b.rows;
  if (b.cols == NR && b.col_stride == 1) {  // a row of the panel is contiguous
    for (std::int64_t k = 0; k < kc; ++k) {
      const T* s = b.data + k * b.row_stride;
      if (k + gemm_pack_prefetch_columns < kc)
        gemm_prefetch_span(s + gemm_pack_prefetch_columns * b.row_stride, NR * std::int64_t(sizeof(T)));
      for (int j = 0; j < NR; ++j) dst[k * NR + j] = gemm_to_float(s[j]);
    }
    return;
  }
  for (int j = 0; j < NR; ++j) {
    if (j < b.cols) {
      const T* s = b.data + j * b.col_stride;
      for (std::int64_t k = 0; k < kc; ++k) dst[k * NR + j] = gemm_to_float(s[k * b.row_stride]);
    } else {
      for (std::int64_t k = 0; k < kc; ++k) dst[k * NR + j] = 0.0f;
    }
  }
}

// Packs a (mc × kc) into ceil(mc/MR) A panels, panel by panel with pack_panel(rows, dst). With
// row-major rows, the next panel's rows are prefetched while one is packed: each row gives only
// kc elements (12 lines of bf16), too short a stream for the hardware prefetchers when the rows
// are far apart (the output head's gradient, for the gradient of its input).
template <int MR, class T, class PackPanel>
void gemm_pack_a_panels(strided_matrix<const T> a, std::int64_t panel_stride,
                        PackPanel&& pack_panel) {
  const bool prefetch = a.col_stride == 1;
  for (std::int64_t i = 0, p = 0; i < a.rows; i += MR, ++p) {
    const std::int64_t r = a.rows - i < MR ? a.rows - i : MR;
    if (prefetch)
      for (std::int64_t q = i + MR; q < std::min<std::int64_t>(a.rows, i + 2 * MR); ++q)
        gemm_prefetch_span(a.data + q * a.row_stride, a.cols * std::int64_t(sizeof(T)));
    pack_panel(sub_matrix(a, i, 0, r, a.cols), p * panel_stride);
  }
}

// Packs b (kc × nc) into ceil(nc/NR) B panels, panel by panel with pack_panel(cols, dst).
template <int NR, class T, class PackPanel>
void gemm_pack_b_panels(strided_matrix<const T> b, std::int64_t panel_stride,
                        PackPanel&& pack_panel) {
  for (std::int64_t j = 0, q = 0; j < b.cols; j += NR, ++q) {
    const std::int64_t c = b.cols - j < NR ? b.cols - j : NR;
    pack_panel(sub_matrix(b, 0, j, b.rows, c), q * panel_stride);
  }
}

// pack_a / pack_b of a micro-kernel that packs one panel at a time with its own
// Kernel::pack_a_panel / pack_b_panel (derive from this, CRTP).
template <class Kernel, class T, class Packed>
struct gemm_panelwise_packing {
  static void pack_a(strided_matrix<const T> a, Packed* dst, std::int64_t panel_stride) {
    gemm_pack_a_panels<Kernel::mr>(
        a, panel_stride,
        [dst](strided_matrix<const T> p, std::int64_t at) { Kernel::pack_a_panel(p, dst + at); });
  }
  static void pack_b(strided_matrix<const T> b, Packed* dst, std::int64_t panel_stride) {
    gemm_pack_b_panels<Kernel::nr>(
        b, panel_stride,
        [dst](strided_matrix<const T> p, std::int64_t at) { Kernel::pack_b_panel(p, dst + at); });
  }
};

// The micro-kernel of one instruction set for input type T. Specialisations provide:
//   using packed_type;               element type of packed panels
//   static constexpr int mr, nr;     register tile
//   static constexpr int k_group;    K is packed in groups of this many (zero-padded)
//   static constexpr gemm_block_sizes blocks;   tuned cache blocks
//   static void pack_a(strided_matrix<const T> a /* mc × kk */, packed_type* dst,
//                      std::int64_t panel_stride);
//       the ceil(mc/mr) A panels of a block, panel p at dst + p·panel_stride
//   static void pack_b(strided_matrix<const T> b /* kk × nc */, packed_type* dst,
//                      std::int64_t panel_stride);
//       the ceil(nc/nr) B panels of a block, panel q at dst + q·panel_stride
//   The block may be a slab of K (kk ≤ kc rows of the panels, starting at a multiple of
//   k_group): dst then points at the slab's first row inside the first panel.
//   static void run(std::int64_t kc, const packed_type* a_panel, const packed_type* b_panel,
//                   const gemm_tile_out& out);
//   optionally: static void prepare_thread();  run by each thread of a GEMM before its first
//                   micro-kernel call (the AMX kernel loads its tile configuration there), and
//               static void finish_thread();   after its last (the AMX kernel releases the tiles)
// Panels start on 64-byte boundaries.
template <host::isa Isa, class T>
struct gemm_host_kernel;

}  // namespace tfm::detail
