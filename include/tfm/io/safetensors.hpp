// tfm/io/safetensors.hpp — reading and writing the safetensors format.
// A file is: an 8-byte little-endian header length N, N bytes of JSON, then the tensor data.
// The JSON maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into
// the data section) and may hold "__metadata__", a map of strings to strings.
// The reader loads the whole file into memory and validates every entry on open; the writer
// copies the tensors it is given and writes the file atomically (temp file, fsync, rename).
// No third-party dependencies: the small JSON parser below handles exactly what headers use.
#pragma once
#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <fcntl.h>
#include <unistd.h>
#define TFM_IO_POSIX 1
#else
#define TFM_IO_POSIX 0
#endif

#include "tfm/core/dtype.hpp"
#include "tfm/core/error.hpp"
#include "tfm/data/detail/utf8.hpp"

namespace tfm::io {

static_assert(std::endian::native == std::endian::little,
              "tfm::io::safetensors assumes a little-endian host");

// ---------------------------------------------------------------------------------------------
// Element types
// ---------------------------------------------------------------------------------------------
enum class st_dtype { F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, BOOL };

inline constexpr st_dtype st_all_dtypes[] = {
    st_dtype::F64, st_dtype::F32, st_dtype::F16, st_dtype::BF16, st_dtype::F8_E4M3, st_dtype::F8_E5M2,
    st_dtype::I64, st_dtype::I32, st_dtype::I16, st_dtype::I8,   st_dtype::U8,      st_dtype::BOOL};

// Bytes per element.
constexpr std::size_t st_dtype_size(st_dtype t) noexcept {
  switch (t) {
    case st_dtype::F64:
    case st_dtype::I64: return 8;
    case st_dtype::F32:
    case st_dtype::I32: return 4;
    case st_dtype::F16:
    case st_dtype::BF16:
    case st_dtype::I16: return 2;
    case st_dtype::F8_E4M3:
    case st_dtype::F8_E5M2:
    case st_dtype::I8:
    case st_dtype::U8:
    case st_dtype::BOOL: return 1;
  }
  return 0;
}

// The name the format uses ("F32", "BF16", "F8_E4M3", ...).
constexpr std::string_view st_dtype_name(st_dtype t) noexcept {
  switch (t) {
    case st_dtype::F64: return "F64";
    case st_dtype::F32: return "F32";
    case st_dtype::F16: return "F16";
    case st_dtype::BF16: return "BF16";
    case st_dtype::F8_E4M3: return "F8_E4M3";
    case st_dtype::F8_E5M2: return "F8_E5M2";
    case st_dtype::I64: return "I64";
    case st_dtype::I32: return "I32";
    case st_dtype::I16: return "I16";
    case st_dtype::I8: return "I8";
    case st_dtype::U8: return "U8";
    case st_dtype::BOOL: return "BOOL";
  }
  return "?";
}

constexpr std::optional<st_dtype> st_dtype_from_name(std::string_view s) noexcept {
  for (st_dtype t : st_all_dtypes)
    if (st_dtype_name(t) == s) return t;
  return std::nullopt;
}

constexpr bool st_dtype_is_float(st_dtype t) noexcept {
  return t == st_dtype::F64 || t == st_dtype::F32 || t == st_dtype::F16 || t == st_dtype::BF16 ||
         t == st_dtype::F8_E4M3 || t == st_dtype::F8_E5M2;
}

inline std::ostream& operator<<(std::ostream& os, st_dtype t) { return os << st_dtype_name(t); }

// The st_dtype that stores C++ type T exactly (for the typed writer overloads).
template <class T>
inline constexpr bool st_has_dtype_v =
    std::is_same_v<T, double> || std::is_same_v<T, float> || std::is_same_v<T, half> ||
    std::is_same_v<T, bfloat16> || std::is_same_v<T, float8_e4m3> || std::is_same_v<T, float8_e5m2> ||
    std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::int32_t> || std::is_same_v<T, std::int16_t> ||
    std::is_same_v<T, std::int8_t> || std::is_same_v<T, std::uint8_t> || std::is_same_v<T, bool>;

template <class T>
  requires st_has_dtype_v<T>
constexpr st_dtype st_dtype_of() noexcept {
  if constexpr (std::is_same_v<T, double>) return st_dtype::F64;
  else if constexpr (std::is_same_v<T, float>) return st_dtype::F32;
  else if constexpr (std::is_same_v<T, half>) return st_dtype::F16;
  else if constexpr (std::is_same_v<T, bfloat16>) return st_dtype::BF16;
  else if constexpr (std::is_same_v<T, float8_e4m3>) return st_dtype::F8_E4M3;
  else if constexpr (std::is_same_v<T, float8_e5m2>) return st_dtype::F8_E5M2;
  else if constexpr (std::is_same_v<T, std::int64_t>) return st_dtype::I64;
  else if constexpr (std::is_same_v<T, std::int32_t>) return st_dtype::I32;
  else if constexpr (std::is_same_v<T, std::int16_t>) return st_dtype::I16;
  else if constexpr (std::is_same_v<T, std::int8_t>) return st_dtype::I8;
  else if constexpr (std::is_same_v<T, std::uint8_t>) return st_dtype::U8;
  else return st_dtype::BOOL;
}

// Everything the reader and writer throw: the message starts with "safetensors: <file>: ".
class safetensors_error : public tfm::invalid_argument {
 public:
  using tfm::invalid_argument::invalid_argument;
};

namespace detail {

// ---------------------------------------------------------------------------------------------
// Minimal JSON: objects (key order kept), arrays, strings with all escapes, integers, and the
// literals true/false/null. Fractions and exponents are rejected: headers never use them; so is
// ill-formed UTF-8 in strings (the format's header is UTF-8).
// ---------------------------------------------------------------------------------------------
struct json_value {
  enum class kind { null, boolean, integer, string, array, object };
  kind k = kind::null;
  bool b = false;
  std::int64_t i = 0;
  std::string s;
  std::vector<json_value> arr;  // array elements, or object values (keys in `keys`)
  std::vector<std::string> keys;
  std::size_t pos = 0;  // where the value starts in the text

