// The public GEMM on cuda tensors agrees with the host GEMM on the same data.
#define TFM_TEST_NEEDS_CUDA
#define TFM_TEST_MODULE test_gemm_tensor_cuda
#include "support/test_main.hpp"

#include <cmath>

#include "tfm/tfm.hpp"

using namespace tfm;

namespace {
template <class T>
void check_against_host(trans ta, trans tb, int M, int N, int K, double tol) {
  auto la = ta == trans::n ? make_row_major(M, K) : make_row_major(K, M);
  auto lb = tb == trans::n ? make_row_major(K, N) : make_row_major(N, K);
  auto a = make_owning_tensor<T>(la);
  auto b = make_owning_tensor<T>(lb);
  auto c = make_owning_tensor<float>(make_row_major(M, N));
  rng::philox g(M * 131 + N * 7 + K);
  for (std::int64_t i = 0; i < a.size(); ++i) a.data()[i] = T(g.next_normal());
  for (std::int64_t i = 0; i < b.size(); ++i) b.data()[i] = T(g.next_normal());
  for (std::int64_t i = 0; i < c.size(); ++i) c.data()[i] = g.next_normal();

  auto da = make_owning_tensor<T, space::cuda>(la);
  auto db = make_owning_tensor<T, space::cuda>(lb);
  auto dc = make_owning_tensor<float, space::cuda>(make_row_major(M, N));
  auto dc2 = make_owning_tensor<float, space::cuda>(make_row_major(M, N));
  copy(a.view(), da.view());
  copy(b.view(), db.view());
  copy(c.view(), dc.view());
  copy(c.view(), dc2.view());

  cuda::stream s;
  cuda::cublaslt_handle lt;
  gemm(gemm_cublaslt<>{}, 1.5f, da.view(), ta, db.view(), tb, -0.5f, dc.view(), s, lt);
  gemm(gemm_tiled{}, 1.5f, da.view(), ta, db.view(), tb, -0.5f, dc2.view(), s);
  s.synchronize();

  gemm(gemm_ref{}, 1.5f, a.view(), ta, b.view(), tb, -0.5f, c.view());
  auto r1 = make_owning_tensor<float>(make_row_major(M, N));
  auto r2 = make_owning_tensor<float>(make_row_major(M, N));
  copy(dc.view(), r1.view());
  copy(dc2.view(), r2.view());
  double w1 = 0, w2 = 0;
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < N; ++j) {
      const double scale = std::sqrt(double(K)) + 1;
      w1 = std::max(w1, std::abs(r1(i, j) - c(i, j)) / scale);
      w2 = std::max(w2, std::abs(r2(i, j) - c(i, j)) / scale);
    }
  BOOST_TEST(w1 < tol, "cublaslt " << M << "x" << N << "x" << K << " worst " << w1);
  BOOST_TEST(w2 < tol, "tiled " << M << "x" << N << "x" << K << " worst " << w2);
}
}  // namespace

BOOST_AUTO_TEST_CASE(fp32_matches_host) {
  for (trans ta : {trans::n, trans::t})
    for (trans tb : {trans::n, trans::t}) {
      check_against_host<float>(ta, tb, 257, 33, 129, 1e-5);
      check_against_host<float>(ta, tb, 1, 7, 1, 1e-5);
    }
}

BOOST_AUTO_TEST_CASE(bf16_matches_host) {
  for (trans ta : {trans::n, trans::t})
    for (trans tb : {trans::n, trans::t}) check_against_host<bfloat16>(ta, tb, 96, 160, 256, 1e-5);
}
