// tfm/ops/detail/gemm_host_amx.hpp — the AMX host GEMM micro-kernel for bf16 operands (Intel
// Sapphire Rapids and later): tdpbf16ps on 16×16 fp32 tiles, compiled through TFM_TARGET_AMX_BF16
// so it exists in every x86 build and runs where cpu_supports(isa::amx_bf16).
//
// Register tile: 32×32 of C in four accumulator tiles (tmm0..3), fed per 32-deep K step by two A
// tiles (rows 0..15 and 16..31, tmm4/5) and two B tiles (columns 0..15 and 16..31, tmm6/7):
// four tile loads per four tdpbf16ps. Every tile is 16 rows × 64 bytes, so one configuration
// serves all eight; each thread loads it at the start of each GEMM (prepare_thread) and releases
// the tiles at the end (finish_thread).
//
// Packed layouts, K in steps of 32 (k_group; zero padded):
//   A panel (32 rows): element (i, k) at (k/32)·1024 + i·32 + k%32
//                      (a step is 32 rows of 32 bf16: A tiles at +0 and +512, row pitch 64 B);
//   B panel (32 cols): element (k, j) at
//                      (k/32)·1024 + (j/16)·512 + ((k%32)/2)·32 + (j%16)·2 + k%2
//                      (a step is two B tiles in the pair-interleaved layout tdpbf16ps reads).
// Packing reads rows or columns with AVX-512 where one stride is 1 (a 16×16 transpose of K pairs
// for the layouts that need it) and falls back to element loops for other strides.
//
// Numerics: products of bf16 are exact in fp32 and tdpbf16ps adds them in fp32, round to nearest
// even, but it treats bf16 subnormal inputs as zero and flushes subnormal results: values below
// 2^-126 in magnitude do not contribute (as with vdpbf16ps in the AVX512_BF16 kernel; the fp32
// kernels and gemm_ref keep them).
#pragma once
#include <cstdint>

#include "tfm/backend/host/cpu.hpp"
#include "tfm/core/config.hpp"
#include "tfm/ops/detail/gemm_host_avx512.hpp"
#include "tfm/ops/detail/gemm_host_pack.hpp"
#include "tfm/ops/detail/gemm_host_tuning.hpp"

