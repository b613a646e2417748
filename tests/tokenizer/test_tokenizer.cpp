// Byte-level BPE without shared data: the byte mapping, pre-tokenizers, training (against a
// plain recounting reference), encode/decode round trips of arbitrary bytes (fuzz), special
// tokens, parallel encoding, file formats and their errors.
#define TFM_TEST_MODULE tokenizer
#include "support/test_main.hpp"

#include <filesystem>
#include <fstream>
#include <cctype>
#include <cmath>
#include <map>
#include <random>
#include <set>

#include "tfm/tokenizer/tokenizer.hpp"

namespace fs = std::filesystem;
using tfm::token_id;

namespace {

std::vector<std::string> pieces(tfm::pre_tokenizer_kind k, std::string_view text) {
  tfm::pre_tokenizer p(k);
  std::vector<std::string> out;
  p.split(text, [&](std::string_view w) { out.emplace_back(w); });
  return out;
}

// English-like text: a Zipf-distributed lexicon of made-up words (some with non-ASCII letters),
// numbers, punctuation and newlines.
std::string sample_text(std::size_t words, unsigned seed) {
  static const std::vector<std::string> lexicon = [] {
    static const char* syll[] = {"the", "qu", "ick", "br", "own", "fo", "x", "ju", "mps", "ov", "er", "la", "zy",
                                 "do", "g", "an", "d", "th", "en", "ru", "ns", "caf\xC3\xA9", "na\xC3\xAF",
                                 "stra\xC3\x9F", "\xE6\x9D\xB1", "\xE4\xBA\xAC", "o", "a", "i", "ng"};
    std::mt19937 r(99);
    std::vector<std::string> lex;
    for (int i = 0; i < 3000; ++i) {
      std::string w;
      for (unsigned k = 0, n = 1 + r() % 4; k < n; ++k) w += syll[r() % 30];
      if (r() % 10 == 0) w[0] = char(std::toupper(static_cast<unsigned char>(w[0])));
      lex.push_back(w);
    }
    lex.push_back("don't");
    lex.push_back("I'm");
    lex.push_back("(yes)");
    lex.push_back("x+y=z");
    return lex;
  }();
  std::mt19937 rng(seed);
  std::string s;
  for (std::size_t i = 0; i < words; ++i) {
    const double u = double(rng() % 100000 + 1) / 100000.0;
    s += rng() % 50 == 0 ? std::to_string(rng() % 5000) : lexicon[std::size_t(std::pow(u, 3.0) * double(lexicon.size() - 1))];
    const unsigned r = rng() % 20;
    s += r == 0 ? "\n" : r == 1 ? ",  " : r == 2 ? ". " : " ";
  }
  return s;
}

// Random bytes: uniformly random, or valid UTF-8 of random code points mixed with ill-formed
// sequences (stray continuation bytes, truncated sequences, overlongs, surrogates, > U+10FFFF).
std::string fuzz_bytes(std::mt19937& rng, std::size_t n) {
  std::string s;
  const unsigned mode = rng() % 3;
  while (s.size() < n) {
    if (mode == 0) {
      s += char(rng() & 0xFF);
      continue;
    }
    const unsigned r = rng() % 10;
    if (r < 4) {
      s += char(0x20 + rng() % 0x5F);  // printable ASCII
    } else if (r < 6) {
      char32_t cp = rng() % 0x110000;
      if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0x4E00;
      tfm::append_utf8(s, cp);
    } else if (r < 7) {
      s += " \n\t\r"[rng() % 4];
    } else if (mode == 2) {
      static const char* bad[] = {"\x80", "\xBF", "\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
                                  "\xE2\x82", "\xF0\x9F\x98", "\xFF", "\xC3"};
      s += bad[rng() % 10];
    } else {
      s += char('0' + rng() % 10);
    }
  }
  return s;
}

// Plain reference trainer: recounts every pair of every word at each step; same rules.
std::vector<std::pair<token_id, token_id>> train_ref(const std::map<std::string, std::uint64_t>& counts,
                                                     std::size_t n_merges) {
  std::vector<std::vector<token_id>> words;
  std::vector<std::uint64_t> freq;
  for (const auto& [w, c] : counts) {
    std::vector<token_id> s;
    for (unsigned char b : w) s.push_back(b);
    words.push_back(s);
    freq.push_back(c);
  }
  std::vector<std::pair<token_id, token_id>> merges;
  token_id next = 256;
  while (merges.size() < n_merges) {
    std::map<std::pair<token_id, token_id>, std::uint64_t> pc;
    for (std::size_t w = 0; w < words.size(); ++w)
      for (std::size_t i = 0; i + 1 < words[w].size(); ++i) pc[{words[w][i], words[w][i + 1]}] += freq[w];
    if (pc.empty()) break;
    auto best = pc.begin();
    for (auto it = pc.begin(); it != pc.end(); ++it)
      if (it->second > best->second) best = it;  // map order: ties keep the smallest pair
    const auto [a, b] = best->first;
    for (auto& s : words) {
      std::vector<token_id> t;
      for (std::size_t i = 0; i < s.size();) {
        if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) t.push_back(next), i += 2;
        else t.push_back(s[i++]);
      }
      s = t;
    }
    merges.push_back({a, b});
    ++next;
  }
  return merges;
}

