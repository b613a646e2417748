// tfm/core/layout.hpp — layout<Shape, Stride>: a map from coordinates to memory offsets, with
// every mode static or dynamic, and the algebra on it (composition, complement, divide).
// Index maths in tfm goes through a layout; a fully static layout is an empty type, and its
// offsets fold to constants.
//
// Conventions (the ones CuTe uses):
//  * Shape and Stride are congruent integer tuples: (M, N):(ld, 1) is an M×N row-major matrix.
//    Modes may nest: ((2, 4), 3):((1, 6), 2).
//  * l(i, j, ...) takes one coordinate per top-level mode; a single integer given to a mode
//    that nests (or to the whole layout) is read colexicographically, first sub-mode fastest.
//    So l(k) walks the layout's domain in colexicographic order, whatever the strides.
//  * make_layout(shape) is compact column-major (then l(k) == k); say make_row_major for
//    row-major.
//  * Algebra functions assume non-negative strides on the right-hand side of composition and in
//    complement; see each function for what it supports.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"
#include "tfm/core/integral.hpp"
#include "tfm/core/tuple.hpp"

namespace tfm {

namespace detail {
template <class... Args>
[[noreturn]] inline void throw_shape_error(Args const&... args) {
  throw shape_error(concat(args...));
}
}  // namespace detail

// Run-time check of dynamic layout arguments: throws shape_error on the host, and is compiled
// out of device code (kernels receive layouts built and checked on the host). In a constant
// expression a failed check is a compile error pointing here.
#if TFM_DEVICE_CODE
#define TFM_DETAIL_LAYOUT_CHECK(cond, ...) ((void)0)
#else
#define TFM_DETAIL_LAYOUT_CHECK(cond, ...) ((cond) ? (void)0 : ::tfm::detail::throw_shape_error(__VA_ARGS__))
#endif

template <int_tuple Shape, int_tuple Stride = decltype(prefix_product(std::declval<Shape const&>()))>
struct layout;

namespace detail {
template <class T>
struct is_layout : std::false_type {};
template <class S, class D>
struct is_layout<layout<S, D>> : std::true_type {};
}  // namespace detail

template <class T>
concept layout_type = detail::is_layout<std::remove_cvref_t<T>>::value;

// ---------------------------------------------------------------------------- coordinates
// Offset of coordinate `c` in the layout shape:stride. A tuple coordinate goes mode by mode; an
// integer given to a nested shape is split colexicographically first (the last sub-mode takes
// whatever is left, so it is not reduced modulo its extent).
template <int_tuple Coord, int_tuple Shape, int_tuple Stride>
TFM_HOST_DEVICE constexpr auto crd2idx(Coord c, Shape const& s, Stride const& d);

namespace detail {
template <std::size_t I, class Coord, class Shape, class Stride>
TFM_HOST_DEVICE constexpr auto crd2idx_colex(Coord c, Shape const& s, Stride const& d) {
  constexpr std::size_t r = rank_v<Shape>;
  if constexpr (r == 0) {
    return C<0>{};
  } else if constexpr (I + 1 == r) {
    return crd2idx(c, get<I>(s), get<I>(d));
  } else {
    auto const n = product(get<I>(s));
    return crd2idx(c % n, get<I>(s), get<I>(d)) + crd2idx_colex<I + 1>(c / n, s, d);
  }
}
}  // namespace detail

template <int_tuple Coord, int_tuple Shape, int_tuple Stride>
TFM_HOST_DEVICE constexpr auto crd2idx(Coord c, Shape const& s, Stride const& d) {
  if constexpr (is_tuple_v<Coord>) {
    static_assert(is_tuple_v<Shape> && rank_v<Coord> == rank_v<Shape>,
                  "tfm::layout: the coordinate has a different rank from the layout");
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return (C<0>{} + ... + crd2idx(get<I>(c), get<I>(s), get<I>(d)));
    }(std::make_index_sequence<rank_v<Coord>>{});
  } else if constexpr (is_tuple_v<Shape>) {
    return detail::crd2idx_colex<0>(to_integer(c), s, d);
  } else {
    return to_integer(c) * to_integer(d);
  }
}

namespace detail {
template <std::size_t I, class Index, class Shape, class Done>
TFM_HOST_DEVICE constexpr auto idx2crd_colex(Index idx, Shape const& s, Done const& done);
}  // namespace detail

// The colexicographic coordinate (same nesting as `s`) of linear index `idx` in shape `s`.
template <integer_like Index, int_tuple Shape>
TFM_HOST_DEVICE constexpr auto idx2crd(Index idx, Shape const& s) {
  if constexpr (is_tuple_v<Shape>) {
    return detail::idx2crd_colex<0>(to_integer(idx), s, tuple<>{});
  } else {
    return to_integer(idx);
  }
}

namespace detail {
template <std::size_t I, class Index, class Shape, class Done>
TFM_HOST_DEVICE constexpr auto idx2crd_colex(Index idx, Shape const& s, Done const& done) {
  constexpr std::size_t r = rank_v<Shape>;
  if constexpr (I == r) {
    return done;
  } else if constexpr (I + 1 == r) {
    return append(done, idx2crd(idx, get<I>(s)));
  } else {
    auto const n = product(get<I>(s));
    return idx2crd_colex<I + 1>(idx / n, s, append(done, idx2crd(idx % n, get<I>(s))));
  }
}

// Every built-in integer of a hierarchical tuple as int64_t; constants unchanged.
template <int_tuple T>
TFM_HOST_DEVICE constexpr auto normalize(T const& t) {
  return transform_leaf(t, [](auto x) { return to_integer(x); });
}
}  // namespace detail

