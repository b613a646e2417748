// CUDA benchmarks of the model (nn/model.cuh):
//   BM_flash_fwd/<f32|bf16|bf16_mma>/<causal>/B/H/hd/T, BM_flash_bwd/...: the flash attention
//     kernels alone on [B, T, H, hd] q, k, v (MHA), counter TFLOP/s with 4·B·H·T²·hd for the
//     forward and 2.5× that for the backward, halved for causal masks. bf16: the CUDA-core (SIMT)
//     kernels (attention_flash_*_bf16_simt); bf16_mma: the tensor-core ones (_mma). Shapes:
//     hd 128, T 4096 (the targets' shape) and one GPT-2 small layer (B 16, H 12, hd 64, T 1024).
//   BM_gpt2_small_fwd/bf16/B/T: the forward alone (logits and loss).
//   BM_gpt2_small_profile/bf16/B/T: a step with per-operation GPU times (counters "ms:<op>").
//   BM_gpt2_small_step/<f32|bf16>/B/T: forward + backward of GPT-2 small (presets::gpt2<>, flash
//     attention, head padded to 50,304 rows, float parameters; bf16: bf16 compute over them) on
//     random tokens; tokens_per_s.
//   BM_ops/<op>/offset: the backend's memory-bound operations at GPT-2 small's B=16, T=1024
//     sizes, bf16 activations over float parameters (what the bf16 step calls): norm_fwd /
//     norm_bwd (LayerNorm, 16384 rows of 768), gelu_fwd / gelu_bwd (16384×3072), add (residual:
//     float + bf16 → float, 16384×768), narrow (the weights' bf16 copy, 124.4M floats); counter
//     GB_per_s = the bytes each must move / GPU time. offset 0: aligned arrays (the 16-byte-word
//     kernels); offset 1: every array one element off (the element-at-a-time kernels). For the
//     norms the argument picks the kernels instead: 0 warp per row, 1 block per row.
//   BM_gpt2_small_train/<f32|bf16>/B/T: one whole train::trainer step on the same model —
//     batch gathering on the host and its upload, forward, backward, the device gradient norm,
//     clipping and the fused AdamW kernel (cuda_adamw) — tokens_per_s.
// Timed with CUDA events on the backend's / a private stream and UseManualTime (GPU time).
// Without a usable device the binary says so and exits 0.
#include <benchmark/benchmark.h>

#include <cuda_bf16.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/core/rng.hpp"
#include "tfm/nn/model.cuh"
#include "tfm/train/optim_cuda.cuh"
#include "tfm/train/trainer.hpp"

