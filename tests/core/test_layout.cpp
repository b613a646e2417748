#define TFM_TEST_MODULE test_layout
#if !defined(TFM_LAYOUT_FAIL_CASE) && !defined(TFM_LAYOUT_NVCC_CHECK)
#include "support/test_main.hpp"
#define TFM_LAYOUT_RUN_TESTS 1
#endif
// Static integers, tuples and layouts: the algebra checked at compile time (static_assert, also
// compiled by nvcc with TFM_LAYOUT_NVCC_CHECK) and at run time against hand-written index
// formulas over every coordinate. TFM_LAYOUT_FAIL_CASE=n compiles one case that must not
// compile (layout.cmake checks the diagnostic).

#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "tfm/core/layout.hpp"

using namespace tfm;
using std::int64_t;

// ============================================================================ compile time
namespace static_checks {

// ---- constants
static_assert(std::is_empty_v<C<7>>);
static_assert(std::is_same_v<decltype(_3 + _4), C<7>>);
static_assert(std::is_same_v<decltype(_3 * _4 - _2), C<10>>);
static_assert(std::is_same_v<decltype(_7 / _2), C<3>> && std::is_same_v<decltype(_7 % _2), C<1>>);
static_assert(std::is_same_v<decltype(-_3), C<-3>>);
static_assert(std::is_same_v<decltype(_3 < _4), true_c> && std::is_same_v<decltype(_3 == _4), false_c>);
static_assert(std::is_same_v<decltype(_3 + int64_t{4}), int64_t> && (_3 + int64_t{4}) == 7);
static_assert(std::is_same_v<decltype(5 * _3), int64_t> && 5 * _3 == 15);
static_assert(std::is_same_v<decltype(_3 == 3), bool> && _3 == 3);
static_assert(static_integer<C<1>> && !static_integer<int64_t> && integer_like<int> && integer_like<C<2>> &&
              !integer_like<bool> && !integer_like<double>);
static_assert(is_static_v<C<5>> && !is_static_v<int64_t>);
static_assert(std::is_same_v<decltype(ceil_div(_7, _2)), C<4>> && ceil_div(int64_t{7}, _2) == 4);
static_assert(std::is_same_v<decltype(shape_div(_2, _8)), C<1>> && shape_div(8, 2) == 4);

// ---- tuples
static_assert(std::is_empty_v<tuple<>>);
static_assert(std::is_empty_v<tuple<C<1>, C<2>, tuple<C<3>, C<4>>>>);
static_assert(std::is_empty_v<tuple<C<1>, C<1>, tuple<C<1>>, tuple<C<1>>>>);  // repeated types too
static_assert(sizeof(tuple<C<1>, int64_t, C<3>>) == sizeof(int64_t));
static_assert(sizeof(tuple<int64_t, tuple<C<2>, int64_t>>) == 2 * sizeof(int64_t));
static_assert(is_static_v<tuple<C<1>, tuple<C<2>>>> && !is_static_v<tuple<C<1>, int64_t>>);
constexpr auto nested = make_shape(_3, make_shape(4, _5));
static_assert(rank_v<decltype(nested)> == 2 && depth_v<decltype(nested)> == 2 && depth_v<int64_t> == 0);
static_assert(get<1, 0>(nested) == 4 && get<0>(nested) == 3);
static_assert(product(nested) == 60 && sum(nested) == 12);
static_assert(std::is_same_v<decltype(product(make_shape(_3, _4))), C<12>>);
static_assert(std::is_same_v<decltype(product(tuple<>{})), C<1>>);
static_assert(inner_product(nested, make_stride(1, make_stride(2, 3))) == 3 + 8 + 15);
static_assert(prefix_product(nested) == make_shape(1, make_shape(3, 12)));
static_assert(suffix_product(nested) == make_shape(20, make_shape(5, 1)));
static_assert(flatten(nested) == make_shape(3, 4, 5));
static_assert(tuple_cat(make_shape(1), make_shape(_2, 3), tuple<>{}) == make_shape(1, 2, 3));
static_assert(reverse(make_shape(1, 2, 3)) == make_shape(3, 2, 1));
static_assert(select<2, 0>(make_shape(1, 2, 3)) == make_shape(3, 1));
static_assert(transform(make_shape(1, _2), [](auto x) { return x * _2; }) == make_shape(2, 4));
static_assert(fold(make_shape(1, 2, 3), _0, [](auto a, auto x) { return a + x; }) == 6);
static_assert(!(make_shape(1, 2) == make_shape(1, make_shape(2))) && make_shape(_1, 2) == make_shape(1, _2));
static_assert(congruent_v<decltype(nested), tuple<int, tuple<int, int>>> &&
              !congruent_v<decltype(nested), tuple<int, int>>);

// ---- layouts: empty when static
constexpr auto rm34 = make_row_major(_3, _4);  // (3, 4):(4, 1)
constexpr auto cm34 = make_col_major(_3, _4);  // (3, 4):(1, 3)
static_assert(std::is_empty_v<decltype(rm34)> && is_static_v<decltype(rm34)>);
struct holds_by_member {
  [[no_unique_address]] decltype(rm34) l;
  int x;
};
struct holds_by_base : decltype(rm34) {
  int x;
};
static_assert(sizeof(holds_by_member) == sizeof(int) && sizeof(holds_by_base) == sizeof(int));
static_assert(sizeof(decltype(make_row_major(3, 4))) == 3 * sizeof(int64_t));  // (m, n):(n, _1)
static_assert(sizeof(decltype(make_padded_row_major(3, _4, 8))) == 2 * sizeof(int64_t));

// ---- offsets fold to constants
static_assert(std::is_same_v<decltype(rm34(_2, _3)), C<11>>);
static_assert(rm34(2, 3) == 11 && cm34(2, 3) == 11 && rm34(1, 0) == 4 && cm34(1, 0) == 1);
static_assert(cm34(7) == 7 && rm34(7) == rm34(1, 2));  // linear index is colexicographic
static_assert(rm34(make_coord(1, 2)) == 6);
static_assert(size(rm34) == 12 && size<1>(rm34) == 4 && rank(rm34) == 2 && cosize(rm34) == 12);
static_assert(std::is_same_v<decltype(cosize(rm34)), C<12>> && std::is_same_v<decltype(size(rm34)), C<12>>);
static_assert(shape<0>(rm34) == 3 && stride<0>(rm34) == 4 && stride<1>(rm34) == 1);
static_assert(is_row_major(rm34) && !is_col_major(rm34) && is_col_major(cm34) && !is_row_major(cm34));
static_assert(transpose(rm34) == make_col_major(_4, _3));
static_assert(make_layout(make_shape(_3, _4)) == cm34);  // default is column-major
static_assert(make_layout(mode<0>(rm34), mode<1>(rm34)) == rm34);

// ---- padded and tiled
constexpr auto padded = make_padded_row_major(_3, _4, _6);  // (3, 4):(6, 1)
static_assert(padded(2, 3) == 15 && cosize(padded) == 16 && size(padded) == 12 && is_row_major(padded));
constexpr auto tiled = make_tiled_row_major(make_shape(_4, _6), make_shape(_2, _3));  // ((2,2),(3,2)):((3,12),(1,6))
static_assert(std::is_empty_v<decltype(tiled)>);
static_assert(tiled == make_layout(make_shape(make_shape(_2, _2), make_shape(_3, _2)),
                                   make_stride(make_stride(_3, _12), make_stride(_1, _6))));
static_assert(tiled(1, 2) == 5 && tiled(0, 3) == 6 && tiled(2, 0) == 12 && tiled(3, 5) == 23);
static_assert(!is_row_major(tiled) && cosize(tiled) == 24);

// ---- algebra
static_assert(std::is_same_v<decltype(coalesce(make_col_major(_2, _3, _4))), layout<C<24>, C<1>>>);
static_assert(coalesce(make_row_major(_2, _3, _4)) == make_row_major(_2, _3, _4));
static_assert(coalesce(make_layout(make_shape(_2, _1, _3), make_stride(_1, _5, _2))) == make_layout(_6, _1));
static_assert(complement(make_layout(_4, _2), _32) == make_layout(make_shape(_2, _4), make_stride(_1, _8)));
static_assert(complement(make_layout(_4, _1), _12) == make_layout(_3, _4));
static_assert(complement(make_layout(make_shape(_2, _2), make_stride(_4, _1)), _16) ==  // strides sorted first
              make_layout(make_shape(_2, _2), make_stride(_2, _8)));
static_assert(composition(make_row_major(_4, _8), make_layout(make_shape(_4, _8), make_stride(_8, _1))) ==
              make_layout(make_shape(_4, make_shape(_4, _2)), make_stride(_2, make_stride(_8, _1))));
static_assert(composition(make_col_major(_4, _8), make_row_major(_4, _8)) == make_row_major(_4, _8));  // A is 32:1
static_assert(std::is_same_v<decltype(composition(make_layout(make_shape(_2, _2), make_stride(_1, _2)), _3)),
                             layout<C<3>, C<1>>>);  // (2, 2):(1, 2) is one run: cut anywhere
static_assert(std::is_empty_v<decltype(logical_divide(rm34, make_shape(_2, _2)))>);
static_assert(tile(make_row_major(_4, _8), make_shape(_2, _4)) ==
              make_layout(make_shape(make_shape(_2, _2), make_shape(_4, _2)),
                          make_stride(make_stride(_8, _16), make_stride(_1, _4))));
static_assert(zipped_divide(make_row_major(_4, _8), make_shape(_2, _4)) ==
              make_layout(make_shape(make_shape(_2, _4), make_shape(_2, _2)),
                          make_stride(make_stride(_8, _1), make_stride(_16, _4))));

}  // namespace static_checks

