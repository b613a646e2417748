// tfm/nn/ops_host_mixed.hpp — host layer kernels for reduced-precision compute
// (nn::precision_policy<float, C> with C = bfloat16 or half; docs/model.md "Mixed precision").
//
// The recipe is PyTorch autocast's: matrix multiplies read their operands in C and accumulate in
// float, and their outputs are rounded to C once; everything else (norms, softmax, attention
// scores, GELU/SwiGLU, RoPE, the loss) computes in float from C or float inputs. Activations that
// feed or leave a matrix multiply are stored in C; the residual stream, norm statistics, the
// attention logsumexp/probabilities and every parameter gradient stay float.
//
// Kernels that round a float GEMM result to C go through a float tile of at most
// linear_scratch_floats(N, out) elements, so a C output never needs a float copy of its own size.
//
// Part of nn/ops_host.hpp (which includes it before host_backend): include that instead.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "tfm/backend/host/cpu.hpp"
#include "tfm/core/dtype.hpp"
#include "tfm/nn/attention_host.hpp"
#include "tfm/nn/math.hpp"

namespace tfm::nn::host::mixed {

// The compute types this header rounds to.
template <class C>
inline constexpr bool reduced_v = std::is_same_v<C, tfm::bfloat16> || std::is_same_v<C, tfm::half>;

// Value conversion between float and a storage type (float, bfloat16, half): one rounding, to
// nearest even, as CUDA's conversions do; an fp16 overflow becomes ±infinity.
template <class To, class From>
inline To cvt(From x) {
  if constexpr (std::is_same_v<To, From>)
    return x;
  else
    return static_cast<To>(static_cast<float>(x));
}

namespace detail {
inline constexpr std::int64_t chunk = 1 << 13;  // elements per parallel conversion chunk

#if TFM_HOST_X86_SIMD
// 8 floats to bfloat16, rounded to nearest even as cvt<bfloat16> does (NaN → bfloat16's NaN).
// Stream: from the first 16-byte boundary of y on, with streaming stores (no read for ownership,
// the lines go to memory, not the cache), then a store fence.
template <bool Stream = false>
TFM_TARGET_AVX2 inline void narrow_bf16_avx2(std::int64_t n, const float* x, tfm::bfloat16* y) {
  const __m256i one = _mm256_set1_epi32(1), bias = _mm256_set1_epi32(0x7FFF);
  const __m256i qnan = _mm256_set1_epi32(tfm::bfloat16(std::numeric_limits<float>::quiet_NaN()).bits());
  std::int64_t i = 0;
  if constexpr (Stream)
    for (; i < n && reinterpret_cast<std::uintptr_t>(y + i) % 16 != 0; ++i) y[i] = tfm::bfloat16(x[i]);
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256i u = _mm256_castps_si256(v);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), one);
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(bias, lsb)), 16);
    r = _mm256_blendv_epi8(r, qnan, _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    const __m128i packed = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
    if constexpr (Stream)
      _mm_stream_si128(reinterpret_cast<__m128i*>(y + i), packed);
    else
      _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), packed);
  }
  for (; i < n; ++i) y[i] = tfm::bfloat16(x[i]);
  if constexpr (Stream) _mm_sfence();  // weakly ordered: visible before the caller's join
}
// The same steps over 16 lanes (the results are narrow_bf16_avx2's bit for bit; the tail goes
// through it). Not vcvtneps2bf16: that instruction flushes subnormal inputs to zero and keeps
// NaN signs and payloads, so its bits differ from cvt<bfloat16>'s.
template <bool Stream = false>
TFM_TARGET_AVX512 inline void narrow_bf16_avx512(std::int64_t n, const float* x, tfm::bfloat16* y) {
  constexpr __mmask16 all = 0xFFFF;
  const __m512i one = _mm512_set1_epi32(1), bias = _mm512_set1_epi32(0x7FFF);
  const __m512i qnan = _mm512_set1_epi32(tfm::bfloat16(std::numeric_limits<float>::quiet_NaN()).bits());
  std::int64_t i = 0;
  if constexpr (Stream)
    for (; i < n && reinterpret_cast<std::uintptr_t>(y + i) % 32 != 0; ++i) y[i] = tfm::bfloat16(x[i]);
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    const __m512i u = _mm512_castps_si512(v);
    // (maskz forms with every lane set: GCC 12's unmasked ones start from an "undefined" vector
    // that -Wmaybe-uninitialized reports)
    const __m512i lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(all, u, 16), one);
    __m512i r = _mm512_maskz_srli_epi32(all, _mm512_add_epi32(u, _mm512_add_epi32(bias, lsb)), 16);
    r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), qnan);
    const __m256i packed = _mm512_maskz_cvtepi32_epi16(all, r);  // every lane is below 2^16
    if constexpr (Stream)
      _mm256_stream_si256(reinterpret_cast<__m256i*>(y + i), packed);
    else
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), packed);
  }
  if constexpr (Stream) _mm_sfence();
  narrow_bf16_avx2(n - i, x + i, y + i);
}
// fp16 with F16C (round to nearest even, overflow → ±infinity); blocks holding a NaN go
// through the scalar conversion (its canonical NaN).
TFM_TARGET_AVX2_F16C inline void narrow_f16_f16c(std::int64_t n, const float* x, tfm::half* y) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    const __m256 nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
    if (!_mm256_testz_ps(nan, nan)) {
      for (int j = 0; j < 8; ++j) y[i + j] = tfm::half(x[i + j]);
      continue;
    }
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) y[i] = tfm::half(x[i]);
}
TFM_TARGET_AVX2_F16C inline void widen_f16_f16c(std::int64_t n, const tfm::half* x, float* y) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
  for (; i < n; ++i) y[i] = float(x[i]);
}
#endif
}  // namespace detail

