// CUDA GEMM against a double-precision host reference: every policy (cuBLASLt per math mode,
// tfm's tiled kernel) × input/output type, over odd sizes, every combination of row- and
// column-major operands (all transposes), padded leading dimensions and misaligned sub-views.
//
// Error budget (|got − ref| <= bound), with S = Σ_k |alpha·a_ik·b_kj| + |beta·c_ij|:
//   accumulation  (K + 2)·2^-23·S for fp32 math (twice the unit roundoff per add), and
//                 (K + 2)·2^-21·S on tensor cores (bf16, fp16, tf32), whose fp32 adders are not
//                 guaranteed to round like IEEE fp32;
//   input rounding tf32 only: 2^-9·S (each factor loses up to 2^-10 when rounded to TF32);
//                 bf16/fp16 inputs are exact here (the reference uses the rounded values, and
//                 their products are exact in fp32);
//   output        one rounding to C's type: 2^-23 (fp32), 2^-8 (bf16), 2^-10 (fp16) × |ref|,
//                 each twice the unit roundoff.
// An indexing or layout mistake gives errors of the order of S itself, far above these bounds.
#define TFM_TEST_NEEDS_CUDA
#define TFM_TEST_MODULE test_gemm_cuda
#include "support/test_main.hpp"

#include <boost/mpl/list.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "tfm/backend/cuda/cublas.hpp"
#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/core/dtype.hpp"
#include "tfm/ops/detail/gemm_cuda.cuh"

namespace {

namespace cu = tfm::cuda;
using tfm::detail::strided_matrix;

cu::cublaslt_handle& lt_handle() {
  static cu::cublaslt_handle h;
  return h;
}

template <class T>
const char* type_name() {
  if constexpr (std::is_same_v<T, float>) return "f32";
  else if constexpr (std::is_same_v<T, tfm::bfloat16>) return "bf16";
  else return "f16";
}

// One rounding to T, with a factor 2 of room: 2^-23 (fp32), 2^-8 (bf16), 2^-10 (fp16).
template <class T>
double output_rel() {
  if constexpr (std::is_same_v<T, float>) return std::ldexp(1.0, -23);
  else if constexpr (std::is_same_v<T, tfm::bfloat16>) return std::ldexp(1.0, -8);
  else return std::ldexp(1.0, -10);
}

template <class P>
struct is_tf32_policy : std::false_type {};
template <>
struct is_tf32_policy<tfm::gemm_cublaslt<tfm::gemm_math::tf32>> : std::true_type {};

template <class T>
strided_matrix<const T> cview(const strided_matrix<T>& m) {
  return {m.data, m.rows, m.cols, m.row_stride, m.col_stride};
}

// A policy with its input type T and output type TC.
template <class Policy, class T, class TC>
struct variant {
  using policy = Policy;
  using in = T;
  using out = TC;
  static constexpr bool is_tiled = tfm::detail::is_gemm_tiled<Policy>::value;
  static constexpr bool is_tf32 = is_tf32_policy<Policy>::value;
  static constexpr bool tensor_cores = !is_tiled && (is_tf32 || !std::is_same_v<T, float>);

  static std::string name() {
    std::ostringstream os;
    os << (is_tiled ? "tiled" : is_tf32 ? "cublaslt<tf32>" : "cublaslt") << ' ' << type_name<T>()
       << "->" << type_name<TC>();
    return os.str();
  }
  static double bound(double k, double s, double ref) {
    const double acc = (k + 2) * std::ldexp(1.0, tensor_cores ? -21 : -23) * s;
    const double input = is_tf32 ? std::ldexp(1.0, -9) * s : 0.0;
    return acc + input + output_rel<TC>() * std::abs(ref) + 1e-30;
  }
  static void run(float alpha, strided_matrix<const T> a, strided_matrix<const T> b, float beta,
                  strided_matrix<TC> c, cu::stream_view s = {}) {
    tfm::detail::gemm_cuda(Policy{}, alpha, a, b, beta, c, s, lt_handle());
  }
};

using all_variants = boost::mpl::list<
    variant<tfm::gemm_cublaslt<>, float, float>,
    variant<tfm::gemm_cublaslt<tfm::gemm_math::tf32>, float, float>,
    variant<tfm::gemm_cublaslt<>, tfm::bfloat16, tfm::bfloat16>,
    variant<tfm::gemm_cublaslt<tfm::gemm_math::bf16>, tfm::bfloat16, float>,
    variant<tfm::gemm_cublaslt<>, tfm::half, tfm::half>,
    variant<tfm::gemm_cublaslt<tfm::gemm_math::fp16>, tfm::half, float>,
    variant<tfm::gemm_tiled, float, float>,
    variant<tfm::gemm_tiled, tfm::bfloat16, tfm::bfloat16>,
    variant<tfm::gemm_tiled, tfm::bfloat16, float>,
    variant<tfm::gemm_tiled, tfm::half, tfm::half>,
    variant<tfm::gemm_tiled, tfm::half, float>>;

struct lcg {
  std::uint64_t s;
  float next() {  // in [-1, 1)
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<std::int64_t>(s >> 40) - (1 << 23)) / float(1 << 23);
  }
};

