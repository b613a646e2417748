// benchmarks/bench_trainer.cpp — what the trainer adds to forward+backward. Each iteration is one
// optimizer step split into its parts, timed separately in the same loop:
//   fwd_bwd_ms     batch assembly + forward + backward (what the model benchmark measures), of
//                  every micro-batch of the step (accum of them, gradients accumulated)
//   optimizer_ms   global gradient norm + clipping factor + AdamW over every parameter
//   norm_ms        the gradient-norm part of optimizer_ms (adamw_ms: the rest)
//   overhead_pct   100 · optimizer_ms / fwd_bwd_ms  (the target: at most 5)
// Models: the tinyshakespeare configuration (0.8M parameters, B=12, T=64), the 4-layer d=256
// model with GPT-2's vocabulary at B=8, T=256 (16M parameters), GPT-2 small at B=4, T=64 (124M),
// with one micro-batch per step and with two (512 tokens per optimizer step), and in bf16 compute
// with the optimizer writing the compute copy (optimizer_writes_copy:1, as the trainer does) or
// the next forward narrowing every parameter (optimizer_writes_copy:0); BM_step_copy_interleaved
// runs those two paths alternately in one loop.
// BM_lora_memory: GPT-2 small fully trained vs LoRA (q, v, rank 8): the memory of parameters,
// gradients and AdamW state, the trainable parameter count, and one forward + backward + AdamW
// step per iteration at B=1, T=64.
//   OMP_NUM_THREADS=2 bench_trainer --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "tfm/backend/host/threading.hpp"
#include "tfm/backend/host/zero.hpp"
#include "tfm/core/memory.hpp"
#include "tfm/core/rng.hpp"
#include "tfm/nn/model.hpp"
#include "tfm/train/trainer.hpp"

namespace nn = tfm::nn;
namespace tr = tfm::train;

