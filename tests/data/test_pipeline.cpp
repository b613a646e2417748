// Tests of tfm/data/pipeline.hpp: a run over a small directory of good, duplicated,
// near-duplicated, filtered, empty, binary and invalid inputs; the report adds up.
#define TFM_TEST_MODULE data_pipeline
#include "support/test_main.hpp"

#include <fstream>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/text_gen.hpp"
#include "tfm/data/pipeline.hpp"

using namespace tfm::data;
using tfm::test::temp_dir;

namespace {

std::vector<nlohmann::json> read_jsonl(const std::filesystem::path& p) {
  std::vector<nlohmann::json> out;
  for (const auto& l : tfm::test::read_lines(p)) out.push_back(nlohmann::json::parse(l));
  return out;
}

std::string edit_words(std::string s, std::mt19937_64& rng, int edits) {
  for (int e = 0; e < edits; ++e) {
    std::size_t p = s.find(' ', rng() % s.size());
    if (p == std::string::npos || p + 1 >= s.size()) continue;
    s.insert(p + 1, "zzedit ");
  }
  return s;
}

}  // namespace

BOOST_AUTO_TEST_CASE(run_over_directory) {
  std::mt19937_64 rng(1);
  const auto vocab = tfm::test::random_vocab(rng, 4000);
  temp_dir in, out;
  const std::string good = tfm::test::prose(rng, vocab, 400) + "\nWrite to jane.doe@example.com or call 555-123-4567.";
  in.write("a_good.txt", good);
  in.write("b_dup.txt", good + "   \n\n");                     // exact duplicate after cleaning
  in.write("c_near.txt", edit_words(good, rng, 3));             // near duplicate
  in.write("d_short.txt", "Too short to keep, the end and that.");
  in.write("e_empty.txt", "");
  in.write("f_binary.txt", std::string("\x7f" "ELF\0\0\0\x01\x02", 9));
  in.write("g_invalid.txt", "\xFF\xFE\xFD only garbage \xC0\xC1");
  in.write("h.jsonl", nlohmann::json{{"text", tfm::test::prose(rng, vocab, 300)}}.dump() + "\n{broken\n" +
                          nlohmann::json{{"text", "caf" "e\xCC\x81  " + tfm::test::prose(rng, vocab, 200)}}.dump() + "\n");
  const auto output = out.path / "clean.jsonl";
  const auto report_path = out.path / "report.json";
  pipeline_config cfg;
  cfg.show_progress = false;
  pipeline p(cfg);
  const run_report rep = p.run({in.path}, output, report_path);
  BOOST_TEST_MESSAGE(rep.to_table());

  const auto rows = read_jsonl(output);
  BOOST_TEST_REQUIRE(rows.size() == 3u);  // a_good, and the two JSONL documents
  const std::string t0 = rows[0]["text"];
  BOOST_TEST(rows[0]["source"].get<std::string>().ends_with("a_good.txt"));
  BOOST_TEST(t0.find("<EMAIL>") != std::string::npos);
  BOOST_TEST(t0.find("<PHONE>") != std::string::npos);
  BOOST_TEST(t0.find("jane.doe") == std::string::npos);
  const std::string t2 = rows[2]["text"];
  BOOST_TEST(t2.starts_with("caf\xC3\xA9 "));  // NFC and collapsed spaces

  BOOST_TEST(rep.find("read")->counters.at("files_binary") == 1u);
  BOOST_TEST(rep.find("read")->removed.at("bad_json") == 1u);
  BOOST_TEST(rep.find("clean")->removed.at("empty") == 1u);
  BOOST_TEST(rep.find("clean")->counters.at("invalid_sequences") == 5u);
  BOOST_TEST(rep.find("quality")->removed.at("gopher_too_few_words") == 2u);  // d_short, g_invalid
  BOOST_TEST(rep.find("exact_dedup")->removed.at("duplicate") == 1u);
  BOOST_TEST(rep.find("near_dedup")->removed.at("near_duplicate") == 1u);
  BOOST_TEST(rep.find("pii")->counters.at("emails") == 1u);
  BOOST_TEST(rep.find("pii")->counters.at("phones") == 1u);
  // each stage's output is the next stage's input
  for (std::size_t i = 1; i < rep.stages.size(); ++i) {
    BOOST_TEST(rep.stages[i].docs_in == rep.stages[i - 1].docs_out, rep.stages[i].name);
    BOOST_TEST(rep.stages[i].bytes_in == rep.stages[i - 1].bytes_out, rep.stages[i].name);
  }
  for (const auto& s : rep.stages) {
    std::size_t removed = 0;
    for (const auto& [k, v] : s.removed) removed += v;
    BOOST_TEST(s.docs_in == s.docs_out + removed, s.name);
  }
  BOOST_TEST(rep.stages.back().docs_out == rows.size());
  // JSON report written, temp files gone
  std::ifstream rf(report_path);
  const auto rj = nlohmann::json::parse(rf);
  BOOST_TEST(rj["stages"].size() == rep.stages.size());
  for (const auto& e : std::filesystem::directory_iterator(out.path))
    BOOST_TEST(!e.path().string().ends_with(".tmp"), e.path());
  BOOST_TEST(rep.to_table().find("near_dedup") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(stages_switch_off) {
  temp_dir in, out;
  in.write("a.txt", "short a@b.com");
  in.write("b.txt", "short a@b.com");
  pipeline_config cfg;
  cfg.show_progress = false;
  cfg.quality = cfg.repetition = cfg.exact_dedup = cfg.near_dedup = cfg.scrub_pii = false;
  const auto rep = pipeline(cfg).run({in.path}, out.path / "o.jsonl");
  const auto rows = read_jsonl(out.path / "o.jsonl");
  BOOST_TEST_REQUIRE(rows.size() == 2u);
  BOOST_TEST(rows[1]["text"] == "short a@b.com");
  cfg.exact_dedup = cfg.scrub_pii = true;
  pipeline(cfg).run({in.path}, out.path / "o.jsonl");
  const auto rows2 = read_jsonl(out.path / "o.jsonl");
  BOOST_TEST_REQUIRE(rows2.size() == 1u);
  BOOST_TEST(rows2[0]["text"] == "short <EMAIL>");
}

BOOST_AUTO_TEST_CASE(line_dedup_stage) {
  std::mt19937_64 rng(2);
  const auto vocab = tfm::test::random_vocab(rng, 4000);
  temp_dir in, out;
  const std::string boiler = "\nThis page was generated by the site builder, all rights reserved.";
  in.write("a.txt", tfm::test::prose(rng, vocab, 100) + boiler);
  in.write("b.txt", tfm::test::prose(rng, vocab, 100) + boiler);
  pipeline_config cfg;
  cfg.show_progress = false;
  cfg.line_dedup = true;
  const auto rep = pipeline(cfg).run({in.path}, out.path / "o.jsonl");
  const auto rows = read_jsonl(out.path / "o.jsonl");
  BOOST_TEST_REQUIRE(rows.size() == 2u);
  BOOST_TEST(rows[0]["text"].get<std::string>().find("site builder") != std::string::npos);
  BOOST_TEST(rows[1]["text"].get<std::string>().find("site builder") == std::string::npos);
  BOOST_TEST(rep.find("line_dedup")->counters.at("lines_dropped") == 1u);
}