// A logical rows×cols matrix of exactly representable values, and how it is laid out on the device.
template <class T>
struct host_matrix {
  std::int64_t rows, cols;
  std::vector<T> v;  // row-major logical values
  double at(std::int64_t i, std::int64_t j) const {
    return static_cast<double>(static_cast<float>(v[static_cast<std::size_t>(i * cols + j)]));
  }
};
template <class T>
host_matrix<T> random_matrix(std::int64_t rows, std::int64_t cols, lcg& g) {
  host_matrix<T> m{rows, cols, std::vector<T>(static_cast<std::size_t>(rows * cols))};
  for (auto& x : m.v) x = T(g.next());
  return m;
}

enum class order { row, col, general };
struct layout {
  order o;
  std::int64_t pad;     // extra elements per leading dimension
  std::int64_t offset;  // elements before the first one (0: 256-byte aligned)
};

// The matrix on the device with layout `l`; every element outside it holds NaN.
template <class T>
struct device_matrix {
  cu::device_buffer<T> buf;
  std::vector<T> staging;
  strided_matrix<T> view;
};
template <class T>
device_matrix<T> upload(const host_matrix<T>& h, layout l) {
  std::int64_t rs = 0, cs = 0;
  if (l.o == order::row) rs = h.cols + l.pad, cs = 1;
  if (l.o == order::col) rs = 1, cs = h.rows + l.pad;
  if (l.o == order::general) rs = 2 * (h.cols + l.pad), cs = 2;
  std::int64_t span = 1;
  if (h.rows > 0 && h.cols > 0) span = (h.rows - 1) * rs + (h.cols - 1) * cs + 1;
  device_matrix<T> d{cu::device_buffer<T>(static_cast<std::size_t>(l.offset + span)),
                     std::vector<T>(static_cast<std::size_t>(l.offset + span),
                                    std::numeric_limits<T>::quiet_NaN()),
                     {}};
  for (std::int64_t i = 0; i < h.rows; ++i)
    for (std::int64_t j = 0; j < h.cols; ++j)
      d.staging[static_cast<std::size_t>(l.offset + i * rs + j * cs)] =
          h.v[static_cast<std::size_t>(i * h.cols + j)];
  cu::copy(d.buf.data(), d.staging.data(), d.buf.bytes(), cu::copy_kind::host_to_device);
  d.view = {d.buf.data() + l.offset, h.rows, h.cols, rs, cs};
  return d;
}

// The reference products P = A·B and absolute sums |A|·|B|, in double.
struct reference {
  std::vector<double> prod, abs_prod;
};
template <class T>
reference reference_product(const host_matrix<T>& a, const host_matrix<T>& b) {
  const std::int64_t M = a.rows, N = b.cols, K = a.cols;
  reference r{std::vector<double>(static_cast<std::size_t>(M * N)),
              std::vector<double>(static_cast<std::size_t>(M * N))};
  std::vector<double> bd(static_cast<std::size_t>(K * N));
  for (std::int64_t l = 0; l < K; ++l)
    for (std::int64_t j = 0; j < N; ++j) bd[static_cast<std::size_t>(l * N + j)] = b.at(l, j);
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t l = 0; l < K; ++l) {
      const double x = a.at(i, l);
      for (std::int64_t j = 0; j < N; ++j) {
        const double p = x * bd[static_cast<std::size_t>(l * N + j)];
        r.prod[static_cast<std::size_t>(i * N + j)] += p;
        r.abs_prod[static_cast<std::size_t>(i * N + j)] += std::abs(p);
      }
    }
  return r;
}

