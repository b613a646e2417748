// tests/ops/test_gemm_host.cpp — every host GEMM variant and every micro-kernel this CPU can run,
// against gemm_ref: edge tiles, block edges, the four transposes, strided views, alpha/beta
// cases, empty extents, fp32, bf16 and fp16, one and several threads. Kernels the CPU lacks are
// still compiled here (through target attributes) and their cases report a skip.
//
// Error budget, per element of C (u = 2^-24, fp32 unit roundoff):
//   |C - C_ref| <= 2·(K + 4)·u·(|alpha|·Σ_k |A(i,k)|·|B(k,j)| + |beta|·|C0(i,j)|)
// K + 4 covers fp32 summation of K products in any order plus the alpha, beta and final
// roundings; the factor 2 covers the extra rounding of C at every KC block. bf16 and fp16 inputs
// get the same budget: both sides read the same 16-bit values and their products are exact in
// fp32 (8- and 11-bit significands).
#define TFM_TEST_MODULE test_gemm_host
#include "support/test_main.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "tfm/backend/host/cpu.hpp"
#include "tfm/backend/host/scratch.hpp"
#include "tfm/backend/host/threading.hpp"
#include "tfm/core/dtype.hpp"
#include "tfm/core/error.hpp"
#include "tfm/ops/detail/gemm_host.hpp"

#if TFM_HOST_X86_SIMD && defined(__x86_64__)
#include <immintrin.h>
#endif

namespace {

using tfm::detail::strided_matrix;
using tfm::host::isa;

// ---------------------------------------------------------------------------- kernels under test

// Small cache blocks: every size above a dozen spans several MC, KC, NC and MP blocks.
constexpr tfm::gemm_block_sizes tiny_blocks{.mc = 12, .kc = 16, .nc = 32, .mp = 24};

template <isa I>
using tuned = tfm::basic_gemm_blocked<I>;
template <isa I>
using tiny = tfm::basic_gemm_blocked<I, tiny_blocks>;

// Precondition of a kernel's test suite: the kernel is compiled for this target and the CPU
// can run it; otherwise Boost.Test reports the suite as skipped, with the reason.
template <isa I>
boost::test_tools::assertion_result kernel_runs(boost::unit_test::test_unit_id) {
  boost::test_tools::assertion_result r(true);
  if (!tfm::host::isa_compiled(I)) {
    r = false;
    r.message() << "the " << tfm::host::isa_name(I) << " kernel is not compiled for this target";
  } else if (!tfm::host::cpu_supports(I)) {
    r = false;
    r.message() << "the " << tfm::host::isa_name(I)
                << " kernel is compiled, but this CPU cannot run it";
  }
  return r;
}

// ---------------------------------------------------------------------------- operands

// How a test matrix lies in memory.
enum class layout {
  row_major,   // row_stride = cols
  col_major,   // col_stride = rows (a transposed operand)
  padded_row,  // row-major with a leading dimension past the row
  padded_col,  // column-major with a leading dimension past the column
  sub_view,    // a block inside a larger row-major matrix
  general,     // neither stride is 1
};

const char* layout_name(layout l) {
  switch (l) {
    case layout::row_major: return "row_major";
    case layout::col_major: return "col_major";
    case layout::padded_row: return "padded_row";
    case layout::padded_col: return "padded_col";
    case layout::sub_view: return "sub_view";
    case layout::general: return "general";
  }
  return "?";
}

// Storage and a view into it. Elements outside the view hold `fill`, so a test can check that
// nothing outside a view was written.
template <class T>
struct test_matrix {
  std::vector<T> store;
  strided_matrix<T> view;

  test_matrix(std::int64_t rows, std::int64_t cols, layout l, T fill) {
    std::int64_t rs = 0, cs = 0, offset = 0, size = 0;
    switch (l) {
      case layout::row_major: rs = cols, cs = 1; break;
      case layout::col_major: rs = 1, cs = rows; break;
      case layout::padded_row: rs = cols + 5, cs = 1; break;
      case layout::padded_col: rs = 1, cs = rows + 3; break;
      case layout::sub_view: rs = cols + 4, cs = 1, offset = 2 * rs + 3; break;
      case layout::general: rs = 2, cs = 2 * rows + 1, offset = 1; break;
    }
    size = offset + (rows > 0 && cols > 0 ? (rows - 1) * rs + (cols - 1) * cs + 1 : 0) + 7;
    store.assign(std::size_t(size), fill);
    view = {store.data() + offset, rows, cols, rs, cs};
  }

  strided_matrix<const T> cview() const {
    return {view.data, view.rows, view.cols, view.row_stride, view.col_stride};
  }

