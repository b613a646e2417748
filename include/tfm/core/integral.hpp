// tfm/core/integral.hpp — static integers (`constant<N>`, an empty type whose value is in the
// type) and the rules for mixing them with run-time `int64_t`. Arithmetic between constants
// folds at compile time and stays a constant; anything involving a run-time value is int64_t.
// Layouts build on this so that a fully static layout costs no storage and no instructions.
#pragma once
#include <concepts>
#include <cstdint>
#include <type_traits>

#include "tfm/core/config.hpp"

namespace tfm {

// A compile-time integer. Empty, so it takes no space in a tuple; converts to int64_t.
template <std::int64_t N>
struct constant {
  using value_type = std::int64_t;
  static constexpr std::int64_t value = N;
  TFM_HOST_DEVICE constexpr operator std::int64_t() const noexcept { return N; }
  TFM_HOST_DEVICE constexpr std::int64_t operator()() const noexcept { return N; }
};

// A compile-time truth value: what comparing two constants gives.
template <bool B>
struct bool_constant {
  static constexpr bool value = B;
  TFM_HOST_DEVICE constexpr operator bool() const noexcept { return B; }
  TFM_HOST_DEVICE constexpr bool operator()() const noexcept { return B; }
};
using true_c = bool_constant<true>;
using false_c = bool_constant<false>;

// `C<N>` is the type; `_N` (0 ... 32 and a few powers of two) are values. Device code may copy
// `_N` (every tfm function takes integers by value) but not bind it to a reference: nvcc keeps
// namespace-scope objects on the host. `C<N>{}` works everywhere.
template <std::int64_t N>
using C = constant<N>;

inline constexpr constant<0> _0{};
inline constexpr constant<1> _1{};
inline constexpr constant<2> _2{};
inline constexpr constant<3> _3{};
inline constexpr constant<4> _4{};
inline constexpr constant<5> _5{};
inline constexpr constant<6> _6{};
inline constexpr constant<7> _7{};
inline constexpr constant<8> _8{};
inline constexpr constant<9> _9{};
inline constexpr constant<10> _10{};
inline constexpr constant<11> _11{};
inline constexpr constant<12> _12{};
inline constexpr constant<13> _13{};
inline constexpr constant<14> _14{};
inline constexpr constant<15> _15{};
inline constexpr constant<16> _16{};
inline constexpr constant<17> _17{};
inline constexpr constant<18> _18{};
inline constexpr constant<19> _19{};
inline constexpr constant<20> _20{};
inline constexpr constant<21> _21{};
inline constexpr constant<22> _22{};
inline constexpr constant<23> _23{};
inline constexpr constant<24> _24{};
inline constexpr constant<25> _25{};
inline constexpr constant<26> _26{};
inline constexpr constant<27> _27{};
inline constexpr constant<28> _28{};
inline constexpr constant<29> _29{};
inline constexpr constant<30> _30{};
inline constexpr constant<31> _31{};
inline constexpr constant<32> _32{};
inline constexpr constant<64> _64{};
inline constexpr constant<128> _128{};
inline constexpr constant<256> _256{};

// ---------------------------------------------------------------------------- concepts, traits
namespace detail {
template <class T>
struct is_constant : std::false_type {};
template <std::int64_t N>
struct is_constant<constant<N>> : std::true_type {};
template <class T>
struct is_bool_constant : std::false_type {};
template <bool B>
struct is_bool_constant<bool_constant<B>> : std::true_type {};
}  // namespace detail

// A `constant<N>` (cv/ref ignored).
template <class T>
concept static_integer = detail::is_constant<std::remove_cvref_t<T>>::value;

// Anything a shape or stride entry may be: a built-in integer (not bool) or a constant.
template <class T>
concept integer_like =
    static_integer<T> ||
    (std::integral<std::remove_cvref_t<T>> && !std::same_as<std::remove_cvref_t<T>, bool>);

// Whether a value of type T is known at compile time. Tuples and layouts specialise it
// (tuple.hpp, layout.hpp): they are static when all their entries are.
template <class T>
struct is_static : std::bool_constant<static_integer<T> || detail::is_bool_constant<std::remove_cvref_t<T>>::value> {};
template <class T>
inline constexpr bool is_static_v = is_static<std::remove_cvref_t<T>>::value;

// The run-time representation of an integer entry: constants stay constants, every built-in
// integer becomes int64_t (so `make_shape(3, 4u)` and `make_shape(3L, 4L)` are the same type).
template <integer_like T>
using normalized_integer_t = std::conditional_t<static_integer<T>, std::remove_cvref_t<T>, std::int64_t>;

template <integer_like T>
TFM_HOST_DEVICE constexpr normalized_integer_t<T> to_integer(T v) noexcept {
  if constexpr (static_integer<T>) {
    return v;
  } else {
    return static_cast<std::int64_t>(v);
  }
}

// Value of an integer or a bool, static or not.
template <class T>
  requires integer_like<T> || detail::is_bool_constant<std::remove_cvref_t<T>>::value
TFM_HOST_DEVICE constexpr auto value_of(T v) noexcept {
  if constexpr (detail::is_bool_constant<std::remove_cvref_t<T>>::value) {
    return static_cast<bool>(v);
  } else {
    return static_cast<std::int64_t>(v);
  }
}

// Whether T is the type constant<N> (false for run-time integers, whatever their value).
template <std::int64_t N, class T>
inline constexpr bool is_constant_v = std::same_as<std::remove_cvref_t<T>, constant<N>>;

// ---------------------------------------------------------------------------- arithmetic
// constant ∘ constant -> constant; constant ∘ run-time integer -> int64_t. Division or
// remainder by a zero constant is a compile-time error.
namespace detail {
template <class A, class B>
concept mixed_integers = (static_integer<A> && integer_like<B> && !static_integer<B>) ||
                         (static_integer<B> && integer_like<A> && !static_integer<A>);
}  // namespace detail

template <std::int64_t A>
TFM_HOST_DEVICE constexpr constant<-A> operator-(constant<A>) noexcept {
  return {};
}
template <std::int64_t A>
TFM_HOST_DEVICE constexpr constant<A> operator+(constant<A>) noexcept {
  return {};
}

#define TFM_DETAIL_CONSTANT_BINARY_OP(OP, RESULT)                                              \
  template <std::int64_t A, std::int64_t B>                                                    \
  TFM_HOST_DEVICE constexpr RESULT<(A OP B)> operator OP(constant<A>, constant<B>) noexcept { \
    return {};                                                                                 \
  }                                                                                            \
  template <class X, class Y>                                                                  \
    requires detail::mixed_integers<X, Y>                                                      \
  TFM_HOST_DEVICE constexpr auto operator OP(X x, Y y) noexcept {                              \
    return static_cast<std::int64_t>(x) OP static_cast<std::int64_t>(y);                       \
  }

TFM_DETAIL_CONSTANT_BINARY_OP(+, constant)
TFM_DETAIL_CONSTANT_BINARY_OP(-, constant)
TFM_DETAIL_CONSTANT_BINARY_OP(*, constant)
TFM_DETAIL_CONSTANT_BINARY_OP(==, bool_constant)
TFM_DETAIL_CONSTANT_BINARY_OP(!=, bool_constant)
TFM_DETAIL_CONSTANT_BINARY_OP(<, bool_constant)
TFM_DETAIL_CONSTANT_BINARY_OP(<=, bool_constant)
TFM_DETAIL_CONSTANT_BINARY_OP(>, bool_constant)
TFM_DETAIL_CONSTANT_BINARY_OP(>=, bool_constant)
#undef TFM_DETAIL_CONSTANT_BINARY_OP

template <std::int64_t A, std::int64_t B>
TFM_HOST_DEVICE constexpr constant<A / B> operator/(constant<A>, constant<B>) noexcept {
  static_assert(B != 0, "tfm: division of constants by _0");
  return {};
}
template <class X, class Y>
  requires detail::mixed_integers<X, Y>
TFM_HOST_DEVICE constexpr std::int64_t operator/(X x, Y y) noexcept {
  if constexpr (static_integer<Y>) static_assert(Y::value != 0, "tfm: division by _0");
  return static_cast<std::int64_t>(x) / static_cast<std::int64_t>(y);
}
template <std::int64_t A, std::int64_t B>
TFM_HOST_DEVICE constexpr constant<A % B> operator%(constant<A>, constant<B>) noexcept {
  static_assert(B != 0, "tfm: remainder of constants by _0");
  return {};
}
template <class X, class Y>
  requires detail::mixed_integers<X, Y>
TFM_HOST_DEVICE constexpr std::int64_t operator%(X x, Y y) noexcept {
  if constexpr (static_integer<Y>) static_assert(Y::value != 0, "tfm: remainder by _0");
  return static_cast<std::int64_t>(x) % static_cast<std::int64_t>(y);
}

template <bool A>
TFM_HOST_DEVICE constexpr bool_constant<!A> operator!(bool_constant<A>) noexcept {
  return {};
}
template <bool A, bool B>
TFM_HOST_DEVICE constexpr bool_constant<A && B> operator&&(bool_constant<A>, bool_constant<B>) noexcept {
  return {};
}
template <bool A, bool B>
TFM_HOST_DEVICE constexpr bool_constant<A || B> operator||(bool_constant<A>, bool_constant<B>) noexcept {
  return {};
}

// ---------------------------------------------------------------------------- integer helpers
// Each keeps the result static when both arguments are.
namespace detail {
TFM_HOST_DEVICE constexpr std::int64_t ceil_div_value(std::int64_t a, std::int64_t b) noexcept {
  return (a + b - 1) / b;
}
// a / b rounded up to at least 1 (in magnitude), and a when b == 0: the "how many of b fit in
// a, or 1 if b is the bigger" step of layout composition.
TFM_HOST_DEVICE constexpr std::int64_t shape_div_value(std::int64_t a, std::int64_t b) noexcept {
  if (b == 0 || a == 0) return a;
  const std::int64_t q = a / b;
  if (q != 0) return q;
  return (a > 0) == (b > 0) ? 1 : -1;
}
TFM_HOST_DEVICE constexpr std::int64_t min_value(std::int64_t a, std::int64_t b) noexcept {
  return a < b ? a : b;
}
TFM_HOST_DEVICE constexpr std::int64_t max_value(std::int64_t a, std::int64_t b) noexcept {
  return a < b ? b : a;
}
template <class... V>
TFM_HOST_DEVICE constexpr std::int64_t max_of(std::int64_t first, V... rest) noexcept {
  std::int64_t m = first;
  ((m = static_cast<std::int64_t>(rest) > m ? static_cast<std::int64_t>(rest) : m), ...);
  return m;
}

#define TFM_DETAIL_STATIC_OR_DYNAMIC(NAME, VALUE_FN)                       \
  template <integer_like A, integer_like B>                                \
  TFM_HOST_DEVICE constexpr auto NAME(A a, B b) noexcept {                 \
    if constexpr (static_integer<A> && static_integer<B>) {                \
      return constant<VALUE_FN(A::value, B::value)>{};                     \
    } else {                                                               \
      return VALUE_FN(static_cast<std::int64_t>(a), static_cast<std::int64_t>(b)); \
    }                                                                      \
  }
TFM_DETAIL_STATIC_OR_DYNAMIC(smin, min_value)
TFM_DETAIL_STATIC_OR_DYNAMIC(smax, max_value)
#undef TFM_DETAIL_STATIC_OR_DYNAMIC
}  // namespace detail

// ⌈a / b⌉ for a ≥ 0, b > 0.
template <integer_like A, integer_like B>
TFM_HOST_DEVICE constexpr auto ceil_div(A a, B b) noexcept {
  if constexpr (static_integer<A> && static_integer<B>) {
    static_assert(B::value > 0, "tfm::ceil_div: the divisor must be positive");
    return constant<detail::ceil_div_value(A::value, B::value)>{};
  } else {
    return detail::ceil_div_value(static_cast<std::int64_t>(a), static_cast<std::int64_t>(b));
  }
}

// a / b when b divides a, 1 when a divides b (b > a); a when a or b is 0.
template <integer_like A, integer_like B>
TFM_HOST_DEVICE constexpr auto shape_div(A a, B b) noexcept {
  if constexpr (static_integer<A> && static_integer<B>) {
    return constant<detail::shape_div_value(A::value, B::value)>{};
  } else {
    return detail::shape_div_value(static_cast<std::int64_t>(a), static_cast<std::int64_t>(b));
  }
}

}  // namespace tfm
