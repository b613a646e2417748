// tfm/nn/storage_host.hpp — storage_ops<fp8<…>, space::host>: packing master weights into fp8
// with float scales, and unpacking them into the compute-type matrix a multiply reads
// (nn/storage.hpp describes the interface, docs/model.md "Weight storage" the math).
#pragma once
#include <algorithm>
#include <array>
#include <limits>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "tfm/core/memory.hpp"
#include "tfm/backend/host/cpu.hpp"
#include "tfm/nn/ops_host.hpp"
#include "tfm/nn/storage.hpp"

namespace tfm::nn {

template <class S, class Space>
struct storage_ops;  // specialised per storage policy and memory space

namespace host_storage {
// The matrix as the memory holds it: `lines` lines of `len` elements; line i, element j is output
// channel (io ? j : i).
struct lines_of {
  std::int64_t lines, len;
  explicit lines_of(matrix_shape m) : lines(m.io ? m.cols : m.rows), len(m.io ? m.rows : m.cols) {}
};
inline constexpr std::int64_t chunk = 1024;

// All 256 values of an fp8 format as floats.
template <class F8>
const std::array<float, 256>& fp8_values() {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int b = 0; b < 256; ++b) t[std::size_t(b)] = float(F8::from_bits(std::uint8_t(b)));
    return t;
  }();
  return table;
}

// The element loops of pack and unpack for float weights: one thread, n elements, one scale or
// (scales != nullptr) a scale per element. Scalar versions first; AVX2 ones below give the same
// bits (tests/nn/test_model_storage.cpp compares them over every rounding boundary).
inline std::uint32_t amax_n(std::int64_t n, const float* w, std::uint32_t top) {
  for (std::int64_t i = 0; i < n; ++i) top = std::max(top, fp8_math::abs_bits(w[i]));
  return top;
}
template <class F8>
void quantize_n(std::int64_t n, const float* w, float s, const float* scales, std::uint8_t* q) {
  for (std::int64_t i = 0; i < n; ++i) q[i] = fp8_math::quantize<F8>(w[i], scales ? scales[i] : s).bits();
}
template <class F8>
void dequantize_n(std::int64_t n, const std::uint8_t* q, float s, const float* scales, float* out) {
  const auto& value = fp8_values<F8>();
  for (std::int64_t i = 0; i < n; ++i) out[i] = fp8_math::dequantize(value[q[i]], scales ? scales[i] : s);
}

