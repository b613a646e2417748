// tfm/core/tuple.hpp — a small tuple for shapes, strides and coordinates, usable in device
// code. Empty members (static integers, tuples of them) take no space, so a tuple of static
// integers is itself an empty type. Algorithms here work on "integer tuples": an integer, or a
// tuple whose entries are integer tuples (hierarchical shapes such as ((2, 3), 4)).
#pragma once
#include <cstddef>
#include <cstdint>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>

#include "tfm/core/config.hpp"
#include "tfm/core/integral.hpp"

namespace tfm {

template <class... T>
struct tuple;

namespace detail {
// One entry of a tuple. An empty entry stores nothing and is rebuilt on access: empty types
// used here (constants, tuples of constants) carry no state. Each leaf is a distinct type
// (index I), so a tuple never holds the same empty base twice and stays empty itself. The
// accessor is not called `get`: structured bindings would find it instead of tfm::get.
template <std::size_t I, class T, bool Stateless = std::is_empty_v<T> && std::is_trivially_default_constructible_v<T>>
struct tuple_leaf {
  T value_{};
  constexpr tuple_leaf() = default;
  TFM_HOST_DEVICE constexpr tuple_leaf(T const& v) : value_(v) {}
  TFM_HOST_DEVICE constexpr T& leaf_value() noexcept { return value_; }
  TFM_HOST_DEVICE constexpr T const& leaf_value() const noexcept { return value_; }
};
template <std::size_t I, class T>
struct tuple_leaf<I, T, true> {
  constexpr tuple_leaf() = default;
  TFM_HOST_DEVICE constexpr tuple_leaf(T const&) noexcept {}
  TFM_HOST_DEVICE constexpr T leaf_value() const noexcept { return T{}; }
};

template <class Indices, class... T>
struct tuple_base;
template <std::size_t... I, class... T>
struct tuple_base<std::index_sequence<I...>, T...> : tuple_leaf<I, T>... {
  constexpr tuple_base() = default;
  TFM_HOST_DEVICE constexpr explicit tuple_base(T const&... v) : tuple_leaf<I, T>(v)... {}
};

// Finds the leaf of index I by derived-to-base deduction: no recursion over the pack.
template <std::size_t I, class T, bool S>
TFM_HOST_DEVICE constexpr tuple_leaf<I, T, S>& leaf_at(tuple_leaf<I, T, S>& l) noexcept {
  return l;
}
template <std::size_t I, class T, bool S>
TFM_HOST_DEVICE constexpr tuple_leaf<I, T, S> const& leaf_at(tuple_leaf<I, T, S> const& l) noexcept {
  return l;
}
template <std::size_t I, class T, bool S>
T leaf_type(tuple_leaf<I, T, S> const&);  // unevaluated only
}  // namespace detail

template <class... T>
struct tuple : detail::tuple_base<std::index_sequence_for<T...>, T...> {
  using base_type = detail::tuple_base<std::index_sequence_for<T...>, T...>;
  static constexpr std::size_t size = sizeof...(T);

