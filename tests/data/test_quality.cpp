// Tests of tfm/data/quality.hpp: every Gopher filter with a document that just passes its
// threshold and one that just fails it.
#define TFM_TEST_MODULE data_quality
#include "support/test_main.hpp"

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "data/text_gen.hpp"
#include "tfm/data/quality.hpp"

using namespace tfm::data;
using tfm::test::random_word;

namespace {

// `n` words: "the", "and", then distinct 5-letter words; `per_line` words per line.
std::vector<std::string> base_words(std::size_t n, std::size_t len = 5, uint64_t seed = 1) {
  std::mt19937_64 rng(seed);
  std::vector<std::string> w;
  for (std::size_t i = 0; i < n; ++i) w.push_back(i == 0 ? "the" : i == 1 ? "and" : random_word(rng, len));
  return w;
}

std::string join(const std::vector<std::string>& w, std::size_t per_line = 10) {
  std::string s;
  for (std::size_t i = 0; i < w.size(); ++i) {
    if (i) s += (i % per_line == 0) ? '\n' : ' ';
    s += w[i];
  }
  return s;
}

void check_pair(const std::string& pass, const std::string& fail, const std::string& reason,
                const gopher_quality_config& cfg = {}) {
  BOOST_TEST(gopher_quality(pass, cfg) == "");
  BOOST_TEST(gopher_quality(fail, cfg) == reason);
}

}  // namespace

BOOST_AUTO_TEST_CASE(base_document_passes) {
  BOOST_TEST(gopher_quality(join(base_words(100))) == "");
  BOOST_TEST(gopher_repetition(join(base_words(100))) == "");
}

BOOST_AUTO_TEST_CASE(word_count) {
  check_pair(join(base_words(50)), join(base_words(49)), "gopher_too_few_words");
  // symbol words do not count
  auto w = base_words(50);
  w[10] = "--";
  BOOST_TEST(gopher_quality(join(w)) == "gopher_too_few_words");
  check_pair(join(base_words(100000, 4)), join(base_words(100001, 4)), "gopher_too_many_words");
}

BOOST_AUTO_TEST_CASE(mean_word_length) {
  // all words of 3 letters: mean 3.0 passes; one word of 2 letters: just below
  auto w = base_words(100, 3);
  auto s = w;
  s[50] = "ab";
  check_pair(join(w), join(s), "gopher_mean_word_short");
  // "the" + "and" (6) + 96 words of 10 + 2 of 17 = 1000 letters over 100 words: mean 10.0
  std::mt19937_64 rng(3);
  std::vector<std::string> l = {"the", "and"};
  for (int i = 0; i < 96; ++i) l.push_back(random_word(rng, 10));
  l.push_back(random_word(rng, 17));
  l.push_back(random_word(rng, 17));
  auto m = l;
  m.back() += "x";
  check_pair(join(l), join(m), "gopher_mean_word_long");
  // surrounding punctuation does not count towards the length
  auto p = l;
  p[5] = "\"" + p[5] + ",\"";
  BOOST_TEST(gopher_quality(join(p)) == "");
}

BOOST_AUTO_TEST_CASE(hash_ratio) {
  auto w = base_words(100);
  for (int i = 0; i < 10; ++i) w[10 + i] = "#" + w[10 + i];
  auto f = w;
  f[40] = "#" + f[40];
  check_pair(join(w), join(f), "gopher_hash_ratio");
}

BOOST_AUTO_TEST_CASE(ellipsis_ratio) {
  // ellipses inside lines (positions not at a line end), 10 per 100 words
  auto w = base_words(100);
  for (int i = 0; i < 10; ++i) w[static_cast<std::size_t>(10 * i + 2)] += "...";
  auto f = w;
  f[15] += "\xE2\x80\xA6";
  check_pair(join(w), join(f), "gopher_ellipsis_ratio");
}

BOOST_AUTO_TEST_CASE(bullet_lines) {
  auto w = base_words(100);  // 10 lines of 10 words
  for (int i = 0; i < 9; ++i) w[static_cast<std::size_t>(10 * (i + 1))] = "- " + w[static_cast<std::size_t>(10 * (i + 1))];
  auto f = w;
  f[0] = "\xE2\x80\xA2 " + f[0];
  gopher_quality_config c;
  c.min_alpha_words_ratio = std::nullopt;  // the bullets are symbol words
  check_pair(join(w), join(f), "gopher_bullet_lines", c);
}