namespace {

struct gpt2_flash : nn::presets::gpt2<nn::dynamic_sizes> {
  using attention = nn::attn::config<nn::attn::mha, nn::attn::causal, nn::attn::flash>;
};
struct gpt2_naive : nn::presets::gpt2<nn::dynamic_sizes> {};

// copy: with mixed precision, the optimizer writes the compute copy as it updates (as the trainer
// does, train::optimizer_step); else it updates through trainable_parameters() and the next
// forward narrows every parameter (in fwd_bwd_ms).
template <class Cfg>
void BM_step_breakdown(benchmark::State& state, nn::dims d, int B, int T, int accum = 1, bool copy = true) {
  nn::model<Cfg> m(d);
  m.init(1);
  tr::adamw<float> opt(m.num_parameters(), tr::decay_groups(m.parameter_table(), {.weight_decay = 0.1}),
                       {.beta1 = 0.9, .beta2 = 0.99});
  std::vector<std::uint32_t> ids(std::size_t(B) * (T + 1) * 64);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = tfm::rng::random_u32(5, 0, i) % std::uint32_t(d.vocab);
  auto corpus = tr::token_corpus::from_tokens(std::move(ids), 0, std::uint32_t(d.vocab));
  tr::batch_source src(corpus, tr::split{0, corpus.size()}, T, tr::sampling::random_windows, 1);
  std::vector<std::int32_t> tok(std::size_t(B) * T), tgt(tok.size());
  using clock = std::chrono::steady_clock;
  double fb = 0, op = 0, nm = 0;
  std::int64_t n = 0;
  for (auto _ : state) {
    const auto t0 = clock::now();
    m.zero_grad();
    for (int k = 0; k < accum; ++k) {
      src.next(B, tok, tgt);
      m.forward_backward(tok.data(), tgt.data(), B, T);
    }
    const auto t1 = clock::now();
    const auto gs = tr::global_grad_norm<float>(m.gradients(), opt.groups(), 1.0 / accum);
    const auto tn = clock::now();
    tr::optimizer_step(m, opt, m.gradients(), 1e-4, tr::clip_factor(gs.norm, 1.0) / accum, copy);
    const auto t2 = clock::now();
    fb += std::chrono::duration<double>(t1 - t0).count();
    op += std::chrono::duration<double>(t2 - t1).count();
    nm += std::chrono::duration<double>(tn - t1).count();
    ++n;
  }
  state.counters["fwd_bwd_ms"] = 1e3 * fb / double(n);
  state.counters["optimizer_ms"] = 1e3 * op / double(n);
  state.counters["norm_ms"] = 1e3 * nm / double(n);
  state.counters["adamw_ms"] = 1e3 * (op - nm) / double(n);
  state.counters["overhead_pct"] = 100.0 * op / fb;
  state.counters["params_M"] = double(m.num_weights()) / 1e6;
  state.counters["tokens_per_s"] = benchmark::Counter(double(B) * T * accum, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = tfm::host::num_threads();
}

void BM_step_shakespeare(benchmark::State& s) { BM_step_breakdown<gpt2_flash>(s, {256, 64, 128, 4, 4, 4, 512}, 12, 64); }
void BM_step_shakespeare_naive(benchmark::State& s) {
  BM_step_breakdown<gpt2_naive>(s, {256, 64, 128, 4, 4, 4, 512}, 12, 64);
}
void BM_step_L4_d256(benchmark::State& s) { BM_step_breakdown<gpt2_flash>(s, {50257, 256, 256, 4, 4, 4, 1024}, 8, 256); }
void BM_step_gpt2_small(benchmark::State& s) {
  BM_step_breakdown<gpt2_naive>(s, {50257, 1024, 768, 12, 12, 12, 3072}, 4, 64);
}
// the same with two micro-batches accumulated per optimizer step (512 tokens per step)
void BM_step_gpt2_small_accum2(benchmark::State& s) {
  BM_step_breakdown<gpt2_naive>(s, {50257, 1024, 768, 12, 12, 12, 3072}, 4, 64, 2);
}
// GPT-2 small in bf16 compute (fp32 master weights and AdamW state), flash attention
struct gpt2_flash_bf16 : gpt2_flash {
  using precision = nn::precision_bf16;
};
void BM_step_gpt2_small_bf16(benchmark::State& s) {
  BM_step_breakdown<gpt2_flash_bf16>(s, {50257, 1024, 768, 12, 12, 12, 3072}, 4, 64, 1, s.range(0) != 0);
}
// The two bf16 paths interleaved in one loop, so that the machine's memory speed (which moves by
// up to 1.8x between runs here) moves both alike. Each iteration: two steps with the optimizer
// writing the compute copy, then two updating through trainable_parameters(); the second of each
// pair is timed (the first brings the copy to that path's steady state).
//   copy_* / plain_*: whole step, fwd_bwd (forward + backward, incl. any narrowing), optimizer
//   (norm + update, incl. any copy writing); saved_pct = 100 (plain - copy) / plain
void BM_step_copy_interleaved(benchmark::State& state) {
  nn::model<gpt2_flash_bf16> m({50257, 1024, 768, 12, 12, 12, 3072});
  m.init(1);
  tr::adamw<float> opt(m.num_parameters(), tr::decay_groups(m.parameter_table(), {.weight_decay = 0.1}),
                       {.beta1 = 0.9, .beta2 = 0.99});
  const int B = 4, T = 64;
  std::vector<std::int32_t> tok(std::size_t(B) * T), tgt(tok.size());
  for (std::size_t i = 0; i < tok.size(); ++i) {
    tok[i] = std::int32_t(tfm::rng::random_u32(3, 0, i) % 50257u);
    tgt[i] = std::int32_t(tfm::rng::random_u32(3, 1, i) % 50257u);
  }
  using clock = std::chrono::steady_clock;
  double fb[2] = {0, 0}, op[2] = {0, 0};
  std::int64_t wins = 0, n = 0;
  const auto step = [&](bool copy, bool timed) {
    const auto t0 = clock::now();
    m.zero_grad();
    m.forward_backward(tok.data(), tgt.data(), B, T);
    const auto t1 = clock::now();
    auto g = m.gradients();
    tr::optimizer_step(m, opt, g, 1e-6, tr::clip_factor(tr::global_grad_norm<float>(g, opt.groups()).norm, 1.0), copy);
    const auto t2 = clock::now();
    if (timed) {
      fb[copy] += std::chrono::duration<double>(t1 - t0).count();
      op[copy] += std::chrono::duration<double>(t2 - t1).count();
    }
    return std::chrono::duration<double>(t2 - t0).count();
  };
  for (auto _ : state) {
    step(true, false);
    const double c = step(true, true);
    step(false, false);
    const double p = step(false, true);
    wins += c < p;
    ++n;
  }
  const double k = 1e3 / double(n);
  state.counters["copy_step_ms"] = k * (fb[1] + op[1]);
  state.counters["plain_step_ms"] = k * (fb[0] + op[0]);
  state.counters["copy_fwd_bwd_ms"] = k * fb[1];
  state.counters["plain_fwd_bwd_ms"] = k * fb[0];
  state.counters["copy_optimizer_ms"] = k * op[1];
  state.counters["plain_optimizer_ms"] = k * op[0];
  state.counters["saved_pct"] = 100.0 * ((fb[0] + op[0]) - (fb[1] + op[1])) / (fb[0] + op[0]);
  state.counters["copy_faster_in"] = double(wins) / double(n);
}
struct gpt2_lora_qv : gpt2_naive {
  using lora = nn::lora::adapters<nn::lora::q | nn::lora::v, 8>;
};

template <class Cfg>
void BM_lora_memory(benchmark::State& state) {
  const nn::dims d{50257, 1024, 768, 12, 12, 12, 3072};
  const int B = 1, T = 64;
  nn::model<Cfg> m(d);
  m.init(1);
  tr::adamw<float> opt(m.num_trainable(), tr::decay_groups(m.parameter_table(), {.weight_decay = 0.1}),
                       {.beta1 = 0.9, .beta2 = 0.99});
  std::vector<std::int32_t> tok(std::size_t(B) * T), tgt(tok.size());
  for (std::size_t i = 0; i < tok.size(); ++i) {
    tok[i] = std::int32_t(tfm::rng::random_u32(5, 0, i) % std::uint32_t(d.vocab));
    tgt[i] = std::int32_t(tfm::rng::random_u32(5, 1, i) % std::uint32_t(d.vocab));
  }
  for (auto _ : state) {
    m.zero_grad();
    m.forward_backward(tok.data(), tgt.data(), B, T);
    opt.step(m.trainable_parameters(), m.gradients(), 1e-4);
    benchmark::DoNotOptimize(m.parameters().data());
  }
  std::size_t opt_bytes = 0;
  for (auto const& s : opt.state()) opt_bytes += s.data.size() * sizeof(float);
  const double MB = 1024.0 * 1024.0;
  state.counters["params_MB"] = double(m.num_parameters() * sizeof(float)) / MB;
  state.counters["grads_MB"] = double(m.gradients().size() * sizeof(float)) / MB;
  state.counters["optimizer_MB"] = double(opt_bytes) / MB;
  state.counters["trainable_M"] = double(m.num_trainable()) / 1e6;
  state.counters["threads"] = tfm::host::num_threads();
}
BENCHMARK(BM_lora_memory<gpt2_naive>)->Name("BM_lora_memory/gpt2_small_full_B1_T64")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_lora_memory<gpt2_lora_qv>)->Name("BM_lora_memory/gpt2_small_lora_qv_r8_B1_T64")->Unit(benchmark::kMillisecond);

BENCHMARK(BM_step_shakespeare)->Name("BM_step/shakespeare_L4_d128_B12_T64_flash")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_step_shakespeare_naive)->Name("BM_step/shakespeare_L4_d128_B12_T64_naive")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_step_L4_d256)->Name("BM_step/L4_d256_V50257_B8_T256_flash")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_step_gpt2_small)->Name("BM_step/gpt2_small_B4_T64_naive")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_step_gpt2_small_bf16)
    ->Name("BM_step/gpt2_small_B4_T64_bf16_flash")
    ->ArgName("optimizer_writes_copy")
    ->Arg(1)
    ->Arg(0)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_step_copy_interleaved)
    ->Name("BM_step_copy_interleaved/gpt2_small_B4_T64_bf16_flash")
    ->Iterations(8)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_step_gpt2_small_accum2)->Name("BM_step/gpt2_small_B4_T64_accum2_naive")->Unit(benchmark::kMillisecond);

