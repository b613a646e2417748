// tfm/tokenizer/bpe.hpp — byte-level BPE as GPT-2 uses it: text is split on special tokens,
// each ordinary stretch into pre-tokens (pre_tokenizer.hpp), and each pre-token's bytes are
// merged pair by pair, lowest merge rank first (leftmost first among equal ranks), until no
// adjacent pair has a merge. Decoding concatenates the tokens' bytes, so any byte string
// round-trips, ill-formed UTF-8 included.
//
// A bpe_tokenizer is immutable except for per-thread caches (pre-token -> ids): one object must
// not encode from several threads at once; use encode_parallel, or one copy per thread (copies
// share nothing mutable).
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <xxhash.h>

#include "tfm/tokenizer/errors.hpp"
#include "tfm/tokenizer/pre_tokenizer.hpp"

namespace tfm {

using token_id = std::uint32_t;

// A special token: never split, never produced by merges, matched verbatim in the text.
struct special_token {
  std::string text;
  token_id id = 0;
};

// One merge, in rank order: tokens `left` and `right` become `result`.
struct bpe_merge {
  token_id left = 0, right = 0, result = 0;
};

inline constexpr std::string_view end_of_text = "<|endoftext|>";

namespace detail {

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return XXH3_64bits(s.data(), s.size()); }
};

// Open-addressing table (left, right) -> (rank, result), linear probing. Read-only after build.
class merge_table {
 public:
  struct entry {
    std::uint64_t key = empty_key;
    std::uint32_t rank = 0, result = 0;
  };
  static constexpr std::uint64_t empty_key = ~std::uint64_t{0};

  void build(std::span<const bpe_merge> merges) {
    std::size_t cap = 16;
    while (cap < merges.size() * 2 + 1) cap *= 2;
    slots_.assign(cap, entry{});
    mask_ = cap - 1;
    for (std::uint32_t r = 0; r < merges.size(); ++r) {
      const std::uint64_t k = key(merges[r].left, merges[r].right);
      std::size_t i = hash(k) & mask_;
      while (slots_[i].key != empty_key && slots_[i].key != k) i = (i + 1) & mask_;
      if (slots_[i].key == k) continue;  // a repeated pair keeps its first (best) rank
      slots_[i] = entry{k, r, merges[r].result};
    }
  }
  const entry* find(token_id a, token_id b) const {
    const std::uint64_t k = key(a, b);
    for (std::size_t i = hash(k) & mask_;; i = (i + 1) & mask_) {
      const entry& e = slots_[i];
      if (e.key == k) return &e;
      if (e.key == empty_key) return nullptr;
    }
  }
  static std::uint64_t key(token_id a, token_id b) { return (std::uint64_t(a) << 32) | b; }

 private:
  static std::size_t hash(std::uint64_t k) { return std::size_t((k * 0x9E3779B97F4A7C15ull) >> 17); }
  std::vector<entry> slots_{entry{}};
  std::size_t mask_ = 0;
};

// Calls on_text(string_view) for each stretch of `text` between special tokens and
// on_special(id) for each special token, in order. `specials` must be sorted longest text first,
// so that of two specials starting at the same byte the longest wins.
template <class T, class S>
void split_on_specials(std::string_view text, std::span<const special_token> specials, T&& on_text, S&& on_special) {
  if (specials.empty()) {
    if (!text.empty()) on_text(text);
    return;
  }
  std::vector<std::size_t> next(specials.size());
  for (std::size_t k = 0; k < specials.size(); ++k) next[k] = text.find(specials[k].text);
  std::size_t cur = 0;
  for (;;) {
    std::size_t best = std::string_view::npos, bk = 0;
    for (std::size_t k = 0; k < specials.size(); ++k)
      if (next[k] < best) best = next[k], bk = k;
    if (best == std::string_view::npos) break;
    if (best > cur) on_text(text.substr(cur, best - cur));
    on_special(specials[bk].id);
    cur = best + specials[bk].text.size();
    for (std::size_t k = 0; k < specials.size(); ++k)
      if (next[k] != std::string_view::npos && next[k] < cur) next[k] = text.find(specials[k].text, cur);
  }
  if (cur < text.size()) on_text(text.substr(cur));
}

