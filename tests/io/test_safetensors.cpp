#define TFM_TEST_MODULE test_safetensors
#include "support/test_main.hpp"
#include "support/temp_files.hpp"

#include <chrono>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "tfm/core/dtype.hpp"
#include "tfm/core/error.hpp"
#include "tfm/io/safetensors.hpp"

namespace fs = std::filesystem;
using namespace tfm;
using namespace tfm::io;

namespace {

using tfm::test::temp_dir;

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream os(p, std::ios::binary | std::ios::trunc);
  os.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le64(std::uint64_t n) {
  std::string s(8, '\0');
  std::memcpy(s.data(), &n, 8);
  return s;
}

// A file from a header (its true length) and `data_len` data bytes.
void write_raw(const fs::path& p, const std::string& header, std::size_t data_len) {
  write_bytes(p, le64(header.size()) + header + std::string(data_len, '\x01'));
}

// Opening `p` must throw a safetensors_error (a tfm::error) naming the file and saying `what`.
void expect_open_error(const fs::path& p, const std::string& what) {
  try {
    safetensors_file f(p);
    BOOST_ERROR("no error opening " << p << ", expected: " << what);
  } catch (const safetensors_error& e) {
    const std::string m = e.what();
    BOOST_TEST_MESSAGE(m);
    BOOST_TEST(m.find(p.filename().string()) != std::string::npos, m);
    BOOST_TEST(m.find(what) != std::string::npos, m << "  (expected: " << what << ")");
    BOOST_TEST(dynamic_cast<const tfm::error*>(&e) != nullptr);
  }
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const tfm::error& e) {
    return e.what();
  }
  return "<no error>";
}

}  // namespace

BOOST_AUTO_TEST_CASE(dtype_table) {
  BOOST_TEST(std::size(st_all_dtypes) == 12u);
  for (st_dtype t : st_all_dtypes) {
    BOOST_TEST((st_dtype_from_name(st_dtype_name(t)) == t));
  }
  BOOST_TEST(st_dtype_size(st_dtype::F64) == 8u);
  BOOST_TEST(st_dtype_size(st_dtype::F32) == 4u);
  BOOST_TEST(st_dtype_size(st_dtype::F16) == 2u);
  BOOST_TEST(st_dtype_size(st_dtype::BF16) == 2u);
  BOOST_TEST(st_dtype_size(st_dtype::F8_E4M3) == 1u);
  BOOST_TEST(st_dtype_size(st_dtype::F8_E5M2) == 1u);
  BOOST_TEST(st_dtype_size(st_dtype::I64) == 8u);
  BOOST_TEST(st_dtype_size(st_dtype::I32) == 4u);
  BOOST_TEST(st_dtype_size(st_dtype::I16) == 2u);
  BOOST_TEST(st_dtype_size(st_dtype::I8) == 1u);
  BOOST_TEST(st_dtype_size(st_dtype::U8) == 1u);
  BOOST_TEST(st_dtype_size(st_dtype::BOOL) == 1u);
  BOOST_TEST(st_dtype_name(st_dtype::F8_E4M3) == "F8_E4M3");
  BOOST_TEST(!st_dtype_from_name("F4").has_value());
  BOOST_TEST(!st_dtype_from_name("f32").has_value());
}