// ============================================================================ nvcc
#if defined(TFM_LAYOUT_NVCC_CHECK) && defined(__CUDACC__)
// Compiled (not run) by nvcc: the whole API in device code, static and dynamic.
__global__ void layout_kernel(int64_t* out, int64_t m, int64_t n, int64_t ld) {
  constexpr auto s = make_tiled_row_major(make_shape(_8, _8), make_shape(_2, _4));
  static_assert(std::is_empty_v<decltype(s)>);
  auto const d = make_padded_row_major(m, n, ld);
  auto const t = tile(d, make_shape(_2, _4));
  auto const z = zipped_divide(make_row_major(m, n), make_shape(_2, _2));
  auto const c = composition(d, make_layout(make_shape(_2, _2), make_stride(_2, _1)));
  auto const k = static_cast<int64_t>(threadIdx.x);
  out[k] = s(k % 8, k / 8) + d(k % m, k % n) + t(k) + z(k) + c(k % 4) + cosize(d) + size<0>(d) + stride<0>(d) +
           coalesce(make_col_major(_2, _4))(k) + complement(make_layout(_4, _2), _16)(1) + is_row_major(d) +
           make_layout(make_shape(_2, _4), make_stride(_4, _1))(_1, _2) + product(make_tuple(_2, m)) +
           crd2idx(idx2crd(k, make_shape(m, n)), make_shape(m, n), make_stride(n, _1));
}
#endif