  constexpr tuple() = default;
  TFM_HOST_DEVICE constexpr tuple(T const&... v) : base_type(v...) {}
};
// The empty tuple on its own: no second (empty) value constructor next to the default one.
template <>
struct tuple<> {
  static constexpr std::size_t size = 0;
};
template <class... T>
tuple(T...) -> tuple<T...>;

// ---------------------------------------------------------------------------- traits
namespace detail {
template <class T>
struct is_tuple : std::false_type {};
template <class... T>
struct is_tuple<tuple<T...>> : std::true_type {};
}  // namespace detail

template <class T>
inline constexpr bool is_tuple_v = detail::is_tuple<std::remove_cvref_t<T>>::value;
template <class T>
concept tuple_type = is_tuple_v<T>;

namespace detail {
template <class T>
struct is_int_tuple : std::bool_constant<integer_like<T>> {};
template <class... T>
struct is_int_tuple<tuple<T...>> : std::bool_constant<(is_int_tuple<std::remove_cvref_t<T>>::value && ...)> {};
}  // namespace detail

// An integer, or a (possibly nested) tuple of integers: what shapes, strides and coordinates are.
template <class T>
concept int_tuple = detail::is_int_tuple<std::remove_cvref_t<T>>::value;

template <class... T>
struct is_static<tuple<T...>> : std::bool_constant<(is_static_v<T> && ...)> {};

template <std::size_t I, class Tuple>
using tuple_element_t = decltype(detail::leaf_type<I>(std::declval<std::remove_cvref_t<Tuple> const&>()));

// Number of top-level modes: sizeof...(T) for a tuple, 1 for an integer.
namespace detail {
template <class T>
struct rank_of : std::integral_constant<int, 1> {};
template <class... T>
struct rank_of<tuple<T...>> : std::integral_constant<int, static_cast<int>(sizeof...(T))> {};
template <class T>
struct depth_of : std::integral_constant<int, 0> {};
template <class... T>
struct depth_of<tuple<T...>>
    : std::integral_constant<int, 1 + static_cast<int>(max_of(0, depth_of<std::remove_cvref_t<T>>::value...))> {};
template <>
struct depth_of<tuple<>> : std::integral_constant<int, 1> {};
}  // namespace detail
template <class T>
inline constexpr int rank_v = detail::rank_of<std::remove_cvref_t<T>>::value;
// Nesting depth: 0 for an integer, 1 for a flat tuple, and so on.
template <class T>
inline constexpr int depth_v = detail::depth_of<std::remove_cvref_t<T>>::value;

// ---------------------------------------------------------------------------- access
template <std::size_t I, class... T>
TFM_HOST_DEVICE constexpr decltype(auto) get(tuple<T...>& t) noexcept {
  static_assert(I < sizeof...(T), "tfm::get: index out of range");
  return detail::leaf_at<I>(t).leaf_value();
}
template <std::size_t I, class... T>
TFM_HOST_DEVICE constexpr decltype(auto) get(tuple<T...> const& t) noexcept {
  static_assert(I < sizeof...(T), "tfm::get: index out of range");
  return detail::leaf_at<I>(t).leaf_value();
}
template <std::size_t I, class... T>
TFM_HOST_DEVICE constexpr auto get(tuple<T...>&& t) noexcept {
  static_assert(I < sizeof...(T), "tfm::get: index out of range");
  return tuple_element_t<I, tuple<T...>>(std::move(detail::leaf_at<I>(t).leaf_value()));
}
// get<I, J, ...>(t) == get<J, ...>(get<I>(t)): reaches into nested tuples.
template <std::size_t I0, std::size_t I1, std::size_t... Is, tuple_type T>
TFM_HOST_DEVICE constexpr decltype(auto) get(T&& t) noexcept {
  return get<I1, Is...>(get<I0>(static_cast<T&&>(t)));
}

// Arguments are taken by value: the `_N` constants are namespace-scope objects, which device
// code may copy but not bind to a reference.
template <class... T>
TFM_HOST_DEVICE constexpr tuple<T...> make_tuple(T... v) {
  return tuple<T...>(v...);
}

// rank(t): number of top-level modes; rank<I...>(t): rank of the mode get<I...>(t).
template <std::size_t... I, class T>
  requires int_tuple<T> || tuple_type<T>
TFM_HOST_DEVICE constexpr auto rank(T t) noexcept {
  if constexpr (sizeof...(I) == 0) {
    return constant<rank_v<T>>{};
  } else {
    return rank(get<I...>(t));
  }
}

template <class T>
  requires int_tuple<T> || tuple_type<T>
TFM_HOST_DEVICE constexpr auto depth(T) noexcept {
  return constant<depth_v<T>>{};
}

// ---------------------------------------------------------------------------- algorithms
// f applied to every top-level entry (one tuple) or to matching entries of two tuples.
template <tuple_type T, class F>
TFM_HOST_DEVICE constexpr auto transform(T const& t, F&& f) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return tfm::make_tuple(f(get<I>(t))...);
  }(std::make_index_sequence<rank_v<T>>{});
}
template <tuple_type T, tuple_type U, class F>
TFM_HOST_DEVICE constexpr auto transform(T const& t, U const& u, F&& f) {
  static_assert(rank_v<T> == rank_v<U>, "tfm::transform: the tuples have different ranks");
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return tfm::make_tuple(f(get<I>(t), get<I>(u))...);
  }(std::make_index_sequence<rank_v<T>>{});
}