// ---------------------------------------------------------------------------- the type
// A map from the coordinates of Shape to offsets, offset = Σ coordinate · stride. Holds its
// shape and stride through empty-base storage: static parts take no space.
template <int_tuple Shape, int_tuple Stride>
struct layout : private detail::tuple_leaf<0, Shape>, private detail::tuple_leaf<1, Stride> {
  static_assert(congruent_v<Shape, Stride>, "tfm::layout: the shape and the stride must nest the same way");
  using shape_type = Shape;
  using stride_type = Stride;
  static constexpr int rank = rank_v<Shape>;

  constexpr layout() = default;
  TFM_HOST_DEVICE constexpr layout(Shape const& s, Stride const& d)
      : detail::tuple_leaf<0, Shape>(s), detail::tuple_leaf<1, Stride>(d) {}

  TFM_HOST_DEVICE constexpr decltype(auto) shape() const noexcept {
    return detail::tuple_leaf<0, Shape>::leaf_value();
  }
  TFM_HOST_DEVICE constexpr decltype(auto) stride() const noexcept {
    return detail::tuple_leaf<1, Stride>::leaf_value();
  }

  // l(i, j, ...): one coordinate per mode; l(k): linear (colexicographic) index; l(tuple): both.
  template <int_tuple... Coord>
    requires(sizeof...(Coord) > 0)
  TFM_HOST_DEVICE constexpr auto operator()(Coord... c) const {
    if constexpr (sizeof...(Coord) == 1) {
      return crd2idx(c..., shape(), stride());
    } else {
      static_assert(sizeof...(Coord) == rank_v<Shape>, "tfm::layout: wrong number of coordinates");
      return crd2idx(tuple<Coord...>(c...), shape(), stride());
    }
  }
};

template <class S, class D>
struct is_static<layout<S, D>> : std::bool_constant<is_static_v<S> && is_static_v<D>> {};

// ---------------------------------------------------------------------------- construction
// Tuples for shapes, strides and coordinates; built-in integers become int64_t.
template <int_tuple... T>
TFM_HOST_DEVICE constexpr auto make_shape(T... t) {
  return tfm::make_tuple(detail::normalize(t)...);
}
template <int_tuple... T>
TFM_HOST_DEVICE constexpr auto make_stride(T... t) {
  return tfm::make_tuple(detail::normalize(t)...);
}
template <int_tuple... T>
TFM_HOST_DEVICE constexpr auto make_coord(T... t) {
  return tfm::make_tuple(detail::normalize(t)...);
}

// A layout from a shape and a congruent stride.
template <int_tuple Shape, int_tuple Stride>
TFM_HOST_DEVICE constexpr auto make_layout(Shape s, Stride d) {
  static_assert(congruent_v<Shape, Stride>, "tfm::make_layout: the shape and the stride must nest the same way");
  using S = decltype(detail::normalize(s));
  using D = decltype(detail::normalize(d));
  return layout<S, D>(detail::normalize(s), detail::normalize(d));
}
// A compact column-major layout of `s` (first mode fastest, l(k) == k).
template <int_tuple Shape>
TFM_HOST_DEVICE constexpr auto make_layout(Shape s) {
  return make_layout(s, prefix_product(detail::normalize(s)));
}
// The layouts as the modes of one layout: make_layout(a, b) has shape (shape(a), shape(b)).
template <layout_type... L>
  requires(sizeof...(L) > 0)
TFM_HOST_DEVICE constexpr auto make_layout(L const&... ls) {
  return make_layout(tfm::make_tuple(ls.shape()...), tfm::make_tuple(ls.stride()...));
}

namespace detail {
template <class... T>
TFM_HOST_DEVICE constexpr auto shape_from_args(T... t) {
  if constexpr (sizeof...(T) == 1 && (is_tuple_v<T> && ...)) {
    return normalize(t...);
  } else {
    return make_shape(t...);
  }
}
}  // namespace detail

// Compact column-major: first mode has stride 1. make_col_major(m, n) or make_col_major(shape).
template <int_tuple... T>
  requires(sizeof...(T) > 0)
TFM_HOST_DEVICE constexpr auto make_col_major(T... t) {
  auto const s = detail::shape_from_args(t...);
  return make_layout(s, prefix_product(s));
}
// Compact row-major: last mode has stride 1. make_row_major(m, n) or make_row_major(shape).
template <int_tuple... T>
  requires(sizeof...(T) > 0)
TFM_HOST_DEVICE constexpr auto make_row_major(T... t) {
  auto const s = detail::shape_from_args(t...);
  return make_layout(s, suffix_product(s));
}

namespace detail {
template <class Big, class Small>
TFM_HOST_DEVICE constexpr void check_leading_dim(Big ld, Small extent, char const* op) {
  if constexpr (static_integer<Big> && static_integer<Small>) {
    static_assert(Big::value >= Small::value, "tfm: the leading dimension is smaller than the contiguous extent");
  } else {
    TFM_DETAIL_LAYOUT_CHECK(value_of(ld) >= value_of(extent), op, ": leading dimension ", value_of(ld),
                            " is smaller than the contiguous extent ", value_of(extent));
  }
  (void)ld, (void)extent, (void)op;
}
}  // namespace detail

// rows×cols row-major with `ld` elements between rows (ld ≥ cols): (rows, cols):(ld, 1).
template <integer_like R, integer_like Cc, integer_like Ld>
TFM_HOST_DEVICE constexpr auto make_padded_row_major(R rows, Cc cols, Ld ld) {
  detail::check_leading_dim(to_integer(ld), to_integer(cols), "make_padded_row_major");
  return make_layout(make_shape(rows, cols), make_stride(ld, C<1>{}));
}
// rows×cols column-major with `ld` elements between columns (ld ≥ rows): (rows, cols):(1, ld).
template <integer_like R, integer_like Cc, integer_like Ld>
TFM_HOST_DEVICE constexpr auto make_padded_col_major(R rows, Cc cols, Ld ld) {
  detail::check_leading_dim(to_integer(ld), to_integer(rows), "make_padded_col_major");
  return make_layout(make_shape(rows, cols), make_stride(C<1>{}, ld));
}