// ============================================================================ must not compile
#if defined(TFM_LAYOUT_FAIL_CASE)
#if TFM_LAYOUT_FAIL_CASE == 1  // "static extents of the two shapes differ"
inline void fail() { check_same_shape("add", make_shape(_3, _4), make_shape(_3, _5)); }
#elif TFM_LAYOUT_FAIL_CASE == 2  // "different ranks or nest differently"
inline void fail() { check_same_shape("add", make_shape(3, 4), make_shape(3, 4, 5)); }
#elif TFM_LAYOUT_FAIL_CASE == 3  // "leading dimension is smaller"
constexpr auto fail = make_padded_row_major(_3, _4, _2);
#elif TFM_LAYOUT_FAIL_CASE == 4  // "does not divide the matrix extent"
constexpr auto fail = make_tiled_row_major(make_shape(_4, _6), make_shape(_2, _4));
#elif TFM_LAYOUT_FAIL_CASE == 5  // "do not divide each other"
constexpr auto fail = composition(make_layout(make_shape(_6, _4), make_stride(_1, _10)), make_layout(_3, _4));
#elif TFM_LAYOUT_FAIL_CASE == 6  // "wrong number of coordinates"
constexpr auto fail = make_row_major(_3, _4)(1, 2, 3);
#elif TFM_LAYOUT_FAIL_CASE == 7  // "shape and the stride must nest the same way"
constexpr auto fail = make_layout(make_shape(_3, _4), make_stride(_1));
#elif TFM_LAYOUT_FAIL_CASE == 8  // "carry into one another": B's modes overlap across A's first mode
constexpr auto fail = composition(make_layout(make_shape(_4, _4), make_stride(_1, _10)),
                                  make_layout(make_shape(_4, _4), make_stride(_1, _2)));
