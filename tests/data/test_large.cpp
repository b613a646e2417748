// Large inputs (label `slow`): a 100 MB single line, as a .txt document and as a JSONL field,
// goes through the pipeline without a crash and within the memory the bound allows.
#define TFM_TEST_MODULE data_large
#include "support/test_main.hpp"

#include <fstream>
#include <random>
#include <string>

#include "data/text_gen.hpp"
#include "tfm/data/pipeline.hpp"

using namespace tfm::data;

namespace {
// ~`bytes` of random words on one line, with stop words, mails and numbers mixed in.
std::string big_line(std::size_t bytes) {
  std::mt19937_64 rng(5);
  const auto vocab = tfm::test::random_vocab(rng, 20000);
  std::string s;
  s.reserve(bytes + 64);
  std::size_t i = 0;
  while (s.size() < bytes) {
    if (!s.empty()) s += ' ';
    ++i;
    if (i % 1000 == 0) s += "someone@example.org";
    else if (i % 1777 == 0) s += "\xFF";
    else if (i % 100 == 0) s += "the cafe\xCC\x81 and";
    else s += vocab[rng() % vocab.size()];
  }
  return s;
}
}  // namespace

BOOST_AUTO_TEST_CASE(hundred_megabyte_line) {
  tfm::test::temp_dir in, out;
  {
    const std::string line = big_line(100u << 20);
    std::ofstream(in.path / "big.txt", std::ios::binary) << line;
    std::ofstream(in.path / "big.jsonl", std::ios::binary) << "{\"text\": \"" << line << "\"}\n";
  }
  pipeline_config cfg;
  cfg.show_progress = false;
  auto rep = pipeline(cfg).run({in.path}, out.path / "o.jsonl");
  BOOST_TEST_MESSAGE(rep.to_table());
  BOOST_TEST(rep.find("read")->docs_out == 2u);
  BOOST_TEST(rep.find("quality")->removed.at("gopher_too_many_words") == 2u);
  BOOST_TEST(rep.stages.back().docs_out == 0u);
  BOOST_TEST(rep.find("clean")->counters.at("invalid_sequences") > 0u);

  // with the word limit off, the whole document goes through every stage
  cfg.gopher_quality.max_words = std::nullopt;
  cfg.repetition = false;
  rep = pipeline(cfg).run({in.path / "big.txt"}, out.path / "o2.jsonl");
  BOOST_TEST_MESSAGE(rep.to_table());
  BOOST_TEST(rep.stages.back().docs_out == 1u);
  BOOST_TEST(rep.find("pii")->counters.at("emails") > 1000u);

  // with a smaller bound, both are skipped unread
  cfg.read.max_document_bytes = 1 << 20;
  rep = pipeline(cfg).run({in.path}, out.path / "o3.jsonl");
  BOOST_TEST(rep.find("read")->removed.at("too_large") == 2u);
}
