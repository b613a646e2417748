// tfm/data/clean.hpp — the cleaning stage: UTF-8 repair, control characters, whitespace, NFC.
// `clean_text` is a pure function of its input and config; it never throws on bad input.
//
// What it does, in this order, in one pass over the bytes (then NFC):
//  1. UTF-8 repair: every maximal ill-formed subsequence becomes U+FFFD (counted).
//  2. Line ends: CRLF and lone CR become LF; U+2028/U+2029 become LF.
//  3. Control characters removed (counted): C0 except TAB and LF, DEL, C1 (U+0080..U+009F),
//     and the byte-order mark U+FEFF.
//  4. Unicode spaces (U+00A0, U+1680, U+2000..U+200A, U+202F, U+205F, U+3000) become U+0020.
//  5. Whitespace, line by line: a run of spaces after the first visible character of a line
//     becomes one space (TABs are kept as they are); leading indentation is kept unless
//     `collapse_indentation`; trailing spaces and TABs are stripped; a line of only spaces
//     and TABs is blank; runs of more than `max_blank_lines` blank lines (default 2) become
//     `max_blank_lines`; blank lines at the start and end of the document are removed, and
//     the document does not end with a newline.
//  6. NFC (utf8proc), applied only to the pieces that hold a code point >= U+0300 (everything
//     below U+0300 is NFC-stable and cannot compose with a preceding character); see
//     detail::nfc_in_place.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <utf8proc.h>

#include "tfm/core/config.hpp"
#include "tfm/data/detail/utf8.hpp"