#endif
#endif

// ============================================================================ run time
#if defined(TFM_LAYOUT_RUN_TESTS)
namespace {

// Every offset of l over its whole domain, by linear index.
template <class L>
std::vector<int64_t> offsets(L const& l) {
  std::vector<int64_t> out;
  for (int64_t k = 0; k < static_cast<int64_t>(size(l)); ++k) out.push_back(l(k));
  return out;
}

// l maps [0, size) one-to-one onto [0, size).
template <class L>
bool is_bijective(L const& l) {
  int64_t const n = size(l);
  std::vector<int> hits(static_cast<std::size_t>(n), 0);
  for (int64_t k = 0; k < n; ++k) {
    int64_t const o = l(k);
    if (o < 0 || o >= n || hits[static_cast<std::size_t>(o)]++ != 0) return false;
  }
  return true;
}

// (A∘B)(x) == A(B(x)) over B's domain, by linear index and, for rank-2 B, mode by mode.
template <class A, class B>
void check_composition(A const& a, B const& b) {
  auto const r = composition(a, b);
  BOOST_TEST_CONTEXT("A = " << a << ", B = " << b << ", A o B = " << r) {
    BOOST_TEST(static_cast<int64_t>(size(r)) == static_cast<int64_t>(size(b)));
    for (int64_t x = 0; x < static_cast<int64_t>(size(b)); ++x) BOOST_TEST(r(x) == a(b(x)), "x = " << x);
    if constexpr (rank_v<typename B::shape_type> == 2) {
      BOOST_TEST(static_cast<int64_t>(size<0>(r)) == static_cast<int64_t>(size<0>(b)));
      for (int64_t i = 0; i < static_cast<int64_t>(size<0>(b)); ++i) {
        for (int64_t j = 0; j < static_cast<int64_t>(size<1>(b)); ++j) BOOST_TEST(r(i, j) == a(b(i, j)));
      }
    }
  }
}

template <class E>
auto message_is(std::string const& expected) {
  return [expected](E const& e) {
    BOOST_TEST(std::string(e.what()) == expected);
    return std::string(e.what()) == expected;
  };
}

constexpr int64_t odd_shapes[][2] = {{1, 1}, {1, 7}, {5, 1}, {3, 5}, {7, 4}, {6, 9}};

}  // namespace