tfm::bpe_tokenizer train_on(const std::string& text, std::size_t vocab, tfm::pre_tokenizer_kind k,
                            std::vector<std::string> specials = {"<|endoftext|>"}) {
  tfm::bpe_train_options o;
  o.vocab_size = vocab;
  o.pre = k;
  o.special_tokens = std::move(specials);
  tfm::bpe_trainer t(o);
  t.add_text(text);
  return t.train();
}

struct temp_dir {
  fs::path path = fs::temp_directory_path() / ("tfm_test_tokenizer_" + std::to_string(::getpid()));
  temp_dir() { fs::create_directories(path); }
  ~temp_dir() { fs::remove_all(path); }
  fs::path write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return path / name;
  }
};

template <class E, class F>
void check_throws(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    BOOST_ERROR("no exception (expected one mentioning '" << needles.front() << "')");
  } catch (const E& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) BOOST_TEST(msg.find(n) != std::string::npos, "'" << msg << "' lacks '" << n << "'");
  }
}

const tfm::pre_tokenizer_kind all_kinds[] = {tfm::pre_tokenizer_kind::gpt2, tfm::pre_tokenizer_kind::starcoder,
                                             tfm::pre_tokenizer_kind::cl100k};

}  // namespace

BOOST_AUTO_TEST_CASE(byte_to_unicode_mapping) {
  std::set<char32_t> seen;
  for (unsigned b = 0; b < 256; ++b) {
    const char32_t cp = tfm::byte_to_code_point[b];
    seen.insert(cp);
    BOOST_TEST(tfm::code_point_to_byte(cp) == int(b));
  }
  BOOST_TEST(seen.size() == 256u);
  BOOST_TEST(std::uint32_t(tfm::byte_to_code_point[' ']) == 0x120u);  // 'Ġ'
  BOOST_TEST(std::uint32_t(tfm::byte_to_code_point['\n']) == 0x10Au);  // 'Ċ'
  BOOST_TEST(std::uint32_t(tfm::byte_to_code_point['a']) == 0x61u);
  BOOST_TEST(tfm::bytes_to_token_text(" the") == "\xC4\xA0the");
  BOOST_TEST(*tfm::token_text_to_bytes("\xC4\xA0the") == " the");
  BOOST_TEST(!tfm::token_text_to_bytes("\xE2\x82\xAC").has_value());  // '€' is not in the mapping
  BOOST_TEST(!tfm::token_text_to_bytes("\xC4").has_value());          // ill-formed
  std::string all;
  for (unsigned b = 0; b < 256; ++b) all += char(b);
  BOOST_TEST(*tfm::token_text_to_bytes(tfm::bytes_to_token_text(all)) == all);
}

