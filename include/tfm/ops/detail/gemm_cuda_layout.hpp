// tfm/ops/detail/gemm_cuda_layout.hpp — maps C = A·B on strided operands to the column-major
// BLAS form (transa, transb, m, n, k, lda, ldb, ldc) that cuBLAS(Lt) takes. Plain C++ with no
// CUDA includes, so the mapping is unit-tested on machines without a GPU.
//
// BLAS is column-major: a stored r×c matrix with leading dimension ld has (i, j) at i + j·ld,
// which is strided_matrix{rows r, cols c, row_stride 1, col_stride ld}. A strided operand with
// col_stride 1 is instead the transpose of a column-major c×r matrix with ld = row_stride, so it
// enters BLAS with op = T. C has no op in BLAS: when C is row-major (col_stride 1) we compute
// Cᵀ = Bᵀ·Aᵀ instead, i.e. swap the operands and transpose all three views. We never use
// cuBLASLt's CUBLASLT_ORDER_ROW: plain column-major layouts with transposes reach every
// algorithm, while row order is not supported by all of them.
#pragma once
#include <cstdint>
#include <limits>
#include <string>

#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"
#include "tfm/ops/detail/matrix.hpp"

namespace tfm::detail {

enum class blas_op : std::uint8_t { n, t };

// One operand as BLAS sees it: op(stored) is the logical matrix; `rows`×`cols` is the *stored*
// column-major matrix (before op) and `ld` its leading dimension (>= max(1, rows)).
struct blas_operand {
  blas_op op;
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t ld;
  friend constexpr bool operator==(const blas_operand&, const blas_operand&) = default;
};

// C(m×n, column-major, ldc) = alpha·op(a)(m×k)·op(b)(k×n) + beta·C.
struct blas_gemm {
  std::int64_t m, n, k;
  blas_operand a;  // first BLAS operand: A, or Bᵀ when `swapped`
  blas_operand b;  // second BLAS operand: B, or Aᵀ when `swapped`
  std::int64_t ldc;
  bool swapped;  // true: C was row-major; BLAS computes Cᵀ = Bᵀ·Aᵀ, pass B's pointer first
  friend constexpr bool operator==(const blas_gemm&, const blas_gemm&) = default;
};

// The extents and strides of an operand, without its pointer.
struct matrix_extent {
  std::int64_t rows, cols, row_stride, col_stride;
  constexpr matrix_extent transposed() const { return {cols, rows, col_stride, row_stride}; }
};

template <class T>
constexpr matrix_extent extent_of(const strided_matrix<T>& m) {
  return {m.rows, m.cols, m.row_stride, m.col_stride};
}

// A stride along an extent of 1 never moves: replace it by the value that makes the matrix a
// packed vector, so that a 1×K row with any row_stride still maps to a valid BLAS layout.
constexpr matrix_extent canonical_strides(matrix_extent x) {
  if (x.rows == 1 && x.cols == 1) return {1, 1, 1, 1};
  if (x.rows == 1) x.row_stride = x.col_stride == 1 ? x.cols : 1;
  if (x.cols == 1) x.col_stride = x.row_stride == 1 ? x.rows : 1;
  return x;
}

// The BLAS view of a logical operand x (strides already canonical); nullopt-like `ok=false` when
// neither stride is 1 or the other stride overlaps rows/columns (BLAS needs ld >= max(1, rows)).
struct blas_operand_result {
  bool ok;
  blas_operand operand;
};
constexpr blas_operand_result to_blas_operand(const matrix_extent& x) {
  auto at_least_one = [](std::int64_t v) { return v < 1 ? std::int64_t{1} : v; };
  if (x.row_stride == 1 && x.col_stride >= at_least_one(x.rows))
    return {true, {blas_op::n, x.rows, x.cols, x.col_stride}};
  if (x.col_stride == 1 && x.row_stride >= at_least_one(x.cols))
    return {true, {blas_op::t, x.cols, x.rows, x.row_stride}};
  return {false, {}};
}

inline std::string describe(const char* name, const matrix_extent& x) {
  return concat(name, ' ', x.rows, 'x', x.cols, " strides (", x.row_stride, ", ", x.col_stride, ')');
}

[[noreturn]] inline void throw_gemm_shape_error(const char* op, const char* why,
                                               const matrix_extent& a, const matrix_extent& b,
                                               const matrix_extent& c) {
  throw shape_error(concat(op, ": ", why, "; ", describe("A", a), ", ", describe("B", b), ", ",
                           describe("C", c)));
}

// Throws shape_error naming `op` and the operands unless A is M×K, B K×N and C M×N (M, N, K >= 0).
inline void check_gemm_extents(const matrix_extent& a, const matrix_extent& b,
                               const matrix_extent& c, const char* op = "gemm") {
  if (a.rows != c.rows || b.cols != c.cols || a.cols != b.rows)
    throw_gemm_shape_error(op, "expected A M×K, B K×N and C M×N", a, b, c);
  if (a.rows < 0 || a.cols < 0 || b.cols < 0) throw_gemm_shape_error(op, "negative extent", a, b, c);
}

// Maps C = A·B (A M×K, B K×N, C M×N) to the column-major BLAS form. Throws shape_error naming
// `op` and every operand when the extents disagree, when an operand has no unit stride (BLAS needs
// one), when a leading dimension overlaps, or when M, N or K exceeds int32 (cuBLASLt's limit).
// Callers skip the library call when M, N or K is 0.
inline blas_gemm to_blas_gemm(matrix_extent a, matrix_extent b, matrix_extent c,
                              const char* op = "gemm") {
  auto fail = [&](const char* why) { throw_gemm_shape_error(op, why, a, b, c); };
  check_gemm_extents(a, b, c, op);
  constexpr std::int64_t int_max = std::numeric_limits<std::int32_t>::max();
  if (a.rows > int_max || a.cols > int_max || b.cols > int_max)
    fail("M, N and K must fit in int32 for cuBLASLt");

  matrix_extent ca = canonical_strides(a), cb = canonical_strides(b), cc = canonical_strides(c);
  const bool c_col_major = cc.row_stride == 1 && cc.col_stride >= (cc.rows < 1 ? 1 : cc.rows);
  const bool c_row_major = cc.col_stride == 1 && cc.row_stride >= (cc.cols < 1 ? 1 : cc.cols);
  if (!c_col_major && !c_row_major)
    fail("C needs a unit stride and a non-overlapping leading dimension for cuBLASLt");

  blas_gemm g{};
  g.swapped = !c_col_major;
  if (g.swapped) {  // Cᵀ (N×M, column-major) = Bᵀ (N×K) · Aᵀ (K×M)
    const matrix_extent first = cb.transposed(), second = ca.transposed();
    ca = first;
    cb = second;
    cc = cc.transposed();
  }
  g.m = cc.rows;
  g.n = cc.cols;
  g.k = ca.cols;
  g.ldc = cc.col_stride;
  const auto ra = to_blas_operand(ca), rb = to_blas_operand(cb);
  if (!ra.ok)
    fail(g.swapped ? "B needs a unit stride and a non-overlapping leading dimension for cuBLASLt"
                   : "A needs a unit stride and a non-overlapping leading dimension for cuBLASLt");
  if (!rb.ok)
    fail(g.swapped ? "A needs a unit stride and a non-overlapping leading dimension for cuBLASLt"
                   : "B needs a unit stride and a non-overlapping leading dimension for cuBLASLt");
  g.a = ra.operand;
  g.b = rb.operand;
  return g;
}

template <class TA, class TB, class TC>
blas_gemm to_blas_gemm(const strided_matrix<TA>& a, const strided_matrix<TB>& b,
                       const strided_matrix<TC>& c, const char* op = "gemm") {
  return to_blas_gemm(extent_of(a), extent_of(b), extent_of(c), op);
}

}  // namespace tfm::detail
