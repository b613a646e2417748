// Host attention: naive (materialised probabilities) against flash (tiled, online softmax),
// forward and forward+backward, causal, B = 1, H = KV = 4, hd = 64 (static HeadDim), float,
// q/k/v interleaved in one [B, T, 3·H·hd] buffer as the model calls the kernels.
// Counters: tokens_per_s, GFLOP/s (the FLOPs the causal band needs: 4·hd per allowed (i, j)
// pair and head forward, 8·hd backward — dV, dP, dQ, dK; recomputation not counted) and
// attn_bytes (the extra memory of the variant: naive probabilities + scratch, flash lse + scratch).
// attention_flash_fwd_bwd_two_pass: the flash backward forced to its two-pass schedule (dK/dV,
// then dQ), against attention_flash_fwd_bwd's one pass.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tfm/backend/host/threading.hpp"
#include "tfm/nn/attention_host.hpp"

namespace {

using namespace tfm::nn;

constexpr int kB = 1, kH = 4, kHD = 64;
constexpr double kNaiveLimitBytes = 2.0 * 1024 * 1024 * 1024;  // naive is skipped above this

struct inputs {
  attention_shape s;
  attention_mask m;
  std::vector<float> qkv, dqkv, out, dout;
  explicit inputs(int Tn) {
    const std::int64_t ld = 3 * kH * kHD;
    s = {kB, Tn, kH, kH, kHD, ld, ld, ld};
    m.causal = true;
    qkv.resize(std::size_t(kB) * Tn * ld);
    dqkv.resize(qkv.size());
    out.resize(std::size_t(kB) * Tn * kH * kHD);
    dout.resize(out.size());
    std::mt19937 gen(42);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (auto& x : qkv) x = u(gen);
    for (auto& x : dout) x = u(gen);
  }
  const float* q() const { return qkv.data(); }
  const float* k() const { return qkv.data() + kH * kHD; }
  const float* v() const { return qkv.data() + 2 * kH * kHD; }
  float* dq() { return dqkv.data(); }
  float* dk() { return dqkv.data() + kH * kHD; }
  float* dv() { return dqkv.data() + 2 * kH * kHD; }
};

void set_counters(benchmark::State& state, int Tn, bool backward, double bytes) {
  const double pairs = double(Tn) * (Tn + 1) / 2;  // causal band
  const double flops = (backward ? 12.0 : 4.0) * kHD * pairs * kH * kB;
  state.counters["tokens_per_s"] =
      benchmark::Counter(double(kB) * Tn, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["GFLOP/s"] =
      benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["attn_bytes"] = bytes;
  state.counters["threads"] = tfm::host::num_threads();
}

void bm_naive(benchmark::State& state, bool backward) {
  const int Tn = int(state.range(0));
  const attention_shape s0{kB, Tn, kH, kH, kHD, 0, 0, 0};
  const double bytes =
      double(naive_probs_size(s0) + (backward ? naive_scratch_size(s0) : 0)) * sizeof(float);
  if (bytes > kNaiveLimitBytes) {
    state.counters["attn_bytes"] = bytes;
    state.SkipWithError(("naive would need " + std::to_string(bytes) + " bytes").c_str());
    return;
  }
  inputs in(Tn);
  std::vector<float> probs(naive_probs_size(in.s)), scratch(naive_scratch_size(in.s) + 1);
  for (auto _ : state) {
    attention_naive_forward<float, kHD>(in.s, in.m, in.q(), in.k(), in.v(), in.out.data(),
                                        probs.data());
    if (backward)
      attention_naive_backward<float, kHD>(in.s, in.m, in.q(), in.k(), in.v(), probs.data(),
                                           in.dout.data(), in.dq(), in.dk(), in.dv(),
                                           scratch.data());
    benchmark::DoNotOptimize(in.out.data());
    benchmark::DoNotOptimize(in.dqkv.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, Tn, backward, bytes);
}

void bm_flash(benchmark::State& state, bool backward, detail::attn::flash_backward_schedule schedule) {
  const int Tn = int(state.range(0));
  detail::attn::flash_backward_schedule_used = schedule;
  inputs in(Tn);
  const int threads = tfm::host::num_threads();
  std::vector<float> lse(std::size_t(kB) * kH * Tn), scratch(flash_scratch_size(in.s, threads) + 1);
  const double bytes =
      double(lse.size() + (backward ? flash_scratch_size(in.s, threads) : 0)) * sizeof(float);
  for (auto _ : state) {
    attention_flash_forward<float, kHD>(in.s, in.m, in.q(), in.k(), in.v(), in.out.data(),
                                        lse.data());
    if (backward)
      attention_flash_backward<float, kHD>(in.s, in.m, in.q(), in.k(), in.v(), in.out.data(),
                                           in.dout.data(), lse.data(), in.dq(), in.dk(), in.dv(),
                                           scratch.data());
    benchmark::DoNotOptimize(in.out.data());
    benchmark::DoNotOptimize(in.dqkv.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, Tn, backward, bytes);
  detail::attn::flash_backward_schedule_used = detail::attn::flash_backward_schedule::automatic;
}

void register_all() {
  using schedule = detail::attn::flash_backward_schedule;
  const int seqs[] = {256, 512, 1024, 2048, 4096, 8192};
  for (int Tn : seqs) {
    for (bool bwd : {false, true}) {
      const std::string pass = bwd ? "fwd_bwd" : "fwd";
      benchmark::RegisterBenchmark(("attention_naive_" + pass).c_str(), bm_naive, bwd)
          ->Arg(Tn)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
      benchmark::RegisterBenchmark(("attention_flash_" + pass).c_str(), bm_flash, bwd, schedule::automatic)
          ->Arg(Tn)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
    // the backward's two passes (dK/dV, then dQ recomputing P and dS) instead of the one pass
    // that (b, kv head) pairs enough for the threads allow
    benchmark::RegisterBenchmark("attention_flash_fwd_bwd_two_pass", bm_flash, true, schedule::two_pass)
        ->Arg(Tn)
        ->Unit(benchmark::kMillisecond)
        ->UseRealTime();
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::AddCustomContext("tfm_threads", std::to_string(tfm::host::num_threads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
