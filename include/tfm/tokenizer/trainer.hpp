// tfm/tokenizer/trainer.hpp — trains a byte-level BPE vocabulary from a corpus.
//
// 1. add_text/add_file: the text is split on the special tokens (which are not counted), then
//    into pre-tokens; a table word -> frequency is all that is kept of the corpus.
// 2. train: every word starts as its bytes (ids 0..255 = byte values). Pair counts (weighted by
//    word frequency) and, per pair, the list of words holding it are built once. Each step takes
//    the most frequent pair from a max-heap, gives the merged token the next id, and rewrites
//    only the words listed for that pair, subtracting their old pairs and adding their new ones.
//    Heap entries are invalidated lazily: a popped entry whose count is out of date is pushed
//    back with the current count (a pair's count only falls after the step that creates it, so
//    the heap top, once current, is the true maximum). Word lists are also lazy: a listed word
//    that no longer holds the pair is skipped.
//
// Tie-breaking (deterministic, independent of input order, hashing and threads): among pairs of
// equal count, the smallest (left id, right id) wins. Ids are byte values for single bytes and
// creation order for merged tokens, so the result depends only on the word-frequency table.
//
// Resulting vocabulary: ids 0..255 the bytes, 256.. the merges in order, then the special
// tokens in the order given. vocab_size counts all three; training stops early (a smaller
// vocabulary) only when no pair is left.
#pragma once
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <queue>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <unistd.h>

#include "tfm/tokenizer/bpe.hpp"
#include "tfm/tokenizer/io.hpp"

namespace tfm {

struct bpe_train_options {
  std::size_t vocab_size = 4096;  // bytes (256) + merges + special tokens
  pre_tokenizer_kind pre = pre_tokenizer_kind::gpt2;
  std::vector<std::string> special_tokens{std::string(end_of_text)};
  bool progress = false;  // a progress bar on stderr (plain lines every 10% when not a terminal)
};

class bpe_trainer {
 public:
  explicit bpe_trainer(bpe_train_options o = {}) : opt_(std::move(o)), pre_(opt_.pre) {
    token_id id = 0;
    for (const auto& s : opt_.special_tokens) {
      expects(!s.empty(), "bpe_trainer: a special token is empty");
      specials_.push_back({s, id++});
    }
    detail::sort_specials_longest_first(specials_);
    expects(opt_.vocab_size >= 256 + opt_.special_tokens.size(), "bpe_trainer: vocab_size ", opt_.vocab_size,
            " is smaller than 256 byte tokens + ", opt_.special_tokens.size(), " special tokens");
    expects(opt_.vocab_size <= std::size_t(std::numeric_limits<token_id>::max()) + 1, "bpe_trainer: vocab_size ",
            opt_.vocab_size, " exceeds the ", std::size_t(std::numeric_limits<token_id>::max()) + 1,
            " ids of 32-bit tokens");
  }

  // Counts the pre-tokens of `text` (special tokens in it are skipped).
  void add_text(std::string_view text) {
    source_bytes_ += text.size();
    detail::split_on_specials(
        text, specials_,
        [&](std::string_view s) {
          pre_.split(s, [&](std::string_view w) {
            if (auto it = counts_.find(w); it != counts_.end()) ++it->second;
            else counts_.emplace(std::string(w), 1);
          });
        },
        [](token_id) {});
  }
  void add_file(const std::filesystem::path& p) { add_text(detail::read_text_file(p)); }

  std::size_t unique_words() const { return counts_.size(); }
  std::size_t source_bytes() const { return source_bytes_; }

  bpe_tokenizer train() const {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    const std::size_t n_merges = opt_.vocab_size - 256 - opt_.special_tokens.size();
    // words, in a fixed order (sorted by text) so that nothing depends on hash order
    std::vector<const std::pair<const std::string, std::uint64_t>*> order;
    order.reserve(counts_.size());
    for (const auto& kv : counts_) order.push_back(&kv);
    std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->first < b->first; });
    std::vector<std::vector<token_id>> words(order.size());
    std::vector<std::uint64_t> freq(order.size());
    for (std::size_t w = 0; w < order.size(); ++w) {
      const auto& text = order[w]->first;
      words[w].assign(text.begin(), text.end());
      for (auto& s : words[w]) s &= 0xFF;  // char -> byte value
      freq[w] = order[w]->second;
    }
    struct pair_stat {
      std::int64_t count = 0;
      std::vector<std::uint32_t> where;
    };
    std::unordered_map<std::uint64_t, pair_stat> pairs;
    pairs.reserve(order.size() * 2);
    const auto key = detail::merge_table::key;
    for (std::uint32_t w = 0; w < words.size(); ++w) {
      const auto& s = words[w];
      for (std::size_t i = 0; i + 1 < s.size(); ++i) {
        auto& st = pairs[key(s[i], s[i + 1])];
        st.count += std::int64_t(freq[w]);
        if (st.where.empty() || st.where.back() != w) st.where.push_back(w);
      }
    }
    struct heap_entry {
      std::int64_t count;
      std::uint64_t key;
      bool operator<(const heap_entry& o) const {  // std::priority_queue: top = largest
        return count != o.count ? count < o.count : key > o.key;
      }
    };
    std::priority_queue<heap_entry> heap;
    for (const auto& [k, st] : pairs) heap.push({st.count, k});

