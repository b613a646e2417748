#define TFM_TEST_MODULE train_instruction
#include "support/test_main.hpp"
#include "support/temp_files.hpp"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "tfm/core/error.hpp"
#include "tfm/train/instruction.hpp"

namespace fs = std::filesystem;
using namespace tfm::train;
using overflow = instruction_options::overflow;
using ids = std::vector<std::int32_t>;

namespace {

constexpr int ign = instruction_ignore;
constexpr std::uint32_t eot = 256;

using tfm::test::temp_dir;

// Byte-level encoding: every UTF-8 byte is its own id, 256 is end-of-text.
std::vector<std::uint32_t> bytes(std::string_view s) {
  std::vector<std::uint32_t> v;
  for (char c : s) v.push_back(static_cast<unsigned char>(c));
  return v;
}

instruction_options opts(int context, overflow on = overflow::truncate, bool prepend = true) {
  instruction_options o{context, eot, 257};
  o.prepend_eot = prepend;
  o.on_overflow = on;
  return o;
}

std::string line(std::string_view prompt, std::string_view response) {
  return "{\"prompt\": \"" + std::string(prompt) + "\", \"response\": \"" + std::string(response) + "\"}\n";
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const instruction_error& e) {
    return e.what();
  } catch (const std::exception& e) {
    return std::string("<wrong exception type> ") + e.what();
  }
  return "<no error>";
}

// Loading `p` must fail with a message naming the file, the line (when line > 0) and `what`.
void expect_load_error(const fs::path& p, int lineno, const std::string& what,
                       instruction_dataset::encoder enc = bytes) {
  const std::string m = error_of([&] { instruction_dataset d(p, enc, opts(64)); });
  BOOST_TEST_MESSAGE(m);
  BOOST_TEST(m.find(p.string()) != std::string::npos, m);
  if (lineno > 0) BOOST_TEST(m.find(p.string() + ":" + std::to_string(lineno) + ":") != std::string::npos, m);
  BOOST_TEST(m.find(what) != std::string::npos, m << "  (expected: " << what << ")");
}

}  // namespace

BOOST_AUTO_TEST_CASE(prompt_masked_response_supervised) {
  temp_dir t;
  // A blank line between examples is skipped.
  const auto p = t.write("a.jsonl", line("ab", "c") + "\n  \n" + line("", "xy"));
  instruction_dataset d(p, bytes, opts(16));
  BOOST_TEST(d.size() == 2u);
  BOOST_TEST(d.skipped() == 0u);
  // ids = [eot a b c eot]: the leading eot and the prompt are context, "c" and eot are targets.
  BOOST_TEST(d[0].tokens == (ids{256, 'a', 'b', 'c'}), boost::test_tools::per_element());
  BOOST_TEST(d[0].targets == (ids{ign, ign, 'c', 256}), boost::test_tools::per_element());
  // An empty prompt: the eot alone predicts the response.
  BOOST_TEST(d[1].tokens == (ids{256, 'x', 'y'}), boost::test_tools::per_element());
  BOOST_TEST(d[1].targets == (ids{'x', 'y', 256}), boost::test_tools::per_element());
  BOOST_TEST(d.supervised_tokens() == 2 + 3);
  BOOST_CHECK_THROW(d[2], instruction_error);
}

BOOST_AUTO_TEST_CASE(no_prepended_eot) {
  temp_dir t;
  const auto p = t.write("a.jsonl", line("ab", "c"));
  instruction_dataset d(p, bytes, opts(16, overflow::truncate, false));
  BOOST_TEST(d[0].tokens == (ids{'a', 'b', 'c'}), boost::test_tools::per_element());
  BOOST_TEST(d[0].targets == (ids{ign, 'c', 256}), boost::test_tools::per_element());
  BOOST_TEST(d.supervised_tokens() == 2);
}