BOOST_AUTO_TEST_CASE(pre_tokenizers) {
  using k = tfm::pre_tokenizer_kind;
  using v = std::vector<std::string>;
  BOOST_TEST(pieces(k::gpt2, "Hello world's  test 123\n\n") ==
             (v{"Hello", " world", "'s", " ", " test", " 123", "\n\n"}), tfm::detail::concat("gpt2"));
  // full Unicode classes: letters with diacritics, CJK, superscript digits (\p{N})
  BOOST_TEST(pieces(k::gpt2, "h\xC3\xA9llo \xE6\x9D\xB1\xE4\xBA\xAC x\xC2\xB2") ==
             (v{"h\xC3\xA9llo", " \xE6\x9D\xB1\xE4\xBA\xAC", " x", "\xC2\xB2"}), tfm::detail::concat("unicode"));
  BOOST_TEST(pieces(k::starcoder, "a 12 b3") == (v{"a", " ", "1", "2", " b", "3"}), tfm::detail::concat("starcoder"));
  BOOST_TEST(pieces(k::cl100k, "Hello123456 world I'M\n\n  x") ==
             (v{"Hello", "123", "456", " world", " I", "'M", "\n\n", " ", " x"}), tfm::detail::concat("cl100k"));
  // ill-formed UTF-8: no crash, bytes no match covers form their own pre-tokens
  BOOST_TEST(pieces(k::gpt2, "ab\xFF\xFE cd") == (v{"ab", "\xFF\xFE", " cd"}), tfm::detail::concat("invalid"));
  // pieces always tile the input
  std::mt19937 rng(1);
  for (int i = 0; i < 300; ++i) {
    const std::string s = fuzz_bytes(rng, 1 + rng() % 200);
    for (const auto kind : all_kinds) {
      std::string joined;
      for (const auto& p : pieces(kind, s)) {
        BOOST_TEST(!p.empty());
        joined += p;
      }
      BOOST_TEST(joined == s);
    }
  }
  BOOST_TEST(tfm::parse_pre_tokenizer_kind("gpt-2", "x") == k::gpt2);
  check_throws<tfm::tokenizer_format_error>([] { tfm::parse_pre_tokenizer_kind("llama3", "cfg.json"); },
                                            {"cfg.json", "llama3"});
}

BOOST_AUTO_TEST_CASE(training_matches_the_recounting_reference) {
  const std::string text = sample_text(6000, 3);
  for (const auto kind : all_kinds) {
    std::map<std::string, std::uint64_t> counts;
    tfm::pre_tokenizer p(kind);
    p.split(text, [&](std::string_view w) { ++counts[std::string(w)]; });
    const std::size_t vocab = 256 + 300 + 1;
    const auto tok = train_on(text, vocab, kind);
    const auto ref = train_ref(counts, 300);
    BOOST_TEST_REQUIRE(tok.merges().size() == ref.size());
    for (std::size_t r = 0; r < ref.size(); ++r) {
      BOOST_TEST(tok.merges()[r].left == ref[r].first, "merge " << r);
      BOOST_TEST(tok.merges()[r].right == ref[r].second, "merge " << r);
      BOOST_TEST(tok.merges()[r].result == 256 + r);
    }
    BOOST_TEST(tok.vocab_size() == vocab);
    BOOST_TEST(tok.eot_id() == vocab - 1);
    BOOST_TEST(tok.decode(tok.encode(text)) == text);
  }
}

