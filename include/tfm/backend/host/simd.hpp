// tfm/backend/host/simd.hpp — small x86 SIMD building blocks shared by host kernels: loads that
// widen bf16 to fp32, an 8×8 fp32 transpose and exp of 8 or 16 floats. Each is compiled for the
// instruction set in its name (TFM_TARGET_*), so callers must check host::cpu_supports first.
#pragma once
#include <cstdint>
#include <cstring>

#include "tfm/backend/host/cpu.hpp"
#include "tfm/core/config.hpp"

#if TFM_HOST_X86_SIMD
#include <immintrin.h>
#endif

namespace tfm::host {

// bf16 bits to fp32: bf16 is the top half of an fp32, so widening is a 16-bit shift.
inline float bf16_bits_to_float(std::uint16_t bits) {
  const std::uint32_t u = std::uint32_t{bits} << 16;
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

#if TFM_HOST_X86_SIMD
// The constants of avx2::exp8 and avx512::exp16 (one definition, so the two agree lane for lane):
// the input clamp, log2(e), ln 2 split into a head exact in float and a tail, and the Taylor
// coefficients 1/7! … 1/1!, 1/0! in Horner order.
namespace exp_poly {
inline constexpr float lo = -87.3f, hi = 88.3f;
inline constexpr float log2e = 1.44269504088896341f;
inline constexpr float ln2_hi = 0.693145751953125f, ln2_lo = 1.428606765330187045e-06f;
inline constexpr float coef[8] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
}  // namespace exp_poly

// The helpers pass vectors by value only to code compiled for AVX2 as well.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
namespace avx2 {

// 8 consecutive fp32 values.
TFM_TARGET_AVX2 inline __m256 load8_f32(const float* p) { return _mm256_loadu_ps(p); }

// 8 consecutive bf16 values (raw bits at p) widened to fp32.
TFM_TARGET_AVX2 inline __m256 load8_bf16_as_f32(const void* p) {
  const __m128i h = _mm_loadu_si128(static_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

// In-place transpose of the 8×8 matrix whose row i is r[i].
TFM_TARGET_AVX2 inline void transpose8x8(__m256 r[8]) {
  const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]);
  const __m256 t1 = _mm256_unpackhi_ps(r[0], r[1]);
  const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]);
  const __m256 t3 = _mm256_unpackhi_ps(r[2], r[3]);
  const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]);
  const __m256 t5 = _mm256_unpackhi_ps(r[4], r[5]);
  const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]);
  const __m256 t7 = _mm256_unpackhi_ps(r[6], r[7]);
  const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44);
  const __m256 s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
  const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44);
  const __m256 s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
  const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44);
  const __m256 s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
  const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44);
  const __m256 s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

// exp of 8 floats: x = n·ln2 + r, degree-7 polynomial in r (relative error ~1e-7); inputs are
// clamped to [-87.3, 88.3], so exp of very negative arguments is ~1e-38 rather than 0.
TFM_TARGET_AVX2 inline __m256 exp8(__m256 x) {
  namespace c = exp_poly;
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(c::lo)), _mm256_set1_ps(c::hi));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(c::log2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(c::ln2_lo), _mm256_fnmadd_ps(n, _mm256_set1_ps(c::ln2_hi), x));
  __m256 p = _mm256_set1_ps(c::coef[0]);
  for (int i = 1; i < 8; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c::coef[i]));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// Horizontal sum / max of 8 floats.
TFM_TARGET_AVX2 inline float hsum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
TFM_TARGET_AVX2 inline float hmax8(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

}  // namespace avx2