namespace {

namespace cu = tfm::cuda;
namespace nn = tfm::nn;

template <class N>
__global__ void fill_normal(N* p, std::size_t n, std::uint64_t seed) {
  for (std::size_t i = blockIdx.x * std::size_t{blockDim.x} + threadIdx.x; i < n;
       i += std::size_t{gridDim.x} * blockDim.x) {
    const float x = tfm::rng::normal(seed, 0, i);
    if constexpr (std::is_same_v<N, __nv_bfloat16>)
      p[i] = __float2bfloat16(x);
    else
      p[i] = x;
  }
}

// One body() per benchmark iteration, timed with CUDA events on `s` (GPU time, UseManualTime).
template <class Body>
void time_on_stream(benchmark::State& state, cudaStream_t s, Body&& body) {
  cu::event start, stop;
  for (auto _ : state) {
    start.record(s);
    body();
    stop.record(s);
    stop.synchronize();
    state.SetIterationTime(double(cu::event::elapsed_ms(start, stop)) * 1e-3);
  }
}
void count_tokens(benchmark::State& state, std::int64_t per_iteration) {
  state.counters["tokens_per_s"] =
      benchmark::Counter(double(per_iteration) * double(state.iterations()), benchmark::Counter::kIsRate);
}

// args: causal, B, H, hd, T. Mma (bf16): the tensor-core kernels, else the SIMT ones.
template <class E, bool Backward, bool Mma = false>
void BM_flash(benchmark::State& state) {
  const bool causal = state.range(0) != 0;
  const int B = int(state.range(1)), H = int(state.range(2)), hd = int(state.range(3)), T = int(state.range(4));
  const std::int64_t ld = std::int64_t(H) * hd;
  const nn::attention_shape s{B, T, H, H, hd, ld, ld, ld};
  nn::attention_mask m;
  m.causal = causal;
  const std::size_t n = std::size_t(B) * T * H * hd, nl = std::size_t(B) * H * T;
  cu::stream st;
  cu::device_buffer<E> q(n), k(n), v(n), o(n), dout(n), dq(n), dk(n), dv(n);
  cu::device_buffer<float> lse(nl);
  const std::size_t scratch =
      std::is_same_v<E, float> ? nn::attention_flash_cuda_scratch_size(s) : nn::attention_flash_bf16_scratch_floats(s);
  cu::device_buffer<float> scr(scratch);
  fill_normal<<<1024, 256, 0, st.get()>>>(q.data(), n, 1);
  fill_normal<<<1024, 256, 0, st.get()>>>(k.data(), n, 2);
  fill_normal<<<1024, 256, 0, st.get()>>>(v.data(), n, 3);
  fill_normal<<<1024, 256, 0, st.get()>>>(dout.data(), n, 4);
  TFM_CUDA_CHECK(cudaGetLastError());
  auto fwd = [&] {
    if constexpr (std::is_same_v<E, float>)
      nn::attention_flash_forward_cuda<float, 0>(s, m, q.data(), k.data(), v.data(), o.data(), lse.data(), st.get());
    else if constexpr (Mma)
      nn::attention_flash_forward_bf16_mma(s, m, q.data(), k.data(), v.data(), o.data(), lse.data(), st.get());
    else
      nn::attention_flash_forward_bf16_simt(s, m, q.data(), k.data(), v.data(), o.data(), lse.data(), st.get());
  };
  auto bwd = [&] {
    if constexpr (std::is_same_v<E, float>)
      nn::attention_flash_backward_cuda<float, 0>(s, m, q.data(), k.data(), v.data(), o.data(), dout.data(),
                                                  lse.data(), dq.data(), dk.data(), dv.data(), scr.data(), st.get());
    else if constexpr (Mma)
      nn::attention_flash_backward_bf16_mma(s, m, q.data(), k.data(), v.data(), o.data(), dout.data(), lse.data(),
                                            dq.data(), dk.data(), dv.data(), scr.data(), st.get());
    else
      nn::attention_flash_backward_bf16_simt(s, m, q.data(), k.data(), v.data(), o.data(), dout.data(), lse.data(),
                                             dq.data(), dk.data(), dv.data(), scr.data(), st.get());
  };
  fwd();
  if (Backward) bwd();  // warm-up
  st.synchronize();
  time_on_stream(state, st.get(), [&] {
    if (Backward)
      bwd();
    else
      fwd();
  });
  double flops = 4.0 * B * H * double(T) * T * hd;
  if (Backward) flops *= 2.5;
  if (causal) flops *= 0.5;
  state.counters["TFLOP/s"] =
      benchmark::Counter(flops * 1e-12 * double(state.iterations()), benchmark::Counter::kIsRate);
}

// The output head padded from 50,257 to 50,304 rows (vocab_multiple, as llm.c does): the same
// model (the padded rows are zero and outside the loss), with the head's products on aligned
// operands (cuBLASLt ran 16384×50257×768 at 126 TFLOP/s and 16384×50304×768 at 617 on an H200).
struct gpt2_flash : nn::presets::gpt2<> {
  using attention = nn::attn::config<nn::attn::mha, nn::attn::causal, nn::attn::flash>;
  static constexpr int vocab_multiple = 64;
};

// bf16 compute over float weights (docs/model.md "Mixed precision")
struct gpt2_flash_bf16 : gpt2_flash {
  using precision = nn::precision_bf16;
};

// n random tokens below V and n random targets (fixed seeds).
void random_batch(int V, std::size_t n, std::vector<std::int32_t>& tok, std::vector<std::int32_t>& tgt) {
  tok.resize(n);
  tgt.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    tok[i] = std::int32_t(tfm::rng::random_u32(1, 0, i) % std::uint32_t(V));
    tgt[i] = std::int32_t(tfm::rng::random_u32(1, 1, i) % std::uint32_t(V));
  }
}

