// Tests of tfm/data/dedup.hpp: exact and line dedup, MinHash estimates, and the false
// negative / false positive rates of 14x8 LSH against the rates its theory predicts.
#define TFM_TEST_MODULE data_dedup
#include "support/test_main.hpp"

#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "data/text_gen.hpp"
#include "tfm/data/dedup.hpp"

using namespace tfm::data;

BOOST_AUTO_TEST_CASE(exact) {
  exact_dedup d;
  BOOST_TEST(d.insert("hello world"));
  BOOST_TEST(d.insert("hello world!"));
  BOOST_TEST(!d.insert("hello world"));
  BOOST_TEST(d.insert(""));
  BOOST_TEST(!d.insert(""));
  BOOST_TEST(d.size() == 3u);
}

BOOST_AUTO_TEST_CASE(lines_across_documents) {
  line_dedup d(5);
  BOOST_TEST(d.filter("Copyright 2024 Foo Inc.\nfirst body\nok") == "Copyright 2024 Foo Inc.\nfirst body\nok");
  // within one document repeated lines stay; across documents they go (short lines stay)
  BOOST_TEST(d.filter("second body\nCopyright 2024 Foo Inc.\nok\nsecond body") == "second body\nok\nsecond body");
  BOOST_TEST(d.lines_dropped() == 1u);
  BOOST_TEST(d.filter("Copyright 2024 Foo Inc.") == "");
}

namespace {

std::vector<std::string> words_of(const std::string& s) {
  std::vector<std::string> w;
  std::string cur;
  for (char c : s) {
    if (c == ' ' || c == '\n') { if (!cur.empty()) w.push_back(cur); cur.clear(); }
    else cur += c;
  }
  if (!cur.empty()) w.push_back(cur);
  return w;
}

double true_jaccard(const std::string& a, const std::string& b, std::size_t n = 5) {
  auto shingles = [n](const std::string& s) {
    const auto w = words_of(s);
    std::set<std::string> out;
    for (std::size_t i = 0; i + n <= w.size(); ++i) {
      std::string g;
      for (std::size_t k = 0; k < n; ++k) g += w[i + k] + ' ';
      out.insert(g);
    }
    return out;
  };
  const auto sa = shingles(a), sb = shingles(b);
  std::size_t inter = 0;
  for (const auto& g : sa) inter += sb.count(g);
  return double(inter) / double(sa.size() + sb.size() - inter);
}

// A copy of `doc` (space-separated words) with `edits` words replaced at random positions.
std::string edit(const std::string& doc, std::size_t edits, std::mt19937_64& rng,
                 const std::vector<std::string>& vocab) {
  auto w = words_of(doc);
  for (std::size_t e = 0; e < edits; ++e) w[rng() % w.size()] = vocab[rng() % vocab.size()];
  std::string s;
  for (std::size_t i = 0; i < w.size(); ++i) s += (i ? " " : "") + w[i];
  return s;
}

std::string random_doc(std::mt19937_64& rng, const std::vector<std::string>& vocab, std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += (i ? " " : "") + vocab[rng() % vocab.size()];
  return s;
}

// Probability that a pair of Jaccard `j` ends in one cluster through a direct edge: it is a
// candidate (shares a band) and its estimate over 112 values reaches the verify threshold
// (binomial tail; the two events are treated as independent).
double join_probability(double j, const minhash_config& c = {}) {
  const int n = c.num_perm();
  const int need = static_cast<int>(std::ceil(c.verify_threshold * n - 1e-9));
  double tail = 0;
  for (int k = need; k <= n; ++k)
    tail += std::exp(std::lgamma(n + 1.0) - std::lgamma(k + 1.0) - std::lgamma(n - k + 1.0) +
                     k * std::log(std::max(j, 1e-300)) + (n - k) * std::log(std::max(1 - j, 1e-300)));
  return lsh_candidate_probability(j, c.bands, c.rows) * std::min(1.0, tail);
}

}  // namespace

