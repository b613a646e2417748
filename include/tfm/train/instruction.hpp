// tfm/train/instruction.hpp — instruction data for supervised fine-tuning of a causal LM.
// A JSONL file holds one {"prompt": "...", "response": "..."} object per line. Each example
// becomes ids = [eot] ++ prompt ++ response ++ [eot] (the leading eot only with `prepend_eot`),
// and the model is trained to predict only the response and its closing eot: the prompt is
// context, never a target. Everything is loaded and tokenised up front, so a bad line fails at
// construction, with the file and line named, rather than hours into a run.
#pragma once
#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"
#include "tfm/data/detail/utf8.hpp"
#include "tfm/data/reader.hpp"

namespace tfm::train {

// Target value the loss skips. Equals tfm::nn::ignore_index (nn/model.hpp), repeated here so
// data code does not pull in the model headers.
inline constexpr int instruction_ignore = -100;

// Bad instruction data or options: the message names the file and 1-based line where it applies.
class instruction_error : public tfm::error {
 public:
  using error::error;
};

struct instruction_options {
  int context;                // longest sequence (tokens per example) the model takes
  std::uint32_t eot_id;       // end-of-text id closing every response (and opening the prompt)
  std::uint32_t vocab_size;   // every id the encoder returns must be below it
  bool prepend_eot = true;    // eot before the prompt, as pretraining shards put it before each document
  // When ids need more than context + 1 places: keep the first context + 1 ids (the example
  // is dropped and counted in skipped() if no response id survives), drop it, or throw.
  enum class overflow { truncate, skip, error } on_overflow = overflow::truncate;
};

namespace detail {

// splitmix64's output function (Steele, Lea, Flood 2014) on state x: a bijection of 64-bit
// words whose outputs for consecutive states pass BigCrush, so counters make good streams.
inline constexpr std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace detail

class instruction_dataset {
 public:
  // One training sequence: L <= context positions, targets[i] is the id after tokens[i] or
  // instruction_ignore where that id belongs to the prompt (or the leading eot).
  struct example {
    std::vector<std::int32_t> tokens, targets;  // (L,) each
  };
  using encoder = std::function<std::vector<std::uint32_t>(std::string_view)>;

  instruction_dataset(const std::filesystem::path& jsonl, encoder encode, instruction_options opt)
      : opt_(opt) {
    if (opt.context < 1)
      throw instruction_error(tfm::detail::concat("instruction_dataset: context must be >= 1, got ", opt.context));
    // Tokens are int32 on the model side, so every id (and vocab_size - 1) must fit one.
    if (opt.vocab_size == 0 || opt.vocab_size > std::uint32_t{1} << 31)
      throw instruction_error(tfm::detail::concat("instruction_dataset: vocab_size must be in [1, 2^31], got ",
                                                  opt.vocab_size));
    if (opt.eot_id >= opt.vocab_size)
      throw instruction_error(tfm::detail::concat("instruction_dataset: eot_id ", opt.eot_id,
                                                  " is not below vocab_size ", opt.vocab_size));
    if (!encode) throw instruction_error("instruction_dataset: no encoder given");
    load(jsonl, encode);
  }

  std::size_t size() const { return examples_.size(); }
  // Examples dropped because they did not fit the context (skip, or truncate leaving no response).
  std::size_t skipped() const { return skipped_; }
  // Examples kept but cut to the context by overflow::truncate.
  std::size_t truncated() const { return truncated_; }
  // Targets that are not instruction_ignore, over all examples: the tokens one epoch trains on.
  std::int64_t supervised_tokens() const { return supervised_; }
  const instruction_options& options() const { return opt_; }

  const example& operator[](std::size_t i) const {
    if (i >= examples_.size())
      throw instruction_error(tfm::detail::concat("instruction_dataset: index ", i, " out of range (size ",
                                                  examples_.size(), ")"));
    return examples_[i];
  }

  // Fills a (B, T) row-major batch, B = indices.size(): row b holds example indices[b], cut to T
  // and right-padded with pad_id tokens whose targets are ignored. Padding on the right keeps
  // every real token at the position it had alone, so causal attention sees the same prefix.
  void batch(std::span<const std::size_t> indices, int T, std::span<std::int32_t> tokens,
             std::span<std::int32_t> targets, std::int32_t pad_id) const {
    if (T < 1 || T > opt_.context)
      throw instruction_error(tfm::detail::concat("instruction_dataset::batch: T must be in [1, context=",
                                                  opt_.context, "], got ", T));
    if (pad_id < 0 || static_cast<std::uint32_t>(pad_id) >= opt_.vocab_size)
      throw instruction_error(tfm::detail::concat("instruction_dataset::batch: pad_id ", pad_id,
                                                  " is not in [0, vocab_size=", opt_.vocab_size, ")"));
    const std::size_t t = static_cast<std::size_t>(T), want = indices.size() * t;
    if (tokens.size() != want || targets.size() != want)
      throw instruction_error(tfm::detail::concat("instruction_dataset::batch: B*T = ", indices.size(), "*", T, " = ",
                                                  want, " but tokens has ", tokens.size(), " and targets ",
                                                  targets.size(), " elements"));
    for (std::size_t b = 0; b < indices.size(); ++b) {
      const example& e = (*this)[indices[b]];
      const std::size_t n = std::min(e.tokens.size(), t);
      auto tok = tokens.subspan(b * t, t), tgt = targets.subspan(b * t, t);  // (T,) row b
      std::copy_n(e.tokens.begin(), n, tok.begin());
      std::copy_n(e.targets.begin(), n, tgt.begin());
      std::fill(tok.begin() + static_cast<std::ptrdiff_t>(n), tok.end(), pad_id);
      std::fill(tgt.begin() + static_cast<std::ptrdiff_t>(n), tgt.end(), instruction_ignore);
    }
  }