BOOST_AUTO_TEST_CASE(training_is_deterministic_and_breaks_ties_by_smallest_pair) {
  // (a,b) and (b,c) both occur 3 times: the smaller pair (a,b) = (97,98) wins
  const auto tok = train_on("ab ab ab bc bc bc", 256 + 1 + 1, tfm::pre_tokenizer_kind::gpt2);
  BOOST_TEST_REQUIRE(tok.merges().size() == 1u);
  BOOST_TEST(tok.merges()[0].left == token_id(' '));  // (' ', 'a'), (' ', 'b') count 2, 3 ...
  // " ab" x2, " bc" x3, "ab", " ": pairs (32,97)=2 (97,98)=3 (32,98)=3 (98,99)=3 -> (32,98)
  BOOST_TEST(tok.merges()[0].right == token_id('b'));
  // same text fed in pieces and twice in another order: same merges
  const std::string text = sample_text(3000, 9);
  tfm::bpe_train_options o;
  o.vocab_size = 600;
  tfm::bpe_trainer a(o), b(o);
  a.add_text(text);
  a.add_text(text);
  const std::size_t half = text.find(' ', text.size() / 2);
  b.add_text(text.substr(half));
  b.add_text(text.substr(0, half));
  b.add_text(text);
  const auto ta = a.train(), tb = b.train();
  BOOST_TEST_REQUIRE(ta.merges().size() == tb.merges().size());
  for (std::size_t r = 0; r < ta.merges().size(); ++r) {
    BOOST_TEST(ta.merges()[r].left == tb.merges()[r].left);
    BOOST_TEST(ta.merges()[r].right == tb.merges()[r].right);
  }
  // a corpus too small for the request stops early with a smaller vocabulary
  const auto small = train_on("abc", 1000, tfm::pre_tokenizer_kind::gpt2);
  BOOST_TEST(small.merges().size() == 2u);
  BOOST_TEST(small.vocab_size() == 256u + 2u + 1u);
  BOOST_CHECK_THROW(tfm::bpe_trainer(tfm::bpe_train_options{.vocab_size = 256}), tfm::invalid_argument);
  // the largest vocabulary 32-bit ids allow trains as far as the corpus goes: the merge table is
  // sized by the pairs there are, not by the request (4 billion merges were reserved up front)
  const auto all = train_on("abc", std::size_t(1) << 32, tfm::pre_tokenizer_kind::gpt2);
  BOOST_TEST(all.merges().size() == 2u);
  BOOST_CHECK_THROW(tfm::bpe_trainer(tfm::bpe_train_options{.vocab_size = (std::size_t(1) << 32) + 1}),
                    tfm::invalid_argument);
}

BOOST_AUTO_TEST_CASE(fuzz_round_trip_and_cached_path_matches_reference) {
  const auto trained = train_on(sample_text(20000, 5) + fuzz_bytes(*std::make_unique<std::mt19937>(2), 20000), 1200,
                                tfm::pre_tokenizer_kind::gpt2);
  std::mt19937 rng(11);
  for (const auto kind : all_kinds) {
    // same vocabulary, each pre-tokenizer
    const tfm::bpe_tokenizer tok(
        [&] {
          std::vector<std::string> t;
          for (token_id i = 0; i < trained.vocab_size(); ++i) t.push_back(trained.token_bytes(i));
          return t;
        }(),
        std::vector<tfm::bpe_merge>(trained.merges().begin(), trained.merges().end()),
        std::vector<tfm::special_token>(trained.special_tokens().begin(), trained.special_tokens().end()), kind);
    tfm::pre_tokenizer pre(kind);
    for (int i = 0; i < 400; ++i) {
      const std::string s = fuzz_bytes(rng, rng() % 300);
      const auto ids = tok.encode_ordinary(s);
      BOOST_TEST_REQUIRE(tok.decode(ids) == s);
      std::vector<token_id> ref;
      pre.split(s, [&](std::string_view w) { tok.encode_word(w, ref); });
      BOOST_TEST_REQUIRE((ids == ref));
      // a second time: from the cache
      BOOST_TEST_REQUIRE((tok.encode_ordinary(s) == ids));
    }
  }
  // the heap merge (long pre-tokens) against the rescanning reference, on whole strings as words
  std::vector<token_id> a, b;
  for (int i = 0; i < 300; ++i) {
    const std::string s = i % 2 ? fuzz_bytes(rng, rng() % 2000) : sample_text(rng() % 300, unsigned(i));
    trained.merge_word_ref(s, a);
    trained.merge_word_heap(s, b);
    BOOST_TEST_REQUIRE((a == b), "string " << i);
  }
  // a long pre-token without spaces (took 80 s with the rescanning loop alone)
  std::string letters;
  for (int i = 0; i < 100000; ++i) letters += char('a' + rng() % 26);
  BOOST_TEST(trained.decode(trained.encode(letters)) == letters);
}