BOOST_AUTO_TEST_CASE(minhash_estimates_jaccard) {
  std::mt19937_64 rng(1);
  const auto vocab = tfm::test::random_vocab(rng, 3000);
  minhash mh;
  BOOST_TEST(mh.num_perm() == 112);
  double sum_err = 0;
  int count = 0;
  for (int i = 0; i < 60; ++i) {
    const std::string a = random_doc(rng, vocab, 300);
    const std::string b = edit(a, 2 + static_cast<std::size_t>(i % 20), rng, vocab);
    const double j = true_jaccard(a, b);
    const double est = estimate_jaccard(mh.signature(a).data(), mh.signature(b).data(), mh.num_perm());
    const double sigma = std::sqrt(j * (1 - j) / 112.0);
    BOOST_TEST(std::abs(est - j) <= 4 * sigma + 0.02, "J " << j << " estimate " << est);
    sum_err += est - j;
    ++count;
  }
  BOOST_TEST(std::abs(sum_err / count) < 0.02);  // unbiased
  // identical texts: identical signatures; disjoint: near 0
  BOOST_TEST(mh.signature("a b c d e f") == mh.signature("a b c d e f"));
  BOOST_TEST(estimate_jaccard(mh.signature(random_doc(rng, vocab, 200)).data(),
                              mh.signature(random_doc(rng, vocab, 200)).data(), 112) < 0.05);
  // empty text
  std::vector<uint32_t> s(112);
  BOOST_TEST(mh.signature("", s.data()) == 0u);
  BOOST_TEST(mh.signature("short", s.data()) == 1u);
}

BOOST_AUTO_TEST_CASE(bad_configurations_are_refused) {
  BOOST_CHECK_THROW(minhash(minhash_config{.bands = 0}), tfm::invalid_argument);
  // bands × rows beyond an int (it sizes every signature)
  BOOST_CHECK_THROW(minhash(minhash_config{.bands = 1 << 20, .rows = 1 << 12}), tfm::invalid_argument);
  BOOST_CHECK_THROW(minhash(minhash_config{.bands = 1 << 10, .rows = 65}), tfm::invalid_argument);
  BOOST_CHECK_NO_THROW(minhash(minhash_config{.bands = 1 << 10, .rows = 64}));
  for (double v : {-0.1, 1.5, std::numeric_limits<double>::quiet_NaN()})
    BOOST_CHECK_THROW(minhash(minhash_config{.verify_threshold = v}), tfm::invalid_argument);
}

BOOST_AUTO_TEST_CASE(theory_of_bands) {
  minhash_config c;
  BOOST_TEST(std::abs(c.threshold() - 0.719) < 0.001);
  BOOST_TEST(lsh_candidate_probability(0.72, 14, 8) > 0.6);
  BOOST_TEST(lsh_candidate_probability(0.9, 14, 8) > 0.999);
  BOOST_TEST(lsh_candidate_probability(0.3, 14, 8) < 0.001);
}