// Downloads C and compares it with alpha·P + beta·C0; storage outside C must still be NaN.
// Returns the number of wrong elements (the first few are reported).
template <class V>
int check_result(const device_matrix<typename V::out>& c, const host_matrix<typename V::out>& c0,
                 const reference& r, std::int64_t K, float alpha, float beta,
                 const std::string& what) {
  using TC = typename V::out;
  std::vector<TC> got(c.staging.size());
  cu::copy(got.data(), c.buf.data(), c.buf.bytes(), cu::copy_kind::device_to_host);
  const std::int64_t M = c0.rows, N = c0.cols;
  const std::int64_t base = c.view.data - c.buf.data();
  std::vector<char> inside(got.size(), 0);
  int bad = 0;
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t j = 0; j < N; ++j) {
      const auto at = static_cast<std::size_t>(base + i * c.view.row_stride + j * c.view.col_stride);
      inside[at] = 1;
      const auto ij = static_cast<std::size_t>(i * N + j);
      const double c_old = beta == 0.0f ? 0.0 : c0.at(i, j);
      const double want = double(alpha) * r.prod[ij] + double(beta) * c_old;
      const double s = std::abs(double(alpha)) * r.abs_prod[ij] + std::abs(double(beta) * c_old);
      const double g = static_cast<double>(static_cast<float>(got[at]));
      if (!(std::abs(g - want) <= V::bound(double(K), s, want)) && bad++ < 4)
        BOOST_ERROR(V::name() << ' ' << what << " at (" << i << ", " << j << "): got " << g
                              << " want " << want << " bound " << V::bound(double(K), s, want));
    }
  int outside = 0;
  for (std::size_t x = 0; x < got.size(); ++x)
    if (!inside[x] && !std::isnan(static_cast<float>(got[x]))) ++outside;
  if (outside) BOOST_ERROR(V::name() << ' ' << what << ": " << outside << " elements outside C written");
  return bad + outside;
}

std::string describe(std::int64_t M, std::int64_t N, std::int64_t K, layout la, layout lb,
                     layout lc, float alpha, float beta) {
  auto o = [](layout l) {
    std::string s = l.o == order::row ? "row" : l.o == order::col ? "col" : "gen";
    if (l.pad) s += "+pad" + std::to_string(l.pad);
    if (l.offset) s += "+off" + std::to_string(l.offset);
    return s;
  };
  std::ostringstream os;
  os << "M=" << M << " N=" << N << " K=" << K << " A " << o(la) << " B " << o(lb) << " C " << o(lc)
     << " alpha=" << alpha << " beta=" << beta;
  return os.str();
}

}  // namespace

// Every size × every order of A, B, C (= every transpose) × packed or padded and misaligned.
BOOST_AUTO_TEST_CASE_TEMPLATE(matches_reference_over_sizes_and_layouts, V, all_variants) {
  using T = typename V::in;
  using TC = typename V::out;
  const std::int64_t sizes[][3] = {{1, 1, 1},    {7, 7, 7},     {33, 33, 33},  {1, 257, 33},
                                   {257, 1, 7},  {33, 7, 257},  {7, 33, 1},    {65, 129, 17},
                                   {64, 64, 64}, {257, 257, 257}};
  lcg g{2024};
  int failures = 0, runs = 0;
  const std::size_t fallbacks_before = lt_handle().fallbacks();
  for (const auto& s : sizes) {
    const std::int64_t M = s[0], N = s[1], K = s[2];
    const auto a = random_matrix<T>(M, K, g);
    const auto b = random_matrix<T>(K, N, g);
    const auto c0 = random_matrix<TC>(M, N, g);
    const reference r = reference_product(a, b);
    for (order oa : {order::row, order::col})
      for (order ob : {order::row, order::col})
        for (order oc : {order::row, order::col})
          for (int padded = 0; padded < 2; ++padded) {
            const layout la{oa, padded ? 3 : 0, padded ? 1 : 0};
            const layout lb{ob, padded ? 5 : 0, padded ? 3 : 0};
            const layout lc{oc, padded ? 2 : 0, padded ? 1 : 0};
            const float alpha = padded ? 0.75f : 1.0f, beta = padded ? -1.5f : 0.0f;
            auto da = upload(a, la);
            auto db = upload(b, lb);
            auto dc = upload(c0, lc);
            V::run(alpha, cview(da.view), cview(db.view), beta, dc.view);
            cu::device_synchronize();
            failures += check_result<V>(dc, c0, r, K, alpha, beta,
                                        describe(M, N, K, la, lb, lc, alpha, beta)) != 0;
            ++runs;
          }
  }
  BOOST_TEST_MESSAGE(V::name() << ": " << runs << " GEMMs, " << failures << " with errors");
  if (!V::is_tiled)
    BOOST_TEST_MESSAGE(V::name() << ": " << lt_handle().fallbacks() - fallbacks_before
                                 << " of them run by the tiled kernel (cuBLASLt had no algorithm)");
  BOOST_TEST(failures == 0);
}