// One thread: y[i] = float(x[i]) / y[i] = C(x[i]) over n elements (vectorised where the CPU can).
template <class C>
void widen_n(std::int64_t n, const C* x, float* y) {
#if TFM_HOST_X86_SIMD
  if constexpr (std::is_same_v<C, tfm::half>)
    if (tfm::host::cpu_has_f16c() && host::detail::use_avx2()) return detail::widen_f16_f16c(n, x, y);
#endif
  for (std::int64_t i = 0; i < n; ++i) y[i] = cvt<float>(x[i]);  // bf16: a shift, auto-vectorised
}
// stream: bfloat16 with streaming stores where the CPU has AVX2 or AVX-512 (for copies too large to stay in
// cache, which the next reader would find in memory anyway); the same values either way.
template <class C>
void narrow_n(std::int64_t n, const float* x, C* y, [[maybe_unused]] bool stream = false) {
#if TFM_HOST_X86_SIMD
  if constexpr (std::is_same_v<C, tfm::bfloat16>) {
    if (host::detail::use_avx512())
      return stream ? detail::narrow_bf16_avx512<true>(n, x, y) : detail::narrow_bf16_avx512(n, x, y);
    if (host::detail::use_avx2())
      return stream ? detail::narrow_bf16_avx2<true>(n, x, y) : detail::narrow_bf16_avx2(n, x, y);
  }
  if constexpr (std::is_same_v<C, tfm::half>)
    if (tfm::host::cpu_has_f16c() && host::detail::use_avx2()) return detail::narrow_f16_f16c(n, x, y);
#endif
  for (std::int64_t i = 0; i < n; ++i) y[i] = cvt<C>(x[i]);
}

// The same over all threads.
template <class C>
void widen(std::int64_t n, const C* x, float* y) {
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < (n + detail::chunk - 1) / detail::chunk; ++c) {
    const std::int64_t a = c * detail::chunk;
    widen_n(std::min(n, a + detail::chunk) - a, x + a, y + a);
  }
}
template <class C>
void narrow(std::int64_t n, const float* x, C* y) {
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < (n + detail::chunk - 1) / detail::chunk; ++c) {
    const std::int64_t a = c * detail::chunk;
    narrow_n(std::min(n, a + detail::chunk) - a, x + a, y + a);
  }
}

