// Token shards (tfm/data/shard.hpp): round trips in both id widths, and every check the reader
// makes (truncation, magic, version, size, checksum, id range) with the file named in the error.
#define TFM_TEST_MODULE shard
#include "support/test_main.hpp"

#include <filesystem>
#include <fstream>
#include <random>

#include "tfm/data/shard.hpp"

namespace fs = std::filesystem;

namespace {

struct temp_dir {
  fs::path path = fs::temp_directory_path() / ("tfm_test_shard_" + std::to_string(::getpid()));
  temp_dir() { fs::create_directories(path); }
  ~temp_dir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void spit(const fs::path& p, const std::string& s) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(s.data(), std::streamsize(s.size()));
}

template <class F>
void check_throws(F&& f, const std::vector<std::string>& needles) {
  try {
    f();
    BOOST_ERROR("expected tfm::shard_error");
  } catch (const tfm::shard_error& e) {
    const std::string msg = e.what();
    for (const auto& n : needles) BOOST_TEST(msg.find(n) != std::string::npos, "'" << msg << "' lacks '" << n << "'");
  }
}

// Writes docs to `p` and returns the expected id stream.
std::vector<std::uint32_t> write_docs(const fs::path& p, std::uint32_t vocab, std::uint32_t eot,
                                      const std::vector<std::vector<std::uint32_t>>& docs) {
  tfm::shard_writer w(p, vocab, eot);
  std::vector<std::uint32_t> all;
  for (const auto& d : docs) {
    w.add_document(d, d.size() * 3);
    all.push_back(eot);
    all.insert(all.end(), d.begin(), d.end());
  }
  BOOST_TEST(!fs::exists(p));  // published only by finish()
  w.finish();
  return all;
}

}  // namespace

BOOST_AUTO_TEST_CASE(round_trip_uint16_and_uint32) {
  temp_dir dir;
  std::mt19937 rng(7);
  for (const std::uint32_t vocab : {50257u, 65536u, 65537u, 200000u}) {
    std::vector<std::vector<std::uint32_t>> docs(5);
    for (auto& d : docs) {
      d.resize(rng() % 3000);
      for (auto& id : d) id = rng() % vocab;
    }
    docs.push_back({});  // an empty document still gets its separator
    auto p = dir.path / "s";
    p += std::to_string(vocab);  // (not "s" + to_string(): GCC 12 warns falsely with -Wrestrict)
    p += ".bin";
    const auto expect = write_docs(p, vocab, vocab - 1, docs);
    BOOST_TEST(fs::file_size(p) == 64 + expect.size() * (vocab <= 65536 ? 2 : 4));
    tfm::token_shard s(p);
    BOOST_TEST(s.header().token_bytes == (vocab <= 65536 ? 2u : 4u));
    BOOST_TEST(s.size() == expect.size());
    BOOST_TEST(s.header().document_count == docs.size());
    BOOST_TEST(s.vocab_size() == vocab);
    BOOST_TEST(s.eot_id() == vocab - 1);
    std::vector<std::uint32_t> got(s.size());
    s.read(0, std::span<std::uint32_t>(got));
    BOOST_TEST((got == expect));
    std::vector<std::int32_t> part(10);
    s.read(5, std::span<std::int32_t>(part));
    for (int i = 0; i < 10; ++i) BOOST_TEST(std::uint32_t(part[i]) == expect[std::size_t(5 + i)]);
    BOOST_CHECK_THROW(s.read(s.size() - 5, std::span<std::int32_t>(part)), tfm::shard_error);
    tfm::token_shard moved = std::move(s);
    BOOST_TEST(moved[0] == vocab - 1);
  }
  // write_shard: a ready id stream
  const auto p = dir.path / "w.bin";
  const std::vector<std::uint32_t> ids{9, 1, 2, 9, 3};
  tfm::write_shard(p, ids, 10, 9, 17);
  tfm::token_shard s(p);
  BOOST_TEST(s.size() == 5u);
  BOOST_TEST(s.header().document_count == 2u);
  BOOST_TEST(s.header().source_bytes == 17u);
  for (std::size_t i = 0; i < ids.size(); ++i) BOOST_TEST(s[i] == ids[i]);
}