namespace detail {
template <class N, class B>
TFM_HOST_DEVICE constexpr bool tile_divides(N n, B b) {
  if constexpr (static_integer<N> && static_integer<B>) {
    static_assert(B::value > 0 && N::value % B::value == 0,
                  "tfm::make_tiled_*: a tile extent does not divide the matrix extent");
    return true;
  } else {
    return value_of(b) > 0 && value_of(n) % value_of(b) == 0;
  }
}

template <class Shape, class Tile>
TFM_HOST_DEVICE constexpr void check_tiles_divide(Shape const& s, Tile const& t, char const* op) {
  static_assert(is_tuple_v<Shape> && is_tuple_v<Tile> && rank_v<Shape> == rank_v<Tile> && depth_v<Shape> == 1 &&
                    depth_v<Tile> == 1,
                "tfm::make_tiled_*: the shape and the tile must be flat tuples of the same rank");
  [[maybe_unused]] bool const ok = [&]<std::size_t... I>(std::index_sequence<I...>) {
    return (tile_divides(get<I>(s), get<I>(t)) && ...);
  }(std::make_index_sequence<rank_v<Shape>>{});
  TFM_DETAIL_LAYOUT_CHECK(ok, op, ": tile ", t, " does not divide shape ", s);
  (void)op;
}

// Mode k of a tiled layout: (tile_k, grid_k):(inner_k, tile_size · outer_k).
template <class Tile, class Grid, class Inner, class Outer, class TileSize>
TFM_HOST_DEVICE constexpr auto tiled_layout(Tile const& t, Grid const& g, Inner const& in, Outer const& out,
                                            TileSize ts) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return make_layout(make_shape(make_shape(get<I>(t), get<I>(g))...),
                       make_stride(make_stride(get<I>(in), ts * get<I>(out))...));
  }(std::make_index_sequence<rank_v<Tile>>{});
}
}  // namespace detail

// A matrix (or any rank) stored as a grid of tiles, row-major between tiles and row-major inside
// each tile; each tile is contiguous. Mode k is (tile_k, shape_k / tile_k), so l(i, j) still
// takes the logical coordinate: i splits into (i % tm, i / tm). Tiles must divide the shape.
//   make_tiled_row_major(make_shape(M, N), make_shape(tm, tn))  // ((tm, M/tm), (tn, N/tn))
template <int_tuple Shape, int_tuple Tile>
TFM_HOST_DEVICE constexpr auto make_tiled_row_major(Shape matrix_shape, Tile tile_shape) {
  auto const s = detail::normalize(matrix_shape);
  auto const t = detail::normalize(tile_shape);
  detail::check_tiles_divide(s, t, "make_tiled_row_major");
  auto const g = transform(s, t, [](auto n, auto b) { return n / b; });
  return detail::tiled_layout(t, g, suffix_product(t), suffix_product(g), product(t));
}
// As make_tiled_row_major, column-major between and inside tiles.
template <int_tuple Shape, int_tuple Tile>
TFM_HOST_DEVICE constexpr auto make_tiled_col_major(Shape matrix_shape, Tile tile_shape) {
  auto const s = detail::normalize(matrix_shape);
  auto const t = detail::normalize(tile_shape);
  detail::check_tiles_divide(s, t, "make_tiled_col_major");
  auto const g = transform(s, t, [](auto n, auto b) { return n / b; });
  return detail::tiled_layout(t, g, prefix_product(t), prefix_product(g), product(t));
}

// ---------------------------------------------------------------------------- queries
// shape(l), shape<I>(l), shape<I, J>(l) (mode J of mode I), and the same for stride.
template <std::size_t... I, layout_type L>
TFM_HOST_DEVICE constexpr decltype(auto) shape(L const& l) {
  if constexpr (sizeof...(I) == 0) {
    return l.shape();
  } else {
    return get<I...>(l.shape());
  }
}
template <std::size_t... I, layout_type L>
TFM_HOST_DEVICE constexpr decltype(auto) stride(L const& l) {
  if constexpr (sizeof...(I) == 0) {
    return l.stride();
  } else {
    return get<I...>(l.stride());
  }
}

// Number of elements: of a shape, of a layout's domain, or of one mode (size<I>(l)).
template <std::size_t... I, int_tuple T>
TFM_HOST_DEVICE constexpr auto size(T t) {
  if constexpr (sizeof...(I) == 0) {
    return product(t);
  } else {
    return product(get<I...>(t));
  }
}
template <std::size_t... I, layout_type L>
TFM_HOST_DEVICE constexpr auto size(L const& l) {
  return product(shape<I...>(l));
}

template <std::size_t... I, layout_type L>
TFM_HOST_DEVICE constexpr auto rank(L const& l) {
  return rank(shape<I...>(l));
}
template <std::size_t... I, layout_type L>
TFM_HOST_DEVICE constexpr auto depth(L const& l) {
  return depth(shape<I...>(l));
}

// The sub-layout of mode I (or of a nested mode I, J, ...).
template <std::size_t I0, std::size_t... I, layout_type L>
TFM_HOST_DEVICE constexpr auto mode(L const& l) {
  using S = std::remove_cvref_t<decltype(shape<I0, I...>(l))>;
  using D = std::remove_cvref_t<decltype(stride<I0, I...>(l))>;
  return layout<S, D>(shape<I0, I...>(l), stride<I0, I...>(l));
}
template <std::size_t I, class S, class D>
TFM_HOST_DEVICE constexpr auto get(layout<S, D> const& l) {
  return mode<I>(l);
}

namespace detail {
template <class FS, class FD>
TFM_HOST_DEVICE constexpr std::int64_t cosize_flat(FS const& fs, FD const& fd) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    if (((value_of(get<I>(fs)) == 0) || ...)) return std::int64_t{0};
    return std::int64_t{1} + (std::int64_t{0} + ... +
                              ((value_of(get<I>(fs)) - 1) * max_value(value_of(get<I>(fd)), 0)));
  }(std::make_index_sequence<rank_v<FS>>{});
}
}  // namespace detail