// beta = 0 never reads C (it may hold NaN); K = 0 gives C = beta·C; M or N = 0 does nothing.
BOOST_AUTO_TEST_CASE_TEMPLATE(beta_zero_and_empty_problems, V, all_variants) {
  using T = typename V::in;
  using TC = typename V::out;
  lcg g{7};
  const std::int64_t M = 33, N = 65, K = 17;
  const auto a = random_matrix<T>(M, K, g);
  const auto b = random_matrix<T>(K, N, g);
  host_matrix<TC> nan_c{M, N, std::vector<TC>(M * N, std::numeric_limits<TC>::quiet_NaN())};
  auto da = upload(a, {order::row, 0, 0});
  auto db = upload(b, {order::col, 0, 0});
  auto dc = upload(nan_c, {order::row, 0, 0});
  V::run(2.0f, cview(da.view), cview(db.view), 0.0f, dc.view);
  cu::device_synchronize();
  BOOST_TEST(check_result<V>(dc, nan_c, reference_product(a, b), K, 2.0f, 0.0f, "beta=0, C=NaN") == 0);

  // K = 0.
  const auto c0 = random_matrix<TC>(M, N, g);
  const host_matrix<T> a0{M, 0, {}}, b0{0, N, {}};
  auto dc0 = upload(c0, {order::col, 1, 0});
  const strided_matrix<const T> a0v{da.view.data, M, 0, 1, 1}, b0v{db.view.data, 0, N, 1, 1};
  V::run(1.0f, a0v, b0v, -0.5f, dc0.view);
  cu::device_synchronize();
  BOOST_TEST(check_result<V>(dc0, c0, reference_product(a0, b0), 0, 1.0f, -0.5f, "K=0") == 0);

  // M = 0 and N = 0: no launch, no error, C untouched (null pointers are fine).
  BOOST_CHECK_NO_THROW(V::run(1.0f, strided_matrix<const T>{nullptr, 0, K, K, 1}, cview(db.view), 0.0f,
                              strided_matrix<TC>{nullptr, 0, N, N, 1}));
  BOOST_CHECK_NO_THROW(V::run(1.0f, cview(da.view), strided_matrix<const T>{nullptr, K, 0, 1, 1}, 0.0f,
                              strided_matrix<TC>{nullptr, M, 0, 1, 1}));
  cu::device_synchronize();
}

// The result does not depend on which stream runs it; work is ordered on that stream.
BOOST_AUTO_TEST_CASE_TEMPLATE(runs_on_a_non_default_stream, V, all_variants) {
  using T = typename V::in;
  using TC = typename V::out;
  lcg g{99};
  const std::int64_t M = 130, N = 70, K = 300;
  const auto a = random_matrix<T>(M, K, g);
  const auto b = random_matrix<T>(K, N, g);
  const auto c0 = random_matrix<TC>(M, N, g);
  auto da = upload(a, {order::col, 0, 0});
  auto db = upload(b, {order::row, 0, 0});
  auto dc = upload(c0, {order::row, 0, 0});
  cu::stream s;
  V::run(1.0f, cview(da.view), cview(db.view), 1.0f, dc.view, s);
  s.synchronize();
  BOOST_TEST(check_result<V>(dc, c0, reference_product(a, b), K, 1.0f, 1.0f, "own stream") == 0);
}

