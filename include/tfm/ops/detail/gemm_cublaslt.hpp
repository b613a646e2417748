// tfm/ops/detail/gemm_cublaslt.hpp — C = alpha·A·B + beta·C on strided device operands through
// cuBLASLt: the math mode → compute type rules, the strided → BLAS mapping (gemm_cuda_layout.hpp)
// turned into a cuBLASLt matmul_key, and the call. Host-only C++ (no kernels), so the key that a
// GEMM would use can be checked on machines without a GPU. gemm_cuda.cuh is the entry point that
// also handles K = 0 and tfm's own kernel.
#pragma once
#include <cublasLt.h>

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "tfm/backend/cuda/cublas.hpp"
#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/backend/cuda/types.hpp"
#include "tfm/core/dtype.hpp"
#include "tfm/core/error.hpp"
#include "tfm/ops/detail/gemm_cuda_layout.hpp"
#include "tfm/ops/detail/gemm_cuda_policy.hpp"
#include "tfm/ops/detail/matrix.hpp"

namespace tfm::detail {

// gemm_math::by_input resolved for input type T (float → fp32, bfloat16 → bf16, half → fp16).
template <class Math, class T>
struct resolve_gemm_math {
  using type = Math;
};
template <>
struct resolve_gemm_math<gemm_math::by_input, float> {
  using type = gemm_math::fp32;
};
template <>
struct resolve_gemm_math<gemm_math::by_input, bfloat16> {
  using type = gemm_math::bf16;
};
template <>
struct resolve_gemm_math<gemm_math::by_input, __nv_bfloat16> {
  using type = gemm_math::bf16;
};
template <>
struct resolve_gemm_math<gemm_math::by_input, half> {
  using type = gemm_math::fp16;
};
template <>
struct resolve_gemm_math<gemm_math::by_input, __half> {
  using type = gemm_math::fp16;
};
template <class Math, class T>
using resolve_gemm_math_t = typename resolve_gemm_math<Math, std::remove_cv_t<T>>::type;

// The cuBLASLt compute type for math mode `Math` with inputs T and output TC. The combinations are
// those of cuBLASLt's table of supported types with fp32 scale (alpha, beta) and fp32
// accumulation: fp32/tf32 take float inputs and a float C; bf16/fp16 take bf16/fp16 inputs and
// a C of the input type or float.
template <class Math, class T, class TC>
constexpr cublasComputeType_t cublaslt_compute_type() {
  using M = resolve_gemm_math_t<Math, T>;
  using N = typename cuda::element_traits<std::remove_cv_t<T>>::native;
  using NC = typename cuda::element_traits<std::remove_cv_t<TC>>::native;
  if constexpr (std::same_as<M, gemm_math::fp32> || std::same_as<M, gemm_math::tf32>) {
    static_assert(std::same_as<N, float> && std::same_as<NC, float>,
                  "gemm_cublaslt: math fp32 and tf32 take float A, B and C");
    return std::same_as<M, gemm_math::tf32> ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  } else if constexpr (std::same_as<M, gemm_math::bf16>) {
    static_assert(std::same_as<N, __nv_bfloat16>, "gemm_cublaslt: math bf16 takes bfloat16 A and B");
    static_assert(std::same_as<NC, __nv_bfloat16> || std::same_as<NC, float>,
                  "gemm_cublaslt: math bf16 writes a bfloat16 or float C");
    return CUBLAS_COMPUTE_32F;
  } else {
    static_assert(std::same_as<M, gemm_math::fp16>);
    static_assert(std::same_as<N, __half>, "gemm_cublaslt: math fp16 takes half A and B");
    static_assert(std::same_as<NC, __half> || std::same_as<NC, float>,
                  "gemm_cublaslt: math fp16 writes a half or float C");
    return CUBLAS_COMPUTE_32F;
  }
}

// A cuBLASLt matmul ready to run: the key (descriptors, algorithm) and the pointers in BLAS order.
struct cublaslt_gemm_call {
  cuda::matmul_key key;
  const void* a;  // first BLAS operand (A, or B when the mapping swapped operands)
  const void* b;  // second BLAS operand
  void* c;
};

// Builds the cuBLASLt call for C = A·B (A M×K, B K×N, C M×N, device pointers). Needs M, N, K > 0
// (gemm_cuda handles empty problems); throws shape_error for strides cuBLASLt cannot take.
template <class Math, class TA, class TB, class TC>
cublaslt_gemm_call make_cublaslt_gemm_call(const strided_matrix<TA>& a, const strided_matrix<TB>& b,
                                           const strided_matrix<TC>& c,
                                           const char* op = "gemm_cublaslt") {
  static_assert(std::same_as<std::remove_cv_t<TA>, std::remove_cv_t<TB>>,
                "gemm_cublaslt: A and B must have the same element type");
  static_assert(!std::is_const_v<TC>, "gemm_cublaslt: C is written");
  const blas_gemm g = to_blas_gemm(a, b, c, op);
  expects<shape_error>(g.m > 0 && g.n > 0 && g.k > 0, op,
                       ": make_cublaslt_gemm_call needs M, N, K > 0 (got ", c.rows, ", ", c.cols,
                       ", ", a.cols, ")");
  const void* first = g.swapped ? static_cast<const void*>(b.data) : static_cast<const void*>(a.data);
  const void* second = g.swapped ? static_cast<const void*>(a.data) : static_cast<const void*>(b.data);
  auto to_op = [](blas_op o) { return o == blas_op::n ? CUBLAS_OP_N : CUBLAS_OP_T; };
  cuda::matmul_key key{};
  key.ab_type = cuda::data_type_of<TA>;
  key.c_type = cuda::data_type_of<TC>;
  key.compute = cublaslt_compute_type<Math, TA, TC>();
  key.transa = to_op(g.a.op);
  key.transb = to_op(g.b.op);
  key.m = g.m;
  key.n = g.n;
  key.k = g.k;
  key.lda = g.a.ld;
  key.ldb = g.b.ld;
  key.ldc = g.ldc;
  key.align_a = cuda::pointer_alignment(first);
  key.align_b = cuda::pointer_alignment(second);
  key.align_c = cuda::pointer_alignment(c.data);
  return {key, first, second, static_cast<void*>(c.data)};
}

// As make_cublaslt_gemm_call, with cuBLASLt's bias epilogue: C = alpha·A·B + beta·C + bias, bias
// a vector of C.cols elements (one per column of C, i.e. per output feature of a row-major C),
// added before C's one rounding. Needs a row-major C (the BLAS form computes Cᵀ, whose rows
// are C's columns); `ok` is false otherwise.
struct cublaslt_bias_call {
  bool ok;
  cublaslt_gemm_call call;
};
template <class Math, class TA, class TB, class TC, class TBias>
cublaslt_bias_call make_cublaslt_bias_gemm_call(const strided_matrix<TA>& a, const strided_matrix<TB>& b,
                                                const strided_matrix<TC>& c, const TBias* bias,
                                                const char* op = "gemm_cublaslt") {
  cublaslt_bias_call r{false, make_cublaslt_gemm_call<Math>(a, b, c, op)};
  if (r.call.key.m != c.cols || r.call.key.n != c.rows || !to_blas_gemm(a, b, c, op).swapped) return r;
  r.call.key.epilogue = CUBLASLT_EPILOGUE_BIAS;
  r.call.key.bias_type = cuda::data_type_of<TBias>;
  r.call.key.align_bias = cuda::pointer_alignment(bias);
  r.ok = true;
  return r;
}

// C = alpha·A·B + beta·C + bias through cuBLASLt (bias: C.cols elements, see
// make_cublaslt_bias_gemm_call). Returns false, doing nothing, when the mapping or cuBLASLt
// cannot do it (C not row-major, no algorithm, or the algorithm refused).
template <class Math, class TA, class TB, class TC, class TBias>
[[nodiscard]] bool try_cublaslt_gemm_bias(cuda::cublaslt_handle& handle, float alpha, const strided_matrix<TA>& a,
                                          const strided_matrix<TB>& b, float beta, const strided_matrix<TC>& c,
                                          const TBias* bias, cuda::stream_view s, const char* op = "gemm_cublaslt") {
  const cublaslt_bias_call r = make_cublaslt_bias_gemm_call<Math>(a, b, c, bias, op);
  if (!r.ok) return false;
  return handle.try_matmul(r.call.key, alpha, r.call.a, r.call.b, beta, r.call.c, s, bias);
}

// C = alpha·A·B + beta·C through cuBLASLt on stream `s` (asynchronous). M, N, K > 0. Returns
// false, doing nothing, when cuBLASLt has no algorithm for the problem (an unusual alignment).
template <class Math, class TA, class TB, class TC>
[[nodiscard]] bool try_cublaslt_gemm(cuda::cublaslt_handle& handle, float alpha,
                                     const strided_matrix<TA>& a, const strided_matrix<TB>& b,
                                     float beta, const strided_matrix<TC>& c, cuda::stream_view s,
                                     const char* op = "gemm_cublaslt") {
  const cublaslt_gemm_call call = make_cublaslt_gemm_call<Math>(a, b, c, op);
  return handle.try_matmul(call.key, alpha, call.a, call.b, beta, call.c, s);
}

// As try_cublaslt_gemm, but throws cuda_error when cuBLASLt has no algorithm.
template <class Math, class TA, class TB, class TC>
void cublaslt_gemm(cuda::cublaslt_handle& handle, float alpha, const strided_matrix<TA>& a,
                   const strided_matrix<TB>& b, float beta, const strided_matrix<TC>& c,
                   cuda::stream_view s, const char* op = "gemm_cublaslt") {
  const cublaslt_gemm_call call = make_cublaslt_gemm_call<Math>(a, b, c, op);
  handle.matmul(call.key, alpha, call.a, call.b, beta, call.c, s);
}

}  // namespace tfm::detail