inline void sort_specials_longest_first(std::vector<special_token>& v) {
  std::sort(v.begin(), v.end(), [](const special_token& a, const special_token& b) {
    return a.text.size() != b.text.size() ? a.text.size() > b.text.size() : a.id < b.id;
  });
}

// Per-thread encoding state: a pre-tokenizer and a cache pre-token -> ids.
struct encode_state {
  explicit encode_state(const pre_tokenizer& proto) : pre(proto.fork()) {}
  pre_tokenizer pre;
  std::unordered_map<std::string, std::pair<std::uint32_t, std::uint32_t>, string_hash, std::equal_to<>> cache;
  std::vector<token_id> arena;   // the cached ids, (offset, count) in `cache`
  std::vector<token_id> scratch; // the merge loop's symbols
  static constexpr std::size_t max_entries = 1u << 20;
  static constexpr std::size_t max_word = 256;  // longer pre-tokens are not cached
};

// Copying a tokenizer must not share its caches: a pool that copies as empty.
struct state_pool {
  state_pool() = default;
  state_pool(const state_pool&) {}
  state_pool& operator=(const state_pool&) { states.clear(); return *this; }
  state_pool(state_pool&&) noexcept = default;
  state_pool& operator=(state_pool&&) noexcept = default;
  std::vector<std::unique_ptr<encode_state>> states;
};

}  // namespace detail

class bpe_tokenizer {
 public:
  // `tokens[id]` holds the bytes of token `id` (special tokens: their text); `merges` in rank
  // order (merges[r].result must be the token spelled left + right); every single byte must be
  // a token. `where` names the source in error messages (a file name, say).
  bpe_tokenizer(std::vector<std::string> tokens, std::vector<bpe_merge> merges,
                std::vector<special_token> specials, pre_tokenizer_kind pre,
                std::string_view where = "bpe_tokenizer")
      : tokens_(std::move(tokens)), merges_(std::move(merges)), specials_(std::move(specials)),
        proto_(std::make_shared<pre_tokenizer>(pre)) {
    const std::size_t n = tokens_.size();
    expects<tokenizer_format_error>(n < (std::size_t{1} << 31), where, ": too many tokens (", n, ")");
    is_special_.assign(n, 0);
    for (const auto& s : specials_) {
      expects<tokenizer_format_error>(s.id < n, where, ": special token '", s.text, "' has id ", s.id,
                                      " but the vocabulary has ", n, " tokens");
      expects<tokenizer_format_error>(!s.text.empty(), where, ": special token ", s.id, " is empty");
      expects<tokenizer_format_error>(tokens_[s.id].empty() || tokens_[s.id] == s.text, where,
                                      ": special token '", s.text, "' has id ", s.id,
                                      " which the vocabulary gives to another token");
      tokens_[s.id] = s.text;
      is_special_[s.id] = 1;
    }
    ids_.reserve(n);
    for (token_id id = 0; id < n; ++id) {
      if (is_special_[id] || tokens_[id].empty()) continue;
      const auto [it, fresh] = ids_.emplace(tokens_[id], id);
      expects<tokenizer_format_error>(fresh, where, ": tokens ", it->second, " and ", id,
                                      " have the same bytes");
    }
    // Bytes without a token (StarCoder has none for 0xC0, 0xC1, 0xF5..0xFF, which never occur
    // in UTF-8) make encode throw when the input holds them.
    for (unsigned b = 0; b < 256; ++b) {
      const auto it = ids_.find(std::string(1, char(b)));
      byte_ids_[b] = it == ids_.end() ? no_token : it->second;
    }
    for (std::size_t r = 0; r < merges_.size(); ++r) {
      auto& m = merges_[r];
      expects<tokenizer_format_error>(m.left < n && m.right < n && !is_special_[m.left] &&
                                          !is_special_[m.right] && !tokens_[m.left].empty() &&
                                          !tokens_[m.right].empty(),
                                      where, ": merge ", r, " uses an unknown or special token id (",
                                      m.left, ", ", m.right, ")");
      const auto it = ids_.find(tokens_[m.left] + tokens_[m.right]);
      expects<tokenizer_format_error>(it != ids_.end(), where, ": merge ", r, " (",
                                      bytes_to_token_text(tokens_[m.left]), " ",
                                      bytes_to_token_text(tokens_[m.right]),
                                      ") makes a token that is not in the vocabulary");
      m.result = it->second;
    }
    table_.build(merges_);
    // Longest first, so that among specials starting at the same byte the longest wins.
    detail::sort_specials_longest_first(specials_);
  }