BOOST_AUTO_TEST_CASE(ellipsis_lines) {
  auto w = base_words(100);
  for (int i = 0; i < 3; ++i) w[static_cast<std::size_t>(10 * i + 9)] += "...";
  auto f = w;
  f[39] += "...";
  check_pair(join(w), join(f), "gopher_ellipsis_lines");
}

BOOST_AUTO_TEST_CASE(alpha_words) {
  std::mt19937_64 rng(5);
  auto w = base_words(100);
  for (int i = 0; i < 20; ++i) w[static_cast<std::size_t>(20 + i)] = std::to_string(10000 + rng() % 90000);
  auto f = w;
  f[60] = "12345";
  check_pair(join(w), join(f), "gopher_alpha_words");
}

BOOST_AUTO_TEST_CASE(stop_words) {
  auto w = base_words(100);
  auto f = w;
  f[1] = "The";  // "the" twice: one distinct stop word
  check_pair(join(w), join(f), "gopher_stop_words");
  gopher_quality_config c;
  c.min_stop_words = std::nullopt;
  BOOST_TEST(gopher_quality(join(f), c) == "");
}

BOOST_AUTO_TEST_CASE(all_switched_off) {
  BOOST_TEST(gopher_quality("", gopher_quality_config::none()) == "");
  BOOST_TEST(gopher_quality("# # # ...", gopher_quality_config::none()) == "");
  BOOST_TEST(gopher_repetition("a\na\na\na", gopher_repetition_config::none()) == "");
}

// ---------------------------------------------------------------------------- repetition
namespace {

struct filler {
  std::mt19937_64 rng{11};
  std::string word() { return random_word(rng, 7); }
  // Appends distinct words until `s` is exactly `len` bytes (the last word is stretched).
  void pad(std::string& s, std::size_t len) {
    while (s.size() < len) {
      const std::size_t left = len - s.size();
      if (left >= 9 || s.empty()) {
        if (!s.empty()) s += ' ';
        s += word().substr(0, std::min<std::size_t>(7, len - s.size()));
      } else {
        s.append(left, 'q');
      }
    }
  }
  std::string para(std::size_t len) {
    std::string s;
    pad(s, len);
    return s;
  }
};

gopher_repetition_config only(auto set) {
  auto c = gopher_repetition_config::none();
  set(c);
  return c;
}

void check_rep(const std::string& pass, const std::string& fail, const std::string& reason,
               const gopher_repetition_config& c) {
  BOOST_TEST(gopher_repetition(pass, c) == "");
  BOOST_TEST(gopher_repetition(fail, c) == reason);
}

// `k` duplicates among `n` pieces joined by `sep`.
std::string pieces(std::size_t n, std::size_t dups, const std::string& sep) {
  filler f;
  std::vector<std::string> p;
  for (std::size_t i = 0; i < n - dups; ++i) p.push_back(f.para(40));
  for (std::size_t i = 0; i < dups; ++i) p.push_back(p[i]);
  std::string s;
  for (std::size_t i = 0; i < p.size(); ++i) s += (i ? sep : "") + p[i];
  return s;
}

// unique text of `u` bytes, then sep + dup + sep + dup: dup bytes d over the total.
std::string dup_chars(std::size_t u, std::size_t d, const std::string& sep) {
  filler f;
  const std::string dup = f.para(d);
  return f.para(u) + sep + dup + sep + dup;
}

}  // namespace

BOOST_AUTO_TEST_CASE(dup_para_and_line_fractions) {
  const auto cp = only([](auto& c) { c.max_dup_para_frac = 0.30; });
  check_rep(pieces(10, 3, "\n\n"), pieces(10, 4, "\n\n"), "gopher_dup_para_frac", cp);
  const auto cl = only([](auto& c) { c.max_dup_line_frac = 0.30; });
  check_rep(pieces(10, 3, "\n"), pieces(10, 4, "\n"), "gopher_dup_line_frac", cl);
}

BOOST_AUTO_TEST_CASE(dup_para_and_line_char_fractions) {
  // d / L = 200 / 1000 passes; 200 / 999 fails
  const auto cp = only([](auto& c) { c.max_dup_para_char_frac = 0.20; });
  const std::string pp = dup_chars(1000 - 400 - 4, 200, "\n\n"), pf = dup_chars(1000 - 400 - 5, 200, "\n\n");
  BOOST_TEST(pp.size() == 1000u);
  check_rep(pp, pf, "gopher_dup_para_char_frac", cp);
  const auto cl = only([](auto& c) { c.max_dup_line_char_frac = 0.20; });
  const std::string lp = dup_chars(1000 - 400 - 2, 200, "\n"), lf = dup_chars(1000 - 400 - 3, 200, "\n");
  BOOST_TEST(lp.size() == 1000u);
  check_rep(lp, lf, "gopher_dup_line_char_frac", cl);
}

