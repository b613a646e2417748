// benchmarks/bench_gemm_host.cpp — host GEMM (tfm::detail::gemm_host) on the shapes of GPT-2
// small (M = 256 tokens: QKV, attention out, MLP up, MLP down; and 1024³) and of a GPT-2-vocabulary
// LM head (2048 tokens, d = 256), against OpenBLAS's
// cblas_sgemm / cblas_sbgemm in the same binary when the build found OpenBLAS.
//
// Names: BM_gemm/<variant>/<dtype>/<trans>/M/N/K, trans NN, NT (B stored N×K) or TN (A stored
// K×M), all row-major; variant blocked_streamed reads B from memory in every call (a model step's
// weights), blocked from cache. Threads: tfm::host::num_threads() (OMP_NUM_THREADS), and OpenBLAS is set
// to the same count. Quick smoke run (Google Benchmark 1.7 takes plain seconds):
//   bench_gemm_host --benchmark_min_time=0.01
//
// OpenBLAS picks its kernels from the CPU model. A release older than the CPU falls back to old
// ones without saying so: Debian 12's 0.3.21 runs its SSE3 "Prescott" kernels on an Emerald
// Rapids Xeon (about 30 GFLOP/s instead of 160–190). The context line `openblas_core` shows what
// it chose; OPENBLAS_CORETYPE (e.g. Cooperlake or SkylakeX) overrides it for a fair comparison:
//   OPENBLAS_CORETYPE=Cooperlake OMP_NUM_THREADS=2 bench_gemm_host --benchmark_filter='f32/NN/(256|1024)/'
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tfm/backend/host/cpu.hpp"
#include "tfm/backend/host/threading.hpp"
#include "tfm/core/dtype.hpp"
#include "tfm/ops/detail/gemm_host.hpp"

#ifdef TFM_BENCH_OPENBLAS
#include <cblas.h>
#endif

namespace {

using tfm::detail::strided_matrix;

struct gemm_shape {
  std::int64_t m, n, k;
};

// GPT-2 small with 256 tokens: attention QKV, MLP up, MLP down and attention out projections'
// shapes are (256, 2304, 768), (256, 3072, 768), (256, 768, 3072), (256, 768, 768).
constexpr gemm_shape gpt2_shapes[] = {
    {256, 768, 768}, {256, 2304, 768}, {256, 3072, 768}, {256, 768, 3072}, {1024, 1024, 1024}};
// gemm_ref is O(MNK) in double without blocking: small shapes only.
constexpr gemm_shape ref_shapes[] = {{64, 64, 64}, {128, 128, 128}};

enum class transpose { nn, nt, tn };

// The LM head of a model with GPT-2's vocabulary, 2048 tokens and d = 256 (bench_model's
// L4_d256): logits = x·Wᵀ (NT), dx = dlogits·W (NN), dW = dlogitsᵀ·x (TN).
struct head_product {
  gemm_shape shape;
  transpose t;
};
constexpr const char* transpose_name(transpose t) {
  return t == transpose::nn ? "NN" : t == transpose::nt ? "NT" : "TN";
}

// Row-major storage of A (M×K, or K×M for TN), B (K×N, or N×K for NT) and C (M×N), and the
// strided views a kernel sees.
template <class T>
struct gemm_operands {
  std::vector<T> a_store, b_store;
  std::vector<float> c_store;
  strided_matrix<const T> a, b;
  strided_matrix<float> c;
  std::int64_t lda, ldb;