BOOST_AUTO_TEST_CASE(round_trip_all_dtypes) {
  temp_dir tmp;
  // Values exact in every floating format (e4m3 included).
  const std::vector<double> vals = {0.0, 1.0, -2.0, 0.5, 1.5, -0.25, 3.0, 448.0 / 64};
  const std::vector<std::int64_t> shape = {2, 4};

  safetensors_writer w;
  w.add("f64", vals, shape);
  std::vector<float> f32(vals.begin(), vals.end());
  w.add("f32", f32, shape);
  std::vector<half> f16;
  std::vector<bfloat16> bf16;
  std::vector<float8_e4m3> e4m3;
  std::vector<float8_e5m2> e5m2;
  for (double v : vals) {
    f16.emplace_back(v);
    bf16.emplace_back(v);
    e4m3.emplace_back(v);
    e5m2.emplace_back(v);
  }
  w.add("f16", f16, shape);
  w.add("bf16", bf16, shape);
  w.add("f8_e4m3", e4m3, shape);
  w.add("f8_e5m2", e5m2, shape);
  const std::vector<std::int64_t> i64 = {0, -1, 1, (std::int64_t(1) << 40), -(std::int64_t(1) << 50), 7, 8, 9};
  const std::vector<std::int32_t> i32 = {0, -1, 1, 2147483647, -2147483647 - 1, -100, 60, 9};
  const std::vector<std::int16_t> i16 = {0, -1, 1, 32767, -32768, 5, 6, 7};
  const std::vector<std::int8_t> i8 = {0, -1, 1, 127, -128, 5, 6, 7};
  const std::vector<std::uint8_t> u8 = {0, 1, 2, 255, 128, 5, 6, 7};
  const std::uint8_t bools[] = {0, 1, 1, 0, 1, 0, 0, 1};
  w.add("i64", i64, shape);
  w.add("i32", i32, shape);
  w.add("i16", i16, {8});
  w.add("i8", i8, {2, 2, 2});
  w.add("u8", u8, shape);
  w.add("bool", st_dtype::BOOL, shape, bools);
  const float scalar = 42.0f;
  w.add("scalar", std::span<const float>(&scalar, 1), {});
  w.add("empty", st_dtype::F32, {0, 3}, nullptr);
  BOOST_TEST(w.size() == 14u);
  BOOST_TEST(w.header().size() % 8 == 0u);

  const fs::path p = tmp / "all.safetensors";
  w.write(p);
  BOOST_TEST(fs::exists(p));
  BOOST_TEST(!fs::exists(tmp / "all.safetensors.tmp"));

  safetensors_file f(p);
  BOOST_TEST(f.header_size() % 8 == 0u);
  const std::vector<std::string> expect_names = {"f64", "f32", "f16",  "bf16", "f8_e4m3", "f8_e5m2", "i64",
                                                 "i32", "i16", "i8",   "u8",   "bool",    "scalar",  "empty"};
  BOOST_TEST(f.names() == expect_names, boost::test_tools::per_element());
  BOOST_TEST(f.metadata().empty());
  BOOST_TEST(f.has("f16"));
  BOOST_TEST(!f.has("f17"));

  const char* floats[] = {"f64", "f32", "f16", "bf16", "f8_e4m3", "f8_e5m2"};
  for (const char* n : floats) {
    BOOST_TEST_CONTEXT(n) {
      const auto& ti = f.info(n);
      BOOST_TEST(ti.shape == shape, boost::test_tools::per_element());
      BOOST_TEST(ti.numel() == 8);
      BOOST_TEST(ti.data.size() == 8 * st_dtype_size(ti.dtype));
      const auto d = f.read_as<double>(n);
      const auto s = f.read_as<float>(n);
      BOOST_TEST(d == vals, boost::test_tools::per_element());
      BOOST_TEST(s == f32, boost::test_tools::per_element());
    }
  }
  BOOST_TEST((f.info("f16").dtype == st_dtype::F16));
  BOOST_TEST((f.info("bf16").dtype == st_dtype::BF16));
  // Exact reads in the stored type.
  const auto h = f.read_as<half>("f16");
  for (std::size_t i = 0; i < h.size(); ++i) BOOST_TEST(h[i].bits() == f16[i].bits());
  const auto b = f.read_as<bfloat16>("bf16");
  for (std::size_t i = 0; i < b.size(); ++i) BOOST_TEST(b[i].bits() == bf16[i].bits());

  BOOST_TEST(f.read_as<std::int64_t>("i64") == i64, boost::test_tools::per_element());
  BOOST_TEST(f.read_as<std::int32_t>("i32") == i32, boost::test_tools::per_element());
  const auto i32_as_64 = f.read_as<std::int64_t>("i32");
  BOOST_TEST(std::vector<std::int64_t>(i32.begin(), i32.end()) == i32_as_64, boost::test_tools::per_element());
  BOOST_TEST(f.read_as<std::int16_t>("i16") == i16, boost::test_tools::per_element());
  BOOST_TEST(f.read_as<std::int8_t>("i8") == i8, boost::test_tools::per_element());
  BOOST_TEST(f.read_as<std::uint8_t>("u8") == u8, boost::test_tools::per_element());
  BOOST_TEST((f.info("i8").shape == std::vector<std::int64_t>{2, 2, 2}));
  const auto bl = f.read_as<std::int32_t>("bool");
  for (std::size_t i = 0; i < 8; ++i) BOOST_TEST(bl[i] == bools[i]);
  BOOST_TEST((f.info("bool").dtype == st_dtype::BOOL));

  BOOST_TEST(f.info("scalar").shape.empty());
  BOOST_TEST(f.read_as<float>("scalar") == std::vector<float>{42.0f}, boost::test_tools::per_element());
  BOOST_TEST(f.info("empty").numel() == 0);
  BOOST_TEST(f.read_as<float>("empty").empty());

  // Byte spans are the exact bytes written.
  BOOST_TEST(std::memcmp(f.info("i64").data.data(), i64.data(), 64) == 0);
}