  // Whether store[idx] is an element of the view.
  std::vector<bool> view_mask() const {
    std::vector<bool> mask(store.size(), false);
    for (std::int64_t i = 0; i < view.rows; ++i)
      for (std::int64_t j = 0; j < view.cols; ++j)
        mask[std::size_t(&view(i, j) - store.data())] = true;
    return mask;
  }
};

template <class T>
T from_float(float x) {
  return T(x);
}

template <class T>
test_matrix<T> random_matrix(std::int64_t rows, std::int64_t cols, layout l, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  test_matrix<T> m(rows, cols, l, from_float<T>(0.0f));
  for (auto& x : m.store) x = from_float<T>(dist(rng));  // padding too: it must not be read
  return m;
}

float as_float(float x) { return x; }
float as_float(tfm::bfloat16 x) { return float(x); }
float as_float(tfm::half x) { return float(x); }

constexpr float sentinel = 12345.0f;

// ---------------------------------------------------------------------------- one check

struct gemm_case {
  std::int64_t m, n, k;
  layout la = layout::row_major, lb = layout::row_major, lc = layout::row_major;
  float alpha = 1.0f, beta = 0.0f;
  bool nan_c = false;  // C starts as NaN (only meaningful with beta == 0)

  std::string describe() const {
    std::ostringstream os;
    os << "M=" << m << " N=" << n << " K=" << k << " A " << layout_name(la) << " B "
       << layout_name(lb) << " C " << layout_name(lc) << " alpha=" << alpha << " beta=" << beta
       << (nan_c ? " C=NaN" : "");
    return os.str();
  }
};

// Runs Policy and gemm_ref on the same operands, checks the budget, and that nothing outside
// C's view changed. Returns C's store for callers that compare runs.
template <class Policy, class T>
std::vector<float> check_against_ref(const gemm_case& g, std::uint32_t seed = 1) {
  std::mt19937 rng(seed);
  const auto a = random_matrix<T>(g.m, g.k, g.la, rng);
  const auto b = random_matrix<T>(g.k, g.n, g.lb, rng);
  test_matrix<float> c(g.m, g.n, g.lc, sentinel);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (std::int64_t i = 0; i < g.m; ++i)
    for (std::int64_t j = 0; j < g.n; ++j)
      c.view(i, j) = g.nan_c ? std::numeric_limits<float>::quiet_NaN() : dist(rng);
  const std::vector<float> c0 = c.store;
  test_matrix<float> r = c;
  r.view.data = r.store.data() + (c.view.data - c.store.data());

  tfm::detail::gemm_host(tfm::gemm_ref{}, g.alpha, a.cview(), b.cview(), g.beta, r.view);
  tfm::detail::gemm_host(Policy{}, g.alpha, a.cview(), b.cview(), g.beta, c.view);

  constexpr double u = 1.0 / (1 << 24);
  const auto mask = c.view_mask();
  std::int64_t bad = 0;
  std::ostringstream first;
  for (std::int64_t i = 0; i < g.m; ++i) {
    for (std::int64_t j = 0; j < g.n; ++j) {
      double mag = 0.0;
      for (std::int64_t k = 0; k < g.k; ++k)
        mag +=
            std::fabs(double(as_float(a.view(i, k)))) * std::fabs(double(as_float(b.view(k, j))));
      const std::size_t at = std::size_t(&c.view(i, j) - c.store.data());
      const double c_in = g.beta == 0.0f ? 0.0 : std::fabs(double(c0[at]));
      const double budget = 2.0 * double(g.k + 4) * u *
                            (std::fabs(double(g.alpha)) * mag + std::fabs(double(g.beta)) * c_in);
      const double err = std::fabs(double(c.view(i, j)) - double(r.view(i, j)));
      if (!(err <= budget) || !std::isfinite(c.view(i, j))) {
        if (bad++ == 0)
          first << " first at (" << i << ", " << j << "): " << c.view(i, j) << " vs ref "
                << r.view(i, j) << ", budget " << budget;
      }
    }
  }
  std::int64_t outside = 0;
  for (std::size_t x = 0; x < c.store.size(); ++x)
    if (!mask[x] && c.store[x] != sentinel) ++outside;
  BOOST_TEST(bad == 0, g.describe() << ": " << bad << " elements over budget;" << first.str());
  BOOST_TEST(outside == 0, g.describe() << ": " << outside << " elements outside C's view written");
  return c.store;
}

template <class Policy, class T>
void sweep_sizes(const std::vector<std::int64_t>& ms, const std::vector<std::int64_t>& ns,
                 const std::vector<std::int64_t>& ks,
                 const std::vector<std::pair<layout, layout>>& transposes) {
  for (auto [la, lb] : transposes)
    for (std::int64_t m : ms)
      for (std::int64_t n : ns)
        for (std::int64_t k : ks) check_against_ref<Policy, T>({m, n, k, la, lb});
}

const std::vector<std::pair<layout, layout>> all_transposes = {
    {layout::row_major, layout::row_major},  // NN
    {layout::row_major, layout::col_major},  // NT
    {layout::col_major, layout::row_major},  // TN
    {layout::col_major, layout::col_major},  // TT
};

// Sizes around every register tile (MR = 4, 6, 12; NR = 16, 32) and the tiny blocks.
const std::vector<std::int64_t> edge_sizes = {1, 2, 7, 12, 15, 16, 17, 33, 65};
const std::vector<std::int64_t> edge_depths = {1, 7, 16, 17, 65};

}  // namespace

// ---------------------------------------------------------------------------- test cases

