// tfm/core/detail/dtype_convert.hpp — bit-level conversions between float/double and the
// narrow binary formats (binary16, bfloat16, fp8 e4m3 and e5m2), with CUDA's semantics.
// The `_ref` functions are the portable reference; the dispatchers may use F16C on the host
// or the instruction CUDA's own conversion uses on the device, never anything that differs.
#pragma once
#include <cstdint>
#include <type_traits>

#include "tfm/core/config.hpp"

#if defined(__F16C__) && !TFM_DEVICE_CODE
#include <immintrin.h>
#define TFM_DTYPE_HOST_F16C 1
#else
#define TFM_DTYPE_HOST_F16C 0
#endif

namespace tfm {

// A narrow binary floating-point format: sign, ExponentBits, MantissaBits.
//  IeeeSpecials: the all-ones exponent holds inf (mantissa 0) and NaNs (binary16, bfloat16,
//                e5m2). Otherwise only S.1111.111 is NaN and there is no inf (e4m3, "fn").
//  Saturates:    float/double -> format sends values past the largest finite one to it
//                (CUDA's __NV_SATFINITE, which __nv_fp8_e4m3/e5m2(float) use) instead of inf.
template <int ExponentBits, int MantissaBits, bool IeeeSpecials, bool Saturates, class Storage>
struct binary_format {
  static_assert(std::is_unsigned_v<Storage> && 8 * sizeof(Storage) == 1 + ExponentBits + MantissaBits);
  static_assert(MantissaBits >= 2 && ExponentBits >= 4);
  using storage = Storage;
  static constexpr int exponent_bits = ExponentBits;
  static constexpr int mantissa_bits = MantissaBits;
  static constexpr bool ieee_specials = IeeeSpecials;
  static constexpr bool saturates = Saturates;
  static constexpr int bias = (1 << (ExponentBits - 1)) - 1;
  static constexpr Storage sign_mask = Storage(1u << (ExponentBits + MantissaBits));
  static constexpr Storage magnitude_mask = Storage(sign_mask - 1u);
  static constexpr Storage mantissa_mask = Storage((1u << MantissaBits) - 1u);
  // Largest finite magnitude; inf (0 where there is none); the NaN conversions produce.
  static constexpr Storage max_bits =
      IeeeSpecials ? Storage((((1u << ExponentBits) - 2u) << MantissaBits) | mantissa_mask)
                   : Storage(magnitude_mask - 1u);
  static constexpr Storage inf_bits =
      IeeeSpecials ? Storage(((1u << ExponentBits) - 1u) << MantissaBits) : Storage(0);
  static constexpr Storage canonical_nan_bits = magnitude_mask;
};

namespace formats {
struct f16 : binary_format<5, 10, true, false, std::uint16_t> {};  // IEEE binary16
struct bf16 : binary_format<8, 7, true, false, std::uint16_t> {};  // bfloat16
struct e4m3 : binary_format<4, 3, false, true, std::uint8_t> {};   // OCP fp8 E4M3 ("fn")
struct e5m2 : binary_format<5, 2, true, true, std::uint8_t> {};    // OCP fp8 E5M2
}  // namespace formats

namespace detail {

template <class To, class From>
TFM_HOST_DEVICE constexpr To bit_cast(const From& from) noexcept {
  static_assert(sizeof(To) == sizeof(From));
  return __builtin_bit_cast(To, from);
}

// The builtin (not std::is_constant_evaluated) so that device code needs no relaxed constexpr.
TFM_HOST_DEVICE constexpr bool is_constant_evaluated() noexcept { return __builtin_is_constant_evaluated(); }

template <class F>
TFM_HOST_DEVICE constexpr bool is_nan_bits(typename F::storage b) noexcept {
  const auto mag = b & F::magnitude_mask;
  if constexpr (F::ieee_specials) {
    return mag > F::inf_bits;
  } else {
    return mag == F::canonical_nan_bits;
  }
}

template <class F>
TFM_HOST_DEVICE constexpr bool is_inf_bits(typename F::storage b) noexcept {
  if constexpr (F::ieee_specials) {
    return (b & F::magnitude_mask) == F::inf_bits;
  } else {
    return false;
  }
}

// The IEEE source types a conversion starts from.
template <class Src>
struct ieee_source;
template <>
struct ieee_source<float> {
  using bits = std::uint32_t;
  static constexpr int exponent_bits = 8, mantissa_bits = 23, bias = 127;
};
template <>
struct ieee_source<double> {
  using bits = std::uint64_t;
  static constexpr int exponent_bits = 11, mantissa_bits = 52, bias = 1023;
};

// Rounds a non-NaN float/double to F, to nearest with ties to even, in one step. Overflow
// (including inf) goes to inf or, for saturating formats, to the largest finite value.
// Everything happens on the significand with the implicit bit made explicit:
//   value = sig * 2^(exp - bias_F - mantissa_bits_Src), exp the target's biased exponent.
// Targets below the normal range shift further right; a carry out of the kept bits moves
// into the exponent field by itself, which also yields inf or the next binade.
template <class F, class Src>
TFM_HOST_DEVICE constexpr typename F::storage round_non_nan_ref(Src x) noexcept {
  using S = ieee_source<Src>;
  using U = typename S::bits;
  constexpr int src_m = S::mantissa_bits;
  constexpr U src_sign = U(1) << (S::exponent_bits + src_m);

  const U u = bit_cast<U>(x);
  const U mag = u & (src_sign - 1);
  const int src_exp = static_cast<int>(mag >> src_m);
  U sig = mag & ((U(1) << src_m) - 1);
  if (src_exp != 0) sig |= U(1) << src_m;  // implicit bit; subnormal sources have none
  const int exp = (src_exp == 0 ? 1 : src_exp) - S::bias + F::bias;
  const int shift = src_m - F::mantissa_bits + (exp < 1 ? 1 - exp : 0);

  U r = 0;
  if (shift <= src_m + 1) {  // otherwise sig < 2^(shift-1): below half the smallest subnormal
    const U kept = sig >> shift;
    const U rem = sig & ((U(1) << shift) - 1);
    const U half = U(1) << (shift - 1);
    // Bitwise, not short-circuit: the round-up decision is data-dependent and unpredictable.
    const bool round_up = (rem > half) | ((rem == half) & ((kept & 1u) != 0));
    r = (U(exp < 1 ? 0 : exp - 1) << F::mantissa_bits) + kept + U(round_up);
  }
  if (r > F::max_bits) r = F::saturates ? F::max_bits : F::inf_bits;
  return static_cast<typename F::storage>(((u & src_sign) ? F::sign_mask : 0u) | r);
}

// float -> F. Every NaN becomes the canonical positive NaN: 0x7FFF for binary16 and
// bfloat16 (CUDA's __float2half / __float2bfloat16), 0x7F for both fp8 formats
// (__nv_cvt_float_to_fp8 replaces a NaN input with 0x7FFFFFFF before converting).
template <class F>
TFM_HOST_DEVICE constexpr typename F::storage from_float_ref(float x) noexcept {
  if ((bit_cast<std::uint32_t>(x) & 0x7FFFFFFFu) > 0x7F800000u) return F::canonical_nan_bits;
  return round_non_nan_ref<F>(x);
}

// double -> F, rounded once (CUDA's __double2half and __double2bfloat16 are single-rounding).
// NaNs: binary16 and bfloat16 give 0x7FFF. __nv_cvt_double_to_fp8, which the fp8 (double)
// constructors use, keeps the NaN's sign, and for e5m2 also the top two payload bits (with
// the quiet bit forced): e4m3 -> S.1111.111, e5m2 -> S.11111.1p.
template <class F>
TFM_HOST_DEVICE constexpr typename F::storage from_double_ref(double x) noexcept {
  const std::uint64_t u = bit_cast<std::uint64_t>(x);
  if ((u & 0x7FFFFFFFFFFFFFFFull) > 0x7FF0000000000000ull) {
    if constexpr (sizeof(typename F::storage) == 1) {
      const auto sign = static_cast<std::uint8_t>((u >> 63) << 7);
      if constexpr (F::ieee_specials) {
        const auto payload = static_cast<std::uint8_t>((u >> (52 - F::mantissa_bits)) & F::mantissa_mask);
        return static_cast<std::uint8_t>(sign | F::inf_bits | (1u << (F::mantissa_bits - 1)) | payload);
      } else {
        return static_cast<std::uint8_t>(sign | F::canonical_nan_bits);
      }
    } else {
      return F::canonical_nan_bits;
    }
  }
  return round_non_nan_ref<F>(x);
}

// F -> float, exact. NaNs: bfloat16 keeps its bits (a bfloat16 is the top half of a float,
// and __bfloat162float is that shift); binary16 and fp8 NaNs become 0x7FFFFFFF, as in CUDA's
// host conversions (__half2float, __nv_fp8_e4m3/e5m2::operator float).
template <class F>
TFM_HOST_DEVICE constexpr float to_float_ref(typename F::storage b) noexcept {
  if constexpr (std::is_same_v<F, formats::bf16>) {
    return bit_cast<float>(static_cast<std::uint32_t>(b) << 16);
  } else {
    constexpr int m = F::mantissa_bits;
    const std::uint32_t sign = (b & F::sign_mask) ? 0x80000000u : 0u;
    const std::uint32_t mag = b & F::magnitude_mask;
    const std::uint32_t exp = mag >> m;
    const std::uint32_t man = mag & F::mantissa_mask;
    if (is_nan_bits<F>(b)) return bit_cast<float>(0x7FFFFFFFu);
    if (is_inf_bits<F>(b)) return bit_cast<float>(sign | 0x7F800000u);
    if (exp == 0) {
      // Subnormal or zero: man * 2^(1 - bias - m), exact since man < 2^24, and a normal float
      // for every format here except bfloat16 (handled above), so DAZ/FTZ cannot touch it.
      constexpr float scale = bit_cast<float>(std::uint32_t(127 + 1 - F::bias - m) << 23);
      return bit_cast<float>(bit_cast<std::uint32_t>(static_cast<float>(man) * scale) | sign);
    }
    return bit_cast<float>(sign | ((exp - F::bias + 127u) << 23) | (man << (23 - m)));
  }
}

// --------------------------------------------------------------------------- dispatchers
// Device: the instruction CUDA's conversion executes for the same __CUDA_ARCH__ (cuda_fp16.hpp,
// cuda_bf16.hpp, cuda_fp8.hpp), so our results are CUDA's on the device by construction.
// Host: F16C for binary16 with NaNs fixed up (F16C keeps the NaN payload; CUDA does not), and
// for float -> bfloat16 the add-and-shift rounding; everything else is the _ref code.

template <class F>
TFM_HOST_DEVICE constexpr typename F::storage from_float(float x) noexcept {
  if (!is_constant_evaluated()) {
#if TFM_DEVICE_CODE
    if constexpr (std::is_same_v<F, formats::f16>) {
      std::uint16_t r;
      asm("cvt.rn.f16.f32 %0, %1;" : "=h"(r) : "f"(x));
      return r;
    }
#if __CUDA_ARCH__ >= 800
    if constexpr (std::is_same_v<F, formats::bf16>) {
      std::uint16_t r;
      asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r) : "f"(x));
      return r;
    }
#endif
#if __CUDA_ARCH__ >= 890
    // The pair form converts (a, b) into (high byte, low byte); ours goes in the low byte.
    if constexpr (std::is_same_v<F, formats::e4m3>) {
      std::uint16_t r;
      asm("cvt.rn.satfinite.e4m3x2.f32 %0, %1, %2;" : "=h"(r) : "f"(0.0f), "f"(x));
      return static_cast<std::uint8_t>(r);
    }
    if constexpr (std::is_same_v<F, formats::e5m2>) {
      std::uint16_t r;
      asm("cvt.rn.satfinite.e5m2x2.f32 %0, %1, %2;" : "=h"(r) : "f"(0.0f), "f"(x));
      return static_cast<std::uint8_t>(r);
    }
#endif
#elif TFM_DTYPE_HOST_F16C
    if constexpr (std::is_same_v<F, formats::f16>) {
      if ((bit_cast<std::uint32_t>(x) & 0x7FFFFFFFu) > 0x7F800000u) return F::canonical_nan_bits;
      // The vector forms: clang's _cvtss_sh is a macro with a compound literal (-Wpedantic).
      const __m128i h = _mm_cvtps_ph(_mm_set_ss(x), _MM_FROUND_TO_NEAREST_INT);
      return static_cast<std::uint16_t>(_mm_cvtsi128_si32(h));
    }
#endif
  }
  if constexpr (std::is_same_v<F, formats::bf16>) {
    // bfloat16 is float's top half: adding 0x7FFF plus the lowest kept bit rounds the low half
    // to nearest even, carrying into the exponent (up to inf) as needed.
    const std::uint32_t u = bit_cast<std::uint32_t>(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return F::canonical_nan_bits;
    return static_cast<std::uint16_t>((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
  }
  return from_float_ref<F>(x);
}

template <class F>
TFM_HOST_DEVICE constexpr typename F::storage from_double(double x) noexcept {
  if (!is_constant_evaluated()) {
#if TFM_DEVICE_CODE
    if constexpr (std::is_same_v<F, formats::f16>) {
      std::uint16_t r;
      asm("cvt.rn.f16.f64 %0, %1;" : "=h"(r) : "d"(x));
      return r;
    }
#if __CUDA_ARCH__ >= 900
    if constexpr (std::is_same_v<F, formats::bf16>) {
      std::uint16_t r;
      asm("cvt.rn.bf16.f64 %0, %1;" : "=h"(r) : "d"(x));
      return r;
    }
#endif
#endif
  }
  return from_double_ref<F>(x);
}

template <class F>
TFM_HOST_DEVICE constexpr float to_float(typename F::storage b) noexcept {
  if (!is_constant_evaluated()) {
#if TFM_DEVICE_CODE
#if __CUDA_ARCH__ >= 530
    if constexpr (std::is_same_v<F, formats::f16>) {
      float r;
      asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(b));
      return r;
    }
#endif
#if __CUDA_ARCH__ >= 900
    if constexpr (std::is_same_v<F, formats::bf16>) {
      float r;
      asm("cvt.f32.bf16 %0, %1;" : "=f"(r) : "h"(b));
      return r;
    }
#endif
#if __CUDA_ARCH__ >= 890
    // fp8 -> binary16 pair (ours in the low half) -> float, as __nv_fp8_e4m3::operator float.
    if constexpr (std::is_same_v<F, formats::e4m3> || std::is_same_v<F, formats::e5m2>) {
      const std::uint16_t in = b;
      std::uint32_t pair;
      if constexpr (std::is_same_v<F, formats::e4m3>) {
        asm("cvt.rn.f16x2.e4m3x2 %0, %1;" : "=r"(pair) : "h"(in));
      } else {
        asm("cvt.rn.f16x2.e5m2x2 %0, %1;" : "=r"(pair) : "h"(in));
      }
      const std::uint16_t h = static_cast<std::uint16_t>(pair);
      float r;
      asm("cvt.f32.f16 %0, %1;" : "=f"(r) : "h"(h));
      return r;
    }
#endif
#elif TFM_DTYPE_HOST_F16C
    if constexpr (std::is_same_v<F, formats::f16>) {
      if (is_nan_bits<F>(b)) return bit_cast<float>(0x7FFFFFFFu);
      return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(b)));
    }
#endif
  }
  return to_float_ref<F>(b);
}

}  // namespace detail
}  // namespace tfm