// ---- linear layers ----
// Float tiles: at most tile_rows rows, and as many columns as fit 4 Mi floats (16 MiB).
inline constexpr std::int64_t tile_rows = 2048;
inline constexpr std::int64_t tile_floats = std::int64_t(1) << 22;
inline std::int64_t tile_cols(std::int64_t rows, std::int64_t cols) {
  return std::min(cols, std::max<std::int64_t>(64, tile_floats / std::max<std::int64_t>(rows, 1)));
}
inline std::size_t linear_scratch_floats(std::int64_t N, std::int64_t width) {
  const std::int64_t r = std::min(N, tile_rows);
  return std::size_t(r) * std::size_t(tile_cols(r, width));
}

// out[N, M] (type Y; row stride ld) = rnd(alpha·A·B + beta·out + bias), A·B given by `product`
// over float tiles: product(r0, rows, c0, cols, tile, ld_tile, epi) runs matmul_epilogue of rows
// [r0, r0 + rows) × columns [c0, c0 + cols) with `tile` as its C and `epi` as its epilogue. Each
// block of the product is rounded to Y while the GEMM has it in cache (with K in one KC block the
// tile is never written); beta = 0 never reads out. bias (C, may be null) has M entries.
template <class Y, class C, class Product>
void tiled_rounded(std::int64_t N, std::int64_t M, Y* out, std::int64_t ld, double beta, const C* bias, float* tile,
                   Product&& product) {
  const std::int64_t R = std::min(N, tile_rows);
  const std::int64_t CW = tile_cols(R, M);
  const float fb = float(beta);
  for (std::int64_t r0 = 0; r0 < N; r0 += R) {
    const std::int64_t rows = std::min(R, N - r0);
    for (std::int64_t c0 = 0; c0 < M; c0 += CW) {
      const std::int64_t cols = std::min(CW, M - c0);
      const auto epi = [&](const float* src, std::int64_t lds, std::int64_t i0, std::int64_t bi, std::int64_t j0,
                           std::int64_t bj) {
        constexpr std::int64_t piece = 256;  // columns per float buffer
        alignas(64) float t[piece];
        alignas(64) float w[piece];
        for (std::int64_t i = 0; i < bi; ++i) {
          const float* s = src + i * lds;
          Y* o = out + (r0 + i0 + i) * ld + c0 + j0;
          if (!bias && beta == 0) {
            narrow_n(bj, s, o);
            continue;
          }
          for (std::int64_t j = 0; j < bj; j += piece) {
            const std::int64_t n = std::min(piece, bj - j);
            std::copy(s + j, s + j + n, t);
            if (bias) {
              widen_n(n, bias + c0 + j0 + j, w);
              for (std::int64_t e = 0; e < n; ++e) t[e] += w[e];
            }
            if (beta != 0) {
              widen_n(n, o + j, w);
              for (std::int64_t e = 0; e < n; ++e) t[e] += fb * w[e];
            }
            narrow_n(n, t, o + j);
          }
        }
      };
      product(r0, rows, c0, cols, tile, cols, epi);
    }
  }
}

// y[N, out] = x[N, in]·Wᵀ + b; W [out, in] (in_out = false) or [in, out]. x, W, b in C; y in C
// (rounded once) or float. tile: linear_scratch_floats(N, out) floats (unused for a float y).
template <class C, class Y>
void linear_forward(std::int64_t N, int in, int out, const C* x, const C* W, bool in_out, const C* b, Y* y,
                    float* tile) {
  if constexpr (std::is_same_v<Y, float>) {
    const auto Wm = in_out ? mat(W, in, out, out) : mat(W, out, in, in).transposed();
    matmul<C>(1.0, mat(x, N, in, in), Wm, 0.0, mat_mut(y, N, out, out));
    if (b) {
#pragma omp parallel for schedule(static)
      for (std::int64_t n = 0; n < N; ++n)
        for (int j = 0; j < out; ++j) y[n * out + j] += cvt<float>(b[j]);
    }
  } else {
    tiled_rounded(N, out, y, out, 0.0, b, tile,
                  [&](std::int64_t r0, std::int64_t rows, std::int64_t c0, std::int64_t cols, float* t,
                      std::int64_t ldt, auto&& epi) {
                    // columns [c0, c0 + cols) of Wᵀ: rows of W [out, in], or columns of W [in, out]
                    const auto Wm = in_out ? mat(W + c0, in, cols, out) : mat(W + c0 * in, cols, in, in).transposed();
                    matmul_epilogue<C>(1.0, mat(x + r0 * in, rows, in, in), Wm, mat_mut(t, rows, cols, ldt), epi);
                  });
  }
}

