// benchmarks/bench_model.cpp — host forward+backward of whole models and of one block, and the
// best fp32 GEMM rate of this machine measured in the same process, so the target
// ("model FLOP/s ≥ 60% of the best fp32 GEMM GFLOP/s, same machine, same run") reads off one
// output:
//   BM_gemm_best           GFLOP/s of tfm's blocked GEMM over square and GPT-2 shapes (max)
//   BM_model/<name>        one forward+backward step; counters tokens_per_s and model_GFLOP/s
//                          = 6 × parameters × tokens / time (the usual training-FLOP estimate;
//                          parameters: num_weights(), without alignment gaps or head padding)
//   BM_model/L4_d256/flash_vpad64  the head padded to 50,304 rows (vocab_multiple = 64)
//   BM_xent/{two_passes,fused}  the cross-entropy over 2048 × 50,257 logits, unfused and fused
//   BM_norm/fwd_bwd/25x256x768  LayerNorm forward + backward over GPT-2 small's B=4 T=64 norms
//   BM_gelu/fwd_bwd/{avx2,avx512}  GELU forward + backward kernels over GPT-2 small's B=4 T=64
//                          MLP activations (the model dispatches to the widest the CPU runs)
//   BM_model/<name>/bf16   the same with bf16 (fp16) compute over float weights; on CPUs without
//                          AVX512_BF16/AMX the GEMMs widen bf16 to fp32 while packing
//   BM_model/<name>/bf16_kept_copy  bf16 with the compute copy kept current by the optimizer (as
//                          in training with the trainer): no narrowing of the weights per forward;
//                          the optimizer's side of it is in bench_trainer (optimizer_writes_copy)
//   BM_model_bf16_vs_fp32/<name>  fp32 and bf16 (kept copy) steps alternating in one loop;
//                          counters fp32_ms, bf16_ms, bf16_speedup (the drift-free ratio)
//   BM_model/<name>/bf16_fp8  bf16 compute with fp8 (e4m3, per-tensor scale) block weights
//                          (nn::fp8 storage); counter param_MB = parameter_bytes()
//   BM_block/<name>        one transformer block alone (a 1-layer model minus embedding/head
//                          costs is not separable, so: 1-layer model with a 64-token vocabulary)
// Threads: OMP_NUM_THREADS / tfm::host::num_threads(). Run:
//   OMP_NUM_THREADS=2 bench_model --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>
#include <span>
#include <vector>

#include "tfm/backend/host/threading.hpp"
#include "tfm/core/rng.hpp"
#include "tfm/nn/model.hpp"
#include "tfm/ops/detail/gemm_host.hpp"

namespace nn = tfm::nn;

namespace {

// ---- best GEMM rate ----
void BM_gemm_best(benchmark::State& state) {
  const std::int64_t shapes[][3] = {{1024, 1024, 1024}, {256, 2304, 768}, {256, 3072, 768},
                                    {256, 768, 3072},   {2048, 768, 768}, {512, 1536, 512}};
  double best = 0;
  for (auto _ : state) {
    best = 0;
    for (auto const& s : shapes) {
      const std::int64_t M = s[0], N = s[1], K = s[2];
      std::vector<float> a(std::size_t(M * K)), b(std::size_t(K * N)), c(std::size_t(M * N));
      std::mt19937 rng(1);
      std::uniform_real_distribution<float> d(-1, 1);
      for (auto& x : a) x = d(rng);
      for (auto& x : b) x = d(rng);
      tfm::detail::strided_matrix<const float> A{a.data(), M, K, K, 1}, B{b.data(), K, N, N, 1};
      tfm::detail::strided_matrix<float> C{c.data(), M, N, N, 1};
      tfm::detail::gemm_host(tfm::gemm_blocked{}, 1.0f, A, B, 0.0f, C);  // warm
      const int reps = std::max<int>(3, int(2e10 / double(2 * M * N * K)));
      double best_shape = 0;
      for (int r = 0; r < 3; ++r) {
        const auto t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < reps; ++i) tfm::detail::gemm_host(tfm::gemm_blocked{}, 1.0f, A, B, 0.0f, C);
        const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best_shape = std::max(best_shape, 2.0 * M * N * K * reps / sec);
      }
      best = std::max(best, best_shape);
      benchmark::DoNotOptimize(c.data());
    }
  }
  state.counters["GFLOP/s"] = best / 1e9;
  state.counters["threads"] = tfm::host::num_threads();
}
BENCHMARK(BM_gemm_best)->Iterations(1)->Unit(benchmark::kMillisecond);