BOOST_AUTO_TEST_CASE(special_tokens_are_never_split) {
  const auto tok = train_on(sample_text(5000, 4), 700, tfm::pre_tokenizer_kind::gpt2,
                            {"<|endoftext|>", "<|user|>", "<|user|>x", "<pad>"});
  const token_id eot = tok.eot_id(), user = *tok.find_special("<|user|>"), userx = *tok.find_special("<|user|>x"),
                 pad = *tok.find_special("<pad>");
  BOOST_TEST(tok.vocab_size() == 700u);
  BOOST_TEST(eot == 696u);  // specials follow the merges, in the order given
  const std::string text = "<pad>the fox<|endoftext|><|endoftext|> dog<|user|>x<|user|> the<pad>";
  const auto ids = tok.encode(text);
  BOOST_TEST(tok.decode(ids) == text);
  std::vector<token_id> specials;
  for (auto id : ids)
    if (tok.is_special(id)) specials.push_back(id);
  BOOST_TEST((specials == std::vector<token_id>{pad, eot, eot, userx, user, pad}));
  BOOST_TEST(ids.front() == pad);
  BOOST_TEST(ids.back() == pad);
  // encode_ordinary treats them as text
  for (auto id : tok.encode_ordinary(text)) BOOST_TEST(!tok.is_special(id));
  BOOST_CHECK_THROW(tok.decode(std::vector<token_id>{700}), tfm::invalid_argument);
}

BOOST_AUTO_TEST_CASE(parallel_encoding_equals_serial) {
  const auto tok = train_on(sample_text(20000, 6), 1000, tfm::pre_tokenizer_kind::gpt2);
  std::mt19937 rng(3);
  std::string text;
  for (int d = 0; d < 40; ++d) {
    text += sample_text(800 + rng() % 800, unsigned(d) + 100);
    if (d % 7 == 3) text += fuzz_bytes(rng, 500);
    text += "<|endoftext|>";
  }
  const auto serial = tok.encode(text);
  for (int threads : {1, 2, 3, 5}) BOOST_TEST((tok.encode_parallel(text, threads) == serial), threads << " threads");
  const tfm::bpe_tokenizer copy = tok;  // copies start with empty caches and share nothing mutable
  BOOST_TEST((copy.encode_parallel(text, 4) == serial));
}

