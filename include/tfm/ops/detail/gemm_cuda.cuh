// tfm/ops/detail/gemm_cuda.cuh — C = alpha·A·B + beta·C on device operands given as
// strided_matrix (transposes already folded into strides), dispatched on a policy:
//   gemm_cublaslt<Math>  cuBLASLt (gemm_cublaslt.hpp), plans cached in the cublaslt_handle;
//   gemm_tiled_policy<…> tfm's shared-memory tiled kernel (gemm_cuda_tiled.hpp), any strides.
// Inputs float, bfloat16 or half; C float or the input type; fp32 accumulation everywhere.
// Layers: gemm_cuda (dispatch) → gemm_tiled_kernel (thin __global__) → gemm_tiled_block (block
// loop; takes thread and tile indices) → tiled::load_slice / multiply_slice / store_tile.
// All calls are asynchronous on the given stream.
#pragma once
#include <cuda_runtime.h>

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "tfm/backend/cuda/cublas.hpp"
#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/backend/cuda/types.hpp"
#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"
#include "tfm/ops/detail/gemm_cublaslt.hpp"
#include "tfm/ops/detail/gemm_cuda_layout.hpp"
#include "tfm/ops/detail/gemm_cuda_policy.hpp"
#include "tfm/ops/detail/gemm_cuda_tiled.hpp"
#include "tfm/ops/detail/matrix.hpp"