// 1 + the largest offset the layout reaches (0 for an empty layout): how many elements a buffer
// needs. Negative strides contribute nothing (offsets below 0 are the caller's business).
// Static when the layout is.
template <layout_type L>
TFM_HOST_DEVICE constexpr auto cosize(L const& l) {
  using T = std::remove_cvref_t<L>;
  if constexpr (is_static_v<T>) {
    constexpr std::int64_t v =
        detail::cosize_flat(flatten_to_tuple(typename T::shape_type{}), flatten_to_tuple(typename T::stride_type{}));
    return constant<v>{};
  } else {
    return detail::cosize_flat(flatten_to_tuple(l.shape()), flatten_to_tuple(l.stride()));
  }
}

// Rank-2 layouts with integer modes that GEMM can take as (rows, cols, leading dimension):
// row-major means unit column stride and rows that do not overlap; column-major the converse.
template <layout_type L>
TFM_HOST_DEVICE constexpr bool is_row_major(L const& l) {
  static_assert(rank_v<typename L::shape_type> == 2, "tfm::is_row_major: the layout must have rank 2");
  if constexpr (depth_v<typename L::shape_type> != 1) {
    return false;
  } else {
    return value_of(stride<1>(l)) == 1 &&
           (value_of(shape<0>(l)) <= 1 || value_of(stride<0>(l)) >= value_of(shape<1>(l)));
  }
}
template <layout_type L>
TFM_HOST_DEVICE constexpr bool is_col_major(L const& l) {
  static_assert(rank_v<typename L::shape_type> == 2, "tfm::is_col_major: the layout must have rank 2");
  if constexpr (depth_v<typename L::shape_type> != 1) {
    return false;
  } else {
    return value_of(stride<0>(l)) == 1 &&
           (value_of(shape<1>(l)) <= 1 || value_of(stride<1>(l)) >= value_of(shape<0>(l)));
  }
}

// Same shape and same strides (values, static or not).
template <class SA, class DA, class SB, class DB>
TFM_HOST_DEVICE constexpr bool operator==(layout<SA, DA> const& a, layout<SB, DB> const& b) {
  if constexpr (!congruent_v<SA, SB>) {
    return false;
  } else if constexpr (is_tuple_v<SA>) {
    return a.shape() == b.shape() && a.stride() == b.stride();
  } else {
    return value_of(a.shape()) == value_of(b.shape()) && value_of(a.stride()) == value_of(b.stride());
  }
}

// ---------------------------------------------------------------------------- rearranging modes
// The modes I... of l, in that order.
template <std::size_t... I, layout_type L>
TFM_HOST_DEVICE constexpr auto select(L const& l) {
  return make_layout(select<I...>(l.shape()), select<I...>(l.stride()));
}
// select<I...> where I... is a permutation of 0 .. rank-1.
template <std::size_t... I, layout_type L>
TFM_HOST_DEVICE constexpr auto permute(L const& l) {
  static_assert(sizeof...(I) == rank_v<typename L::shape_type>, "tfm::permute: give one index per mode");
  static_assert([] {
    bool seen[sizeof...(I) + 1] = {};
    for (std::size_t i : {I...}) {
      if (i >= sizeof...(I) || seen[i]) return false;
      seen[i] = true;
    }
    return true;
  }(), "tfm::permute: the indices must be a permutation of 0 .. rank-1");
  return select<I...>(l);
}
// Swap the two modes of a rank-2 layout: the transposed matrix over the same memory.
template <layout_type L>
TFM_HOST_DEVICE constexpr auto transpose(L const& l) {
  static_assert(rank_v<typename L::shape_type> == 2, "tfm::transpose: the layout must have rank 2 (use permute)");
  return select<1, 0>(l);
}

// The same map with every nested mode spliced into one flat list of integer modes.
template <layout_type L>
TFM_HOST_DEVICE constexpr auto flatten(L const& l) {
  if constexpr (is_tuple_v<typename L::shape_type>) {
    return make_layout(flatten_to_tuple(l.shape()), flatten_to_tuple(l.stride()));
  } else {
    return l;
  }
}

namespace detail {
template <bool Keep, class X>
TFM_HOST_DEVICE constexpr auto keep_if(X const& x) {
  if constexpr (Keep) {
    return tfm::make_tuple(x);
  } else {
    return tuple<>{};
  }
}

// Drops the modes of a flat layout (given as shape and stride tuples) whose extent is the
// constant 1.
template <class FS, class FD>
TFM_HOST_DEVICE constexpr auto drop_unit_modes(FS const& fs, FD const& fd) {
  return [&]<std::size_t... I>(std::index_sequence<I...>) {
    return tfm::make_tuple(
        tuple_cat(tuple<>{}, keep_if<!is_constant_v<1, tuple_element_t<I, FS>>>(get<I>(fs))...),
        tuple_cat(tuple<>{}, keep_if<!is_constant_v<1, tuple_element_t<I, FS>>>(get<I>(fd))...));
  }(std::make_index_sequence<rank_v<FS>>{});
}

// A layout from flat mode lists: (_1:_0) when empty, an integer mode when single.
template <class FS, class FD>
TFM_HOST_DEVICE constexpr auto layout_from_modes(FS const& fs, FD const& fd) {
  if constexpr (rank_v<FS> == 0) {
    return make_layout(C<1>{}, C<0>{});
  } else if constexpr (rank_v<FS> == 1) {
    return make_layout(get<0>(fs), get<0>(fd));
  } else {
    return make_layout(fs, fd);
  }
}

template <std::size_t I, class FS, class FD, class OS, class OD>
TFM_HOST_DEVICE constexpr auto coalesce_from(FS const& fs, FD const& fd, OS const& os, OD const& od) {
  if constexpr (I == rank_v<FS>) {
    return layout_from_modes(os, od);
  } else {
    using S = tuple_element_t<I, FS>;
    using D = tuple_element_t<I, FD>;
    if constexpr (is_constant_v<1, S>) {
      return coalesce_from<I + 1>(fs, fd, os, od);
    } else if constexpr (rank_v<OS> > 0) {
      constexpr std::size_t last = rank_v<OS> - 1;
      using PS = tuple_element_t<last, OS>;
      using PD = tuple_element_t<last, OD>;
      if constexpr (static_integer<PS> && static_integer<PD> && static_integer<D>) {
        if constexpr (PS::value * PD::value == D::value) {
          return coalesce_from<I + 1>(fs, fd, append(take<0, last>(os), get<last>(os) * get<I>(fs)),
                                      append(take<0, last>(od), get<last>(od)));
        } else {
          return coalesce_from<I + 1>(fs, fd, append(os, get<I>(fs)), append(od, get<I>(fd)));
        }
      } else {
        return coalesce_from<I + 1>(fs, fd, append(os, get<I>(fs)), append(od, get<I>(fd)));
      }
    } else {
      return coalesce_from<I + 1>(fs, fd, append(os, get<I>(fs)), append(od, get<I>(fd)));
    }
  }
}
}  // namespace detail