BOOST_AUTO_TEST_CASE(formats_round_trip) {
  temp_dir dir;
  for (const auto kind : all_kinds) {
    const std::string text = sample_text(4000, 8) + "\xFF\xC3(\x80";
    const auto tok = train_on(text, 500, kind, {"<|endoftext|>", "<sep>"});
    tfm::save(tok, dir.path / "t.tfm");
    tfm::save_hf_tokenizer_json(tok, dir.path / "tokenizer.json");
    const auto a = tfm::load(dir.path / "t.tfm");
    const auto b = tfm::load_hf_tokenizer_json(dir.path / "tokenizer.json");
    for (const auto* t : {&a, &b}) {
      BOOST_TEST(t->pre_kind() == kind);
      BOOST_TEST(t->vocab_size() == tok.vocab_size());
      for (token_id id = 0; id < tok.vocab_size(); ++id) {
        BOOST_TEST(t->token_bytes(id) == tok.token_bytes(id));
        BOOST_TEST(t->is_special(id) == tok.is_special(id));
      }
      BOOST_TEST((t->encode(text + "<sep>") == tok.encode(text + "<sep>")));
    }
    // the HF file has the layout other tools expect
    const auto j = nlohmann::json::parse(tfm::detail::read_text_file(dir.path / "tokenizer.json"));
    BOOST_TEST(j["model"]["type"] == "BPE");
    BOOST_TEST(j["model"]["vocab"]["\xC4\xA0"] == token_id(' '));
    BOOST_TEST(j["model"]["merges"].size() == tok.merges().size());
    BOOST_TEST(j["decoder"]["type"] == "ByteLevel");
    BOOST_TEST(j["added_tokens"].size() == 2u);
    BOOST_TEST(j["added_tokens"][0]["content"] == "<|endoftext|>");
  }
  // merges as [a, b] pairs (newer tokenizers versions) are read too
  const auto tok = train_on(sample_text(2000, 1), 300, tfm::pre_tokenizer_kind::gpt2);
  auto j = nlohmann::json::parse(tfm::to_hf_tokenizer_json(tok));
  for (auto& m : j["model"]["merges"]) {
    const std::string s = m.get<std::string>();
    m = nlohmann::json::array({s.substr(0, s.find(' ')), s.substr(s.find(' ') + 1)});
  }
  const auto c = tfm::from_hf_tokenizer_json(j.dump(), "pairs.json");
  BOOST_TEST((c.encode("the quick brown fox") == tok.encode("the quick brown fox")));
}