// dx = beta·dx + dy·W (dx in C, rounded once, or float; null: skipped); dW += dyᵀ·x or xᵀ·dy
// (float, accumulated in float); db += Σ dy (float). dW / db null: skipped (frozen). overwrite:
// dW = …, db = … (their old contents never read; host::linear_backward).
// tile: linear_scratch_floats(N, in) floats; bscratch: linear_scratch_size(out) floats.
template <class C, class DX>
void linear_backward(std::int64_t N, int in, int out, const C* x, const C* W, bool in_out, const C* dy, DX* dx,
                     double beta, float* dW, float* db, float* tile, float* bscratch, bool overwrite = false) {
  const double wbeta = overwrite ? 0.0 : 1.0;
  if (dx) {
    if constexpr (std::is_same_v<DX, float>) {
      const auto Wm = in_out ? mat(W, in, out, out).transposed() : mat(W, out, in, in);
      matmul<C>(1.0, mat(dy, N, out, out), Wm, beta, mat_mut(dx, N, in, in));
    } else {
      tiled_rounded(N, in, dx, in, beta, static_cast<const C*>(nullptr), tile,
                    [&](std::int64_t r0, std::int64_t rows, std::int64_t c0, std::int64_t cols, float* t,
                        std::int64_t ldt, auto&& epi) {
                      // columns [c0, c0 + cols) of W as [out, in]
                      const auto Wm = in_out ? mat(W + c0 * out, cols, out, out).transposed() : mat(W + c0, out, cols, in);
                      matmul_epilogue<C>(1.0, mat(dy + r0 * out, rows, out, out), Wm, mat_mut(t, rows, cols, ldt), epi);
                    });
    }
  }
  if (!dW) {
  } else if (in_out) {  // dW [in, out] += xᵀ·dy
    matmul<C>(1.0, mat(x, N, in, in).transposed(), mat(dy, N, out, out), wbeta, mat_mut(dW, in, out, out));
  } else {  // dW [out, in] += dyᵀ·x
    matmul<C>(1.0, mat(dy, N, out, out).transposed(), mat(x, N, in, in), wbeta, mat_mut(dW, out, in, in));
  }
  if (db) {
    const int threads = max_threads();
    std::fill(bscratch, bscratch + std::size_t(out) * threads, 0.0f);
#pragma omp parallel
    {
      float* p = bscratch + std::size_t(out) * thread_id();
#pragma omp for schedule(static)
      for (std::int64_t n = 0; n < N; ++n)
        for (int j = 0; j < out; ++j) p[j] += cvt<float>(dy[n * out + j]);
    }
    if (overwrite) std::fill(db, db + out, 0.0f);
    for (int t = 0; t < threads; ++t)
      for (int j = 0; j < out; ++j) db[j] += bscratch[std::size_t(out) * t + j];
  }
}