  // A permutation of [0, size()) that depends only on (seed, epoch): Fisher–Yates with the swap
  // partner of step i drawn from splitmix64 of a key mixed from seed and epoch plus i. Written
  // out rather than std::shuffle because the standard leaves shuffle and distributions
  // implementation-defined, and a resumed run must see the same order on any platform.
  std::vector<std::size_t> epoch_order(std::uint64_t seed, std::uint64_t epoch) const {
    const std::size_t n = examples_.size();
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    const std::uint64_t key = detail::splitmix64(detail::splitmix64(seed) ^ epoch);
    for (std::size_t i = n; i > 1; --i) {
      const std::uint64_t r = detail::splitmix64(key + static_cast<std::uint64_t>(i));
      // Modulo bias is below i / 2^64: immaterial for any dataset that fits in memory.
      const std::size_t j = static_cast<std::size_t>(r % static_cast<std::uint64_t>(i));
      std::swap(order[i - 1], order[j]);
    }
    return order;
  }

 private:
  void load(const std::filesystem::path& path, const encoder& encode) {
    const std::string src = path.string();
    data::detail::file_ptr f(std::fopen(path.c_str(), "rb"));
    if (!f)
      throw instruction_error(tfm::detail::concat("instruction_dataset: cannot open ", src, ": ",
                                                  std::error_code(errno, std::generic_category()).message()));
    data::detail::line_reader lr(f.get());
    std::string line;
    bool too_long = false;
    std::uint64_t consumed = 0, lineno = 0;
    while (lr.next(line, std::numeric_limits<std::size_t>::max() / 2, too_long, consumed)) {
      ++lineno;
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      // Builds the error for this line; callers throw it, so the compiler sees every exit.
      auto bad = [&](auto&&... what) {
        return instruction_error(tfm::detail::concat("instruction_dataset: ", src, ":", lineno, ": ", what...));
      };
      // JSON syntax is ASCII, so any ill-formed UTF-8 on the line is inside a string; say so
      // plainly instead of relying on the parser's wording.
      if (!data::detail::is_valid_utf8(line)) throw bad("invalid UTF-8");
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {  // parse_error, or out_of_range for 1e999
        throw bad("not valid JSON (", e.what(), ")");
      }
      if (!j.is_object()) throw bad("expected a JSON object, got ", j.type_name());
      auto field = [&](const char* name) -> const std::string& {
        auto it = j.find(name);
        if (it == j.end()) throw bad("missing \"", name, "\"");
        if (!it->is_string()) throw bad("\"", name, "\" must be a string, got ", it->type_name());
        return it->get_ref<const std::string&>();
      };
      const std::string& prompt = field("prompt");
      const std::string& response = field("response");
      if (response.empty()) throw bad("empty response");

      auto checked = [&](std::string_view text, const char* name) {
        std::vector<std::uint32_t> v = encode(text);
        for (std::uint32_t id : v)
          if (id >= opt_.vocab_size)
            throw bad("encoder returned id ", id, " for \"", name, "\", not below vocab_size ", opt_.vocab_size);
        return v;
      };
      std::vector<std::uint32_t> ids;
      if (opt_.prepend_eot) ids.push_back(opt_.eot_id);
      const std::vector<std::uint32_t> p = checked(prompt, "prompt");
      ids.insert(ids.end(), p.begin(), p.end());
      const std::size_t response_start = ids.size();  // first id that is a target
      const std::vector<std::uint32_t> r = checked(response, "response");
      if (r.empty()) throw bad("response encodes to no tokens");
      ids.insert(ids.end(), r.begin(), r.end());
      ids.push_back(opt_.eot_id);

      // L positions need L + 1 ids: the last id is only ever a target.
      const std::size_t context = static_cast<std::size_t>(opt_.context);
      if (ids.size() > context + 1) {
        switch (opt_.on_overflow) {
          case instruction_options::overflow::error:
            throw bad(ids.size(), " ids (prompt ", p.size(), ", response ", r.size(), ") exceed context ", context,
                      " + 1");
          case instruction_options::overflow::skip:
            ++skipped_;
            continue;
          case instruction_options::overflow::truncate:
            // Target i is ids[i + 1]: at least one response id must remain among ids[1..context].
            if (response_start > context) { ++skipped_; continue; }
            ids.resize(context + 1);
            ++truncated_;
            break;
        }
      }
      example e;
      const std::size_t L = ids.size() - 1;
      e.tokens.resize(L);
      e.targets.resize(L);
      for (std::size_t i = 0; i < L; ++i) {
        e.tokens[i] = static_cast<std::int32_t>(ids[i]);
        const bool supervised = i + 1 >= response_start;
        e.targets[i] = supervised ? static_cast<std::int32_t>(ids[i + 1]) : instruction_ignore;
        supervised_ += supervised;
      }
      examples_.push_back(std::move(e));
    }
    // fopen succeeds on a directory on Linux; the read is what fails.
    if (std::ferror(f.get()))
      throw instruction_error(tfm::detail::concat("instruction_dataset: error reading ", src, " after line ", lineno));
    if (examples_.empty())
      throw instruction_error(tfm::detail::concat("instruction_dataset: no examples in ", src, " (", lineno,
                                                  " lines, ", skipped_, " skipped as longer than context ",
                                                  opt_.context, ")"));
  }

