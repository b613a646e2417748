// tfm/tokenizer/pre_tokenizer.hpp — splits text into pre-tokens (the "words" BPE merges within)
// with GPT-2's or cl100k's regular expression, compiled once by PCRE2 (UTF + UCP: \p{L}, \p{N}
// and \s are the full Unicode classes) and JIT-compiled when the platform allows.
//
// Invalid UTF-8: the pattern is compiled with PCRE2_MATCH_INVALID_UTF, so PCRE2 never fails on
// ill-formed input; no pattern item can match an ill-formed byte sequence, so matching resumes
// after it. Every maximal run of bytes that no match covers (in practice: only ill-formed
// sequences, since each pattern ends with alternatives that cover every valid character) is
// emitted as one pre-token of its own. Pre-tokens therefore always tile the input exactly, and
// byte-level BPE round-trips any byte string.
#pragma once
#include <cstdint>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>

#include <pcre2.h>
#include <utf8proc.h>

#include "tfm/tokenizer/byte_unicode.hpp"
#include "tfm/tokenizer/errors.hpp"

namespace tfm {

// The pre-tokenisation rules tfm knows.
enum class pre_tokenizer_kind : std::uint8_t {
  gpt2,       // GPT-2's expression
  starcoder,  // every Unicode number character (\p{N}) split off on its own first, then gpt2
  cl100k,     // the cl100k_base expression (case-insensitive contractions, digit groups of <= 3)
};

inline constexpr std::string_view gpt2_pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// tiktoken's current cl100k_base expression (possessive quantifiers, which PCRE2 supports).
inline constexpr std::string_view cl100k_pattern =
    R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)";

inline std::string_view to_string(pre_tokenizer_kind k) {
  switch (k) {
    case pre_tokenizer_kind::gpt2: return "gpt2";
    case pre_tokenizer_kind::starcoder: return "starcoder";
    case pre_tokenizer_kind::cl100k: return "cl100k";
  }
  return "?";
}

inline std::ostream& operator<<(std::ostream& os, pre_tokenizer_kind k) { return os << to_string(k); }

// "gpt2" / "gpt-2", "starcoder", "cl100k"; throws tokenizer_format_error otherwise.
inline pre_tokenizer_kind parse_pre_tokenizer_kind(std::string_view s, std::string_view where) {
  if (s == "gpt2" || s == "gpt-2") return pre_tokenizer_kind::gpt2;
  if (s == "starcoder") return pre_tokenizer_kind::starcoder;
  if (s == "cl100k" || s == "cl100k_base") return pre_tokenizer_kind::cl100k;
  throw tokenizer_format_error(detail::concat(where, ": unknown pre-tokenizer '", s,
                                              "' (expected gpt2, starcoder or cl100k)"));
}

namespace detail {

// One compiled pattern; shared (read-only) between threads.
class pcre2_pattern {
 public:
  explicit pcre2_pattern(std::string_view pattern) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off, nullptr);
    if (!code_) {
      PCRE2_UCHAR buf[256];
      pcre2_get_error_message(err, buf, sizeof buf);
      throw tokenizer_format_error(concat("pre-tokenizer: cannot compile pattern at offset ", err_off,
                                          ": ", reinterpret_cast<const char*>(buf)));
    }
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
  }
  ~pcre2_pattern() { pcre2_code_free(code_); }
  pcre2_pattern(const pcre2_pattern&) = delete;
  pcre2_pattern& operator=(const pcre2_pattern&) = delete;
  const pcre2_code* code() const { return code_; }
  bool jit() const { return jit_; }

 private:
  pcre2_code* code_ = nullptr;
  bool jit_ = false;
};

// Per-thread matching state (match data, a JIT stack large enough for long whitespace runs).
class pcre2_matcher {
 public:
  explicit pcre2_matcher(std::shared_ptr<const pcre2_pattern> p) : pattern_(std::move(p)) {
    md_ = pcre2_match_data_create_from_pattern(pattern_->code(), nullptr);
    mctx_ = pcre2_match_context_create(nullptr);
    if (pattern_->jit()) {
      stack_ = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
      pcre2_jit_stack_assign(mctx_, nullptr, stack_);
    }
    if (!md_ || !mctx_) throw out_of_memory("pre-tokenizer: cannot allocate PCRE2 match data");
  }
  ~pcre2_matcher() {
    pcre2_match_data_free(md_);
    pcre2_match_context_free(mctx_);
    if (stack_) pcre2_jit_stack_free(stack_);
  }
  pcre2_matcher(const pcre2_matcher&) = delete;
  pcre2_matcher& operator=(const pcre2_matcher&) = delete;

