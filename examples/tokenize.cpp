// tfm_tokenize — trains a byte-level BPE tokenizer on a corpus (or loads one) and writes the
// corpus as train/validation token shards. Run with --help.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "cli.hpp"
#include "tfm/data/shard.hpp"
#include "tfm/tokenizer/tokenizer.hpp"

namespace fs = std::filesystem;

namespace {

const char* usage = R"(usage: tfm_tokenize --corpus FILE [--corpus FILE ...] --out DIR
                    (--vocab-size N [--pre gpt2|starcoder|cl100k] | --hf-dir DIR | --load FILE)
                    [--val-fraction F] [--split-docs-on STR] [--threads N] [--quiet]

Tokenises a text corpus into train/validation token shards (DIR/train.bin, DIR/val.bin; the
format is documented in include/tfm/data/shard.hpp).

The tokenizer is one of:
  --vocab-size N     train a byte-level BPE with N tokens (256 bytes + merges + <|endoftext|>)
                     on the training part of the corpus; written to DIR/tokenizer.tfm and
                     DIR/tokenizer.json (Hugging Face layout)
  --pre KIND         pre-tokenizer for training: gpt2 (default), starcoder, cl100k
  --hf-dir DIR       load vocab.json + merges.txt (+ tokenizer_config.json) from DIR
  --load FILE        load a tokenizer saved by tfm (.tfm) or a Hugging Face tokenizer.json

Documents: each corpus file is a document; --split-docs-on STR also splits files at STR
(e.g. "<|endoftext|>"). Each document is preceded by <|endoftext|> in the shards.
Split: the last F (default 0.1) of the documents go to validation; a corpus of one document
is split at the line break nearest (1 - F) of its bytes (the usual 90/10 tiny Shakespeare split).
  --threads N        encoding threads (default: all cores)
  --quiet            no progress bar
)";

struct args {
  std::vector<fs::path> corpus;
  fs::path out, hf_dir, load;
  std::size_t vocab_size = 0;
  tfm::pre_tokenizer_kind pre = tfm::pre_tokenizer_kind::gpt2;
  double val_fraction = 0.1;
  std::string split_on;
  int threads = 0;
  bool quiet = false;
};

void print_usage() { std::fputs(usage, stdout); }

