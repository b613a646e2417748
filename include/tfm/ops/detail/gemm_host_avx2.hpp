// tfm/ops/detail/gemm_host_avx2.hpp — the AVX2+FMA host GEMM micro-kernel (6×16 tile: twelve
// ymm accumulators, two B vectors and one A broadcast fill 15 of the 16 registers) and its
// packing routines. bf16 and fp16 inputs are widened to fp32 while packing. Compiled through
// TFM_TARGET_AVX2, so it exists in every x86 build and runs where cpu_supports(isa::avx2); fp16
// packing also needs F16C, which it checks for itself (see gemm_cpu_has_f16c).
#pragma once
#include <concepts>
#include <cstdint>

#include "tfm/backend/host/cpu.hpp"
#include "tfm/backend/host/simd.hpp"
#include "tfm/core/config.hpp"
#include "tfm/ops/detail/gemm_host_pack.hpp"
#include "tfm/ops/detail/gemm_host_tuning.hpp"

#if TFM_HOST_X86_SIMD
// The packing routines below are compiled for F16C as well (TFM_TARGET_AVX2_F16C), so that the
// fp16 load inlines into them (a function cannot inline one compiled for more instructions than
// itself). Only that load emits F16C instructions: fp32 and bf16 packing runs where AVX2 alone
// does.