// ---- models ----
using gpt2_small_cfg = nn::presets::gpt2<nn::presets::gpt2_small>;
struct gpt2_small_flash : gpt2_small_cfg {
  using attention = nn::attn::config<nn::attn::mha, nn::attn::causal, nn::attn::flash>;
};
// 4 layers, d = 256, 4 heads, GPT-2 vocabulary, context 256.
struct small4 : nn::presets::gpt2<nn::sizes<50257, 256, 256, 4, 4, 4, 1024>> {};
struct small4_flash : small4 {
  using attention = nn::attn::config<nn::attn::mha, nn::attn::causal, nn::attn::flash>;
};
// The same with the head padded to 50,304 rows (vocab_multiple: aligned rows for the head's
// products, as on the GPU).
struct small4_flash_vpad : small4_flash {
  static constexpr int vocab_multiple = 64;
};
// Mixed precision (docs/model.md "Mixed precision"): bf16 / fp16 compute over float weights.
template <class Base, class Precision>
struct with_precision : Base {
  using precision = Precision;
};
using gpt2_small_flash_bf16 = with_precision<gpt2_small_flash, nn::precision_bf16>;
using gpt2_small_flash_fp16 = with_precision<gpt2_small_flash, nn::precision_fp16>;
using small4_flash_bf16 = with_precision<small4_flash, nn::precision_bf16>;
// fp8 block weights (docs/model.md "Weight storage") over bf16 compute.
template <class Base>
struct with_fp8_weights : Base {
  using storage = nn::fp8<>;
};
using gpt2_small_flash_bf16_fp8 = with_fp8_weights<gpt2_small_flash_bf16>;
struct llama_small : nn::presets::llama<nn::sizes<32000, 1024, 512, 8, 8, 2, 1376>> {};
// One block with a tiny vocabulary: the cost is the block's.
struct block768 : nn::presets::gpt2<nn::sizes<64, 1024, 768, 1, 12, 12, 3072>> {};
struct block768_flash : block768 {
  using attention = nn::attn::config<nn::attn::mha, nn::attn::causal, nn::attn::flash>;
};

