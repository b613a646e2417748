// tfm/data/pii.hpp — scrubbing of personal data: e-mail addresses, IPv4/IPv6 addresses,
// payment-card numbers and phone numbers become placeholders, and each kind is counted.
// Hand-written scanners (one pass for e-mails, one for the numeric kinds), so every rule is
// visible here:
//  - e-mail: local part of [A-Za-z0-9._%+-] (not starting or ending with '.'), '@', then at
//    least two dot-separated labels of [A-Za-z0-9-] whose last (the TLD) is 2..24 letters.
//    Not taken: `foo@bar` (no TLD), `@property` (no local part), `x@y.z` (one-letter TLD).
//  - IPv4: four decimal octets 0..255, not touching a letter, digit, '_' or another
//    ".<digit>": `1.2.3.4.5` and `v1.2.3.4` are kept. A bare four-part version such as
//    `1.2.3.4` is indistinguishable from an address and is replaced.
//  - IPv6: 8 groups of 1..4 hex digits, or fewer with one "::" and at least one group of two
//    or more digits (`fe80::1`, `2001:db8::8a2e:370:7334`); not touching [A-Za-z0-9_:].
//    Times (`12:30:45`), MAC addresses (6 groups) and C++ `a::b` are kept.
//  - card: 13..19 digits, optionally in groups split by single spaces or hyphens, passing the
//    Luhn check; invalid numbers are kept.
//  - phone: digit groups split by single ' ', '-', '.' or a parenthesised area code. With a
//    leading '+': 8..15 digits, country code 1..3 digits. Without: 10..11 digits in two or more
//    groups, every group of 2+ digits except a leading "1", the last of 3+ digits. So dates
//    (`2024-01-15`), times, version numbers and bare digit runs (IDs, timestamps) are kept.
// Detection order at each position: IPv6, IPv4, card, phone (e-mails first, in their own pass).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tfm/core/config.hpp"

