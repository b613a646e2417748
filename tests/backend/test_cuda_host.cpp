// Host-side tests of the CUDA backend (label unit: they run without a GPU):
//  - why_no_device() answers without throwing, with a reason when no device is usable;
//  - the strided → column-major BLAS mapping behind every cuBLASLt GEMM, checked against a
//    host "BLAS" that runs the mapped problem;
//  - the cuBLASLt matmul key (types, compute type, operand order, alignment) built from operands;
//  - the tiled kernel's per-thread routines, run for every thread of a block in turn;
//  - with a device present (on the GPU machine), the runtime wrappers: memory, copies, streams,
//    events, out_of_memory.
#define TFM_TEST_MODULE test_cuda_host
#include "support/test_main.hpp"

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "tfm/backend/cuda/cublas.hpp"
#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/ops/detail/gemm_cublaslt.hpp"
#include "tfm/ops/detail/gemm_cuda_layout.hpp"
#include "tfm/ops/detail/gemm_cuda_tiled.hpp"

namespace {

using tfm::detail::blas_gemm;
using tfm::detail::blas_op;
using tfm::detail::matrix_extent;
using tfm::detail::strided_matrix;

// Deterministic values in [-1, 1].
struct lcg {
  std::uint64_t s;
  float next() {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<std::int64_t>(s >> 40) - (1 << 23)) / float(1 << 23);
  }
};

// A logical rows×cols matrix stored with the given layout in a host vector.
enum class order { row, col, general };
struct stored {
  std::vector<double> mem;
  matrix_extent ext;
  std::int64_t offset;
  double& at(std::int64_t i, std::int64_t j) {
    return mem[static_cast<std::size_t>(offset + i * ext.row_stride + j * ext.col_stride)];
  }
};
stored make_stored(std::int64_t rows, std::int64_t cols, order o, std::int64_t pad, lcg& g) {
  stored s{};
  s.offset = 0;
  if (o == order::row) s.ext = {rows, cols, cols + pad, 1};
  if (o == order::col) s.ext = {rows, cols, 1, rows + pad};
  if (o == order::general) s.ext = {rows, cols, 2 * (cols + pad), 2};
  std::int64_t span = 1;
  if (rows > 0 && cols > 0) span = (rows - 1) * s.ext.row_stride + (cols - 1) * s.ext.col_stride + 1;
  s.mem.assign(static_cast<std::size_t>(span), std::nan(""));
  for (std::int64_t i = 0; i < rows; ++i)
    for (std::int64_t j = 0; j < cols; ++j) s.at(i, j) = g.next();
  return s;
}

// Runs the BLAS form `g` on host memory (column-major, op per operand), like cuBLAS would.
void run_blas(const blas_gemm& g, const double* first, const double* second, double* c) {
  auto op_at = [](const tfm::detail::blas_operand& o, const double* p, std::int64_t i,
                  std::int64_t j) {
    return o.op == blas_op::n ? p[i + j * o.ld] : p[j + i * o.ld];
  };
  for (std::int64_t j = 0; j < g.n; ++j)
    for (std::int64_t i = 0; i < g.m; ++i) {
      double acc = 0;
      for (std::int64_t l = 0; l < g.k; ++l) acc += op_at(g.a, first, i, l) * op_at(g.b, second, l, j);
      c[i + j * g.ldc] = acc;
    }
}

}  // namespace

// ---------------------------------------------------------------------------- runtime

BOOST_AUTO_TEST_CASE(why_no_device_answers_without_throwing) {
  std::string why;
  BOOST_CHECK_NO_THROW(why = tfm::cuda::why_no_device());
  int count = 0;
  const cudaError_t st = cudaGetDeviceCount(&count);
  (void)cudaGetLastError();
  if (st != cudaSuccess || count == 0) {
    BOOST_TEST(!why.empty());
    BOOST_TEST(why.find("cudaGetDeviceCount") != std::string::npos);
    BOOST_TEST_MESSAGE("no device here: " << why);
    BOOST_CHECK_THROW(tfm::cuda::device_count(), tfm::cuda_error);
    BOOST_TEST(!tfm::cuda::device_available());
  } else {
    BOOST_TEST_MESSAGE("device: " << tfm::cuda::device_summary(0) << (why.empty() ? "" : why));
  }
}