BOOST_AUTO_TEST_CASE(top_ngram_fractions) {
  // An n-gram of two-letter words (3n-1 bytes) repeated k times between distinct words:
  // (3n-1)·k / L equals the threshold exactly at L, exceeds it at L-1.
  struct tc { int n; double f; std::size_t k, len; };
  for (const tc& t : {tc{2, 0.20, 20, 500}, tc{3, 0.18, 9, 400}, tc{4, 0.16, 16, 1100}}) {
    std::string phrase;
    for (int i = 0; i < t.n; ++i) phrase += std::string(i ? " " : "") + char('a' + i) + char('a' + i);
    auto build = [&](std::size_t len) {
      filler f;
      std::string s = f.word();
      for (std::size_t i = 0; i < t.k; ++i) s += " " + phrase + " " + f.word();
      f.pad(s, len);
      return s;
    };
    const auto c = only([&](auto& c) { c.top_ngrams = {{t.n, t.f}}; });
    BOOST_TEST_CONTEXT("n = " << t.n) {
      check_rep(build(t.len), build(t.len - 1), "gopher_top_" + std::to_string(t.n) + "gram", c);
    }
  }
}

BOOST_AUTO_TEST_CASE(dup_ngram_fractions) {
  // An n-gram of two-letter words (2n bytes without spaces) seen k+1 times: 2n·k repeated
  // bytes over L.
  struct tc { int n; double f; std::size_t k, len; };
  for (const tc& t : {tc{5, 0.15, 3, 200}, tc{7, 0.13, 13, 1400}, tc{10, 0.10, 1, 200}}) {
    std::string phrase;
    for (int i = 0; i < t.n; ++i) phrase += std::string(i ? " " : "") + char('a' + i) + char('a' + i);
    auto build = [&](std::size_t len) {
      filler f;
      std::string s = f.word();
      for (std::size_t i = 0; i <= t.k; ++i) s += " " + phrase + " " + f.word();
      f.pad(s, len);
      return s;
    };
    const auto c = only([&](auto& c) { c.dup_ngrams = {{t.n, t.f}}; });
    BOOST_TEST_CONTEXT("n = " << t.n) {
      check_rep(build(t.len), build(t.len - 1), "gopher_dup_" + std::to_string(t.n) + "gram", c);
    }
  }
  // The default config (all n) flags heavy repetition
  std::string rep;
  for (int i = 0; i < 30; ++i) rep += "the cat sat on the mat and then it ran away ";
  BOOST_TEST(gopher_repetition(rep) != "");
}

