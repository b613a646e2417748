// Tests of tfm/data/reader.hpp: .txt (whole file and separated), .jsonl, directories, empty,
// binary and invalid files, the document size bound.
#define TFM_TEST_MODULE data_reader
#include "support/test_main.hpp"

#include <string>
#include <vector>

#include "data/text_gen.hpp"
#include "tfm/data/reader.hpp"

using namespace tfm::data;
using tfm::test::temp_dir;

namespace {
std::vector<document> read_all(corpus_reader& r) {
  std::vector<document> out;
  r.for_each([&](document&& d) { out.push_back(std::move(d)); });
  return out;
}
}  // namespace

BOOST_AUTO_TEST_CASE(directory_walk_and_formats) {
  temp_dir t;
  t.write("b/one.txt", "first document\n");
  t.write("a.jsonl", "{\"text\": \"json one\"}\n\n{\"text\": \"json \\u00e9\", \"id\": 2}\nnot json\n{\"other\": 1}\n[1,2]\n");
  t.write("c.md", "ignored: wrong extension");
  t.write("empty.txt", "");
  t.write("bin.txt", std::string("abc\0def", 7));
  corpus_reader r({t.path});
  const auto docs = read_all(r);
  BOOST_TEST_REQUIRE(docs.size() == 4u);  // json one, json é, empty, first document
  BOOST_TEST(docs[0].text == "json one");
  BOOST_TEST(docs[0].source.ends_with("a.jsonl:1"));
  BOOST_TEST(docs[1].text == "json \xC3\xA9");
  BOOST_TEST(docs[2].text == "first document\n");
  BOOST_TEST(docs[3].text == "");
  BOOST_TEST(r.stats().bad_json == 3u);
  BOOST_TEST(r.stats().files_binary == 1u);
  BOOST_TEST(r.stats().files == 4u);
  BOOST_TEST(r.stats().bytes_scanned == r.total_bytes());
}

BOOST_AUTO_TEST_CASE(separator) {
  temp_dir t;
  const auto p = t.write("fortunes", "one\nline two\n%\n%\nthree\r\n% \nfour");
  reader_config c;
  c.txt_separator = "%";
  corpus_reader r({p}, c);
  const auto docs = read_all(r);
  BOOST_TEST_REQUIRE(docs.size() == 3u);
  BOOST_TEST(docs[0].text == "one\nline two\n");
  BOOST_TEST(docs[1].text == "three\r\n");
  BOOST_TEST(docs[2].text == "four\n");
}

BOOST_AUTO_TEST_CASE(invalid_utf8_in_jsonl_is_repaired) {
  temp_dir t;
  const auto p = t.write("x.jsonl", "{\"text\": \"bad \xFF byte\"}\n");
  corpus_reader r({p});
  const auto docs = read_all(r);
  BOOST_TEST_REQUIRE(docs.size() == 1u);
  BOOST_TEST(docs[0].text == "bad \xEF\xBF\xBD byte");
  BOOST_TEST(r.stats().repaired_json_lines == 1u);
}

BOOST_AUTO_TEST_CASE(size_bound) {
  temp_dir t;
  t.write("big.txt", std::string(5000, 'x'));
  t.write("big.jsonl", "{\"text\": \"" + std::string(5000, 'y') + "\"}\n{\"text\": \"small\"}\n");
  t.write("sep.txt", std::string(3000, 'z') + "\n" + std::string(3000, 'z') + "\n%\nok\n");
  reader_config c;
  c.max_document_bytes = 4096;
  c.txt_separator = "%";
  corpus_reader r({t.path}, c);
  const auto docs = read_all(r);
  // big.jsonl line 1, big.txt (one 5000-byte line), the first piece of sep.txt: too large
  BOOST_TEST_REQUIRE(docs.size() == 2u);
  BOOST_TEST(docs[0].text == "small");
  BOOST_TEST(docs[1].text == "ok\n");
  BOOST_TEST(r.stats().too_large == 3u);
  // whole-file mode: the file size decides
  reader_config whole;
  whole.max_document_bytes = 4096;
  corpus_reader w({t.path / "big.txt"}, whole);
  BOOST_TEST(read_all(w).empty());
  BOOST_TEST(w.stats().too_large == 1u);
}

BOOST_AUTO_TEST_CASE(missing_input_throws) {
  BOOST_CHECK_THROW(corpus_reader({"/nonexistent/tfm/path"}), tfm::invalid_argument);
}