BOOST_AUTO_TEST_CASE(tiled_takes_any_strides) {
  using V = variant<tfm::gemm_tiled, tfm::bfloat16, float>;
  lcg g{5};
  const std::int64_t M = 70, N = 45, K = 33;
  const auto a = random_matrix<tfm::bfloat16>(M, K, g);
  const auto b = random_matrix<tfm::bfloat16>(K, N, g);
  const auto c0 = random_matrix<float>(M, N, g);
  auto da = upload(a, {order::general, 1, 0});
  auto db = upload(b, {order::general, 0, 1});
  auto dc = upload(c0, {order::general, 2, 3});
  tfm::detail::gemm_cuda(tfm::gemm_tiled{}, 1.25f, da.view, db.view, 0.5f, dc.view, cu::stream_view{});
  cu::device_synchronize();
  BOOST_TEST(check_result<V>(dc, c0, reference_product(a, b), K, 1.25f, 0.5f, "general strides") == 0);
}

BOOST_AUTO_TEST_CASE(cublaslt_rejects_strides_without_a_unit_stride) {
  lcg g{6};
  const auto a = random_matrix<float>(8, 8, g);
  auto da = upload(a, {order::general, 0, 0});
  auto db = upload(a, {order::row, 0, 0});
  auto dc = upload(a, {order::row, 0, 0});
  try {
    tfm::detail::gemm_cuda(tfm::gemm_cublaslt<>{}, 1.0f, da.view, db.view, 0.0f, dc.view, {},
                           lt_handle(), "my_linear");
    BOOST_FAIL("no shape_error");
  } catch (const tfm::shape_error& e) {
    const std::string msg = e.what();
    BOOST_TEST(msg.find("my_linear") != std::string::npos);
    BOOST_TEST(msg.find("A needs a unit stride") != std::string::npos);
  }
  // Extents that do not agree.
  const strided_matrix<float> c_bad{dc.view.data, 8, 7, 8, 1};
  BOOST_CHECK_THROW(tfm::detail::gemm_cuda(tfm::gemm_cublaslt<>{}, 1.0f, db.view, db.view, 0.0f,
                                           c_bad, {}, lt_handle()),
                    tfm::shape_error);
  BOOST_CHECK_THROW(tfm::detail::gemm_cuda(tfm::gemm_tiled{}, 1.0f, db.view, db.view, 0.0f, c_bad, {}),
                    tfm::shape_error);
}

BOOST_AUTO_TEST_CASE(cublaslt_plans_are_cached_per_problem) {
  lcg g{8};
  const auto a = random_matrix<tfm::bfloat16>(96, 80, g);
  const auto b = random_matrix<tfm::bfloat16>(80, 48, g);
  const auto c0 = random_matrix<tfm::bfloat16>(96, 48, g);
  auto da = upload(a, {order::row, 0, 0});
  auto db = upload(b, {order::row, 0, 0});
  auto dc = upload(c0, {order::row, 0, 0});
  cu::cublaslt_handle h;
  BOOST_TEST(h.cached_plans() == 0u);
  BOOST_TEST(h.workspace_bytes() == cu::cublaslt_handle::default_workspace_bytes);
  for (int i = 0; i < 3; ++i)
    tfm::detail::gemm_cuda(tfm::gemm_cublaslt<>{}, 1.0f, da.view, db.view, 0.0f, dc.view, {}, h);
  BOOST_TEST(h.cached_plans() == 1u);
  // Another leading dimension is another plan.
  auto dc2 = upload(c0, {order::row, 8, 0});
  tfm::detail::gemm_cuda(tfm::gemm_cublaslt<>{}, 1.0f, da.view, db.view, 0.0f, dc2.view, {}, h);
  BOOST_TEST(h.cached_plans() == 2u);
  // Aligned, packed bf16: cuBLASLt must have an algorithm (no fallback to tfm's kernel).
  BOOST_TEST(h.fallbacks() == 0u);
  h.clear_plans();
  BOOST_TEST(h.cached_plans() == 0u);
  cu::device_synchronize();
}