// kept_copy (mixed precision): the compute copy stays current between steps, as when the
// optimizer writes it while updating (nn::model::update_parameters; the trainer does): the
// forward then does not narrow the weights. Otherwise every forward narrows them.
template <class Cfg, bool kept_copy = false>
void BM_model(benchmark::State& state) {
  const int B = int(state.range(0)), T = int(state.range(1));
  nn::model<Cfg> m;
  m.init(1);
  if constexpr (kept_copy) m.update_parameters([](std::span<float>, const auto&) {});  // writes nothing
  const int V = m.sizes().vocab;
  std::vector<std::int32_t> tok(std::size_t(B) * T), tgt(tok.size());
  for (std::size_t i = 0; i < tok.size(); ++i) {
    tok[i] = std::int32_t(tfm::rng::random_u32(3, 0, i) % std::uint32_t(V));
    tgt[i] = std::int32_t(tfm::rng::random_u32(3, 1, i) % std::uint32_t(V));
  }
  m.zero_grad();
  m.forward_backward(tok.data(), tgt.data(), B, T);  // plans the arena, warms caches
  for (auto _ : state) {
    m.zero_grad();
    m.forward_backward(tok.data(), tgt.data(), B, T);  // what the trainer runs
    benchmark::DoNotOptimize(m.gradients().data());
  }
  const double tokens = double(B) * T;
  state.counters["tokens_per_s"] = benchmark::Counter(tokens, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["model_GFLOP/s"] =
      benchmark::Counter(6.0 * double(m.num_weights()) * tokens / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["params_M"] = double(m.num_weights()) / 1e6;
  state.counters["activation_MB"] = double(m.activation_bytes()) / 1e6;
  state.counters["param_MB"] = double(m.parameter_bytes()) / 1e6;
}

// fp32 against bf16 compute, alternating step by step in one loop (this machine's memory speed
// drifts by up to 1.8× between runs, so separate runs cannot give a ratio): each iteration runs
// one fp32 step and one bf16 step with the compute copy kept current (as the trainer runs it).
// Counters: fp32_ms, bf16_ms (per step, averages) and bf16_speedup = fp32_ms / bf16_ms (the
// issue's "bf16 ≥ 2× the fp32 step"). Iteration time is the sum of the two steps.
template <class Cfg>
void BM_model_bf16_vs_fp32(benchmark::State& state) {
  using fp32_cfg = Cfg;
  using bf16_cfg = with_precision<Cfg, nn::precision_bf16>;
  const int B = int(state.range(0)), T = int(state.range(1));
  nn::model<fp32_cfg> m32;
  nn::model<bf16_cfg> m16;
  m32.init(1);
  m16.init(1);
  m16.update_parameters([](std::span<float>, const auto&) {});  // the copy stays current
  const int V = m32.sizes().vocab;
  std::vector<std::int32_t> tok(std::size_t(B) * T), tgt(tok.size());
  for (std::size_t i = 0; i < tok.size(); ++i) {
    tok[i] = std::int32_t(tfm::rng::random_u32(3, 0, i) % std::uint32_t(V));
    tgt[i] = std::int32_t(tfm::rng::random_u32(3, 1, i) % std::uint32_t(V));
  }
  const auto step = [&](auto& m) {
    const auto t0 = std::chrono::steady_clock::now();
    m.zero_grad();
    m.forward_backward(tok.data(), tgt.data(), B, T);
    benchmark::DoNotOptimize(m.gradients().data());
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  step(m32);  // plans the arenas, warms caches
  step(m16);
  double t32 = 0, t16 = 0;
  std::int64_t n = 0;
  for (auto _ : state) {
    // Alternate which precision goes first, so neither always follows the other's cache state.
    if (n % 2 == 0) {
      t32 += step(m32);
      t16 += step(m16);
    } else {
      t16 += step(m16);
      t32 += step(m32);
    }
    ++n;
  }
  state.counters["fp32_ms"] = 1e3 * t32 / double(n);
  state.counters["bf16_ms"] = 1e3 * t16 / double(n);
  state.counters["bf16_speedup"] = t32 / t16;
  state.counters["params_M"] = double(m32.num_weights()) / 1e6;
}

BENCHMARK(BM_model<gpt2_small_cfg>)->Name("BM_model/gpt2_small/naive")->Args({4, 64})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_model<gpt2_small_flash>)->Name("BM_model/gpt2_small/flash")->Args({4, 64})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_model<small4>)->Name("BM_model/L4_d256/naive")->Args({8, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_model<small4_flash>)->Name("BM_model/L4_d256/flash")->Args({8, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_model<small4_flash_vpad>)->Name("BM_model/L4_d256/flash_vpad64")->Args({8, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_model<gpt2_small_flash_bf16>)->Name("BM_model/gpt2_small/flash/bf16")->Args({4, 64})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_model<gpt2_small_flash_bf16, true>)
    ->Name("BM_model/gpt2_small/flash/bf16_kept_copy")
    ->Args({4, 64})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_model<gpt2_small_flash_fp16>)->Name("BM_model/gpt2_small/flash/fp16")->Args({4, 64})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_model<gpt2_small_flash_bf16_fp8>)->Name("BM_model/gpt2_small/flash/bf16_fp8")->Args({4, 64})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_model<small4_flash_bf16>)->Name("BM_model/L4_d256/flash/bf16")->Args({8, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_model_bf16_vs_fp32<gpt2_small_flash>)
    ->Name("BM_model_bf16_vs_fp32/gpt2_small/flash")
    ->Args({4, 64})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_model_bf16_vs_fp32<small4_flash>)
    ->Name("BM_model_bf16_vs_fp32/L4_d256/flash")
    ->Args({8, 256})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_model<llama_small>)->Name("BM_model/llama_d512_L8/naive")->Args({4, 128})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_model<block768>)->Name("BM_block/d768/naive")->Args({4, 256})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_model<block768_flash>)->Name("BM_block/d768/flash")->Args({4, 256})->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