#if TFM_HOST_X86_SIMD && defined(__x86_64__)
#include <immintrin.h>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
namespace tfm::detail {

inline constexpr int amx_mr = 32;
inline constexpr int amx_nr = 32;
inline constexpr int amx_k = 32;             // K per tdpbf16ps step
inline constexpr int amx_step = 32 * 32;     // bf16 elements of one packed K step of a panel
inline constexpr int amx_half_step = 16 * 32;  // one tile of a step

// The tile configuration (palette 1): eight tiles of 16 rows × 64 bytes.
struct alignas(64) amx_tile_config {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t bytes_per_row[16] = {64, 64, 64, 64, 64, 64, 64, 64};
  std::uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
};

// Loads the tile configuration on the calling thread. The blocked driver calls it (as
// Kernel::prepare_thread) on every thread of every GEMM before the first micro-kernel, so a
// configuration that other code on the thread left behind (another library's AMX kernels) never
// reaches ours; ldtilecfg once per thread per GEMM costs nothing measurable.
TFM_TARGET_AMX_BF16 inline void amx_configure_thread() {
  static const amx_tile_config config{};
  _tile_loadconfig(&config);
}

template <class T>
struct gemm_host_kernel<host::isa::amx_bf16, T> : gemm_host_kernel<host::isa::avx512, T> {};

template <>
struct gemm_host_kernel<host::isa::amx_bf16, bfloat16>
    : gemm_panelwise_packing<gemm_host_kernel<host::isa::amx_bf16, bfloat16>, bfloat16,
                             std::uint16_t> {
  using packed_type = std::uint16_t;  // bf16 bits
  static constexpr int mr = amx_mr;
  static constexpr int nr = amx_nr;
  static constexpr int k_group = amx_k;
  static constexpr gemm_block_sizes blocks = gemm_host_tuning<host::isa::amx_bf16>::blocks;


  // One A panel: a.rows ≤ 32 rows × a.cols (= kk) columns.
  TFM_TARGET_AMX_BF16 static void pack_a_panel(strided_matrix<const bfloat16> a,
                                               std::uint16_t* TFM_RESTRICT dst) {
    const std::int64_t kk = a.cols, rows = a.rows;
    for (std::int64_t k0 = 0; k0 < kk; k0 += amx_k) {
      std::uint16_t* step = dst + (k0 / amx_k) * amx_step;
      const std::int64_t width = kk - k0 < amx_k ? kk - k0 : amx_k;
      if (a.col_stride == 1) {  // rows are contiguous: copy 32 K values per row
        for (int i = 0; i < mr; ++i) {
          const __m512i v = i < rows ? bf16_load_masked(&a(i, k0), width) : _mm512_setzero_si512();
          _mm512_store_si512(step + i * amx_k, v);
        }
      } else if (a.row_stride == 1) {  // columns are contiguous: transpose K pairs
        const __m512i lo_idx = bf16_interleave_index(0), hi_idx = bf16_interleave_index(16);
        __m512i lo[16], hi[16];  // lo[q]: dwords (A(i, 2q), A(i, 2q + 1)) for i < 16; hi: i ≥ 16
        for (int q = 0; q < 16; ++q) {
          const __m512i c0 =
              2 * q < width ? bf16_load_masked(&a(0, k0 + 2 * q), rows) : _mm512_setzero_si512();
          const __m512i c1 = 2 * q + 1 < width ? bf16_load_masked(&a(0, k0 + 2 * q + 1), rows)
                                               : _mm512_setzero_si512();
          lo[q] = _mm512_permutex2var_epi16(c0, lo_idx, c1);
          hi[q] = _mm512_permutex2var_epi16(c0, hi_idx, c1);
        }
        transpose_16x16_epi32(lo);
        transpose_16x16_epi32(hi);
        for (int i = 0; i < 16; ++i) {
          _mm512_store_si512(step + i * amx_k, lo[i]);
          _mm512_store_si512(step + (16 + i) * amx_k, hi[i]);
        }
      } else {
        for (int i = 0; i < mr; ++i)
          for (int k = 0; k < amx_k; ++k)
            step[i * amx_k + k] = i < rows && k < width ? a(i, k0 + k).bits() : 0;
      }
    }
  }

  // One B panel: b.rows (= kk) × b.cols ≤ 32 columns.
  TFM_TARGET_AMX_BF16 static void pack_b_panel(strided_matrix<const bfloat16> b,
                                               std::uint16_t* TFM_RESTRICT dst) {
    const std::int64_t kk = b.rows, cols = b.cols;
    for (std::int64_t k0 = 0; k0 < kk; k0 += amx_k) {
      std::uint16_t* step = dst + (k0 / amx_k) * amx_step;
      const std::int64_t width = kk - k0 < amx_k ? kk - k0 : amx_k;
      if (b.col_stride == 1) {  // rows are contiguous: interleave row pairs
        const __m512i lo_idx = bf16_interleave_index(0), hi_idx = bf16_interleave_index(16);
        for (int q = 0; q < 16; ++q) {
          const __m512i r0 =
              2 * q < width ? bf16_load_masked(&b(k0 + 2 * q, 0), cols) : _mm512_setzero_si512();
          const __m512i r1 = 2 * q + 1 < width ? bf16_load_masked(&b(k0 + 2 * q + 1, 0), cols)
                                               : _mm512_setzero_si512();
          _mm512_store_si512(step + q * 32, _mm512_permutex2var_epi16(r0, lo_idx, r1));
          _mm512_store_si512(step + amx_half_step + q * 32,
                             _mm512_permutex2var_epi16(r0, hi_idx, r1));
        }
      } else if (b.row_stride == 1) {  // columns are contiguous: a column's K pairs are dwords
        for (int h = 0; h < 2; ++h) {
          __m512i r[16];  // r[j]: the 16 K pairs of column 16h + j
          for (int j = 0; j < 16; ++j) {
            const int col = 16 * h + j;
            r[j] = col < cols ? bf16_load_masked(&b(k0, col), width) : _mm512_setzero_si512();
          }
          transpose_16x16_epi32(r);
          for (int q = 0; q < 16; ++q) _mm512_store_si512(step + h * amx_half_step + q * 32, r[q]);
        }
      } else {
        for (int k = 0; k < amx_k; ++k)
          for (int j = 0; j < nr; ++j)
            step[(j / 16) * amx_half_step + (k / 2) * 32 + (j % 16) * 2 + k % 2] =
                k < width && j < cols ? b(k0 + k, j).bits() : 0;
      }
    }
  }

  static void prepare_thread() { amx_configure_thread(); }
  // Back to the tiles' initial state once the thread's share of the GEMM is done: the OS then
  // need not save and restore 8 KiB of tile data at each context switch in between.
  TFM_TARGET_AMX_BF16 static void finish_thread() { _tile_release(); }

  static void run(std::int64_t kc, const std::uint16_t* a, const std::uint16_t* b,
                  const gemm_tile_out& out) {
    micro(kc, a, b, out);
  }

  // acc = A panel (32 × kc) · B panel (kc × 32), then the C update. A whole 32×32 tile with
  // alpha = 1, beta ∈ {0, 1} and unit column stride goes straight between C and the tiles.
  TFM_TARGET_AMX_BF16 TFM_HOST_NOINLINE static void micro(std::int64_t kc,
                                                          const std::uint16_t* TFM_RESTRICT a,
                                                          const std::uint16_t* TFM_RESTRICT b,
                                                          const gemm_tile_out& out) {
    const bool direct = out.col_stride == 1 && out.m == mr && out.n == nr && out.alpha == 1.0f &&
                        (out.beta == 0.0f || out.beta == 1.0f);
    const std::int64_t c_pitch = out.row_stride * std::int64_t(sizeof(float));
    float* const c = out.c;
    if (direct && out.beta == 1.0f) {
      _tile_loadd(0, c, c_pitch);
      _tile_loadd(1, c + 16, c_pitch);
      _tile_loadd(2, c + 16 * out.row_stride, c_pitch);
      _tile_loadd(3, c + 16 * out.row_stride + 16, c_pitch);
    } else {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
    }
    const std::int64_t steps = (kc + amx_k - 1) / amx_k;
    for (std::int64_t s = 0; s < steps; ++s) {
      const std::uint16_t* as = a + s * amx_step;
      const std::uint16_t* bs = b + s * amx_step;
      _tile_loadd(4, as, 64);
      _tile_loadd(6, bs, 64);
      _tile_loadd(5, as + amx_half_step, 64);
      _tile_loadd(7, bs + amx_half_step, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    if (direct) {
      _tile_stored(0, c, c_pitch);
      _tile_stored(1, c + 16, c_pitch);
      _tile_stored(2, c + 16 * out.row_stride, c_pitch);
      _tile_stored(3, c + 16 * out.row_stride + 16, c_pitch);
      return;
    }
    alignas(64) float acc[mr * nr];
    _tile_stored(0, acc, nr * 4);
    _tile_stored(1, acc + 16, nr * 4);
    _tile_stored(2, acc + 16 * nr, nr * 4);
    _tile_stored(3, acc + 16 * nr + 16, nr * 4);
    if (out.col_stride != 1) {
      gemm_store_tile<mr, nr>(acc, out);
      return;
    }
    const __m512 alpha = _mm512_set1_ps(out.alpha), beta = _mm512_set1_ps(out.beta);
    for (int i = 0; i < out.m; ++i) {
      float* ci = c + i * out.row_stride;
      for (int h = 0; h < 2; ++h) {
        const int n = out.n - 16 * h;
        if (n <= 0) break;
        const __mmask16 mask = n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
        __m512 v = _mm512_mul_ps(alpha, _mm512_load_ps(acc + i * nr + 16 * h));
        if (out.beta != 0.0f)
          v = _mm512_fmadd_ps(beta, _mm512_maskz_loadu_ps(mask, ci + 16 * h), v);
        _mm512_mask_storeu_ps(ci + 16 * h, mask, v);
      }
    }
  }
};

}  // namespace tfm::detail
#pragma GCC diagnostic pop
#endif  // TFM_HOST_X86_SIMD && __x86_64__
