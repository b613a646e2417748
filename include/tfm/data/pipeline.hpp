// tfm/data/pipeline.hpp — the data pipeline: read -> clean -> Gopher quality -> Gopher
// repetition -> exact dedup (-> line dedup) -> MinHash near dedup -> PII scrub -> JSONL.
// Every stage is also usable alone (clean.hpp, quality.hpp, dedup.hpp, pii.hpp, reader.hpp).
//
// A run is two passes so that memory stays bounded by the dedup indexes: pass 1 streams the
// corpus through the per-document stages and exact dedup, adds each survivor's MinHash
// signature to the LSH index and spools the survivor to `<output>.spool.tmp`; near-duplicate
// clusters are then known (first of each cluster kept) and pass 2 streams the spool through
// PII scrubbing into `<output>.tmp`, renamed to `<output>` at the end. Output rows are
// {"text": ..., "source": ...}.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"
#include "tfm/data/clean.hpp"
#include "tfm/data/dedup.hpp"
#include "tfm/data/pii.hpp"
#include "tfm/data/quality.hpp"
#include "tfm/data/reader.hpp"
#include "tfm/data/report.hpp"

namespace tfm::data {

struct pipeline_config {
  reader_config read;
  bool clean = true;
  clean_config cleaning;
  bool quality = true;
  gopher_quality_config gopher_quality;
  bool repetition = true;
  gopher_repetition_config gopher_repetition;
  bool exact_dedup = true;
  bool line_dedup = false;
  std::size_t line_dedup_min_bytes = 20;
  bool near_dedup = true;
  minhash_config minhash;
  bool scrub_pii = true;
  pii_config pii;
  bool show_progress = true;  // on stderr
};

class pipeline {
 public:
  explicit pipeline(pipeline_config cfg = {}) : cfg_(std::move(cfg)) {}
  const pipeline_config& config() const { return cfg_; }