// These functions pass vectors by value only to each other, all compiled for AVX2.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
namespace tfm::detail {

inline bool gemm_cpu_has_f16c() { return host::cpu_has_f16c(); }

TFM_TARGET_AVX2 inline __m256 gemm_avx2_load8(const float* p) { return host::avx2::load8_f32(p); }
TFM_TARGET_AVX2 inline __m256 gemm_avx2_load8(const bfloat16* p) {
  return host::avx2::load8_bf16_as_f32(p);
}
// 8 consecutive fp16 values widened to fp32; exact. (NaNs keep their payload, where
// float(half) returns CUDA's canonical NaN: a NaN either way.)
TFM_TARGET_AVX2_F16C inline __m256 gemm_avx2_load8(const half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// One K-step of the 6×16 tile: acc(i, :) += A(i, k)·B(k, :).
TFM_TARGET_AVX2 inline void gemm_avx2_6x16_step(const float* TFM_RESTRICT a,
                                                const float* TFM_RESTRICT b, __m256 (&acc)[6][2]) {
  const __m256 b0 = _mm256_load_ps(b);
  const __m256 b1 = _mm256_load_ps(b + 8);
  TFM_UNROLL
  for (int i = 0; i < 6; ++i) {
    const __m256 ai = _mm256_broadcast_ss(a + i);
    acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
    acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
  }
}

// acc = A panel (6 × kc) · B panel (kc × 16), then the C update.
TFM_TARGET_AVX2 TFM_HOST_NOINLINE inline void gemm_micro_avx2_6x16(std::int64_t kc,
                                                                   const float* TFM_RESTRICT a,
                                                                   const float* TFM_RESTRICT b,
                                                                   const gemm_tile_out& out) {
  constexpr int mr = 6;
  constexpr int nr = 16;
  // The tile of C is needed only after the K loop: start fetching it now (C is often too big
  // for L2, and waiting for it at the end cost ~20% at N = 2304).
  for (int i = 0; i < out.m; ++i) {
    const float* ci = out.c + i * out.row_stride;
    _mm_prefetch(reinterpret_cast<const char*>(ci), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(ci + (out.n - 1) * out.col_stride), _MM_HINT_T0);
  }
  __m256 acc[mr][2];
  TFM_UNROLL
  for (int i = 0; i < mr; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();

  // A streams from L2 (6 floats per step): fetch it 16 steps ahead, two lines per 4 steps.
  std::int64_t k = 0;
  for (; k + 4 <= kc; k += 4) {
    _mm_prefetch(reinterpret_cast<const char*>(a + 16 * mr), _MM_HINT_T0);
    gemm_avx2_6x16_step(a, b, acc);
    gemm_avx2_6x16_step(a + mr, b + nr, acc);
    _mm_prefetch(reinterpret_cast<const char*>(a + 16 * mr + 16), _MM_HINT_T0);
    gemm_avx2_6x16_step(a + 2 * mr, b + 2 * nr, acc);
    gemm_avx2_6x16_step(a + 3 * mr, b + 3 * nr, acc);
    a += 4 * mr;
    b += 4 * nr;
  }
  for (; k < kc; ++k) {
    gemm_avx2_6x16_step(a, b, acc);
    a += mr;
    b += nr;
  }

  if (out.col_stride == 1 && out.n == nr) {
    const __m256 alpha = _mm256_set1_ps(out.alpha);
    const __m256 beta = _mm256_set1_ps(out.beta);
    TFM_UNROLL
    for (int i = 0; i < mr; ++i) {
      if (i >= out.m) break;
      float* ci = out.c + i * out.row_stride;
      __m256 v0 = _mm256_mul_ps(alpha, acc[i][0]);
      __m256 v1 = _mm256_mul_ps(alpha, acc[i][1]);
      if (out.beta != 0.0f) {
        v0 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(ci), v0);
        v1 = _mm256_fmadd_ps(beta, _mm256_loadu_ps(ci + 8), v1);
      }
      _mm256_storeu_ps(ci, v0);
      _mm256_storeu_ps(ci + 8, v1);
    }
    return;
  }
  alignas(32) float tile[mr * nr];
  TFM_UNROLL
  for (int i = 0; i < mr; ++i) {
    _mm256_store_ps(tile + i * nr, acc[i][0]);
    _mm256_store_ps(tile + i * nr + 8, acc[i][1]);
  }
  gemm_store_tile<mr, nr>(tile, out);
}

// A panel of 6 rows. Rows contiguous in K (A row-major): 8×8 transposes of 8 K-steps, the
// two spare rows zero; the 8-wide stores overlap by two and are written in order.
template <class T>
TFM_TARGET_AVX2_F16C void gemm_pack_a_panel_avx2_6(strided_matrix<const T> a,
                                                   float* TFM_RESTRICT dst) {
  constexpr int mr = 6;
  if (a.rows != mr || a.col_stride != 1) {
    gemm_pack_a_panel_generic<mr>(a, dst);
    return;
  }
  const std::int64_t kc = a.cols;
  const T* row[mr];
  for (int i = 0; i < mr; ++i) row[i] = a.data + i * a.row_stride;
  std::int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    __m256 v[8];
    TFM_UNROLL
    for (int i = 0; i < mr; ++i) v[i] = gemm_avx2_load8(row[i] + k);
    v[6] = v[7] = _mm256_setzero_ps();
    host::avx2::transpose8x8(v);
    float* d = dst + k * mr;
    TFM_UNROLL
    for (int j = 0; j < 7; ++j) _mm256_storeu_ps(d + j * mr, v[j]);
    _mm_storeu_ps(d + 7 * mr, _mm256_castps256_ps128(v[7]));
    _mm_storel_pi(reinterpret_cast<__m64*>(d + 7 * mr + 4), _mm256_extractf128_ps(v[7], 1));
  }
  for (; k < kc; ++k) {
    for (int i = 0; i < mr; ++i) dst[k * mr + i] = gemm_to_float(row[i][k]);
  }
}

// B panel of 16 columns. Rows contiguous in N (B row-major): two 8-wide copies per K-step.
// Columns contiguous in K (B transposed): 8×8 transposes.
template <class T>
TFM_TARGET_AVX2_F16C void gemm_pack_b_panel_avx2_16(strided_matrix<const T> b,
                                                    float* TFM_RESTRICT dst) {
  constexpr int nr = 16;
  const std::int64_t kc = b.rows;
  if (b.cols == nr && b.col_stride == 1) {
    for (std::int64_t k = 0; k < kc; ++k) {
      const T* s = b.data + k * b.row_stride;
      _mm256_store_ps(dst + k * nr, gemm_avx2_load8(s));
      _mm256_store_ps(dst + k * nr + 8, gemm_avx2_load8(s + 8));
    }
    return;
  }
  if (b.cols == nr && b.row_stride == 1) {
    std::int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      TFM_UNROLL
      for (int h = 0; h < 2; ++h) {
        __m256 v[8];
        TFM_UNROLL
        for (int j = 0; j < 8; ++j) v[j] = gemm_avx2_load8(b.data + (h * 8 + j) * b.col_stride + k);
        host::avx2::transpose8x8(v);
        TFM_UNROLL
        for (int kk = 0; kk < 8; ++kk) _mm256_store_ps(dst + (k + kk) * nr + h * 8, v[kk]);
      }
    }
    for (; k < kc; ++k) {
      for (int j = 0; j < nr; ++j) dst[k * nr + j] = gemm_to_float(b.data[j * b.col_stride + k]);
    }
    return;
  }
  gemm_pack_b_panel_generic<nr>(b, dst);
}