// Base documents of random words, each with a near-duplicate (a few % of words edited) at a
// random later position. False negative: a near-duplicate left in another cluster than its
// base. False positive: a base document joined to another base. The measured rates must fit
// the rates predicted for each pair's true Jaccard J: candidate with probability
// 1 - (1 - J^8)^14, then verified when the estimate reaches 0.7.
BOOST_AUTO_TEST_CASE(false_negative_and_positive_rates) {
  std::mt19937_64 rng(42);
  const auto vocab = tfm::test::random_vocab(rng, 5000);
  const std::size_t n_base = 400, words = 250;
  minhash mh;
  for (const std::size_t edits : {5u, 10u}) {   // 2% and 4% of the words
    std::vector<std::string> docs;
    std::vector<int> base_of;                      // -1 for a base, else the index of its base
    for (std::size_t i = 0; i < n_base; ++i) {
      docs.push_back(random_doc(rng, vocab, words));
      base_of.push_back(-1);
    }
    double predicted_fn = 0;
    std::vector<std::pair<std::size_t, std::size_t>> pairs;
    for (std::size_t i = 0; i < n_base; ++i) {
      const std::string d = edit(docs[i], edits, rng, vocab);
      const double j = true_jaccard(docs[i], d);
      predicted_fn += 1 - join_probability(j);
      docs.push_back(d);
      base_of.push_back(static_cast<int>(i));
      pairs.push_back({i, docs.size() - 1});
    }
    predicted_fn /= n_base;
    minhash_lsh lsh;
    std::vector<uint32_t> sig(112);
    for (const auto& d : docs) {
      mh.signature(d, sig.data());
      lsh.add(sig.data());
    }
    std::size_t fn = 0;
    for (auto [a, b] : pairs) fn += lsh.cluster_of(static_cast<uint32_t>(a)) != lsh.cluster_of(static_cast<uint32_t>(b));
    std::size_t fp = 0;
    for (uint32_t i = 0; i < n_base; ++i) fp += lsh.cluster_of(i) != i;  // a base joined an earlier base
    const double fnr = double(fn) / n_base, fpr = double(fp) / n_base;
    const double slack = 3 * std::sqrt(std::max(predicted_fn, 0.01) * (1 - predicted_fn) / n_base) + 0.01;
    BOOST_TEST_MESSAGE("edits " << edits << "/" << words << ": FNR " << fnr << " (predicted " << predicted_fn
                                << "), FPR " << fpr << ", candidate pairs " << lsh.candidate_pairs()
                                << ", verified " << lsh.verified_pairs());
    BOOST_TEST(fnr <= predicted_fn + slack);
    BOOST_TEST(fpr == 0.0);  // predicted: J ~ 0 between random documents, P(candidate) < 1e-20
    const auto keep = lsh.keep();
    std::size_t kept = 0;
    for (bool k : keep) kept += k;
    BOOST_TEST(kept == n_base + fn);
    for (std::size_t i = 0; i < n_base; ++i) BOOST_TEST_REQUIRE(keep[i]);  // the first is kept
  }
}

// Pairs far below the threshold (J ~ 0.35) are mostly kept apart, as predicted.
BOOST_AUTO_TEST_CASE(dissimilar_pairs_kept) {
  std::mt19937_64 rng(9);
  const auto vocab = tfm::test::random_vocab(rng, 5000);
  minhash mh;
  minhash_lsh lsh;
  std::vector<uint32_t> sig(112);
  const std::size_t n = 200;
  double predicted = 0;
  std::vector<std::string> docs;
  for (std::size_t i = 0; i < n; ++i) docs.push_back(random_doc(rng, vocab, 250));
  for (std::size_t i = 0; i < n; ++i) {
    docs.push_back(edit(docs[i], 25, rng, vocab));  // 10% of words: J ~ 0.45
    predicted += join_probability(true_jaccard(docs[i], docs.back()));
  }
  predicted /= n;
  for (const auto& d : docs) { mh.signature(d, sig.data()); lsh.add(sig.data()); }
  std::size_t joined = 0;
  for (std::size_t i = 0; i < n; ++i) joined += lsh.cluster_of(static_cast<uint32_t>(n + i)) == i;
  BOOST_TEST_MESSAGE("J ~ 0.45 pairs joined: " << double(joined) / n << " (candidate probability " << predicted << ")");
  BOOST_TEST(double(joined) / n <= predicted + 0.05);
}

BOOST_AUTO_TEST_CASE(clusters_keep_first) {
  minhash mh;
  minhash_lsh lsh;
  std::mt19937_64 rng(3);
  const auto vocab = tfm::test::random_vocab(rng, 1000);
  const std::string a = random_doc(rng, vocab, 300);
  const std::string other = random_doc(rng, vocab, 300);
  std::vector<uint32_t> sig(112);
  // a chain: b near a, c near b; the empty document joins nothing
  const std::string b = edit(a, 2, rng, vocab), c = edit(b, 2, rng, vocab);
  for (const auto* d : {&other, &a, &b, &c}) { mh.signature(*d, sig.data()); lsh.add(sig.data()); }
  mh.signature("", sig.data());
  lsh.add(sig.data(), true);
  mh.signature("", sig.data());
  lsh.add(sig.data(), true);
  const auto keep = lsh.keep();
  BOOST_TEST(keep == (std::vector<bool>{true, true, false, false, true, true}));
}