// Each test below is a function template over the kernel; TFM_GEMM_KERNEL_SUITE instantiates
// them all for one kernel.

template <isa I>
void run_edge_tiles_and_block_edges_f32() {
  sweep_sizes<tiny<I>, float>(edge_sizes, edge_sizes, edge_depths, all_transposes);
  sweep_sizes<tuned<I>, float>(edge_sizes, edge_sizes, {1, 17, 65}, all_transposes);
}

template <isa I>
void run_edge_tiles_and_block_edges_bf16() {
  sweep_sizes<tiny<I>, tfm::bfloat16>(edge_sizes, edge_sizes, edge_depths, all_transposes);
  sweep_sizes<tuned<I>, tfm::bfloat16>(edge_sizes, edge_sizes, {1, 17, 65}, all_transposes);
}

template <isa I>
void run_edge_tiles_and_block_edges_f16() {
  sweep_sizes<tiny<I>, tfm::half>(edge_sizes, edge_sizes, edge_depths, all_transposes);
  sweep_sizes<tuned<I>, tfm::half>(edge_sizes, edge_sizes, {1, 17, 65}, all_transposes);
}

// Mixed sizes up to 257 with the tuned blocks: 257 crosses MC and KC for every kernel.
template <isa I>
void run_mixed_sizes_tuned_blocks() {
  const std::vector<std::int64_t> sizes = {1, 17, 64, 257};
  sweep_sizes<tuned<I>, float>(sizes, sizes, sizes, {all_transposes[0]});
  sweep_sizes<tuned<I>, float>({17, 257}, {64, 257}, {17, 257}, {all_transposes[3]});
  sweep_sizes<tuned<I>, tfm::bfloat16>({64, 257}, {17, 257}, {257}, {all_transposes[1]});
  sweep_sizes<tuned<I>, tfm::half>({64, 257}, {17, 257}, {257}, {all_transposes[2]});
}

// Larger than one tuned block in each dimension: N past NC (4096 at most), M past MC, K past KC.
template <isa I>
void run_larger_than_tuned_blocks() {
  using P = tuned<I>;
  for (auto [la, lb] : {all_transposes[0], all_transposes[1], all_transposes[2]}) {
    check_against_ref<P, float>({7, 4133, 40, la, lb});
    check_against_ref<P, float>({301, 47, 530, la, lb});
  }
  check_against_ref<P, tfm::bfloat16>({5, 4133, 40});
  check_against_ref<P, tfm::bfloat16>({301, 47, 530, layout::col_major, layout::col_major});
  check_against_ref<P, tfm::half>({5, 4133, 40, layout::row_major, layout::col_major});
  check_against_ref<P, tfm::half>({301, 47, 530});
}

template <isa I>
void run_strided_views() {
  const layout all[] = {layout::row_major,  layout::col_major, layout::padded_row,
                        layout::padded_col, layout::sub_view,  layout::general};
  for (layout la : all)
    for (layout lb : all)
      for (layout lc : all) {
        check_against_ref<tiny<I>, float>({19, 35, 21, la, lb, lc, 1.5f, 0.5f});
        check_against_ref<tuned<I>, tfm::bfloat16>({13, 37, 9, la, lb, lc, 1.0f, 1.0f});
        check_against_ref<tiny<I>, tfm::half>({13, 37, 18, la, lb, lc, -0.5f, 2.0f});
      }
}

template <isa I>
void run_alpha_beta() {
  using P = tiny<I>;
  struct ab {
    float alpha, beta;
    bool nan_c;
  };
  const ab cases[] = {{1.0f, 0.0f, true},  {1.0f, 1.0f, false}, {0.5f, -2.0f, false},
                      {-1.0f, 0.0f, true}, {0.0f, 0.5f, false}, {0.0f, 0.0f, true},
                      {2.0f, 1.0f, false}};
  for (const ab& x : cases) {
    for (layout lc : {layout::row_major, layout::col_major, layout::general}) {
      check_against_ref<P, float>(
          {37, 50, 45, layout::row_major, layout::row_major, lc, x.alpha, x.beta, x.nan_c});
      check_against_ref<P, tfm::bfloat16>(
          {37, 50, 45, layout::col_major, layout::row_major, lc, x.alpha, x.beta, x.nan_c});
      check_against_ref<P, tfm::half>(
          {37, 50, 45, layout::row_major, layout::col_major, lc, x.alpha, x.beta, x.nan_c});
    }
  }
}

// alpha == 0 leaves A and B unread (BLAS semantics): NaN in them does not reach C.
template <isa I>
void run_alpha_zero_reads_neither_a_nor_b() {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> a(6 * 5, nan), b(5 * 7, nan), c(6 * 7, 2.0f);
  tfm::detail::gemm_host(tuned<I>{}, 0.0f, strided_matrix<const float>{a.data(), 6, 5, 5, 1},
                         strided_matrix<const float>{b.data(), 5, 7, 7, 1}, 0.5f,
                         strided_matrix<float>{c.data(), 6, 7, 7, 1});
  for (float x : c) BOOST_TEST(x == 1.0f);
}

