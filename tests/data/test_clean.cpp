// Tests of tfm/data/clean.hpp: UTF-8 repair, control characters, whitespace rules, NFC.
#define TFM_TEST_MODULE data_clean
#include "support/test_main.hpp"

#include <random>
#include <string>

#include "tfm/data/clean.hpp"

using tfm::data::clean_config;
using tfm::data::clean_stats;
using tfm::data::clean_text;
namespace dd = tfm::data::detail;

BOOST_AUTO_TEST_CASE(valid_ascii_unchanged) {
  const std::string s = "Hello, world.\nA second line\twith a tab.";
  BOOST_TEST(clean_text(s) == s);
}

BOOST_AUTO_TEST_CASE(invalid_utf8_replaced_and_counted) {
  struct tc { std::string in, out; uint64_t n; };
  const std::string R = "\xEF\xBF\xBD";
  const tc cases[] = {
      {"a\xFF" "b", "a" + R + "b", 1},                 // never valid byte
      {"a\x80" "b", "a" + R + "b", 1},                 // lone continuation
      {"a\xC3", "a" + R, 1},                           // truncated at end
      {"a\xE2\x82" "b", "a" + R + "b", 1},             // truncated 3-byte: one maximal subpart
      {"\xC0\xAF", R + R, 2},                          // overlong '/'
      {"\xED\xA0\x80", R + R + R, 3},                  // surrogate D800
      {"\xF4\x90\x80\x80", R + R + R + R, 4},          // above U+10FFFF
      {"\xE2\x82\xAC", "\xE2\x82\xAC", 0},             // valid euro sign
  };
  for (const auto& c : cases) {
    clean_stats st;
    BOOST_TEST(clean_text(c.in, {}, &st) == c.out);
    BOOST_TEST(st.invalid_sequences == c.n);
  }
}

BOOST_AUTO_TEST_CASE(control_characters_removed) {
  clean_stats st;
  BOOST_TEST(clean_text("a\x01" "b\x7F" "c\xC2\x80" "d\xEF\xBB\xBF" "e\tf", {}, &st) == "abcde\tf");
  BOOST_TEST(st.control_removed == 4u);
  BOOST_TEST(clean_text("a\r\nb\rc") == "a\nb\nc");
}

BOOST_AUTO_TEST_CASE(whitespace_rules) {
  // interior runs of spaces collapse, trailing spaces/tabs go, indentation stays
  BOOST_TEST(clean_text("a   b  c   \n    indented  x\t \nz") == "a b c\n    indented x\nz");
  // at most two blank lines; leading/trailing blank lines removed
  BOOST_TEST(clean_text("\n\n  \na\n\n\n\n\nb\n\n\n") == "a\n\n\nb");
  BOOST_TEST(clean_text("a\n\nb") == "a\n\nb");
  BOOST_TEST(clean_text("a\n \t \nb") == "a\n\nb");
  // Unicode spaces become ASCII spaces, then collapse
  BOOST_TEST(clean_text("a\xC2\xA0\xE2\x80\x83 b") == "a b");
  clean_config c;
  c.max_blank_lines = 0;
  BOOST_TEST(clean_text("a\n\n\nb", c) == "a\nb");
  c.collapse_indentation = true;
  BOOST_TEST(clean_text("    x", c) == " x");
  BOOST_TEST(clean_text(" \n\t\n ").empty());
}

BOOST_AUTO_TEST_CASE(nfc) {
  clean_stats st;
  // e + combining acute -> é (U+00E9)
  BOOST_TEST(clean_text("caf" "e\xCC\x81", {}, &st) == "caf\xC3\xA9");
  BOOST_TEST(st.nfc_changed == 1u);
  // already NFC: unchanged and not counted
  clean_stats st2;
  BOOST_TEST(clean_text("caf\xC3\xA9 \xE4\xB8\xAD", {}, &st2) == "caf\xC3\xA9 \xE4\xB8\xAD");
  BOOST_TEST(st2.nfc_changed == 0u);
  clean_config off;
  off.normalize_nfc = false;
  BOOST_TEST(clean_text("e\xCC\x81", off) == "e\xCC\x81");
}

// Random bytes never crash and always give valid UTF-8 without control characters.
BOOST_AUTO_TEST_CASE(random_bytes_give_valid_output) {
  std::mt19937_64 rng(7);
  for (int it = 0; it < 2000; ++it) {
    std::string s(rng() % 300, '\0');
    for (auto& c : s) c = static_cast<char>(rng());
    const std::string out = clean_text(s);
    BOOST_TEST_REQUIRE(dd::is_valid_utf8(out));
    for (unsigned char c : out) BOOST_TEST_REQUIRE((c >= 0x20 || c == '\n' || c == '\t'));
    BOOST_TEST_REQUIRE(clean_text(out) == out);  // idempotent
  }
}

BOOST_AUTO_TEST_CASE(empty_input) { BOOST_TEST(clean_text("").empty()); }

// The piecewise NFC (split before ASCII characters) against utf8proc over the whole string.
BOOST_AUTO_TEST_CASE(piecewise_nfc_matches_whole_string_nfc) {
  const char32_t alphabet[] = {'a', 'e', '=', ' ', 'A', 0x301, 0x308, 0x327, 0xE9, 0xAC00, 0x1100, 0x1161,
                               0x11A8, 0x338, 0xFFFD, 0xF73, 0x212B, 0x1E0B, 0x323, 0x4E2D};
  std::mt19937_64 rng(11);
  for (int it = 0; it < 5000; ++it) {
    std::string s;
    const std::size_t len = 1 + rng() % 12;
    for (std::size_t k = 0; k < len; ++k) dd::append_utf8(s, alphabet[rng() % std::size(alphabet)]);
    std::string whole;
    BOOST_TEST_REQUIRE(dd::nfc_utf8proc(s, whole));
    std::string piecewise = s;
    const bool changed = dd::nfc_in_place(piecewise);
    BOOST_TEST_REQUIRE(piecewise == whole);
    BOOST_TEST_REQUIRE(changed == (whole != s));
  }
}