  std::size_t vocab_size() const { return tokens_.size(); }
  pre_tokenizer_kind pre_kind() const { return proto_->kind(); }
  std::span<const bpe_merge> merges() const { return merges_; }
  std::span<const special_token> special_tokens() const { return specials_; }
  bool is_special(token_id id) const { return id < is_special_.size() && is_special_[id]; }
  // The bytes of token `id` (special tokens: their text). Empty for an unused id.
  const std::string& token_bytes(token_id id) const {
    expects(id < tokens_.size(), "bpe_tokenizer::token_bytes: id ", id, " >= vocab size ", tokens_.size());
    return tokens_[id];
  }
  // Id of the ordinary token spelled `bytes`, or nullopt.
  std::optional<token_id> find_token(std::string_view bytes) const {
    const auto it = ids_.find(std::string(bytes));
    return it == ids_.end() ? std::nullopt : std::optional<token_id>(it->second);
  }
  // Id of a special token, or nullopt.
  std::optional<token_id> find_special(std::string_view text) const {
    for (const auto& s : specials_)
      if (s.text == text) return s.id;
    return std::nullopt;
  }
  // The end-of-text token `<|endoftext|>`; throws invalid_argument when the vocabulary has none.
  token_id eot_id() const {
    const auto id = find_special(end_of_text);
    expects(id.has_value(), "bpe_tokenizer: the vocabulary has no special token ", end_of_text);
    return *id;
  }

  // Appends the ids of `text` to `out`. Special tokens in the text become their ids.
  void encode(std::string_view text, std::vector<token_id>& out) const {
    auto& st = state(0);
    split_specials(text, [&](std::string_view s) { encode_ordinary_with(st, s, out); },
                   [&](token_id id) { out.push_back(id); });
  }
  std::vector<token_id> encode(std::string_view text) const {
    std::vector<token_id> out;
    out.reserve(text.size() / 3 + 8);
    encode(text, out);
    return out;
  }
  // Like encode, but special-token text is encoded as ordinary text.
  void encode_ordinary(std::string_view text, std::vector<token_id>& out) const {
    encode_ordinary_with(state(0), text, out);
  }
  std::vector<token_id> encode_ordinary(std::string_view text) const {
    std::vector<token_id> out;
    encode_ordinary(text, out);
    return out;
  }

