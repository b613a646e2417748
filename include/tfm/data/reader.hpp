// tfm/data/reader.hpp — streams documents out of files and directories.
//  - `.jsonl`: one JSON object per line, the document in a string field (`text` by default).
//    Lines with invalid UTF-8 are repaired (U+FFFD) before parsing; lines that are not an
//    object with that string field are counted as `bad_json` and skipped.
//  - anything else (`.txt` when walking directories): one document per file, or, when
//    `txt_separator` is set, documents split by lines equal to it (trailing CR/spaces
//    ignored), e.g. "%" for fortune files. Empty pieces between separators are skipped.
// Files whose first `binary_probe_bytes` hold a NUL byte are skipped as binary. Memory is
// bounded by `max_document_bytes` (plus a 1 MiB read buffer): longer documents, and longer
// JSONL lines, are skipped and counted as `too_large`, never held whole.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"
#include "tfm/data/detail/utf8.hpp"

namespace tfm::data {

struct reader_config {
  std::string txt_separator;                       // "" : one document per .txt file
  std::string jsonl_field = "text";
  std::size_t max_document_bytes = std::size_t{256} << 20;
  std::size_t binary_probe_bytes = 8192;
  std::vector<std::string> extensions = {".txt", ".jsonl"};  // taken when walking directories
};

struct document {
  std::string text;
  std::string source;  // file path, with ":<line>" for JSONL and ":<n>" for split .txt
};

struct read_stats {
  uint64_t files = 0, files_binary = 0, files_unreadable = 0;
  uint64_t documents = 0, bytes = 0;  // documents produced and their bytes
  uint64_t bad_json = 0, too_large = 0, repaired_json_lines = 0;
  uint64_t bytes_scanned = 0;          // file bytes consumed (progress)
};

namespace detail {

// Reads lines (without the LF) of at most `limit` bytes; longer ones are consumed and flagged.
class line_reader {
 public:
  explicit line_reader(std::FILE* f) : f_(f), buf_(1 << 20) {}
  // False at end of file. `too_long`: the line exceeded `limit` and `line` is incomplete.
  bool next(std::string& line, std::size_t limit, bool& too_long, uint64_t& consumed) {
    line.clear();
    too_long = false;
    bool any = false;
    while (true) {
      if (pos_ == end_) {
        end_ = std::fread(buf_.data(), 1, buf_.size(), f_);
        pos_ = 0;
        if (end_ == 0) return any;
      }
      any = true;
      const char* b = buf_.data() + pos_;
      const char* nl = static_cast<const char*>(std::memchr(b, '\n', end_ - pos_));
      const std::size_t take = nl ? static_cast<std::size_t>(nl - b) : end_ - pos_;
      if (!too_long) {
        if (line.size() + take > limit) {
          too_long = true;
          line.clear();
          line.shrink_to_fit();
        } else {
          line.append(b, take);
        }
      }
      pos_ += take + (nl ? 1 : 0);
      consumed += take + (nl ? 1 : 0);
      if (nl) return true;
    }
  }

 private:
  std::FILE* f_;
  std::vector<char> buf_;
  std::size_t pos_ = 0, end_ = 0;
};

struct file_closer {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using file_ptr = std::unique_ptr<std::FILE, file_closer>;

inline std::string repair_utf8(std::string_view s, uint64_t* count = nullptr) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) { out.push_back(s[i++]); continue; }
    const decoded d = decode_utf8(s, i);
    if (d.valid) out.append(s.substr(i, d.len)); else { append_utf8(out, replacement_char); if (count) ++*count; }
    i += d.len;
  }
  return out;
}

}  // namespace detail

class corpus_reader {
 public:
  // Inputs are files or directories (walked recursively, files filtered by extension and
  // sorted by path so runs are reproducible). Throws invalid_argument for a missing input.
  corpus_reader(const std::vector<std::filesystem::path>& inputs, reader_config cfg = {})
      : cfg_(std::move(cfg)) {
    namespace fs = std::filesystem;
    for (const auto& in : inputs) {
      std::error_code ec;
      if (fs::is_directory(in, ec)) {
        std::vector<fs::path> found;
        for (auto it = fs::recursive_directory_iterator(in, fs::directory_options::skip_permission_denied, ec);
             !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
          if (!it->is_regular_file(ec)) continue;
          const std::string ext = it->path().extension().string();
          if (std::find(cfg_.extensions.begin(), cfg_.extensions.end(), ext) != cfg_.extensions.end())
            found.push_back(it->path());
        }
        std::sort(found.begin(), found.end());
        files_.insert(files_.end(), found.begin(), found.end());
      } else if (fs::exists(in, ec)) {
        files_.push_back(in);
      } else {
        throw invalid_argument(tfm::detail::concat("corpus_reader: input ", in.string(), " does not exist"));
      }
    }
    for (const auto& f : files_) {
      std::error_code ec;
      const auto s = fs::file_size(f, ec);
      if (!ec) total_bytes_ += s;
    }
  }