  gemm_operands(gemm_shape s, transpose t)
      : a_store(std::size_t(s.m * s.k)),
        b_store(std::size_t(s.k * s.n)),
        c_store(std::size_t(s.m * s.n)) {
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (auto& x : a_store) x = T(dist(rng));
    for (auto& x : b_store) x = T(dist(rng));
    lda = t == transpose::tn ? s.m : s.k;
    ldb = t == transpose::nt ? s.k : s.n;
    a = t == transpose::tn ? strided_matrix<const T>{a_store.data(), s.m, s.k, 1, lda}
                           : strided_matrix<const T>{a_store.data(), s.m, s.k, lda, 1};
    b = t == transpose::nt ? strided_matrix<const T>{b_store.data(), s.k, s.n, 1, ldb}
                           : strided_matrix<const T>{b_store.data(), s.k, s.n, ldb, 1};
    c = {c_store.data(), s.m, s.n, s.n, 1};
  }
};

void set_counters(benchmark::State& state, gemm_shape s) {
  state.counters["GFLOP/s"] =
      benchmark::Counter(2.0 * double(s.m) * double(s.n) * double(s.k) * 1e-9,
                         benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = tfm::host::num_threads();
}

template <class Policy, class T>
void bm_tfm(benchmark::State& state, gemm_shape s, transpose t) {
  gemm_operands<T> op(s, t);
  for (auto _ : state) {
    tfm::detail::gemm_host(Policy{}, 1.0f, op.a, op.b, 0.0f, op.c);
    benchmark::DoNotOptimize(op.c.data);
    benchmark::ClobberMemory();
  }
  set_counters(state, s);
}

// The same product with B taken in turn from copies that together exceed the last-level cache
// (at least 192 MB), so that every call reads B from memory, as a model step reads its weights:
// the plain benchmark's B stays in cache from one iteration to the next.
template <class Policy, class T>
void bm_tfm_streamed(benchmark::State& state, gemm_shape s, transpose t) {
  gemm_operands<T> op(s, t);
  const std::size_t bytes = op.b_store.size() * sizeof(T);
  const std::size_t copies = std::max<std::size_t>(2, (std::size_t(192) << 20) / bytes + 1);
  std::vector<std::vector<T>> bs(copies, op.b_store);
  std::size_t i = 0;
  for (auto _ : state) {
    strided_matrix<const T> b = op.b;
    b.data = bs[i].data();
    i = i + 1 == copies ? 0 : i + 1;
    tfm::detail::gemm_host(Policy{}, 1.0f, op.a, b, 0.0f, op.c);
    benchmark::DoNotOptimize(op.c.data);
    benchmark::ClobberMemory();
  }
  set_counters(state, s);
  state.counters["B_copies"] = double(copies);
}

#ifdef TFM_BENCH_OPENBLAS
CBLAS_TRANSPOSE cblas_trans_a(transpose t) {
  return t == transpose::tn ? CblasTrans : CblasNoTrans;
}
CBLAS_TRANSPOSE cblas_trans_b(transpose t) {
  return t == transpose::nt ? CblasTrans : CblasNoTrans;
}

void bm_openblas_sgemm(benchmark::State& state, gemm_shape s, transpose t) {
  openblas_set_num_threads(tfm::host::num_threads());
  gemm_operands<float> op(s, t);
  for (auto _ : state) {
    cblas_sgemm(CblasRowMajor, cblas_trans_a(t), cblas_trans_b(t), blasint(s.m), blasint(s.n),
                blasint(s.k), 1.0f, op.a_store.data(), blasint(op.lda), op.b_store.data(),
                blasint(op.ldb), 0.0f, op.c_store.data(), blasint(s.n));
    benchmark::DoNotOptimize(op.c.data);
    benchmark::ClobberMemory();
  }
  set_counters(state, s);
}

#ifdef TFM_BENCH_OPENBLAS_SBGEMM
// OpenBLAS's bfloat16 is the raw 16-bit pattern, as tfm::bfloat16 stores it.
void bm_openblas_sbgemm(benchmark::State& state, gemm_shape s, transpose t) {
  static_assert(sizeof(::bfloat16) == sizeof(tfm::bfloat16));
  openblas_set_num_threads(tfm::host::num_threads());
  gemm_operands<tfm::bfloat16> op(s, t);
  for (auto _ : state) {
    cblas_sbgemm(CblasRowMajor, cblas_trans_a(t), cblas_trans_b(t), blasint(s.m), blasint(s.n),
                 blasint(s.k), 1.0f, reinterpret_cast<const ::bfloat16*>(op.a_store.data()),
                 blasint(op.lda), reinterpret_cast<const ::bfloat16*>(op.b_store.data()),
                 blasint(op.ldb), 0.0f, op.c_store.data(), blasint(s.n));
    benchmark::DoNotOptimize(op.c.data);
    benchmark::ClobberMemory();
  }
  set_counters(state, s);
}
#endif
#endif

template <class F>
void add(const std::string& variant, const char* dtype, transpose t, F fn, gemm_shape s) {
  const std::string name = "BM_gemm/" + variant + "/" + dtype + "/" + transpose_name(t);
  benchmark::RegisterBenchmark(name.c_str(), fn, s, t)
      ->Args({s.m, s.n, s.k})
      ->UseRealTime()
      ->Unit(benchmark::kMicrosecond);
}

// Shape-major order, each tfm variant next to its OpenBLAS peer, so that a busy machine slows
// both alike (add --benchmark_enable_random_interleaving=true with repetitions for more).
void register_all() {
  using tfm::host::isa;
  constexpr transpose all[] = {transpose::nn, transpose::nt, transpose::tn};
  for (transpose t : all) {
    for (gemm_shape s : gpt2_shapes) {
      add("blocked", "f32", t, bm_tfm<tfm::gemm_blocked, float>, s);
#ifdef TFM_BENCH_OPENBLAS
      add("openblas_sgemm", "f32", t, bm_openblas_sgemm, s);
#endif
    }
  }
  for (transpose t : all) {
    for (gemm_shape s : gpt2_shapes) {
      add("blocked", "bf16", t, bm_tfm<tfm::gemm_blocked, tfm::bfloat16>, s);
#ifdef TFM_BENCH_OPENBLAS_SBGEMM
      add("openblas_sbgemm", "bf16", t, bm_openblas_sbgemm, s);
#endif
    }
  }
#if TFM_HOST_X86_SIMD
  // Where bf16 runs on AMX by default: the AVX512_BF16 kernel beside it, for what the tiles buy.
  if (tfm::host::cpu_supports(isa::amx_bf16)) {
    for (gemm_shape s : gpt2_shapes) {
      add("blocked_avx512_bf16", "bf16", transpose::nn,
          bm_tfm<tfm::basic_gemm_blocked<isa::avx512_bf16>, tfm::bfloat16>, s);
    }
  }
#endif
  // GPT-2 small's weights streamed from memory, in the two layouts a weight takes as B: NN (the
  // forward with [in, out] weights, or the input gradient with [out, in] ones) and NT.
  for (transpose t : {transpose::nn, transpose::nt}) {
    for (gemm_shape s : gpt2_shapes) {
      if (s.m != 256) continue;
      add("blocked_streamed", "f32", t, bm_tfm_streamed<tfm::gemm_blocked, float>, s);
      add("blocked_streamed", "bf16", t, bm_tfm_streamed<tfm::gemm_blocked, tfm::bfloat16>, s);
    }
  }
  // The LM head products, each in the layout the model runs it in (C alone is 412 MB).
  const head_product head[] = {{{2048, 50257, 256}, transpose::nt},
                               {{2048, 256, 50257}, transpose::nn},
                               {{50257, 256, 2048}, transpose::tn}};
  for (const head_product& h : head) {
    add("blocked", "f32", h.t, bm_tfm<tfm::gemm_blocked, float>, h.shape);
    add("blocked", "bf16", h.t, bm_tfm<tfm::gemm_blocked, tfm::bfloat16>, h.shape);
  }
  // fp16 is widened to fp32 while packing (F16C on AVX2), like bf16 without AVX512_BF16.
  for (gemm_shape s : gpt2_shapes) {
    add("blocked", "f16", transpose::nn, bm_tfm<tfm::gemm_blocked, tfm::half>, s);
  }
  // The portable kernel, for its tuning comment (and a view of what SIMD buys).
  for (gemm_shape s : gpt2_shapes) {
    add("blocked_scalar", "f32", transpose::nn, bm_tfm<tfm::basic_gemm_blocked<isa::scalar>, float>,
        s);
  }
  for (gemm_shape s : ref_shapes) {
    add("ref", "f32", transpose::nn, bm_tfm<tfm::gemm_ref, float>, s);
    add("blocked", "f32", transpose::nn, bm_tfm<tfm::gemm_blocked, float>, s);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("tfm_isa", std::string(tfm::host::isa_name(tfm::host::native_isa)));
  benchmark::AddCustomContext("tfm_threads", std::to_string(tfm::host::num_threads()));
#ifdef TFM_BENCH_OPENBLAS
  benchmark::AddCustomContext("openblas_core", openblas_get_corename());
#endif
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
