// tfm/data/quality.hpp — Gopher quality and repetition filters (Rae et al. 2021, "Scaling
// Language Models", appendix A; defaults as datatrove's GopherQualityFilter and
// GopherRepetitionFilter). Every threshold is a std::optional: nullopt switches that test off.
//
// Definitions (applied to cleaned text):
//  - words: maximal runs of bytes other than space, TAB, LF, CR. A word is a *symbol word*
//    when it has no letter and no digit (Unicode categories L* and N*).
//  - word count: number of non-symbol words; mean word length: their mean length in code
//    points after stripping leading and trailing ASCII punctuation.
//  - `#` ratio and ellipsis ratio: occurrences of '#' / of "..." and "…", over all words.
//  - lines: split on LF, empty lines ignored for the line tests; a bullet line starts (after
//    leading spaces) with '•' or '-'; an ellipsis line ends with "..." or "…".
//  - alpha words: fraction of all words with at least one letter.
//  - stop words: number of *distinct* stop words present (ASCII case-folded, punctuation
//    stripped).
//  - repetition: paragraphs are split on runs of two or more LF, lines on LF; empty ones are
//    ignored. "Duplicate" elements are those already seen earlier in the document; character
//    fractions are their byte lengths over the document's byte length. The top n-gram
//    fraction is (byte length of the most frequent word n-gram, words joined by one space; the
//    first seen among equals) × its count / document length; the duplicate n-gram fraction
//    counts the bytes (words without separators) of n-grams already seen, skipping n words
//    after each duplicate, as datatrove does. N-grams are compared by 64-bit hash (the tests
//    check the result against a plain string implementation).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <utf8proc.h>
#include <xxhash.h>

#include "tfm/core/config.hpp"
#include "tfm/data/detail/flat_hash.hpp"
#include "tfm/data/detail/utf8.hpp"

namespace tfm::data {

struct gopher_quality_config {
  std::optional<std::size_t> min_words = 50;
  std::optional<std::size_t> max_words = 100000;
  std::optional<double> min_mean_word_length = 3;
  std::optional<double> max_mean_word_length = 10;
  std::optional<double> max_hash_ratio = 0.1;
  std::optional<double> max_ellipsis_ratio = 0.1;
  std::optional<double> max_bullet_lines_ratio = 0.9;
  std::optional<double> max_ellipsis_lines_ratio = 0.3;
  std::optional<double> min_alpha_words_ratio = 0.8;
  std::optional<std::size_t> min_stop_words = 2;
  std::vector<std::string> stop_words = {"the", "be", "to", "of", "and", "that", "have", "with"};