namespace tfm::detail {

// One block's BlockM×BlockN tile of C at (m0, n0), computed by thread `thread` together with the
// other P::threads threads of the block (which must all call it: it holds barriers).
template <class P, class T, class TC>
TFM_DEVICE void gemm_tiled_block(tiled::shared_slice<P>& s, float alpha,
                                 const strided_matrix<const T>& a, const strided_matrix<const T>& b,
                                 float beta, const strided_matrix<TC>& c, int thread,
                                 std::int64_t m0, std::int64_t n0) {
  tiled::accumulator<P> acc{};
  for (std::int64_t k0 = 0; k0 < a.cols; k0 += P::block_k) {
    tiled::load_slice<P>(s, a, b, thread, m0, n0, k0);
    __syncthreads();
    tiled::multiply_slice<P>(s, thread, acc);
    __syncthreads();  // the next slice overwrites s
  }
  tiled::store_tile<P>(c, thread, m0, n0, acc, alpha, beta);
}

// Grid: x over N tiles, y over M tiles; P::threads threads per block.
template <class P, class T, class TC>
__global__ void __launch_bounds__(P::threads)
    gemm_tiled_kernel(float alpha, strided_matrix<const T> a, strided_matrix<const T> b, float beta,
                      strided_matrix<TC> c) {
  __shared__ tiled::shared_slice<P> s;
  gemm_tiled_block<P>(s, alpha, a, b, beta, c, static_cast<int>(threadIdx.x),
                      static_cast<std::int64_t>(blockIdx.y) * P::block_m,
                      static_cast<std::int64_t>(blockIdx.x) * P::block_n);
}

// Launches the tiled kernel on CUDA element types (float, __nv_bfloat16, __half).
template <class P, class T, class TC>
void gemm_tiled_launch(float alpha, strided_matrix<const T> a, strided_matrix<const T> b,
                       float beta, strided_matrix<TC> c, cuda::stream_view s) {
  const std::int64_t tiles_m = (c.rows + P::block_m - 1) / P::block_m;
  const std::int64_t tiles_n = (c.cols + P::block_n - 1) / P::block_n;
  if (tiles_m == 0 || tiles_n == 0) return;
  if (tiles_m > 65535 || tiles_n > 0x7fffffff)
    throw_gemm_shape_error("gemm_tiled", "too many tiles for one grid (M/block_m must be <= 65535)",
                           extent_of(a), extent_of(b), extent_of(c));
  const dim3 grid(static_cast<unsigned>(tiles_n), static_cast<unsigned>(tiles_m));
  gemm_tiled_kernel<P, T, TC><<<grid, P::threads, 0, s.get()>>>(alpha, a, b, beta, c);
  TFM_CUDA_CHECK(cudaGetLastError());
}

template <class T>
strided_matrix<cuda::native_t<T>> to_native(const strided_matrix<T>& m) {
  return {cuda::to_native(m.data), m.rows, m.cols, m.row_stride, m.col_stride};
}

// C = alpha·A·B + beta·C with A M×K, B K×N, C M×N (device memory), asynchronous on `s`.
//  - Policy: gemm_cublaslt<Math> (uses `lt`: its workspace and plan cache) or gemm_tiled_policy
//    (ignores `lt`; see the overload without a handle).
//  - TA, TB: the same element type, const or not (float, bfloat16, half); TC: float or TA's type
//    (float only for gemm_math::fp32/tf32).
//  - Strides: gemm_tiled takes any; cuBLASLt needs a unit stride in every operand and leading
//    dimensions that do not overlap, else shape_error naming `op` and the operands.
//  - beta == 0: C is not read (may hold NaN). K == 0: C = beta·C (by tfm's kernel). M or N == 0:
//    nothing happens.
//  - When cuBLASLt has no algorithm for the problem, tfm's tiled kernel runs instead (correct,
//    slower; the tf32 mode then computes in full fp32) and lt.fallbacks() counts it.
template <gemm_cuda_policy Policy, class TA, class TB, class TC>
void gemm_cuda(Policy, float alpha, const strided_matrix<TA>& a, const strided_matrix<TB>& b,
               float beta, const strided_matrix<TC>& c, cuda::stream_view s,
               cuda::cublaslt_handle& lt, const char* op = "gemm_cuda") {
  static_assert(std::same_as<std::remove_cv_t<TA>, std::remove_cv_t<TB>>,
                "gemm_cuda: A and B must have the same element type");
  static_assert(cuda::cuda_element<TA> && cuda::cuda_element<TC>,
                "gemm_cuda: element types are float, bfloat16 and half");
  static_assert(!std::is_const_v<TC>, "gemm_cuda: C is written");
  using T = std::remove_cv_t<TA>;
  const strided_matrix<const T> ca{a.data, a.rows, a.cols, a.row_stride, a.col_stride};
  const strided_matrix<const T> cb{b.data, b.rows, b.cols, b.row_stride, b.col_stride};
  check_gemm_extents(extent_of(ca), extent_of(cb), extent_of(c), op);
  if (c.rows == 0 || c.cols == 0) return;

  if constexpr (is_gemm_cublaslt<Policy>::value) {
    (void)cublaslt_compute_type<typename Policy::math, T, TC>();  // type rules, at compile time
    if (a.cols > 0) {
      if (try_cublaslt_gemm<typename Policy::math>(lt, alpha, ca, cb, beta, c, s, op)) return;
      // cuBLASLt has no algorithm for this problem (possible for unusual alignments): tfm's
      // kernel computes the same thing, in fp32, and the handle counts it (lt.fallbacks()).
      lt.count_fallback();
    }
    // K == 0 (C = beta·C; cuBLASLt does not document k = 0) or the fallback above.
    gemm_tiled_launch<gemm_tiled>(alpha, to_native(ca), to_native(cb), beta, to_native(c), s);
  } else {
    (void)lt;
    gemm_tiled_launch<Policy>(alpha, to_native(ca), to_native(cb), beta, to_native(c), s);
  }
}

// The tiled kernel needs no cuBLASLt handle.
template <int BM, int BN, int BK, int TM, int TN, class TA, class TB, class TC>
void gemm_cuda(gemm_tiled_policy<BM, BN, BK, TM, TN>, float alpha, const strided_matrix<TA>& a,
               const strided_matrix<TB>& b, float beta, const strided_matrix<TC>& c,
               cuda::stream_view s, const char* op = "gemm_cuda") {
  static_assert(std::same_as<std::remove_cv_t<TA>, std::remove_cv_t<TB>>,
                "gemm_cuda: A and B must have the same element type");
  static_assert(cuda::cuda_element<TA> && cuda::cuda_element<TC>,
                "gemm_cuda: element types are float, bfloat16 and half");
  static_assert(!std::is_const_v<TC>, "gemm_cuda: C is written");
  using T = std::remove_cv_t<TA>;
  const strided_matrix<const T> ca{a.data, a.rows, a.cols, a.row_stride, a.col_stride};
  const strided_matrix<const T> cb{b.data, b.rows, b.cols, b.row_stride, b.col_stride};
  check_gemm_extents(extent_of(ca), extent_of(cb), extent_of(c), op);
  gemm_tiled_launch<gemm_tiled_policy<BM, BN, BK, TM, TN>>(alpha, to_native(ca), to_native(cb),
                                                           beta, to_native(c), s);
}

}  // namespace tfm::detail