#if TFM_HOST_X86_SIMD
TFM_TARGET_AVX2 inline std::uint32_t amax_n_avx2(std::int64_t n, const float* w, std::uint32_t top) {
  const __m256i mask = _mm256_set1_epi32(0x7fffffff);
  __m256i m = _mm256_setzero_si256();
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    m = _mm256_max_epu32(m, _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + i)), mask));
  alignas(32) std::uint32_t lanes[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), m);
  for (auto v : lanes) top = std::max(top, v);
  return amax_n(n - i, w + i, top);
}
// float → F8 rounded to nearest even with saturation, as detail::from_float does: the normal
// range rounds the float's bits at the format's mantissa width, the subnormal range rounds
// |x|·2^(bias+M−1) to an integer; NaN becomes the canonical NaN.
template <class F8>
TFM_TARGET_AVX2 inline __m256i fp8_round_avx2(__m256 x) {
  using F = typename F8::format;
  constexpr int M = F::mantissa_bits, B = F::bias, shift = 23 - M;
  const __m256i u = _mm256_castps_si256(x);
  const __m256i a = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
  // normal: round the low `shift` bits away, then rebias the exponent
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(a, shift), _mm256_set1_epi32(1));
  __m256i r = _mm256_add_epi32(a, _mm256_add_epi32(_mm256_set1_epi32((1 << (shift - 1)) - 1), lsb));
  r = _mm256_sub_epi32(_mm256_srli_epi32(r, shift), _mm256_set1_epi32((127 - B) << M));
  // subnormal: |x| in units of the smallest subnormal, rounded to nearest even (exact scaling)
  const __m256 units = _mm256_mul_ps(_mm256_castsi256_ps(a), _mm256_set1_ps(float(1u << (B + M - 1))));
  const __m256i sub = _mm256_cvtps_epi32(_mm256_round_ps(units, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  const __m256i is_sub = _mm256_cmpgt_epi32(_mm256_set1_epi32((127 + 1 - B) << 23), a);
  r = _mm256_blendv_epi8(r, sub, is_sub);
  r = _mm256_min_epu32(r, _mm256_set1_epi32(F::max_bits));  // saturate (inf included)
  const __m256i sign = _mm256_and_si256(_mm256_srli_epi32(u, 24), _mm256_set1_epi32(F::sign_mask));
  r = _mm256_or_si256(r, sign);
  const __m256i nan = _mm256_cmpgt_epi32(a, _mm256_set1_epi32(0x7f800000));
  return _mm256_blendv_epi8(r, _mm256_set1_epi32(F::canonical_nan_bits), nan);
}
TFM_TARGET_AVX2 inline void store8_bytes(__m256i r, std::uint8_t* q) {
  const __m128i p16 = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(q), _mm_packus_epi16(p16, p16));
}
template <class F8>
TFM_TARGET_AVX2 void quantize_n_avx2(std::int64_t n, const float* w, float s, const float* scales, std::uint8_t* q) {
  const __m256 sv = _mm256_set1_ps(s);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 d = scales ? _mm256_loadu_ps(scales + i) : sv;
    store8_bytes(fp8_round_avx2<F8>(_mm256_div_ps(_mm256_loadu_ps(w + i), d)), q + i);
  }
  quantize_n<F8>(n - i, w + i, s, scales ? scales + i : nullptr, q + i);
}
template <class F8>
TFM_TARGET_AVX2 void dequantize_n_avx2(std::int64_t n, const std::uint8_t* q, float s, const float* scales, float* out) {
  const float* value = fp8_values<F8>().data();
  const __m256 sv = _mm256_set1_ps(s);
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(q + i)));
    const __m256 v = _mm256_i32gather_ps(value, idx, 4);
    _mm256_storeu_ps(out + i, _mm256_mul_ps(v, scales ? _mm256_loadu_ps(scales + i) : sv));
  }
  dequantize_n<F8>(n - i, q + i, s, scales ? scales + i : nullptr, out + i);
}
#endif

// Dispatch: AVX2 where the CPU has it.
inline std::uint32_t amax_any(std::int64_t n, const float* w, std::uint32_t top) {
#if TFM_HOST_X86_SIMD
  if (host::detail::use_avx2()) return amax_n_avx2(n, w, top);
#endif
  return amax_n(n, w, top);
}
template <class F8>
void quantize_any(std::int64_t n, const float* w, float s, const float* scales, std::uint8_t* q) {
#if TFM_HOST_X86_SIMD
  if (host::detail::use_avx2()) return quantize_n_avx2<F8>(n, w, s, scales, q);
#endif
  quantize_n<F8>(n, w, s, scales, q);
}
template <class F8>
void dequantize_any(std::int64_t n, const std::uint8_t* q, float s, const float* scales, float* out) {
#if TFM_HOST_X86_SIMD
  if (host::detail::use_avx2()) return dequantize_n_avx2<F8>(n, q, s, scales, out);
#endif
  dequantize_n<F8>(n, q, s, scales, out);
}

template <class C>
void store_n(std::int64_t n, const float* x, C* y) {
  if constexpr (std::is_same_v<C, float>)
    std::copy(x, x + n, y);
  else if constexpr (std::is_same_v<C, double>)
    for (std::int64_t i = 0; i < n; ++i) y[i] = double(x[i]);
  else
    host::mixed::narrow_n(n, x, y);
}
}  // namespace host_storage

template <class F8, fp8_scaling Sc>
struct storage_ops<fp8<F8, Sc>, tfm::space::host> {
  using traits = storage_traits<fp8<F8, Sc>>;
  static constexpr bool per_channel = Sc == fp8_scaling::per_channel;

