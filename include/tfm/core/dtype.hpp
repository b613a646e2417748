// tfm/core/dtype.hpp — tfm's element types and their names.
// half, bfloat16, float8_e4m3 and float8_e5m2 are our own (no CUDA headers), usable on host
// and device, and convert bit for bit as CUDA's __half, __nv_bfloat16 and __nv_fp8_e4m3 /
// __nv_fp8_e5m2 do. `dtype` names every element type tfm stores, for messages and file formats.
#pragma once
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <ostream>
#include <string_view>
#include <type_traits>

#include "tfm/core/config.hpp"
#include "tfm/core/detail/dtype_convert.hpp"

namespace tfm {

// A value of the narrow binary format F (see tfm::formats), stored as its bit pattern.
// Conversions from float and double round to nearest, ties to even, once; see
// detail/dtype_convert.hpp for overflow and NaN rules. Arithmetic runs in float and rounds
// back: float has at least 2p+2 bits for every format's p, so +, -, *, / are correctly
// rounded despite the double rounding.
template <class F>
class minifloat {
 public:
  using format = F;
  using storage = typename F::storage;

  minifloat() = default;
  TFM_HOST_DEVICE constexpr explicit minifloat(float x) noexcept : bits_(detail::from_float<F>(x)) {}
  TFM_HOST_DEVICE constexpr explicit minifloat(double x) noexcept : bits_(detail::from_double<F>(x)) {}
  // Integers go through double: exact up to 2^53, so one rounding for every 32-bit integer.
  template <std::integral I>
  TFM_HOST_DEVICE constexpr explicit minifloat(I x) noexcept : minifloat(static_cast<double>(x)) {}

  TFM_HOST_DEVICE static constexpr minifloat from_bits(storage b) noexcept {
    minifloat r;
    r.bits_ = b;
    return r;
  }
  TFM_HOST_DEVICE constexpr storage bits() const noexcept { return bits_; }

  TFM_HOST_DEVICE constexpr explicit operator float() const noexcept { return detail::to_float<F>(bits_); }
  TFM_HOST_DEVICE constexpr explicit operator double() const noexcept {
    return static_cast<double>(detail::to_float<F>(bits_));
  }

  TFM_HOST_DEVICE constexpr minifloat operator+() const noexcept { return *this; }
  // Flips the sign bit, as negation does in IEEE arithmetic (NaNs included).
  TFM_HOST_DEVICE constexpr minifloat operator-() const noexcept {
    return from_bits(static_cast<storage>(bits_ ^ F::sign_mask));
  }

  TFM_HOST_DEVICE friend constexpr minifloat operator+(minifloat a, minifloat b) noexcept {
    return minifloat(float(a) + float(b));
  }
  TFM_HOST_DEVICE friend constexpr minifloat operator-(minifloat a, minifloat b) noexcept {
    return minifloat(float(a) - float(b));
  }
  TFM_HOST_DEVICE friend constexpr minifloat operator*(minifloat a, minifloat b) noexcept {
    return minifloat(float(a) * float(b));
  }
  TFM_HOST_DEVICE friend constexpr minifloat operator/(minifloat a, minifloat b) noexcept {
    return minifloat(float(a) / float(b));
  }
  TFM_HOST_DEVICE constexpr minifloat& operator+=(minifloat b) noexcept { return *this = *this + b; }
  TFM_HOST_DEVICE constexpr minifloat& operator-=(minifloat b) noexcept { return *this = *this - b; }
  TFM_HOST_DEVICE constexpr minifloat& operator*=(minifloat b) noexcept { return *this = *this * b; }
  TFM_HOST_DEVICE constexpr minifloat& operator/=(minifloat b) noexcept { return *this = *this / b; }

  // IEEE comparisons (NaN unordered, -0 == +0) on the bits: sign-magnitude patterns order
  // like their values once mapped to signed integers. This needs no conversion, and keeps
  // g++ 12 from mis-threading float relations with NaNs (seen in our tests at -O1 and up).
  TFM_HOST_DEVICE friend constexpr bool operator==(minifloat a, minifloat b) noexcept {
    return ordered(a, b) && a.order_key() == b.order_key();
  }
  TFM_HOST_DEVICE friend constexpr bool operator!=(minifloat a, minifloat b) noexcept { return !(a == b); }
  TFM_HOST_DEVICE friend constexpr bool operator<(minifloat a, minifloat b) noexcept {
    return ordered(a, b) && a.order_key() < b.order_key();
  }
  TFM_HOST_DEVICE friend constexpr bool operator<=(minifloat a, minifloat b) noexcept {
    return ordered(a, b) && a.order_key() <= b.order_key();
  }
  TFM_HOST_DEVICE friend constexpr bool operator>(minifloat a, minifloat b) noexcept { return b < a; }
  TFM_HOST_DEVICE friend constexpr bool operator>=(minifloat a, minifloat b) noexcept { return b <= a; }

