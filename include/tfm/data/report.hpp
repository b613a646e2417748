// tfm/data/report.hpp — what a pipeline run did: documents and bytes in and out of every
// stage, why documents were removed, stage counters; as a terminal table and as JSON. Also the
// progress line and the atomic file writes the pipeline uses.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"
#include "tfm/core/file.hpp"

namespace tfm::data {

struct stage_report {
  std::string name;
  uint64_t docs_in = 0, docs_out = 0, bytes_in = 0, bytes_out = 0;
  std::map<std::string, uint64_t> removed;   // reason -> documents
  std::map<std::string, uint64_t> counters;  // e.g. invalid_sequences, emails
  double seconds = 0;

  void in(std::size_t bytes) { ++docs_in; bytes_in += bytes; }
  void out(std::size_t bytes) { ++docs_out; bytes_out += bytes; }
  void remove(const std::string& reason) { ++removed[reason]; }
};

struct run_report {
  std::vector<stage_report> stages;
  double seconds = 0;
  std::string output;

  stage_report* find(std::string_view name) {
    for (auto& s : stages) if (s.name == name) return &s;
    return nullptr;
  }
  const stage_report* find(std::string_view name) const {
    for (const auto& s : stages) if (s.name == name) return &s;
    return nullptr;
  }

  nlohmann::json to_json() const {
    nlohmann::json j;
    j["seconds"] = seconds;
    j["output"] = output;
    auto& arr = j["stages"] = nlohmann::json::array();
    for (const auto& s : stages) {
      arr.push_back({{"name", s.name}, {"docs_in", s.docs_in}, {"docs_out", s.docs_out},
                     {"bytes_in", s.bytes_in}, {"bytes_out", s.bytes_out}, {"seconds", s.seconds},
                     {"removed", s.removed}, {"counters", s.counters}});
    }
    return j;
  }

  // A fixed-width table, one row per stage, then the reasons and counters.
  std::string to_table() const {
    std::ostringstream os;
    char line[256];
    std::snprintf(line, sizeof line, "%-12s %12s %12s %14s %14s %9s %8s\n", "stage", "docs in", "docs out",
                  "bytes in", "bytes out", "kept %", "s");
    os << line << std::string(87, '-') << '\n';
    for (const auto& s : stages) {
      const double pct = s.bytes_in ? 100.0 * double(s.bytes_out) / double(s.bytes_in) : 100.0;
      std::snprintf(line, sizeof line, "%-12s %12llu %12llu %14llu %14llu %8.2f%% %8.2f\n", s.name.c_str(),
                    static_cast<unsigned long long>(s.docs_in), static_cast<unsigned long long>(s.docs_out),
                    static_cast<unsigned long long>(s.bytes_in), static_cast<unsigned long long>(s.bytes_out),
                    pct, s.seconds);
      os << line;
    }
    for (const auto& s : stages) {
      for (const auto& [k, v] : s.removed) os << "  " << s.name << ": removed " << k << " = " << v << '\n';
      for (const auto& [k, v] : s.counters) os << "  " << s.name << ": " << k << " = " << v << '\n';
    }
    std::snprintf(line, sizeof line, "total %.2f s\n", seconds);
    os << line;
    return os.str();
  }
};

// Progress on stderr: a redrawn bar on a terminal, a plain line every 10 s otherwise.
class progress {
 public:
  progress(std::string label, uint64_t total_bytes, bool enabled)
      : label_(std::move(label)), total_(total_bytes), enabled_(enabled), tty_(isatty(2) != 0),
        start_(clock::now()), last_(start_) {}

  void update(uint64_t bytes, uint64_t docs) {
    if (!enabled_) return;
    const auto now = clock::now();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (since < (tty_ ? 0.2 : 10.0)) return;
    last_ = now;
    draw(bytes, docs, false);
  }
  void finish(uint64_t bytes, uint64_t docs) {
    if (!enabled_) return;
    if (tty_ || std::chrono::duration<double>(clock::now() - start_).count() >= 10.0) draw(bytes, docs, true);
  }

 private:
  using clock = std::chrono::steady_clock;
  void draw(uint64_t bytes, uint64_t docs, bool done) {
    const double secs = std::chrono::duration<double>(clock::now() - start_).count();
    const double frac = total_ ? std::min(1.0, double(bytes) / double(total_)) : 0.0;
    const double mbs = secs > 0 ? double(bytes) / 1e6 / secs : 0.0;
    if (tty_) {
      const int width = 30, fill = static_cast<int>(frac * width);
      std::fprintf(stderr, "\r%s [%s%s] %5.1f%% %llu docs %.1f MB/s%s", label_.c_str(),
                   std::string(static_cast<std::size_t>(fill), '#').c_str(),
                   std::string(static_cast<std::size_t>(width - fill), ' ').c_str(), 100 * frac,
                   static_cast<unsigned long long>(docs), mbs, done ? "\n" : "");
    } else {
      std::fprintf(stderr, "%s: %.1f%% %llu docs %.1f MB/s %.0f s%s\n", label_.c_str(), 100 * frac,
                   static_cast<unsigned long long>(docs), mbs, secs, done ? " (done)" : "");
    }
    std::fflush(stderr);
  }
  std::string label_;
  uint64_t total_;
  bool enabled_, tty_;
  clock::time_point start_, last_;
};

}  // namespace tfm::data
