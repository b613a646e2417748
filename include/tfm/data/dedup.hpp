// tfm/data/dedup.hpp — exact and near-duplicate removal.
//  - exact_dedup: 128-bit XXH3 of the (cleaned) text; the first copy is kept.
//  - line_dedup: drops lines already seen in an earlier document (lines repeated inside one
//    document are the repetition filter's business).
//  - minhash / minhash_lsh: MinHash signatures of word n-grams and an LSH index over them.
//    Candidates that share a band are verified by estimated Jaccard; verified pairs are
//    joined by union-find and one document, the first added, is kept per cluster.
// Memory is per document: 16 bytes (exact), 8 bytes per distinct line (lines), and
// 4·bands·rows bytes of signature plus ~bands map entries (near dedup).
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <xxhash.h>

#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"
#include "tfm/data/detail/flat_hash.hpp"
#include "tfm/data/quality.hpp"

namespace tfm::data {

// ------------------------------------------------------------------------------ exact
class exact_dedup {
 public:
  // True when `text` was not seen before (and remembers it).
  bool insert(std::string_view text) {
    const XXH128_hash_t h = XXH3_128bits(text.data(), text.size());
    return seen_.insert(key{h.low64, h.high64}).second;
  }
  std::size_t size() const { return seen_.size(); }

 private:
  struct key {
    uint64_t lo, hi;
    bool operator==(const key&) const = default;
  };
  struct key_hash {
    std::size_t operator()(const key& k) const { return static_cast<std::size_t>(k.lo ^ (k.hi * 0x9e3779b97f4a7c15ULL)); }
  };
  std::unordered_set<key, key_hash> seen_;
};

// ------------------------------------------------------------------------------ lines
class line_dedup {
 public:
  // Lines shorter than this (bytes, after trimming) are never dropped: "", "}", "Thanks."
  explicit line_dedup(std::size_t min_line_bytes = 20) : min_line_bytes_(min_line_bytes) {}

  // Returns `text` without the lines seen in earlier documents.
  std::string filter(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    doc_.clear();
    std::size_t b = 0;
    bool first = true;
    while (b <= text.size()) {
      std::size_t e = text.find('\n', b);
      if (e == std::string_view::npos) e = text.size();
      const std::string_view line = text.substr(b, e - b);
      bool drop = false;
      if (line.size() >= min_line_bytes_) {
        const uint64_t h = XXH3_64bits(line.data(), line.size());
        if (seen_.count(h)) drop = true; else doc_.push_back(h);
      }
      if (drop) {
        ++lines_dropped_;
        bytes_dropped_ += line.size() + 1;
      } else {
        if (!first) out.push_back('\n');
        out.append(line);
        first = false;
      }
      b = e + 1;
    }
    seen_.insert(doc_.begin(), doc_.end());
    return out;
  }
  uint64_t lines_dropped() const { return lines_dropped_; }
  uint64_t bytes_dropped() const { return bytes_dropped_; }

 private:
  std::size_t min_line_bytes_;
  std::unordered_set<uint64_t> seen_;
  std::vector<uint64_t> doc_;
  uint64_t lines_dropped_ = 0, bytes_dropped_ = 0;
};

// ------------------------------------------------------------------------------ MinHash
struct minhash_config {
  int ngram = 5;        // word n-grams (shingles)
  int bands = 14;       // LSH bands ...
  int rows = 8;         // ... of this many rows: bands·rows permutations
  double verify_threshold = 0.7;  // estimated Jaccard a candidate pair needs to be joined
  uint64_t seed = 0x7466'6d2d'6d69'6e68ULL;
  std::size_t max_bucket_checks = 256;  // candidates verified per band bucket at most