// f applied to every integer of a hierarchical integer tuple; keeps the nesting.
template <int_tuple T, class F>
TFM_HOST_DEVICE constexpr auto transform_leaf(T const& t, F&& f) {
  if constexpr (is_tuple_v<T>) {
    return transform(t, [&](auto const& e) { return transform_leaf(e, f); });
  } else {
    return f(t);
  }
}

template <tuple_type T, class F>
TFM_HOST_DEVICE constexpr void for_each(T const& t, F&& f) {
  [&]<std::size_t... I>(std::index_sequence<I...>) { (f(get<I>(t)), ...); }(std::make_index_sequence<rank_v<T>>{});
}

namespace detail {
template <std::size_t I, class T, class V, class F>
TFM_HOST_DEVICE constexpr auto fold_from(T const& t, V v, F& f) {
  if constexpr (I == rank_v<T>) {
    return v;
  } else {
    return fold_from<I + 1>(t, f(v, get<I>(t)), f);
  }
}
}  // namespace detail

// Left fold f(...f(f(init, t0), t1)..., tn); the accumulator's type may change at each step
// (a constant stays a constant until it meets a run-time value).
template <tuple_type T, class V, class F>
TFM_HOST_DEVICE constexpr auto fold(T const& t, V init, F&& f) {
  return detail::fold_from<0>(t, init, f);
}

// Product of every integer in a hierarchical tuple (an integer is its own product; () is 1).
template <int_tuple T>
TFM_HOST_DEVICE constexpr auto product(T t) {
  if constexpr (is_tuple_v<T>) {
    return fold(t, C<1>{}, [](auto acc, auto const& e) { return acc * product(e); });
  } else {
    return to_integer(t);
  }
}

// Sum of every integer in a hierarchical tuple (() is 0).
template <int_tuple T>
TFM_HOST_DEVICE constexpr auto sum(T t) {
  if constexpr (is_tuple_v<T>) {
    return fold(t, C<0>{}, [](auto acc, auto const& e) { return acc + sum(e); });
  } else {
    return to_integer(t);
  }
}

// Σ a_i · b_i over matching integers of two tuples with the same nesting.
template <int_tuple A, int_tuple B>
TFM_HOST_DEVICE constexpr auto inner_product(A a, B b) {
  if constexpr (is_tuple_v<A> && is_tuple_v<B>) {
    static_assert(rank_v<A> == rank_v<B>, "tfm::inner_product: the tuples have different ranks");
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return (C<0>{} + ... + inner_product(get<I>(a), get<I>(b)));
    }(std::make_index_sequence<rank_v<A>>{});
  } else {
    static_assert(!is_tuple_v<A> && !is_tuple_v<B>, "tfm::inner_product: the tuples are nested differently");
    return to_integer(a) * to_integer(b);
  }
}

namespace detail {
template <std::size_t I, class T, class R, class V>
TFM_HOST_DEVICE constexpr auto prefix_product_from(T const& t, R const& done, V running);
}  // namespace detail

// Exclusive prefix product, same nesting as t, in colexicographic order (first entry fastest):
// prefix_product((3, (4, 5))) == (1, (3, 12)). These are the strides of a compact
// column-major layout.
template <int_tuple T, integer_like V = constant<1>>
TFM_HOST_DEVICE constexpr auto prefix_product(T t, V init = {}) {
  if constexpr (is_tuple_v<T>) {
    return detail::prefix_product_from<0>(t, tuple<>{}, to_integer(init));
  } else {
    return to_integer(init);
  }
}