BOOST_AUTO_TEST_CASE(metadata_round_trip_and_overwrite) {
  temp_dir tmp;
  const fs::path p = tmp / "meta.safetensors";
  write_bytes(p, "old contents");
  safetensors_writer w;
  w.set_metadata("format", "pt");
  w.set_metadata("vocab", "61");
  w.set_metadata("quote\"back\\slash", "line\nbreak\ttab \x01 caf\xc3\xa9 \xf0\x9f\x98\x80");
  w.set_metadata("vocab", "62");  // replaces
  const std::vector<float> x = {1, 2, 3};
  w.add("x", x, {3});
  w.write(p);
  safetensors_file f(p);
  BOOST_TEST(f.metadata().size() == 3u);
  BOOST_TEST(f.metadata().at("format") == "pt");
  BOOST_TEST(f.metadata().at("vocab") == "62");
  BOOST_TEST(f.metadata().at("quote\"back\\slash") == "line\nbreak\ttab \x01 caf\xc3\xa9 \xf0\x9f\x98\x80");
  BOOST_TEST(f.read_as<float>("x") == x, boost::test_tools::per_element());
  BOOST_TEST(!fs::exists(tmp / "meta.safetensors.tmp"));
}

BOOST_AUTO_TEST_CASE(hand_written_header) {
  temp_dir tmp;
  // Escapes (\u with a surrogate pair), whitespace, out-of-order offsets, no padding.
  const std::string header =
      "{ \"b\\u00e9\\ud83d\\ude00\" : {\"data_offsets\":[8, 16], \"shape\":[ 2 ],\"dtype\":\"I32\"},\n"
      "  \"a\\/\\n\": {\"dtype\": \"U8\", \"shape\": [8], \"data_offsets\": [0, 8]},\n"
      "  \"__metadata__\": {\"k\": \"v\\\"\\u0041\"} }";
  std::string data;
  for (int i = 0; i < 8; ++i) data += static_cast<char>(i);
  const std::int32_t ints[2] = {-5, 123456};
  data.append(reinterpret_cast<const char*>(ints), 8);
  const fs::path p = tmp / "hand.safetensors";
  write_bytes(p, le64(header.size()) + header + data);
  safetensors_file f(p);
  const std::string bname = "b\xc3\xa9\xf0\x9f\x98\x80";
  const std::vector<std::string> names = {"a/\n", bname};
  BOOST_TEST(f.names() == names, boost::test_tools::per_element());
  BOOST_TEST(f.metadata().at("k") == "v\"A");
  BOOST_TEST(f.read_as<std::int32_t>(bname) == (std::vector<std::int32_t>{-5, 123456}),
             boost::test_tools::per_element());
  BOOST_TEST(f.read_as<std::uint8_t>("a/\n")[7] == 7);
  BOOST_TEST(f.data_offset() == 8 + header.size());
}

