// tfm/data/detail/utf8.hpp — UTF-8 decoding with repair, the one decoder the data stages share.
// Invalid input never throws: each maximal ill-formed subsequence (Unicode 15, §3.9 "U+FFFD
// substitution of maximal subparts") decodes to U+FFFD and is reported as such.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "tfm/core/config.hpp"

namespace tfm::data::detail {

inline constexpr char32_t replacement_char = 0xFFFD;

struct decoded {
  char32_t cp;     // the code point, or U+FFFD for an ill-formed subsequence
  uint32_t len;    // bytes consumed (>= 1)
  bool valid;      // false when the bytes were ill-formed
};

// Decodes one code point at s[i] (i < s.size()).
inline decoded decode_utf8(std::string_view s, std::size_t i) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data()) + i;
  const std::size_t n = s.size() - i;
  const unsigned char b0 = p[0];
  if (b0 < 0x80) return {b0, 1, true};
  uint32_t need;
  char32_t cp;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1; cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2; cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;        // overlong
    if (b0 == 0xED) hi = 0x9F;        // surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3; cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;        // overlong
    if (b0 == 0xF4) hi = 0x8F;        // above U+10FFFF
  } else {
    return {replacement_char, 1, false};
  }
  for (uint32_t k = 1; k <= need; ++k) {
    if (k >= n) return {replacement_char, k, false};  // truncated: the valid prefix is one subpart
    const unsigned char b = p[k];
    const unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
    if (b < l || b > h) return {replacement_char, k, false};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {cp, need + 1, true};
}

inline void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// True when the whole string is well-formed UTF-8.
inline bool is_valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    if (static_cast<unsigned char>(s[i]) < 0x80) { ++i; continue; }
    const decoded d = decode_utf8(s, i);
    if (!d.valid) return false;
    i += d.len;
  }
  return true;
}

}  // namespace tfm::data::detail
