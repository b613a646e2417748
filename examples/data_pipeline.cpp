// tfm_data_pipeline — runs tfm::data::pipeline over files and directories of .txt and .jsonl
// documents and writes the cleaned corpus (JSONL, {"text", "source"}) and its report (JSON),
// both atomically; the report table goes to the terminal.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"
#include "tfm/data/pipeline.hpp"

namespace {

void usage(std::FILE* f) {
  std::fprintf(f,
R"(usage: tfm_data_pipeline [options] INPUT... -o OUTPUT.jsonl

Reads INPUT files and directories (recursively: *.txt, one document per file, and *.jsonl,
a "text" field per line), then cleans (UTF-8 repair, NFC, control characters, whitespace),
filters (Gopher quality and repetition), removes exact and MinHash near duplicates and
scrubs e-mails, IPs, card and phone numbers. Writes OUTPUT.jsonl and OUTPUT.report.json.

options:
  -o, --output PATH        output JSONL (required)
  --report PATH            report JSON (default: OUTPUT with .report.json)
  --separator STR          split .txt files on lines equal to STR (e.g. %% for fortune files)
  --field NAME             JSONL text field (default: text)
  --short-documents        thresholds for short documents: no word-count, stop-word,
                           bullet, ellipsis-line or line/paragraph repetition tests
  --no-quality --no-repetition --no-exact-dedup --no-near-dedup --no-pii
                           switch a stage off
  --line-dedup             drop lines (>= 20 bytes) seen in earlier documents
  --min-words N            Gopher minimum word count (default 50)
  --bands B --rows R       MinHash LSH shape (default 14 x 8)
  --verify J               estimated Jaccard a candidate pair needs (default 0.7)
  --max-doc-bytes N        skip documents larger than N bytes (default 268435456)
  --quiet                  no progress and no table
  -h, --help               this text
)");
}

}  // namespace

int main(int argc, char** argv) {
  tfm::data::pipeline_config cfg;
  std::vector<std::filesystem::path> inputs;
  std::filesystem::path output, report;
  bool quiet = false;
  try {
    tfm::examples::cli c(argc, argv, "tfm_data_pipeline", [] { usage(stdout); });
    while (c.next()) {
      if (c.is("-o") || c.is("--output")) output = c.value();
      else if (c.is("--report")) report = c.value();
      else if (c.is("--separator")) cfg.read.txt_separator = c.value();
      else if (c.is("--field")) cfg.read.jsonl_field = c.value();
      else if (c.is("--short-documents")) {
        auto& q = cfg.gopher_quality;
        q.min_words = q.min_stop_words = std::nullopt;
        q.max_bullet_lines_ratio = q.max_ellipsis_lines_ratio = std::nullopt;
        auto& r = cfg.gopher_repetition;
        r.max_dup_line_frac = r.max_dup_para_frac = r.max_dup_line_char_frac = r.max_dup_para_char_frac = std::nullopt;
      }
      else if (c.is("--no-quality")) cfg.quality = false;
      else if (c.is("--no-repetition")) cfg.repetition = false;
      else if (c.is("--no-exact-dedup")) cfg.exact_dedup = false;
      else if (c.is("--no-near-dedup")) cfg.near_dedup = false;
      else if (c.is("--no-pii")) cfg.scrub_pii = false;
      else if (c.is("--line-dedup")) cfg.line_dedup = true;
      else if (c.is("--min-words")) {
        std::size_t n = 0;
        c.number(n);
        cfg.gopher_quality.min_words = n;
      }
      else if (c.is("--bands")) c.number(cfg.minhash.bands);
      else if (c.is("--rows")) c.number(cfg.minhash.rows);
      else if (c.is("--verify")) c.number(cfg.minhash.verify_threshold);
      else if (c.is("--max-doc-bytes")) c.number(cfg.read.max_document_bytes);
      else if (c.is("--quiet")) quiet = true;
      else if (c.operand()) inputs.emplace_back(c.current());
      else c.unknown();
    }
    if (inputs.empty() || output.empty()) {
      usage(stderr);
      return 2;
    }
    if (report.empty()) report = output.parent_path() / (output.stem().string() + ".report.json");
    cfg.show_progress = !quiet;
    const auto rep = tfm::data::pipeline(cfg).run(inputs, output, report);
    if (!quiet) std::cout << rep.to_table() << "wrote " << output.string() << " and " << report.string() << '\n';
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tfm_data_pipeline: %s\n", e.what());
    return 1;
  }
}