// The same map (on the colexicographic index) with as few modes as the types can prove:
// flattens, drops modes of static extent 1, and merges neighbours (s0:d0, s1:d1) into
// (s0·s1 : d0) when d1 == s0·d0 is known at compile time. Dynamic extent-1 modes and merges
// that depend on run-time values are kept as they are. A single remaining mode is returned
// with an integer shape, none as _1:_0.
template <layout_type L>
TFM_HOST_DEVICE constexpr auto coalesce(L const& l) {
  return detail::coalesce_from<0>(flatten_to_tuple(l.shape()), flatten_to_tuple(l.stride()), tuple<>{}, tuple<>{});
}

// ---------------------------------------------------------------------------- composition
namespace detail {
TFM_HOST_DEVICE constexpr bool divides_either(std::int64_t a, std::int64_t b) {
  return a == 0 || b == 0 || a % b == 0 || b % a == 0;
}
TFM_HOST_DEVICE constexpr bool fits_or_divides(std::int64_t extent, std::int64_t want) {
  return extent >= want || (extent != 0 && want % extent == 0);
}

// One pass over the flat modes of A for A∘(s:d): `rest_d` is the part of d not yet absorbed by
// earlier modes, `rest_s` the part of s not yet covered. The last mode of A is unbounded.
template <std::size_t I, class AS, class AD, class RestD, class RestS, class OS, class OD>
TFM_HOST_DEVICE constexpr auto compose_modes(AS const& as, AD const& ad, RestD rest_d, RestS rest_s, OS const& os,
                                             OD const& od) {
  if constexpr (I + 1 == rank_v<AS>) {
    return tfm::make_tuple(append(os, rest_s), append(od, get<I>(ad) * rest_d));
  } else {
    auto const s = get<I>(as);
    auto const d = get<I>(ad);
    if constexpr (static_integer<decltype(s)> && static_integer<RestD>) {
      static_assert(divides_either(decltype(s)::value, RestD::value),
                    "tfm::composition: the stride of B and a mode extent of A do not divide each other");
    } else {
      TFM_DETAIL_LAYOUT_CHECK(divides_either(value_of(s), value_of(rest_d)),
                              "composition: the stride of B (remaining ", value_of(rest_d), ") and the extent ",
                              value_of(s), " of a mode of A do not divide each other");
    }
    // Extent of this mode left after skipping rest_d. A run-time stride of 0 (a broadcast B)
    // stays 0 all the way; the first mode then takes all of B's extent with stride 0.
    auto const s1 = [&] {
      if constexpr (static_integer<RestD>) {
        return shape_div(s, rest_d);
      } else {
        return rest_d == 0 ? value_of(rest_s) : value_of(shape_div(s, rest_d));
      }
    }();
    auto const d1 = d * rest_d;
    if constexpr (static_integer<decltype(s1)> && static_integer<RestS>) {
      static_assert(fits_or_divides(decltype(s1)::value, RestS::value),
                    "tfm::composition: the extent of B does not split evenly over the modes of A");
    } else {
      TFM_DETAIL_LAYOUT_CHECK(fits_or_divides(value_of(s1), value_of(rest_s)),
                              "composition: the extent of B (remaining ", value_of(rest_s),
                              ") does not split evenly over a mode of A with extent ", value_of(s1));
    }
    return compose_modes<I + 1>(as, ad, shape_div(rest_d, s), shape_div(rest_s, s1),
                                append(os, detail::smin(s1, rest_s)), append(od, d1));
  }
}

// A ∘ (s:d) for an integer mode s:d of B.
template <class AS, class AD, class S, class D>
TFM_HOST_DEVICE constexpr auto compose_one_mode(AS const& as, AD const& ad, S s, D d) {
  if constexpr (is_constant_v<0, D>) {
    return make_layout(s, C<0>{});
  } else {
    // Coalescing first lets static modes that are one run in memory be cut anywhere.
    auto const ca = coalesce(make_layout(as, ad));
    auto const fs = flatten_to_tuple(ca.shape());
    auto const fd = flatten_to_tuple(ca.stride());
    auto const modes = compose_modes<0>(fs, fd, d, s, tuple<>{}, tuple<>{});
    auto const kept = drop_unit_modes(get<0>(modes), get<1>(modes));
    return layout_from_modes(get<0>(kept), get<1>(kept));
  }
}

// A∘B distributes over B's modes only if adding their images never carries from one mode of A
// into the next. A is first reduced, by value, to the fewest modes computing the same function
// (extent-1 modes other than the last dropped, neighbours with d1 == s0·d0 merged); then for
// each of those modes but the last (which is unbounded) this adds up the largest coordinate
// each mode of B reaches there and checks the sum stays inside the mode. Modes of B may
// overlap, as long as they do so inside one mode of A.
template <class AS, class AD, class BS, class BD>
TFM_HOST_DEVICE constexpr bool distributes_without_carry(AS const& as, AD const& ad, BS const& bs, BD const& bd) {
  constexpr std::size_t ra = rank_v<AS>;
  constexpr std::size_t rb = rank_v<BS>;
  std::int64_t a_ext[ra > 0 ? ra : 1] = {};
  std::int64_t a_str[ra > 0 ? ra : 1] = {};
  std::int64_t b_ext[rb > 0 ? rb : 1] = {};
  std::int64_t b_str[rb > 0 ? rb : 1] = {};
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((a_ext[I] = value_of(get<I>(as)), a_str[I] = value_of(get<I>(ad))), ...);
  }(std::make_index_sequence<ra>{});
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((b_ext[I] = value_of(get<I>(bs)), b_str[I] = value_of(get<I>(bd))), ...);
  }(std::make_index_sequence<rb>{});
  std::int64_t ext[ra > 0 ? ra : 1] = {};
  std::int64_t str[ra > 0 ? ra : 1] = {};
  std::size_t n = 0;
  for (std::size_t k = 0; k < ra; ++k) {
    if (a_ext[k] == 1 && k + 1 < ra) continue;
    if (n > 0 && a_str[k] == ext[n - 1] * str[n - 1]) {
      ext[n - 1] *= a_ext[k];
    } else {
      ext[n] = a_ext[k];
      str[n] = a_str[k];
      ++n;
    }
  }
  std::int64_t reach[ra > 0 ? ra : 1] = {};
  for (std::size_t m = 0; m < rb; ++m) {
    if (b_str[m] == 0 || b_ext[m] <= 1) continue;
    std::int64_t rest_d = b_str[m];
    std::int64_t rest_s = b_ext[m];
    for (std::size_t k = 0; k + 1 < n; ++k) {
      std::int64_t const s1 = shape_div_value(ext[k], rest_d);
      reach[k] += (min_value(s1, rest_s) - 1) * rest_d;
      rest_d = shape_div_value(rest_d, ext[k]);
      rest_s = shape_div_value(rest_s, s1);
    }
  }
  for (std::size_t k = 0; k + 1 < n; ++k) {
    if (ext[k] > 0 && reach[k] >= ext[k]) return false;
  }
  return true;
}

