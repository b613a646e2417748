// The public GEMM over tensors: transposes, views, static and dynamic shapes, shape errors.
// (The kernels themselves are swept against gemm_ref in test_gemm_host.)
#define TFM_TEST_MODULE test_gemm
#include "support/test_main.hpp"

#include <cmath>
#include <string>

#include "tfm/core.hpp"
#include "tfm/ops/gemm.hpp"

using namespace tfm;

namespace {
// C(i, j) = sum_k opA(i, k) opB(k, j) in double, from element accessors.
template <class FA, class FB>
double dot(FA a, FB b, int i, int j, int k) {
  double s = 0;
  for (int p = 0; p < k; ++p) s += double(a(i, p)) * double(b(p, j));
  return s;
}
}  // namespace

BOOST_AUTO_TEST_CASE(all_transposes_through_the_tensor_api) {
  const int M = 37, N = 29, K = 41;
  rng::philox g(3);
  for (trans ta : {trans::n, trans::t})
    for (trans tb : {trans::n, trans::t}) {
      // stored shapes depend on the transposition
      auto a = make_owning_tensor<float>(ta == trans::n ? make_row_major(M, K) : make_row_major(K, M));
      auto b = make_owning_tensor<float>(tb == trans::n ? make_row_major(K, N) : make_row_major(N, K));
      auto c = make_owning_tensor<float>(make_row_major(M, N));
      for (std::int64_t i = 0; i < a.size(); ++i) a.data()[i] = g.next_normal();
      for (std::int64_t i = 0; i < b.size(); ++i) b.data()[i] = g.next_normal();
      for (std::int64_t i = 0; i < c.size(); ++i) c.data()[i] = g.next_normal();
      auto c0 = make_owning_tensor<float>(make_row_major(M, N));
      copy(c.view(), c0.view());
      gemm(0.5f, a.view(), ta, b.view(), tb, 2.0f, c.view());
      auto opa = [&](int i, int k) { return ta == trans::n ? a(i, k) : a(k, i); };
      auto opb = [&](int k, int j) { return tb == trans::n ? b(k, j) : b(j, k); };
      double worst = 0;
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
          const double want = 0.5 * dot(opa, opb, i, j, K) + 2.0 * c0(i, j);
          worst = std::max(worst, std::abs(want - c(i, j)));
        }
      BOOST_TEST(worst < 1e-4, "trans " << int(ta) << int(tb) << " worst " << worst);
    }
}

BOOST_AUTO_TEST_CASE(transposed_views_and_padded_layouts) {
  const int M = 17, N = 9, K = 33;
  auto a = make_owning_tensor<float>(make_padded_row_major(M, K, 40));
  auto bt = make_owning_tensor<float>(make_col_major(N, K));  // B^T stored column-major
  auto c = make_owning_tensor<float>(make_padded_col_major(M, N, 20));
  rng::philox g(5);
  for (int i = 0; i < M; ++i)
    for (int k = 0; k < K; ++k) a(i, k) = g.next_uniform() - 0.5f;
  for (int j = 0; j < N; ++j)
    for (int k = 0; k < K; ++k) bt(j, k) = g.next_uniform() - 0.5f;
  fill(c.view(), std::nanf(""));  // beta = 0 must not read C
  gemm(gemm_ref{}, 1.0f, a.view(), transposed(bt.view()), 0.0f, c.view());
  auto r = make_owning_tensor<float>(make_row_major(M, N));
  gemm(gemm_blocked{}, 1.0f, a.view(), transposed(bt.view()), 0.0f, r.view());
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      const double want = dot([&](int x, int y) { return a(x, y); }, [&](int x, int y) { return bt(y, x); }, i, j, K);
      BOOST_TEST(std::abs(c(i, j) - want) < 1e-5);
      BOOST_TEST(std::abs(r(i, j) - want) < 1e-4);
    }
}