BOOST_AUTO_TEST_CASE(row_col_major_and_padded_offsets) {
  for (auto const& mn : odd_shapes) {
    int64_t const m = mn[0], n = mn[1];
    BOOST_TEST_CONTEXT("shape (" << m << ", " << n << ")") {
      auto const rm = make_row_major(m, n);
      auto const cm = make_col_major(m, n);
      auto const pr = make_padded_row_major(m, n, n + 3);
      auto const pc = make_padded_col_major(m, n, m + 2);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < n; ++j) {
          BOOST_TEST(rm(i, j) == i * n + j);
          BOOST_TEST(cm(i, j) == i + j * m);
          BOOST_TEST(pr(i, j) == i * (n + 3) + j);
          BOOST_TEST(pc(i, j) == i + j * (m + 2));
          int64_t const k = i + j * m;  // colexicographic linear index of (i, j)
          BOOST_TEST(rm(k) == rm(i, j));
          BOOST_TEST(pr(k) == pr(i, j));
          BOOST_TEST(cm(k) == k);
          BOOST_TEST(rm(make_coord(i, j)) == rm(i, j));
        }
      }
      BOOST_TEST(is_bijective(rm));
      BOOST_TEST(is_bijective(cm));
      BOOST_TEST(cosize(rm) == m * n);
      BOOST_TEST(cosize(pr) == (m - 1) * (n + 3) + n);
      BOOST_TEST(cosize(pc) == (n - 1) * (m + 2) + m);
      BOOST_TEST(is_row_major(rm));
      BOOST_TEST(is_row_major(pr));
      BOOST_TEST(is_col_major(cm));
      BOOST_TEST(is_col_major(pc));
      BOOST_TEST(is_col_major(transpose(pr)));
      BOOST_TEST(is_row_major(transpose(pc)));
      if (m > 1 && n > 1) {
        BOOST_TEST(!is_col_major(rm));
        BOOST_TEST(!is_row_major(cm));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(mixed_static_and_dynamic) {
  int64_t const n = 5;
  auto const l = make_row_major(_4, n);  // (4, n):(n, 1)
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(shape<0>(l))>, C<4>>);
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(stride<1>(l))>, C<1>>);
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(stride<0>(l))>, int64_t>);
  static_assert(sizeof(l) == 2 * sizeof(int64_t));
  BOOST_TEST(size(l) == 20);
  BOOST_TEST(cosize(l) == 20);
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t j = 0; j < n; ++j) BOOST_TEST(l(i, j) == i * n + j);
  }
  auto const c = make_col_major(n, _3, 2);  // (n, 3, 2):(1, n, 3n)
  BOOST_TEST(c == make_layout(make_shape(5, 3, 2), make_stride(1, 5, 15)));
  BOOST_TEST(is_bijective(c));
  auto const [rows, cols] = shape(l);
  BOOST_TEST(rows == 4);
  BOOST_TEST(cols == 5);
  BOOST_TEST(to_string(l) == "(4, 5):(5, 1)");
  BOOST_TEST(to_string(make_layout(make_shape(make_shape(2, _3), 4))) == "((2, 3), 4):((1, 2), 6)");
  BOOST_TEST(to_string(make_shape(3, _4)) == "(3, 4)");
  BOOST_TEST(to_string(make_layout(_8, _2)) == "8:2");
}

BOOST_AUTO_TEST_CASE(nested_coordinates_round_trip) {
  auto const s = make_shape(make_shape(2, _3), 4, make_shape(_1, 5));
  auto const l = make_row_major(s);
  BOOST_TEST(l.stride() == make_stride(make_stride(60, 20), 5, make_stride(5, 1)));
  BOOST_TEST(is_bijective(l));
  BOOST_TEST(is_bijective(make_layout(s)));
  for (int64_t k = 0; k < static_cast<int64_t>(size(s)); ++k) {
    auto const c = idx2crd(k, s);
    BOOST_TEST(crd2idx(c, s, prefix_product(s)) == k);
    BOOST_TEST(l(c) == l(k));
    // An integer per top-level mode is split colexicographically inside that mode.
    auto const i0 = get<0, 0>(c) + 2 * get<0, 1>(c);
    auto const i2 = get<2, 0>(c) + get<2, 1>(c);
    BOOST_TEST(l(i0, get<1>(c), i2) == l(k));
  }
}

