// tfm/ops/detail/gemm_cuda_tiled.hpp — the per-thread pieces of tfm's shared-memory tiled GEMM
// (policy gemm_tiled_policy): stage a K-slice of A and B into shared memory, multiply the slice
// into a thread's register tile, write the tile to C. Each takes the thread's index and the
// block's tile origin as arguments and never reads threadIdx/blockIdx, so the host tests run the
// same code for every thread of a block in turn (phases between barriers) and check the index
// maths without a GPU. The block loop and the __global__ live in gemm_cuda.cuh.
//
// Element types are CUDA's (float, __nv_bfloat16, __half; tfm's bit-compatible types are
// reinterpreted by the caller), converted to fp32 on load; accumulation is fp32.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "tfm/core/config.hpp"
#include "tfm/ops/detail/gemm_cuda_policy.hpp"
#include "tfm/ops/detail/matrix.hpp"

namespace tfm::detail::tiled {

TFM_HOST_DEVICE float widen(float x) { return x; }
TFM_HOST_DEVICE float widen(__nv_bfloat16 x) { return __bfloat162float(x); }
TFM_HOST_DEVICE float widen(__half x) { return __half2float(x); }

template <class T>
struct narrow_to;
template <>
struct narrow_to<float> {
  TFM_HOST_DEVICE static float from(float x) { return x; }
};
template <>
struct narrow_to<__nv_bfloat16> {
  TFM_HOST_DEVICE static __nv_bfloat16 from(float x) { return __float2bfloat16_rn(x); }
};
template <>
struct narrow_to<__half> {
  TFM_HOST_DEVICE static __half from(float x) { return __float2half_rn(x); }
};

// One K-slice of the block's operands in shared memory, as fp32:
//   a[kk][i] = A(m0 + i, k0 + kk)   (block_k × block_m, k-major so a thread's rows are adjacent)
//   b[kk][j] = B(k0 + kk, n0 + j)   (block_k × block_n)
// Entries outside A or B hold 0, so edge tiles need no other care in the multiply.
template <class P>
struct shared_slice {
  float a[P::block_k][P::block_m + P::smem_pad];
  float b[P::block_k][P::block_n + P::smem_pad];
};

// A thread's register tile: acc[r][c] is C(m0 + row_of(thread, r), n0 + col_of(thread, c)).
template <class P>
struct accumulator {
  float v[P::thread_m][P::thread_n];
};

// The rows/columns of a thread's register tile inside the block tile: spread with stride
// threads_m / threads_n, so neighbouring threads read neighbouring shared-memory words and write
// neighbouring columns of C.
template <class P>
TFM_HOST_DEVICE int row_of(int thread, int r) {
  return thread / P::threads_n + r * P::threads_m;
}
template <class P>
TFM_HOST_DEVICE int col_of(int thread, int c) {
  return thread % P::threads_n + c * P::threads_n;
}

// Thread `thread` (0 <= thread < P::threads) stages its share of the slice at (m0, n0, k0).
// Consecutive threads walk along the operand's unit-stride direction when it has one (so a warp's
// global reads are contiguous), along M / N otherwise; any strides work.
template <class P, class T>
TFM_HOST_DEVICE void load_slice(shared_slice<P>& s, const strided_matrix<const T>& a,
                                const strided_matrix<const T>& b, int thread, std::int64_t m0,
                                std::int64_t n0, std::int64_t k0) {
  constexpr int a_loads = P::block_m * P::block_k / P::threads;
  constexpr int b_loads = P::block_k * P::block_n / P::threads;
  const bool a_k_contiguous = a.col_stride == 1 && a.row_stride != 1;  // row-major A
  TFM_UNROLL
  for (int l = 0; l < a_loads; ++l) {
    const int e = thread + l * P::threads;
    const int i = a_k_contiguous ? e / P::block_k : e % P::block_m;
    const int kk = a_k_contiguous ? e % P::block_k : e / P::block_m;
    const std::int64_t gi = m0 + i, gk = k0 + kk;
    s.a[kk][i] = (gi < a.rows && gk < a.cols) ? widen(a(gi, gk)) : 0.0f;
  }
  const bool b_k_contiguous = b.row_stride == 1 && b.col_stride != 1;  // column-major B
  TFM_UNROLL
  for (int l = 0; l < b_loads; ++l) {
    const int e = thread + l * P::threads;
    const int j = b_k_contiguous ? e / P::block_k : e % P::block_n;
    const int kk = b_k_contiguous ? e % P::block_k : e / P::block_n;
    const std::int64_t gk = k0 + kk, gj = n0 + j;
    s.b[kk][j] = (gk < b.rows && gj < b.cols) ? widen(b(gk, gj)) : 0.0f;
  }
}

// acc += (the thread's rows of the A slice) · (its columns of the B slice), in fp32.
template <class P>
TFM_HOST_DEVICE void multiply_slice(const shared_slice<P>& s, int thread, accumulator<P>& acc) {
  TFM_UNROLL
  for (int kk = 0; kk < P::block_k; ++kk) {
    float av[P::thread_m], bv[P::thread_n];
    TFM_UNROLL
    for (int r = 0; r < P::thread_m; ++r) av[r] = s.a[kk][row_of<P>(thread, r)];
    TFM_UNROLL
    for (int c = 0; c < P::thread_n; ++c) bv[c] = s.b[kk][col_of<P>(thread, c)];
    TFM_UNROLL
    for (int r = 0; r < P::thread_m; ++r) {
      TFM_UNROLL
      for (int c = 0; c < P::thread_n; ++c) acc.v[r][c] += av[r] * bv[c];
    }
  }
}

// C = alpha·acc + beta·C for the thread's elements inside C. With beta == 0, C is not read
// (BLAS convention: it may hold NaN or garbage).
template <class P, class TC>
TFM_HOST_DEVICE void store_tile(const strided_matrix<TC>& c, int thread, std::int64_t m0,
                                std::int64_t n0, const accumulator<P>& acc, float alpha,
                                float beta) {
  TFM_UNROLL
  for (int r = 0; r < P::thread_m; ++r) {
    const std::int64_t gi = m0 + row_of<P>(thread, r);
    if (gi >= c.rows) continue;
    TFM_UNROLL
    for (int q = 0; q < P::thread_n; ++q) {
      const std::int64_t gj = n0 + col_of<P>(thread, q);
      if (gj >= c.cols) continue;
      TC& out = c(gi, gj);
      float v = alpha * acc.v[r][q];
      if (beta != 0.0f) v += beta * widen(out);
      out = narrow_to<TC>::from(v);
    }
  }
}

}  // namespace tfm::detail::tiled