  int num_perm() const { return bands * rows; }
  // The Jaccard similarity at which a pair becomes a candidate with probability ~1/2 ...
  double threshold() const { return std::pow(1.0 / bands, 1.0 / rows); }
};

// Probability that a pair with Jaccard similarity `s` shares at least one band.
inline double lsh_candidate_probability(double s, int bands, int rows) {
  return 1.0 - std::pow(1.0 - std::pow(s, rows), bands);
}

// Fraction of equal entries: the MinHash estimate of the Jaccard similarity.
inline double estimate_jaccard(const uint32_t* a, const uint32_t* b, int n) {
  int eq = 0;
  for (int i = 0; i < n; ++i) eq += a[i] == b[i];
  return n ? double(eq) / n : 0.0;
}

// MinHash signatures. Each word n-gram is hashed once (XXH3 of its words' XXH3 hashes); the
// permutations are h -> (a_i·h + b_i) mod 2^64, keeping the high 32 bits (multiply-shift
// hashing, a_i odd), so one signature costs one multiply-add per shingle and permutation.
class minhash {
 public:
  explicit minhash(const minhash_config& cfg = {}) : cfg_(cfg) {
    if (cfg.ngram < 1 || cfg.bands < 1 || cfg.rows < 1)
      throw invalid_argument(tfm::detail::concat("minhash: ngram, bands and rows must be >= 1, got ", cfg.ngram,
                                            ", ", cfg.bands, ", ", cfg.rows));
    // bands·rows permutations per document (an int): beyond 2^16 a signature is 256 KB per document
    if (std::int64_t(cfg.bands) * cfg.rows > (std::int64_t(1) << 16))
      throw invalid_argument(tfm::detail::concat("minhash: bands × rows = ", std::int64_t(cfg.bands) * cfg.rows,
                                                 " permutations, more than the 65536 allowed"));
    if (!(cfg.verify_threshold >= 0 && cfg.verify_threshold <= 1))
      throw invalid_argument(
          tfm::detail::concat("minhash: verify_threshold must be in [0, 1], got ", cfg.verify_threshold));
    uint64_t s = cfg.seed;
    auto next = [&s] {  // splitmix64
      s += 0x9e3779b97f4a7c15ULL;
      uint64_t z = s;
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
      return z ^ (z >> 31);
    };
    a_.resize(static_cast<std::size_t>(cfg.num_perm()));
    b_.resize(a_.size());
    for (std::size_t i = 0; i < a_.size(); ++i) {
      a_[i] = next() | 1;
      b_[i] = next();
    }
  }
  const minhash_config& config() const { return cfg_; }
  int num_perm() const { return cfg_.num_perm(); }

  // Writes num_perm() values to `sig`; returns the number of shingles (0: empty text, and
  // then every value is UINT32_MAX). Texts shorter than `ngram` words form one shingle.
  std::size_t signature(std::string_view text, uint32_t* sig) const {
    const std::size_t np = a_.size();
    std::vector<uint64_t>& wh = scratch_;
    wh.clear();
    const std::size_t n = text.size();
    for (std::size_t i = 0; i < n;) {
      while (i < n && detail::is_ws_byte(static_cast<unsigned char>(text[i]))) ++i;
      if (i >= n) break;
      const std::size_t b = i;
      while (i < n && !detail::is_ws_byte(static_cast<unsigned char>(text[i]))) ++i;
      wh.push_back(XXH3_64bits(text.data() + b, i - b));
    }
    // The permutations run over blocks of shingle hashes so the compiler can vectorise the
    // inner loop over permutations with the block in registers / L1.
    std::vector<uint64_t>& sh = shingles_;
    sh.clear();
    const std::size_t k = static_cast<std::size_t>(cfg_.ngram);
    if (wh.empty()) {
      for (std::size_t p = 0; p < np; ++p) sig[p] = UINT32_MAX;
      return 0;
    }
    if (wh.size() < k) {
      sh.push_back(XXH3_64bits(wh.data(), wh.size() * sizeof(uint64_t)));
    } else {
      for (std::size_t i = 0; i + k <= wh.size(); ++i)
        sh.push_back(XXH3_64bits(wh.data() + i, k * sizeof(uint64_t)));
    }
    mins_.assign(np, UINT64_MAX);
    uint64_t* __restrict m = mins_.data();
    const uint64_t* __restrict a = a_.data();
    const uint64_t* __restrict bb = b_.data();
    for (const uint64_t h : sh) {
      for (std::size_t p = 0; p < np; ++p) {
        const uint64_t v = a[p] * h + bb[p];
        m[p] = v < m[p] ? v : m[p];
      }
    }
    for (std::size_t p = 0; p < np; ++p) sig[p] = static_cast<uint32_t>(m[p] >> 32);
    return sh.size();
  }
  std::vector<uint32_t> signature(std::string_view text) const {
    std::vector<uint32_t> s(a_.size());
    signature(text, s.data());
    return s;
  }