BOOST_AUTO_TEST_CASE(unicode_and_escapes) {
  temp_dir t;
  // "é" is two UTF-8 bytes; \n in JSON is one byte after decoding.
  const auto p = t.write("a.jsonl", line("\xc3\xa9", "\\n"));
  instruction_dataset d(p, bytes, opts(16));
  BOOST_TEST(d[0].tokens == (ids{256, 0xc3, 0xa9, '\n'}), boost::test_tools::per_element());
  BOOST_TEST(d[0].targets == (ids{ign, ign, '\n', 256}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(overflow_truncate) {
  temp_dir t;
  const auto p = t.write("a.jsonl",
                         line("ab", "wxyz")      // 8 ids: cut to the first 5
                         + line("abcd", "xyz")   // no response id among the first 5: dropped
                         + line("abc", "xy")     // exactly one response id survives
                         + line("a", "bc"));     // 5 ids: fits exactly
  instruction_dataset d(p, bytes, opts(4));
  BOOST_TEST(d.size() == 3u);
  BOOST_TEST(d.skipped() == 1u);
  BOOST_TEST(d.truncated() == 2u);
  BOOST_TEST(d[0].tokens == (ids{256, 'a', 'b', 'w'}), boost::test_tools::per_element());
  BOOST_TEST(d[0].targets == (ids{ign, ign, 'w', 'x'}), boost::test_tools::per_element());
  BOOST_TEST(d[1].tokens == (ids{256, 'a', 'b', 'c'}), boost::test_tools::per_element());
  BOOST_TEST(d[1].targets == (ids{ign, ign, ign, 'x'}), boost::test_tools::per_element());
  BOOST_TEST(d[2].tokens == (ids{256, 'a', 'b', 'c'}), boost::test_tools::per_element());
  BOOST_TEST(d[2].targets == (ids{ign, 'b', 'c', 256}), boost::test_tools::per_element());
  BOOST_TEST(d.supervised_tokens() == 2 + 1 + 3);
}

BOOST_AUTO_TEST_CASE(overflow_skip_and_error) {
  temp_dir t;
  const auto p = t.write("a.jsonl", line("a", "bc") + line("ab", "wxyz") + line("a", "b"));
  instruction_dataset d(p, bytes, opts(4, overflow::skip));
  BOOST_TEST(d.size() == 2u);
  BOOST_TEST(d.skipped() == 1u);
  BOOST_TEST(d[1].targets == (ids{ign, 'b', 256}), boost::test_tools::per_element());

  const std::string m = error_of([&] { instruction_dataset e(p, bytes, opts(4, overflow::error)); });
  BOOST_TEST(m.find(p.string() + ":2:") != std::string::npos, m);
  BOOST_TEST(m.find("exceed context 4") != std::string::npos, m);

  // Every example dropped: nothing to train on.
  const auto q = t.write("b.jsonl", line("abcdef", "x"));
  const std::string m2 = error_of([&] { instruction_dataset e(q, bytes, opts(4)); });
  BOOST_TEST(m2.find("no examples") != std::string::npos, m2);
  BOOST_TEST(m2.find("1 skipped") != std::string::npos, m2);
}

BOOST_AUTO_TEST_CASE(batch_right_padded) {
  temp_dir t;
  const auto p = t.write("a.jsonl", line("ab", "c") + line("", "x"));
  instruction_dataset d(p, bytes, opts(8));
  const std::vector<std::size_t> idx{1, 0, 1};
  constexpr int T = 5;
  std::vector<std::int32_t> tok(idx.size() * T, -1), tgt(idx.size() * T, -1);  // (B, T)
  d.batch(idx, T, tok, tgt, 0);
  BOOST_TEST(tok == (ids{256, 'x', 0, 0, 0, 256, 'a', 'b', 'c', 0, 256, 'x', 0, 0, 0}),
             boost::test_tools::per_element());
  BOOST_TEST(tgt == (ids{'x', 256, ign, ign, ign, ign, ign, 'c', 256, ign, 'x', 256, ign, ign, ign}),
             boost::test_tools::per_element());

  // T shorter than an example cuts it.
  std::vector<std::int32_t> tok2(2), tgt2(2);
  d.batch(std::vector<std::size_t>{0}, 2, tok2, tgt2, 0);
  BOOST_TEST(tok2 == (ids{256, 'a'}), boost::test_tools::per_element());
  BOOST_TEST(tgt2 == (ids{ign, ign}), boost::test_tools::per_element());

  // Wrong sizes are reported with both sizes.
  std::vector<std::int32_t> small(7);
  const std::string m = error_of([&] { d.batch(idx, T, small, tgt, 0); });
  BOOST_TEST(m.find("15") != std::string::npos, m);
  BOOST_TEST(m.find("7") != std::string::npos, m);
  BOOST_CHECK_THROW(d.batch(idx, 9, tok, tgt, 0), instruction_error);    // T > context
  BOOST_CHECK_THROW(d.batch(idx, T, tok, tgt, 257), instruction_error);  // pad id outside the vocabulary
  BOOST_CHECK_THROW(d.batch(std::vector<std::size_t>{2}, 2, tok2, tgt2, 0), instruction_error);
}

BOOST_AUTO_TEST_CASE(epoch_order_is_deterministic_permutation) {
  temp_dir t;
  std::string text;
  for (int i = 0; i < 50; ++i) text += line("p", std::to_string(i));
  instruction_dataset d(t.write("a.jsonl", text), bytes, opts(16));
  BOOST_TEST(d.size() == 50u);

  const auto a = d.epoch_order(7, 0);
  std::vector<std::size_t> sorted = a, iota(50);
  std::sort(sorted.begin(), sorted.end());
  std::iota(iota.begin(), iota.end(), std::size_t{0});
  BOOST_TEST(sorted == iota, boost::test_tools::per_element());
  BOOST_TEST(a != iota);
  BOOST_TEST(d.epoch_order(7, 0) == a, boost::test_tools::per_element());
  BOOST_TEST(d.epoch_order(7, 1) != a);
  BOOST_TEST(d.epoch_order(8, 0) != a);

  // Pinned values (computed independently in Python): the order must not depend on the platform
  // or standard library.
  const std::vector<std::size_t> head(a.begin(), a.begin() + 8);
  std::string got;
  for (auto v : head) got += std::to_string(v) + " ";
  BOOST_TEST_MESSAGE("epoch_order(7, 0) head: " << got);
  BOOST_TEST(head == (std::vector<std::size_t>{14, 39, 0, 45, 29, 7, 1, 25}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(errors_name_file_and_line) {
  temp_dir t;
  const std::string good = line("a", "b");
  expect_load_error(t.write("json.jsonl", good + "\n" + "{\"prompt\": \"a\", \"response\": }\n"), 3, "not valid JSON");
  expect_load_error(t.write("array.jsonl", "[1, 2]\n"), 1, "expected a JSON object");
  expect_load_error(t.write("missing.jsonl", good + "{\"prompt\": \"a\"}\n"), 2, "missing \"response\"");
  expect_load_error(t.write("missing_p.jsonl", "{\"response\": \"a\"}\n"), 1, "missing \"prompt\"");
  expect_load_error(t.write("type.jsonl", good + good + "{\"prompt\": 3, \"response\": \"b\"}\n"), 3,
                    "\"prompt\" must be a string");
  expect_load_error(t.write("type_r.jsonl", "{\"prompt\": \"a\", \"response\": null}\n"), 1,
                    "\"response\" must be a string");
  expect_load_error(t.write("utf8.jsonl", good + line("a\xff", "b")), 2, "invalid UTF-8");
  expect_load_error(t.write("utf8_r.jsonl", line("a", "\xc3(")), 1, "invalid UTF-8");
  expect_load_error(t.write("vocab.jsonl", good), 1, "id 999",
                    [](std::string_view) { return std::vector<std::uint32_t>{1, 999}; });
  expect_load_error(t.write("empty_r.jsonl", good + line("a", "")), 2, "empty response");
  expect_load_error(t / "does_not_exist.jsonl", 0, "cannot open");
  expect_load_error(t.path, 0, "error reading");  // a directory opens but cannot be read
  expect_load_error(t.write("empty.jsonl", ""), 0, "no examples");
  expect_load_error(t.write("blank.jsonl", "\n \n"), 0, "no examples");
}

// nlohmann reports a number beyond a double (1e999) as out_of_range, not parse_error: it too is
// a bad line, named with its file and line, not an exception from the JSON library.
BOOST_AUTO_TEST_CASE(number_overflow_names_file_and_line) {
  temp_dir t;
  const std::string good = line("a", "b");
  expect_load_error(t.write("big.jsonl", good + "{\"prompt\": \"a\", \"response\": \"b\", \"n\": 1e999}\n"), 2,
                    "not valid JSON");
  expect_load_error(t.write("neg.jsonl", "{\"n\": -1e999, \"prompt\": \"a\", \"response\": \"b\"}\n"), 1,
                    "number overflow");
}

BOOST_AUTO_TEST_CASE(bad_options) {
  temp_dir t;
  const auto p = t.write("a.jsonl", line("a", "b"));
  BOOST_CHECK_THROW(instruction_dataset(p, bytes, opts(0)), instruction_error);
  BOOST_CHECK_THROW(instruction_dataset(p, bytes, (instruction_options{8, 300, 257})), instruction_error);
  BOOST_CHECK_THROW(instruction_dataset(p, nullptr, opts(8)), instruction_error);
}