BOOST_AUTO_TEST_CASE(tiled_layouts) {
  struct sizes {
    int64_t m, n, tm, tn;
  };
  for (auto const& t :
       {sizes{4, 6, 2, 3}, sizes{6, 9, 3, 3}, sizes{5, 8, 5, 2}, sizes{7, 3, 1, 3}, sizes{1, 1, 1, 1}}) {
    BOOST_TEST_CONTEXT("(" << t.m << ", " << t.n << ") in tiles (" << t.tm << ", " << t.tn << ")") {
      auto const r = make_tiled_row_major(make_shape(t.m, t.n), make_shape(t.tm, t.tn));
      auto const c = make_tiled_col_major(make_shape(t.m, t.n), make_shape(t.tm, t.tn));
      int64_t const gm = t.m / t.tm, gn = t.n / t.tn, ts = t.tm * t.tn;
      for (int64_t i = 0; i < t.m; ++i) {
        for (int64_t j = 0; j < t.n; ++j) {
          int64_t const want_r = ((i / t.tm) * gn + j / t.tn) * ts + (i % t.tm) * t.tn + j % t.tn;
          int64_t const want_c = ((i / t.tm) + (j / t.tn) * gm) * ts + (i % t.tm) + (j % t.tn) * t.tm;
          BOOST_TEST(r(i, j) == want_r);
          BOOST_TEST(c(i, j) == want_c);
        }
      }
      BOOST_TEST(is_bijective(r));
      BOOST_TEST(is_bijective(c));
      BOOST_TEST(cosize(r) == t.m * t.n);
      // Each tile is one contiguous block of tm·tn elements.
      auto const z = zipped_divide(r, make_shape(t.tm, t.tn));
      for (int64_t b = 0; b < gm * gn; ++b) {
        for (int64_t e = 0; e < ts; ++e) {  // both modes of z are read colexicographically
          BOOST_TEST(z(e, b) == ((b % gm) * gn + b / gm) * ts + (e % t.tm) * t.tn + e / t.tm);
        }
      }
    }
  }
  // Static tile inside a dynamic matrix: the tile part of the layout stays static.
  auto const s = make_tiled_row_major(make_shape(int64_t{8}, int64_t{12}), make_shape(_4, _4));
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(shape<0, 0>(s))>, C<4>>);
  static_assert(std::is_same_v<std::remove_cvref_t<decltype(stride<1, 1>(s))>, C<16>>);
  BOOST_TEST(s(5, 7) == ((5 / 4) * 3 + 7 / 4) * 16 + (5 % 4) * 4 + 7 % 4);
}

BOOST_AUTO_TEST_CASE(composition_identities) {
  int64_t const m = 6, n = 4;
  auto const layouts = make_tuple(make_row_major(m, n), make_col_major(_6, _4), make_padded_row_major(m, n, int64_t{7}),
                                  make_tiled_row_major(make_shape(m, n), make_shape(_2, _2)),
                                  make_layout(make_shape(make_shape(_2, _3), n), make_stride(make_stride(_1, _8), _2)));
  for_each(layouts, [](auto const& a) {
    BOOST_TEST_CONTEXT("A = " << a) {
      // A ∘ identity(size) == A on the linear index; A ∘ compact(shape(A)) == A coordinate-wise.
      auto const id = composition(a, make_layout(size(a)));
      BOOST_TEST(offsets(id) == offsets(a));
      auto const same = composition(a, make_layout(shape(a)));
      BOOST_TEST(offsets(same) == offsets(a));
      BOOST_TEST(static_cast<int64_t>(cosize(coalesce(a))) == static_cast<int64_t>(cosize(a)));
      BOOST_TEST(offsets(coalesce(a)) == offsets(a));
      BOOST_TEST(offsets(flatten(a)) == offsets(a));
    }
  });
}

BOOST_AUTO_TEST_CASE(composition_against_brute_force) {
  // Static and dynamic versions of the same pairs.
  // B's strides are in A's (colexicographic) domain: (2, 3):(1, 8) picks rows 0-1, columns 0, 2, 4.
  check_composition(make_row_major(_4, _6), make_layout(make_shape(_2, _3), make_stride(_1, _8)));
  check_composition(make_row_major(4, 6), make_layout(make_shape(2, 3), make_stride(1, 8)));
  check_composition(make_col_major(6, 4), make_layout(make_shape(3, 2), make_stride(2, 12)));
  check_composition(make_col_major(_6, _4), make_layout(make_shape(_3, _2), make_stride(_2, _12)));
  check_composition(make_row_major(_4, _8), make_layout(make_shape(_4, _8), make_stride(_8, _1)));
  check_composition(make_col_major(12, 10), make_layout(make_shape(_4, _3), make_stride(_3, _1)));
  check_composition(make_padded_row_major(5, 3, 4), make_layout(make_shape(3, 5), make_stride(5, 1)));
  check_composition(make_tiled_row_major(make_shape(_4, _6), make_shape(_2, _3)),
                    make_layout(make_shape(_2, _12), make_stride(_12, _1)));
  check_composition(make_tiled_col_major(make_shape(8, 6), make_shape(_4, _2)), make_layout(make_shape(_8, 6)));
  check_composition(make_layout(make_shape(make_shape(_2, _2), _3), make_stride(make_stride(_3, _1), _6)),
                    make_layout(make_shape(_3, _4), make_stride(_4, _1)));
  check_composition(make_row_major(3, 4), make_layout(make_shape(3, _4), make_stride(_0, _3)));  // broadcast
  check_composition(make_row_major(3, 4), make_layout(int64_t{5}, int64_t{0}));
  // An integer on the right is the layout n:1; a tuple composes mode by mode.
  auto const a = make_row_major(6, 8);
  BOOST_TEST(offsets(composition(a, int64_t{12})) == offsets(composition(a, make_layout(int64_t{12}, _1))));
  auto const bm = composition(a, make_tuple(_3, make_layout(_4, _2)));
  for (int64_t i = 0; i < 3; ++i) {
    for (int64_t j = 0; j < 4; ++j) BOOST_TEST(bm(i, j) == a(i, 2 * j));
  }
}

