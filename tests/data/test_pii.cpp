// Tests of tfm/data/pii.hpp: positive and negative cases for every detector.
#define TFM_TEST_MODULE data_pii
#include "support/test_main.hpp"

#include <random>
#include <string>

#include "tfm/data/pii.hpp"

using namespace tfm::data;

namespace {
std::string scrub(const std::string& s, pii_stats* st = nullptr) { return scrub_pii(s, {}, st); }
}  // namespace

BOOST_AUTO_TEST_CASE(emails) {
  pii_stats st;
  BOOST_TEST(scrub("mail john.doe+tag@example.co.uk now", &st) == "mail <EMAIL> now");
  BOOST_TEST(scrub("<a@b.org>, x_y@sub.domain.info.") == "<<EMAIL>>, <EMAIL>.");
  BOOST_TEST(st.emails == 1u);
  // not addresses
  for (const char* s : {"foo@bar", "@property", "def f(self): @staticmethod", "x@y.z", "a @ b.com",
                        "git@host", "user@localhost", "@@", "matrix@3.14", ".@a.com."}) {
    BOOST_TEST(scrub(s) == s);
  }
}

BOOST_AUTO_TEST_CASE(ipv4) {
  pii_stats st;
  BOOST_TEST(scrub("server 192.168.0.1 and 8.8.8.8.", &st) == "server <IP> and <IP>.");
  BOOST_TEST(st.ipv4 == 2u);
  for (const char* s : {"version 1.2.3.4.5", "v1.2.3.4", "256.1.1.1", "1.2.3", "10.0.0.1a", "3.14159",
                        "2024.01.15", "1.2.3.4.5.6.7"}) {
    BOOST_TEST(scrub(s) == s);
  }
}

BOOST_AUTO_TEST_CASE(ipv6) {
  pii_stats st;
  BOOST_TEST(scrub("at 2001:0db8:85a3:0000:0000:8a2e:0370:7334 ok", &st) == "at <IP> ok");
  BOOST_TEST(scrub("fe80::1 and 2001:db8::8a2e:370:7334", &st) == "<IP> and <IP>");
  BOOST_TEST(st.ipv6 == 3u);
  for (const char* s : {"12:30:45", "std::vector<int>", "a::b", "00:1a:2b:3c:4d:5e", "Foo::Bar::baz",
                        "ratio 3:2", "beef:cafe"}) {
    BOOST_TEST(scrub(s) == s);
  }
}

BOOST_AUTO_TEST_CASE(cards) {
  pii_stats st;
  BOOST_TEST(scrub("card 4111 1111 1111 1111 exp", &st) == "card <CARD> exp");
  BOOST_TEST(scrub("4111-1111-1111-1111") == "<CARD>");
  BOOST_TEST(scrub("amex 378282246310005.") == "amex <CARD>.");
  BOOST_TEST(st.cards == 1u);
  // invalid Luhn, too short, too long: kept
  for (const char* s : {"4111 1111 1111 1112", "4111 1111 1111", "41111111111111111111111"}) {
    BOOST_TEST(scrub(s) == s);
  }
}

BOOST_AUTO_TEST_CASE(phones) {
  pii_stats st;
  BOOST_TEST(scrub("call (555) 123-4567 today", &st) == "call <PHONE> today");
  BOOST_TEST(scrub("call 555-123-4567 2 times") == "call <PHONE> 2 times");
  BOOST_TEST(scrub("+44 20 7946 0958") == "<PHONE>");
  BOOST_TEST(scrub("+1-555-123-4567") == "<PHONE>");
  BOOST_TEST(scrub("555.123.4567") == "<PHONE>");
  BOOST_TEST(scrub("tel +33 1 23 45 67 89.") == "tel <PHONE>.");
  BOOST_TEST(st.phones == 1u);
  for (const char* s : {"2024-01-15", "on 2024-01-15 10:30", "15.01.2024", "1700000000", "pi 3.14159265358",
                        "ISBN 978-3-16-148410-0", "page 12-34", "1.2.3.4.5", "+5", "x 12 34 56"}) {
    BOOST_TEST(scrub(s) == s);
  }
}

BOOST_AUTO_TEST_CASE(switches_and_placeholders) {
  pii_config c;
  c.email = false;
  c.phone_placeholder = "[P]";
  BOOST_TEST(scrub_pii("a@b.com 555-123-4567", c) == "a@b.com [P]");
}

BOOST_AUTO_TEST_CASE(random_bytes_do_not_crash) {
  std::mt19937_64 rng(3);
  const std::string alphabet = "0123456789abcdef.:-+()@ x\n";
  for (int it = 0; it < 3000; ++it) {
    std::string s(rng() % 200, ' ');
    for (auto& c : s) c = it % 2 ? static_cast<char>(rng()) : alphabet[rng() % alphabet.size()];
    const std::string out = scrub(s);
    BOOST_TEST_REQUIRE(out.size() <= s.size() + 64 * 8);
  }
}
