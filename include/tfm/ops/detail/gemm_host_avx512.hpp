// tfm/ops/detail/gemm_host_avx512.hpp — the AVX-512 host GEMM micro-kernels, compiled through
// TFM_TARGET_AVX512* so they exist in every x86 build and run where the CPU has them:
//   fp32 (and bf16, fp16 widened while packing): 12×32 tile, 24 zmm accumulators + 2 B + 1 A.
//   bf16 with AVX512_BF16: the same 12×32 tile, but panels keep bf16 and pair up K so that one
//   vdpbf16ps does two K-steps: A element (i, k) at p·MR·kc2·2 + (k/2)·MR·2 + i·2 + k%2,
//   B element (k, j) at q·NR·kc2·2 + (k/2)·NR·2 + j·2 + k%2, kc2 = ceil(kc/2), zero padded.
// Packing here uses the portable routines: no AVX-512 machine was at hand to tune them on.
#pragma once
#include <cstdint>
#include <cstring>

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

// acc = A panel (12 × kc) · B panel (kc × 32), then the C update.
TFM_TARGET_AVX512 TFM_HOST_NOINLINE inline void gemm_micro_avx512_12x32(std::int64_t kc,
                                                                        const float* TFM_RESTRICT a,
                                                                        const float* TFM_RESTRICT b,
                                                                        const gemm_tile_out& out) {
  constexpr int mr = 12;
  constexpr int nr = 32;
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
    gemm_pack_a_panels<mr>(a, panel_stride, [dst](strided_matrix<const T> p, std::int64_t at) {
      gemm_pack_a_panel_generic<mr>(p, dst + at);
    });
  }
  static void pack_b(strided_matrix<const T> b, float* dst, std::int64_t panel_stride) {
    gemm_pack_b_panels<nr>(b, panel_stride, [dst](strided_matrix<const T> p, std::int64_t at) {
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
struct gemm_host_kernel<host::isa::avx512_bf16, bfloat16> {
  using packed_type = std::uint16_t;  // bf16 bits
  static constexpr int mr = 12;
  static constexpr int nr = 32;
  static constexpr int k_group = 2;
  static constexpr gemm_block_sizes blocks = gemm_host_tuning<host::isa::avx512_bf16>::blocks;

  static void pack_a(strided_matrix<const bfloat16> a, std::uint16_t* dst,
                     std::int64_t panel_stride) {
    gemm_pack_a_panels<mr>(
        a, panel_stride,
        [dst](strided_matrix<const bfloat16> p, std::int64_t at) { pack_a_panel(p, dst + at); });
  }
  static void pack_b(strided_matrix<const bfloat16> b, std::uint16_t* dst,
                     std::int64_t panel_stride) {
    gemm_pack_b_panels<nr>(
        b, panel_stride,
        [dst](strided_matrix<const bfloat16> p, std::int64_t at) { pack_b_panel(p, dst + at); });
  }
  // One A panel (r ≤ 12 rows × kc) with K paired.
  static void pack_a_panel(strided_matrix<const bfloat16> a, std::uint16_t* TFM_RESTRICT dst) {
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
  // One B panel (kc × c ≤ 32 columns) with K paired.
  static void pack_b_panel(strided_matrix<const bfloat16> b, std::uint16_t* TFM_RESTRICT dst) {
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