BOOST_AUTO_TEST_CASE(static_shapes) {
  float a[6] = {1, 2, 3, 4, 5, 6};      // (2, 3)
  float b[3] = {1, 1, 1};               // (3, 1)
  float c[2] = {0, 0};                  // (2, 1)
  gemm(1.0f, make_tensor(a, make_row_major(_2, _3)), make_tensor(b, make_row_major(_3, _1)), 0.0f,
       make_tensor(c, make_row_major(_2, _1)));
  BOOST_TEST(c[0] == 6.0f);
  BOOST_TEST(c[1] == 15.0f);
  // make_tensor(b, make_row_major(_4, _1)) in place of B would not compile:
  // "gemm: static extents of the operands do not match".
}

BOOST_AUTO_TEST_CASE(bf16_inputs) {
  const int M = 20, N = 12, K = 70;
  auto a = make_owning_tensor<bfloat16>(make_row_major(M, K));
  auto b = make_owning_tensor<bfloat16>(make_row_major(K, N));
  auto c = make_owning_tensor<float>(make_row_major(M, N));
  rng::philox g(9);
  for (std::int64_t i = 0; i < a.size(); ++i) a.data()[i] = bfloat16(g.next_normal());
  for (std::int64_t i = 0; i < b.size(); ++i) b.data()[i] = bfloat16(g.next_normal());
  gemm(1.0f, a.view(), b.view(), 0.0f, c.view());
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      // products of bf16 values are exact in fp32 accumulation up to the sum's rounding
      const double want = dot([&](int x, int y) { return float(a(x, y)); }, [&](int x, int y) { return float(b(x, y)); },
                              i, j, K);
      BOOST_TEST(std::abs(c(i, j) - want) < 1e-4 * K);
    }
}

BOOST_AUTO_TEST_CASE(f16_inputs) {
  const int M = 20, N = 12, K = 70;
  rng::philox g(10);
  for (trans ta : {trans::n, trans::t})
    for (trans tb : {trans::n, trans::t}) {
      auto a = make_owning_tensor<half>(ta == trans::n ? make_row_major(M, K) : make_row_major(K, M));
      auto b = make_owning_tensor<half>(tb == trans::n ? make_row_major(K, N) : make_row_major(N, K));
      auto c = make_owning_tensor<float>(make_row_major(M, N));
      for (std::int64_t i = 0; i < a.size(); ++i) a.data()[i] = half(g.next_normal());
      for (std::int64_t i = 0; i < b.size(); ++i) b.data()[i] = half(g.next_normal());
      fill(c.view(), 1.0f);
      gemm(1.0f, a.view(), ta, b.view(), tb, -0.5f, c.view());
      auto opa = [&](int i, int k) { return float(ta == trans::n ? a(i, k) : a(k, i)); };
      auto opb = [&](int k, int j) { return float(tb == trans::n ? b(k, j) : b(j, k)); };
      double worst = 0;
      for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
          // products of fp16 values are exact in fp32: only the sum's roundings remain
          const double want = dot(opa, opb, i, j, K) - 0.5;
          worst = std::max(worst, std::abs(want - c(i, j)));
        }
      BOOST_TEST(worst < 1e-4 * K, "trans " << int(ta) << int(tb) << " worst " << worst);
    }
}

BOOST_AUTO_TEST_CASE(shape_errors_name_the_op_and_shapes) {
  auto a = make_owning_tensor<float>(make_row_major(3, 4));
  auto b = make_owning_tensor<float>(make_row_major(5, 6));
  auto c = make_owning_tensor<float>(make_row_major(3, 6));
  try {
    gemm(1.0f, a.view(), b.view(), 0.0f, c.view());
    BOOST_FAIL("no error");
  } catch (const shape_error& e) {
    const std::string w = e.what();
    BOOST_TEST(w.find("gemm") != std::string::npos, w);
    BOOST_TEST(w.find("(3, 4)") != std::string::npos, w);
    BOOST_TEST(w.find("(5, 6)") != std::string::npos, w);
  }
  // the same operands are fine once B is transposed... no: (6, 5) still does not match K = 4
  BOOST_CHECK_THROW(gemm(1.0f, a.view(), trans::n, b.view(), trans::t, 0.0f, c.view()), shape_error);
}