// The memory-bandwidth floor under the optimizer of GPT-2 small (124.4M fp32 parameters):
//   BM_optimizer/adamw          tfm's AdamW step alone (reads p, g, m, v; writes p, m, v)
//   BM_optimizer/norm           the global gradient norm alone (reads g)
//   BM_optimizer/stream_floor   a plain loop with AdamW's memory traffic and no more arithmetic
//                               than it needs (4 streams read, 3 written): the least any fp32
//                               AdamW can take here
// Counter GB_per_s: bytes moved (28 per parameter; 4 for the norm) per second.
constexpr std::size_t gpt2_small_params = 124439808;
template <int Which>
void BM_optimizer(benchmark::State& state) {
  const std::size_t n = gpt2_small_params;
  // host buffers, as the model's parameters and gradients and the optimizer's state (huge pages)
  const auto filled = [n](float x) {
    tfm::buffer<float> b(n);
    std::fill(b.data(), b.data() + n, x);
    return b;
  };
  tfm::buffer<float> p = filled(0.01f), g = filled(1e-3f), m = filled(0.0f), v = filled(0.0f);
  tr::adamw<float> opt(n, {tr::param_group{"all", {{0, n}}, 0.1}}, {.beta1 = 0.9, .beta2 = 0.99});
  for (auto _ : state) {
    if constexpr (Which == 0) {
      opt.step({p.data(), n}, {g.data(), n}, 1e-4);
    } else if constexpr (Which == 1) {
      benchmark::DoNotOptimize(tr::global_grad_norm<float>({g.data(), n}, opt.groups()).norm);
    } else {
      float* P = p.data();
      const float* G = g.data();
      float* M = m.data();
      float* V = v.data();
#pragma omp parallel for schedule(static)
      for (std::size_t i = 0; i < n; ++i) {
        const float mi = 0.9f * M[i] + 0.1f * G[i], vi = 0.99f * V[i] + 0.01f * G[i] * G[i];
        M[i] = mi;
        V[i] = vi;
        P[i] -= 1e-4f * mi / (vi + 1e-8f);
      }
    }
    benchmark::ClobberMemory();
  }
  const double bytes = (Which == 1 ? 4.0 : 28.0) * double(n);
  state.counters["GB_per_s"] = benchmark::Counter(bytes / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = tfm::host::num_threads();
}
BENCHMARK(BM_optimizer<0>)->Name("BM_optimizer/adamw_gpt2_small")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_optimizer<1>)->Name("BM_optimizer/norm_gpt2_small")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_optimizer<2>)->Name("BM_optimizer/stream_floor_gpt2_small")->Unit(benchmark::kMillisecond)->UseRealTime();

// Clearing GPT-2 small's gradients (498 MB, what zero_grad does once per optimizer step):
//   BM_zero_grad/std_fill    std::fill on the calling thread
//   BM_zero_grad/zero_fill   tfm::host::zero_fill (thread team; streaming stores at this size)
template <int Which>
void BM_zero_grad(benchmark::State& state) {
  tfm::buffer<float> g(gpt2_small_params);  // huge-page backed, as the model's gradients
  tfm::host::zero_fill(g.data(), g.size());
  for (auto _ : state) {
    if constexpr (Which == 0)
      std::fill(g.data(), g.data() + g.size(), 0.0f);
    else
      tfm::host::zero_fill(g.data(), g.size());
    benchmark::ClobberMemory();
  }
  state.counters["GB_per_s"] =
      benchmark::Counter(4.0 * double(g.size()) / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["threads"] = tfm::host::num_threads();
}
BENCHMARK(BM_zero_grad<0>)->Name("BM_zero_grad/std_fill_gpt2_small")->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_zero_grad<1>)->Name("BM_zero_grad/zero_fill_gpt2_small")->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