// fp8 storage alone on one GPT-2 MLP matrix (768 × 3072): pack (every forward, per matrix) and
// unpack into bf16 (before each multiply that reads it). Counter: elements per second.
template <bool Pack>
void BM_fp8_storage(benchmark::State& state) {
  using S = nn::fp8<>;
  using ops = nn::storage_ops<S, tfm::space::host>;
  const nn::matrix_shape m{3072, 768, false};
  std::vector<float> w(std::size_t(m.size()));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = 0.02f * tfm::rng::normal(5, 0, i);
  std::vector<std::uint8_t> packed(nn::storage_traits<S>::bytes(m));
  std::vector<tfm::bfloat16> out(w.size());
  int be = 0;
  ops::pack(be, m, w.data(), packed.data());
  for (auto _ : state) {
    if constexpr (Pack)
      ops::pack(be, m, w.data(), packed.data());
    else
      ops::unpack(be, m, packed.data(), out.data());
    benchmark::ClobberMemory();
  }
  state.counters["elements_per_s"] = benchmark::Counter(double(m.size()), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_fp8_storage<true>)->Name("BM_fp8_storage/pack")->Unit(benchmark::kMicrosecond)->UseRealTime();
BENCHMARK(BM_fp8_storage<false>)->Name("BM_fp8_storage/unpack_bf16")->Unit(benchmark::kMicrosecond)->UseRealTime();

// The cross-entropy over the 4-layer model's logits (2048 rows × 50,257, fp32): xent_forward then
// xent_backward (two passes over the logits, what forward() + backward() run) against
// xent_forward_backward (one pass, what forward_backward() runs). The logits are restored from a
// copy outside the timed region, so each iteration starts from the same values in memory.
template <bool Fused>
void BM_xent(benchmark::State& state) {
  const std::int64_t N = 2048;
  const int V = 50257;
  std::vector<float> z0(std::size_t(N) * V), z(z0.size()), lse(N), losses(N);
  for (std::size_t i = 0; i < z0.size(); ++i) z0[i] = 2.0f * tfm::rng::normal(9, 0, i);
  std::vector<std::int32_t> y(N);
  for (std::int64_t n = 0; n < N; ++n) y[std::size_t(n)] = std::int32_t(tfm::rng::random_u32(9, 1, n) % V);
  std::int64_t count = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::copy(z0.begin(), z0.end(), z.begin());
    state.ResumeTiming();
    if constexpr (Fused) {
      nn::host::xent_forward_backward<float>(N, V, V, z.data(), y.data(), nn::ignore_index, lse.data(), losses.data(),
                                             count, 1.0 / double(N), z.data());
    } else {
      nn::host::xent_forward<float>(N, V, V, z.data(), y.data(), nn::ignore_index, lse.data(), losses.data(), count);
      nn::host::xent_backward<float>(N, V, V, z.data(), y.data(), nn::ignore_index, lse.data(), 1.0 / double(N), z.data());
    }
    benchmark::DoNotOptimize(z.data());
  }
  state.counters["rows_per_s"] = benchmark::Counter(double(N), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_xent<false>)->Name("BM_xent/two_passes/2048x50257")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_xent<true>)->Name("BM_xent/fused/2048x50257")->Unit(benchmark::kMillisecond)->UseRealTime();