// K == 0: C = beta·C; beta == 0 writes zeros over NaN.
template <isa I>
void run_empty_depth() {
  for (float beta : {0.0f, 1.0f, -3.0f}) {
    check_against_ref<tuned<I>, float>({9, 17, 0, layout::row_major, layout::row_major,
                                        layout::row_major, 1.0f, beta, beta == 0.0f});
    check_against_ref<tuned<I>, tfm::bfloat16>(
        {9, 17, 0, layout::row_major, layout::row_major, layout::general, 2.0f, beta, false});
    check_against_ref<tuned<I>, tfm::half>(
        {9, 17, 0, layout::col_major, layout::row_major, layout::row_major, 1.0f, beta, false});
  }
  std::vector<float> c(4 * 3, std::numeric_limits<float>::quiet_NaN());
  tfm::detail::gemm_host(tuned<I>{}, 1.0f, strided_matrix<const float>{nullptr, 4, 0, 0, 1},
                         strided_matrix<const float>{nullptr, 0, 3, 3, 1}, 0.0f,
                         strided_matrix<float>{c.data(), 4, 3, 3, 1});
  for (float x : c) BOOST_TEST(x == 0.0f);
}

// Packing widens every fp16 value exactly, in the vector loads (F16C on AVX2) and the scalar
// tails alike: C = A·I with A holding every finite fp16 value (62 × 1024 of them), then
// C = I·A^T with A^T as a column-major B; and C = 1·B with B a row of all 65536 bit patterns,
// infinities and NaNs included.
template <isa I>
void run_f16_widening_is_exact() {
  using tfm::half;
  constexpr std::int64_t rows = 62, cols = 1024;  // 2 · 31 exponents · 1024 significands
  std::vector<half> finite;
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits) {
    const half h = half::from_bits(std::uint16_t(bits));
    if (std::isfinite(float(h))) finite.push_back(h);
  }
  BOOST_TEST_REQUIRE(std::int64_t(finite.size()) == rows * cols);
  std::vector<half> eye(std::size_t(cols * cols), half(0.0f));
  for (std::int64_t i = 0; i < cols; ++i) eye[std::size_t(i * cols + i)] = half(1.0f);
  const strided_matrix<const half> a{finite.data(), rows, cols, cols, 1};
  const strided_matrix<const half> id{eye.data(), cols, cols, cols, 1};
  std::vector<float> c(std::size_t(rows * cols), sentinel);
  tfm::detail::gemm_host(tuned<I>{}, 1.0f, a, id, 0.0f,
                         strided_matrix<float>{c.data(), rows, cols, cols, 1});
  std::int64_t bad = 0;
  for (std::size_t x = 0; x < c.size(); ++x) bad += c[x] != float(finite[x]);
  BOOST_TEST(bad == 0, "C = A·I: " << bad << " elements differ from float(A)");
  std::fill(c.begin(), c.end(), sentinel);
  tfm::detail::gemm_host(tuned<I>{}, 1.0f, id, a.transposed(), 0.0f,
                         strided_matrix<float>{c.data(), cols, rows, rows, 1});
  bad = 0;
  for (std::int64_t i = 0; i < cols; ++i)
    for (std::int64_t j = 0; j < rows; ++j)
      bad += c[std::size_t(i * rows + j)] != float(finite[std::size_t(j * cols + i)]);
  BOOST_TEST(bad == 0, "C = I·A^T: " << bad << " elements differ from float(A)");

  std::vector<half> all(0x10000);
  for (std::uint32_t bits = 0; bits < 0x10000; ++bits)
    all[bits] = half::from_bits(std::uint16_t(bits));
  const std::vector<half> ones(7, half(1.0f));
  std::vector<float> row(7 * all.size(), sentinel);
  const auto n = std::int64_t(all.size());
  tfm::detail::gemm_host(tuned<I>{}, 1.0f, strided_matrix<const half>{ones.data(), 7, 1, 1, 1},
                         strided_matrix<const half>{all.data(), 1, n, n, 1}, 0.0f,
                         strided_matrix<float>{row.data(), 7, n, n, 1});
  bad = 0;
  for (std::size_t x = 0; x < row.size(); ++x) {
    const float want = float(all[x % all.size()]);
    bad += std::isnan(want) ? !std::isnan(row[x]) : row[x] != want;
  }
  BOOST_TEST(bad == 0, "C = 1·B: " << bad << " elements differ from float(B)");
}

// M == 0 or N == 0: nothing is read or written.
template <isa I>
void run_empty_rows_or_columns() {
  std::vector<float> a(5 * 4, 1.0f), b(4 * 5, 1.0f), c(5 * 5, sentinel);
  tfm::detail::gemm_host(tuned<I>{}, 1.0f, strided_matrix<const float>{a.data(), 0, 4, 4, 1},
                         strided_matrix<const float>{b.data(), 4, 5, 5, 1}, 0.0f,
                         strided_matrix<float>{c.data(), 0, 5, 5, 1});
  tfm::detail::gemm_host(tuned<I>{}, 1.0f, strided_matrix<const float>{a.data(), 5, 4, 4, 1},
                         strided_matrix<const float>{b.data(), 4, 0, 1, 1}, 0.0f,
                         strided_matrix<float>{c.data(), 5, 0, 5, 1});
  for (float x : c) BOOST_TEST(x == sentinel);
}