namespace tfm::data {

struct clean_config {
  bool normalize_nfc = true;
  bool remove_control = true;
  bool normalize_whitespace = true;
  bool collapse_indentation = false;  // also collapse leading runs of spaces
  int max_blank_lines = 2;            // longest run of blank lines kept
};

struct clean_stats {
  uint64_t invalid_sequences = 0;  // U+FFFD substitutions for ill-formed UTF-8
  uint64_t control_removed = 0;    // control characters removed
  uint64_t nfc_changed = 0;        // documents that NFC changed
  void merge(const clean_stats& o) {
    invalid_sequences += o.invalid_sequences;
    control_removed += o.control_removed;
    nfc_changed += o.nfc_changed;
  }
};

namespace detail {

inline bool is_unicode_space(char32_t c) {
  return c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

// NFC of one piece through utf8proc; `s` must be valid UTF-8. False (and `s` untouched) on failure.
inline bool nfc_utf8proc(std::string_view s, std::string& out) {
  utf8proc_uint8_t* buf = nullptr;
  const utf8proc_ssize_t n =
      utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                   static_cast<utf8proc_ssize_t>(s.size()), &buf,
                   static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
  if (n < 0) return false;
  out.append(reinterpret_cast<const char*>(buf), static_cast<std::size_t>(n));
  std::free(buf);
  return true;
}

// NFC of valid UTF-8, piece by piece. An ASCII character never composes with what precedes
// it (no canonical composition has an ASCII second character) and is NFC-stable, so the text
// splits before every ASCII byte into pieces "one ASCII character + the non-ASCII code points
// after it"; only pieces holding a code point >= U+0300 other than U+FFFD go to utf8proc.
// Returns true when the text changed.
inline bool nfc_in_place(std::string& s) {
  std::string out;
  bool changed = false;
  std::size_t copied = 0;  // s[0, copied) is in `out` (only once something changed)
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    const std::size_t b = i;
    if (static_cast<unsigned char>(s[i]) < 0x80) ++i;  // the piece's ASCII head
    bool needs = false;
    while (i < n && static_cast<unsigned char>(s[i]) >= 0x80) {
      const decoded d = decode_utf8(s, i);
      needs |= d.cp >= 0x300 && d.cp != replacement_char;
      i += d.len;
    }
    if (!needs) continue;
    const std::string_view piece(s.data() + b, i - b);
    std::string norm;
    if (!nfc_utf8proc(piece, norm) || norm == piece) continue;
    out.append(s, copied, b - copied);
    out.append(norm);
    copied = i;
    changed = true;
  }
  if (!changed) return false;
  out.append(s, copied, std::string::npos);
  s = std::move(out);
  return true;
}

}  // namespace detail

// Cleans one document (see the header comment). `stats` may be null.
inline std::string clean_text(std::string_view in, const clean_config& cfg = {},
                              clean_stats* stats = nullptr) {
  clean_stats local;
  std::string out;
  out.reserve(in.size());
  // Whitespace state: a line is "open" once it has a visible character.
  bool line_open = false;
  std::size_t pending_newlines = 0;  // newlines seen since the last visible character
  std::string indent;                // whitespace before the first visible character of a line
  std::string gap;                   // whitespace after a visible character, not yet emitted
  char32_t max_cp = 0;

  auto emit_visible = [&](char32_t cp, const char* bytes, std::size_t len) {
    if (!cfg.normalize_whitespace) {
      if (bytes) out.append(bytes, len); else detail::append_utf8(out, cp);
      return;
    }
    if (!line_open) {
      if (!out.empty()) {
        const std::size_t keep = static_cast<std::size_t>(cfg.max_blank_lines) + 1;
        out.append(pending_newlines < keep ? pending_newlines : keep, '\n');
      }
      for (char c : indent) {
        if (c == ' ' && cfg.collapse_indentation && !out.empty() && out.back() == ' ') continue;
        out.push_back(c);
      }
      indent.clear();
      pending_newlines = 0;
      line_open = true;
    } else if (!gap.empty()) {
      for (char c : gap) {
        if (c == ' ' && !out.empty() && out.back() == ' ') continue;
        out.push_back(c);
      }
      gap.clear();
    }
    if (bytes) out.append(bytes, len); else detail::append_utf8(out, cp);
  };
  auto emit_space = [&](char c) {  // c is ' ' or '\t'
    if (!cfg.normalize_whitespace) { out.push_back(c); return; }
    (line_open ? gap : indent).push_back(c);
  };
  auto emit_newline = [&]() {
    if (!cfg.normalize_whitespace) { out.push_back('\n'); return; }
    gap.clear();
    indent.clear();
    ++pending_newlines;
    line_open = false;
  };

  const std::size_t n = in.size();
  for (std::size_t i = 0; i < n;) {
    const unsigned char b = static_cast<unsigned char>(in[i]);
    if (b >= 0x20 && b < 0x7F) {  // printable ASCII: the common case
      if (b == ' ') emit_space(' ');
      else emit_visible(b, &in[i], 1);
      ++i;
      continue;
    }
    if (b < 0x80) {
      ++i;
      if (b == '\n') { emit_newline(); continue; }
      if (b == '\t') { emit_space('\t'); continue; }
      if (b == '\r') {
        if (i < n && in[i] == '\n') ++i;
        emit_newline();
        continue;
      }
      if (cfg.remove_control) { ++local.control_removed; continue; }
      emit_visible(b, &in[i - 1], 1);
      continue;
    }
    const detail::decoded d = detail::decode_utf8(in, i);
    const char* bytes = d.valid ? &in[i] : nullptr;
    i += d.len;
    if (!d.valid) {
      ++local.invalid_sequences;
      emit_visible(detail::replacement_char, nullptr, 0);
      continue;
    }
    const char32_t cp = d.cp;
    if (cfg.remove_control && ((cp >= 0x80 && cp <= 0x9F) || cp == 0xFEFF)) {
      ++local.control_removed;
      continue;
    }
    if (cp == 0x2028 || cp == 0x2029) { emit_newline(); continue; }
    if (cfg.normalize_whitespace && detail::is_unicode_space(cp)) { emit_space(' '); continue; }
    if (cp > max_cp) max_cp = cp;
    emit_visible(cp, bytes, d.len);
  }
  if (cfg.normalize_nfc && max_cp >= 0x300 && detail::nfc_in_place(out)) ++local.nfc_changed;
  if (stats) stats->merge(local);
  return out;
}

}  // namespace tfm::data
