// tfm/train/data.hpp — batches of next-token windows for training and evaluation.
//
// A token_corpus is a sequence of ids: token shards (data/shard.hpp, memory-mapped and checked
// when opened) read as one concatenation, or ids held in memory. A split is a token range of it
// ([0, 90%) for training, [90%, 100%) for validation, say). A batch_source cuts [B, T] windows
// out of a split: inputs ids[s, s+T), targets ids[s+1, s+T+1).
//
// Two orders: random windows (start s drawn from a counter-based generator keyed by seed and
// sample index, so the position to save is one integer, and a resumed run draws exactly the
// windows the uninterrupted one would have) and sequential epochs (consecutive windows,
// wrapping around; the position is the next start).
//
// Bad data is refused with the file and the problem named: a shard's own checks (magic,
// truncation, checksum, ids below its vocabulary), an id at or above the model's vocabulary,
// a split shorter than one window.
#pragma once
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tfm/core/error.hpp"
#include "tfm/core/file.hpp"
#include "tfm/core/rng.hpp"
#include "tfm/data/shard.hpp"

namespace tfm::train {

class data_error : public error {
 public:
  using error::error;
};

// Ids from shards (concatenated in the order given) or from memory.
class token_corpus {
 public:
  // Opens and verifies every shard. vocab_limit > 0: every id must be below it (the model's
  // vocabulary); the first id that is not is reported with its file and position.
  static token_corpus from_shards(const std::vector<std::filesystem::path>& paths, std::uint32_t vocab_limit = 0) {
    expects<data_error>(!paths.empty(), "token_corpus: no shard files given");
    token_corpus c;
    for (auto const& p : paths) {
      auto s = std::make_shared<token_shard>(p, true);
      expects<data_error>(s->size() > 0, p.string(), ": the shard holds no tokens");
      if (vocab_limit > 0 && s->vocab_size() > vocab_limit) {
        for (std::uint64_t i = 0; i < s->size(); ++i)
          if (const auto id = (*s)[i]; id >= vocab_limit)
            throw data_error(tfm::detail::concat(p.string(), ": token ", i, " is ", id,
                                                 ", not below the model's vocabulary of ", vocab_limit));
      }
      c.starts_.push_back(c.size_);
      c.size_ += s->size();
      c.bytes_ += s->header().source_bytes;
      c.docs_ += s->header().document_count;
      c.shards_.push_back(std::move(s));
    }
    c.name_ = paths.size() == 1 ? paths[0].string() : tfm::detail::concat(paths[0].string(), " (+", paths.size() - 1, " shards)");
    return c;
  }

  // Ids in memory; source_bytes is the text they encode (for bits per byte; 0 = unknown).
  static token_corpus from_tokens(std::vector<std::uint32_t> ids, std::uint64_t source_bytes, std::uint32_t vocab_limit,
                                  std::string name = "<memory>") {
    expects<data_error>(!ids.empty(), name, ": no tokens");
    for (std::size_t i = 0; i < ids.size(); ++i)
      expects<data_error>(vocab_limit == 0 || ids[i] < vocab_limit, name, ": token ", i, " is ", ids[i],
                          ", not below the model's vocabulary of ", vocab_limit);
    token_corpus c;
    c.size_ = ids.size();
    c.bytes_ = source_bytes;
    c.mem_ = std::make_shared<std::vector<std::uint32_t>>(std::move(ids));
    c.name_ = std::move(name);
    return c;
  }

  // Byte-level tokens of a text file: id = byte value (vocabulary 256), for character-level runs.
  static token_corpus from_text_bytes(const std::filesystem::path& path) {
    const std::string text = read_file<data_error>(path);
    expects<data_error>(!text.empty(), path.string(), ": the file is empty");
    const auto* bytes_begin = reinterpret_cast<const unsigned char*>(text.data());
    std::vector<std::uint32_t> ids(bytes_begin, bytes_begin + text.size());
    const std::uint64_t bytes = ids.size();
    return from_tokens(std::move(ids), bytes, 256, path.string());
  }


  std::uint64_t size() const { return size_; }
  // Bytes of text the ids encode (0 when unknown) and documents (eot separators) in shards.
  std::uint64_t source_bytes() const { return bytes_; }
  const std::string& name() const { return name_; }

  // Text bytes per token: source bytes over the ids that are not document separators.
  double bytes_per_token() const {
    const std::uint64_t content = size_ > docs_ ? size_ - docs_ : 0;
    return bytes_ > 0 && content > 0 ? double(bytes_) / double(content) : 0.0;
  }

  void read(std::uint64_t offset, std::span<std::int32_t> out) const {
    expects<data_error>(offset <= size_ && out.size() <= size_ - offset, name_, ": read of ", out.size(),
                        " tokens at ", offset, " is past the end (", size_, " tokens)");
    if (mem_) {
      for (std::size_t i = 0; i < out.size(); ++i) out[i] = std::int32_t((*mem_)[offset + i]);
      return;
    }
    std::size_t k = std::size_t(std::upper_bound(starts_.begin(), starts_.end(), offset) - starts_.begin()) - 1;
    std::size_t done = 0;
    while (done < out.size()) {
      const auto& s = *shards_[k];
      const std::uint64_t local = offset + done - starts_[k];
      const std::size_t n = std::size_t(std::min<std::uint64_t>(out.size() - done, s.size() - local));
      s.read(local, out.subspan(done, n));
      done += n;
      ++k;
    }
  }