// Random run-time layouts: whenever composition accepts a pair, (A∘B)(x) == A(B(x)) on all of
// B's domain; pairs it rejects must be ones whose strides do not cut A's modes evenly.
BOOST_AUTO_TEST_CASE(composition_fuzz) {
  std::uint64_t state = 12345;
  auto next = [&](int64_t n) {  // uniform-ish in [0, n)
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<int64_t>((state >> 33) % static_cast<std::uint64_t>(n));
  };
  int accepted = 0;
  for (int trial = 0; trial < 400; ++trial) {
    auto const a = make_layout(make_shape(1 + next(4), make_shape(1 + next(4), 1 + next(3))),
                               make_stride(next(13), make_stride(next(13), next(13))));
    int64_t const unit[] = {0, 1, 2, 3, 4, 6, 8, 12};
    auto const b = make_layout(make_shape(1 + next(4), 1 + next(4)), make_stride(unit[next(8)], unit[next(8)]));
    try {
      auto const r = composition(a, b);
      ++accepted;
      for (int64_t x = 0; x < size(b); ++x) {
        BOOST_TEST(r(x) == a(b(x)), "A = " << a << ", B = " << b << ", A o B = " << r << ", x = " << x);
      }
    } catch (shape_error const&) {
    }
  }
  BOOST_TEST_MESSAGE("composition_fuzz: " << accepted << " of 400 pairs composed");
  BOOST_TEST(accepted > 100);
}

BOOST_AUTO_TEST_CASE(divide_and_tile) {
  for (auto const& mn : odd_shapes) {
    int64_t const m = mn[0], n = mn[1];
    auto const l = make_padded_row_major(m, n, n + 1);
    for (auto const tm : {int64_t{1}, int64_t{2}, int64_t{3}}) {
      int64_t const tn = 2;
      BOOST_TEST_CONTEXT("(" << m << ", " << n << ") by (" << tm << ", " << tn << ")") {
        auto const t = tile(l, make_shape(tm, tn));
        BOOST_TEST((size<0, 0>(t) == tm));
        BOOST_TEST((size<0, 1>(t) == ceil_div(m, tm)));
        // Re-linearising the (tile, rest) coordinates gives back the original offsets, and the
        // logical coordinate still addresses the same element.
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            auto const c = make_coord(make_coord(i % tm, i / tm), make_coord(j % tn, j / tn));
            BOOST_TEST(t(c) == l(i, j));
            BOOST_TEST(t(i, j) == l(i, j));
          }
        }
        auto const z = zipped_divide(l, make_shape(tm, tn));
        for (int64_t i = 0; i < m; ++i) {
          for (int64_t j = 0; j < n; ++j) {
            BOOST_TEST(z(make_coord(i % tm, j % tn), make_coord(i / tm, j / tn)) == l(i, j));
          }
        }
      }
    }
  }
  // Static tiles of a static layout stay empty, and equal the dynamic result.
  auto const s = tile(make_row_major(_6, _8), make_shape(_3, _4));
  static_assert(std::is_empty_v<decltype(s)>);
  BOOST_TEST(offsets(s) == offsets(tile(make_row_major(6, 8), make_shape(3, 4))));
  // Dividing by a layout: every other column.
  auto const every_other = logical_divide(make_layout(int64_t{16}), make_layout(_4, _2));
  BOOST_TEST(to_string(every_other) == "(4, (2, 2)):(2, (1, 8))");
}