  // Calls fn(std::string_view piece) for each pre-token of s, in order; the pieces tile s.
  template <class F>
  void split(std::string_view s, F&& fn) {
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
    std::size_t off = 0;
    while (off < s.size()) {
      const int rc = pattern_->jit()
                         ? pcre2_jit_match(pattern_->code(), subject, s.size(), off, 0, md_, mctx_)
                         : pcre2_match(pattern_->code(), subject, s.size(), off, 0, md_, mctx_);
      if (rc == PCRE2_ERROR_NOMATCH) {
        fn(s.substr(off));
        return;
      }
      if (rc < 0) {
        PCRE2_UCHAR buf[256];
        pcre2_get_error_message(rc, buf, sizeof buf);
        throw error(concat("pre-tokenizer: PCRE2 match failed at byte ", off, ": ",
                           reinterpret_cast<const char*>(buf)));
      }
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md_);
      std::size_t b = ov[0], e = ov[1];
      if (b > off) fn(s.substr(off, b - off));  // bytes no match covers: ill-formed UTF-8
      if (e == b) {                              // cannot happen with our patterns; stay safe
        e = b + 1;
        fn(s.substr(b, 1));
      } else {
        fn(s.substr(b, e - b));
      }
      off = e;
    }
  }

 private:
  std::shared_ptr<const pcre2_pattern> pattern_;
  pcre2_match_data* md_ = nullptr;
  pcre2_match_context* mctx_ = nullptr;
  pcre2_jit_stack* stack_ = nullptr;
};

// Length of the \p{N} character at s[i], or 0 when s[i] does not start one (ill-formed bytes
// are never numbers).
inline std::size_t number_char_length(std::string_view s, std::size_t i) {
  const unsigned char c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return (c >= '0' && c <= '9') ? 1 : 0;
  std::size_t j = i;
  const auto cp = next_utf8(s, j);
  if (!cp) return 0;
  const auto cat = utf8proc_category(utf8proc_int32_t(*cp));
  return (cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO)
             ? j - i
             : 0;
}

}  // namespace detail

// A pre-tokenizer: the rules (shared, immutable) plus one thread's matching state. Cheap to
// make from another (`fork()`): the compiled pattern is shared, the state is new.
class pre_tokenizer {
 public:
  explicit pre_tokenizer(pre_tokenizer_kind kind = pre_tokenizer_kind::gpt2)
      : kind_(kind),
        pattern_(std::make_shared<const detail::pcre2_pattern>(
            kind == pre_tokenizer_kind::cl100k ? cl100k_pattern : gpt2_pattern)),
        matcher_(pattern_) {}

  pre_tokenizer_kind kind() const { return kind_; }
  bool jit() const { return pattern_->jit(); }
  pre_tokenizer fork() const { return pre_tokenizer(kind_, pattern_); }

  // Calls fn(std::string_view) for each pre-token of `text`, in order; they tile `text`.
  template <class F>
  void split(std::string_view text, F&& fn) {
    if (kind_ != pre_tokenizer_kind::starcoder) {
      matcher_.split(text, fn);
      return;
    }
    // StarCoder: digits first (each one a pre-token), the expression on the runs between.
    std::size_t run = 0;
    for (std::size_t i = 0; i < text.size();) {
      const std::size_t n = detail::number_char_length(text, i);
      if (n == 0) {
        ++i;
        continue;
      }
      if (i > run) matcher_.split(text.substr(run, i - run), fn);
      fn(text.substr(i, n));
      i += n;
      run = i;
    }
    if (run < text.size()) matcher_.split(text.substr(run), fn);
  }

 private:
  pre_tokenizer(pre_tokenizer_kind kind, std::shared_ptr<const detail::pcre2_pattern> p)
      : kind_(kind), pattern_(std::move(p)), matcher_(pattern_) {}

  pre_tokenizer_kind kind_;
  std::shared_ptr<const detail::pcre2_pattern> pattern_;
  detail::pcre2_matcher matcher_;
};

}  // namespace tfm