  friend std::ostream& operator<<(std::ostream& os, minifloat x) { return os << float(x); }

 private:
  TFM_HOST_DEVICE constexpr int order_key() const noexcept {
    const int mag = bits_ & F::magnitude_mask;
    return (bits_ & F::sign_mask) ? -mag : mag;
  }
  TFM_HOST_DEVICE static constexpr bool ordered(minifloat a, minifloat b) noexcept {
    return !detail::is_nan_bits<F>(a.bits_) && !detail::is_nan_bits<F>(b.bits_);
  }

  storage bits_;
};

using half = minifloat<formats::f16>;
using bfloat16 = minifloat<formats::bf16>;
using float8_e4m3 = minifloat<formats::e4m3>;
using float8_e5m2 = minifloat<formats::e5m2>;

static_assert(sizeof(half) == 2 && sizeof(bfloat16) == 2 && sizeof(float8_e4m3) == 1 &&
              sizeof(float8_e5m2) == 1);
static_assert(alignof(half) == 2 && alignof(bfloat16) == 2 && alignof(float8_e4m3) == 1 &&
              alignof(float8_e5m2) == 1);
static_assert(std::is_trivially_copyable_v<half> && std::is_standard_layout_v<half> &&
              std::is_trivially_default_constructible_v<half>);
static_assert(std::is_trivially_copyable_v<bfloat16> && std::is_standard_layout_v<bfloat16> &&
              std::is_trivially_default_constructible_v<bfloat16>);
static_assert(std::is_trivially_copyable_v<float8_e4m3> && std::is_standard_layout_v<float8_e4m3> &&
              std::is_trivially_default_constructible_v<float8_e4m3>);
static_assert(std::is_trivially_copyable_v<float8_e5m2> && std::is_standard_layout_v<float8_e5m2> &&
              std::is_trivially_default_constructible_v<float8_e5m2>);

template <class F>
TFM_HOST_DEVICE constexpr float to_float(minifloat<F> x) noexcept {
  return static_cast<float>(x);
}
// Lets code generic over element types call to_float on float too.
TFM_HOST_DEVICE constexpr float to_float(float x) noexcept { return x; }

template <class F>
TFM_HOST_DEVICE constexpr bool isnan(minifloat<F> x) noexcept {
  return detail::is_nan_bits<F>(x.bits());
}
template <class F>
TFM_HOST_DEVICE constexpr bool isinf(minifloat<F> x) noexcept {
  return detail::is_inf_bits<F>(x.bits());
}
template <class F>
TFM_HOST_DEVICE constexpr bool isfinite(minifloat<F> x) noexcept {
  return !isnan(x) && !isinf(x);
}
template <class F>
TFM_HOST_DEVICE constexpr bool signbit(minifloat<F> x) noexcept {
  return (x.bits() & F::sign_mask) != 0;
}
template <class F>
TFM_HOST_DEVICE constexpr minifloat<F> abs(minifloat<F> x) noexcept {
  return minifloat<F>::from_bits(static_cast<typename F::storage>(x.bits() & F::magnitude_mask));
}

// --------------------------------------------------------------------------- dtype
// Every element type tfm stores. The numeric values are not a file format: write names.
enum class dtype : std::uint8_t {
  f32, f64, f16, bf16, f8_e4m3, f8_e5m2,
  i8, u8, i16, u16, i32, u32, i64, u64,
  boolean,
};
inline constexpr int dtype_count = static_cast<int>(dtype::boolean) + 1;

template <class T>
struct dtype_traits;  // no dtype for T: tfm does not store it
template <dtype D, class T>
struct dtype_entry {
  static constexpr dtype value = D;
  using type = T;
};
template <> struct dtype_traits<float> : dtype_entry<dtype::f32, float> {};
template <> struct dtype_traits<double> : dtype_entry<dtype::f64, double> {};
template <> struct dtype_traits<half> : dtype_entry<dtype::f16, half> {};
template <> struct dtype_traits<bfloat16> : dtype_entry<dtype::bf16, bfloat16> {};
template <> struct dtype_traits<float8_e4m3> : dtype_entry<dtype::f8_e4m3, float8_e4m3> {};
template <> struct dtype_traits<float8_e5m2> : dtype_entry<dtype::f8_e5m2, float8_e5m2> {};
template <> struct dtype_traits<std::int8_t> : dtype_entry<dtype::i8, std::int8_t> {};
template <> struct dtype_traits<std::uint8_t> : dtype_entry<dtype::u8, std::uint8_t> {};
template <> struct dtype_traits<std::int16_t> : dtype_entry<dtype::i16, std::int16_t> {};
template <> struct dtype_traits<std::uint16_t> : dtype_entry<dtype::u16, std::uint16_t> {};
template <> struct dtype_traits<std::int32_t> : dtype_entry<dtype::i32, std::int32_t> {};
template <> struct dtype_traits<std::uint32_t> : dtype_entry<dtype::u32, std::uint32_t> {};
template <> struct dtype_traits<std::int64_t> : dtype_entry<dtype::i64, std::int64_t> {};
template <> struct dtype_traits<std::uint64_t> : dtype_entry<dtype::u64, std::uint64_t> {};
template <> struct dtype_traits<bool> : dtype_entry<dtype::boolean, bool> {};

// T is an element type with a dtype (cv-qualifiers ignored).
template <class T>
concept has_dtype = requires { dtype_traits<std::remove_cv_t<T>>::value; };

template <has_dtype T>
inline constexpr dtype dtype_of = dtype_traits<std::remove_cv_t<T>>::value;

namespace detail {
template <dtype D>
struct dtype_type;
template <> struct dtype_type<dtype::f32> { using type = float; };
template <> struct dtype_type<dtype::f64> { using type = double; };
template <> struct dtype_type<dtype::f16> { using type = half; };
template <> struct dtype_type<dtype::bf16> { using type = bfloat16; };
template <> struct dtype_type<dtype::f8_e4m3> { using type = float8_e4m3; };
template <> struct dtype_type<dtype::f8_e5m2> { using type = float8_e5m2; };
template <> struct dtype_type<dtype::i8> { using type = std::int8_t; };
template <> struct dtype_type<dtype::u8> { using type = std::uint8_t; };
template <> struct dtype_type<dtype::i16> { using type = std::int16_t; };
template <> struct dtype_type<dtype::u16> { using type = std::uint16_t; };
template <> struct dtype_type<dtype::i32> { using type = std::int32_t; };
template <> struct dtype_type<dtype::u32> { using type = std::uint32_t; };
template <> struct dtype_type<dtype::i64> { using type = std::int64_t; };
template <> struct dtype_type<dtype::u64> { using type = std::uint64_t; };
template <> struct dtype_type<dtype::boolean> { using type = bool; };

struct dtype_info {
  std::string_view name;
  std::string_view safetensors;
  std::size_t size;
};
// Indexed by the enum's value; the tests check it against dtype_of and sizeof.
inline constexpr dtype_info dtype_table[dtype_count] = {
    {"f32", "F32", 4},          {"f64", "F64", 8},         {"f16", "F16", 2},
    {"bf16", "BF16", 2},        {"f8_e4m3", "F8_E4M3", 1}, {"f8_e5m2", "F8_E5M2", 1},
    {"i8", "I8", 1},            {"u8", "U8", 1},           {"i16", "I16", 2},
    {"u16", "U16", 2},          {"i32", "I32", 4},         {"u32", "U32", 4},
    {"i64", "I64", 8},          {"u64", "U64", 8},         {"bool", "BOOL", 1},
};
constexpr bool valid(dtype d) noexcept { return static_cast<int>(d) < dtype_count; }
}  // namespace detail

// The element type of D: dtype_type_t<dtype::bf16> is bfloat16.
template <dtype D>
using dtype_type_t = typename detail::dtype_type<D>::type;

// "f32", "bf16", "f8_e4m3", ...; "invalid" for a value outside the enum.
constexpr std::string_view dtype_name(dtype d) noexcept {
  return detail::valid(d) ? detail::dtype_table[static_cast<int>(d)].name : std::string_view("invalid");
}
// Bytes per element; 0 for a value outside the enum.
constexpr std::size_t dtype_size(dtype d) noexcept {
  return detail::valid(d) ? detail::dtype_table[static_cast<int>(d)].size : 0;
}
// The "dtype" string of a safetensors header: "F32", "BF16", "F8_E4M3", ...
constexpr std::string_view safetensors_name(dtype d) noexcept {
  return detail::valid(d) ? detail::dtype_table[static_cast<int>(d)].safetensors
                          : std::string_view("invalid");
}
constexpr std::optional<dtype> dtype_from_name(std::string_view name) noexcept {
  for (int i = 0; i < dtype_count; ++i)
    if (detail::dtype_table[i].name == name) return static_cast<dtype>(i);
  return std::nullopt;
}
constexpr std::optional<dtype> dtype_from_safetensors_name(std::string_view name) noexcept {
  for (int i = 0; i < dtype_count; ++i)
    if (detail::dtype_table[i].safetensors == name) return static_cast<dtype>(i);
  return std::nullopt;
}
constexpr bool is_floating_point(dtype d) noexcept {
  return d == dtype::f32 || d == dtype::f64 || d == dtype::f16 || d == dtype::bf16 ||
         d == dtype::f8_e4m3 || d == dtype::f8_e5m2;
}

inline std::ostream& operator<<(std::ostream& os, dtype d) { return os << dtype_name(d); }

}  // namespace tfm