BOOST_AUTO_TEST_CASE(complement_fills_the_codomain) {
  auto check = [](auto const& b, int64_t m) {
    auto const full = make_layout(b, complement(b, m));
    BOOST_TEST_CONTEXT("B = " << b << ", complement = " << complement(b, m)) {
      BOOST_TEST(static_cast<int64_t>(size(full)) == m);
      BOOST_TEST(is_bijective(full));
    }
  };
  check(make_layout(_4, _1), 24);
  check(make_layout(_4, _2), 32);
  check(make_layout(int64_t{3}, int64_t{1}), 12);
  check(make_layout(int64_t{3}, int64_t{4}), 24);
  check(make_layout(make_shape(_2, _3), make_stride(_1, _4)), 24);
  check(make_layout(make_shape(_2, _2), make_stride(_6, _1)), 24);  // unsorted static strides
  check(make_layout(make_shape(2, 3), make_stride(1, 4)), 48);
  check(make_row_major(_2, _2), 8);
}

BOOST_AUTO_TEST_CASE(select_permute_coalesce) {
  auto const l = make_row_major(2, 3, 5);
  auto const p = permute<2, 0, 1>(l);
  BOOST_TEST(p == make_layout(make_shape(5, 2, 3), make_stride(1, 15, 5)));
  BOOST_TEST(select<1>(l) == make_layout(make_shape(3), make_stride(5)));
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 3; ++j) {
      for (int64_t k = 0; k < 5; ++k) BOOST_TEST(p(k, i, j) == l(i, j, k));
    }
  }
  // Coalescing keeps the map; static neighbours merge, run-time ones are kept.
  auto const s = coalesce(make_layout(make_shape(_2, int64_t{3}, _1, _4), make_stride(_1, _2, _9, _6)));
  static_assert(rank_v<std::remove_cvref_t<decltype(s.shape())>> == 2);  // (2·3, 4):(1, 6)
  BOOST_TEST(offsets(s) == offsets(make_layout(make_shape(_2, int64_t{3}, _1, _4), make_stride(_1, _2, _9, _6))));
  BOOST_TEST(offsets(coalesce(make_row_major(3, 4))) == offsets(make_row_major(3, 4)));
}

BOOST_AUTO_TEST_CASE(shape_errors) {
  BOOST_CHECK_NO_THROW(check_same_shape("gemm", make_shape(3, 4), make_shape(3, _4)));
  BOOST_CHECK_NO_THROW(check_same_shape("gemm", make_row_major(3, 4), make_col_major(3, 4)));
  BOOST_CHECK_EXCEPTION(check_same_shape("gemm", make_shape(3, 4), make_shape(5, 6)), shape_error,
                        message_is<shape_error>("gemm: A is (3, 4) but B is (5, 6)"));
  BOOST_CHECK_EXCEPTION(check_same_shape("add", "x", make_row_major(_2, 3), "residual", make_shape(2, 4)), shape_error,
                        message_is<shape_error>("add: x is (2, 3) but residual is (2, 4)"));
  BOOST_CHECK_EXCEPTION(check_same_shape("norm", make_shape(make_shape(2, 3), 4), make_shape(make_shape(2, 2), 4)),
                        shape_error, message_is<shape_error>("norm: A is ((2, 3), 4) but B is ((2, 2), 4)"));
  BOOST_TEST(same_shape(make_shape(_2, 3), make_shape(2, 3)));
  BOOST_CHECK_EXCEPTION(make_padded_row_major(3, 4, 3), shape_error,
                        message_is<shape_error>(
                            "make_padded_row_major: leading dimension 3 is smaller than the contiguous extent 4"));
  BOOST_CHECK_THROW(make_padded_col_major(3, 4, 2), shape_error);
  BOOST_CHECK_EXCEPTION(make_tiled_row_major(make_shape(5, 4), make_shape(2, 2)), shape_error,
                        message_is<shape_error>("make_tiled_row_major: tile (2, 2) does not divide shape (5, 4)"));
  BOOST_CHECK_THROW(composition(make_col_major(6, 4), make_layout(int64_t{3}, int64_t{4})), shape_error);
  BOOST_CHECK_THROW(complement(make_layout(make_shape(2, 2), make_stride(2, 1)), 8), shape_error);
}
#endif