  static constexpr std::string_view kind_name(kind k) noexcept {
    switch (k) {
      case kind::null: return "null";
      case kind::boolean: return "a boolean";
      case kind::integer: return "an integer";
      case kind::string: return "a string";
      case kind::array: return "an array";
      case kind::object: return "an object";
    }
    return "?";
  }
};

class json_parser {
 public:
  static constexpr std::size_t max_array_elements = 1024;
  // `where` prefixes messages; `base` is added to positions (the text's offset in the file).
  json_parser(std::string_view text, std::string where, std::size_t base)
      : t_(text), where_(std::move(where)), base_(base) {}

  json_value parse_document() {
    skip_ws();
    json_value v = parse_value(0);
    skip_ws();
    if (p_ != t_.size()) fail("unexpected trailing characters after the top-level value");
    return v;
  }

 private:
  static constexpr int max_depth = 64;

  [[noreturn]] void fail(std::string_view what) const { fail_at(p_, what); }
  [[noreturn]] void fail_at(std::size_t at, std::string_view what) const {
    throw safetensors_error(tfm::detail::concat(where_, "malformed header JSON at byte ", base_ + at,
                                                " (header byte ", at, "): ", what));
  }

  void skip_ws() {
    while (p_ < t_.size() && (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r')) ++p_;
  }

  char peek() const {
    if (p_ >= t_.size()) fail("unexpected end of header");
    return t_[p_];
  }

  void expect(char c) {
    if (p_ >= t_.size()) fail(tfm::detail::concat("expected '", c, "' but the header ended"));
    if (t_[p_] != c) fail(tfm::detail::concat("expected '", c, "', found '", t_[p_], "'"));
    ++p_;
  }

  json_value parse_value(int depth) {
    if (depth > max_depth) fail("nesting too deep");
    json_value v;
    v.pos = p_;
    const char c = peek();
    if (c == '{') {
      v.k = json_value::kind::object;
      ++p_;
      skip_ws();
      if (peek() == '}') {
        ++p_;
        return v;
      }
      // A set, not a scan of `keys`: a header of 100k tensors must not take 10^10 comparisons.
      std::unordered_set<std::string> seen;
      for (;;) {
        skip_ws();
        if (peek() != '"') fail("expected a string key");
        const std::size_t key_pos = p_;
        std::string key = parse_string();
        if (!seen.insert(key).second) fail_at(key_pos, tfm::detail::concat("duplicate key \"", key, "\""));
        skip_ws();
        expect(':');
        skip_ws();
        v.keys.push_back(std::move(key));
        v.arr.push_back(parse_value(depth + 1));
        skip_ws();
        if (peek() == ',') {
          ++p_;
          continue;
        }
        if (peek() == '}') {
          ++p_;
          return v;
        }
        fail(tfm::detail::concat("expected ',' or '}' in object, found '", t_[p_], "'"));
      }
    }
    if (c == '[') {
      v.k = json_value::kind::array;
      ++p_;
      skip_ws();
      if (peek() == ']') {
        ++p_;
        return v;
      }
      for (;;) {
        skip_ws();
        // Arrays hold a shape or a pair of offsets: a long one is corruption, and each element
        // costs about 40 times its text in memory (a 20 MB header of zeros took 1.8 GB).
        if (v.arr.size() == max_array_elements)
          fail(tfm::detail::concat("array of more than ", max_array_elements,
                                   " elements (a shape or data_offsets never has that many)"));
        v.arr.push_back(parse_value(depth + 1));
        skip_ws();
        if (peek() == ',') {
          ++p_;
          continue;
        }
        if (peek() == ']') {
          ++p_;
          return v;
        }
        fail(tfm::detail::concat("expected ',' or ']' in array, found '", t_[p_], "'"));
      }
    }
    if (c == '"') {
      v.k = json_value::kind::string;
      v.s = parse_string();
      return v;
    }
    if (c == '-' || (c >= '0' && c <= '9')) {
      v.k = json_value::kind::integer;
      v.i = parse_integer();
      return v;
    }
    if (literal("true")) {
      v.k = json_value::kind::boolean;
      v.b = true;
      return v;
    }
    if (literal("false")) {
      v.k = json_value::kind::boolean;
      return v;
    }
    if (literal("null")) return v;
    fail(tfm::detail::concat("unexpected character '", c, "'"));
  }

  bool literal(std::string_view word) {
    if (t_.substr(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  std::int64_t parse_integer() {
    const std::size_t start = p_;
    bool neg = false;
    if (t_[p_] == '-') {
      neg = true;
      ++p_;
    }
    if (p_ >= t_.size() || t_[p_] < '0' || t_[p_] > '9') fail("expected a digit");
    if (t_[p_] == '0' && p_ + 1 < t_.size() && t_[p_ + 1] >= '0' && t_[p_ + 1] <= '9')
      fail("leading zeros are not allowed");
    // Accumulate as a negative number: its range includes INT64_MIN.
    std::int64_t v = 0;
    constexpr std::int64_t lo = std::numeric_limits<std::int64_t>::min();
    while (p_ < t_.size() && t_[p_] >= '0' && t_[p_] <= '9') {
      const int d = t_[p_] - '0';
      if (v < (lo + d) / 10) fail_at(start, "integer out of the 64-bit range");
      v = v * 10 - d;
      ++p_;
    }
    if (p_ < t_.size() && (t_[p_] == '.' || t_[p_] == 'e' || t_[p_] == 'E'))
      fail_at(start, "only integers are supported in safetensors headers");
    if (!neg) {
      if (v == lo) fail_at(start, "integer out of the 64-bit range");
      v = -v;
    }
    return v;
  }

  static void put_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }

  std::uint32_t hex4() {
    if (p_ + 4 > t_.size()) fail("truncated \\u escape");
    std::uint32_t v = 0;
    for (int n = 0; n < 4; ++n, ++p_) {
      const char c = t_[p_];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= static_cast<std::uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f') v |= static_cast<std::uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= static_cast<std::uint32_t>(c - 'A' + 10);
      else fail("invalid hex digit in \\u escape");
    }
    return v;
  }

  std::string parse_string() {
    expect('"');
    std::string out;
    for (;;) {
      if (p_ >= t_.size()) fail("unterminated string");
      const char c = t_[p_];
      if (c == '"') {
        ++p_;
        return out;
      }
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (static_cast<unsigned char>(c) >= 0x80) {  // the header is UTF-8: one well-formed sequence
        const auto d = data::detail::decode_utf8(t_, p_);
        if (!d.valid) fail("invalid UTF-8 in string");
        out.append(t_.substr(p_, d.len));
        p_ += d.len;
        continue;
      }
      if (c != '\\') {
        out += c;
        ++p_;
        continue;
      }
      ++p_;
      if (p_ >= t_.size()) fail("unterminated escape");
      const char e = t_[p_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          std::uint32_t cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (t_.substr(p_, 2) != "\\u") fail("high surrogate without a low surrogate");
            p_ += 2;
            const std::uint32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("invalid low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            fail("lone low surrogate");
          }
          put_utf8(out, cp);
          break;
        }
        default: --p_; fail(tfm::detail::concat("invalid escape '\\", e, "'"));
      }
    }
  }

  std::string_view t_;
  std::string where_;
  std::size_t base_;
  std::size_t p_ = 0;
};

inline void json_escape(std::string& out, std::string_view s) {
  out += '"';
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          static constexpr char hex[] = "0123456789abcdef";
          out += "\\u00";
          out += hex[(static_cast<unsigned char>(c) >> 4) & 0xF];
          out += hex[static_cast<unsigned char>(c) & 0xF];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

template <class T>
inline T load_le(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

inline std::string st_where(const std::filesystem::path& p) {
  return tfm::detail::concat("safetensors: ", p.string(), ": ");
}

// Product of dims times element size, or nullopt on overflow. The element count must fit an
// int64 at every step of the product, as st_tensor_info::numel() forms it, even when a later dim
// is 0 ([2^31, 2^32, 0] has no bytes, but numel() would overflow on the way).
inline std::optional<std::uint64_t> st_byte_size(std::span<const std::int64_t> shape, st_dtype t) noexcept {
  constexpr auto max_count = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::uint64_t count = 1;
  for (const std::int64_t d : shape) {
    if (d < 0) return std::nullopt;
    const auto ud = static_cast<std::uint64_t>(d);
    if (ud != 0 && count > max_count / ud) return std::nullopt;
    count *= ud;
  }
  const std::uint64_t size = st_dtype_size(t);
  if (count != 0 && size > std::numeric_limits<std::uint64_t>::max() / count) return std::nullopt;
  return count * size;
}

inline std::string shape_string(std::span<const std::int64_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------
struct st_tensor_info {
  std::string name;
  st_dtype dtype = st_dtype::F32;
  std::vector<std::int64_t> shape;
  std::span<const std::byte> data;  // the tensor's bytes inside the loaded file
  std::uint64_t begin = 0;          // data_offsets, relative to the start of the data section
  std::uint64_t end = 0;

  std::int64_t numel() const noexcept {
    std::int64_t n = 1;
    for (const std::int64_t d : shape) n *= d;
    return n;
  }
};

class safetensors_file {
 public:
  explicit safetensors_file(const std::filesystem::path& path) : path_(path) {
    const std::string where = detail::st_where(path_);
    std::error_code ec;
    if (!std::filesystem::exists(path_, ec))
      throw safetensors_error(tfm::detail::concat(where, "cannot open: file does not exist"));
    if (std::filesystem::is_directory(path_, ec))
      throw safetensors_error(tfm::detail::concat(where, "cannot open: is a directory"));
    std::ifstream in(path_, std::ios::binary | std::ios::ate);
    if (!in) throw safetensors_error(tfm::detail::concat(where, "cannot open for reading"));
    const std::streamoff size = in.tellg();
    if (size < 0) throw safetensors_error(tfm::detail::concat(where, "cannot determine the file size"));
    bytes_.resize(static_cast<std::size_t>(size));
    in.seekg(0);
    if (size > 0 && !in.read(reinterpret_cast<char*>(bytes_.data()), size))
      throw safetensors_error(tfm::detail::concat(where, "read failed"));
    parse(where);
  }

  const std::filesystem::path& path() const noexcept { return path_; }

  // Tensor names ordered by their data offset (file order).
  const std::vector<std::string>& names() const noexcept { return names_; }
  std::size_t size() const noexcept { return names_.size(); }
  bool has(std::string_view name) const { return index_.find(std::string(name)) != index_.end(); }

  const st_tensor_info& info(std::string_view name) const {
    const auto it = index_.find(std::string(name));
    if (it == index_.end()) throw safetensors_error(missing_message(name));
    return tensors_[it->second];
  }

  // The "__metadata__" map (empty when the file has none).
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  // Header length N (the JSON's size in bytes) and the data section's offset in the file.
  std::uint64_t header_size() const noexcept { return header_len_; }
  std::uint64_t data_offset() const noexcept { return 8 + header_len_; }

  // The tensor's elements converted to T. Floating T (float, double) accepts F64, F32, F16,
  // BF16, F8_E4M3 and F8_E5M2; std::int64_t accepts I64, I32, I16, I8, U8 and BOOL;
  // std::int32_t accepts I32, I16, I8, U8 and BOOL (never narrowing I64). Other T must match
  // the stored dtype exactly, except the narrow floats (half, bfloat16, float8_e4m3,
  // float8_e5m2): bit-exact from their own dtype, rounded to nearest from any other floating
  // dtype. Anything else throws safetensors_error.
  template <class T>
  std::vector<T> read_as(std::string_view name) const {
    const st_tensor_info& ti = info(name);
    const auto n = static_cast<std::size_t>(ti.numel());
    std::vector<T> out(n);
    const std::byte* p = ti.data.data();
    const auto convert = [&]<class S, class F>(F f) {
      for (std::size_t i = 0; i < n; ++i) out[i] = f(detail::load_le<S>(p + i * sizeof(S)));
    };
    bool ok = true;
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      switch (ti.dtype) {
        case st_dtype::F64: convert.template operator()<double>([](double v) { return static_cast<T>(v); }); break;
        case st_dtype::F32: convert.template operator()<float>([](float v) { return static_cast<T>(v); }); break;
        case st_dtype::F16:
          convert.template operator()<std::uint16_t>(
              [](std::uint16_t b) { return static_cast<T>(static_cast<float>(half::from_bits(b))); });
          break;
        case st_dtype::BF16:
          convert.template operator()<std::uint16_t>(
              [](std::uint16_t b) { return static_cast<T>(static_cast<float>(bfloat16::from_bits(b))); });
          break;
        case st_dtype::F8_E4M3:
          convert.template operator()<std::uint8_t>(
              [](std::uint8_t b) { return static_cast<T>(static_cast<float>(float8_e4m3::from_bits(b))); });
          break;
        case st_dtype::F8_E5M2:
          convert.template operator()<std::uint8_t>(
              [](std::uint8_t b) { return static_cast<T>(static_cast<float>(float8_e5m2::from_bits(b))); });
          break;
        default: ok = false;
      }
    } else if constexpr (std::is_same_v<T, std::int64_t> || std::is_same_v<T, std::int32_t>) {
      const auto to_t = [](auto v) { return static_cast<T>(v); };
      switch (ti.dtype) {
        case st_dtype::I64:
          if constexpr (std::is_same_v<T, std::int64_t>) convert.template operator()<std::int64_t>(to_t);
          else ok = false;
          break;
        case st_dtype::I32: convert.template operator()<std::int32_t>(to_t); break;
        case st_dtype::I16: convert.template operator()<std::int16_t>(to_t); break;
        case st_dtype::I8: convert.template operator()<std::int8_t>(to_t); break;
        case st_dtype::U8:
        case st_dtype::BOOL: convert.template operator()<std::uint8_t>(to_t); break;
        default: ok = false;
      }
    } else if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bfloat16> ||
                         std::is_same_v<T, float8_e4m3> || std::is_same_v<T, float8_e5m2>) {
      if (ti.dtype == st_dtype_of<T>()) {
        if (n > 0) std::memcpy(out.data(), p, n * sizeof(T));  // bit-exact
      } else if (!st_dtype_is_float(ti.dtype)) {
        ok = false;
      } else {
        // Any other floating dtype, rounded once (to nearest even) from its exact double value.
        const std::vector<double> wide = read_as<double>(name);
        for (std::size_t i = 0; i < n; ++i) out[i] = T(wide[i]);
      }
    } else {
      static_assert(st_has_dtype_v<T> && !std::is_same_v<T, bool>,
                    "read_as<T>: T has no safetensors dtype (read BOOL as std::uint8_t)");
      if (ti.dtype == st_dtype_of<T>() && n > 0) std::memcpy(out.data(), p, n * sizeof(T));
      else ok = ti.dtype == st_dtype_of<T>();
    }
    if (!ok)
      throw safetensors_error(tfm::detail::concat(detail::st_where(path_), "tensor '", ti.name, "' has dtype ",
                                                  st_dtype_name(ti.dtype), ", which read_as<", type_name<T>(),
                                                  "> cannot convert"));
    return out;
  }

 private:
  template <class T>
  static constexpr std::string_view type_name() noexcept {
    if constexpr (std::is_same_v<T, float>) return "float";
    else if constexpr (std::is_same_v<T, double>) return "double";
    else if constexpr (std::is_same_v<T, std::int64_t>) return "int64_t";
    else if constexpr (std::is_same_v<T, std::int32_t>) return "int32_t";
    else if constexpr (st_has_dtype_v<T>) return st_dtype_name(st_dtype_of<T>());
    else return "T";
  }

  std::string missing_message(std::string_view name) const {
    std::string m = tfm::detail::concat(detail::st_where(path_), "no tensor named '", name, "' (file has ",
                                        names_.size(), " tensor", names_.size() == 1 ? "" : "s");
    constexpr std::size_t shown = 8;
    if (!names_.empty()) {
      m += ": ";
      for (std::size_t i = 0; i < std::min(shown, names_.size()); ++i) {
        if (i) m += ", ";
        m += names_[i];
      }
      if (names_.size() > shown) m += tfm::detail::concat(", ... (", names_.size() - shown, " more)");
    }
    return m + ")";
  }

  [[noreturn]] static void fail(const std::string& where, const std::string& what) {
    throw safetensors_error(where + what);
  }

  void parse(const std::string& where) {
    const std::uint64_t fsize = bytes_.size();
    if (fsize < 8)
      fail(where, tfm::detail::concat("file is ", fsize, " bytes, shorter than the 8-byte header length"));
    header_len_ = detail::load_le<std::uint64_t>(bytes_.data());
    if (header_len_ > fsize - 8)
      fail(where, tfm::detail::concat("header length ", header_len_, " goes beyond the end of the file (",
                                      fsize, " bytes, so at most ", fsize - 8, ")"));
    const std::string_view text(reinterpret_cast<const char*>(bytes_.data() + 8),
                                static_cast<std::size_t>(header_len_));
    detail::json_value root = detail::json_parser(text, where, 8).parse_document();
    using kind = detail::json_value::kind;
    if (root.k != kind::object)
      fail(where, tfm::detail::concat("header must be a JSON object, found ", detail::json_value::kind_name(root.k)));

    const std::uint64_t data_size = fsize - 8 - header_len_;
    const std::byte* data = bytes_.data() + 8 + header_len_;
    for (std::size_t e = 0; e < root.keys.size(); ++e) {
      const std::string& key = root.keys[e];
      detail::json_value& val = root.arr[e];
      if (key == "__metadata__") {
        if (val.k != kind::object) fail(where, "\"__metadata__\" must be an object of strings");
        for (std::size_t m = 0; m < val.keys.size(); ++m) {
          const std::string& mk = val.keys[m];
          detail::json_value& mv = val.arr[m];
          if (mv.k != kind::string)
            fail(where, tfm::detail::concat("metadata value for \"", mk, "\" must be a string, found ",
                                            detail::json_value::kind_name(mv.k)));
          metadata_.emplace(mk, std::move(mv.s));
        }
        continue;
      }
      const std::string ctx = tfm::detail::concat("tensor '", key, "': ");
      if (val.k != kind::object) fail(where, ctx + "entry must be an object");
      const detail::json_value* dt = nullptr;
      const detail::json_value* sh = nullptr;
      const detail::json_value* off = nullptr;
      for (std::size_t m = 0; m < val.keys.size(); ++m) {
        const std::string& fk = val.keys[m];
        const detail::json_value& fv = val.arr[m];
        if (fk == "dtype") dt = &fv;
        else if (fk == "shape") sh = &fv;
        else if (fk == "data_offsets") off = &fv;
      }
      if (!dt || !sh || !off) fail(where, ctx + "entry needs \"dtype\", \"shape\" and \"data_offsets\"");
      if (dt->k != kind::string) fail(where, ctx + "\"dtype\" must be a string");
      const std::optional<st_dtype> dtype = st_dtype_from_name(dt->s);
      if (!dtype) fail(where, tfm::detail::concat(ctx, "unknown dtype \"", dt->s, "\""));
      if (sh->k != kind::array) fail(where, ctx + "\"shape\" must be an array of integers");
      st_tensor_info ti;
      ti.name = key;
      ti.dtype = *dtype;
      for (const auto& d : sh->arr) {
        if (d.k != kind::integer || d.i < 0)
          fail(where, ctx + "\"shape\" must hold non-negative integers");
        ti.shape.push_back(d.i);
      }
      if (off->k != kind::array || off->arr.size() != 2 || off->arr[0].k != kind::integer ||
          off->arr[1].k != kind::integer || off->arr[0].i < 0 || off->arr[1].i < 0)
        fail(where, ctx + "\"data_offsets\" must be two non-negative integers [begin, end]");
      ti.begin = static_cast<std::uint64_t>(off->arr[0].i);
      ti.end = static_cast<std::uint64_t>(off->arr[1].i);
      if (ti.end < ti.begin)
        fail(where, tfm::detail::concat(ctx, "data_offsets [", ti.begin, ", ", ti.end, "] end before they begin"));
      const std::optional<std::uint64_t> want = detail::st_byte_size(ti.shape, ti.dtype);
      if (!want) fail(where, ctx + "shape size overflows");
      if (*want != ti.end - ti.begin)
        fail(where, tfm::detail::concat(ctx, "data_offsets [", ti.begin, ", ", ti.end, "] span ", ti.end - ti.begin,
                                        " bytes but shape ", detail::shape_string(ti.shape), " of ",
                                        st_dtype_name(ti.dtype), " needs ", *want));
      if (ti.end > data_size)
        fail(where, tfm::detail::concat(ctx, "data_offsets [", ti.begin, ", ", ti.end,
                                        "] are out of range: the data section has ", data_size, " bytes"));
      ti.data = std::span<const std::byte>(data + ti.begin, static_cast<std::size_t>(ti.end - ti.begin));
      tensors_.push_back(std::move(ti));
    }
    // Order by offset; header order breaks ties (empty tensors).
    std::vector<std::size_t> order(tensors_.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return tensors_[a].begin < tensors_[b].begin ||
             (tensors_[a].begin == tensors_[b].begin && tensors_[a].end < tensors_[b].end);
    });
    std::vector<st_tensor_info> sorted;
    sorted.reserve(tensors_.size());
    const st_tensor_info* last = nullptr;  // the non-empty tensor reaching furthest so far
    for (const std::size_t i : order) {
      const st_tensor_info& ti = tensors_[i];
      if (ti.end > ti.begin) {
        if (last && ti.begin < last->end)
          fail(where, tfm::detail::concat("tensors '", last->name, "' [", last->begin, ", ", last->end, ") and '",
                                          ti.name, "' [", ti.begin, ", ", ti.end, ") overlap"));
        if (!last || ti.end > last->end) last = &ti;
      }
    }
    for (const std::size_t i : order) sorted.push_back(std::move(tensors_[i]));
    tensors_ = std::move(sorted);
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      names_.push_back(tensors_[i].name);
      index_.emplace(tensors_[i].name, i);
    }
  }

  std::filesystem::path path_;
  std::vector<std::byte> bytes_;
  std::uint64_t header_len_ = 0;
  std::vector<st_tensor_info> tensors_;
  std::vector<std::string> names_;
  std::unordered_map<std::string, std::size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// ---------------------------------------------------------------------------------------------
// Writer
// ---------------------------------------------------------------------------------------------
class safetensors_writer {
 public:
  // Copies numel(shape)·size(dtype) bytes from `bytes` (which may be null when that is 0).
  void add(std::string name, st_dtype dtype, std::vector<std::int64_t> shape, const void* bytes) {
    const std::string ctx = tfm::detail::concat("safetensors_writer::add('", name, "'): ");
    if (name.empty()) throw safetensors_error(ctx + "empty tensor name");
    if (name == "__metadata__") throw safetensors_error(ctx + "the name __metadata__ is reserved");
    for (const auto& e : entries_)
      if (e.name == name) throw safetensors_error(ctx + "a tensor with this name was already added");
    const std::optional<std::uint64_t> nbytes = detail::st_byte_size(shape, dtype);
    if (!nbytes) throw safetensors_error(ctx + "shape " + detail::shape_string(shape) + " is negative or too large");
    if (*nbytes > 0 && bytes == nullptr) throw safetensors_error(ctx + "null data for a non-empty tensor");
    entry e{std::move(name), dtype, std::move(shape), {}};
    e.bytes.resize(static_cast<std::size_t>(*nbytes));
    if (*nbytes > 0) std::memcpy(e.bytes.data(), bytes, e.bytes.size());
    entries_.push_back(std::move(e));
  }

  // Typed convenience: the dtype follows T (float → F32, half → F16, int32_t → I32, ...), and
  // the span must hold exactly numel(shape) elements.
  template <class T>
    requires st_has_dtype_v<T>
  void add(std::string name, std::span<const T> values, std::vector<std::int64_t> shape) {
    std::int64_t n = 1;
    for (const std::int64_t d : shape) n *= d;
    if (std::ranges::any_of(shape, [](std::int64_t d) { return d < 0; }) ||
        static_cast<std::uint64_t>(n) != values.size())
      throw safetensors_error(tfm::detail::concat("safetensors_writer::add('", name, "'): shape ",
                                                  detail::shape_string(shape), " does not match ",
                                                  values.size(), " values"));
    add(std::move(name), st_dtype_of<T>(), std::move(shape), static_cast<const void*>(values.data()));
  }
  template <class T>
    requires st_has_dtype_v<T>
  void add(std::string name, const std::vector<T>& values, std::vector<std::int64_t> shape) {
    add(std::move(name), std::span<const T>(values), std::move(shape));
  }

  void set_metadata(std::string key, std::string value) { metadata_[std::move(key)] = std::move(value); }

  std::size_t size() const noexcept { return entries_.size(); }

  // The JSON header, padded with spaces to a multiple of 8 bytes.
  std::string header() const {
    std::string h = "{";
    bool first = true;
    if (!metadata_.empty()) {
      h += "\"__metadata__\":{";
      for (auto it = metadata_.begin(); it != metadata_.end(); ++it) {
        if (it != metadata_.begin()) h += ',';
        detail::json_escape(h, it->first);
        h += ':';
        detail::json_escape(h, it->second);
      }
      h += '}';
      first = false;
    }
    std::uint64_t off = 0;
    for (const auto& e : entries_) {
      if (!first) h += ',';
      first = false;
      detail::json_escape(h, e.name);
      h += ":{\"dtype\":\"";
      h += st_dtype_name(e.dtype);
      h += "\",\"shape\":[";
      for (std::size_t i = 0; i < e.shape.size(); ++i) {
        if (i) h += ',';
        h += std::to_string(e.shape[i]);
      }
      h += "],\"data_offsets\":[";
      h += std::to_string(off);
      h += ',';
      off += e.bytes.size();
      h += std::to_string(off);
      h += "]}";
    }
    h += '}';
    h.append((8 - h.size() % 8) % 8, ' ');
    return h;
  }

  // Writes path + ".tmp", flushes and fsyncs it, then renames it over `path`.
  void write(const std::filesystem::path& path) const {
    const std::string where = detail::st_where(path);
    const std::string h = header();
    std::filesystem::path tmp = path;
    tmp += ".tmp";
    std::byte len[8];
    const std::uint64_t n = h.size();
    std::memcpy(len, &n, 8);
    {
      file_out out(tmp, where);
      out.put(len, 8);
      out.put(h.data(), h.size());
      for (const auto& e : entries_) out.put(e.bytes.data(), e.bytes.size());
      out.finish();
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) {
      std::filesystem::remove(tmp, ec);
      throw safetensors_error(tfm::detail::concat(where, "cannot rename ", tmp.string(), " into place"));
    }
#if TFM_IO_POSIX
    // Persist the rename too (best effort).
    std::filesystem::path dir = path.parent_path();
    if (dir.empty()) dir = ".";
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
      (void)::fsync(dfd);
      ::close(dfd);
    }
#endif
  }

 private:
  struct entry {
    std::string name;
    st_dtype dtype;
    std::vector<std::int64_t> shape;
    std::vector<std::byte> bytes;
  };

  // An output file that removes itself unless finish() succeeded.
  class file_out {
   public:
    file_out(std::filesystem::path p, std::string where) : path_(std::move(p)), where_(std::move(where)) {
#if TFM_IO_POSIX
      fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      if (fd_ < 0) fail("cannot create");
#else
      os_.open(path_, std::ios::binary | std::ios::trunc);
      if (!os_) fail("cannot create");
#endif
    }
    file_out(const file_out&) = delete;
    file_out& operator=(const file_out&) = delete;
    ~file_out() {
      if (!done_) {
#if TFM_IO_POSIX
        if (fd_ >= 0) ::close(fd_);
#else
        os_.close();
#endif
        std::error_code ec;
        std::filesystem::remove(path_, ec);
      }
    }
    void put(const void* p, std::size_t n) {
#if TFM_IO_POSIX
      const char* c = static_cast<const char*>(p);
      while (n > 0) {
        const ::ssize_t w = ::write(fd_, c, n);
        if (w < 0) {
          if (errno == EINTR) continue;
          fail("write failed");
        }
        c += w;
        n -= static_cast<std::size_t>(w);
      }
#else
      os_.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
      if (!os_) fail("write failed");
#endif
    }
    void finish() {
#if TFM_IO_POSIX
      if (::fsync(fd_) != 0) fail("fsync failed");
      const int fd = fd_;
      fd_ = -1;
      if (::close(fd) != 0) fail("close failed");
#else
      os_.flush();
      if (!os_) fail("flush failed");
      os_.close();
#endif
      done_ = true;
    }

   private:
    [[noreturn]] void fail(std::string_view what) {
      const int err = errno;
      throw safetensors_error(tfm::detail::concat(where_, what, " (", path_.string(), "): ",
                                                  std::strerror(err)));
    }
    std::filesystem::path path_;
    std::string where_;
#if TFM_IO_POSIX
    int fd_ = -1;
#else
    std::ofstream os_;
#endif
    bool done_ = false;
  };

  std::vector<entry> entries_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace tfm::io