BOOST_AUTO_TEST_CASE(bad_files_give_errors_naming_the_file) {
  temp_dir dir;
  using io = tfm::tokenizer_io_error;
  using fmt = tfm::tokenizer_format_error;
  check_throws<io>([&] { tfm::load(dir.path / "nope.tfm"); }, {"nope.tfm", "cannot open"});
  check_throws<io>([&] { tfm::load_hf_vocab_dir(dir.path); }, {"vocab.json", "cannot open"});
  check_throws<io>([&] { tfm::load_hf_tokenizer_json(dir.path / "tokenizer.json"); }, {"tokenizer.json"});

  // a small valid HF directory to break piece by piece
  const auto tok = train_on(sample_text(2000, 2), 300, tfm::pre_tokenizer_kind::gpt2);
  nlohmann::json vocab = nlohmann::json::object();
  for (token_id id = 0; id < tok.vocab_size(); ++id)
    vocab[tok.is_special(id) ? tok.token_bytes(id) : tfm::bytes_to_token_text(tok.token_bytes(id))] = id;
  std::string merges = "#version: 0.2\n";
  for (const auto& m : tok.merges())
    merges += tfm::bytes_to_token_text(tok.token_bytes(m.left)) + " " + tfm::bytes_to_token_text(tok.token_bytes(m.right)) + "\n";
  dir.write("vocab.json", vocab.dump());
  dir.write("merges.txt", merges);
  dir.write("tokenizer_config.json", R"({"pre_tokenizer": "gpt-2", "special_tokens": {"<|endoftext|>": 299}})");
  const auto ok = tfm::load_hf_vocab_dir(dir.path);
  BOOST_TEST((ok.encode("the lazy dog<|endoftext|>") == tok.encode("the lazy dog<|endoftext|>")));

  check_throws<io>([&] { fs::remove(dir.path / "merges.txt"); tfm::load_hf_vocab_dir(dir.path); }, {"merges.txt", "cannot open"});
  dir.write("merges.txt", merges + "Ġzz qq\n");
  check_throws<fmt>([&] { tfm::load_hf_vocab_dir(dir.path); },
                    {"merges.txt:" + std::to_string(tok.merges().size() + 2), "unknown token 'Ġzz'"});
  dir.write("merges.txt", merges + "onlyone\n");
  check_throws<fmt>([&] { tfm::load_hf_vocab_dir(dir.path); }, {"merges.txt:", "two tokens"});
  dir.write("merges.txt", merges + "a z\n");  // both known, "az" is not a token
  check_throws<fmt>([&] { tfm::load_hf_vocab_dir(dir.path); }, {"merges.txt:", "not in", "vocab.json"});
  dir.write("merges.txt", merges);

  dir.write("vocab.json", "{\"a\": 1, ");
  check_throws<fmt>([&] { tfm::load_hf_vocab_dir(dir.path); }, {"vocab.json", "malformed JSON"});
  dir.write("vocab.json", "[1, 2]");
  check_throws<fmt>([&] { tfm::load_hf_vocab_dir(dir.path); }, {"vocab.json", "not a JSON object"});
  dir.write("vocab.json", R"({"a": "x"})");
  check_throws<fmt>([&] { tfm::load_hf_vocab_dir(dir.path); }, {"vocab.json", "non-integer id"});
  auto v2 = vocab;
  v2.erase("\xC4\x80");  // byte 0x00 ('Ā') missing: merges using it fail, or the bytes check does
  v2["\xE2\x82\xAC"] = 0;  // '€' is outside the byte mapping
  dir.write("vocab.json", v2.dump());
  check_throws<fmt>([&] { tfm::load_hf_vocab_dir(dir.path); }, {"vocab.json", "byte-to-unicode"});
  dir.write("vocab.json", vocab.dump());
  dir.write("tokenizer_config.json", R"({"pre_tokenizer": "bert"})");
  check_throws<fmt>([&] { tfm::load_hf_vocab_dir(dir.path); }, {"tokenizer_config.json", "bert"});
  dir.write("tokenizer_config.json", R"({"special_tokens": {"<|endoftext|>": 5000}})");
  check_throws<fmt>([&] { tfm::load_hf_vocab_dir(dir.path); }, {"vocab.json", "<|endoftext|>"});

  // tfm's own format
  const std::string good = tfm::to_tfm_format(tok);
  check_throws<fmt>([&] { tfm::from_tfm_format("tfm-bpe 2\n", "x.tfm"); }, {"x.tfm:1", "tfm-bpe 1"});
  check_throws<fmt>([&] { tfm::from_tfm_format(good.substr(0, good.size() / 2), "half.tfm"); }, {"half.tfm"});
  std::string bad = good;
  bad.replace(bad.find("merges "), 7, "merges 9999999 ");
  check_throws<fmt>([&] { tfm::from_tfm_format(bad, "m.tfm"); }, {"m.tfm"});
  bad = good;
  bad.replace(bad.find("\nt 61\n"), 6, "\nt zz\n");
  check_throws<fmt>([&] { tfm::from_tfm_format(bad, "h.tfm"); }, {"h.tfm:", "hex"});
  bad = good + "";
  bad.replace(bad.rfind('\n', bad.size() - 2) + 1, std::string::npos, "1 9999\n");
  check_throws<fmt>([&] { tfm::from_tfm_format(bad, "u.tfm"); }, {"u.tfm", "unknown"});

  // tokenizer.json
  check_throws<fmt>([&] { tfm::from_hf_tokenizer_json(R"({"model": {"type": "WordPiece", "vocab": {}}})", "w.json"); },
                    {"w.json", "WordPiece"});
  check_throws<fmt>([&] { tfm::from_hf_tokenizer_json(R"({"pre_tokenizer": {"type": "Whitespace"}, "model": {"type": "BPE", "vocab": {}, "merges": []}})", "p.json"); },
                    {"p.json", "Whitespace"});
  check_throws<fmt>([&] { tfm::from_hf_tokenizer_json("nope", "n.json"); }, {"n.json", "malformed JSON"});
}

