// tfm/ops/detail/matrix.hpp — the raw operand that GEMM kernels see: a pointer, a 2-D extent
// and two element strides. Transposition is folded into the strides before a kernel runs, so
// kernels only ever compute C = alpha·A·B + beta·C with A (M×K), B (K×N), C (M×N).
#pragma once
#include <cstdint>
#include <utility>

#include "tfm/core/config.hpp"

namespace tfm::detail {

template <class T>
struct strided_matrix {
  T* data;
  std::int64_t rows;
  std::int64_t cols;
  std::int64_t row_stride;  // elements between (i, j) and (i + 1, j)
  std::int64_t col_stride;  // elements between (i, j) and (i, j + 1)

  TFM_HOST_DEVICE T& operator()(std::int64_t i, std::int64_t j) const {
    return data[i * row_stride + j * col_stride];
  }
  // The same memory seen as the transposed matrix.
  TFM_HOST_DEVICE strided_matrix transposed() const {
    return {data, cols, rows, col_stride, row_stride};
  }
  TFM_HOST_DEVICE bool row_major() const { return col_stride == 1; }
  TFM_HOST_DEVICE bool col_major() const { return row_stride == 1; }
};

}  // namespace tfm::detail
