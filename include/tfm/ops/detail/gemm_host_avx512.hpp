// tfm/ops/detail/gemm_host_avx512.hpp — the AVX-512 host GEMM micro-kernels, compiled through
// TFM_TARGET_AVX512* so they exist in every x86 build and run where the CPU has them:
//   fp32 (and bf16, fp16 widened while packing): 12×32 tile, 24 zmm accumulators + 2 B + 1 A.
//   bf16 with AVX512_BF16: the same 12×32 tile, but panels keep bf16 and pair up K so that one
//   vdpbf16ps does two K-steps: A element (i, k) at p·MR·kc2·2 + (k/2)·MR·2 + i·2 + k%2,
//   B element (k, j) at q·NR·kc2·2 + (k/2)·NR·2 + j·2 + k%2, kc2 = ceil(kc/2), zero padded.
// fp32 packing transposes 16×16 blocks where the layout needs it; bf16/fp16 packing (widening or
// pairing K) uses the portable routines.
#pragma once
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "tfm/backend/host/cpu.hpp"
#include "tfm/core/config.hpp"
#include "tfm/ops/detail/gemm_host_pack.hpp"
#include "tfm/ops/detail/gemm_host_tuning.hpp"

#if TFM_HOST_X86_SIMD
#include <immintrin.h>