// --------------------------------------------------------------------------- numeric_limits
namespace std {
template <class F>
struct numeric_limits<tfm::minifloat<F>> {
 private:
  using T = tfm::minifloat<F>;
  using S = typename F::storage;
  static constexpr int emax =
      (F::ieee_specials ? (1 << F::exponent_bits) - 2 : (1 << F::exponent_bits) - 1) - F::bias;
  // log10(2) ~ 30103 / 100000 is close enough for these digit counts.
  static constexpr int log10_2_times(int n, bool up) { return (n * 30103 + (up ? 99999 : 0)) / 100000; }

 public:
  static constexpr bool is_specialized = true;
  static constexpr bool is_signed = true;
  static constexpr bool is_integer = false;
  static constexpr bool is_exact = false;
  static constexpr bool has_infinity = F::ieee_specials;
  static constexpr bool has_quiet_NaN = true;
  static constexpr bool has_signaling_NaN = F::ieee_specials;
  static constexpr std::float_denorm_style has_denorm = std::denorm_present;
  static constexpr bool has_denorm_loss = false;
  static constexpr std::float_round_style round_style = std::round_to_nearest;
  static constexpr bool is_iec559 = false;
  static constexpr bool is_bounded = true;
  static constexpr bool is_modulo = false;
  static constexpr int digits = F::mantissa_bits + 1;
  static constexpr int digits10 = log10_2_times(digits - 1, false);
  static constexpr int max_digits10 = 1 + log10_2_times(digits, true);
  static constexpr int radix = 2;
  static constexpr int min_exponent = 2 - F::bias;
  static constexpr int max_exponent = emax + 1;
  // ceil(log10(min)) and floor(log10(max)) for the four formats, checked by the tests.
  static constexpr int min_exponent10 = F::exponent_bits == 8 ? -37 : F::exponent_bits == 5 ? -4 : -1;
  static constexpr int max_exponent10 = F::exponent_bits == 8 ? 38 : F::exponent_bits == 5 ? 4 : 2;
  static constexpr bool traps = false;
  static constexpr bool tinyness_before = false;

