// tfm/tokenizer/byte_unicode.hpp — GPT-2's reversible byte <-> Unicode mapping and small UTF-8
// helpers. Byte-level BPE vocabularies (vocab.json, merges.txt, tokenizer.json) spell every
// token as a string of code points, one per byte: printable Latin-1 bytes map to themselves and
// the other 68 bytes to U+0100.. in byte order, so no token text contains spaces or controls.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "tfm/core/config.hpp"

namespace tfm {

namespace detail {

// The 188 bytes GPT-2 keeps as themselves: '!'..'~', '¡'..'¬', '®'..'ÿ'.
constexpr bool byte_is_kept(unsigned b) {
  return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

constexpr std::array<char32_t, 256> make_byte_to_code_point() {
  std::array<char32_t, 256> t{};
  char32_t next = 256;
  for (unsigned b = 0; b < 256; ++b) t[b] = byte_is_kept(b) ? char32_t(b) : next++;
  return t;
}

}  // namespace detail

// byte -> code point, as GPT-2's bytes_to_unicode().
inline constexpr std::array<char32_t, 256> byte_to_code_point = detail::make_byte_to_code_point();

// code point -> byte, or -1 when the code point is not in the image of byte_to_code_point.
inline int code_point_to_byte(char32_t cp) {
  if (cp < 256) return detail::byte_is_kept(unsigned(cp)) ? int(cp) : -1;
  if (cp < 256 + 68) {
    // the (cp - 256)-th byte that is not kept
    unsigned k = unsigned(cp - 256);
    for (unsigned b = 0; b < 256; ++b)
      if (!detail::byte_is_kept(b) && k-- == 0) return int(b);
  }
  return -1;
}

// Appends the UTF-8 encoding of `cp` (which must be a valid scalar value).
inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

// Decodes one well-formed UTF-8 sequence at s[i] (shortest form, no surrogates, <= U+10FFFF).
// Returns the code point and advances i, or returns nullopt and leaves i unchanged.
inline std::optional<char32_t> next_utf8(std::string_view s, std::size_t& i) {
  const auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned c = at(i);
  if (c < 0x80) {
    ++i;
    return char32_t(c);
  }
  int n;
  char32_t cp, min;
  if ((c & 0xE0) == 0xC0) n = 1, cp = c & 0x1F, min = 0x80;
  else if ((c & 0xF0) == 0xE0) n = 2, cp = c & 0x0F, min = 0x800;
  else if ((c & 0xF8) == 0xF0) n = 3, cp = c & 0x07, min = 0x10000;
  else return std::nullopt;
  if (i + std::size_t(n) >= s.size()) return std::nullopt;
  for (int k = 1; k <= n; ++k) {
    const unsigned d = at(i + k);
    if ((d & 0xC0) != 0x80) return std::nullopt;
    cp = (cp << 6) | (d & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return std::nullopt;
  i += std::size_t(n) + 1;
  return cp;
}

// Raw bytes -> GPT-2's printable spelling (what vocab.json and merges.txt hold).
inline std::string bytes_to_token_text(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) append_utf8(out, byte_to_code_point[b]);
  return out;
}

// GPT-2's printable spelling -> raw bytes; nullopt when `text` is not valid UTF-8 or holds a code
// point outside the mapping.
inline std::optional<std::string> token_text_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const auto cp = next_utf8(text, i);
    if (!cp) return std::nullopt;
    const int b = code_point_to_byte(*cp);
    if (b < 0) return std::nullopt;
    out += char(b);
  }
  return out;
}

}  // namespace tfm