namespace tfm::data {

struct pii_config {
  bool email = true, ipv4 = true, ipv6 = true, card = true, phone = true;
  std::string email_placeholder = "<EMAIL>";
  std::string ip_placeholder = "<IP>";
  std::string card_placeholder = "<CARD>";
  std::string phone_placeholder = "<PHONE>";
};

struct pii_stats {
  uint64_t emails = 0, ipv4 = 0, ipv6 = 0, cards = 0, phones = 0;
  uint64_t total() const { return emails + ipv4 + ipv6 + cards + phones; }
  void merge(const pii_stats& o) {
    emails += o.emails; ipv4 += o.ipv4; ipv6 += o.ipv6; cards += o.cards; phones += o.phones;
  }
};

namespace detail {

inline bool is_digit(char c) { return c >= '0' && c <= '9'; }
inline bool is_alpha(char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
inline bool is_alnum(char c) { return is_digit(c) || is_alpha(c); }
inline bool is_hex(char c) { return is_digit(c) || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f'); }
inline bool is_email_local(char c) {
  return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
inline bool is_label(char c) { return is_alnum(c) || c == '-'; }

// Luhn checksum over a string of digits.
inline bool luhn_valid(std::string_view digits) {
  int sum = 0;
  bool dbl = false;
  for (std::size_t i = digits.size(); i-- > 0;) {
    int d = digits[i] - '0';
    if (dbl) { d *= 2; if (d > 9) d -= 9; }
    sum += d;
    dbl = !dbl;
  }
  return sum % 10 == 0;
}

// End of an e-mail address whose '@' is at `at`, or 0 when there is none. `begin` receives
// the start of the local part; `floor` is the first byte the local part may use.
inline std::size_t match_email(std::string_view t, std::size_t at, std::size_t floor, std::size_t& begin) {
  std::size_t l = at;
  while (l > floor && is_email_local(t[l - 1])) --l;
  while (l < at && t[l] == '.') ++l;                // no leading dot
  if (l == at || t[at - 1] == '.') return 0;        // empty local part or trailing dot
  std::size_t r = at + 1, labels = 0, last_begin = 0, end = 0;
  while (true) {
    const std::size_t lb = r;
    while (r < t.size() && is_label(t[r])) ++r;
    if (r == lb) break;
    ++labels;
    last_begin = lb;
    end = r;
    if (r + 1 < t.size() && t[r] == '.' && is_label(t[r + 1])) { ++r; continue; }
    break;
  }
  if (labels < 2) return 0;
  const std::string_view tld = t.substr(last_begin, end - last_begin);
  if (tld.size() < 2 || tld.size() > 24) return 0;
  for (char c : tld) if (!is_alpha(c)) return 0;
  begin = l;
  return end;
}

inline std::size_t match_ipv4(std::string_view t, std::size_t i) {
  std::size_t p = i;
  for (int o = 0; o < 4; ++o) {
    if (o > 0) {
      if (p >= t.size() || t[p] != '.') return 0;
      ++p;
    }
    std::size_t b = p;
    int v = 0;
    while (p < t.size() && is_digit(t[p]) && p - b < 3) v = v * 10 + (t[p++] - '0');
    if (p == b || v > 255 || (p < t.size() && is_digit(t[p]))) return 0;
  }
  if (p < t.size() && (is_alnum(t[p]) || t[p] == '_')) return 0;
  if (p + 1 < t.size() && t[p] == '.' && is_digit(t[p + 1])) return 0;
  return p;
}

inline std::size_t match_ipv6(std::string_view t, std::size_t i) {
  std::size_t p = i;
  int groups = 0;
  bool compressed = false, wide = false;
  if (t.substr(p, 2) == "::") { compressed = true; p += 2; }
  while (p < t.size()) {
    const std::size_t b = p;
    while (p < t.size() && is_hex(t[p]) && p - b < 5) ++p;
    const std::size_t len = p - b;
    if (len == 0) break;
    if (len > 4) return 0;
    ++groups;
    wide |= len >= 2;
    if (t.substr(p, 2) == "::") {
      if (compressed) return 0;
      compressed = true;
      p += 2;
      continue;
    }
    if (p + 1 < t.size() && t[p] == ':' && is_hex(t[p + 1])) { ++p; continue; }
    break;
  }
  if (p < t.size() && (is_alnum(t[p]) || t[p] == '_' || t[p] == ':')) return 0;
  if (p + 1 < t.size() && t[p] == '.' && is_digit(t[p + 1])) return 0;  // embedded IPv4: not handled
  if (compressed ? (groups > 7 || !wide) : groups != 8) return 0;
  return p;
}

struct digit_group { std::size_t begin, end; bool paren; };

// Digit groups from i, split by one of `seps` (and, when `parens`, a leading "(ddd)").
inline void digit_groups(std::string_view t, std::size_t i, std::string_view seps, bool parens,
                         std::vector<digit_group>& g) {
  g.clear();
  std::size_t p = i;
  while (p < t.size() && g.size() < 12) {
    bool paren = false;
    if (parens && g.size() <= 1 && t[p] == '(' ) { paren = true; ++p; }
    const std::size_t b = p;
    while (p < t.size() && is_digit(t[p]) && p - b < 20) ++p;
    if (p == b) break;
    if (paren) {
      if (p >= t.size() || t[p] != ')') break;
      g.push_back({b, p, true});
      ++p;
      if (p < t.size() && t[p] == ' ' && p + 1 < t.size() && is_digit(t[p + 1])) ++p;
      continue;
    }
    g.push_back({b, p, false});
    if (p + 1 < t.size() && seps.find(t[p]) != std::string_view::npos &&
        (is_digit(t[p + 1]) || (parens && t[p + 1] == '('))) {
      ++p;
      continue;
    }
    break;
  }
}

inline bool ends_cleanly(std::string_view t, std::size_t e) {
  return e >= t.size() || !(is_alnum(t[e]) || t[e] == '_');
}

}  // namespace detail

// Replaces personal data by placeholders (see the header comment). `stats` may be null.
inline std::string scrub_pii(std::string_view text, const pii_config& cfg = {}, pii_stats* stats = nullptr) {
  pii_stats local;
  std::string a;
  // Pass 1: e-mail addresses.
  if (cfg.email && text.find('@') != std::string_view::npos) {
    a.reserve(text.size());
    std::size_t copied = 0;
    for (std::size_t at = text.find('@'); at != std::string_view::npos; at = text.find('@', at + 1)) {
      if (at < copied) continue;
      std::size_t b = 0;
      const std::size_t e = detail::match_email(text, at, copied, b);
      if (!e) continue;
      a.append(text.substr(copied, b - copied));
      a.append(cfg.email_placeholder);
      ++local.emails;
      copied = e;
      at = e - 1;
    }
    a.append(text.substr(copied));
  } else {
    a.assign(text);
  }
  // Pass 2: numbers and addresses.
  std::string out;
  out.reserve(a.size());
  std::vector<detail::digit_group> g;
  std::string digits;
  const std::string_view t = a;
  std::size_t copied = 0;
  auto replace = [&](std::size_t b, std::size_t e, const std::string& ph, uint64_t& counter) {
    out.append(t.substr(copied, b - copied));
    out.append(ph);
    ++counter;
    copied = e;
  };
  for (std::size_t i = 0; i < t.size();) {
    const char c = t[i];
    const char prev = i ? t[i - 1] : ' ';
    const bool boundary = !(detail::is_alnum(prev) || prev == '_');
    if (!boundary || !(detail::is_hex(c) || c == ':' || c == '+' || c == '(')) { ++i; continue; }
    if (cfg.ipv6 && prev != ':' && prev != '.' && (detail::is_hex(c) || c == ':')) {
      if (const std::size_t e = detail::match_ipv6(t, i)) { replace(i, e, cfg.ip_placeholder, local.ipv6); i = e; continue; }
    }
    const bool num_boundary = prev != '.' && prev != '-' && prev != '+' && prev != ',';
    if (detail::is_digit(c) && num_boundary) {
      if (cfg.ipv4) {
        if (const std::size_t e = detail::match_ipv4(t, i)) { replace(i, e, cfg.ip_placeholder, local.ipv4); i = e; continue; }
      }
      if (cfg.card) {
        detail::digit_groups(t, i, " -", false, g);
        std::size_t end = 0;
        for (std::size_t k = g.size(); k > 0 && !end; --k) {
          digits.clear();
          for (std::size_t j = 0; j < k; ++j) digits.append(t.substr(g[j].begin, g[j].end - g[j].begin));
          if (digits.size() >= 13 && digits.size() <= 19 && detail::luhn_valid(digits) &&
              detail::ends_cleanly(t, g[k - 1].end))
            end = g[k - 1].end;
        }
        if (end) { replace(i, end, cfg.card_placeholder, local.cards); i = end; continue; }
      }
    }
    if (cfg.phone && num_boundary && (detail::is_digit(c) || c == '+' || c == '(')) {
      const bool plus = c == '+';
      if (plus && !(i + 1 < t.size() && detail::is_digit(t[i + 1]))) { ++i; continue; }
      detail::digit_groups(t, plus ? i + 1 : i, " -.", true, g);
      std::size_t end = 0;
      for (std::size_t k = g.size(); k > 0 && !end; --k) {
        std::size_t nd = 0;
        bool ok = true;
        for (std::size_t j = 0; j < k; ++j) {
          const std::size_t len = g[j].end - g[j].begin;
          nd += len;
          if (!plus && len < 2 && !(j == 0 && len == 1 && t[g[j].begin] == '1')) ok = false;
        }
        const std::size_t last = g[k - 1].end - g[k - 1].begin;
        const std::size_t e = g[k - 1].end + (g[k - 1].paren ? 1 : 0);
        if (plus) {
          const std::size_t cc = g[0].end - g[0].begin;
          ok = ok && nd >= 8 && nd <= 15 && cc <= 3 && k >= 2;
        } else {
          ok = ok && nd >= 10 && nd <= 11 && k >= 2 && last >= 3;
        }
        if (ok && detail::ends_cleanly(t, e)) end = e;
      }
      if (end) { replace(i, end, cfg.phone_placeholder, local.phones); i = end; continue; }
    }
    ++i;
  }
  if (stats) stats->merge(local);
  if (copied == 0) return a;
  out.append(t.substr(copied));
  return out;
}

}  // namespace tfm::data