template <class A, class B>
TFM_HOST_DEVICE constexpr auto compose(A const& a, B const& b) {
  if constexpr (is_tuple_v<typename B::shape_type>) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return make_layout(compose(a, mode<I>(b))...);
    }(std::make_index_sequence<rank_v<typename B::shape_type>>{});
  } else {
    return compose_one_mode(a.shape(), a.stride(), b.shape(), b.stride());
  }
}

template <class T>
struct is_mode_tiler : std::bool_constant<layout_type<T> || integer_like<T>> {};
template <class... T>
struct is_mode_tiler<tuple<T...>> : std::false_type {};

template <class T>
struct is_by_mode_tiler : std::false_type {};
template <class... T>
struct is_by_mode_tiler<tuple<T...>> : std::bool_constant<(is_mode_tiler<std::remove_cvref_t<T>>::value && ...)> {};

template <class T>
TFM_HOST_DEVICE constexpr auto as_layout(T const& t) {
  if constexpr (layout_type<T>) {
    return t;
  } else {
    return make_layout(to_integer(t), C<1>{});
  }
}

// Mode I of A composed with entry I of a by-mode tiler, or mode I unchanged past its rank.
template <std::size_t I, class A, class B>
TFM_HOST_DEVICE constexpr auto compose_mode(A const& a, B const& b) {
  if constexpr (I < rank_v<B>) {
    return composition(mode<I>(a), as_layout(get<I>(b)));
  } else {
    return mode<I>(a);
  }
}
template <std::size_t I, class A, class B>
TFM_HOST_DEVICE constexpr auto divide_mode(A const& a, B const& b) {
  if constexpr (I < rank_v<B>) {
    return logical_divide(mode<I>(a), as_layout(get<I>(b)));
  } else {
    return mode<I>(a);
  }
}
}  // namespace detail

// Right-hand sides accepted by composition and the divides: a layout, an integer n (the layout
// n:1), or a tuple of those, applied mode by mode to the left-hand side (a "tiler").
template <class T>
concept tiler = layout_type<T> || integer_like<T> || detail::is_by_mode_tiler<std::remove_cvref_t<T>>::value;