  instruction_options opt_;
  std::vector<example> examples_;
  std::size_t skipped_ = 0, truncated_ = 0;
  std::int64_t supervised_ = 0;
};

// Batches of instruction examples for the trainer (the interface of batch_source) drawn from
// examples [begin, end) of a dataset (the rest can validate): every epoch visits each once in a
// seeded shuffled order; the position is the number of examples handed out, so a resumed run
// continues with exactly the examples the uninterrupted one would. Rows are right-padded with
// the end-of-text id and ignored targets.
class instruction_batches {
 public:
  instruction_batches(const instruction_dataset& data, int T, std::uint64_t seed, std::size_t begin = 0,
                      std::size_t end = std::size_t(-1))
      : d_(data), T_(T), seed_(seed), begin_(begin), end_(std::min(end, data.size())) {
    expects<instruction_error>(T > 0 && T <= data.options().context, "instruction_batches: sequence length ", T,
                               " must be in [1, ", data.options().context, "]");
    expects<instruction_error>(begin_ < end_, "instruction_batches: empty example range [", begin_, ", ", end_, ")");
  }
  int seq_len() const { return T_; }
  std::uint64_t position() const { return pos_; }
  void set_position(std::uint64_t p) { pos_ = p; }

  void next(int B, std::span<std::int32_t> tokens, std::span<std::int32_t> targets) {
    std::vector<std::size_t> idx(static_cast<std::size_t>(B));
    const std::uint64_t n = end_ - begin_;
    for (auto& i : idx) {
      const std::uint64_t epoch = pos_ / n;
      if (epoch != order_epoch_ || order_.empty()) {
        order_ = permutation(n, epoch);
        order_epoch_ = epoch;
      }
      i = begin_ + order_[pos_ % n];
      ++pos_;
    }
    d_.batch(idx, T_, tokens, targets, static_cast<std::int32_t>(d_.options().eot_id));
  }

 private:
  // Fisher–Yates driven by splitmix64 of (seed, epoch, i): the same order on every platform.
  std::vector<std::size_t> permutation(std::uint64_t n, std::uint64_t epoch) const {
    std::vector<std::size_t> v(n);
    for (std::size_t i = 0; i < n; ++i) v[i] = i;
    const std::uint64_t key = detail::splitmix64(detail::splitmix64(seed_ ^ 0x696e737472756374ULL) ^ epoch);
    for (std::size_t i = n; i > 1; --i) std::swap(v[i - 1], v[detail::splitmix64(key + i) % i]);
    return v;
  }

  const instruction_dataset& d_;
  int T_;
  std::uint64_t seed_;
  std::size_t begin_, end_;
  std::uint64_t pos_ = 0, order_epoch_ = 0;
  std::vector<std::size_t> order_;
};

// Mean loss per supervised (response) token over examples [begin, end) of `data`, B at a time,
// in evaluation mode (no adapter dropout).
template <class Model>
double instruction_loss(Model& m, const instruction_dataset& data, int B, int T, std::size_t begin = 0,
                        std::size_t end = std::size_t(-1)) {
  end = std::min(end, data.size());
  const auto eval_mode = m.evaluation();
  std::vector<std::int32_t> tok(static_cast<std::size_t>(B) * static_cast<std::size_t>(T)), tgt(tok.size());
  double sum = 0;
  std::int64_t n = 0;
  for (std::size_t b = begin; b < end; b += static_cast<std::size_t>(B)) {
    std::vector<std::size_t> idx;
    for (std::size_t i = b; i < std::min(end, b + static_cast<std::size_t>(B)); ++i) idx.push_back(i);
    const int rows = static_cast<int>(idx.size());
    const std::span<std::int32_t> tk(tok.data(), static_cast<std::size_t>(rows) * static_cast<std::size_t>(T)),
        tg(tgt.data(), tk.size());
    data.batch(idx, T, tk, tg, static_cast<std::int32_t>(data.options().eot_id));
    const double l = m.forward(tk.data(), tg.data(), rows, T);
    sum += l * static_cast<double>(m.counted_targets());
    n += m.counted_targets();
  }
  return n > 0 ? sum / static_cast<double>(n) : 0.0;
}

}  // namespace tfm::train