BOOST_AUTO_TEST_CASE(cuda_check_names_call_and_reason) {
  try {
    TFM_CUDA_CHECK(cudaErrorInvalidValue);
    BOOST_FAIL("TFM_CUDA_CHECK did not throw");
  } catch (const tfm::cuda_error& e) {
    const std::string msg = e.what();
    BOOST_TEST(msg.find("cudaErrorInvalidValue") != std::string::npos);
    BOOST_TEST(msg.find("test_cuda_host.cpp") != std::string::npos);
  }
  try {
    TFM_CUBLAS_CHECK(CUBLAS_STATUS_NOT_SUPPORTED);
    BOOST_FAIL("TFM_CUBLAS_CHECK did not throw");
  } catch (const tfm::cuda_error& e) {
    BOOST_TEST(std::string(e.what()).find("CUBLAS_STATUS_NOT_SUPPORTED") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(runtime_wrappers_on_a_device) {
  if (!tfm::cuda::device_available()) {
    BOOST_TEST_MESSAGE("skipped here (no device): " << tfm::cuda::why_no_device());
    return;
  }
  namespace cu = tfm::cuda;
  const std::size_t n = 1000;
  cu::device_buffer<float> d(n);
  std::vector<float> h(n), back(n, -1.0f);
  for (std::size_t i = 0; i < n; ++i) h[i] = static_cast<float>(i) * 0.5f;
  cu::copy(d.data(), h.data(), d.bytes(), cu::copy_kind::host_to_device);
  cu::copy(back.data(), d.data(), d.bytes(), cu::copy_kind::device_to_host);
  BOOST_TEST(back == h, boost::test_tools::per_element());

  cu::device_buffer<float> d2(n);
  cu::stream s;
  cu::event start, stop;
  start.record(s);
  cu::fill_async(d2.data(), 0, d2.bytes(), s);
  cu::copy_async(d2.data(), d.data(), d.bytes() / 2, cu::copy_kind::device_to_device, s);
  stop.record(s);
  stop.synchronize();
  BOOST_TEST(cu::event::elapsed_ms(start, stop) >= 0.0f);
  BOOST_TEST(s.view().ready());
  cu::copy(back.data(), d2.data(), d2.bytes(), cu::copy_kind::inferred);
  for (std::size_t i = 0; i < n; ++i) BOOST_TEST(back[i] == (i < n / 2 ? h[i] : 0.0f));

  cu::stream moved = std::move(s);
  moved.synchronize();
  BOOST_TEST(cu::allocate(0) == nullptr);
  cu::deallocate(nullptr);
  try {
    void* p = cu::allocate(std::size_t{1} << 60);  // 1 EiB
    cu::deallocate(p);
    BOOST_FAIL("allocating 1 EiB did not throw");
  } catch (const tfm::out_of_memory& e) {
    const std::string msg = e.what();
    BOOST_TEST_MESSAGE(msg);
    BOOST_TEST(msg.find("free") != std::string::npos);
    BOOST_TEST(msg.find(std::to_string(std::size_t{1} << 60)) != std::string::npos);
  }
  // The device is still usable after the failed allocation.
  cu::device_buffer<float> d3(16);
  cu::fill(d3.data(), 0, d3.bytes());
  cu::device_synchronize();
}

BOOST_AUTO_TEST_CASE(pointer_alignment_is_the_lowest_set_bit_capped_at_256) {
  using tfm::cuda::pointer_alignment;
  auto p = [](std::uintptr_t a) { return reinterpret_cast<const void*>(a); };
  BOOST_TEST(pointer_alignment(p(0x1000)) == 256u);
  BOOST_TEST(pointer_alignment(p(0x1080)) == 128u);
  BOOST_TEST(pointer_alignment(p(0x1002)) == 2u);
  BOOST_TEST(pointer_alignment(p(0x1001)) == 1u);
  BOOST_TEST(pointer_alignment(p(0x7f0000001100)) == 256u);
}

// ---------------------------------------------------------------------------- BLAS mapping

BOOST_AUTO_TEST_CASE(row_major_gemm_maps_to_swapped_nn) {
  // A 3×5 (ld 5), B 5×4 (ld 4), C 3×4 (ld 4), all row-major: BLAS computes Cᵀ = Bᵀ·Aᵀ.
  const blas_gemm g = tfm::detail::to_blas_gemm(matrix_extent{3, 5, 5, 1}, matrix_extent{5, 4, 4, 1},
                                                matrix_extent{3, 4, 4, 1});
  BOOST_TEST(g.swapped);
  BOOST_TEST((g.m == 4 && g.n == 3 && g.k == 5 && g.ldc == 4));
  BOOST_TEST((g.a == tfm::detail::blas_operand{blas_op::n, 4, 5, 4}));  // Bᵀ: 4×5 column-major
  BOOST_TEST((g.b == tfm::detail::blas_operand{blas_op::n, 5, 3, 5}));  // Aᵀ: 5×3 column-major
}

BOOST_AUTO_TEST_CASE(column_major_gemm_maps_directly) {
  // A 3×5 col-major ld 8, B = Wᵀ for a row-major W 4×5 (ld 6), C 3×4 col-major ld 3.
  const blas_gemm g = tfm::detail::to_blas_gemm(matrix_extent{3, 5, 1, 8}, matrix_extent{5, 4, 1, 6},
                                                matrix_extent{3, 4, 1, 3});
  BOOST_TEST(!g.swapped);
  BOOST_TEST((g.m == 3 && g.n == 4 && g.k == 5 && g.ldc == 3));
  BOOST_TEST((g.a == tfm::detail::blas_operand{blas_op::n, 3, 5, 8}));
  BOOST_TEST((g.b == tfm::detail::blas_operand{blas_op::n, 5, 4, 6}));
  // The same B as the transpose of a row-major 4×5 matrix: strides (1, 6) is what it is already;
  // a row-major B (strides (6, 1)) enters as op T of a column-major 4×5... with C col-major:
  const blas_gemm t = tfm::detail::to_blas_gemm(matrix_extent{3, 5, 5, 1}, matrix_extent{5, 4, 6, 1},
                                                matrix_extent{3, 4, 1, 3});
  BOOST_TEST(!t.swapped);
  BOOST_TEST((t.a == tfm::detail::blas_operand{blas_op::t, 5, 3, 5}));
  BOOST_TEST((t.b == tfm::detail::blas_operand{blas_op::t, 4, 5, 6}));
}

BOOST_AUTO_TEST_CASE(vectors_take_any_stride_along_their_unit_extent) {
  // C 1×N row with a meaningless row stride, A 1×K with row stride 0.
  const blas_gemm g = tfm::detail::to_blas_gemm(matrix_extent{1, 7, 0, 1}, matrix_extent{7, 9, 9, 1},
                                                matrix_extent{1, 9, 12345, 1});
  BOOST_TEST(g.m * g.n == 9);
  // Column vectors with a meaningless col stride.
  BOOST_CHECK_NO_THROW(tfm::detail::to_blas_gemm(matrix_extent{9, 1, 1, -3}, matrix_extent{1, 1, 77, 5},
                                                 matrix_extent{9, 1, 1, 0}));
}

BOOST_AUTO_TEST_CASE(mapping_errors_name_the_operands) {
  using tfm::detail::to_blas_gemm;
  auto msg_of = [](auto&& f) -> std::string {
    try {
      f();
    } catch (const tfm::shape_error& e) {
      return e.what();
    }
    return "";
  };
  // Extents disagree.
  std::string m = msg_of([] { to_blas_gemm(matrix_extent{3, 5, 5, 1}, matrix_extent{4, 4, 4, 1}, matrix_extent{3, 4, 4, 1}, "linear"); });
  BOOST_TEST(m.find("linear") != std::string::npos);
  BOOST_TEST(m.find("A 3x5") != std::string::npos);
  BOOST_TEST(m.find("B 4x4") != std::string::npos);
  // No unit stride in A.
  m = msg_of([] { to_blas_gemm(matrix_extent{3, 5, 10, 2}, matrix_extent{5, 4, 4, 1}, matrix_extent{3, 4, 4, 1}); });
  BOOST_TEST(m.find("A needs a unit stride") != std::string::npos);
  // Overlapping leading dimension in B (row-major 5×4 with row stride 3).
  m = msg_of([] { to_blas_gemm(matrix_extent{3, 5, 5, 1}, matrix_extent{5, 4, 3, 1}, matrix_extent{3, 4, 4, 1}); });
  BOOST_TEST(m.find("B needs") != std::string::npos);
  // C with no unit stride.
  m = msg_of([] { to_blas_gemm(matrix_extent{3, 5, 5, 1}, matrix_extent{5, 4, 4, 1}, matrix_extent{3, 4, 8, 2}); });
  BOOST_TEST(m.find("C needs") != std::string::npos);
  // Beyond int32.
  const std::int64_t big = std::int64_t{1} << 31;
  m = msg_of([&] { to_blas_gemm(matrix_extent{2, big, big, 1}, matrix_extent{big, 2, 2, 1}, matrix_extent{2, 2, 2, 1}); });
  BOOST_TEST(m.find("int32") != std::string::npos);
}

// Every combination of operand orders, padding and odd sizes: the mapped BLAS problem, run on the
// host as cuBLAS would run it, gives the strided product.
BOOST_AUTO_TEST_CASE(mapping_computes_the_strided_product) {
  lcg g{42};
  const std::int64_t sizes[][3] = {{1, 1, 1}, {1, 7, 3}, {7, 1, 3}, {5, 6, 1}, {7, 9, 11}, {16, 3, 8}};
  int checked = 0;
  for (const auto& mnk : sizes)
    for (order oa : {order::row, order::col})
      for (order ob : {order::row, order::col})
        for (order oc : {order::row, order::col})
          for (std::int64_t pad : {0, 3}) {
            const std::int64_t M = mnk[0], N = mnk[1], K = mnk[2];
            stored a = make_stored(M, K, oa, pad, g), b = make_stored(K, N, ob, pad, g);
            stored c = make_stored(M, N, oc, pad, g);
            const blas_gemm bg = tfm::detail::to_blas_gemm(a.ext, b.ext, c.ext);
            run_blas(bg, bg.swapped ? b.mem.data() : a.mem.data(),
                     bg.swapped ? a.mem.data() : b.mem.data(), c.mem.data());
            for (std::int64_t i = 0; i < M; ++i)
              for (std::int64_t j = 0; j < N; ++j) {
                double want = 0;
                for (std::int64_t l = 0; l < K; ++l) want += a.at(i, l) * b.at(l, j);
                BOOST_TEST(std::abs(c.at(i, j) - want) <= 1e-12,
                           "M N K " << M << ' ' << N << ' ' << K << " orders " << int(oa) << int(ob)
                                    << int(oc) << " pad " << pad << " at " << i << ',' << j);
              }
            ++checked;
          }
  BOOST_TEST(checked == 6 * 8 * 2);
}

// ---------------------------------------------------------------------------- cuBLASLt keys

BOOST_AUTO_TEST_CASE(cublaslt_key_for_row_major_bf16) {
  // Host addresses stand in for device pointers: only the key is built here.
  alignas(256) static tfm::bfloat16 A[6 * 4], B[4 * 5], C[6 * 5];
  const strided_matrix<const tfm::bfloat16> a{A, 6, 4, 4, 1}, b{B, 4, 5, 5, 1};
  const strided_matrix<tfm::bfloat16> c{C, 6, 5, 5, 1};
  const auto call = tfm::detail::make_cublaslt_gemm_call<tfm::gemm_math::by_input>(a, b, c);
  BOOST_TEST(call.key.ab_type == CUDA_R_16BF);
  BOOST_TEST(call.key.c_type == CUDA_R_16BF);
  BOOST_TEST(call.key.compute == CUBLAS_COMPUTE_32F);
  BOOST_TEST((call.key.transa == CUBLAS_OP_N && call.key.transb == CUBLAS_OP_N));
  BOOST_TEST((call.key.m == 5 && call.key.n == 6 && call.key.k == 4));
  BOOST_TEST((call.key.lda == 5 && call.key.ldb == 4 && call.key.ldc == 5));
  BOOST_TEST(call.a == static_cast<const void*>(B));
  BOOST_TEST(call.b == static_cast<const void*>(A));
  BOOST_TEST(call.c == static_cast<void*>(C));
  BOOST_TEST((call.key.align_a == 256u && call.key.align_b == 256u && call.key.align_c == 256u));

  // A sub-view one element in: its alignment drops to 2 bytes.
  const strided_matrix<const tfm::bfloat16> a1{A + 1, 5, 3, 4, 1};
  const strided_matrix<const tfm::bfloat16> b1{B, 3, 5, 5, 1};
  alignas(256) static float CF[5 * 5];
  const strided_matrix<float> cf{CF, 5, 5, 1, 5};
  const auto call1 = tfm::detail::make_cublaslt_gemm_call<tfm::gemm_math::bf16>(a1, b1, cf);
  BOOST_TEST(call1.key.c_type == CUDA_R_32F);
  BOOST_TEST(call1.a == static_cast<const void*>(A + 1));  // C column-major: no swap
  BOOST_TEST(call1.key.align_a == 2u);
  BOOST_TEST(call1.key.transa == CUBLAS_OP_T);
  BOOST_TEST(call1.key.lda == 4);
}

BOOST_AUTO_TEST_CASE(cublaslt_bias_epilogue_key) {
  // A row-major C [6, 5] = A [6, 4] · B [4, 5] + bias [5]: the BLAS form computes Cᵀ, whose rows
  // are C's columns, so the bias (one per column of C) is cuBLASLt's per-row vector of m = 5.
  alignas(256) static tfm::bfloat16 A[6 * 4], B[4 * 5], C[6 * 5], bias[8];
  const strided_matrix<const tfm::bfloat16> a{A, 6, 4, 4, 1}, b{B, 4, 5, 5, 1};
  const strided_matrix<tfm::bfloat16> c{C, 6, 5, 5, 1};
  const auto r = tfm::detail::make_cublaslt_bias_gemm_call<tfm::gemm_math::bf16>(a, b, c, bias + 1);
  BOOST_TEST(r.ok);
  BOOST_TEST(r.call.key.epilogue == CUBLASLT_EPILOGUE_BIAS);
  BOOST_TEST(r.call.key.bias_type == CUDA_R_16BF);
  BOOST_TEST(r.call.key.align_bias == 2u);
  BOOST_TEST((r.call.key.m == 5 && r.call.key.n == 6 && r.call.key.k == 4));
  // the same problem without the bias has another key (another plan)
  const auto plain = tfm::detail::make_cublaslt_gemm_call<tfm::gemm_math::bf16>(a, b, c);
  BOOST_TEST(!(plain.key == r.call.key));
  BOOST_TEST(tfm::cuda::matmul_key_hash{}(plain.key) != tfm::cuda::matmul_key_hash{}(r.call.key));
  BOOST_TEST(tfm::cuda::describe(r.call.key).find("epilogue") != std::string::npos);
  // a column-major C: the bias would run along C's rows, so the mapping refuses
  alignas(256) static float CF[6 * 5];
  const strided_matrix<float> cf{CF, 6, 5, 1, 6};
  static float fbias[5];
  const auto r2 = tfm::detail::make_cublaslt_bias_gemm_call<tfm::gemm_math::bf16>(a, b, cf, fbias);
  BOOST_TEST(!r2.ok);
}

BOOST_AUTO_TEST_CASE(cublaslt_compute_types_follow_the_math_mode) {
  using namespace tfm;
  using detail::cublaslt_compute_type;
  BOOST_TEST((cublaslt_compute_type<gemm_math::by_input, float, float>() == CUBLAS_COMPUTE_32F));
  BOOST_TEST((cublaslt_compute_type<gemm_math::fp32, float, float>() == CUBLAS_COMPUTE_32F));
  BOOST_TEST((cublaslt_compute_type<gemm_math::tf32, float, float>() == CUBLAS_COMPUTE_32F_FAST_TF32));
  BOOST_TEST((cublaslt_compute_type<gemm_math::by_input, tfm::half, float>() == CUBLAS_COMPUTE_32F));
  BOOST_TEST((cublaslt_compute_type<gemm_math::fp16, const tfm::half, tfm::half>() == CUBLAS_COMPUTE_32F));
  BOOST_TEST((cublaslt_compute_type<gemm_math::bf16, tfm::bfloat16, float>() == CUBLAS_COMPUTE_32F));
  BOOST_TEST((cuda::data_type_of<const tfm::half> == CUDA_R_16F));
  BOOST_TEST((std::is_same_v<cuda::native_t<const tfm::bfloat16>, const __nv_bfloat16>));
}

// ---------------------------------------------------------------------------- tiled kernel pieces

namespace {

// Runs the tiled kernel's per-thread routines for every block and thread, phase by phase, as the
// GPU runs them between barriers (gemm_tiled_block in gemm_cuda.cuh). The shared slice is poisoned
// with NaN before each load, so an entry no thread writes shows up in the result.
template <class P, class T, class TC>
void emulate_tiled(float alpha, strided_matrix<const T> a, strided_matrix<const T> b, float beta,
                   strided_matrix<TC> c) {
  namespace tl = tfm::detail::tiled;
  const std::int64_t K = a.cols;
  auto s = std::make_unique<tl::shared_slice<P>>();
  std::vector<tl::accumulator<P>> acc(P::threads);
  for (std::int64_t m0 = 0; m0 < c.rows; m0 += P::block_m)
    for (std::int64_t n0 = 0; n0 < c.cols; n0 += P::block_n) {
      for (auto& x : acc) x = tl::accumulator<P>{};
      for (std::int64_t k0 = 0; k0 < K; k0 += P::block_k) {
        for (auto& row : s->a)
          for (float& v : row) v = std::numeric_limits<float>::quiet_NaN();
        for (auto& row : s->b)
          for (float& v : row) v = std::numeric_limits<float>::quiet_NaN();
        // Padding columns are never written nor read: clear them so only real misses are NaN.
        for (auto& row : s->a) row[P::block_m] = 0.0f;
        for (auto& row : s->b) row[P::block_n] = 0.0f;
        for (int t = 0; t < P::threads; ++t) tl::load_slice<P>(*s, a, b, t, m0, n0, k0);
        for (int t = 0; t < P::threads; ++t) tl::multiply_slice<P>(*s, t, acc[t]);
      }
      for (int t = 0; t < P::threads; ++t) tl::store_tile<P>(c, t, m0, n0, acc[t], alpha, beta);
    }
}

template <class T>
T to_native_value(float x) {
  return tfm::detail::tiled::narrow_to<T>::from(x);
}

template <class P, class T, class TC>
void check_tiled(std::int64_t M, std::int64_t N, std::int64_t K, order oa, order ob, order oc,
                 float alpha, float beta, double out_tol) {
  using tfm::detail::tiled::widen;
  lcg g{static_cast<std::uint64_t>(M * 131 + N * 17 + K)};
  stored a = make_stored(M, K, oa, 1, g), b = make_stored(K, N, ob, 2, g), c0 = make_stored(M, N, oc, 3, g);
  // The same storage in the element types, values rounded once; the reference uses those values.
  std::vector<T> an(a.mem.size()), bn(b.mem.size());
  std::vector<TC> cn(c0.mem.size());
  for (std::size_t i = 0; i < an.size(); ++i) an[i] = to_native_value<T>(static_cast<float>(a.mem[i]));
  for (std::size_t i = 0; i < bn.size(); ++i) bn[i] = to_native_value<T>(static_cast<float>(b.mem[i]));
  for (std::size_t i = 0; i < cn.size(); ++i) cn[i] = to_native_value<TC>(static_cast<float>(c0.mem[i]));
  const strided_matrix<const T> av{an.data(), M, K, a.ext.row_stride, a.ext.col_stride};
  const strided_matrix<const T> bv{bn.data(), K, N, b.ext.row_stride, b.ext.col_stride};
  const strided_matrix<TC> cv{cn.data(), M, N, c0.ext.row_stride, c0.ext.col_stride};
  std::vector<TC> before = cn;
  emulate_tiled<P>(alpha, av, bv, beta, cv);
  int bad = 0;
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t j = 0; j < N; ++j) {
      double want = 0, scale = 0;
      for (std::int64_t l = 0; l < K; ++l) {
        const double p = double(widen(av(i, l))) * double(widen(bv(l, j)));
        want += p;
        scale += std::abs(p);
      }
      const std::size_t at = static_cast<std::size_t>(i * cv.row_stride + j * cv.col_stride);
      const double c_old = double(widen(before[at]));
      want = alpha * want + beta * c_old;
      scale = std::abs(alpha) * scale + std::abs(beta * c_old);
      const double got = double(widen(cv(i, j)));
      // fp32 accumulation: at most (K + 2) units of 2^-24 of the absolute sum; the output rounds
      // once to TC (relative `out_tol`).
      const double bound = (K + 2) * std::ldexp(1.0, -23) * scale + out_tol * std::abs(want) + 1e-30;
      if (!(std::abs(got - want) <= bound) && bad++ < 5)
        BOOST_ERROR("tiled M N K " << M << ' ' << N << ' ' << K << " at " << i << ',' << j << ": got "
                                   << got << " want " << want);
    }
  // Storage outside C (padding, NaN) is untouched.
  std::vector<char> in_c(cn.size(), 0);
  for (std::int64_t i = 0; i < M; ++i)
    for (std::int64_t j = 0; j < N; ++j)
      in_c[static_cast<std::size_t>(i * cv.row_stride + j * cv.col_stride)] = 1;
  int written = 0;
  for (std::size_t x = 0; x < cn.size(); ++x) written += !in_c[x] && !std::isnan(widen(cn[x]));
  BOOST_TEST(written == 0, written << " elements outside C were written");
}

}  // namespace

BOOST_AUTO_TEST_CASE(tiled_routines_compute_the_product) {
  using P = tfm::gemm_tiled;
  using Q = tfm::gemm_tiled_policy<32, 16, 8, 2, 4>;  // a second shape: 64 threads, uneven splits
  const std::int64_t sizes[][3] = {{1, 1, 1}, {7, 33, 5}, {65, 64, 17}, {64, 129, 33}, {3, 70, 40}};
  for (const auto& s : sizes)
    for (order oa : {order::row, order::col, order::general})
      for (order ob : {order::row, order::col, order::general}) {
        const order oc = oa == order::row ? order::col : order::row;
        check_tiled<P, float, float>(s[0], s[1], s[2], oa, ob, oc, 1.0f, 0.0f, 1e-6);
        check_tiled<Q, float, float>(s[0], s[1], s[2], oa, ob, order::general, -0.5f, 2.0f, 1e-6);
      }
  // Narrow types: products of bf16/fp16 values are exact in fp32; the output rounds once
  // (relative 2^-9 for bf16, 2^-12 for fp16; bounds with a factor 2 of room).
  for (const auto& s : sizes) {
    check_tiled<P, __nv_bfloat16, __nv_bfloat16>(s[0], s[1], s[2], order::row, order::col, order::row,
                                                 1.0f, 0.5f, 1.0 / 256);
    check_tiled<P, __half, float>(s[0], s[1], s[2], order::col, order::row, order::col, 1.5f, -1.0f, 1e-6);
    check_tiled<Q, __half, __half>(s[0], s[1], s[2], order::general, order::row, order::row, 1.0f, 0.0f,
                                   1.0 / 1024);
  }
}

BOOST_AUTO_TEST_CASE(tiled_store_with_beta_zero_ignores_nan_in_c) {
  using P = tfm::gemm_tiled;
  std::vector<float> a(4, 1.0f), b(4, 2.0f), c(4, std::numeric_limits<float>::quiet_NaN());
  emulate_tiled<P>(1.0f, strided_matrix<const float>{a.data(), 2, 2, 2, 1},
                   strided_matrix<const float>{b.data(), 2, 2, 2, 1}, 0.0f,
                   strided_matrix<float>{c.data(), 2, 2, 2, 1});
  for (float v : c) BOOST_TEST(v == 4.0f);
  // K = 0: C = beta·C.
  std::vector<float> c2{1, 2, 3, 4};
  emulate_tiled<P>(1.0f, strided_matrix<const float>{a.data(), 2, 0, 1, 1},
                   strided_matrix<const float>{b.data(), 0, 2, 1, 1}, -2.0f,
                   strided_matrix<float>{c2.data(), 2, 2, 2, 1});
  BOOST_TEST(c2 == (std::vector<float>{-2, -4, -6, -8}), boost::test_tools::per_element());
}