// The layout A∘B: (A∘B)(x) == A(B(x)) for every x in B's domain; the result has B's shape
// (nesting included). Supported when (checked; a compile error where the values involved are
// static, shape_error on the host otherwise):
//  * B's strides are non-negative;
//  * each integer mode of B cuts A's flattened modes evenly: walking them in order, the part of
//    B's stride not yet absorbed and each mode extent divide one another, and so do the part of
//    B's extent not yet covered and what is left of the mode;
//  * B's modes do not carry into one another through A: summed over B's modes, the coordinates
//    reached in each mode of A stay inside it (B's modes may overlap within one mode of A).
// The last mode of A is taken as unbounded, so B may run past size(A) there. Every layout
// built by this header (compact, padded, tiled, divided, complemented) meets these as a B
// whose image lies in A's domain. With a tuple as B, composition goes mode by mode: result
// mode i is A_i∘B_i, and modes of A beyond rank(B) are kept.
template <layout_type A, tiler B>
TFM_HOST_DEVICE constexpr auto composition(A const& a, B b) {
  if constexpr (layout_type<B>) {
    if constexpr (is_tuple_v<typename B::shape_type>) {
      using FAS = decltype(flatten_to_tuple(a.shape()));
      using FAD = decltype(flatten_to_tuple(a.stride()));
      using FBS = decltype(flatten_to_tuple(b.shape()));
      using FBD = decltype(flatten_to_tuple(b.stride()));
      if constexpr (is_static_v<FAS> && is_static_v<FAD> && is_static_v<FBS> && is_static_v<FBD>) {
        static_assert(detail::distributes_without_carry(FAS{}, FAD{}, FBS{}, FBD{}),
                      "tfm::composition: B's modes carry into one another through A's modes");
      } else {
        TFM_DETAIL_LAYOUT_CHECK(
            detail::distributes_without_carry(flatten_to_tuple(a.shape()), flatten_to_tuple(a.stride()),
                                              flatten_to_tuple(b.shape()), flatten_to_tuple(b.stride())),
            "composition: the modes of B = ", b, " carry into one another through the modes of A = ", a);
      }
    }
    return detail::compose(a, b);
  } else if constexpr (integer_like<B>) {
    return composition(a, make_layout(to_integer(b), C<1>{}));
  } else {
    constexpr std::size_t rb = rank_v<B>;
    constexpr std::size_t ra = rank_v<typename A::shape_type>;
    static_assert(is_tuple_v<typename A::shape_type> && rb <= ra,
                  "tfm::composition: a by-mode tiler has more modes than the layout");
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return make_layout(detail::compose_mode<I>(a, b)...);
    }(std::make_index_sequence<ra>{});
  }
}

// ---------------------------------------------------------------------------- complement
namespace detail {
template <class FD>
TFM_HOST_DEVICE constexpr auto stride_order() {
  constexpr std::size_t r = rank_v<FD>;
  struct order {
    std::size_t v[r > 0 ? r : 1];
  };
  order o{};
  std::int64_t key[r > 0 ? r : 1] = {};
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    ((key[I] = tuple_element_t<I, FD>::value, o.v[I] = I), ...);
  }(std::make_index_sequence<r>{});
  for (std::size_t i = 1; i < r; ++i) {  // insertion sort, stable
    for (std::size_t j = i; j > 0 && key[o.v[j - 1]] > key[o.v[j]]; --j) {
      std::size_t const t = o.v[j];
      o.v[j] = o.v[j - 1];
      o.v[j - 1] = t;
    }
  }
  return o;
}

template <class S, class D>
inline constexpr bool takes_room = !(is_constant_v<1, S> || is_constant_v<0, D>);

template <std::size_t I, class FS, class FD, class Cur, class M, class OS, class OD>
TFM_HOST_DEVICE constexpr auto complement_from(FS const& fs, FD const& fd, Cur cur, M m, OS const& os, OD const& od) {
  if constexpr (I == rank_v<FS>) {
    auto const kept = drop_unit_modes(append(os, ceil_div(m, cur)), append(od, cur));
    return coalesce(layout_from_modes(get<0>(kept), get<1>(kept)));
  } else {
    auto const s = get<I>(fs);
    auto const d = get<I>(fd);
    if constexpr (static_integer<decltype(d)> && static_integer<Cur>) {
      static_assert(decltype(d)::value % Cur::value == 0,
                    "tfm::complement: the layout's modes overlap (a stride is not a multiple of the extent below it)");
    } else {
      TFM_DETAIL_LAYOUT_CHECK(value_of(cur) != 0 && value_of(d) % value_of(cur) == 0,
                              "complement: the layout's modes overlap or are not in increasing stride order (stride ",
                              value_of(d), " after an extent of ", value_of(cur), ")");
    }
    return complement_from<I + 1>(fs, fd, s * d, m, append(os, d / cur), append(od, cur));
  }
}
}  // namespace detail

// The layout that fills in what `l` leaves out of [0, m): the modes between and after l's
// strides, so that make_layout(l, complement(l, m)) covers [0, m) (rounded up to whole copies
// of l) once. Modes of static extent 1 or static stride 0 are ignored. l must be injective with
// non-negative strides; when its strides are all static they are sorted here, otherwise its
// (flattened) modes must already be in increasing stride order (checked on the host).
template <layout_type L, integer_like M>
TFM_HOST_DEVICE constexpr auto complement(L const& l, M m) {
  auto const fs0 = flatten_to_tuple(l.shape());
  auto const fd0 = flatten_to_tuple(l.stride());
  using FS0 = std::remove_cvref_t<decltype(fs0)>;
  using FD0 = std::remove_cvref_t<decltype(fd0)>;
  // Modes of static extent 1 or static stride 0 take no room: drop them.
  auto const kept = [&]<std::size_t... I>(std::index_sequence<I...>) {
    return tfm::make_tuple(
        tuple_cat(tuple<>{}, detail::keep_if<detail::takes_room<tuple_element_t<I, FS0>, tuple_element_t<I, FD0>>>(
                                 get<I>(fs0))...),
        tuple_cat(tuple<>{}, detail::keep_if<detail::takes_room<tuple_element_t<I, FS0>, tuple_element_t<I, FD0>>>(
                                 get<I>(fd0))...));
  }(std::make_index_sequence<rank_v<FS0>>{});
  auto const& fs = get<0>(kept);
  auto const& fd = get<1>(kept);
  using FD = std::remove_cvref_t<decltype(fd)>;
  if constexpr (is_static_v<FD> && rank_v<FD> > 1) {
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      constexpr auto o = detail::stride_order<FD>();
      return detail::complement_from<0>(select<o.v[I]...>(fs), select<o.v[I]...>(fd), C<1>{}, to_integer(m), tuple<>{},
                                        tuple<>{});
    }(std::make_index_sequence<rank_v<FD>>{});
  } else {
    return detail::complement_from<0>(fs, fd, C<1>{}, to_integer(m), tuple<>{}, tuple<>{});
  }
}