// These functions pass vectors only to each other, all compiled for AVX-512.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
namespace tfm::detail {

// Requests the lines of a 12×32 C tile (rows of 128 bytes, up to 3 lines each when C's rows are not
// 64-byte aligned) for writing, before the kernel's K loop: the loop then hides the misses of a C
// that is not in cache. It matters where C is large and written once: the 2048×50257 logits of an
// LM head (K = 256) went from 204–212 to 264–269 GFLOP/s with it on the Emerald Rapids Xeon.
// (Always inlined: GCC 12 drops the prefetches of a plain inline function when it inlines it.)
TFM_TARGET_AVX512 TFM_ALWAYS_INLINE void gemm_prefetch_c_12x32(const gemm_tile_out& out) {
  if (out.col_stride != 1) return;
  for (int i = 0; i < out.m; ++i) {
    const float* ci = out.c + i * out.row_stride;
    __builtin_prefetch(ci, 1, 3);
    __builtin_prefetch(ci + 16, 1, 3);
    __builtin_prefetch(ci + out.n - 1, 1, 3);
  }
}

// The C update from 12×32 zmm accumulators (acc[i][h] holds columns 16h .. 16h + 15 of row i).
TFM_TARGET_AVX512 inline void gemm_store_avx512_12x32(__m512 (&acc)[12][2],
                                                      const gemm_tile_out& out) {
  constexpr int mr = 12;
  constexpr int nr = 32;
  if (out.col_stride == 1 && out.n == nr) {
    const __m512 alpha = _mm512_set1_ps(out.alpha);
    const __m512 beta = _mm512_set1_ps(out.beta);
    TFM_UNROLL
    for (int i = 0; i < mr; ++i) {
      if (i >= out.m) break;
      float* ci = out.c + i * out.row_stride;
      __m512 v0 = _mm512_mul_ps(alpha, acc[i][0]);
      __m512 v1 = _mm512_mul_ps(alpha, acc[i][1]);
      if (out.beta != 0.0f) {
        v0 = _mm512_fmadd_ps(beta, _mm512_loadu_ps(ci), v0);
        v1 = _mm512_fmadd_ps(beta, _mm512_loadu_ps(ci + 16), v1);
      }
      _mm512_storeu_ps(ci, v0);
      _mm512_storeu_ps(ci + 16, v1);
    }
    return;
  }
  alignas(64) float tile[mr * nr];
  TFM_UNROLL
  for (int i = 0; i < mr; ++i) {
    _mm512_store_ps(tile + i * nr, acc[i][0]);
    _mm512_store_ps(tile + i * nr + 16, acc[i][1]);
  }
  gemm_store_tile<mr, nr>(tile, out);
}

// (host::avx512::transpose_16x16_epi32, tfm/backend/host/simd.hpp, shared with the attention tiles)
using host::avx512::transpose_16x16_epi32;

// One fp32 A panel (r ≤ 12 rows × kc): rows with unit stride are transposed 16 K values at a
// time; other layouts take the portable routine.
TFM_TARGET_AVX512 inline void gemm_pack_a_panel_avx512(strided_matrix<const float> a,
                                                       float* TFM_RESTRICT dst) {
  constexpr int mr = 12;
  if (a.col_stride != 1) {
    gemm_pack_a_panel_generic<mr>(a, dst);
    return;
  }
  const std::int64_t kc = a.cols;
  for (std::int64_t k0 = 0; k0 < kc; k0 += 16) {
    const int w = static_cast<int>(kc - k0 < 16 ? kc - k0 : 16);
    const __mmask16 mask = static_cast<__mmask16>((1u << w) - 1);
    __m512i r[16];
    for (int i = 0; i < 16; ++i)
      r[i] = i < a.rows ? _mm512_castps_si512(_mm512_maskz_loadu_ps(mask, &a(i, k0)))
                        : _mm512_setzero_si512();
    transpose_16x16_epi32(r);  // r[k]: A(0 .. 15, k0 + k)
    for (int k = 0; k < w; ++k)
      _mm512_mask_storeu_ps(dst + (k0 + k) * mr, 0x0FFF, _mm512_castsi512_ps(r[k]));
  }
}

// fp32 A panels of a block whose columns are contiguous (a transposed operand): K outermost, so
// each column is read once across all the block's panels. Reading it panel by panel instead
// touched every column (often a page apart) once per panel: 5% of a 4-layer model's step.
TFM_TARGET_AVX512 inline void gemm_pack_a_columns_avx512(strided_matrix<const float> a,
                                                         float* TFM_RESTRICT dst,
                                                         std::int64_t panel_stride) {
  constexpr int mr = 12;
  const std::int64_t panels = (a.rows + mr - 1) / mr;
  const int tail = static_cast<int>(a.rows - (panels - 1) * mr);
  const __mmask16 full = 0x0FFF, last = static_cast<__mmask16>((1u << tail) - 1);
  for (std::int64_t k = 0; k < a.cols; ++k) {
    const float* col = a.data + k * a.col_stride;
    if (k + gemm_pack_prefetch_columns < a.cols)
      gemm_prefetch_span(col + gemm_pack_prefetch_columns * a.col_stride, a.rows * std::int64_t(sizeof(float)));
    for (std::int64_t p = 0; p < panels; ++p) {
      const __mmask16 m = p + 1 < panels ? full : last;
      _mm512_mask_storeu_ps(dst + p * panel_stride + k * mr, full,
                            _mm512_maskz_loadu_ps(m, col + p * mr));
    }
  }
}

// One fp32 B panel (kc × c ≤ 32 columns): columns with unit stride are transposed 16 K values at
// a time; other layouts take the portable routine.
TFM_TARGET_AVX512 inline void gemm_pack_b_panel_avx512(strided_matrix<const float> b,
                                                       float* TFM_RESTRICT dst) {
  constexpr int nr = 32;
  if (b.row_stride != 1 || b.col_stride == 1) {
    gemm_pack_b_panel_generic<nr>(b, dst);
    return;
  }
  const std::int64_t kc = b.rows;
  for (std::int64_t k0 = 0; k0 < kc; k0 += 16) {
    const int w = static_cast<int>(kc - k0 < 16 ? kc - k0 : 16);
    const __mmask16 mask = static_cast<__mmask16>((1u << w) - 1);
    for (int h = 0; h < 2; ++h) {
      __m512i r[16];
      for (int j = 0; j < 16; ++j)
        r[j] = 16 * h + j < b.cols
                   ? _mm512_castps_si512(_mm512_maskz_loadu_ps(mask, &b(k0, 16 * h + j)))
                   : _mm512_setzero_si512();
      transpose_16x16_epi32(r);  // r[k]: B(k0 + k, 16h .. 16h + 15)
      for (int k = 0; k < w; ++k)
        _mm512_storeu_ps(dst + (k0 + k) * nr + 16 * h, _mm512_castsi512_ps(r[k]));
    }
  }
}

// acc = A panel (12 × kc) · B panel (kc × 32), then the C update.
TFM_TARGET_AVX512 TFM_HOST_NOINLINE inline void gemm_micro_avx512_12x32(std::int64_t kc,
                                                                        const float* TFM_RESTRICT a,
                                                                        const float* TFM_RESTRICT b,
                                                                        const gemm_tile_out& out) {
  constexpr int mr = 12;
  constexpr int nr = 32;
  gemm_prefetch_c_12x32(out);
  __m512 acc[mr][2];
  TFM_UNROLL
  for (int i = 0; i < mr; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (std::int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b);
    const __m512 b1 = _mm512_load_ps(b + 16);
    TFM_UNROLL
    for (int i = 0; i < mr; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
    a += mr;
    b += nr;
  }
  gemm_store_avx512_12x32(acc, out);
}

template <host_gemm_input T>
struct gemm_host_kernel<host::isa::avx512, T> {
  using packed_type = float;
  static constexpr int mr = 12;
  static constexpr int nr = 32;
  static constexpr int k_group = 1;
  static constexpr gemm_block_sizes blocks = gemm_host_tuning<host::isa::avx512>::blocks;

  static void pack_a(strided_matrix<const T> a, float* dst, std::int64_t panel_stride) {
    if constexpr (std::is_same_v<T, float>) {
      if (a.row_stride == 1 && a.col_stride != 1) {
        gemm_pack_a_columns_avx512(a, dst, panel_stride);
        return;
      }
    }
    gemm_pack_a_panels<mr>(a, panel_stride, [dst](strided_matrix<const T> p, std::int64_t at) {
      if constexpr (std::is_same_v<T, float>)
        gemm_pack_a_panel_avx512(p, dst + at);
      else
        gemm_pack_a_panel_generic<mr>(p, dst + at);
    });
  }
  static void pack_b(strided_matrix<const T> b, float* dst, std::int64_t panel_stride) {
    gemm_pack_b_panels<nr>(b, panel_stride, [dst](strided_matrix<const T> p, std::int64_t at) {
      if constexpr (std::is_same_v<T, float>)
        gemm_pack_b_panel_avx512(p, dst + at);
      else
        gemm_pack_b_panel_generic<nr>(p, dst + at);
    });
  }
  static void run(std::int64_t kc, const float* a, const float* b, const gemm_tile_out& out) {
    gemm_micro_avx512_12x32(kc, a, b, out);
  }
};

// fp32 and fp16 inputs on an AVX512_BF16 machine: the fp32 AVX-512 kernel.
template <>
struct gemm_host_kernel<host::isa::avx512_bf16, float>
    : gemm_host_kernel<host::isa::avx512, float> {};
template <>
struct gemm_host_kernel<host::isa::avx512_bf16, half>
    : gemm_host_kernel<host::isa::avx512, half> {};

// Up to 32 bf16 at p (n of them, the rest zero).
TFM_TARGET_AVX512 inline __m512i bf16_load_masked(const bfloat16* p, std::int64_t n) {
  if (n <= 0) return _mm512_setzero_si512();
  const __mmask32 mask = n >= 32 ? ~__mmask32{0} : (__mmask32{1} << n) - 1;
  return _mm512_maskz_loadu_epi16(mask, p);
}

// Word indices that interleave two 32-element vectors x, y: pairs (x[i], y[i]) for
// first ≤ i < first + 16.
TFM_TARGET_AVX512 inline __m512i bf16_interleave_index(int first) {
  alignas(64) std::uint16_t idx[32];
  for (int i = 0; i < 16; ++i) {
    idx[2 * i] = static_cast<std::uint16_t>(first + i);
    idx[2 * i + 1] = static_cast<std::uint16_t>(32 + first + i);
  }
  return _mm512_load_si512(idx);
}

// acc = A panel (12 × 2·kp bf16, K paired) · B panel (2·kp × 32, K paired), then the C update.
TFM_TARGET_AVX512_BF16 TFM_HOST_NOINLINE inline void gemm_micro_avx512_bf16_12x32(
    std::int64_t kp, const std::uint16_t* TFM_RESTRICT a, const std::uint16_t* TFM_RESTRICT b,
    const gemm_tile_out& out) {
  constexpr int mr = 12;
  constexpr int nr = 32;
  __m512 acc[mr][2];
  TFM_UNROLL
  for (int i = 0; i < mr; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (std::int64_t k = 0; k < kp; ++k) {
    const __m512bh b0 = (__m512bh)_mm512_load_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_load_si512(b + 2 * 16);
    TFM_UNROLL
    for (int i = 0; i < mr; ++i) {
      std::int32_t pair;  // A(i, 2k) in the low half, A(i, 2k + 1) in the high half
      std::memcpy(&pair, a + 2 * i, sizeof pair);
      const __m512bh ai = (__m512bh)_mm512_set1_epi32(pair);
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], ai, b0);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], ai, b1);
    }
    a += 2 * mr;
    b += 2 * nr;
  }
  gemm_store_avx512_12x32(acc, out);
}