BOOST_AUTO_TEST_CASE(error_missing_and_short_files) {
  temp_dir tmp;
  expect_open_error(tmp / "nope.safetensors", "does not exist");
  write_bytes(tmp / "short.safetensors", "abc");
  expect_open_error(tmp / "short.safetensors", "shorter than the 8-byte header length");
  write_bytes(tmp / "empty.safetensors", "");
  expect_open_error(tmp / "empty.safetensors", "file is 0 bytes");
  write_bytes(tmp / "long_header.safetensors", le64(100) + "{}");
  expect_open_error(tmp / "long_header.safetensors", "header length 100 goes beyond the end of the file");
  write_bytes(tmp / "huge_header.safetensors", le64(~std::uint64_t(0)) + "{}");
  expect_open_error(tmp / "huge_header.safetensors", "goes beyond the end of the file");
}

BOOST_AUTO_TEST_CASE(error_malformed_json) {
  temp_dir tmp;
  struct bad {
    const char* header;
    const char* what;
  };
  const bad cases[] = {
      {"{\"a\" {}}", "malformed header JSON at byte 13 (header byte 5): expected ':'"},
      {"{\"a\": {\"dtype\": \"F32\",}", "header byte 22"},
      {"{\"a\": ", "unexpected end of header"},
      {"{\"a\"", "expected ':' but the header ended"},
      {"{\"a\": \"unterminated}", "unterminated string"},
      {"{\"a\": 1.5}", "only integers"},
      {"{\"a\": \"\\q\"}", "invalid escape"},
      {"{\"a\": \"\\ud800x\"}", "surrogate"},
      {"{} x", "trailing characters"},
      {"{\"a\": 1, \"a\": 2}", "duplicate key"},
      {"{\"a\": 99999999999999999999}", "64-bit range"},
      {"[1, 2]", "header must be a JSON object"},
      {"", "unexpected end of header"},
      {"{\"a\": tru}", "unexpected character 't'"},
      {"{\"\xff\": 1}", "header byte 2): invalid UTF-8 in string"},
      {"{\"a\xc3\": 1}", "invalid UTF-8 in string"},         // a lead byte without its continuation
      {"{\"\xed\xa0\x80\": 1}", "invalid UTF-8 in string"},  // an encoded surrogate
      {"{\"\xc0\xaf\": 1}", "invalid UTF-8 in string"},      // an overlong '/'
  };
  int i = 0;
  for (const bad& c : cases) {
    const fs::path p = tmp / ("json" + std::to_string(i++) + ".safetensors");
    write_raw(p, c.header, 0);
    expect_open_error(p, c.what);
  }
  // Any "malformed" message carries a byte position.
  write_raw(tmp / "pos.safetensors", "{\"x\": [1, 2,, 3]}", 0);
  expect_open_error(tmp / "pos.safetensors", "at byte 20 (header byte 12)");
}

BOOST_AUTO_TEST_CASE(error_overlong_array) {
  // A shape of 1025 dims is refused by the parser before it builds 1025 values (arrays are only
  // shapes and offset pairs; 1024 elements parse)
  temp_dir tmp;
  std::string ones = "1";
  for (int i = 1; i < 1025; ++i) ones += ",1";
  write_raw(tmp / "long.safetensors",
            "{\"x\": {\"dtype\": \"F32\", \"shape\": [" + ones + "], \"data_offsets\": [0, 4]}}", 4);
  expect_open_error(tmp / "long.safetensors", "array of more than 1024 elements");
  ones = "1";
  for (int i = 1; i < 1024; ++i) ones += ",1";
  write_raw(tmp / "ok.safetensors",
            "{\"x\": {\"dtype\": \"F32\", \"shape\": [" + ones + "], \"data_offsets\": [0, 4]}}", 4);
  tfm::io::safetensors_file f(tmp / "ok.safetensors");
  BOOST_TEST(f.info("x").shape.size() == 1024u);
}