  // encode() on `threads` threads (0: std::thread::hardware_concurrency()). The text is cut at
  // special tokens and at places no pre-token can span (a space between a printable ASCII byte
  // and an ASCII letter), so the result equals encode(text).
  std::vector<token_id> encode_parallel(std::string_view text, int threads = 0) const {
    if (threads <= 0) threads = std::max(1, int(std::thread::hardware_concurrency()));
    if (threads == 1 || text.size() < 4096) return encode(text);
    struct piece {
      std::string_view text;
      token_id special;
    };
    std::vector<piece> pieces;
    const std::size_t target = std::max<std::size_t>(4096, text.size() / (std::size_t(threads) * 4));
    split_specials(
        text,
        [&](std::string_view s) {
          while (s.size() > 2 * target) {
            const std::size_t cut = safe_cut(s, target);
            if (cut == 0 || cut >= s.size()) break;
            pieces.push_back({s.substr(0, cut), 0});
            s.remove_prefix(cut);
          }
          pieces.push_back({s, 0});
        },
        [&](token_id id) { pieces.push_back({{}, id}); });
    // contiguous ranges of pieces, balanced by bytes
    std::vector<std::size_t> bounds{0};
    {
      std::size_t acc = 0, t = 1;
      for (std::size_t i = 0; i < pieces.size(); ++i) {
        acc += pieces[i].text.size();
        if (t < std::size_t(threads) && acc >= text.size() * t / std::size_t(threads)) {
          bounds.push_back(i + 1);
          ++t;
        }
      }
      while (bounds.size() <= std::size_t(threads)) bounds.push_back(pieces.size());
    }
    for (int t = 0; t < threads; ++t) state(std::size_t(t));
    std::vector<std::vector<token_id>> outs(static_cast<std::size_t>(threads));
    auto work = [&](int t) {
      auto& st = state(std::size_t(t));
      auto& out = outs[std::size_t(t)];
      for (std::size_t i = bounds[std::size_t(t)]; i < bounds[std::size_t(t) + 1]; ++i) {
        if (pieces[i].text.empty()) out.push_back(pieces[i].special);
        else encode_ordinary_with(st, pieces[i].text, out);
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work, t);
    work(0);
    for (auto& th : pool) th.join();
    std::size_t total = 0;
    for (auto& o : outs) total += o.size();
    std::vector<token_id> out;
    out.reserve(total);
    for (auto& o : outs) out.insert(out.end(), o.begin(), o.end());
    return out;
  }

  // The bytes of `ids`; throws invalid_argument on an id outside the vocabulary.
  std::string decode(std::span<const token_id> ids) const {
    std::string out;
    out.reserve(ids.size() * 4);
    for (token_id id : ids) {
      expects(id < tokens_.size() && !tokens_[id].empty(), "bpe_tokenizer::decode: id ", id,
              " is not in the vocabulary (", tokens_.size(), " tokens)");
      out += tokens_[id];
    }
    return out;
  }

  // The ids of one pre-token's bytes, by the merge ranks (no cache). The reference the cached
  // path is checked against.
  void encode_word(std::string_view w, std::vector<token_id>& out) const {
    std::vector<token_id> syms;
    merge_word(w, syms);
    out.insert(out.end(), syms.begin(), syms.end());
  }

  // Calls on_text(string_view) for each stretch between special tokens and on_special(id) for
  // each special token, in order.
  template <class T, class S>
  void split_specials(std::string_view text, T&& on_text, S&& on_special) const {
    detail::split_on_specials(text, specials_, on_text, on_special);
  }

 private:
  detail::encode_state& state(std::size_t t) const {
    auto& v = pool_.states;
    while (v.size() <= t) v.push_back(std::make_unique<detail::encode_state>(*proto_));
    return *v[t];
  }

  // Byte offset near `target` where s can be cut without changing the pre-tokens, or 0.
  static std::size_t safe_cut(std::string_view s, std::size_t target) {
    const auto letter = [](unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; };
    for (std::size_t p = std::max<std::size_t>(target, 1); p + 1 < s.size(); ++p) {
      const auto prev = static_cast<unsigned char>(s[p - 1]);
      if (s[p] == ' ' && prev > 0x20 && prev < 0x7F && letter(static_cast<unsigned char>(s[p + 1])))
        return p;
    }
    return 0;
  }

  token_id byte_id(char c) const {
    const token_id id = byte_ids_[static_cast<unsigned char>(c)];
    if (TFM_UNLIKELY(id == no_token))
      throw invalid_argument(detail::concat("bpe_tokenizer::encode: the byte 0x", "0123456789abcdef"[(c >> 4) & 15],
                                            "0123456789abcdef"[c & 15], " has no token in this vocabulary"));
    return id;
  }

  // Merges within one pre-token. Short words (almost all) use the rescanning loop of
  // merge_word_ref; long ones a linked list with a heap of candidate pairs ordered by (rank,
  // position), O(n log n) instead of O(n * merges) — a 200 kB word without spaces took 80 s
  // through the loop.
  void merge_word(std::string_view w, std::vector<token_id>& syms) const {
    if (w.size() <= 64) merge_word_ref(w, syms);
    else merge_word_heap(w, syms);
  }

 public:
  // The plain reference: repeatedly find the lowest-ranked adjacent pair and merge all its
  // occurrences left to right. Tests compare merge_word_heap against it.
  void merge_word_ref(std::string_view w, std::vector<token_id>& syms) const {
    syms.resize(w.size());
    for (std::size_t i = 0; i < w.size(); ++i) syms[i] = byte_id(w[i]);
    while (syms.size() > 1) {
      std::uint32_t best = ~0u;
      token_id a = 0, b = 0, r = 0;
      for (std::size_t i = 0; i + 1 < syms.size(); ++i) {
        const auto* e = table_.find(syms[i], syms[i + 1]);
        if (e && e->rank < best) best = e->rank, a = syms[i], b = syms[i + 1], r = e->result;
      }
      if (best == ~0u) break;
      std::size_t o = 0;
      for (std::size_t i = 0; i < syms.size();) {
        if (i + 1 < syms.size() && syms[i] == a && syms[i + 1] == b) {
          syms[o++] = r;
          i += 2;
        } else {
          syms[o++] = syms[i++];
        }
      }
      syms.resize(o);
    }
  }

  // The same merges with a heap: pop the (rank, position)-smallest candidate, skip it when the
  // symbols there have changed since it was pushed, merge, push the two new neighbour pairs.
  void merge_word_heap(std::string_view w, std::vector<token_id>& syms) const {
    const std::size_t n = w.size();
    syms.clear();
    if (n == 0) return;
    constexpr token_id dead = ~token_id{0};
    std::vector<token_id> id(n);
    std::vector<std::int64_t> prev(n), next(n);
    for (std::size_t i = 0; i < n; ++i) {
      id[i] = byte_id(w[i]);
      prev[i] = std::int64_t(i) - 1;
      next[i] = i + 1 < n ? std::int64_t(i) + 1 : -1;
    }
    struct cand {
      std::uint32_t rank;
      std::int64_t pos;
      token_id left, right, result;
      bool operator>(const cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::vector<cand> heap;
    const auto push = [&](std::int64_t pos) {
      const std::int64_t j = next[std::size_t(pos)];
      if (j < 0) return;
      if (const auto* e = table_.find(id[std::size_t(pos)], id[std::size_t(j)])) {
        heap.push_back({e->rank, pos, id[std::size_t(pos)], id[std::size_t(j)], e->result});
        std::push_heap(heap.begin(), heap.end(), std::greater<>{});
      }
    };
    for (std::size_t i = 0; i + 1 < n; ++i) push(std::int64_t(i));
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
      const cand c = heap.back();
      heap.pop_back();
      const auto p = std::size_t(c.pos);
      if (id[p] != c.left) continue;
      const std::int64_t j = next[p];
      if (j < 0 || id[std::size_t(j)] != c.right) continue;
      id[p] = c.result;
      id[std::size_t(j)] = dead;
      next[p] = next[std::size_t(j)];
      if (next[p] >= 0) prev[std::size_t(next[p])] = c.pos;
      if (prev[p] >= 0) push(prev[p]);
      push(c.pos);
    }
    syms.clear();
    for (std::int64_t i = 0; i >= 0; i = next[std::size_t(i)]) syms.push_back(id[std::size_t(i)]);
  }

 private:
  void encode_ordinary_with(detail::encode_state& st, std::string_view text, std::vector<token_id>& out) const {
    st.pre.split(text, [&](std::string_view w) {
      if (w.size() == 1) {
        out.push_back(byte_id(w[0]));
        return;
      }
      if (w.size() <= detail::encode_state::max_word) {
        if (const auto it = st.cache.find(w); it != st.cache.end()) {
          const auto [off, cnt] = it->second;
          out.insert(out.end(), st.arena.begin() + off, st.arena.begin() + off + cnt);
          return;
        }
      }
      merge_word(w, st.scratch);
      out.insert(out.end(), st.scratch.begin(), st.scratch.end());
      if (w.size() <= detail::encode_state::max_word) {
        if (st.cache.size() >= detail::encode_state::max_entries) {
          st.cache.clear();
          st.arena.clear();
        }
        st.cache.emplace(std::string(w), std::pair<std::uint32_t, std::uint32_t>(
                                             std::uint32_t(st.arena.size()), std::uint32_t(st.scratch.size())));
        st.arena.insert(st.arena.end(), st.scratch.begin(), st.scratch.end());
      }
    });
  }

  std::vector<std::string> tokens_;
  std::vector<bpe_merge> merges_;
  std::vector<special_token> specials_;  // longest text first
  std::vector<std::uint8_t> is_special_;
  std::unordered_map<std::string, token_id, detail::string_hash, std::equal_to<>> ids_;
  static constexpr token_id no_token = ~token_id{0};
  token_id byte_ids_[256] = {};
  detail::merge_table table_;
  std::shared_ptr<const tfm::pre_tokenizer> proto_;
  mutable detail::state_pool pool_;
};

}  // namespace tfm