// ---------------------------------------------------------------------------- divide
// Splits A by a tiler. With a layout B: A∘(B, complement(B, size(A))), whose mode 0 is the part
// of A that B selects (one tile) and mode 1 runs over the tiles. With a tuple (an integer or a
// layout per mode), each mode of A is divided by its entry: mode i becomes (tile_i, rest_i),
// modes beyond the tiler's rank are kept. Integer tiles need not divide the extent: the last
// tile then reaches past it (rest = ⌈n / t⌉), as in CuTe.
template <layout_type A, tiler B>
TFM_HOST_DEVICE constexpr auto logical_divide(A const& a, B b) {
  if constexpr (layout_type<B>) {
    return composition(a, make_layout(b, complement(b, size(a))));
  } else if constexpr (integer_like<B>) {
    return logical_divide(a, make_layout(to_integer(b), C<1>{}));
  } else {
    constexpr std::size_t rb = rank_v<B>;
    constexpr std::size_t ra = rank_v<typename A::shape_type>;
    static_assert(is_tuple_v<typename A::shape_type> && rb <= ra,
                  "tfm::logical_divide: the tiler has more modes than the layout");
    return [&]<std::size_t... I>(std::index_sequence<I...>) {
      return make_layout(detail::divide_mode<I>(a, b)...);
    }(std::make_index_sequence<ra>{});
  }
}

// tile(l, tile_shape): logical_divide by an integer per mode; mode i of the result is
// (tile_i, ⌈n_i / tile_i⌉), so l'((a, b), ...) is element a of tile b along mode i.
template <layout_type L, int_tuple TileShape>
  requires tiler<TileShape>
TFM_HOST_DEVICE constexpr auto tile(L const& l, TileShape tile_shape) {
  return logical_divide(l, tile_shape);
}

// logical_divide by a by-mode tiler, regrouped as ((tile modes...), (rest modes..., untiled
// modes...)): mode 0 addresses an element inside a tile, mode 1 picks the tile.
template <layout_type A, tiler B>
  requires tuple_type<B>
TFM_HOST_DEVICE constexpr auto zipped_divide(A const& a, B b) {
  auto const d = logical_divide(a, b);
  constexpr std::size_t rb = rank_v<B>;
  constexpr std::size_t ra = rank_v<typename A::shape_type>;
  return [&]<std::size_t... I, std::size_t... J>(std::index_sequence<I...>, std::index_sequence<J...>) {
    return make_layout(make_layout(mode<I, 0>(d)...), make_layout(mode<I, 1>(d)..., mode<rb + J>(d)...));
  }(std::make_index_sequence<rb>{}, std::make_index_sequence<ra - rb>{});
}

// ---------------------------------------------------------------------------- printing, checks
// "shape:stride", e.g. (3, 4):(4, 1).
template <class S, class D>
std::ostream& operator<<(std::ostream& os, layout<S, D> const& l) {
  return os << to_string(l.shape()) << ':' << to_string(l.stride());
}
template <layout_type L>
std::string to_string(L const& l) {
  std::ostringstream os;
  os << l;
  return os.str();
}

namespace detail {
// Whether two congruent shapes differ in an entry that is static on both sides.
template <class A, class B>
struct static_mismatch : std::false_type {};
template <std::int64_t X, std::int64_t Y>
struct static_mismatch<constant<X>, constant<Y>> : std::bool_constant<X != Y> {};
template <class... A, class... B>
  requires(sizeof...(A) == sizeof...(B))
struct static_mismatch<tuple<A...>, tuple<B...>>
    : std::bool_constant<(static_mismatch<std::remove_cvref_t<A>, std::remove_cvref_t<B>>::value || ...)> {};

template <class T>
TFM_HOST_DEVICE constexpr decltype(auto) shape_of(T const& t) {
  if constexpr (layout_type<T>) {
    return t.shape();
  } else {
    return t;
  }
}
}  // namespace detail

template <class T>
concept shape_or_layout = int_tuple<T> || layout_type<T>;

// Whether two shapes (or the shapes of two layouts) are equal. Shapes that nest differently, or
// that differ in an entry static on both sides, are a compile-time error.
template <shape_or_layout A, shape_or_layout B>
TFM_HOST_DEVICE constexpr bool same_shape(A const& a, B const& b) {
  using SA = std::remove_cvref_t<decltype(detail::shape_of(a))>;
  using SB = std::remove_cvref_t<decltype(detail::shape_of(b))>;
  static_assert(congruent_v<SA, SB>, "tfm: the shapes have different ranks or nest differently");
  static_assert(!detail::static_mismatch<SA, SB>::value, "tfm: static extents of the two shapes differ");
  if constexpr (is_tuple_v<SA>) {
    return detail::shape_of(a) == detail::shape_of(b);
  } else {
    return value_of(detail::shape_of(a)) == value_of(detail::shape_of(b));
  }
}

// Throws shape_error "<op>: <a_name> is (3, 4) but <b_name> is (5, 6)" unless the shapes of a and
// b (shapes or layouts) are equal. Rank/nesting mismatches and static extents that differ do
// not compile.
template <shape_or_layout A, shape_or_layout B>
void check_same_shape(std::string_view op, std::string_view a_name, A const& a, std::string_view b_name, B const& b) {
  if (!same_shape(a, b)) {
    detail::throw_shape_error(op, ": ", a_name, " is ", to_string(detail::shape_of(a)), " but ", b_name, " is ",
                              to_string(detail::shape_of(b)));
  }
}
// As above with the operands called A and B: "gemm: A is (3, 4) but B is (5, 6)".
template <shape_or_layout A, shape_or_layout B>
void check_same_shape(std::string_view op, A const& a, B const& b) {
  check_same_shape(op, "A", a, "B", b);
}

// A fully static layout costs nothing.
static_assert(std::is_empty_v<layout<tuple<constant<2>, constant<3>>, tuple<constant<3>, constant<1>>>>);

}  // namespace tfm

#undef TFM_DETAIL_LAYOUT_CHECK