// ---------------------------------------------------------------------------- reference
namespace {

// The repetition filter written plainly over strings (maps and sets of the pieces and
// n-grams themselves, no hashing), following the definitions in quality.hpp.
std::string gopher_repetition_ref(const std::string& text, const gopher_repetition_config& cfg) {
  if (text.empty()) return "";
  const double len = double(text.size());
  auto split = [&](std::size_t sep_min) {
    std::vector<std::string> out;
    std::string cur;
    for (std::size_t i = 0; i < text.size();) {
      if (text[i] != '\n') { cur += text[i++]; continue; }
      std::size_t r = i;
      while (r < text.size() && text[r] == '\n') ++r;
      if (r - i >= sep_min) {
        if (!cur.empty()) out.push_back(cur);
        cur.clear();
      } else if (!cur.empty()) {
        cur.append(r - i, '\n');
      }
      i = r;
    }
    if (!cur.empty()) out.push_back(cur);
    return out;
  };
  auto dups = [](const std::vector<std::string>& v, std::size_t& n, std::size_t& bytes) {
    std::set<std::string> seen;
    n = bytes = 0;
    for (const auto& p : v) {
      if (!seen.insert(p).second) { ++n; bytes += p.size(); }
    }
  };
  std::size_t n, bytes;
  const auto paras = split(2);
  dups(paras, n, bytes);
  if (cfg.max_dup_para_frac && double(n) / double(paras.size()) > *cfg.max_dup_para_frac) return "gopher_dup_para_frac";
  if (cfg.max_dup_para_char_frac && double(bytes) / len > *cfg.max_dup_para_char_frac) return "gopher_dup_para_char_frac";
  const auto lines = split(1);
  dups(lines, n, bytes);
  if (cfg.max_dup_line_frac && double(n) / double(lines.size()) > *cfg.max_dup_line_frac) return "gopher_dup_line_frac";
  if (cfg.max_dup_line_char_frac && double(bytes) / len > *cfg.max_dup_line_char_frac) return "gopher_dup_line_char_frac";
  std::vector<std::string> words;
  std::string cur;
  for (char c : text + " ") {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      if (!cur.empty()) words.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  auto key = [&](std::size_t i, int k) {
    std::string s;
    for (int j = 0; j < k; ++j) s += words[i + static_cast<std::size_t>(j)] + '\x01';
    return s;
  };
  auto bytes_of = [&](std::size_t i, int k) {
    std::size_t b = 0;
    for (int j = 0; j < k; ++j) b += words[i + static_cast<std::size_t>(j)].size();
    return b;
  };
  for (int k = 2; k <= 10; ++k) {
    if (words.size() < static_cast<std::size_t>(k)) break;
    const std::size_t count = words.size() - static_cast<std::size_t>(k) + 1;
    for (const auto& [tn, f] : cfg.top_ngrams) {
      if (tn != k) continue;
      std::map<std::string, std::pair<std::size_t, std::size_t>> c;  // count, first position
      for (std::size_t i = 0; i < count; ++i) {
        auto [it, fresh] = c.try_emplace(key(i, k), 0, i);
        ++it->second.first;
      }
      std::size_t best = 0, first = 0;
      for (const auto& [g, cf] : c)
        if (cf.first > best || (cf.first == best && cf.second < first)) { best = cf.first; first = cf.second; }
      if (double(bytes_of(first, k) + static_cast<std::size_t>(k - 1)) * double(best) / len > f)
        return "gopher_top_" + std::to_string(k) + "gram";
    }
    for (const auto& [dn, f] : cfg.dup_ngrams) {
      if (dn != k) continue;
      std::set<std::string> seen;
      std::size_t rep = 0;
      for (std::size_t i = 0; i < count;) {
        if (!seen.insert(key(i, k)).second) { rep += bytes_of(i, k); i += static_cast<std::size_t>(k); }
        else ++i;
      }
      if (double(rep) / len > f) return "gopher_dup_" + std::to_string(k) + "gram";
    }
  }
  return "";
}

}  // namespace

// The hashed filter against the plain reference on random documents with varying repetition,
// for the default config and for each test alone.
BOOST_AUTO_TEST_CASE(repetition_matches_reference) {
  std::mt19937_64 rng(21);
  std::vector<gopher_repetition_config> cfgs = {gopher_repetition_config{}};
  {
    const gopher_repetition_config d;
    auto c = gopher_repetition_config::none();
    c.top_ngrams = d.top_ngrams;
    cfgs.push_back(c);
    c = gopher_repetition_config::none();
    c.dup_ngrams = d.dup_ngrams;
    cfgs.push_back(c);
    c = gopher_repetition_config::none();
    c.max_dup_line_char_frac = 0.2;
    c.max_dup_para_char_frac = 0.2;
    cfgs.push_back(c);
  }
  std::map<std::string, int> seen;
  for (int it = 0; it < 1500; ++it) {
    const auto vocab = tfm::test::random_vocab(rng, 3 + rng() % 200, 1, 6);
    std::vector<std::string> lines;
    const std::size_t n_lines = 1 + rng() % 15;
    for (std::size_t l = 0; l < n_lines; ++l) {
      if (!lines.empty() && rng() % 5 == 0) { lines.push_back(lines[rng() % lines.size()]); continue; }
      std::string s;
      const std::size_t nw = 1 + rng() % 12;
      for (std::size_t w = 0; w < nw; ++w) s += (w ? " " : "") + vocab[rng() % vocab.size()];
      lines.push_back(s);
    }
    std::string text;
    for (std::size_t l = 0; l < lines.size(); ++l) text += (l ? (rng() % 3 ? "\n" : "\n\n") : "") + lines[l];
    for (const auto& c : cfgs) {
      const std::string got = gopher_repetition(text, c), want = gopher_repetition_ref(text, c);
      BOOST_TEST_REQUIRE(got == want, "text:\n" << text);
      ++seen[want];
    }
  }
  for (const auto& [k, v] : seen) BOOST_TEST_MESSAGE((k.empty() ? "pass" : k) << ": " << v);
  BOOST_TEST(seen.size() >= 8u);  // the generator reaches many of the tests
}