    std::vector<std::string> tokens(256);
    for (unsigned b = 0; b < 256; ++b) tokens[b] = std::string(1, char(b));
    std::vector<bpe_merge> merges;
    // a merge joins at least one adjacent pair of some word: no more merges than pairs
    std::size_t pair_slots = 0;
    for (const auto& wd : words) pair_slots += wd.empty() ? 0 : wd.size() - 1;
    merges.reserve(std::min(n_merges, pair_slots));
    progress_bar bar(opt_.progress, n_merges);
    std::vector<std::uint64_t> touched;
    std::vector<token_id> merged;
    while (merges.size() < n_merges && !heap.empty()) {
      const heap_entry top = heap.top();
      heap.pop();
      auto it = pairs.find(top.key);
      const std::int64_t cur = it == pairs.end() ? 0 : it->second.count;
      if (cur != top.count) {
        if (cur > 0) heap.push({cur, top.key});
        continue;
      }
      if (cur <= 0) break;
      const token_id a = token_id(top.key >> 32), b = token_id(top.key & 0xFFFFFFFFu);
      const token_id x = token_id(tokens.size());
      tokens.push_back(tokens[a] + tokens[b]);
      merges.push_back({a, b, x});
      std::vector<std::uint32_t> list = std::move(it->second.where);
      it->second.where.clear();
      std::sort(list.begin(), list.end());
      list.erase(std::unique(list.begin(), list.end()), list.end());
      touched.clear();
      for (const std::uint32_t w : list) {
        auto& s = words[w];
        merged.clear();
        bool found = false;
        for (std::size_t i = 0; i < s.size();) {
          if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
            merged.push_back(x);
            i += 2;
            found = true;
          } else {
            merged.push_back(s[i++]);
          }
        }
        if (!found) continue;  // stale entry
        const auto f = std::int64_t(freq[w]);
        for (std::size_t i = 0; i + 1 < s.size(); ++i) pairs[key(s[i], s[i + 1])].count -= f;
        for (std::size_t i = 0; i + 1 < merged.size(); ++i) {
          const auto k = key(merged[i], merged[i + 1]);
          auto& st = pairs[k];
          st.count += f;
          if (merged[i] == x || merged[i + 1] == x) {
            if (st.where.empty() || st.where.back() != w) st.where.push_back(w);
            touched.push_back(k);
          }
        }
        s.swap(merged);
      }
      std::sort(touched.begin(), touched.end());
      touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
      for (const auto k : touched) heap.push({pairs[k].count, k});
      pairs.erase(top.key);
      bar.update(merges.size(), std::chrono::duration<double>(clock::now() - t0).count());
    }
    bar.finish(merges.size(), std::chrono::duration<double>(clock::now() - t0).count());
    std::vector<special_token> specials;
    for (const auto& s : opt_.special_tokens) {
      specials.push_back({s, token_id(tokens.size())});
      tokens.push_back(s);
    }
    return bpe_tokenizer(std::move(tokens), std::move(merges), std::move(specials), opt_.pre, "bpe_trainer");
  }

 private:
  // A bar redrawn in place (at most 10 times a second) on a terminal, plain lines every 10%
  // otherwise; nothing when disabled.
  class progress_bar {
   public:
    progress_bar(bool on, std::size_t total) : on_(on && total > 0), tty_(::isatty(2) == 1), total_(total) {}
    void update(std::size_t done, double secs) {
      if (!on_) return;
      if (tty_) {
        if (secs - last_ < 0.1) return;
        last_ = secs;
        draw(done, secs, '\r');
      } else if (done * 10 / total_ > step_) {
        step_ = done * 10 / total_;
        printed_ = done;
        draw(done, secs, '\n');
      }
    }
    void finish(std::size_t done, double secs) {
      if (!on_) return;
      if (tty_) {
        draw(done, secs, '\r');
        std::fputc('\n', stderr);
      } else if (done != printed_) {
        draw(done, secs, '\n');
      }
    }

   private:
    void draw(std::size_t done, double secs, char end) const {
      const int width = 30, fill = int(double(done) / double(total_) * width);
      char bar[width + 1];
      for (int i = 0; i < width; ++i) bar[i] = i < fill ? '#' : '.';
      bar[width] = 0;
      if (end == '\r')
        std::fprintf(stderr, "\rbpe [%s] %zu/%zu merges %.1fs", bar, done, total_, secs);
      else
        std::fprintf(stderr, "bpe: %zu/%zu merges %.1fs\n", done, total_, secs);
      std::fflush(stderr);
    }
    bool on_, tty_;
    std::size_t total_, step_ = 0, printed_ = 0;
    double last_ = -1;
  };

  bpe_train_options opt_;
  std::vector<special_token> specials_;  // for splitting only; ids are placeholders
  tfm::pre_tokenizer pre_;
  std::unordered_map<std::string, std::uint64_t, detail::string_hash, std::equal_to<>> counts_;
  std::size_t source_bytes_ = 0;
};

}  // namespace tfm