args parse(int argc, char** argv) {
  args a;
  tfm::examples::cli c(argc, argv, "tfm_tokenize", print_usage);
  while (c.next()) {
    if (c.is("--corpus")) a.corpus.emplace_back(c.value());
    else if (c.is("--out")) a.out = c.value();
    else if (c.is("--vocab-size")) c.number(a.vocab_size);
    else if (c.is("--pre")) a.pre = tfm::parse_pre_tokenizer_kind(c.value(), "--pre");
    else if (c.is("--hf-dir")) a.hf_dir = c.value();
    else if (c.is("--load")) a.load = c.value();
    else if (c.is("--val-fraction")) c.number(a.val_fraction);
    else if (c.is("--split-docs-on")) a.split_on = c.value();
    else if (c.is("--threads")) c.non_negative(a.threads);
    else if (c.is("--quiet")) a.quiet = true;
    else c.unknown();
  }
  const int sources = (a.vocab_size > 0) + !a.hf_dir.empty() + !a.load.empty();
  if (a.corpus.empty() || a.out.empty() || sources != 1)
    throw tfm::invalid_argument("need --corpus, --out and exactly one of --vocab-size, --hf-dir, --load (see --help)");
  if (!(a.val_fraction >= 0 && a.val_fraction < 1)) throw tfm::invalid_argument("--val-fraction must be in [0, 1)");
  return a;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const args a = parse(argc, argv);
    // documents (views into the corpus texts)
    std::vector<std::string> texts;
    for (const auto& p : a.corpus) texts.push_back(tfm::detail::read_text_file(p));
    std::vector<std::string_view> docs;
    for (const auto& t : texts) {
      std::string_view s = t;
      if (a.split_on.empty()) {
        docs.push_back(s);
        continue;
      }
      for (std::size_t b = 0;;) {
        const auto e = s.find(a.split_on, b);
        if (e != b) docs.push_back(s.substr(b, e == std::string_view::npos ? std::string_view::npos : e - b));
        if (e == std::string_view::npos) break;
        b = e + a.split_on.size();
      }
    }
    std::vector<std::string_view> train, val;
    if (docs.size() == 1) {
      const std::string_view d = docs[0];
      std::size_t cut = std::size_t(double(d.size()) * (1 - a.val_fraction));
      if (a.val_fraction > 0) {
        const auto nl = d.find('\n', cut);
        cut = nl == std::string_view::npos ? d.size() : nl + 1;
      } else {
        cut = d.size();
      }
      train.push_back(d.substr(0, cut));
      if (cut < d.size()) val.push_back(d.substr(cut));
    } else {
      const std::size_t n_val = std::size_t(double(docs.size()) * a.val_fraction + 0.5);
      train.assign(docs.begin(), docs.end() - std::ptrdiff_t(n_val));
      val.assign(docs.end() - std::ptrdiff_t(n_val), docs.end());
    }
    fs::create_directories(a.out);

    auto t0 = std::chrono::steady_clock::now();
    std::optional<tfm::bpe_tokenizer> tok;
    if (a.vocab_size > 0) {
      tfm::bpe_train_options o;
      o.vocab_size = a.vocab_size;
      o.pre = a.pre;
      o.progress = !a.quiet;
      tfm::bpe_trainer trainer(o);
      for (const auto d : train) trainer.add_text(d);
      std::printf("counted %zu distinct pre-tokens in %zu bytes (%.2fs)\n", trainer.unique_words(),
                  trainer.source_bytes(), seconds_since(t0));
      tok.emplace(trainer.train());
      std::printf("trained %zu tokens (%zu merges) in %.2fs\n", tok->vocab_size(), tok->merges().size(),
                  seconds_since(t0));
      tfm::save(*tok, a.out / "tokenizer.tfm");
      tfm::save_hf_tokenizer_json(*tok, a.out / "tokenizer.json");
      std::printf("wrote %s and %s\n", (a.out / "tokenizer.tfm").c_str(), (a.out / "tokenizer.json").c_str());
    } else if (!a.hf_dir.empty()) {
      tok.emplace(tfm::load_hf_vocab_dir(a.hf_dir));
    } else if (a.load.extension() == ".json") {
      tok.emplace(tfm::load_hf_tokenizer_json(a.load));
    } else {
      tok.emplace(tfm::load(a.load));
    }

    const auto eot = tok->eot_id();
    for (const auto& [name, part] : {std::pair{"train.bin", &train}, std::pair{"val.bin", &val}}) {
      t0 = std::chrono::steady_clock::now();
      tfm::shard_writer w(a.out / name, std::uint32_t(tok->vocab_size()), eot);
      std::size_t bytes = 0;
      for (const auto d : *part) {
        w.add_document(tok->encode_parallel(d, a.threads), d.size());
        bytes += d.size();
      }
      const auto n = w.token_count();
      w.finish();
      const double s = seconds_since(t0);
      std::printf("%s: %zu documents, %zu bytes -> %llu tokens (%.2f bytes/token), %.2fs (%.1f MB/s)\n",
                  (a.out / name).c_str(), part->size(), bytes, static_cast<unsigned long long>(n),
                  n ? double(bytes) / double(n) : 0.0, s, double(bytes) / 1e6 / std::max(s, 1e-9));
    }
    // the shards read back
    tfm::token_shard check(a.out / "train.bin");
    std::printf("checked %s: %zu tokens, vocab %u\n", check.path().c_str(), check.size(), check.vocab_size());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tfm_tokenize: %s\n", e.what());
    return 1;
  }
}