// ---- low-rank adapters (see host::lora_forward): C operands, float accumulation ----
// t [N, r] = rnd(x·Aᵀ); y [N, rows] (row stride ldy) = rnd(y + scale·t·Bᵀ).
template <class C>
void lora_forward(std::int64_t N, int in, int rows, int r, const C* x, std::int64_t ldx, const C* A, const C* B,
                  double scale, C* t, C* y, std::int64_t ldy, float* tile) {
  tiled_rounded(N, r, t, r, 0.0, static_cast<const C*>(nullptr), tile,
                [&](std::int64_t r0, std::int64_t nr, std::int64_t c0, std::int64_t cols, float* tt, std::int64_t ldt,
                    auto&& epi) {
                  matmul_epilogue<C>(1.0, mat(x + r0 * ldx, nr, in, ldx), mat(A + c0 * in, cols, in, in).transposed(),
                                     mat_mut(tt, nr, cols, ldt), epi);
                });
  tiled_rounded(N, rows, y, ldy, 1.0, static_cast<const C*>(nullptr), tile,
                [&](std::int64_t r0, std::int64_t nr, std::int64_t c0, std::int64_t cols, float* tt, std::int64_t ldt,
                    auto&& epi) {
                  matmul_epilogue<C>(scale, mat(t + r0 * r, nr, r, r), mat(B + c0 * r, cols, r, r).transposed(),
                                     mat_mut(tt, nr, cols, ldt), epi);
                });
}
// dB += scale·dyᵀ·t; dt = rnd(scale·dy·B); dA += dtᵀ·x; dx = dx_beta·dx + dt·A (C rounded once,
// or float). As on the host path, dx may alias x.
template <class C, class DX>
void lora_backward(std::int64_t N, int in, int rows, int r, const C* x, std::int64_t ldx, const C* A, const C* B,
                   const C* t, const C* dy, std::int64_t ldy, double scale, float* dA, float* dB, C* dt, DX* dx,
                   std::int64_t lddx, double dx_beta, float* tile) {
  matmul<C>(scale, mat(dy, N, rows, ldy).transposed(), mat(t, N, r, r), 1.0, mat_mut(dB, rows, r, r));
  tiled_rounded(N, r, dt, r, 0.0, static_cast<const C*>(nullptr), tile,
                [&](std::int64_t r0, std::int64_t nr, std::int64_t c0, std::int64_t cols, float* tt, std::int64_t ldt,
                    auto&& epi) {
                  matmul_epilogue<C>(scale, mat(dy + r0 * ldy, nr, rows, ldy), mat(B + c0, rows, cols, r),
                                     mat_mut(tt, nr, cols, ldt), epi);
                });
  matmul<C>(1.0, mat<C>(dt, N, r, r).transposed(), mat(x, N, in, ldx), 1.0, mat_mut(dA, r, in, in));
  if constexpr (std::is_same_v<DX, float>) {
    matmul<C>(1.0, mat<C>(dt, N, r, r), mat(A, r, in, in), dx_beta, mat_mut(dx, N, in, lddx));
  } else {
    tiled_rounded(N, in, dx, lddx, dx_beta, static_cast<const C*>(nullptr), tile,
                  [&](std::int64_t r0, std::int64_t nr, std::int64_t c0, std::int64_t cols, float* tt, std::int64_t ldt,
                      auto&& epi) {
                    matmul_epilogue<C>(1.0, mat<C>(dt + r0 * r, nr, r, r), mat(A + c0, r, cols, in),
                                       mat_mut(tt, nr, cols, ldt), epi);
                  });
  }
}
// Inverted dropout with host::dropout_keep's mask, in float.
template <class C>
void lora_dropout(std::int64_t N, int in, const C* x, std::int64_t ldx, C* y, std::uint64_t seed, std::uint64_t stream,
                  double p) {
  const float s = float(1.0 / (1.0 - p));
#pragma omp parallel for schedule(static)
  for (std::int64_t n = 0; n < N; ++n)
    for (int c = 0; c < in; ++c) {
      const std::uint64_t e = std::uint64_t(n) * std::uint64_t(in) + std::uint64_t(c);
      y[n * in + c] = host::dropout_keep(seed, stream, e, p) ? cvt<C>(cvt<float>(x[n * ldx + c]) * s) : cvt<C>(0.0f);
    }
}
template <class C, class DX>
void lora_dropout_backward(std::int64_t N, int in, const C* g, DX* dx, std::int64_t lddx, std::uint64_t seed,
                           std::uint64_t stream, double p) {
  const float s = float(1.0 / (1.0 - p));
#pragma omp parallel for schedule(static)
  for (std::int64_t n = 0; n < N; ++n)
    for (int c = 0; c < in; ++c) {
      const std::uint64_t e = std::uint64_t(n) * std::uint64_t(in) + std::uint64_t(c);
      if (host::dropout_keep(seed, stream, e, p))
        dx[n * lddx + c] = cvt<DX>(cvt<float>(dx[n * lddx + c]) + cvt<float>(g[n * in + c]) * s);
    }
}