// Each element of C is summed by one thread in the same order whatever the thread count, so
// results are bitwise equal; with OpenMP, 2 and 3 threads really split M and N.
template <isa I>
void run_threads_give_identical_results() {
  const gemm_case shapes[] = {{130, 300, 70},
                              {256, 96, 300},
                              {5, 700, 33},
                              {97, 61, 45, layout::col_major, layout::col_major, layout::general}};
  for (const gemm_case& g : shapes) {
    std::vector<float> one, two, three;
    {
      tfm::host::scoped_num_threads t(1);
      one = check_against_ref<tuned<I>, float>(g);
    }
    {
      tfm::host::scoped_num_threads t(2);
      two = check_against_ref<tuned<I>, float>(g);
    }
    {
      tfm::host::scoped_num_threads t(3);
      three = check_against_ref<tiny<I>, float>(g);
    }
    {
      tfm::host::scoped_num_threads t(1);
      BOOST_TEST((check_against_ref<tiny<I>, float>(g) == three), g.describe());
    }
    BOOST_TEST((one == two), g.describe());
  }
  // Random shapes with tiny blocks, K often not a multiple of the KC block and several row
  // blocks, so that threads pack into slots next to ones others still read; more threads than
  // cores.
  std::mt19937 rng(11);
  std::uniform_int_distribution<std::int64_t> size(1, 160);
  for (int r = 0; r < 24; ++r) {
    const gemm_case g{size(rng), size(rng), size(rng), layout::row_major, layout::col_major};
    std::vector<float> one, many;
    {
      tfm::host::scoped_num_threads t(1);
      one = check_against_ref<tiny<I>, float>(g);
    }
    {
      // Fresh scratch: first-touch page faults while packing make threads drift apart.
      tfm::host::thread_scratch().release();
      tfm::host::scoped_num_threads t(4);
      many = check_against_ref<tiny<I>, float>(g);
    }
    BOOST_TEST((one == many), g.describe());
  }
}

// gemm_host_epilogue: the blocks handed to the epilogue cover C once each and hold exactly the
// plain GEMM's alpha·A·B (same kernel, same K order: bit for bit); with K in one KC block the C
// memory is never touched, with several it holds the sums.
template <isa I, class Policy, class T>
void check_epilogue(std::int64_t m, std::int64_t n, std::int64_t k, float alpha, bool c_untouched) {
  std::mt19937 rng(std::uint32_t(m * 131 + n * 7 + k));
  const auto a = random_matrix<T>(m, k, layout::row_major, rng);
  const auto b = random_matrix<T>(k, n, layout::col_major, rng);
  std::vector<float> plain(std::size_t(m * n), sentinel);
  tfm::detail::gemm_host(Policy{}, alpha, a.cview(), b.cview(), 0.0f,
                         strided_matrix<float>{plain.data(), m, n, n, 1});
  std::vector<float> c(std::size_t(m * n), sentinel), out(std::size_t(m * n), sentinel);
  std::vector<int> visits(std::size_t(m * n), 0);
  std::atomic<int> calls{0};
  tfm::detail::gemm_host_epilogue(
      Policy{}, alpha, a.cview(), b.cview(), strided_matrix<float>{c.data(), m, n, n, 1},
      [&](const float* src, std::int64_t ld, std::int64_t i0, std::int64_t rows, std::int64_t j0,
          std::int64_t cols) {
        ++calls;
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t j = 0; j < cols; ++j) {
            out[std::size_t((i0 + i) * n + j0 + j)] = src[i * ld + j];
            ++visits[std::size_t((i0 + i) * n + j0 + j)];
          }
      });
  std::ostringstream what;
  what << tfm::host::isa_name(I) << " M=" << m << " N=" << n << " K=" << k << " alpha=" << alpha;
  BOOST_TEST(calls.load() >= 1, what.str());
  BOOST_TEST(std::all_of(visits.begin(), visits.end(), [](int v) { return v == 1; }), what.str());
  BOOST_TEST(std::memcmp(out.data(), plain.data(), out.size() * sizeof(float)) == 0, what.str());
  if (c_untouched)
    BOOST_TEST(std::all_of(c.begin(), c.end(), [](float x) { return x == sentinel; }), what.str());
}

template <isa I>
void run_epilogue_blocks() {
  for (int threads : {1, 2, 3}) {
    tfm::host::scoped_num_threads t(threads);
    // one KC block of the tuned kernel (kc ≥ 192 for every kernel): private float blocks
    check_epilogue<I, tuned<I>, float>(130, 300, 70, 1.0f, true);
    check_epilogue<I, tuned<I>, tfm::bfloat16>(300, 517, 96, 0.5f, true);
    check_epilogue<I, tuned<I>, tfm::half>(5, 700, 33, 1.0f, true);
    check_epilogue<I, tuned<I>, float>(1, 1, 1, 2.0f, true);
    // several KC blocks (tiny blocks, and K past every tuned kc): the sums go through C
    check_epilogue<I, tiny<I>, float>(97, 61, 45, 1.0f, false);
    check_epilogue<I, tiny<I>, tfm::bfloat16>(40, 150, 129, -1.5f, false);
    check_epilogue<I, tuned<I>, tfm::bfloat16>(64, 96, 1600, 1.0f, false);
  }
}