// Counts and ids that would size an allocation (a vocabulary of 2^31 - 1 tokens is 64 GiB of
// strings) are checked against what the file holds first; ids that do not fit a token_id are
// refused rather than cut to 32 bits; JSON fields of the wrong type are reported with the file.
BOOST_AUTO_TEST_CASE(corrupt_counts_and_ids_are_refused_before_allocating) {
  temp_dir dir;
  using fmt = tfm::tokenizer_format_error;
  const auto tok = train_on(sample_text(2000, 3), 300, tfm::pre_tokenizer_kind::gpt2, {"<|endoftext|>"});
  const std::string good = tfm::to_tfm_format(tok);
  const auto replaced = [](std::string s, const std::string& from, const std::string& to) {
    return s.replace(s.find(from), from.size(), to);
  };
  const std::string tokens_line = "tokens " + std::to_string(tok.vocab_size());
  check_throws<fmt>([&] { tfm::from_tfm_format(replaced(good, tokens_line, "tokens 2147483647"), "n.tfm"); },
                    {"n.tfm:3", "'tokens 2147483647' but only"});
  const std::string merges_line = "merges " + std::to_string(tok.merges().size());
  check_throws<fmt>([&] { tfm::from_tfm_format(replaced(good, merges_line, "merges 18446744073709551615"), "m.tfm"); },
                    {"m.tfm:", "'merges 18446744073709551615' but only"});

  const auto j = nlohmann::json::parse(tfm::to_hf_tokenizer_json(tok));
  const auto hf_error = [&](auto edit, const std::vector<std::string>& needles) {
    auto k = j;
    edit(k);
    check_throws<fmt>([&] { tfm::from_hf_tokenizer_json(k.dump(), "t.json"); }, needles);
  };
  hf_error([](auto& k) { k["model"]["vocab"]["\xC4\xA0\xC4\xA0\xC4\xA0"] = 2147483647u; },
           {"t.json", "has id 2147483647 (too large"});
  hf_error([](auto& k) { k["added_tokens"][0]["id"] = 4294967296ull + 299; },  // 299 once cut to 32 bits
           {"t.json", "malformed added token"});
  hf_error([](auto& k) { k["added_tokens"][0]["id"] = 4294967295ull; }, {"t.json", "malformed added token"});
  hf_error([](auto& k) { k["pre_tokenizer"]["use_regex"] = "yes"; }, {"t.json", "wrong JSON type"});
  hf_error([](auto& k) { k["model"]["type"] = 5; }, {"t.json", "wrong JSON type"});

  nlohmann::json vocab = j["model"]["vocab"];
  std::string merges;
  for (const auto& m : j["model"]["merges"]) merges += m.get<std::string>() + "\n";
  dir.write("vocab.json", vocab.dump());
  dir.write("merges.txt", merges);
  dir.write("tokenizer_config.json", R"({"special_tokens": {"<|endoftext|>": 4294967595}})");  // 299 + 2^32
  check_throws<fmt>([&] { tfm::load_hf_vocab_dir(dir.path); }, {"tokenizer_config.json", "4294967595"});
  dir.write("tokenizer_config.json", R"({"added_tokens_decoder": {"4294967295": {"content": "<x>"}}})");
  check_throws<fmt>([&] { tfm::load_hf_vocab_dir(dir.path); }, {"vocab.json", "has id 4294967295 (too large"});
  fs::remove(dir.path / "tokenizer_config.json");

  // a directory where a file should be says so
  fs::create_directories(dir.path / "t.tfm");
  check_throws<tfm::tokenizer_io_error>([&] { tfm::load(dir.path / "t.tfm"); }, {"t.tfm", "is a directory"});
}

BOOST_AUTO_TEST_CASE(progress_bar_prints_plain_lines_when_not_a_terminal) {
  // Only checks that it runs; CTest's stderr is not a terminal, so these are plain lines.
  tfm::bpe_train_options o;
  o.vocab_size = 400;
  o.progress = true;
  tfm::bpe_trainer t(o);
  t.add_text(sample_text(3000, 12));
  BOOST_TEST(t.train().merges().size() == 143u);
}
