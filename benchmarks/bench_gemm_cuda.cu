// CUDA GEMM benchmarks: tfm's cuBLASLt wrapper per math mode, tfm's tiled kernel, and a direct
// cublasGemmEx call on the same 8192³ bf16 problem as the peer the wrapper must match (target:
// >= 95% of its TFLOP/s). All operands row-major (C = A·B, A M×K, B K×N), alpha 1, beta 0.
// Timed with CUDA events around each call, queued ahead of the host (so launch latency does not
// count for small shapes), and UseManualTime: the reported time is GPU time per GEMM.
//   BM_gemm/<cublaslt|tiled|cublas_direct>/<f32|tf32|bf16|f16>/MxNxK
//   BM_gemm_plan_lookup/cublaslt/bf16: host cost of the wrapper per call (key + cache lookup)
// Without a usable device the binary says so and exits 0.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "tfm/backend/cuda/cublas.hpp"
#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/core/dtype.hpp"
#include "tfm/ops/detail/gemm_cuda.cuh"

namespace {

namespace cu = tfm::cuda;
using tfm::detail::strided_matrix;

// Uniform values in [-1, 1) from a hash of the index, written as N.
template <class N>
__global__ void fill_uniform(N* p, std::size_t n, std::uint32_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * blockDim.x) {
    std::uint32_t h = static_cast<std::uint32_t>(i) * 0x9e3779b9u ^ seed;
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    const float x = static_cast<float>(h >> 8) * (2.0f / 16777216.0f) - 1.0f;
    p[i] = tfm::detail::tiled::narrow_to<N>::from(x);
  }
}

// One handle for every benchmark: plans persist across repetitions, as in a training loop.
cu::cublaslt_handle& lt_handle() {
  static cu::cublaslt_handle h;
  return h;
}

template <class T>
void fill_random(T* p, std::size_t n, std::uint32_t seed) {
  auto* q = cu::to_native(p);
  fill_uniform<<<1024, 256>>>(q, n, seed);
  TFM_CUDA_CHECK(cudaGetLastError());
}

cu::cublas_handle& blas_handle() {
  static cu::cublas_handle h;
  return h;
}

// Row-major operands of one problem, filled once.
template <class T, class TC>
struct problem {
  std::int64_t m, n, k;
  cu::device_buffer<T> a, b;
  cu::device_buffer<TC> c;
  problem(std::int64_t m_, std::int64_t n_, std::int64_t k_)
      : m(m_), n(n_), k(k_), a(std::size_t(m_ * k_)), b(std::size_t(k_ * n_)), c(std::size_t(m_ * n_)) {
    fill_random(a.data(), a.size(), 1u);
    fill_random(b.data(), b.size(), 2u);
    fill_random(c.data(), c.size(), 3u);
    cu::device_synchronize();
  }
  strided_matrix<const T> A() const { return {a.data(), m, k, k, 1}; }  // (M, K)
  strided_matrix<const T> B() const { return {b.data(), k, n, n, 1}; }  // (K, N)
  strided_matrix<TC> C() const { return {c.data(), m, n, n, 1}; }       // (M, N)
};

// Times `run` (one GEMM on the default stream) with a pair of events around each call, kept
// `depth` calls ahead of the host: each benchmark iteration queues one more GEMM and reads the
// oldest pair, so the GPU never waits for a launch (small shapes are not charged the host's launch
// latency) and the wall time spent stays close to --benchmark_min_time.
void time_gemm(benchmark::State& state, double flops, const std::function<void()>& run) {
  constexpr int depth = 8;
  try {
    const std::size_t fallbacks = lt_handle().fallbacks();
    run();  // warm-up: plan creation, first-launch costs
    cu::device_synchronize();
    if (lt_handle().fallbacks() != fallbacks) {
      state.SkipWithError("cuBLASLt found no algorithm; gemm_cuda fell back to the tiled kernel");
      return;
    }
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
    return;
  }
  std::vector<cu::event> starts, stops;
  for (int i = 0; i < depth; ++i) {
    starts.emplace_back();
    stops.emplace_back();
  }
  auto enqueue = [&](int slot) {
    starts[slot].record();
    run();
    stops[slot].record();
  };
  for (int i = 0; i < depth - 1; ++i) enqueue(i);
  int next = depth - 1, oldest = 0;
  double gpu_seconds = 0;
  std::int64_t calls = 0;
  for (auto _ : state) {
    enqueue(next);
    next = (next + 1) % depth;
    stops[oldest].synchronize();
    const double s = cu::event::elapsed_ms(starts[oldest], stops[oldest]) * 1e-3;
    oldest = (oldest + 1) % depth;
    state.SetIterationTime(s);
    gpu_seconds += s;
    ++calls;
  }
  cu::device_synchronize();
  if (gpu_seconds > 0) state.counters["TFLOP/s"] = flops * static_cast<double>(calls) / gpu_seconds * 1e-12;
}

struct shape {
  std::int64_t m, n, k;
};
std::string shape_name(shape s) {
  return std::to_string(s.m) + "x" + std::to_string(s.n) + "x" + std::to_string(s.k);
}