// args: B, T. forward: the forward alone (logits and loss), for the split of a step's time;
// step: forward + backward; profile: a step with the backend's per-operation profiler on
// (TFM_CUDA_PROFILE=1, backend/cuda/profile.hpp): counters "ms:<op>" per step and a table on
// stdout, most time first (the profiler's events add a little time; the step's own time is
// the step row's).
enum class gpt2_run { forward, step, profile };
template <class Cfg, gpt2_run Run>
void BM_gpt2_small(benchmark::State& state) {
  const int B = int(state.range(0)), T = int(state.range(1));
  if (Run == gpt2_run::profile) setenv("TFM_CUDA_PROFILE", "1", 1);
  nn::model<Cfg, tfm::space::cuda> m;
  if (Run == gpt2_run::profile) unsetenv("TFM_CUDA_PROFILE");
  m.init(42);
  std::vector<std::int32_t> tok, tgt;
  random_batch(m.sizes().vocab, std::size_t(B) * T, tok, tgt);
  auto run = [&] {
    m.forward(tok.data(), tgt.data(), B, T);  // waits for the loss (one device→host copy)
    if (Run == gpt2_run::forward) return;
    m.zero_grad();
    m.backward();
  };
  run();  // warm-up (plans the arena, cuBLASLt plans)
  auto& be = m.get_backend();
  be.synchronize();
  (void)be.profile();
  time_on_stream(state, be.stream(), run);
  count_tokens(state, std::int64_t(B) * T);
  if (Run != gpt2_run::profile) return;
  const auto steps = double(state.iterations());
  double total = 0;
  std::printf("\nper-operation GPU time, B=%d T=%d, per step (%.0f steps):\n", B, T, steps);
  for (auto const& e : be.profile()) {
    const double ms = e.ms / steps;
    total += ms;
    std::printf("  %-30s %6d calls %9.3f ms\n", e.name.c_str(), int(e.calls / steps), ms);
    state.counters["ms:" + e.name] = ms;
  }
  std::printf("  (sum of scopes, nested ones twice: %.3f ms)\n", total);
  // GEMMs that cuBLASLt could not run (tfm's fallback ran them): count and the last refusal
  state.counters["gemm_fallbacks"] = double(be.lt().fallbacks());
  std::printf("  GEMM fallbacks: %zu%s%s\n", be.lt().fallbacks(), be.lt().last_rejection().empty() ? "" : "; last refusal: ",
              be.lt().last_rejection().c_str());
}

// args: B, T. The trainer's own step (train_step()), on random tokens of a 4M-token corpus.
template <class Cfg>
void BM_gpt2_small_train(benchmark::State& state) {
  namespace tr = tfm::train;
  const int B = int(state.range(0)), T = int(state.range(1));
  nn::model<Cfg, tfm::space::cuda> m;
  m.init(42);
  const auto V = std::uint32_t(m.sizes().vocab);
  std::vector<std::uint32_t> ids(std::size_t{1} << 22);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = tfm::rng::random_u32(2, 0, i) % V;
  tr::batch_source src(tr::token_corpus::from_tokens(std::move(ids), 0, V), tr::split{0, std::uint64_t{1} << 22}, T,
                       tr::sampling::random_windows, 3);
  tr::cuda_adamw<float> opt(m.num_trainable(), tr::decay_groups(m.parameter_table(), {.weight_decay = 0.1}),
                            {.beta1 = 0.9, .beta2 = 0.95});
  tr::train_options o;
  o.batch = B;
  o.steps = std::int64_t{1} << 30;
  o.show_progress = false;
  tr::trainer t(m, opt, tr::warmup_cosine{6e-4, 6e-5, 10, 100000}, src, o);
  t.train_step();  // warm-up (arena, cuBLASLt plans)
  auto& be = m.get_backend();
  be.synchronize();
  time_on_stream(state, be.stream(), [&] {
    const double loss = t.train_step();  // ends after the update was queued
    if (!std::isfinite(loss)) state.SkipWithError("non-finite loss");
  });
  count_tokens(state, std::int64_t(B) * T);
}