BOOST_AUTO_TEST_CASE(error_bad_entries) {
  temp_dir tmp;
  struct bad {
    const char* name;
    const char* header;
    std::size_t data;
    const char* what;
  };
  const bad cases[] = {
      {"dtype", R"({"w": {"dtype": "F4", "shape": [2], "data_offsets": [0, 1]}})", 1, "unknown dtype \"F4\""},
      {"size", R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]}})", 24,
       "data_offsets [0, 20] span 20 bytes but shape [2, 3] of F32 needs 24"},
      {"range", R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [8, 32]}})", 24,
       "out of range: the data section has 24 bytes"},
      {"overlap",
       R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},)"
       R"( "b": {"dtype": "I32", "shape": [2], "data_offsets": [12, 20]}})",
       20, "tensors 'a' [0, 16) and 'b' [12, 20) overlap"},
      {"same", R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},)"
               R"( "b": {"dtype": "I8", "shape": [4], "data_offsets": [0, 4]}})",
       4, "overlap"},
      {"reversed", R"({"w": {"dtype": "U8", "shape": [0], "data_offsets": [4, 0]}})", 4, "end before they begin"},
      {"negdim", R"({"w": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 0]}})", 0, "non-negative integers"},
      {"fields", R"({"w": {"dtype": "U8", "shape": [1]}})", 1, "needs \"dtype\", \"shape\" and \"data_offsets\""},
      {"meta", R"({"__metadata__": {"k": 1}})", 0, "metadata value for \"k\" must be a string"},
      {"entry", R"({"w": 3})", 0, "tensor 'w': entry must be an object"},
  };
  for (const bad& c : cases) {
    BOOST_TEST_CONTEXT(c.name) {
      const fs::path p = tmp / (std::string(c.name) + ".safetensors");
      write_raw(p, c.header, c.data);
      expect_open_error(p, c.what);
    }
  }
  // Adjacent tensors and empty tensors inside others are fine.
  write_raw(tmp / "ok.safetensors",
            R"({"a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},)"
            R"( "e": {"dtype": "F64", "shape": [0], "data_offsets": [2, 2]},)"
            R"( "b": {"dtype": "U8", "shape": [4], "data_offsets": [4, 8]}})",
            8);
  safetensors_file ok(tmp / "ok.safetensors");
  BOOST_TEST(ok.names() == (std::vector<std::string>{"a", "e", "b"}), boost::test_tools::per_element());
}

// A shape with a zero dim has no bytes, but its element count must still fit an int64 at every
// step of the product: numel() forms it left to right ([2^31, 2^32, 0] overflowed it).
BOOST_AUTO_TEST_CASE(error_element_count_overflow) {
  temp_dir tmp;
  write_raw(tmp / "count.safetensors",
            R"({"w": {"dtype": "U8", "shape": [2147483648, 4294967296, 0], "data_offsets": [0, 0]}})", 0);
  expect_open_error(tmp / "count.safetensors", "tensor 'w': shape size overflows");
  write_raw(tmp / "bytes.safetensors",
            R"({"w": {"dtype": "F64", "shape": [4611686018427387904, 4], "data_offsets": [0, 0]}})", 0);
  expect_open_error(tmp / "bytes.safetensors", "tensor 'w': shape size overflows");
  // The largest counts that fit are still fine with a zero dim.
  write_raw(tmp / "zero.safetensors",
            R"({"w": {"dtype": "F64", "shape": [9223372036854775807, 0], "data_offsets": [0, 0]}})", 0);
  safetensors_file f(tmp / "zero.safetensors");
  BOOST_TEST(f.info("w").numel() == 0);
  BOOST_TEST(f.read_as<double>("w").empty());
}