#if TFM_HOST_X86_SIMD
// GELU forward + backward over GPT-2 small's MLP activations of a B=4, T=64 step (12 layers of
// 256 × 3072 floats), over the thread team, with the AVX2 (isa 0) or AVX-512 (isa 1) kernels.
template <int isa>
void BM_gelu(benchmark::State& state) {
  namespace hd = tfm::nn::host::detail;
  if (isa == 1 && !tfm::host::cpu_supports(tfm::host::isa::avx512)) return state.SkipWithError("no AVX-512");
  if (!tfm::host::cpu_supports(tfm::host::isa::avx2)) return state.SkipWithError("no AVX2");
  const std::int64_t n = 12 * 256 * 3072;
  std::vector<float> x(static_cast<std::size_t>(n)), dy(x.size()), y(x.size()), dx(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = 4.0f * tfm::rng::normal(1, 0, i);
    dy[i] = tfm::rng::normal(1, 1, i);
  }
  for (auto _ : state) {
    hd::parallel_chunks(n, [&](std::int64_t a, std::int64_t b) {
      if constexpr (isa == 1)
        hd::gelu_forward_avx512(a, b, x.data(), y.data());
      else
        hd::gelu_forward_avx2(a, b, x.data(), y.data());
    });
    hd::parallel_chunks(n, [&](std::int64_t a, std::int64_t b) {
      if constexpr (isa == 1)
        hd::gelu_backward_avx512(a, b, x.data(), dy.data(), dx.data());
      else
        hd::gelu_backward_avx2(a, b, x.data(), dy.data(), dx.data());
    });
    benchmark::DoNotOptimize(dx.data());
  }
  state.counters["elements_per_s"] = benchmark::Counter(double(n), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_gelu<0>)->Name("BM_gelu/fwd_bwd/avx2/12x256x3072")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_gelu<1>)->Name("BM_gelu/fwd_bwd/avx512/12x256x3072")->Unit(benchmark::kMillisecond)->UseRealTime();
#endif

// LayerNorm forward + backward over GPT-2 small's B=4 T=64 norms: 25 of 256 rows of 768 (fp32).
void BM_norm(benchmark::State& state) {
  namespace h = tfm::nn::host;
  const std::int64_t N = 25 * 256;
  const int D = 768;
  std::vector<float> x(std::size_t(N) * D), dy(x.size()), y(x.size()), dx(x.size()), w(D), b(D), dw(D), db(D);
  std::vector<float> mean(static_cast<std::size_t>(N)), rstd(mean.size()), scratch(h::norm_scratch_size(D));
  for (std::size_t i = 0; i < x.size(); ++i) {
    x[i] = tfm::rng::normal(2, 0, i);
    dy[i] = tfm::rng::normal(2, 1, i);
  }
  for (int c = 0; c < D; ++c) w[std::size_t(c)] = 1.0f + 0.1f * tfm::rng::normal(2, 2, std::uint64_t(c));
  for (auto _ : state) {
    h::norm_forward<false>(N, D, x.data(), w.data(), b.data(), y.data(), mean.data(), rstd.data(), 1e-5);
    h::norm_backward<false>(N, D, dy.data(), x.data(), w.data(), mean.data(), rstd.data(), dx.data(), false, dw.data(),
                            db.data(), scratch.data());
    benchmark::DoNotOptimize(dx.data());
  }
  state.counters["rows_per_s"] = benchmark::Counter(double(N), benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_norm)->Name("BM_norm/fwd_bwd/25x256x768")->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