enum class op_kind { norm_fwd, norm_bwd, gelu_fwd, gelu_bwd, add, narrow };

// args: offset (0 or 1 element from the allocation's alignment); norms: 0 warp-per-row kernels,
// 1 block-per-row kernels (aligned arrays either way).
template <op_kind K>
void BM_ops(benchmark::State& state) {
  using bf = tfm::bfloat16;
  constexpr bool norm = K == op_kind::norm_fwd || K == op_kind::norm_bwd;
  const std::int64_t off = norm ? 0 : state.range(0);
  constexpr std::int64_t N = 16384, D = 768, F = 3072, P = 124439808;
  constexpr std::int64_t n = norm || K == op_kind::add ? N * D : K == op_kind::narrow ? P : N * F;
  nn::cuda_backend<float> be;
  if (norm) be.set_warp_norms(state.range(0) == 0);
  cu::device_buffer<float> fa(std::size_t(n + 1)), fb(std::size_t(n + 1)), w(D), b(D), stats(2 * N),
      scratch(be.norm_scratch_size(int(D))), dw(D), db(D);
  cu::device_buffer<bf> ca(std::size_t(n + 1)), cb(std::size_t(n + 1));
  fill_normal<<<1024, 256, 0, be.stream()>>>(fa.data(), fa.size(), 1);
  fill_normal<<<1024, 256, 0, be.stream()>>>(fb.data(), fb.size(), 2);
  fill_normal<<<4, 256, 0, be.stream()>>>(w.data(), w.size(), 3);
  fill_normal<<<4, 256, 0, be.stream()>>>(b.data(), b.size(), 4);
  TFM_CUDA_CHECK(cudaGetLastError());
  be.narrow(n + 1, fb.data(), ca.data());
  be.narrow(n + 1, fa.data(), cb.data());
  double bytes = 0;
  time_on_stream(state, be.stream(), [&] {
    if constexpr (K == op_kind::norm_fwd) {  // x float → y bf16, mean and rstd
      be.template norm_forward<false, bf>(N, int(D), fa.data() + off, w.data(), b.data(), ca.data() + off, stats.data(),
                                          stats.data() + N, 1e-5);
      bytes = double(N) * D * (4 + 2);
    } else if constexpr (K == op_kind::norm_bwd) {  // dy bf16, x float; dx float accumulated
      be.template norm_backward<false, bf>(N, int(D), ca.data() + off, fa.data() + off, w.data(), stats.data(),
                                           stats.data() + N, fb.data() + off, true, dw.data(), db.data(),
                                           scratch.data());
      bytes = double(N) * D * (2 + 4 + 4 + 4);
    } else if constexpr (K == op_kind::gelu_fwd) {
      be.gelu_forward_mixed(n, ca.data() + off, cb.data() + off);
      bytes = double(n) * 4;
    } else if constexpr (K == op_kind::gelu_bwd) {
      be.gelu_backward_mixed(n, ca.data() + off, cb.data() + off, cb.data() + off);
      bytes = double(n) * 6;
    } else if constexpr (K == op_kind::add) {
      be.add_mixed(n, fa.data() + off, ca.data() + off, fb.data() + off);
      bytes = double(n) * 10;
    } else {
      be.narrow(n, fa.data() + off, ca.data() + off);
      bytes = double(n) * 6;
    }
  });
  state.counters["GB_per_s"] =
      benchmark::Counter(bytes * 1e-9 * double(state.iterations()), benchmark::Counter::kIsRate);
}
void ops_args(benchmark::internal::Benchmark* b) {
  b->Arg(0)->Arg(1)->ArgNames({"offset"})->UseManualTime()->Unit(benchmark::kMicrosecond);
}
void norm_args(benchmark::internal::Benchmark* b) {
  b->Arg(0)->Arg(1)->ArgNames({"block_kernels"})->UseManualTime()->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_ops<op_kind::norm_fwd>)->Name("BM_ops/norm_fwd")->Apply(norm_args);
