// Real vocabularies (GPT-2, StarCoder) against llama.cpp's tokenizer test vectors, and the
// round trips through tfm's and Hugging Face's formats. Reads ../shared/data/tokenizer/.
#define TFM_TEST_MODULE tokenizer_vocab
#include "support/test_main.hpp"
#include "support/shared_data.hpp"

#include <filesystem>
#include <sstream>

#include "tfm/tokenizer/tokenizer.hpp"

namespace {

struct test_case {
  std::string input;
  std::vector<tfm::token_id> expected;
};

// tests.inp: cases separated by lines "__ggml_vocab_test__" (the text is what lies between, less
// the newline before and after the separator line); tests.out: one line of ids per case.
std::vector<test_case> read_cases(const std::filesystem::path& dir) {
  const std::string inp = tfm::detail::read_text_file(dir / "tests.inp");
  const std::string out = tfm::detail::read_text_file(dir / "tests.out");
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  std::size_t b = 0;
  for (;;) {
    const auto e = inp.find(sep, b);
    if (e == std::string::npos) break;
    inputs.push_back(inp.substr(b, e - b));
    b = e + sep.size();
  }
  const auto lines = tfm::detail::split_lines(out);
  BOOST_REQUIRE_EQUAL(inputs.size(), lines.size());
  std::vector<test_case> cases;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    test_case c{inputs[i], {}};
    std::istringstream ls{std::string(lines[i])};
    tfm::token_id id;
    while (ls >> id) c.expected.push_back(id);
    cases.push_back(std::move(c));
  }
  return cases;
}

void check_vectors(const tfm::bpe_tokenizer& tok, const std::vector<test_case>& cases) {
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto ids = tok.encode(cases[i].input);
    BOOST_TEST(ids == cases[i].expected, "case " << i << " '" << cases[i].input << "'");
    BOOST_TEST(tok.decode(ids) == cases[i].input, "decode of case " << i);
  }
}

void check_vocab(const std::string& name) {
  const auto vocab = tfm::test::shared_data("tokenizer/" + name + "/vocab.json");
  if (!vocab) return;
  const auto dir = vocab->parent_path();
  const auto tok = tfm::load_hf_vocab_dir(dir);
  const auto cases = read_cases(dir);
  BOOST_TEST_MESSAGE(name << ": " << tok.vocab_size() << " tokens, " << tok.merges().size() << " merges, "
                          << cases.size() << " cases");
  check_vectors(tok, cases);

  // through tfm's format and through tokenizer.json: same vocabulary, same ids
  const auto tmp = std::filesystem::temp_directory_path() / ("tfm_test_vocab_" + name + std::to_string(::getpid()));
  std::filesystem::create_directories(tmp);
  tfm::save(tok, tmp / "tok.tfm");
  tfm::save_hf_tokenizer_json(tok, tmp / "tokenizer.json");
  const auto a = tfm::load(tmp / "tok.tfm");
  const auto b = tfm::load_hf_tokenizer_json(tmp / "tokenizer.json");
  std::filesystem::remove_all(tmp);
  for (const auto* t : {&a, &b}) {
    BOOST_TEST(t->vocab_size() == tok.vocab_size());
    BOOST_TEST(t->merges().size() == tok.merges().size());
    BOOST_TEST(t->special_tokens().size() == tok.special_tokens().size());
    BOOST_TEST(t->pre_kind() == tok.pre_kind());
    check_vectors(*t, cases);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(gpt2_vectors) { check_vocab("gpt2"); }
BOOST_AUTO_TEST_CASE(starcoder_vectors) { check_vocab("starcoder"); }

BOOST_AUTO_TEST_CASE(gpt2_special_tokens_and_corpus_round_trip) {
  const auto vocab = tfm::test::shared_data("tokenizer/gpt2/vocab.json");
  if (!vocab) return;
  const auto tok = tfm::load_hf_vocab_dir(vocab->parent_path());
  BOOST_TEST(tok.eot_id() == 50256u);
  const auto ids = tok.encode("Hello<|endoftext|> world");
  BOOST_TEST(ids == (std::vector<tfm::token_id>{15496, 50256, 995}), tfm::detail::concat(ids.size(), " ids"));
  // encode_ordinary does not recognise specials
  const auto ord = tok.encode_ordinary("<|endoftext|>");
  BOOST_TEST(ord.size() > 1u);
  BOOST_TEST(tok.decode(ord) == "<|endoftext|>");

  const auto corpus = tfm::test::shared_data("corpus/tinyshakespeare.txt");
  if (!corpus) return;
  const auto text = tfm::detail::read_text_file(*corpus);
  const auto ids1 = tok.encode(text);
  BOOST_TEST(tok.decode(ids1) == text);
  const auto ids2 = tok.encode_parallel(text, 3);
  BOOST_TEST((ids1 == ids2));
  BOOST_TEST_MESSAGE("tiny shakespeare: " << ids1.size() << " GPT-2 tokens");
}