// ---- element-wise ----
// GELU (tanh) through float chunks: the float kernels of ops_host.hpp on widened copies.
template <class C>
void gelu_forward(std::int64_t n, const C* x, C* y) {
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < (n + detail::chunk - 1) / detail::chunk; ++c) {
    alignas(64) float buf[detail::chunk];
    const std::int64_t a = c * detail::chunk, m = std::min(n, a + detail::chunk) - a;
    widen_n(m, x + a, buf);
    if (!host::detail::gelu_forward_simd(0, m, buf, buf))
      for (std::int64_t i = 0; i < m; ++i) buf[i] = math::gelu_tanh(buf[i]);
    narrow_n(m, buf, y + a);
  }
}
template <class C>
void gelu_backward(std::int64_t n, const C* x, const C* dy, C* dx) {
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < (n + detail::chunk - 1) / detail::chunk; ++c) {
    alignas(64) float xb[detail::chunk];
    alignas(64) float gb[detail::chunk];
    const std::int64_t a = c * detail::chunk, m = std::min(n, a + detail::chunk) - a;
    widen_n(m, x + a, xb);
    widen_n(m, dy + a, gb);
    if (!host::detail::gelu_backward_simd(0, m, xb, gb, gb))
      for (std::int64_t i = 0; i < m; ++i) gb[i] *= math::gelu_tanh_grad(xb[i]);
    narrow_n(m, gb, dx + a);
  }
}

// SwiGLU, RoPE and the residual add: host::swiglu_forward / backward, rope_apply and add take
// compute-type data directly (float math, one rounding per result).

// ---- softmax cross-entropy over C logits (computed in float; see host::xent_forward) ----
// Each row is widened into a float buffer, and host::detail's row kernels run on it.
// The forward over every row, and with dz the backward of each row right after it (one widening
// per row, and the forward's exponentials become the gradient: xent_row_backward's values bit for
// bit); `what` names the caller in errors.
template <class C>
double xent_rows(const char* what, std::int64_t N, int V, std::int64_t ld, const C* z, const std::int32_t* y,
                 int ignore_index, float* lse, float* losses, std::int64_t& count, double scale, C* dz) {
  host::check_targets(N, V, y, ignore_index);
  expects<invalid_argument>(ld >= V, what, ": row stride ", ld, " is below the vocabulary ", V);
  double total = 0;
  std::int64_t cnt = 0;
#pragma omp parallel reduction(+ : total, cnt)
  {
    std::vector<float> row(std::size_t(V) + 16);
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < N; ++n) {
      widen_n(V, z + n * ld, row.data());
      total += host::detail::xent_row_forward(row.data(), V, y[n], ignore_index, lse[n], losses[n], scale,
                                              dz ? row.data() : nullptr, V);
      cnt += y[n] != ignore_index;
      if (dz) {
        C* d = dz + n * ld;
        narrow_n(V, row.data(), d);  // the gradient, or zeros for an ignored target
        std::fill(d + V, d + ld, cvt<C>(0.0f));
      }
    }
  }
  count = cnt;
  return total;
}
template <class C>
double xent_forward(std::int64_t N, int V, std::int64_t ld, const C* z, const std::int32_t* y, int ignore_index,
                    float* lse, float* losses, std::int64_t& count) {
  return xent_rows<C>("xent_forward", N, V, ld, z, y, ignore_index, lse, losses, count, 0.0, nullptr);
}
// One row of the backward from its float copy `row` (overwritten): dz rounded to C, 0 for an
// ignored target and in the padding columns V … ld−1.
template <class C>
void xent_row_backward(float* row, C* d, int V, std::int64_t ld, std::int32_t y, int ignore_index, float lse,
                       double scale) {
  std::fill(d + V, d + ld, cvt<C>(0.0f));
  if (y == ignore_index || scale == 0) {
    std::fill(d, d + V, cvt<C>(0.0f));
    return;
  }
  host::detail::xent_row_backward(row, row, V, V, y, ignore_index, lse, scale);
  narrow_n(V, row, d);
}
// dz = scale·(softmax(z) − onehot(y)) in float, rounded to C; rows with ignored targets and the
// padding columns V … ld−1 get 0. In place over z allowed. Targets are checked as in xent_forward.
template <class C>
void xent_backward(std::int64_t N, int V, std::int64_t ld, const C* z, const std::int32_t* y, int ignore_index,
                   const float* lse, double scale, C* dz) {
  host::check_targets(N, V, y, ignore_index);
  expects<invalid_argument>(ld >= V, "xent_backward: row stride ", ld, " is below the vocabulary ", V);
#pragma omp parallel
  {
    std::vector<float> row(std::size_t(V) + 16);
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < N; ++n) {
      if (y[n] != ignore_index && scale != 0) widen_n(V, z + n * ld, row.data());
      xent_row_backward(row.data(), dz + n * ld, V, ld, y[n], ignore_index, lse[n], scale);
    }
  }
}
// Both in one pass over the logits (one widening per row): bit for bit the two above.
template <class C>
double xent_forward_backward(std::int64_t N, int V, std::int64_t ld, const C* z, const std::int32_t* y,
                             int ignore_index, float* lse, float* losses, std::int64_t& count, double scale, C* dz) {
  return xent_rows<C>("xent_forward_backward", N, V, ld, z, y, ignore_index, lse, losses, count, scale, dz);
}