BENCHMARK(BM_ops<op_kind::norm_bwd>)->Name("BM_ops/norm_bwd")->Apply(norm_args);
BENCHMARK(BM_ops<op_kind::gelu_fwd>)->Name("BM_ops/gelu_fwd")->Apply(ops_args);
BENCHMARK(BM_ops<op_kind::gelu_bwd>)->Name("BM_ops/gelu_bwd")->Apply(ops_args);
BENCHMARK(BM_ops<op_kind::add>)->Name("BM_ops/add")->Apply(ops_args);
BENCHMARK(BM_ops<op_kind::narrow>)->Name("BM_ops/narrow")->Apply(ops_args);

void flash_args(benchmark::internal::Benchmark* b) {
  for (int causal : {0, 1}) b->Args({causal, 4, 16, 128, 4096});
  b->Args({1, 16, 12, 64, 1024});  // one GPT-2 small layer at B=16, T=1024
  b->ArgNames({"causal", "B", "H", "hd", "T"})->UseManualTime()->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_flash<__nv_bfloat16, false>)->Name("BM_flash_fwd/bf16")->Apply(flash_args);
BENCHMARK(BM_flash<__nv_bfloat16, false, true>)->Name("BM_flash_fwd/bf16_mma")->Apply(flash_args);
BENCHMARK(BM_flash<__nv_bfloat16, true>)->Name("BM_flash_bwd/bf16")->Apply(flash_args);
BENCHMARK(BM_flash<__nv_bfloat16, true, true>)->Name("BM_flash_bwd/bf16_mma")->Apply(flash_args);
BENCHMARK(BM_flash<float, false>)->Name("BM_flash_fwd/f32")->Apply(flash_args);
BENCHMARK(BM_flash<float, true>)->Name("BM_flash_bwd/f32")->Apply(flash_args);
// GPT-2 small rows: B=16, T=1024, GPU time, a few iterations (each is tens to hundreds of ms).
void gpt2_args(benchmark::internal::Benchmark* b) {
  b->Args({16, 1024})->ArgNames({"B", "T"})->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(5);
}
BENCHMARK(BM_gpt2_small<gpt2_flash, gpt2_run::step>)->Name("BM_gpt2_small_step/f32")->Apply(gpt2_args);
BENCHMARK(BM_gpt2_small<gpt2_flash_bf16, gpt2_run::step>)->Name("BM_gpt2_small_step/bf16")->Apply(gpt2_args);
BENCHMARK(BM_gpt2_small<gpt2_flash_bf16, gpt2_run::forward>)->Name("BM_gpt2_small_fwd/bf16")->Apply(gpt2_args);
BENCHMARK(BM_gpt2_small<gpt2_flash_bf16, gpt2_run::profile>)
    ->Name("BM_gpt2_small_profile/bf16")
    ->Apply(gpt2_args)
    ->Iterations(3);
BENCHMARK(BM_gpt2_small_train<gpt2_flash>)->Name("BM_gpt2_small_train/f32")->Apply(gpt2_args);
BENCHMARK(BM_gpt2_small_train<gpt2_flash_bf16>)->Name("BM_gpt2_small_train/bf16")->Apply(gpt2_args);

}  // namespace

int main(int argc, char** argv) {
  const std::string why = cu::why_no_device();
  if (!why.empty()) {
    std::printf("bench_model_cuda: no usable CUDA device (%s); nothing to run\n", why.c_str());
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