// The panels of a B block (kc × nc), panel q at dst + q·panel_stride. Row-major B is copied
// eight rows at a time across all panels: long sequential reads of each row.
template <class T>
TFM_TARGET_AVX2_F16C void gemm_pack_b_avx2_16(strided_matrix<const T> b, float* TFM_RESTRICT dst,
                                              std::int64_t panel_stride) {
  constexpr int nr = 16;
  const std::int64_t kc = b.rows;
  const std::int64_t full = b.cols / nr;
  if (b.col_stride == 1) {
    for (std::int64_t k0 = 0; k0 < kc; k0 += 8) {
      const int kk = static_cast<int>(kc - k0 < 8 ? kc - k0 : 8);
      for (std::int64_t q = 0; q < full; ++q) {
        const T* s = b.data + k0 * b.row_stride + q * nr;
        float* d = dst + q * panel_stride + k0 * nr;
        for (int k = 0; k < kk; ++k) {
          _mm256_store_ps(d + k * nr, gemm_avx2_load8(s + k * b.row_stride));
          _mm256_store_ps(d + k * nr + 8, gemm_avx2_load8(s + k * b.row_stride + 8));
        }
      }
    }
  } else {
    for (std::int64_t q = 0; q < full; ++q) {
      gemm_pack_b_panel_avx2_16(sub_matrix(b, 0, q * nr, kc, nr), dst + q * panel_stride);
    }
  }
  if (full * nr < b.cols) {
    gemm_pack_b_panel_generic<nr>(sub_matrix(b, 0, full * nr, kc, b.cols - full * nr),
                                  dst + full * panel_stride);
  }
}

template <host_gemm_input T>
struct gemm_host_kernel<host::isa::avx2, T> {
  using packed_type = float;
  static constexpr int mr = 6;
  static constexpr int nr = 16;
  static constexpr int k_group = 1;
  static constexpr gemm_block_sizes blocks = gemm_host_tuning<host::isa::avx2>::blocks;

  static void pack_a(strided_matrix<const T> a, float* dst, std::int64_t panel_stride) {
    if (!vector_packing()) {
      gemm_pack_a_panels<mr>(a, panel_stride, [dst](strided_matrix<const T> p, std::int64_t at) {
        gemm_pack_a_panel_generic<mr>(p, dst + at);
      });
      return;
    }
    gemm_pack_a_panels<mr>(a, panel_stride, [dst](strided_matrix<const T> p, std::int64_t at) {
      gemm_pack_a_panel_avx2_6(p, dst + at);
    });
  }
  static void pack_b(strided_matrix<const T> b, float* dst, std::int64_t panel_stride) {
    if (!vector_packing()) {
      gemm_pack_b_panels<nr>(b, panel_stride, [dst](strided_matrix<const T> p, std::int64_t at) {
        gemm_pack_b_panel_generic<nr>(p, dst + at);
      });
      return;
    }
    gemm_pack_b_avx2_16(b, dst, panel_stride);
  }
  static void run(std::int64_t kc, const float* a, const float* b, const gemm_tile_out& out) {
    gemm_micro_avx2_6x16(kc, a, b, out);
  }
  // fp16 is widened with F16C where the CPU has it, else element by element (portable packing).
  static bool vector_packing() { return !std::same_as<T, half> || gemm_cpu_has_f16c(); }
};

}  // namespace tfm::detail
#pragma GCC diagnostic pop
#endif  // TFM_HOST_X86_SIMD
