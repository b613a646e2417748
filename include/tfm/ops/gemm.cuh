// tfm/ops/gemm.cuh — the public GEMM for `cuda` tensors (nvcc only): the same call as the host
// one in gemm.hpp, plus the stream it runs on and, for cuBLASLt, the handle (workspace and plan
// cache). Asynchronous on `stream`.
#pragma once
#include "tfm/backend/cuda/cublas.hpp"
#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/ops/detail/gemm_cuda.cuh"
#include "tfm/ops/gemm.hpp"

namespace tfm {

// cuBLASLt: C = alpha·op(A)·op(B) + beta·C; A, B float/bfloat16/half; C float or A's type.
template <class Math, class TA, layout_type LA, class TB, layout_type LB, class TC, layout_type LC>
void gemm(gemm_cublaslt<Math> policy, float alpha, tensor<TA, LA, space::cuda> const& a, trans ta,
          tensor<TB, LB, space::cuda> const& b, trans tb, float beta, tensor<TC, LC, space::cuda> const& c,
          cuda::stream_view stream, cuda::cublaslt_handle& lt) {
  const auto ma = detail::as_matrix(a, ta);
  const auto mb = detail::as_matrix(b, tb);
  const auto mc = detail::as_matrix(c, trans::n);
  detail::check_gemm_shapes("gemm", ma, mb, mc);
  detail::gemm_cuda(policy, alpha, ma, mb, beta, mc, stream, lt, "gemm");
}

// tfm's tiled kernel (needs no handle).
template <int BM, int BN, int BK, int TM, int TN, class TA, layout_type LA, class TB, layout_type LB, class TC,
          layout_type LC>
void gemm(gemm_tiled_policy<BM, BN, BK, TM, TN> policy, float alpha, tensor<TA, LA, space::cuda> const& a,
          trans ta, tensor<TB, LB, space::cuda> const& b, trans tb, float beta,
          tensor<TC, LC, space::cuda> const& c, cuda::stream_view stream) {
  const auto ma = detail::as_matrix(a, ta);
  const auto mb = detail::as_matrix(b, tb);
  const auto mc = detail::as_matrix(c, trans::n);
  detail::check_gemm_shapes("gemm", ma, mb, mc);
  detail::gemm_cuda(policy, alpha, ma, mb, beta, mc, stream, "gemm");
}

}  // namespace tfm