 private:
  std::vector<std::shared_ptr<token_shard>> shards_;
  std::vector<std::uint64_t> starts_;
  std::shared_ptr<std::vector<std::uint32_t>> mem_;
  std::uint64_t size_ = 0, bytes_ = 0, docs_ = 0;
  std::string name_;
};

// A token range [begin, end) of a corpus.
struct split {
  std::uint64_t begin = 0, end = 0;
  std::uint64_t size() const { return end - begin; }
};

// Splits at floor(fraction · size): [0, cut) and [cut, size).
inline std::pair<split, split> split_at(const token_corpus& c, double train_fraction) {
  expects<data_error>(train_fraction > 0 && train_fraction < 1, "split_at: the train fraction must be in (0, 1), got ",
                      train_fraction);
  const auto cut = std::uint64_t(double(c.size()) * train_fraction);
  return {split{0, cut}, split{cut, c.size()}};
}

enum class sampling { random_windows, sequential };

// [B, T] windows from a split of a corpus; position() / set_position() save and restore where it is.
class batch_source {
 public:
  batch_source(token_corpus corpus, split s, int T, sampling order, std::uint64_t seed, std::string what = "train")
      : c_(std::move(corpus)), s_(s), T_(T), order_(order), seed_(seed), what_(std::move(what)) {
    expects<data_error>(T > 0, c_.name(), ": window length must be positive, got ", T);
    expects<data_error>(s.begin <= s.end && s.end <= c_.size(), c_.name(), ": split [", s.begin, ", ", s.end,
                        ") is outside the corpus of ", c_.size(), " tokens");
    expects<data_error>(s.size() >= std::uint64_t(T) + 1, c_.name(), ": the ", what_, " split holds ", s.size(),
                        " tokens, fewer than one window of context ", T, " + 1");
  }

  int seq_len() const { return T_; }
  const token_corpus& corpus() const { return c_; }
  const split& range() const { return s_; }
  // Windows drawn so far (random) or the next start offset within the split (sequential).
  std::uint64_t position() const { return pos_; }
  void set_position(std::uint64_t p) { pos_ = p; }
  // Number of distinct non-overlapping windows (one sequential epoch).
  std::uint64_t windows() const { return (s_.size() - 1) / std::uint64_t(T_); }

  // Fills tokens and targets, both [B, T] row-major.
  void next(int B, std::span<std::int32_t> tokens, std::span<std::int32_t> targets) {
    expects<data_error>(tokens.size() == std::size_t(B) * T_ && targets.size() == tokens.size(),
                        "batch_source::next: buffers of ", tokens.size(), " and ", targets.size(), " ids for a batch of ",
                        B, "x", T_);
    std::vector<std::int32_t> w(std::size_t(T_) + 1);
    for (int b = 0; b < B; ++b) {
      const std::uint64_t start = next_start();
      c_.read(s_.begin + start, w);
      std::copy(w.begin(), w.end() - 1, tokens.begin() + std::ptrdiff_t(b) * T_);
      std::copy(w.begin() + 1, w.end(), targets.begin() + std::ptrdiff_t(b) * T_);
    }
  }

  // The i-th window of a fixed evaluation pass: evenly spaced over the split, same every time.
  void eval_window(std::uint64_t i, std::uint64_t count, std::span<std::int32_t> tokens, std::span<std::int32_t> targets) const {
    const std::uint64_t span_ = s_.size() - std::uint64_t(T_) - 1;
    const std::uint64_t start = count <= 1 ? 0 : span_ * i / (count - 1);
    std::vector<std::int32_t> w(std::size_t(T_) + 1);
    c_.read(s_.begin + start, w);
    std::copy(w.begin(), w.end() - 1, tokens.begin());
    std::copy(w.begin() + 1, w.end(), targets.begin());
  }

 private:
  std::uint64_t next_start() {
    const std::uint64_t last = s_.size() - std::uint64_t(T_) - 1;  // largest valid start
    if (order_ == sampling::random_windows) {
      const std::uint64_t i = pos_++;
      const std::uint64_t r = (std::uint64_t(tfm::rng::random_u32(seed_, 0x64617461u, 2 * i)) << 32) |
                              tfm::rng::random_u32(seed_, 0x64617461u, 2 * i + 1);
      return r % (last + 1);
    }
    if (pos_ > last) pos_ = 0;  // next epoch
    const std::uint64_t s = pos_;
    pos_ += std::uint64_t(T_);
    return s;
  }

  token_corpus c_;
  split s_;
  int T_;
  sampling order_;
  std::uint64_t seed_;
  std::string what_;
  std::uint64_t pos_ = 0;
};

}  // namespace tfm::train