// Duplicate keys are found with a set: a header of 200,000 tensors parses in about a second
// (a pairwise scan took minutes).
BOOST_AUTO_TEST_CASE(many_tensors_parse_fast) {
  temp_dir tmp;
  constexpr int n = 200000;
  std::string h = "{";
  for (int i = 0; i < n; ++i) {
    if (i) h += ',';
    h += "\"t" + std::to_string(i) + R"(": {"dtype": "U8", "shape": [1], "data_offsets": [)" + std::to_string(i) +
         ", " + std::to_string(i + 1) + "]}";
  }
  h += '}';
  write_raw(tmp / "many.safetensors", h, n);
  const auto t0 = std::chrono::steady_clock::now();
  safetensors_file f(tmp / "many.safetensors");
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  BOOST_TEST(f.size() == std::size_t(n));
  BOOST_TEST(s < 20.0, "parsing " << n << " tensors took " << s << " s");
  // The same header with one name repeated at the end is still refused.
  h.back() = ',';
  h += R"("t7": {"dtype": "U8", "shape": [0], "data_offsets": [0, 0]}})";
  write_raw(tmp / "dup.safetensors", h, n);
  expect_open_error(tmp / "dup.safetensors", "duplicate key \"t7\"");
}

BOOST_AUTO_TEST_CASE(error_missing_tensor_and_type_mismatch) {
  temp_dir tmp;
  safetensors_writer w;
  for (int i = 0; i < 20; ++i) {
    const std::vector<std::int32_t> v = {i};
    std::string name = "t";  // (not "t" + to_string: GCC 12 warns -Wrestrict on that)
    name += std::to_string(i);
    w.add(name, v, {1});
  }
  const std::vector<std::int64_t> big = {1, 2};
  w.add("big", big, {2});
  const std::vector<float> fl = {1.0f};
  w.add("fl", fl, {1});
  const fs::path p = tmp / "many.safetensors";
  w.write(p);
  safetensors_file f(p);

  const std::string miss = error_of([&] { (void)f.info("nope"); });
  BOOST_TEST_MESSAGE(miss);
  BOOST_TEST(miss.find("many.safetensors") != std::string::npos);
  BOOST_TEST(miss.find("no tensor named 'nope'") != std::string::npos);
  BOOST_TEST(miss.find("file has 22 tensors: t0, t1") != std::string::npos);
  BOOST_TEST(miss.find("(14 more)") != std::string::npos);
  BOOST_TEST(miss.find("t19") == std::string::npos);
  BOOST_TEST(miss.size() < 300u);
  BOOST_TEST(error_of([&] { (void)f.read_as<float>("nope"); }).find("no tensor named") != std::string::npos);

  const std::string m1 = error_of([&] { (void)f.read_as<float>("t3"); });
  BOOST_TEST_MESSAGE(m1);
  BOOST_TEST(m1.find("many.safetensors") != std::string::npos);
  BOOST_TEST(m1.find("tensor 't3' has dtype I32, which read_as<float> cannot convert") != std::string::npos, m1);
  BOOST_TEST(error_of([&] { (void)f.read_as<std::int32_t>("big"); }).find("dtype I64, which read_as<int32_t>") !=
             std::string::npos);
  BOOST_TEST(error_of([&] { (void)f.read_as<std::int64_t>("fl"); }).find("dtype F32") != std::string::npos);
  BOOST_TEST(error_of([&] { (void)f.read_as<half>("t1"); }).find("dtype I32, which read_as<F16>") !=
             std::string::npos);
  BOOST_TEST(error_of([&] { (void)f.read_as<std::int16_t>("t1"); }).find("read_as<I16>") != std::string::npos);
  // Narrow floats round from wider floating dtypes.
  BOOST_TEST(static_cast<float>(f.read_as<half>("fl").at(0)) == 1.0f);
  BOOST_TEST(static_cast<float>(f.read_as<bfloat16>("fl").at(0)) == 1.0f);
  BOOST_TEST(st_dtype_is_float(st_dtype::BF16));
  BOOST_TEST(!st_dtype_is_float(st_dtype::BOOL));
  BOOST_TEST(f.read_as<std::int64_t>("big") == big, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(writer_errors) {
  temp_dir tmp;
  safetensors_writer w;
  const std::vector<float> v = {1, 2, 3, 4};
  w.add("a", v, {2, 2});
  BOOST_TEST(error_of([&] { w.add("a", v, {4}); }).find("already added") != std::string::npos);
  BOOST_TEST(error_of([&] { w.add("b", v, {3}); }).find("does not match 4 values") != std::string::npos);
  BOOST_TEST(error_of([&] { w.add("__metadata__", v, {4}); }).find("reserved") != std::string::npos);
  BOOST_TEST(error_of([&] { w.add("", v, {4}); }).find("empty tensor name") != std::string::npos);
  BOOST_TEST(error_of([&] { w.add("c", st_dtype::F32, {-1}, v.data()); }).find("negative") != std::string::npos);
  BOOST_TEST(error_of([&] { w.add("d", st_dtype::F32, {1}, nullptr); }).find("null data") != std::string::npos);
  BOOST_TEST(w.size() == 1u);
  const std::string m = error_of([&] { w.write(tmp / "no_such_dir" / "x.safetensors"); });
  BOOST_TEST(m.find("cannot create") != std::string::npos, m);
}