BOOST_AUTO_TEST_CASE(rejects_bad_files_naming_them) {
  temp_dir dir;
  const auto good = dir.path / "good.bin";
  write_docs(good, 1000, 0, {{1, 2, 3, 4, 5}, {6, 7}});
  const std::string bytes = slurp(good);
  const auto bad = dir.path / "bad.bin";

  check_throws([&] { tfm::token_shard s(dir.path / "missing.bin"); }, {"missing.bin", "cannot open"});

  spit(bad, bytes.substr(0, 40));
  check_throws([&] { tfm::token_shard s(bad); }, {"bad.bin", "truncated", "header"});

  spit(bad, bytes.substr(0, bytes.size() - 3));
  check_throws([&] { tfm::token_shard s(bad); }, {"bad.bin", "truncated"});

  spit(bad, bytes + "xx");
  check_throws([&] { tfm::token_shard s(bad); }, {"bad.bin", "size mismatch"});

  std::string b = bytes;
  b[0] = 'X';
  spit(bad, b);
  check_throws([&] { tfm::token_shard s(bad); }, {"bad.bin", "wrong magic"});

  b = bytes;
  b[8] = 2;  // version
  spit(bad, b);
  check_throws([&] { tfm::token_shard s(bad); }, {"bad.bin", "version 2"});

  b = bytes;
  b[64 + 4] ^= 1;  // a payload bit: the checksum catches it
  spit(bad, b);
  check_throws([&] { tfm::token_shard s(bad); }, {"bad.bin", "checksum"});

  // an id >= vocab size with a correct checksum
  b = bytes;
  const std::uint16_t big = 1000;
  std::memcpy(b.data() + 64 + 2 * 3, &big, 2);
  const std::uint64_t sum = XXH64(b.data() + 64, b.size() - 64, 0);
  std::memcpy(b.data() + 48, &sum, 8);
  spit(bad, b);
  check_throws([&] { tfm::token_shard s(bad); }, {"bad.bin", "token 3 is 1000", "vocab size 1000"});
  tfm::token_shard unchecked(bad, /*verify=*/false);  // opt-out of the payload scan
  BOOST_TEST(unchecked[3] == 1000u);

  // the writer refuses ids outside the vocabulary, and leaves no file behind
  const auto never = dir.path / "never.bin";
  {
    tfm::shard_writer w(never, 100, 0);
    const std::vector<std::uint32_t> d{5, 100};
    check_throws([&] { w.add_document(d, 2); }, {"never.bin", "token id 100"});
  }
  BOOST_TEST(!fs::exists(never));
  BOOST_TEST(std::distance(fs::directory_iterator(dir.path), fs::directory_iterator{}) == 2);
  check_throws([&] { tfm::shard_writer w(never, 100, 100); }, {"never.bin", "eot id 100"});
}

// The fields the payload checksum does not cover are checked against what the writer guarantees,
// so a corrupted header is refused rather than read with a wrong end-of-text id or document count.
BOOST_AUTO_TEST_CASE(rejects_corrupt_header_fields) {
  temp_dir dir;
  const auto good = dir.path / "fields.bin";
  write_docs(good, 1000, 7, {{1, 2, 3}, {4, 5}});
  const std::string bytes = slurp(good);
  const auto bad = dir.path / "bad_fields.bin";
  const auto with = [&](std::size_t offset, auto value) {
    std::string b = bytes;
    std::memcpy(b.data() + offset, &value, sizeof value);
    spit(bad, b);
  };

  with(44, std::uint32_t{1000});  // eot_id == vocab_size
  check_throws([&] { tfm::token_shard s(bad); }, {"bad_fields.bin", "end-of-text id 1000", "vocab size 1000"});
  with(56, std::uint64_t{1} << 40);  // reserved
  check_throws([&] { tfm::token_shard s(bad, false); }, {"bad_fields.bin", "reserved header field"});
  with(32, std::uint64_t{8});  // document_count > token_count (7)
  check_throws([&] { tfm::token_shard s(bad); }, {"bad_fields.bin", "8 documents", "only 7 tokens"});
  with(44, std::uint32_t{5});  // another id below the vocabulary: the first token is not it
  check_throws([&] { tfm::token_shard s(bad); }, {"bad_fields.bin", "first token is 7", "end-of-text id 5"});
  check_throws([&] { tfm::token_shard s(bad, false); }, {"bad_fields.bin", "first token is 7"});

  // A directory is named as one (it opens, but cannot be mapped).
  check_throws([&] { tfm::token_shard s(dir.path); }, {dir.path.string(), "is a directory"});
}