template <>
struct gemm_host_kernel<host::isa::avx512_bf16, bfloat16>
    : gemm_panelwise_packing<gemm_host_kernel<host::isa::avx512_bf16, bfloat16>, bfloat16,
                             std::uint16_t> {
  using packed_type = std::uint16_t;  // bf16 bits
  static constexpr int mr = 12;
  static constexpr int nr = 32;
  static constexpr int k_group = 2;
  static constexpr gemm_block_sizes blocks = gemm_host_tuning<host::isa::avx512_bf16>::blocks;

  // A blocks whose columns are contiguous (a transposed operand): K pairs outermost across all
  // the block's panels, so each column is read once rather than once per panel (the output head's
  // weight gradient reads its gradient rows this way, 100 KB apart), with the columns
  // gemm_pack_prefetch_columns ahead prefetched. The same packed panels as pack_a_panel.
  static void pack_a(strided_matrix<const bfloat16> a, std::uint16_t* dst, std::int64_t panel_stride) {
    if (a.row_stride == 1 && a.col_stride != 1) return pack_a_columns(a, dst, panel_stride);
    gemm_panelwise_packing::pack_a(a, dst, panel_stride);
  }
  TFM_TARGET_AVX512_BF16 static void pack_a_columns(strided_matrix<const bfloat16> a, std::uint16_t* TFM_RESTRICT dst,
                                                    std::int64_t panel_stride) {
    const std::int64_t kc = a.cols, panels = (a.rows + mr - 1) / mr;
    const std::int64_t bytes = a.rows * std::int64_t(sizeof(bfloat16));
    const __m512i lo_idx = bf16_interleave_index(0);
    for (std::int64_t k = 0; k < kc; k += 2) {
      if (k + gemm_pack_prefetch_columns + 1 < kc) {
        gemm_prefetch_span(&a(0, k + gemm_pack_prefetch_columns), bytes);
        gemm_prefetch_span(&a(0, k + gemm_pack_prefetch_columns + 1), bytes);
      }
      const bfloat16* c0 = &a(0, k);
      const bfloat16* c1 = k + 1 < kc ? &a(0, k + 1) : nullptr;
      for (std::int64_t p = 0; p < panels; ++p) {
        const std::int64_t rows = std::min<std::int64_t>(mr, a.rows - p * mr);
        const __m512i x = bf16_load_masked(c0 + p * mr, rows);
        const __m512i y = c1 ? bf16_load_masked(c1 + p * mr, rows) : _mm512_setzero_si512();
        _mm512_mask_storeu_epi32(dst + p * panel_stride + (k / 2) * mr * 2, 0x0FFF,
                                 _mm512_permutex2var_epi16(x, lo_idx, y));
      }
    }
  }
  // One A panel (r ≤ 12 rows × kc) with K paired: rows or columns with unit stride through
  // AVX-512 (a 16×16 transpose of K pairs, or interleaving column pairs), others element-wise.
  TFM_TARGET_AVX512_BF16 static void pack_a_panel(strided_matrix<const bfloat16> a,
                                                  std::uint16_t* TFM_RESTRICT dst) {
    const std::int64_t kc = a.cols;
    if (a.col_stride == 1) {
      for (std::int64_t k0 = 0; k0 < kc; k0 += 32) {
        const std::int64_t width = kc - k0 < 32 ? kc - k0 : 32;
        __m512i r[16];  // r[i]: the 16 K pairs of row i
        for (int i = 0; i < 16; ++i)
          r[i] = i < a.rows ? bf16_load_masked(&a(i, k0), width) : _mm512_setzero_si512();
        transpose_16x16_epi32(r);  // r[q]: pair q of rows 0 .. 15
        for (std::int64_t q = 0; q < (width + 1) / 2; ++q)
          _mm512_mask_storeu_epi32(dst + (k0 / 2 + q) * mr * 2, 0x0FFF, r[q]);
      }
      return;
    }
    if (a.row_stride == 1) {
      const __m512i lo_idx = bf16_interleave_index(0);
      for (std::int64_t k = 0; k < kc; k += 2) {
        const __m512i c0 = bf16_load_masked(&a(0, k), a.rows);
        const __m512i c1 =
            k + 1 < kc ? bf16_load_masked(&a(0, k + 1), a.rows) : _mm512_setzero_si512();
        _mm512_mask_storeu_epi32(dst + (k / 2) * mr * 2, 0x0FFF,
                                 _mm512_permutex2var_epi16(c0, lo_idx, c1));
      }
      return;
    }
    const std::int64_t kp = (a.cols + 1) / 2;
    for (std::int64_t k2 = 0; k2 < kp; ++k2) {
      for (int i = 0; i < mr; ++i) {
        for (int s = 0; s < 2; ++s) {
          const std::int64_t k = 2 * k2 + s;
          dst[(k2 * mr + i) * 2 + s] = i < a.rows && k < a.cols ? a(i, k).bits() : 0;
        }
      }
    }
  }
  // One B panel (kc × c ≤ 32 columns) with K paired: rows or columns with unit stride through
  // AVX-512 (interleaving row pairs, or a 16×16 transpose of K pairs), others element-wise.
  TFM_TARGET_AVX512_BF16 static void pack_b_panel(strided_matrix<const bfloat16> b,
                                                  std::uint16_t* TFM_RESTRICT dst) {
    const std::int64_t kc = b.rows;
    if (b.col_stride == 1) {
      const __m512i lo_idx = bf16_interleave_index(0), hi_idx = bf16_interleave_index(16);
      for (std::int64_t k = 0; k < kc; k += 2) {
        const __m512i r0 = bf16_load_masked(&b(k, 0), b.cols);
        const __m512i r1 =
            k + 1 < kc ? bf16_load_masked(&b(k + 1, 0), b.cols) : _mm512_setzero_si512();
        std::uint16_t* row = dst + (k / 2) * nr * 2;
        _mm512_storeu_si512(row, _mm512_permutex2var_epi16(r0, lo_idx, r1));
        _mm512_storeu_si512(row + 32, _mm512_permutex2var_epi16(r0, hi_idx, r1));
      }
      return;
    }
    if (b.row_stride == 1) {
      for (std::int64_t k0 = 0; k0 < kc; k0 += 32) {
        const std::int64_t width = kc - k0 < 32 ? kc - k0 : 32;
        for (int h = 0; h < 2; ++h) {
          __m512i r[16];  // r[j]: the 16 K pairs of column 16h + j
          for (int j = 0; j < 16; ++j)
            r[j] = 16 * h + j < b.cols ? bf16_load_masked(&b(k0, 16 * h + j), width)
                                       : _mm512_setzero_si512();
          transpose_16x16_epi32(r);  // r[q]: pair q of columns 16h .. 16h + 15
          for (std::int64_t q = 0; q < (width + 1) / 2; ++q)
            _mm512_storeu_si512(dst + (k0 / 2 + q) * nr * 2 + 32 * h, r[q]);
        }
      }
      return;
    }
    const std::int64_t kp = (b.rows + 1) / 2;
    for (std::int64_t k2 = 0; k2 < kp; ++k2) {
      for (int j = 0; j < nr; ++j) {
        for (int s = 0; s < 2; ++s) {
          const std::int64_t k = 2 * k2 + s;
          dst[(k2 * nr + j) * 2 + s] = j < b.cols && k < b.rows ? b(k, j).bits() : 0;
        }
      }
    }
  }
  static void run(std::int64_t kc, const std::uint16_t* a, const std::uint16_t* b,
                  const gemm_tile_out& out) {
    gemm_micro_avx512_bf16_12x32((kc + 1) / 2, a, b, out);
  }
};

}  // namespace tfm::detail
#pragma GCC diagnostic pop
#endif  // TFM_HOST_X86_SIMD