#define TFM_GEMM_KERNEL_SUITE(I)                                                             \
  BOOST_AUTO_TEST_SUITE(kernel_##I, *boost::unit_test::precondition(kernel_runs<isa::I>))    \
  BOOST_AUTO_TEST_CASE(edge_tiles_and_block_edges_f32) {                                     \
    run_edge_tiles_and_block_edges_f32<isa::I>();                                            \
  }                                                                                          \
  BOOST_AUTO_TEST_CASE(edge_tiles_and_block_edges_bf16) {                                    \
    run_edge_tiles_and_block_edges_bf16<isa::I>();                                           \
  }                                                                                          \
  BOOST_AUTO_TEST_CASE(edge_tiles_and_block_edges_f16) {                                     \
    run_edge_tiles_and_block_edges_f16<isa::I>();                                            \
  }                                                                                          \
  BOOST_AUTO_TEST_CASE(f16_widening_is_exact) { run_f16_widening_is_exact<isa::I>(); }       \
  BOOST_AUTO_TEST_CASE(mixed_sizes_tuned_blocks) { run_mixed_sizes_tuned_blocks<isa::I>(); } \
  BOOST_AUTO_TEST_CASE(larger_than_tuned_blocks) { run_larger_than_tuned_blocks<isa::I>(); } \
  BOOST_AUTO_TEST_CASE(strided_views) { run_strided_views<isa::I>(); }                       \
  BOOST_AUTO_TEST_CASE(alpha_beta) { run_alpha_beta<isa::I>(); }                             \
  BOOST_AUTO_TEST_CASE(alpha_zero_reads_neither_a_nor_b) {                                   \
    run_alpha_zero_reads_neither_a_nor_b<isa::I>();                                          \
  }                                                                                          \
  BOOST_AUTO_TEST_CASE(empty_depth) { run_empty_depth<isa::I>(); }                           \
  BOOST_AUTO_TEST_CASE(empty_rows_or_columns) { run_empty_rows_or_columns<isa::I>(); }       \
  BOOST_AUTO_TEST_CASE(threads_give_identical_results) {                                     \
    run_threads_give_identical_results<isa::I>();                                            \
  }                                                                                          \
  BOOST_AUTO_TEST_CASE(epilogue_blocks) { run_epilogue_blocks<isa::I>(); }                   \
  BOOST_AUTO_TEST_SUITE_END()

TFM_GEMM_KERNEL_SUITE(scalar)
TFM_GEMM_KERNEL_SUITE(avx2)
TFM_GEMM_KERNEL_SUITE(avx512)
TFM_GEMM_KERNEL_SUITE(avx512_bf16)
TFM_GEMM_KERNEL_SUITE(amx_bf16)

BOOST_AUTO_TEST_SUITE(gemm_host)

BOOST_AUTO_TEST_CASE(reference_is_exact_on_small_integers) {
  // Integer data: every product and sum is exact, so gemm_ref must match by hand.
  const float a[] = {1, 2, 3, 4, 5, 6};     // 2×3
  const float b[] = {7, 8, 9, 10, 11, 12};  // 3×2
  float c[] = {1, 1, 1, 1};
  tfm::detail::gemm_host(tfm::gemm_ref{}, 2.0f, strided_matrix<const float>{a, 2, 3, 3, 1},
                         strided_matrix<const float>{b, 3, 2, 2, 1}, -1.0f,
                         strided_matrix<float>{c, 2, 2, 2, 1});
  const float want[] = {2 * 58 - 1, 2 * 64 - 1, 2 * 139 - 1, 2 * 154 - 1};
  for (int i = 0; i < 4; ++i) BOOST_TEST(c[i] == want[i]);
}

// Called from inside a parallel region, the GEMM gets a team of one thread (nested regions are
// off) although it planned for several: the lone thread must take every range.
BOOST_AUTO_TEST_CASE(called_from_parallel_region) {
  const gemm_case g{150, 170, 300, layout::row_major, layout::col_major};
  tfm::host::scoped_num_threads t(2);
  std::vector<float> expected = check_against_ref<tfm::gemm_blocked, float>(g);
  std::vector<std::vector<float>> got(2);
  // No Boost.Test assertions on worker threads: just compute, compare afterwards.
  tfm::host::parallel(2, [&](int tid, int) {
    std::mt19937 rng(1);
    const auto a = random_matrix<float>(g.m, g.k, g.la, rng);
    const auto b = random_matrix<float>(g.k, g.n, g.lb, rng);
    test_matrix<float> c(g.m, g.n, g.lc, sentinel);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (std::int64_t i = 0; i < g.m; ++i)
      for (std::int64_t j = 0; j < g.n; ++j) c.view(i, j) = dist(rng);
    tfm::detail::gemm_host(tfm::gemm_blocked{}, g.alpha, a.cview(), b.cview(), g.beta, c.view);
    got[std::size_t(tid)] = c.store;
  });
  for (const auto& r : got) BOOST_TEST((r.empty() || r == expected));
}

// The call model code makes: the default blocked kernel on fp16 operands.
BOOST_AUTO_TEST_CASE(default_blocked_f16) {
  check_against_ref<tfm::gemm_blocked, tfm::half>({256, 96, 300});
  check_against_ref<tfm::gemm_blocked, tfm::half>(
      {64, 200, 77, layout::row_major, layout::col_major, layout::row_major, 1.0f, 1.0f});
  check_against_ref<tfm::gemm_blocked, tfm::half>(
      {33, 17, 129, layout::sub_view, layout::padded_row, layout::padded_row, 0.5f, -1.0f});
}

// The call model code makes with bf16 compute: the default kernel (AMX where the CPU and OS allow
// it, else the best of the others), over the layouts of a linear layer's three products.
BOOST_AUTO_TEST_CASE(default_blocked_bf16) {
  BOOST_TEST_MESSAGE("bf16 GEMMs run the "
                     << (tfm::host::native_isa == isa::amx_bf16 &&
                                 !tfm::host::cpu_supports(isa::amx_bf16)
                             ? "avx512_bf16 kernel (AMX unavailable or switched off)"
                             : std::string(tfm::host::isa_name(tfm::host::native_isa)) +
                                   " kernel"));
  for (auto [la, lb] : all_transposes) {
    check_against_ref<tfm::gemm_blocked, tfm::bfloat16>({256, 200, 300, la, lb});
    check_against_ref<tfm::gemm_blocked, tfm::bfloat16>(
        {70, 33, 97, la, lb, layout::row_major, 1.0f, 1.0f});
  }
  check_against_ref<tfm::gemm_blocked, tfm::bfloat16>(
      {33, 17, 129, layout::sub_view, layout::padded_col, layout::padded_col, 0.5f, -1.0f});
}

// TFM_HOST_AMX=0 (the test_gemm_host_without_amx run) switches the AMX kernel off.
BOOST_AUTO_TEST_CASE(amx_switch_is_honoured) {
  const char* e = std::getenv("TFM_HOST_AMX");
  if (e != nullptr && std::string_view(e) == "0") {
    BOOST_TEST(!tfm::host::cpu_supports(isa::amx_bf16));
  } else {
    BOOST_TEST_MESSAGE("AMX: " << (tfm::host::cpu_supports(isa::amx_bf16) ? "available" : "not available"));
    BOOST_TEST((!tfm::host::cpu_supports(isa::amx_bf16) || tfm::host::cpu_supports(isa::avx512_bf16)));
  }
}

// tdpbf16ps treats bf16 subnormal inputs as zero (docs of gemm_host_amx.hpp; vdpbf16ps does the
// same): a product of a subnormal and a large value, which gemm_ref keeps, does not contribute.
BOOST_AUTO_TEST_CASE(amx_ignores_subnormal_inputs,
                     *boost::unit_test::precondition(kernel_runs<isa::amx_bf16>)) {
  const tfm::bfloat16 tiny = tfm::bfloat16::from_bits(0x0040);  // 2^-127, subnormal
  BOOST_REQUIRE(float(tiny) > 0.0f && float(tiny) < std::numeric_limits<float>::min());
  std::vector<tfm::bfloat16> a(32 * 32, tiny), b(32 * 32, tfm::bfloat16(1024.0f));
  a[0] = tfm::bfloat16(1.0f);  // row 0 also gets one normal product
  std::vector<float> c(32 * 32, -1.0f), ref(32 * 32, -1.0f);
  const strided_matrix<const tfm::bfloat16> A{a.data(), 32, 32, 32, 1}, B{b.data(), 32, 32, 32, 1};
  tfm::detail::gemm_host(tuned<isa::amx_bf16>{}, 1.0f, A, B, 0.0f,
                         strided_matrix<float>{c.data(), 32, 32, 32, 1});
  tfm::detail::gemm_host(tfm::gemm_ref{}, 1.0f, A, B, 0.0f,
                         strided_matrix<float>{ref.data(), 32, 32, 32, 1});
  BOOST_TEST(c[0] == 1024.0f);
  BOOST_TEST(c[32] == 0.0f);
  BOOST_TEST(ref[32] == 32.0f * 1024.0f * float(tiny));
}

#if TFM_HOST_X86_SIMD && defined(__x86_64__)
// Another library's tile configuration (here: 4 rows of 16 bytes per tile) left on the thread
// must not reach the AMX kernel: it loads its own at the start of every GEMM.
// (Static and constant-initialised: GCC 12 may move stores to a local array past the ldtilecfg
// that reads it.)
__attribute__((target("amx-tile"))) void load_foreign_tile_config() {
  alignas(64) static const std::uint8_t cfg[64] = {
      1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,           // palette 1
      16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0, 16, 0,   // 16 bytes per row, tiles 0-7
      0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,           //
      4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0};          // 4 rows
  _tile_loadconfig(cfg);
}

BOOST_AUTO_TEST_CASE(amx_loads_its_own_tile_config,
                     *boost::unit_test::precondition(kernel_runs<isa::amx_bf16>)) {
  tfm::host::scoped_num_threads t(1);  // the GEMM runs on this thread
  load_foreign_tile_config();
  check_against_ref<tuned<isa::amx_bf16>, tfm::bfloat16>({70, 65, 100});
  load_foreign_tile_config();
  check_against_ref<tfm::gemm_blocked, tfm::bfloat16>({33, 40, 64, layout::col_major});
}
#endif

// The reference policy, alpha = 0 and K = 0 hand the whole C to the epilogue in one call; a
// column-major C is refused.
BOOST_AUTO_TEST_CASE(epilogue_edge_cases) {
  const float a[] = {1, 2, 3, 4, 5, 6};     // 2×3
  const float b[] = {7, 8, 9, 10, 11, 12};  // 3×2
  const strided_matrix<const float> A{a, 2, 3, 3, 1}, B{b, 3, 2, 2, 1};
  for (int variant = 0; variant < 3; ++variant) {
    float c[4] = {sentinel, sentinel, sentinel, sentinel};
    std::vector<float> got;
    int calls = 0;
    const auto epi = [&](const float* src, std::int64_t ld, std::int64_t i0, std::int64_t rows,
                         std::int64_t j0, std::int64_t cols) {
      ++calls;
      BOOST_TEST((i0 == 0 && j0 == 0 && rows == 2 && cols == 2 && ld == 2));
      got.assign(src, src + 4);
    };
    const strided_matrix<float> C{c, 2, 2, 2, 1};
    if (variant == 0) {
      tfm::detail::gemm_host_epilogue(tfm::gemm_ref{}, 2.0f, A, B, C, epi);
      BOOST_TEST((got == std::vector<float>{2 * 58, 2 * 64, 2 * 139, 2 * 154}));
    } else if (variant == 1) {
      tfm::detail::gemm_host_epilogue(tfm::gemm_blocked{}, 0.0f, A, B, C, epi);
      BOOST_TEST((got == std::vector<float>(4, 0.0f)));
    } else {
      tfm::detail::gemm_host_epilogue(tfm::gemm_blocked{}, 1.0f,
                                      strided_matrix<const float>{a, 2, 0, 3, 1},
                                      strided_matrix<const float>{b, 0, 2, 2, 1}, C, epi);
      BOOST_TEST((got == std::vector<float>(4, 0.0f)));
    }
    BOOST_TEST(calls == 1);
  }
  float c[4];
  BOOST_CHECK_THROW(tfm::detail::gemm_host_epilogue(tfm::gemm_blocked{}, 1.0f, A, B,
                                                    strided_matrix<float>{c, 2, 2, 1, 2},
                                                    [](const float*, std::int64_t, std::int64_t,
                                                       std::int64_t, std::int64_t, std::int64_t) {}),
                    tfm::invalid_argument);
}

BOOST_AUTO_TEST_CASE(shape_mismatch_throws) {
  std::vector<float> buf(64, 0.0f);
  const strided_matrix<const float> a{buf.data(), 2, 3, 3, 1};
  const strided_matrix<const float> b_bad{buf.data(), 4, 2, 2, 1};
  const strided_matrix<float> c{buf.data() + 32, 2, 2, 2, 1};
  BOOST_CHECK_THROW(tfm::detail::gemm_host(tfm::gemm_blocked{}, 1.0f, a, b_bad, 0.0f, c),
                    tfm::shape_error);
  BOOST_CHECK_THROW(tfm::detail::gemm_host(tfm::gemm_ref{}, 1.0f, a, b_bad, 0.0f, c),
                    tfm::shape_error);
  const strided_matrix<const float> b{buf.data(), 3, 3, 3, 1};
  BOOST_CHECK_THROW(tfm::detail::gemm_host(tfm::gemm_blocked{}, 1.0f, a, b, 0.0f, c),
                    tfm::shape_error);
}

BOOST_AUTO_TEST_CASE(thread_count_query_and_override) {
  const int def = tfm::host::num_threads();
  BOOST_TEST(def >= 1);
  {
    tfm::host::scoped_num_threads t(3);
    BOOST_TEST(tfm::host::num_threads() == (tfm::host::has_openmp() ? 3 : 1));
  }
  BOOST_TEST(tfm::host::num_threads() == def);
  BOOST_TEST_MESSAGE("host GEMM: default kernel " << tfm::host::isa_name(tfm::host::native_isa)
                                                  << ", " << def << " thread(s), OpenMP "
                                                  << (tfm::host::has_openmp() ? "on" : "off"));
  for (isa i : {isa::scalar, isa::avx2, isa::avx512, isa::avx512_bf16, isa::amx_bf16}) {
    if (!tfm::host::isa_compiled(i) || !tfm::host::cpu_supports(i))
      BOOST_TEST_MESSAGE("SKIP: kernel_"
                         << tfm::host::isa_name(i) << " tests ("
                         << (tfm::host::isa_compiled(i) ? "CPU lacks it" : "not compiled") << ")");
  }
}

BOOST_AUTO_TEST_SUITE_END()
