// Throughput of the data pipeline stages on one thread, in bytes of input per second.
// Input: tiny Shakespeare ($TFM_SHARED_DATA or the configured shared data folder,
// corpus/tinyshakespeare.txt) cut into pseudo-documents of 60 lines; when the file is absent
// a message says so and generated text of the same size is used instead.
//   BM_data/clean           UTF-8 repair, controls, whitespace, NFC
//   BM_data/clean_filter    clean + Gopher quality + Gopher repetition (target >= 20 MB/s)
//   BM_data/quality, BM_data/repetition
//   BM_data/minhash         112-permutation signatures of word 5-grams (target >= 5 MB/s)
//   BM_data/minhash_lsh     signatures + LSH insertion
//   BM_data/pii             PII scrubbing
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tfm/data/pipeline.hpp"

namespace {

std::vector<std::string> load_documents() {
  std::filesystem::path root = TFM_SHARED_DATA_DIR;
  if (const char* p = std::getenv("TFM_SHARED_DATA"); p && *p) root = p;
  const auto path = root / "corpus" / "tinyshakespeare.txt";
  std::vector<std::string> docs;
  std::ifstream f(path);
  if (f) {
    std::string line, doc;
    int n = 0;
    while (std::getline(f, line)) {
      doc += line + "\n";
      if (++n % 60 == 0) { docs.push_back(std::move(doc)); doc.clear(); }
    }
    if (!doc.empty()) docs.push_back(doc);
  } else {
    std::fprintf(stderr, "bench_data: %s is absent; using generated text instead\n", path.c_str());
    std::mt19937_64 rng(1);
    std::vector<std::string> vocab;
    for (int i = 0; i < 5000; ++i) {
      std::string w(3 + rng() % 7, 'a');
      for (auto& c : w) c = static_cast<char>('a' + rng() % 26);
      vocab.push_back(w);
    }
    for (int d = 0; d < 700; ++d) {
      std::string s;
      for (int i = 0; i < 300; ++i) s += (i ? (i % 12 ? " " : "\n") : "") + vocab[rng() % vocab.size()];
      docs.push_back(s);
    }
  }
  return docs;
}

const std::vector<std::string>& documents() {
  static const std::vector<std::string> d = load_documents();
  return d;
}

int64_t total_bytes(const std::vector<std::string>& docs) {
  int64_t b = 0;
  for (const auto& d : docs) b += static_cast<int64_t>(d.size());
  return b;
}

template <class F>
void run(benchmark::State& state, F&& per_doc) {
  const auto& docs = documents();
  for (auto _ : state) {
    for (const auto& d : docs) per_doc(d);
  }
  state.SetBytesProcessed(state.iterations() * total_bytes(docs));
  state.counters["docs"] = static_cast<double>(docs.size());
}

void BM_clean(benchmark::State& state) {
  run(state, [](const std::string& d) { benchmark::DoNotOptimize(tfm::data::clean_text(d)); });
}

void BM_clean_filter(benchmark::State& state) {
  run(state, [](const std::string& d) {
    const std::string c = tfm::data::clean_text(d);
    benchmark::DoNotOptimize(tfm::data::gopher_quality(c));
    benchmark::DoNotOptimize(tfm::data::gopher_repetition(c));
  });
}

void BM_quality(benchmark::State& state) {
  run(state, [](const std::string& d) { benchmark::DoNotOptimize(tfm::data::gopher_quality(d)); });
}

void BM_repetition(benchmark::State& state) {
  run(state, [](const std::string& d) { benchmark::DoNotOptimize(tfm::data::gopher_repetition(d)); });
}

void BM_minhash(benchmark::State& state) {
  tfm::data::minhash mh;
  std::vector<uint32_t> sig(static_cast<std::size_t>(mh.num_perm()));
  run(state, [&](const std::string& d) {
    benchmark::DoNotOptimize(mh.signature(d, sig.data()));
    benchmark::ClobberMemory();
  });
}

void BM_minhash_lsh(benchmark::State& state) {
  tfm::data::minhash mh;
  std::vector<uint32_t> sig(static_cast<std::size_t>(mh.num_perm()));
  const auto& docs = documents();
  for (auto _ : state) {
    tfm::data::minhash_lsh lsh;
    for (const auto& d : docs) {
      mh.signature(d, sig.data());
      lsh.add(sig.data());
    }
    benchmark::DoNotOptimize(lsh.size());
  }
  state.SetBytesProcessed(state.iterations() * total_bytes(docs));
}

void BM_pii(benchmark::State& state) {
  run(state, [](const std::string& d) { benchmark::DoNotOptimize(tfm::data::scrub_pii(d)); });
}

}  // namespace

BENCHMARK(BM_clean)->Name("BM_data/clean")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_clean_filter)->Name("BM_data/clean_filter")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_quality)->Name("BM_data/quality")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_repetition)->Name("BM_data/repetition")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_minhash)->Name("BM_data/minhash")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_minhash_lsh)->Name("BM_data/minhash_lsh")->Unit(benchmark::kMillisecond);
BENCHMARK(BM_pii)->Name("BM_data/pii")->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
