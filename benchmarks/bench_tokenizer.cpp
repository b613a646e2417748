// Byte-level BPE: encoding with GPT-2's vocabulary and training, on tiny Shakespeare (from
// ../shared/data, or $TFM_SHARED_DATA). Benchmarks whose data is absent skip with a message.
//   BM_bpe_encode/gpt2_cold      a fresh cache each iteration (first pass over the text)
//   BM_bpe_encode/gpt2_warm      the pre-token cache kept between iterations
//   BM_bpe_encode_parallel/gpt2/threads:N   encode_parallel on N threads (cold caches)
//   BM_bpe_train/vocab:4096      word counting + 3,839 merges on tiny Shakespeare
//   BM_bpe_train_large/vocab:32768  on the file named by $TFM_BENCH_LARGE_CORPUS (skips without)
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

#include "tfm/tokenizer/tokenizer.hpp"

#ifndef TFM_BENCH_SHARED_DATA
#define TFM_BENCH_SHARED_DATA "../shared/data"
#endif

namespace {

std::filesystem::path shared_data(const std::string& rel) {
  const char* env = std::getenv("TFM_SHARED_DATA");
  return std::filesystem::path(env && *env ? env : TFM_BENCH_SHARED_DATA) / rel;
}

const std::string* shakespeare() {
  static const std::optional<std::string> text = []() -> std::optional<std::string> {
    const auto p = shared_data("corpus/tinyshakespeare.txt");
    if (!std::filesystem::exists(p)) return std::nullopt;
    return tfm::detail::read_text_file(p);
  }();
  return text ? &*text : nullptr;
}

const tfm::bpe_tokenizer* gpt2() {
  static const std::optional<tfm::bpe_tokenizer> tok = []() -> std::optional<tfm::bpe_tokenizer> {
    const auto p = shared_data("tokenizer/gpt2");
    if (!std::filesystem::exists(p / "vocab.json")) return std::nullopt;
    return tfm::load_hf_vocab_dir(p);
  }();
  return tok ? &*tok : nullptr;
}

bool need(benchmark::State& state, const void* p, const char* what) {
  if (p) return true;
  state.SkipWithError((std::string("SKIP: ") + what + " is absent (set TFM_SHARED_DATA)").c_str());
  return false;
}

void BM_bpe_encode(benchmark::State& state, bool warm) {
  const auto* text = shakespeare();
  const auto* base = gpt2();
  if (!need(state, text, "corpus/tinyshakespeare.txt") || !need(state, base, "tokenizer/gpt2")) return;
  std::optional<tfm::bpe_tokenizer> tok(*base);  // a copy: its caches start empty
  std::size_t n = 0;
  for (auto _ : state) {
    if (!warm) {
      state.PauseTiming();
      tok.emplace(*base);
      state.ResumeTiming();
    }
    auto ids = tok->encode(*text);
    n = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(std::int64_t(state.iterations() * text->size()));
  state.counters["tokens"] = double(n);
}
BENCHMARK_CAPTURE(BM_bpe_encode, gpt2_cold, false)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_bpe_encode, gpt2_warm, true)->Unit(benchmark::kMillisecond);

void BM_bpe_encode_parallel(benchmark::State& state) {
  const auto* text = shakespeare();
  const auto* base = gpt2();
  if (!need(state, text, "corpus/tinyshakespeare.txt") || !need(state, base, "tokenizer/gpt2")) return;
  const int threads = int(state.range(0));
  std::optional<tfm::bpe_tokenizer> tok;
  for (auto _ : state) {
    state.PauseTiming();
    tok.emplace(*base);
    state.ResumeTiming();
    auto ids = tok->encode_parallel(*text, threads);
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(std::int64_t(state.iterations() * text->size()));
}
BENCHMARK(BM_bpe_encode_parallel)->Name("BM_bpe_encode_parallel/gpt2")->ArgName("threads")->Arg(1)->Arg(2)
    ->UseRealTime()->Unit(benchmark::kMillisecond);

void train(benchmark::State& state, const std::string& text) {
  tfm::bpe_train_options o;
  o.vocab_size = std::size_t(state.range(0));
  std::size_t merges = 0;
  for (auto _ : state) {
    tfm::bpe_trainer t(o);
    t.add_text(text);
    auto tok = t.train();
    merges = tok.merges().size();
    benchmark::DoNotOptimize(&tok);
  }
  state.SetBytesProcessed(std::int64_t(state.iterations() * text.size()));
  state.counters["merges"] = double(merges);
}

void BM_bpe_train(benchmark::State& state) {
  const auto* text = shakespeare();
  if (!need(state, text, "corpus/tinyshakespeare.txt")) return;
  train(state, *text);
}
BENCHMARK(BM_bpe_train)->ArgName("vocab")->Arg(4096)->Unit(benchmark::kMillisecond);

void BM_bpe_train_large(benchmark::State& state) {
  const char* p = std::getenv("TFM_BENCH_LARGE_CORPUS");
  if (!p || !std::filesystem::exists(p)) {
    state.SkipWithError("SKIP: set TFM_BENCH_LARGE_CORPUS to a large text file (e.g. 100 MB of docs)");
    return;
  }
  static const std::string text = tfm::detail::read_text_file(p);
  train(state, text);
}
BENCHMARK(BM_bpe_train_large)->ArgName("vocab")->Arg(32768)->Iterations(1)->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