  TFM_HOST_DEVICE static constexpr T min() noexcept { return T::from_bits(S(S(1) << F::mantissa_bits)); }
  TFM_HOST_DEVICE static constexpr T lowest() noexcept { return T::from_bits(S(F::sign_mask | F::max_bits)); }
  TFM_HOST_DEVICE static constexpr T max() noexcept { return T::from_bits(F::max_bits); }
  TFM_HOST_DEVICE static constexpr T epsilon() noexcept {
    return T::from_bits(S(S(F::bias - F::mantissa_bits) << F::mantissa_bits));
  }
  TFM_HOST_DEVICE static constexpr T round_error() noexcept {
    return T::from_bits(S(S(F::bias - 1) << F::mantissa_bits));
  }
  // No infinity in e4m3: 0, as std::numeric_limits does for types without one.
  TFM_HOST_DEVICE static constexpr T infinity() noexcept { return T::from_bits(F::inf_bits); }
  TFM_HOST_DEVICE static constexpr T quiet_NaN() noexcept { return T::from_bits(F::canonical_nan_bits); }
  // Exponent all ones, quiet bit clear, lowest payload bit set; 0 where there is none.
  TFM_HOST_DEVICE static constexpr T signaling_NaN() noexcept {
    return T::from_bits(F::ieee_specials ? S(F::inf_bits | 1u) : S(0));
  }
  TFM_HOST_DEVICE static constexpr T denorm_min() noexcept { return T::from_bits(S(1)); }
};
}  // namespace std