  // Every test off (then switch on what a corpus of short documents can bear).
  static gopher_quality_config none() {
    gopher_quality_config c;
    c.min_words = c.max_words = c.min_stop_words = std::nullopt;
    c.min_mean_word_length = c.max_mean_word_length = c.max_hash_ratio = c.max_ellipsis_ratio =
        c.max_bullet_lines_ratio = c.max_ellipsis_lines_ratio = c.min_alpha_words_ratio =
            std::nullopt;
    return c;
  }
};

struct gopher_repetition_config {
  std::optional<double> max_dup_para_frac = 0.30;
  std::optional<double> max_dup_line_frac = 0.30;
  std::optional<double> max_dup_para_char_frac = 0.20;
  std::optional<double> max_dup_line_char_frac = 0.20;
  std::vector<std::pair<int, double>> top_ngrams = {{2, 0.20}, {3, 0.18}, {4, 0.16}};
  std::vector<std::pair<int, double>> dup_ngrams = {{5, 0.15}, {6, 0.14}, {7, 0.13},
                                                    {8, 0.12}, {9, 0.11}, {10, 0.10}};
  static gopher_repetition_config none() {
    gopher_repetition_config c;
    c.max_dup_para_frac = c.max_dup_line_frac = c.max_dup_para_char_frac =
        c.max_dup_line_char_frac = std::nullopt;
    c.top_ngrams.clear();
    c.dup_ngrams.clear();
    return c;
  }
};

namespace detail {

inline bool is_ws_byte(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

inline bool is_ascii_punct(unsigned char c) {
  return (c >= 0x21 && c <= 0x2F) || (c >= 0x3A && c <= 0x40) || (c >= 0x5B && c <= 0x60) ||
         (c >= 0x7B && c <= 0x7E);
}

struct word_info {
  uint32_t begin, len;      // bytes in the text
  uint32_t stripped_cps;    // code points without leading/trailing ASCII punctuation
  bool has_letter, has_alnum;
};

// Splits into words and classifies them (see the header comment).
inline void split_words(std::string_view t, std::vector<word_info>& words) {
  words.clear();
  const std::size_t n = t.size();
  std::size_t i = 0;
  while (i < n) {
    while (i < n && is_ws_byte(static_cast<unsigned char>(t[i]))) ++i;
    if (i >= n) break;
    const std::size_t b = i;
    bool letter = false, alnum = false;
    uint32_t cps = 0, lead = 0, trail = 0;  // trail: punctuation run at the current end
    bool seen_core = false;
    while (i < n && !is_ws_byte(static_cast<unsigned char>(t[i]))) {
      const unsigned char c = static_cast<unsigned char>(t[i]);
      if (c < 0x80) {
        ++i;
        ++cps;
        const bool is_l = (c | 0x20) >= 'a' && (c | 0x20) <= 'z';
        const bool is_d = c >= '0' && c <= '9';
        letter |= is_l;
        alnum |= is_l || is_d;
        if (is_ascii_punct(c)) {
          if (!seen_core) ++lead; else ++trail;
        } else {
          seen_core = true;
          trail = 0;
        }
        continue;
      }
      const decoded d = decode_utf8(t, i);
      i += d.len;
      ++cps;
      seen_core = true;
      trail = 0;
      if (d.valid) {
        const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(d.cp));
        const bool is_l = cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_LO;
        const bool is_n = cat >= UTF8PROC_CATEGORY_ND && cat <= UTF8PROC_CATEGORY_NO;
        letter |= is_l;
        alnum |= is_l || is_n;
      }
    }
    const uint32_t stripped = seen_core ? cps - lead - trail : 0;
    words.push_back({static_cast<uint32_t>(b), static_cast<uint32_t>(i - b), stripped, letter, alnum});
  }
}

inline std::size_t count_substr(std::string_view t, std::string_view s) {
  std::size_t c = 0;
  for (std::size_t p = t.find(s); p != std::string_view::npos; p = t.find(s, p + s.size())) ++c;
  return c;
}

inline bool ends_with_ellipsis(std::string_view l) {
  while (!l.empty() && is_ws_byte(static_cast<unsigned char>(l.back()))) l.remove_suffix(1);
  return l.ends_with("...") || l.ends_with("\xE2\x80\xA6");
}

// Per-thread scratch so the filters do not allocate per document.
struct filter_scratch {
  std::vector<word_info> words;
  std::vector<uint64_t> word_hash, word_hash2;  // n-gram hashes (updated in place), word hashes
  flat_counter counter;
};

inline filter_scratch& thread_scratch() {
  thread_local filter_scratch s;
  return s;
}

}  // namespace detail

// The Gopher quality filter. Returns the name of the first failed test, or "" when the
// document passes. Names: gopher_too_few_words, gopher_too_many_words, gopher_mean_word_short,
// gopher_mean_word_long, gopher_hash_ratio, gopher_ellipsis_ratio, gopher_bullet_lines,
// gopher_ellipsis_lines, gopher_alpha_words, gopher_stop_words.
inline std::string gopher_quality(std::string_view text, const gopher_quality_config& cfg = {}) {
  auto& sc = detail::thread_scratch();
  detail::split_words(text, sc.words);
  const auto& words = sc.words;
  std::size_t n_words = words.size(), n_content = 0, sum_len = 0, n_alpha = 0;
  for (const auto& w : words) {
    if (w.has_alnum) { ++n_content; sum_len += w.stripped_cps; }
    n_alpha += w.has_letter;
  }
  if (cfg.min_words && n_content < *cfg.min_words) return "gopher_too_few_words";
  if (cfg.max_words && n_content > *cfg.max_words) return "gopher_too_many_words";
  const double mean_len = n_content ? double(sum_len) / double(n_content) : 0.0;
  if (cfg.min_mean_word_length && mean_len < *cfg.min_mean_word_length) return "gopher_mean_word_short";
  if (cfg.max_mean_word_length && mean_len > *cfg.max_mean_word_length) return "gopher_mean_word_long";
  const double denom = n_words ? double(n_words) : 1.0;
  if (cfg.max_hash_ratio && double(detail::count_substr(text, "#")) / denom > *cfg.max_hash_ratio)
    return "gopher_hash_ratio";
  if (cfg.max_ellipsis_ratio &&
      double(detail::count_substr(text, "...") + detail::count_substr(text, "\xE2\x80\xA6")) / denom >
          *cfg.max_ellipsis_ratio)
    return "gopher_ellipsis_ratio";
  if (cfg.max_bullet_lines_ratio || cfg.max_ellipsis_lines_ratio) {
    std::size_t n_lines = 0, bullets = 0, ellipses = 0;
    std::size_t b = 0;
    while (b <= text.size()) {
      std::size_t e = text.find('\n', b);
      if (e == std::string_view::npos) e = text.size();
      std::string_view line = text.substr(b, e - b);
      std::size_t k = 0;
      while (k < line.size() && (line[k] == ' ' || line[k] == '\t')) ++k;
      if (k < line.size()) {
        ++n_lines;
        std::string_view rest = line.substr(k);
        bullets += rest.starts_with("\xE2\x80\xA2") || rest.starts_with("-");
        ellipses += detail::ends_with_ellipsis(rest);
      }
      b = e + 1;
    }
    const double ld = n_lines ? double(n_lines) : 1.0;
    if (cfg.max_bullet_lines_ratio && double(bullets) / ld > *cfg.max_bullet_lines_ratio)
      return "gopher_bullet_lines";
    if (cfg.max_ellipsis_lines_ratio && double(ellipses) / ld > *cfg.max_ellipsis_lines_ratio)
      return "gopher_ellipsis_lines";
  }
  if (cfg.min_alpha_words_ratio && n_words && double(n_alpha) / denom < *cfg.min_alpha_words_ratio)
    return "gopher_alpha_words";
  if (cfg.min_alpha_words_ratio && !n_words) return "gopher_alpha_words";
  if (cfg.min_stop_words) {
    uint64_t seen = 0;  // bit i: stop word i present (first 64 stop words)
    std::size_t distinct = 0;
    char buf[32];
    for (const auto& w : words) {
      std::string_view s = text.substr(w.begin, w.len);
      while (!s.empty() && detail::is_ascii_punct(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
      while (!s.empty() && detail::is_ascii_punct(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
      if (s.empty() || s.size() > sizeof buf) continue;
      for (std::size_t k = 0; k < s.size(); ++k) {
        const char c = s[k];
        buf[k] = (c >= 'A' && c <= 'Z') ? char(c + 32) : c;
      }
      const std::string_view low(buf, s.size());
      for (std::size_t j = 0; j < cfg.stop_words.size() && j < 64; ++j) {
        if (!(seen >> j & 1) && cfg.stop_words[j] == low) {
          seen |= uint64_t{1} << j;
          ++distinct;
        }
      }
      if (distinct >= *cfg.min_stop_words) break;
    }
    if (distinct < *cfg.min_stop_words) return "gopher_stop_words";
  }
  return {};
}

// The Gopher repetition filter. Returns the first failed test or "". Names:
// gopher_dup_para_frac, gopher_dup_para_char_frac, gopher_dup_line_frac,
// gopher_dup_line_char_frac, gopher_top_<n>gram, gopher_dup_<n>gram.
inline std::string gopher_repetition(std::string_view text, const gopher_repetition_config& cfg = {}) {
  if (text.empty()) return {};
  auto& sc = detail::thread_scratch();
  const double text_len = double(text.size());
  // Duplicate elements among pieces split on `sep_min` or more consecutive LFs.
  auto dup_pieces = [&](std::size_t sep_min, std::size_t& total, std::size_t& dups, std::size_t& dup_bytes) {
    total = dups = dup_bytes = 0;
    sc.counter.reset(static_cast<std::size_t>(std::count(text.begin(), text.end(), '\n')) + 1);
    std::size_t i = 0;
    const std::size_t n = text.size();
    while (i < n) {
      // skip separators
      std::size_t j = i;
      while (j < n) {
        if (text[j] != '\n') break;
        ++j;
      }
      i = j;
      if (i >= n) break;
      // piece ends at the first run of >= sep_min LFs
      std::size_t e = i;
      while (e < n) {
        if (text[e] == '\n') {
          std::size_t r = e;
          while (r < n && text[r] == '\n') ++r;
          if (r - e >= sep_min) break;
          e = r;
        } else {
          ++e;
        }
      }
      const std::string_view piece = text.substr(i, e - i);
      ++total;
      if (sc.counter.add(XXH3_64bits(piece.data(), piece.size())) > 1) {
        ++dups;
        dup_bytes += piece.size();
      }
      i = e;
    }
  };
  std::size_t total, dups, dup_bytes;
  if (cfg.max_dup_para_frac || cfg.max_dup_para_char_frac) {
    dup_pieces(2, total, dups, dup_bytes);
    if (cfg.max_dup_para_frac && total && double(dups) / double(total) > *cfg.max_dup_para_frac)
      return "gopher_dup_para_frac";
    if (cfg.max_dup_para_char_frac && double(dup_bytes) / text_len > *cfg.max_dup_para_char_frac)
      return "gopher_dup_para_char_frac";
  }
  if (cfg.max_dup_line_frac || cfg.max_dup_line_char_frac) {
    dup_pieces(1, total, dups, dup_bytes);
    if (cfg.max_dup_line_frac && total && double(dups) / double(total) > *cfg.max_dup_line_frac)
      return "gopher_dup_line_frac";
    if (cfg.max_dup_line_char_frac && double(dup_bytes) / text_len > *cfg.max_dup_line_char_frac)
      return "gopher_dup_line_char_frac";
  }
  if (cfg.top_ngrams.empty() && cfg.dup_ngrams.empty()) return {};
  detail::split_words(text, sc.words);
  const auto& words = sc.words;
  const std::size_t nw = words.size();
  sc.word_hash.resize(nw);
  sc.word_hash2.resize(nw);
  for (std::size_t i = 0; i < nw; ++i)
    sc.word_hash[i] = sc.word_hash2[i] = XXH3_64bits(text.data() + words[i].begin, words[i].len);
  auto bytes_of = [&](std::size_t i, int n) {
    std::size_t b = 0;
    for (int k = 0; k < n; ++k) b += words[i + static_cast<std::size_t>(k)].len;
    return b;
  };
  // g[i] holds the hash of the n-gram starting at word i; it grows from n = 1 (the word
  // hashes) one word at a time, so each n costs one mix per position.
  int max_n = 1;
  for (const auto& t : cfg.top_ngrams) max_n = std::max(max_n, t.first);
  for (const auto& t : cfg.dup_ngrams) max_n = std::max(max_n, t.first);
  std::vector<uint64_t>& g = sc.word_hash;
  for (int n = 2; n <= max_n && static_cast<std::size_t>(n) <= nw; ++n) {
    const std::size_t count = nw - static_cast<std::size_t>(n) + 1;
    for (std::size_t i = 0; i < count; ++i)
      g[i] = detail::mix64(g[i] * 0x9e3779b97f4a7c15ULL + sc.word_hash2[i + static_cast<std::size_t>(n) - 1]);
    for (const auto& [tn, frac] : cfg.top_ngrams) {
      if (tn != n) continue;
      sc.counter.reset(count);
      // the most frequent n-gram; among equals the one seen first (as Counter.most_common)
      uint32_t best = 0, best_i = 0;
      for (std::size_t i = 0; i < count; ++i) {
        const auto& e = sc.counter.add(g[i], static_cast<uint32_t>(i));
        if (e.count > best || (e.count == best && e.first < best_i)) {
          best = e.count;
          best_i = e.first;
        }
      }
      const double chars = double(bytes_of(best_i, n) + static_cast<std::size_t>(n - 1)) * double(best);
      if (chars / text_len > frac) return "gopher_top_" + std::to_string(n) + "gram";
    }
    for (const auto& [dn, frac] : cfg.dup_ngrams) {
      if (dn != n) continue;
      sc.counter.reset(count);
      std::size_t repeated = 0;
      for (std::size_t i = 0; i < count;) {
        if (sc.counter.add(g[i]) > 1) {
          repeated += bytes_of(i, n);
          i += static_cast<std::size_t>(n);
        } else {
          ++i;
        }
      }
      if (double(repeated) / text_len > frac) return "gopher_dup_" + std::to_string(n) + "gram";
    }
  }
  return {};
}

}  // namespace tfm::data
