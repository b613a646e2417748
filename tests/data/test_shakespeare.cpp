// The pipeline over tiny Shakespeare split into pseudo-documents of 60 lines, written twice:
// every copy of the second half is an exact duplicate, and the report must say so.
#define TFM_TEST_MODULE data_shakespeare
#include "support/test_main.hpp"

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "data/text_gen.hpp"
#include "support/shared_data.hpp"
#include "tfm/data/pipeline.hpp"

using namespace tfm::data;

BOOST_AUTO_TEST_CASE(tiny_shakespeare) {
  const auto path = tfm::test::shared_data("corpus/tinyshakespeare.txt");
  if (!path) return;
  const auto lines = tfm::test::read_lines(*path);
  BOOST_TEST_REQUIRE(lines.size() > 1000u);
  tfm::test::temp_dir in, out;
  std::string jsonl;
  std::size_t docs = 0;
  for (std::size_t i = 0; i < lines.size(); i += 60, ++docs) {
    std::string d;
    for (std::size_t k = i; k < std::min(lines.size(), i + 60); ++k) d += lines[k] + "\n";
    jsonl += nlohmann::json{{"text", d}}.dump() + "\n";
  }
  in.write("a/part1.jsonl", jsonl);
  in.write("b/part2.jsonl", jsonl);
  pipeline_config cfg;
  cfg.show_progress = false;
  const auto rep = pipeline(cfg).run({in.path}, out.path / "out.jsonl", out.path / "report.json");
  BOOST_TEST_MESSAGE(rep.to_table());
  BOOST_TEST(rep.find("read")->docs_out == 2 * docs);
  const auto* ex = rep.find("exact_dedup");
  BOOST_TEST(ex->docs_in % 2 == 0u);
  BOOST_TEST(ex->docs_out == ex->docs_in / 2);
  // pseudo-documents of a play: most pass the default filters, few are near-duplicates
  BOOST_TEST(ex->docs_out >= docs * 8 / 10);
  BOOST_TEST(rep.find("near_dedup")->docs_out >= ex->docs_out * 95 / 100);
  std::set<std::string> texts;
  std::size_t rows = 0;
  for (const auto& l : tfm::test::read_lines(out.path / "out.jsonl")) {
    const auto j = nlohmann::json::parse(l);
    BOOST_TEST_REQUIRE(j["source"].get<std::string>().find("part1.jsonl") != std::string::npos);
    texts.insert(j["text"].get<std::string>());
    ++rows;
  }
  BOOST_TEST(texts.size() == rows);
  BOOST_TEST(rows == rep.stages.back().docs_out);
}