  // Runs over files/directories and writes the cleaned corpus to `output` (JSONL). The
  // report is returned; `report_json`, when not empty, receives it as JSON (atomically).
  run_report run(const std::vector<std::filesystem::path>& inputs, const std::filesystem::path& output,
                 const std::filesystem::path& report_json = {}) {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    run_report rep;
    rep.output = output.string();
    const char* names[] = {"read", "clean", "quality", "repetition", "exact_dedup", "line_dedup",
                           "near_dedup", "pii", "write"};
    for (const char* n : names) {
      rep.stages.emplace_back();
      rep.stages.back().name = n;
    }
    auto st = [&](const char* n) -> stage_report& { return *rep.find(n); };
    auto timed = [](stage_report& s, auto&& f) {
      const auto a = clock::now();
      f();
      s.seconds += std::chrono::duration<double>(clock::now() - a).count();
    };

    corpus_reader reader(inputs, cfg_.read);
    if (output.has_parent_path()) std::filesystem::create_directories(output.parent_path());
    const std::filesystem::path spool_path = output.string() + ".spool.tmp";
    const std::filesystem::path out_tmp = output.string() + ".tmp";
    struct temp_files {  // removes what a failed run leaves behind
      std::filesystem::path a, b;
      ~temp_files() {
        std::error_code ec;
        std::filesystem::remove(a, ec);
        std::filesystem::remove(b, ec);
      }
    } cleanup{spool_path, out_tmp};
    detail::file_ptr spool(std::fopen(spool_path.c_str(), "wb"));
    if (!spool) throw error(tfm::detail::concat("pipeline: cannot write ", spool_path.string()));

    data::exact_dedup exact;
    data::line_dedup lines(cfg_.line_dedup_min_bytes);
    minhash mh(cfg_.minhash);
    minhash_lsh lsh(cfg_.minhash);
    std::vector<uint32_t> sig(static_cast<std::size_t>(mh.num_perm()));
    clean_stats cstats;
    uint64_t spooled = 0;
    progress prog("pass 1", reader.total_bytes(), cfg_.show_progress);

    reader.for_each([&](document&& doc) {
      st("read").in(doc.text.size());
      st("read").out(doc.text.size());
      std::string text;
      auto& sc = st("clean");
      sc.in(doc.text.size());
      if (cfg_.clean) timed(sc, [&] { text = clean_text(doc.text, cfg_.cleaning, &cstats); });
      else text = std::move(doc.text);
      if (text.empty()) { sc.remove("empty"); return; }
      sc.out(text.size());
      auto filter = [&](stage_report& s, bool on, auto&& f) {
        s.in(text.size());
        std::string why;
        if (on) timed(s, [&] { why = f(); });
        if (!why.empty()) { s.remove(why); return false; }
        s.out(text.size());
        return true;
      };
      if (!filter(st("quality"), cfg_.quality, [&] { return gopher_quality(text, cfg_.gopher_quality); })) return;
      if (!filter(st("repetition"), cfg_.repetition, [&] { return gopher_repetition(text, cfg_.gopher_repetition); })) return;
      if (!filter(st("exact_dedup"), cfg_.exact_dedup,
                  [&] { return exact.insert(text) ? std::string() : std::string("duplicate"); }))
        return;
      auto& sl = st("line_dedup");
      sl.in(text.size());
      if (cfg_.line_dedup) {
        timed(sl, [&] { text = lines.filter(text); });
        if (text.empty()) { sl.remove("empty"); return; }
      }
      sl.out(text.size());
      if (cfg_.near_dedup) {
        timed(st("near_dedup"), [&] {
          const std::size_t shingles = mh.signature(text, sig.data());
          lsh.add(sig.data(), shingles == 0);
        });
      }
      st("near_dedup").in(text.size());
      write_record(spool.get(), text, doc.source);
      ++spooled;
      prog.update(reader.stats().bytes_scanned, spooled);
    });
    prog.finish(reader.stats().bytes_scanned, spooled);
    if (std::fflush(spool.get()) != 0) throw error("pipeline: writing the spool failed");
    spool.reset();

    const auto& rs = reader.stats();
    auto& sr = st("read");
    sr.docs_in += rs.bad_json + rs.too_large;
    if (rs.bad_json) sr.removed["bad_json"] = rs.bad_json;
    if (rs.too_large) sr.removed["too_large"] = rs.too_large;
    sr.counters = {{"files", rs.files}, {"files_binary", rs.files_binary},
                   {"files_unreadable", rs.files_unreadable}, {"repaired_json_lines", rs.repaired_json_lines}};
    st("clean").counters = {{"invalid_sequences", cstats.invalid_sequences},
                            {"control_removed", cstats.control_removed}, {"nfc_changed", cstats.nfc_changed}};
    if (cfg_.line_dedup) st("line_dedup").counters = {{"lines_dropped", lines.lines_dropped()}};
    std::vector<bool> keep;
    if (cfg_.near_dedup) {
      keep = lsh.keep();
      st("near_dedup").counters = {{"candidate_pairs", lsh.candidate_pairs()},
                                   {"verified_pairs", lsh.verified_pairs()}};
    }

    // Pass 2.
    detail::file_ptr in(std::fopen(spool_path.c_str(), "rb"));
    detail::file_ptr out(std::fopen(out_tmp.c_str(), "wb"));
    if (!in || !out) throw error(tfm::detail::concat("pipeline: cannot open ", spool_path.string(), " or ", out_tmp.string()));
    pii_stats ps;
    std::string text, source;
    for (uint64_t i = 0; i < spooled; ++i) {
      if (!read_record(in.get(), text, source)) throw error("pipeline: the spool file is truncated");
      if (cfg_.near_dedup && !keep[i]) { st("near_dedup").remove("near_duplicate"); continue; }
      st("near_dedup").out(text.size());
      auto& sp = st("pii");
      sp.in(text.size());
      if (cfg_.scrub_pii) timed(sp, [&] { text = scrub_pii(text, cfg_.pii, &ps); });
      sp.out(text.size());
      auto& sw = st("write");
      sw.in(text.size());
      nlohmann::json row = {{"text", text}, {"source", source}};
      std::string line = row.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      line.push_back('\n');
      if (std::fwrite(line.data(), 1, line.size(), out.get()) != line.size())
        throw error(tfm::detail::concat("pipeline: write to ", out_tmp.string(), " failed"));
      sw.out(text.size());
    }
    st("pii").counters = {{"emails", ps.emails}, {"ipv4", ps.ipv4}, {"ipv6", ps.ipv6},
                          {"cards", ps.cards}, {"phones", ps.phones}};
    if (std::fflush(out.get()) != 0) throw error("pipeline: writing the output failed");
    out.reset();
    in.reset();
    std::filesystem::remove(spool_path);
    std::filesystem::rename(out_tmp, output);
    rep.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    if (!report_json.empty()) write_file_atomic(report_json, rep.to_json().dump(2) + "\n");
    return rep;
  }

 private:
  // Spool records: u64 text bytes, u32 source bytes, text, source (host byte order; the spool
  // never leaves the run).
  static void write_record(std::FILE* f, const std::string& text, const std::string& source) {
    const uint64_t n = text.size();
    const uint32_t m = static_cast<uint32_t>(source.size());
    if (std::fwrite(&n, sizeof n, 1, f) != 1 || std::fwrite(&m, sizeof m, 1, f) != 1 ||
        std::fwrite(text.data(), 1, n, f) != n || std::fwrite(source.data(), 1, m, f) != m)
      throw error("pipeline: writing the spool failed");
  }
  static bool read_record(std::FILE* f, std::string& text, std::string& source) {
    uint64_t n;
    uint32_t m;
    if (std::fread(&n, sizeof n, 1, f) != 1 || std::fread(&m, sizeof m, 1, f) != 1) return false;
    text.resize(n);
    source.resize(m);
    return std::fread(text.data(), 1, n, f) == n && std::fread(source.data(), 1, m, f) == m;
  }

  pipeline_config cfg_;
};

}  // namespace tfm::data