  // dst (traits::bytes(m) bytes) = the fp8 form of the master weights w (float or double).
  template <class Backend, class W>
  static void pack(Backend&, matrix_shape m, const W* w, std::uint8_t* dst) {
    namespace hs = host_storage;
    const hs::lines_of g(m);
    float* scales = reinterpret_cast<float*>(dst + traits::scale_offset(m));
    const std::size_t ns = traits::scales(m);
    // amax as the largest |x| bit pattern, per tensor or per channel
    std::vector<std::uint32_t> amax(ns, 0u);
#pragma omp parallel
    {
      alignas(64) float tmp[hs::chunk];
      // elements [j0, j0 + n) of line i as floats
      auto floats = [&](std::int64_t i, std::int64_t j0, std::int64_t n) -> const float* {
        const W* src = w + i * g.len + j0;
        if constexpr (std::is_same_v<W, float>) {
          return src;
        } else {
          for (std::int64_t j = 0; j < n; ++j) tmp[j] = float(src[j]);
          return tmp;
        }
      };
      if (!per_channel) {
        std::uint32_t top = 0;
#pragma omp for schedule(static)
        for (std::int64_t i = 0; i < g.lines; ++i)
          for (std::int64_t j0 = 0; j0 < g.len; j0 += hs::chunk) {
            const std::int64_t n = std::min(hs::chunk, g.len - j0);
            top = hs::amax_any(n, floats(i, j0, n), top);
          }
#pragma omp critical(tfm_fp8_amax)
        amax[0] = std::max(amax[0], top);
      } else if (!m.io) {
#pragma omp for schedule(static)
        for (std::int64_t i = 0; i < g.lines; ++i) {
          std::uint32_t top = 0;
          for (std::int64_t j0 = 0; j0 < g.len; j0 += hs::chunk) {
            const std::int64_t n = std::min(hs::chunk, g.len - j0);
            top = hs::amax_any(n, floats(i, j0, n), top);
          }
          amax[std::size_t(i)] = top;
        }
      } else {
        // channels run along each line: every thread takes a range of channels over all lines
#pragma omp for schedule(static)
        for (std::int64_t c0 = 0; c0 < g.len; c0 += hs::chunk) {
          const std::int64_t c1 = std::min(g.len, c0 + hs::chunk);
          for (std::int64_t i = 0; i < g.lines; ++i)
            for (std::int64_t c = c0; c < c1; ++c)
              amax[std::size_t(c)] = std::max(amax[std::size_t(c)], fp8_math::abs_bits(float(w[i * g.len + c])));
        }
      }
#pragma omp barrier
#pragma omp single
      for (std::size_t k = 0; k < ns; ++k) scales[k] = fp8_math::scale<F8>(fp8_math::from_bits(amax[k]));
      // (the single's barrier publishes the scales)
#pragma omp for schedule(static)
      for (std::int64_t i = 0; i < g.lines; ++i)
        for (std::int64_t j0 = 0; j0 < g.len; j0 += hs::chunk) {
          const std::int64_t n = std::min(hs::chunk, g.len - j0);
          const float s = per_channel && !m.io ? scales[i] : scales[0];
          hs::quantize_any<F8>(n, floats(i, j0, n), s, per_channel && m.io ? scales + j0 : nullptr,
                               dst + i * g.len + j0);
        }
    }
  }

  // out [the matrix in the model's layout] = the widened fp8 values times their scales, rounded
  // once to C.
  template <class Backend, class C>
  static void unpack(Backend&, matrix_shape m, const std::uint8_t* src, C* out) {
    namespace hs = host_storage;
    const hs::lines_of g(m);
    const float* scales = reinterpret_cast<const float*>(src + traits::scale_offset(m));
#pragma omp parallel
    {
      alignas(64) float tmp[hs::chunk];
#pragma omp for schedule(static)
      for (std::int64_t i = 0; i < g.lines; ++i)
        for (std::int64_t j0 = 0; j0 < g.len; j0 += hs::chunk) {
          const std::int64_t n = std::min(hs::chunk, g.len - j0);
          const float s = per_channel && !m.io ? scales[i] : scales[0];
          hs::dequantize_any<F8>(n, src + i * g.len + j0, s, per_channel && m.io ? scales + j0 : nullptr, tmp);
          hs::store_n(n, tmp, out + i * g.len + j0);
        }
    }
  }
};

}  // namespace tfm::nn