  const std::vector<std::filesystem::path>& files() const { return files_; }
  uint64_t total_bytes() const { return total_bytes_; }
  const read_stats& stats() const { return stats_; }

  // Calls fn(document&&) for each document, in file order.
  template <class F>
  void for_each(F&& fn) {
    for (const auto& f : files_) read_file(f, fn);
  }

 private:
  template <class F>
  void read_file(const std::filesystem::path& path, F& fn) {
    ++stats_.files;
    detail::file_ptr f(std::fopen(path.c_str(), "rb"));
    if (!f) { ++stats_.files_unreadable; return; }
    {  // binary probe
      std::string probe(cfg_.binary_probe_bytes, '\0');
      const std::size_t got = std::fread(probe.data(), 1, probe.size(), f.get());
      if (probe.substr(0, got).find('\0') != std::string::npos) {
        ++stats_.files_binary;
        std::error_code ec;
        const auto s = std::filesystem::file_size(path, ec);
        if (!ec) stats_.bytes_scanned += s;
        return;
      }
      std::rewind(f.get());
    }
    const std::string src = path.string();
    detail::line_reader lr(f.get());
    std::string line;
    bool too_long = false;
    if (path.extension() == ".jsonl") {
      uint64_t lineno = 0;
      while (lr.next(line, cfg_.max_document_bytes, too_long, stats_.bytes_scanned)) {
        ++lineno;
        if (too_long) { ++stats_.too_large; continue; }
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
        if (!detail::is_valid_utf8(line)) {
          line = detail::repair_utf8(line);
          ++stats_.repaired_json_lines;
        }
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.is_object()) { ++stats_.bad_json; continue; }
        auto it = j.find(cfg_.jsonl_field);
        if (it == j.end() || !it->is_string()) { ++stats_.bad_json; continue; }
        emit(fn, std::move(it->get_ref<std::string&>()), src + ":" + std::to_string(lineno));
      }
      return;
    }
    if (cfg_.txt_separator.empty()) {
      std::error_code ec;
      const auto size = std::filesystem::file_size(path, ec);
      if (!ec && size > cfg_.max_document_bytes) {
        ++stats_.too_large;
        stats_.bytes_scanned += size;
        return;
      }
      std::string text;
      std::vector<char> buf(1 << 20);
      std::size_t got;
      while ((got = std::fread(buf.data(), 1, buf.size(), f.get())) > 0) {
        stats_.bytes_scanned += got;
        if (text.size() + got > cfg_.max_document_bytes) { ++stats_.too_large; return; }
        text.append(buf.data(), got);
      }
      emit(fn, std::move(text), src);
      return;
    }
    std::string doc;
    bool doc_too_large = false;
    uint64_t piece = 0;
    auto flush = [&] {
      if (doc_too_large) ++stats_.too_large;
      else if (!doc.empty()) emit(fn, std::move(doc), src + ":" + std::to_string(piece));
      ++piece;
      doc.clear();
      doc_too_large = false;
    };
    while (lr.next(line, cfg_.max_document_bytes, too_long, stats_.bytes_scanned)) {
      std::string_view l = line;
      while (!l.empty() && (l.back() == '\r' || l.back() == ' ')) l.remove_suffix(1);
      if (!too_long && l == cfg_.txt_separator) { flush(); continue; }
      if (too_long || doc.size() + line.size() + 1 > cfg_.max_document_bytes) {
        doc_too_large = true;
        doc.clear();
        continue;
      }
      if (doc_too_large) continue;
      doc.append(line);
      doc.push_back('\n');
    }
    flush();
  }

  template <class F>
  void emit(F& fn, std::string&& text, std::string source) {
    ++stats_.documents;
    stats_.bytes += text.size();
    fn(document{std::move(text), std::move(source)});
  }

  reader_config cfg_;
  std::vector<std::filesystem::path> files_;
  uint64_t total_bytes_ = 0;
  read_stats stats_;
};

}  // namespace tfm::data