// ---------------------------------------------------------------------------- building tuples
template <tuple_type T, class X>
TFM_HOST_DEVICE constexpr auto append(T const& t, X const& x) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return tuple<std::remove_cvref_t<decltype(get<I>(t))>..., X>(get<I>(t)..., x);
  }(std::make_index_sequence<rank_v<T>>{});
}
template <tuple_type T, class X>
TFM_HOST_DEVICE constexpr auto prepend(T const& t, X const& x) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return tuple<X, std::remove_cvref_t<decltype(get<I>(t))>...>(x, get<I>(t)...);
  }(std::make_index_sequence<rank_v<T>>{});
}

// Concatenation of tuples: tuple_cat((1, 2), (3,), ()) == (1, 2, 3).
TFM_HOST_DEVICE constexpr tuple<> tuple_cat() { return {}; }
template <tuple_type T>
TFM_HOST_DEVICE constexpr auto tuple_cat(T const& t) {
  return std::remove_cvref_t<T>(t);
}
template <tuple_type T, tuple_type U, tuple_type... Rest>
TFM_HOST_DEVICE constexpr auto tuple_cat(T const& t, U const& u, Rest const&... rest) {
  auto tu = [&]<std::size_t... I, std::size_t... J>(std::index_sequence<I...>, std::index_sequence<J...>) {
    return tuple<tuple_element_t<I, T>..., tuple_element_t<J, U>...>(get<I>(t)..., get<J>(u)...);
  }(std::make_index_sequence<rank_v<T>>{}, std::make_index_sequence<rank_v<U>>{});
  if constexpr (sizeof...(Rest) == 0) {
    return tu;
  } else {
    return tuple_cat(tu, rest...);
  }
}

// Every integer of a hierarchical tuple, in order, as one flat tuple (an integer gives (x)).
template <int_tuple T>
TFM_HOST_DEVICE constexpr auto flatten_to_tuple(T t) {
  if constexpr (is_tuple_v<T>) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return tuple_cat(tuple<>{}, flatten_to_tuple(get<I>(t))...);
    }(std::make_index_sequence<rank_v<T>>{});
  } else {
    return tfm::make_tuple(to_integer(t));
  }
}
// As flatten_to_tuple, but an integer stays an integer.
template <int_tuple T>
TFM_HOST_DEVICE constexpr auto flatten(T t) {
  if constexpr (is_tuple_v<T>) {
    return flatten_to_tuple(t);
  } else {
    return to_integer(t);
  }
}

// The entries I... of t, in that order.
template <std::size_t... I, tuple_type T>
TFM_HOST_DEVICE constexpr auto select(T const& t) {
  static_assert(((I < rank_v<T>) && ...), "tfm::select: mode index out of range");
  return tuple<tuple_element_t<I, T>...>(get<I>(t)...);
}

// Entries [B, E) of t.
template <std::size_t B, std::size_t E, tuple_type T>
TFM_HOST_DEVICE constexpr auto take(T const& t) {
  static_assert(B <= E && E <= rank_v<T>, "tfm::take: bad range");
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return select<(B + I)...>(t);
  }(std::make_index_sequence<E - B>{});
}

template <tuple_type T>
TFM_HOST_DEVICE constexpr auto reverse(T const& t) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return select<(rank_v<T> - 1 - I)...>(t);
  }(std::make_index_sequence<rank_v<T>>{});
}