template <class Policy, class T, class TC>
void register_gemm(const std::string& variant, const std::string& dtype, shape s) {
  const std::string name = "BM_gemm/" + variant + "/" + dtype + "/" + shape_name(s);
  benchmark::RegisterBenchmark(name.c_str(), [s](benchmark::State& state) {
    try {
      problem<T, TC> p(s.m, s.n, s.k);
      const auto a = p.A();
      const auto b = p.B();
      const auto c = p.C();
      time_gemm(state, 2.0 * double(s.m) * double(s.n) * double(s.k), [&] {
        tfm::detail::gemm_cuda(Policy{}, 1.0f, a, b, 0.0f, c, cu::stream_view{}, lt_handle());
      });
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
    }
  })->UseManualTime()->Unit(benchmark::kMicrosecond);
}

// The peer: cublasGemmEx on the same row-major problem, as column-major Cᵀ = Bᵀ·Aᵀ (NN).
void register_cublas_direct_bf16(shape s) {
  const std::string name = "BM_gemm/cublas_direct/bf16/" + shape_name(s);
  benchmark::RegisterBenchmark(name.c_str(), [s](benchmark::State& state) {
    try {
      problem<tfm::bfloat16, tfm::bfloat16> p(s.m, s.n, s.k);
      cu::cublas_handle& h = blas_handle();
      h.set_stream(cu::stream_view{});
      const float alpha = 1.0f, beta = 0.0f;
      const int m = int(s.m), n = int(s.n), k = int(s.k);
      time_gemm(state, 2.0 * double(s.m) * double(s.n) * double(s.k), [&] {
        TFM_CUBLAS_CHECK(cublasGemmEx(h.get(), CUBLAS_OP_N, CUBLAS_OP_N, n, m, k, &alpha, p.b.data(),
                                      CUDA_R_16BF, n, p.a.data(), CUDA_R_16BF, k, &beta, p.c.data(),
                                      CUDA_R_16BF, n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
      });
    } catch (const std::exception& e) {
      state.SkipWithError(e.what());
    }
  })->UseManualTime()->Unit(benchmark::kMicrosecond);
}

// Host cost the wrapper adds to a cublasLtMatmul call: building the key and finding the plan.
void BM_gemm_plan_lookup(benchmark::State& state) try {
  problem<tfm::bfloat16, tfm::bfloat16> p(256, 768, 768);
  const auto a = p.A();
  const auto b = p.B();
  const auto c = p.C();
  cu::cublaslt_handle& h = lt_handle();
  for (auto _ : state) {
    const auto call = tfm::detail::make_cublaslt_gemm_call<tfm::gemm_math::by_input>(a, b, c);
    const auto plan = h.plan(call.key);
    benchmark::DoNotOptimize(plan.get());
  }
} catch (const std::exception& e) {
  state.SkipWithError(e.what());
}

void register_all() {
  const shape transformer[] = {{256, 768, 768}, {256, 2304, 768}, {256, 3072, 768}, {256, 768, 3072},
                               {1024, 1024, 1024}};
  namespace math = tfm::gemm_math;
  using tfm::bfloat16;
  using tfm::gemm_cublaslt;
  using tfm::gemm_tiled;
  using f16 = tfm::half;  // not `half`: cuda_fp16.h has a global ::half as well
  for (shape s : transformer) {
    register_gemm<gemm_cublaslt<math::fp32>, float, float>("cublaslt", "f32", s);
    register_gemm<gemm_cublaslt<math::tf32>, float, float>("cublaslt", "tf32", s);
    register_gemm<gemm_cublaslt<math::bf16>, bfloat16, bfloat16>("cublaslt", "bf16", s);
    register_gemm<gemm_cublaslt<math::fp16>, f16, f16>("cublaslt", "f16", s);
    register_gemm<gemm_tiled, float, float>("tiled", "f32", s);
    register_gemm<gemm_tiled, bfloat16, bfloat16>("tiled", "bf16", s);
  }
  // GPT-2's output head at B·T = 16384: the vocabulary of 50,257 makes every row of C (and of B)
  // start 2-byte aligned; 50,304 (the next multiple of 64) keeps them 16-byte aligned.
  for (shape s : {shape{16384, 50257, 768}, shape{16384, 50304, 768}})
    register_gemm<gemm_cublaslt<math::bf16>, bfloat16, bfloat16>("cublaslt", "bf16", s);
  const shape big{8192, 8192, 8192};
  register_gemm<gemm_cublaslt<math::bf16>, bfloat16, bfloat16>("cublaslt", "bf16", big);
  register_cublas_direct_bf16(big);
  register_gemm<gemm_tiled, bfloat16, bfloat16>("tiled", "bf16", big);
  benchmark::RegisterBenchmark("BM_gemm_plan_lookup/cublaslt/bf16", BM_gemm_plan_lookup);
}

}  // namespace

int main(int argc, char** argv) {
  bool list_only = false;  // listing the benchmarks needs no device
  for (int i = 1; i < argc; ++i) list_only |= std::string(argv[i]).starts_with("--benchmark_list_tests");
  const std::string why = tfm::cuda::why_no_device();
  if (!why.empty() && !list_only) {
    std::fprintf(stderr, "%s: no usable CUDA device (%s); nothing to measure\n", argv[0], why.c_str());
    return 0;
  }
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (why.empty())
    benchmark::AddCustomContext("cuda_device", tfm::cuda::device_summary(tfm::cuda::current_device()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