// ---- attention: C operands, float kernels ----
// Float copies of the operands live in `wide` (attention_wide_floats(s) floats): q, k, v of the
// fused [N, qkv] buffer and the output; stats (naive probabilities or flash logsumexp) are float.
inline std::size_t attention_wide_floats(const attention_shape& s) {
  const std::size_t N = std::size_t(s.batch) * s.seq, HD = std::size_t(s.heads) * s.head_dim;
  return 2 * N * std::size_t(s.ld_q) + 2 * N * HD;  // qkv, dqkv, out, dout
}
// The float copies inside `wide` (host and CUDA backends): qkv and dqkv [N, ld_q], out and
// dout [N, H·hd].
struct attention_wide {
  float *qkv, *dqkv, *out, *dout;
  attention_wide(const attention_shape& s, float* wide) {
    const std::int64_t N = std::int64_t(s.batch) * s.seq, HD = std::int64_t(s.heads) * s.head_dim;
    qkv = wide;
    dqkv = qkv + N * s.ld_q;
    out = dqkv + N * s.ld_q;
    dout = out + N * HD;
  }
};

// q, k, v are views into one fused C buffer starting at q (strides s.ld_q == ld_k == ld_v).
template <bool Flash, int HD, class C>
void attention_forward(const attention_shape& s, const attention_mask& m, const C* q, const C* k, const C* v, C* o,
                       float* stats, float* wide) {
  const std::int64_t N = std::int64_t(s.batch) * s.seq, HDim = std::int64_t(s.heads) * s.head_dim;
  const attention_wide w(s, wide);
  float* qf = w.qkv;
  float* of = w.out;
  widen(N * s.ld_q, q, qf);
  const float* kf = qf + (k - q);
  const float* vf = qf + (v - q);
  if constexpr (Flash)
    attention_flash_forward<float, HD>(s, m, qf, kf, vf, of, stats);
  else
    attention_naive_forward<float, HD>(s, m, qf, kf, vf, of, stats);
  narrow(N * HDim, of, o);
}
template <bool Flash, int HD, class C>
void attention_backward(const attention_shape& s, const attention_mask& m, const C* q, const C* k, const C* v,
                        const C* o, const C* dout, const float* stats, C* dq, C* dk, C* dv, float* scratch,
                        float* wide) {
  const std::int64_t N = std::int64_t(s.batch) * s.seq, HDim = std::int64_t(s.heads) * s.head_dim;
  const attention_wide w(s, wide);
  float *qf = w.qkv, *dqf = w.dqkv, *of = w.out, *dof = w.dout;
  widen(N * s.ld_q, q, qf);
  widen(N * HDim, dout, dof);
  const float* kf = qf + (k - q);
  const float* vf = qf + (v - q);
  float* dkf = dqf + (dk - dq);
  float* dvf = dqf + (dv - dq);
  if constexpr (Flash) {
    widen(N * HDim, o, of);
    attention_flash_backward<float, HD>(s, m, qf, kf, vf, of, dof, stats, dqf, dkf, dvf, scratch);
  } else {
    attention_naive_backward<float, HD>(s, m, qf, kf, vf, stats, dof, dqf, dkf, dvf, scratch);
  }
  narrow(N * s.ld_q, dqf, dq);
}

}  // namespace tfm::nn::host::mixed