namespace avx512 {

// exp of 16 floats: avx2::exp8's steps over exp_poly, so each lane equals the AVX2 result bit for
// bit.
// (The zero-masked forms with a full mask are the plain instructions: GCC 12 warns about the
// undefined pass-through operand inside the plain intrinsics.)
inline constexpr __mmask16 all16 = 0xFFFF;
TFM_TARGET_AVX512 inline __m512 exp16(__m512 x) {
  namespace c = exp_poly;
  x = _mm512_maskz_min_ps(all16, _mm512_maskz_max_ps(all16, x, _mm512_set1_ps(c::lo)), _mm512_set1_ps(c::hi));
  const __m512 n = _mm512_maskz_roundscale_ps(all16, _mm512_mul_ps(x, _mm512_set1_ps(c::log2e)),
                                              _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(c::ln2_lo), _mm512_fnmadd_ps(n, _mm512_set1_ps(c::ln2_hi), x));
  __m512 p = _mm512_set1_ps(c::coef[0]);
  for (int i = 1; i < 8; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c::coef[i]));
  const __m512i e =
      _mm512_maskz_slli_epi32(all16, _mm512_add_epi32(_mm512_maskz_cvtps_epi32(all16, n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

// 16×16 transpose of 32-bit elements: r[i] holds row i on entry and column i on return.
TFM_TARGET_AVX512 inline void transpose_16x16_epi32(__m512i (&r)[16]) {
  constexpr __mmask8 all8 = 0xFF;
  __m512i t[16], u[16];
  for (int g = 0; g < 4; ++g) {
    t[4 * g + 0] = _mm512_maskz_unpacklo_epi32(all16, r[4 * g], r[4 * g + 1]);
    t[4 * g + 1] = _mm512_maskz_unpackhi_epi32(all16, r[4 * g], r[4 * g + 1]);
    t[4 * g + 2] = _mm512_maskz_unpacklo_epi32(all16, r[4 * g + 2], r[4 * g + 3]);
    t[4 * g + 3] = _mm512_maskz_unpackhi_epi32(all16, r[4 * g + 2], r[4 * g + 3]);
  }
  // u[4g + m], 128-bit lane L: column 4L + m of rows 4g .. 4g + 3.
  for (int g = 0; g < 4; ++g) {
    u[4 * g + 0] = _mm512_maskz_unpacklo_epi64(all8, t[4 * g], t[4 * g + 2]);
    u[4 * g + 1] = _mm512_maskz_unpackhi_epi64(all8, t[4 * g], t[4 * g + 2]);
    u[4 * g + 2] = _mm512_maskz_unpacklo_epi64(all8, t[4 * g + 1], t[4 * g + 3]);
    u[4 * g + 3] = _mm512_maskz_unpackhi_epi64(all8, t[4 * g + 1], t[4 * g + 3]);
  }
  for (int m = 0; m < 4; ++m) {
    // v: lanes 0, 1 of u_m and of u_4+m; w: lanes 2, 3 of them; x, y: the same of u_8+m, u_12+m.
    const __m512i v = _mm512_maskz_shuffle_i32x4(all16, u[m], u[4 + m], 0x44);
    const __m512i w = _mm512_maskz_shuffle_i32x4(all16, u[m], u[4 + m], 0xEE);
    const __m512i x = _mm512_maskz_shuffle_i32x4(all16, u[8 + m], u[12 + m], 0x44);
    const __m512i y = _mm512_maskz_shuffle_i32x4(all16, u[8 + m], u[12 + m], 0xEE);
    r[m] = _mm512_maskz_shuffle_i32x4(all16, v, x, 0x88);       // lane 0 of u_m .. u_12+m
    r[4 + m] = _mm512_maskz_shuffle_i32x4(all16, v, x, 0xDD);   // lane 1
    r[8 + m] = _mm512_maskz_shuffle_i32x4(all16, w, y, 0x88);   // lane 2
    r[12 + m] = _mm512_maskz_shuffle_i32x4(all16, w, y, 0xDD);  // lane 3
  }
}

// Horizontal max of 16 floats (GCC 12's _mm512_reduce_max_ps warns about an uninitialised operand
// inside the intrinsic).
TFM_TARGET_AVX512 inline float hmax16(__m512 v) {
  alignas(64) float t[16];
  _mm512_store_ps(t, v);
  float s = t[0];
  for (int i = 1; i < 16; ++i) s = t[i] > s ? t[i] : s;
  return s;
}

// Max and sum of 16 floats by halving (8 + 8, 4 + 4, 2 + 2, 1 + 1): a fixed order, so the same
// bits every run, in four dependent steps instead of sixteen. (A NaN lane may or may not reach
// the max, unlike hmax16, which skips NaN lanes after the first.)
TFM_TARGET_AVX512 inline float reduce_max16(__m512 v) {
  const __m256 a = _mm256_max_ps(_mm512_maskz_extractf32x8_ps(0xFF, v, 0), _mm512_maskz_extractf32x8_ps(0xFF, v, 1));
  __m128 b = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_max_ps(b, _mm_movehl_ps(b, b));
  return _mm_cvtss_f32(_mm_max_ss(b, _mm_movehdup_ps(b)));
}
TFM_TARGET_AVX512 inline float reduce_add16(__m512 v) {
  const __m256 a = _mm256_add_ps(_mm512_maskz_extractf32x8_ps(0xFF, v, 0), _mm512_maskz_extractf32x8_ps(0xFF, v, 1));
  __m128 b = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  b = _mm_add_ps(b, _mm_movehl_ps(b, b));
  return _mm_cvtss_f32(_mm_add_ss(b, _mm_movehdup_ps(b)));
}

}  // namespace avx512
#pragma GCC diagnostic pop
#endif  // TFM_HOST_X86_SIMD

}  // namespace tfm::host