// Exclusive suffix product (last entry fastest): suffix_product((3, (4, 5))) == (20, (5, 1)).
// These are the strides of a compact row-major layout.
template <int_tuple T, integer_like V = constant<1>>
TFM_HOST_DEVICE constexpr auto suffix_product(T t, V init = {}) {
  if constexpr (is_tuple_v<T>) {
    auto reversed_deep = [](auto const& self, auto const& x) {
      if constexpr (is_tuple_v<decltype(x)>) {
        return reverse(transform(x, [&](auto const& e) { return self(self, e); }));
      } else {
        return x;
      }
    };
    return reversed_deep(reversed_deep, prefix_product(reversed_deep(reversed_deep, t), init));
  } else {
    return to_integer(init);
  }
}

namespace detail {
template <std::size_t I, class T, class R, class V>
TFM_HOST_DEVICE constexpr auto prefix_product_from(T const& t, R const& done, V running) {
  if constexpr (I == rank_v<T>) {
    return done;
  } else {
    auto const& e = get<I>(t);
    return prefix_product_from<I + 1>(t, append(done, prefix_product(e, running)), running * product(e));
  }
}
}  // namespace detail

// ---------------------------------------------------------------------------- comparison
// Two integer tuples are congruent when they nest the same way (same "profile").
namespace detail {
template <class A, class B>
struct congruent : std::bool_constant<!is_tuple_v<A> && !is_tuple_v<B>> {};
template <class... A, class... B>
struct congruent<tuple<A...>, tuple<B...>> : std::false_type {};
template <class... A, class... B>
  requires(sizeof...(A) == sizeof...(B))
struct congruent<tuple<A...>, tuple<B...>>
    : std::bool_constant<(congruent<std::remove_cvref_t<A>, std::remove_cvref_t<B>>::value && ...)> {};

template <class X, class Y>
TFM_HOST_DEVICE constexpr bool int_tuple_equal(X const& x, Y const& y);

template <class X>
void print_entry(std::ostream& os, X const& x) {
  if constexpr (integer_like<X>) {
    os << static_cast<std::int64_t>(x);
  } else {
    os << x;
  }
}
}  // namespace detail
template <class A, class B>
inline constexpr bool congruent_v = detail::congruent<std::remove_cvref_t<A>, std::remove_cvref_t<B>>::value;

// Value equality of integer tuples; tuples that nest differently are unequal.
template <class... A, class... B>
  requires int_tuple<tuple<A...>> && int_tuple<tuple<B...>>
TFM_HOST_DEVICE constexpr bool operator==(tuple<A...> const& a, tuple<B...> const& b) {
  if constexpr (!congruent_v<tuple<A...>, tuple<B...>>) {
    return false;
  } else {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return (detail::int_tuple_equal(get<I>(a), get<I>(b)) && ...);
    }(std::index_sequence_for<A...>{});
  }
}
namespace detail {
template <class X, class Y>
TFM_HOST_DEVICE constexpr bool int_tuple_equal(X const& x, Y const& y) {
  if constexpr (is_tuple_v<X>) {
    return x == y;
  } else {
    return static_cast<std::int64_t>(x) == static_cast<std::int64_t>(y);
  }
}
}  // namespace detail

// ---------------------------------------------------------------------------- printing
// Integers print as plain numbers, static or not: (3, (4, 5)).
template <class... T>
std::ostream& operator<<(std::ostream& os, tuple<T...> const& t) {
  os << '(';
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((os << (I == 0 ? "" : ", "), detail::print_entry(os, get<I>(t))), ...);
  }(std::index_sequence_for<T...>{});
  return os << ')';
}
template <int_tuple T>
std::string to_string(T const& t) {
  std::ostringstream os;
  if constexpr (is_tuple_v<T>) {
    os << t;
  } else {
    os << static_cast<std::int64_t>(t);
  }
  return os.str();
}

}  // namespace tfm

// Structured bindings: auto [m, n] = shape(l);
namespace std {
template <class... T>
struct tuple_size<tfm::tuple<T...>> : std::integral_constant<std::size_t, sizeof...(T)> {};
template <std::size_t I, class... T>
struct tuple_element<I, tfm::tuple<T...>> {
  using type = tfm::tuple_element_t<I, tfm::tuple<T...>>;
};
}  // namespace std