 private:
  minhash_config cfg_;
  std::vector<uint64_t> a_, b_;
  mutable std::vector<uint64_t> scratch_, shingles_, mins_;
};

// An LSH index with union-find clustering. Add documents in corpus order; `keep()` then says
// which to keep: the first document of each cluster of verified near-duplicates.
class minhash_lsh {
 public:
  explicit minhash_lsh(const minhash_config& cfg = {}) : cfg_(cfg) {}

  // Adds a signature of num_perm() values; `empty` documents (no shingles) join no cluster.
  // Returns the document's id (0, 1, ...).
  uint32_t add(const uint32_t* sig, bool empty = false) {
    const uint32_t id = static_cast<uint32_t>(parent_.size());
    const std::size_t np = static_cast<std::size_t>(cfg_.num_perm());
    parent_.push_back(id);
    sigs_.insert(sigs_.end(), sig, sig + np);
    next_.resize(next_.size() + static_cast<std::size_t>(cfg_.bands), none);
    if (empty) return id;
    for (int band = 0; band < cfg_.bands; ++band) {
      const uint32_t* rows = sig + static_cast<std::size_t>(band * cfg_.rows);
      const uint64_t key = XXH3_64bits_withSeed(rows, static_cast<std::size_t>(cfg_.rows) * 4, static_cast<uint64_t>(band));
      auto [it, inserted] = heads_.try_emplace(key, id);
      if (inserted) continue;
      std::size_t checks = 0;
      for (uint32_t c = it->second; c != none && checks < cfg_.max_bucket_checks;
           c = next_[static_cast<std::size_t>(c) * static_cast<std::size_t>(cfg_.bands) + static_cast<std::size_t>(band)]) {
        if (find(c) == find(id)) continue;
        ++checks;
        ++candidate_pairs_;
        if (estimate_jaccard(sigs_.data() + c * np, sig, cfg_.num_perm()) >= cfg_.verify_threshold) {
          ++verified_pairs_;
          unite(c, id);
        }
      }
      next_[static_cast<std::size_t>(id) * static_cast<std::size_t>(cfg_.bands) + static_cast<std::size_t>(band)] = it->second;
      it->second = id;
    }
    return id;
  }
  std::size_t size() const { return parent_.size(); }

  // keep()[i]: document i is the first of its cluster.
  std::vector<bool> keep() {
    std::vector<bool> k(parent_.size());
    for (uint32_t i = 0; i < parent_.size(); ++i) k[i] = find(i) == i;
    return k;
  }
  // The cluster representative (smallest id) of document i.
  uint32_t cluster_of(uint32_t i) { return find(i); }
  uint64_t candidate_pairs() const { return candidate_pairs_; }
  uint64_t verified_pairs() const { return verified_pairs_; }

 private:
  static constexpr uint32_t none = UINT32_MAX;
  uint32_t find(uint32_t x) {
    while (parent_[x] != x) {
      parent_[x] = parent_[parent_[x]];
      x = parent_[x];
    }
    return x;
  }
  void unite(uint32_t a, uint32_t b) {  // the smaller id becomes the root: the first is kept
    a = find(a);
    b = find(b);
    if (a == b) return;
    if (a < b) parent_[b] = a; else parent_[a] = b;
  }
  minhash_config cfg_;
  std::vector<uint32_t> parent_;
  std::vector<uint32_t> sigs_;   // (docs, num_perm)
  std::vector<uint32_t> next_;   // (docs, bands): next older document in the same bucket
  std::unordered_map<uint64_t, uint32_t> heads_;  // band key (seeded by band) -> newest document
  uint64_t candidate_pairs_ = 0, verified_pairs_ = 0;
};

}  // namespace tfm::data
