// tfm/tokenizer/io.hpp — reading and writing BPE tokenizers: tfm's own text format, Hugging
// Face's `tokenizer.json` (export and import), and Hugging Face's split layout (`vocab.json`,
// `merges.txt`, `tokenizer_config.json`) as GPT-2 and StarCoder ship it.
//
// tfm's format (`save` / `load`), UTF-8 text, one record per line, '\n' line ends:
//   tfm-bpe 1                      magic and version
//   pre_tokenizer <gpt2|starcoder|cl100k>
//   tokens <N>                     then N lines, line k for id k:
//     t <hex>                      an ordinary token: its bytes, two lowercase hex digits each
//     s <hex>                      a special token: its text's bytes in hex
//     -                            an unused id
//   merges <M>                     then M lines, highest priority (rank 0) first:
//     <left id> <right id>         the merged token is the one spelled left + right
// Hex keeps every byte (spaces, newlines, ill-formed UTF-8) unambiguous and diff-friendly.
#pragma once
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfm/core/file.hpp"
#include "tfm/tokenizer/bpe.hpp"

namespace tfm {

namespace detail {

inline std::string read_text_file(const std::filesystem::path& p) { return read_file<tokenizer_io_error>(p); }

inline void write_text_file(const std::filesystem::path& p, std::string_view data) {
  write_file_atomic<tokenizer_io_error>(p, data);
}

inline nlohmann::json parse_json(const std::string& text, const std::filesystem::path& p) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw tokenizer_format_error(concat(p.string(), ": malformed JSON: ", e.what()));
  }
}

inline std::string to_hex(std::string_view b) {
  static constexpr char d[] = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (unsigned char c : b) s += d[c >> 4], s += d[c & 15];
  return s;
}

inline bool from_hex(std::string_view h, std::string& out) {
  if (h.size() % 2) return false;
  out.clear();
  const auto v = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < h.size(); i += 2) {
    const int a = v(h[i]), b = v(h[i + 1]);
    if (a < 0 || b < 0) return false;
    out += char(a * 16 + b);
  }
  return true;
}

template <class T>
bool parse_uint(std::string_view s, T& v) {
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  return r.ec == std::errc{} && r.ptr == s.data() + s.size() && !s.empty();
}

// A JSON id that must fit a token_id: get<token_id>() would keep only the low 32 bits of a larger one.
inline bool json_token_id(const nlohmann::json& j, token_id& id) {
  if (!j.is_number_unsigned() || j.get<std::uint64_t>() >= (1u << 31)) return false;
  id = j.get<token_id>();
  return true;
}

// Splits `text` into lines (without '\n' and a trailing '\r').
inline std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  std::size_t b = 0;
  while (b < text.size()) {
    std::size_t e = text.find('\n', b);
    if (e == std::string_view::npos) e = text.size();
    std::string_view l = text.substr(b, e - b);
    if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
    lines.push_back(l);
    b = e + 1;
  }
  return lines;
}

// Builds the tokenizer from Hugging Face spellings: vocab (token text -> id), merges as pairs of
// token texts, special tokens. `vocab_where` / `merges_where` name the sources in errors.
inline bpe_tokenizer from_hf_parts(const nlohmann::json& vocab, const std::string& vocab_where,
                                   const std::vector<std::pair<std::string, std::string>>& merge_texts,
                                   const std::vector<std::string>& merge_where,
                                   std::vector<special_token> specials, pre_tokenizer_kind pre) {
  if (!vocab.is_object())
    throw tokenizer_format_error(concat(vocab_where, ": the vocabulary is not a JSON object of token -> id"));
  std::unordered_map<std::string, token_id> text_ids;
  std::size_t n = 0;
  // The vocabulary is sized by its largest id: ids far beyond the number of tokens given (most of
  // them unused) are corrupt, and must not size an allocation of gigabytes.
  const std::size_t max_ids = 2 * (vocab.size() + specials.size()) + 65536;
  const auto too_large = [&](std::string_view text, std::uint64_t id) {
    return tokenizer_format_error(concat(vocab_where, ": token '", text, "' has id ", id, " (too large: ",
                                         vocab.size() + specials.size(), " tokens may use ids below ", max_ids, ")"));
  };
  for (const auto& [text, idj] : vocab.items()) {
    if (!idj.is_number_unsigned())
      throw tokenizer_format_error(concat(vocab_where, ": token '", text, "' has a non-integer id ", idj.dump()));
    const auto id = idj.get<std::uint64_t>();
    if (id >= max_ids) throw too_large(text, id);
    text_ids[text] = token_id(id);
    n = std::max<std::size_t>(n, id + 1);
  }
  for (const auto& s : specials) {
    if (const auto it = text_ids.find(s.text); it != text_ids.end() && it->second != s.id)
      throw tokenizer_format_error(concat(vocab_where, ": special token '", s.text, "' has id ", it->second,
                                          " here but ", s.id, " in the special-token list"));
    if (s.id >= max_ids) throw too_large(s.text, s.id);
    n = std::max<std::size_t>(n, std::size_t(s.id) + 1);
  }
  std::vector<std::string> tokens(n);
  std::vector<char> filled(n, 0);
  for (const auto& s : specials) filled[s.id] = 1;
  for (const auto& [text, id] : text_ids) {
    const bool special = std::any_of(specials.begin(), specials.end(),
                                     [&](const special_token& s) { return s.id == id; });
    if (special) continue;
    if (filled[id]) throw tokenizer_format_error(concat(vocab_where, ": id ", id, " is used twice (token '", text, "')"));
    auto bytes = token_text_to_bytes(text);
    if (!bytes || bytes->empty())
      throw tokenizer_format_error(concat(vocab_where, ": token '", text, "' (id ", id,
                                          ") is not in GPT-2's byte-to-unicode spelling and is not a special token"));
    tokens[id] = std::move(*bytes);
    filled[id] = 1;
  }
  std::vector<bpe_merge> merges;
  merges.reserve(merge_texts.size());
  for (std::size_t r = 0; r < merge_texts.size(); ++r) {
    const auto& [a, b] = merge_texts[r];
    const auto ia = text_ids.find(a), ib = text_ids.find(b);
    if (ia == text_ids.end() || ib == text_ids.end())
      throw tokenizer_format_error(concat(merge_where[r], ": merge '", a, " ", b, "' uses unknown token '",
                                          ia == text_ids.end() ? a : b, "'"));
    if (text_ids.find(a + b) == text_ids.end())
      throw tokenizer_format_error(concat(merge_where[r], ": merge '", a, " ", b, "' makes '", a + b,
                                          "', which is not in ", vocab_where));
    merges.push_back({ia->second, ib->second, 0});
  }
  return bpe_tokenizer(std::move(tokens), std::move(merges), std::move(specials), pre, vocab_where);
}

}  // namespace detail

// ---------------------------------------------------------------------------- tfm's own format

inline std::string to_tfm_format(const bpe_tokenizer& t) {
  std::string s = "tfm-bpe 1\npre_tokenizer ";
  s += to_string(t.pre_kind());
  s += "\ntokens " + std::to_string(t.vocab_size()) + "\n";
  for (token_id id = 0; id < t.vocab_size(); ++id) {
    const auto& b = t.token_bytes(id);
    if (b.empty()) s += "-\n";
    else s += (t.is_special(id) ? "s " : "t ") + detail::to_hex(b) + "\n";
  }
  s += "merges " + std::to_string(t.merges().size()) + "\n";
  for (const auto& m : t.merges()) s += std::to_string(m.left) + " " + std::to_string(m.right) + "\n";
  return s;
}

// Parses tfm's format; `where` names the source in errors.
inline bpe_tokenizer from_tfm_format(std::string_view text, const std::string& where) {
  const auto lines = detail::split_lines(text);
  std::size_t ln = 0;
  const auto bad = [&](std::string_view what) {
    return tokenizer_format_error(detail::concat(where, ":", ln + 1, ": ", what));
  };
  const auto next = [&]() -> std::string_view {
    if (ln >= lines.size()) throw tokenizer_format_error(detail::concat(where, ": truncated after line ", ln));
    return lines[ln];
  };
  if (next() != "tfm-bpe 1") throw bad("expected 'tfm-bpe 1' (not a tfm tokenizer, or another version)");
  ++ln;
  std::string_view l = next();
  if (!l.starts_with("pre_tokenizer ")) throw bad("expected 'pre_tokenizer <kind>'");
  const auto pre = parse_pre_tokenizer_kind(l.substr(14), detail::concat(where, ":", ln + 1));
  ++ln;
  l = next();
  std::size_t n = 0;
  if (!l.starts_with("tokens ") || !detail::parse_uint(l.substr(7), n) || n >= (1u << 31))
    throw bad("expected 'tokens <count>'");
  // One line per token: a count beyond the lines left is corrupt, and must not size an allocation.
  if (n > lines.size() - ln - 1)
    throw bad(detail::concat("'tokens ", n, "' but only ", lines.size() - ln - 1, " lines follow"));
  ++ln;
  std::vector<std::string> tokens(n);
  std::vector<special_token> specials;
  for (std::size_t id = 0; id < n; ++id, ++ln) {
    l = next();
    if (l == "-") continue;
    if (l.size() < 2 || (l[0] != 't' && l[0] != 's') || l[1] != ' ' || !detail::from_hex(l.substr(2), tokens[id]) ||
        tokens[id].empty())
      throw bad("expected 't <hex>', 's <hex>' or '-'");
    if (l[0] == 's') specials.push_back({tokens[id], token_id(id)});
  }
  l = next();
  std::size_t m = 0;
  if (!l.starts_with("merges ") || !detail::parse_uint(l.substr(7), m)) throw bad("expected 'merges <count>'");
  if (m > lines.size() - ln - 1)
    throw bad(detail::concat("'merges ", m, "' but only ", lines.size() - ln - 1, " lines follow"));
  ++ln;
  std::vector<bpe_merge> merges(m);
  for (std::size_t r = 0; r < m; ++r, ++ln) {
    l = next();
    const auto sp = l.find(' ');
    if (sp == std::string_view::npos || !detail::parse_uint(l.substr(0, sp), merges[r].left) ||
        !detail::parse_uint(l.substr(sp + 1), merges[r].right))
      throw bad("expected '<left id> <right id>'");
  }
  return bpe_tokenizer(std::move(tokens), std::move(merges), std::move(specials), pre, where);
}

inline void save(const bpe_tokenizer& t, const std::filesystem::path& p) {
  detail::write_text_file(p, to_tfm_format(t));
}
inline bpe_tokenizer load(const std::filesystem::path& p) {
  return from_tfm_format(detail::read_text_file(p), p.string());
}

// ---------------------------------------------------------------------------- Hugging Face

// tokenizer.json text for `t`: model BPE (vocab in GPT-2's spelling, merges as "a b" strings),
// ByteLevel pre-tokenizer (StarCoder: Digits(individual) then ByteLevel; cl100k: Split with the
// expression then ByteLevel without its own), ByteLevel decoder, specials as added_tokens.
inline std::string to_hf_tokenizer_json(const bpe_tokenizer& t) {
  using ojson = nlohmann::ordered_json;
  const auto byte_level = [](bool use_regex) {
    return ojson{{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", use_regex}};
  };
  ojson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  ojson added = ojson::array();
  for (token_id id = 0; id < t.vocab_size(); ++id)
    if (t.is_special(id))
      added.push_back({{"id", id}, {"content", t.token_bytes(id)}, {"single_word", false}, {"lstrip", false},
                       {"rstrip", false}, {"normalized", false}, {"special", true}});
  j["added_tokens"] = added;
  j["normalizer"] = nullptr;
  switch (t.pre_kind()) {
    case pre_tokenizer_kind::gpt2: j["pre_tokenizer"] = byte_level(true); break;
    case pre_tokenizer_kind::starcoder:
      j["pre_tokenizer"] = {{"type", "Sequence"},
                            {"pretokenizers", ojson::array({ojson{{"type", "Digits"}, {"individual_digits", true}},
                                                            byte_level(true)})}};
      break;
    case pre_tokenizer_kind::cl100k:
      j["pre_tokenizer"] = {{"type", "Sequence"},
                            {"pretokenizers", ojson::array({ojson{{"type", "Split"},
                                                                  {"pattern", {{"Regex", std::string(cl100k_pattern)}}},
                                                                  {"behavior", "Isolated"},
                                                                  {"invert", false}},
                                                            byte_level(false)})}};
      break;
  }
  j["post_processor"] = nullptr;
  j["decoder"] = byte_level(true);
  ojson model;
  model["type"] = "BPE";
  model["dropout"] = nullptr;
  model["unk_token"] = nullptr;
  model["continuing_subword_prefix"] = nullptr;
  model["end_of_word_suffix"] = nullptr;
  model["fuse_unk"] = false;
  model["byte_fallback"] = false;
  ojson vocab = ojson::object();
  // ordered_map's operator[] searches linearly (50k tokens: 5 s); the keys are distinct (the
  // tokenizer checked), so append to the underlying vector directly, in id order.
  auto& entries = static_cast<ojson::object_t::Container&>(vocab.get_ref<ojson::object_t&>());
  entries.reserve(t.vocab_size());
  for (token_id id = 0; id < t.vocab_size(); ++id) {
    const auto& b = t.token_bytes(id);
    if (b.empty()) continue;
    entries.emplace_back(t.is_special(id) ? b : bytes_to_token_text(b), id);
  }
  model["vocab"] = std::move(vocab);
  ojson merges = ojson::array();
  for (const auto& m : t.merges())
    merges.push_back(bytes_to_token_text(t.token_bytes(m.left)) + " " + bytes_to_token_text(t.token_bytes(m.right)));
  model["merges"] = std::move(merges);
  j["model"] = std::move(model);
  return j.dump(1);
}

// Parses tokenizer.json text (merges as "a b" strings or as [a, b] pairs); `where` names it.
// (A function try block: a field of the wrong JSON type, {"use_regex": "yes"} say, makes
// nlohmann throw from value(); that error is reported with the file named too.)
inline bpe_tokenizer from_hf_tokenizer_json(const std::string& text, const std::string& where) try {
  const auto j = detail::parse_json(text, where);
  const auto fail = [&](std::string_view what) { return tokenizer_format_error(detail::concat(where, ": ", what)); };
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) throw fail("no \"model\" object");
  const auto& model = j["model"];
  if (model.value("type", std::string("BPE")) != "BPE")
    throw fail(detail::concat("model type '", model.value("type", std::string()), "' is not BPE"));
  if (!model.contains("vocab") || !model.contains("merges")) throw fail("model has no \"vocab\" or no \"merges\"");
  // pre-tokenizer
  pre_tokenizer_kind pre = pre_tokenizer_kind::gpt2;
  const auto& pt = j.value("pre_tokenizer", nlohmann::json());
  const auto type_of = [](const nlohmann::json& x) { return x.is_object() ? x.value("type", std::string()) : std::string(); };
  if (type_of(pt) == "ByteLevel") {
    if (!pt.value("use_regex", true)) throw fail("ByteLevel pre-tokenizer without its expression is not supported");
  } else if (type_of(pt) == "Sequence" && pt.contains("pretokenizers") && pt["pretokenizers"].is_array() &&
             pt["pretokenizers"].size() == 2 && type_of(pt["pretokenizers"][1]) == "ByteLevel") {
    const auto& first = pt["pretokenizers"][0];
    if (type_of(first) == "Digits" && first.value("individual_digits", false)) {
      pre = pre_tokenizer_kind::starcoder;
    } else if (type_of(first) == "Split" && first.contains("pattern") && first["pattern"].is_object() &&
               first["pattern"].value("Regex", std::string()) == cl100k_pattern) {
      pre = pre_tokenizer_kind::cl100k;
    } else {
      throw fail(detail::concat("unsupported pre-tokenizer sequence ", pt.dump()));
    }
  } else {
    throw fail(detail::concat("unsupported pre-tokenizer ", pt.dump(), " (expected ByteLevel, or Digits/Split then ByteLevel)"));
  }
  std::vector<special_token> specials;
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& a : j["added_tokens"]) {
      token_id id = 0;
      if (!a.is_object() || !a.contains("id") || !a.contains("content") || !detail::json_token_id(a["id"], id) ||
          !a["content"].is_string())
        throw fail(detail::concat("malformed added token ", a.dump()));
      specials.push_back({a["content"].get<std::string>(), id});
    }
  }
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<std::string> merge_where;
  const auto& mj = model["merges"];
  if (!mj.is_array()) throw fail("model.merges is not an array");
  for (std::size_t r = 0; r < mj.size(); ++r) {
    const auto& m = mj[r];
    merge_where.push_back(detail::concat(where, ": model.merges[", r, "]"));
    if (m.is_string()) {
      const auto s = m.get<std::string>();
      const auto sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        throw fail(detail::concat("model.merges[", r, "] '", s, "' is not two tokens separated by one space"));
      merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      throw fail(detail::concat("model.merges[", r, "] is neither \"a b\" nor [a, b]"));
    }
  }
  return detail::from_hf_parts(model["vocab"], where, merges, merge_where, std::move(specials), pre);
} catch (const nlohmann::json::exception& e) {
  throw tokenizer_format_error(detail::concat(where, ": a field has the wrong JSON type: ", e.what()));
}

inline void save_hf_tokenizer_json(const bpe_tokenizer& t, const std::filesystem::path& p) {
  detail::write_text_file(p, to_hf_tokenizer_json(t));
}
inline bpe_tokenizer load_hf_tokenizer_json(const std::filesystem::path& p) {
  return from_hf_tokenizer_json(detail::read_text_file(p), p.string());
}

// Loads `vocab.json` + `merges.txt` (+ `tokenizer_config.json` when present) from `dir`.
// tokenizer_config.json may give "pre_tokenizer" ("gpt-2" / "gpt2", "starcoder", "cl100k") and
// "special_tokens" ({text: id}), or Hugging Face's "added_tokens_decoder" ({id: {"content": text}});
// without it the pre-tokenizer is GPT-2's and no token is special.
inline bpe_tokenizer load_hf_vocab_dir(const std::filesystem::path& dir) {
  const auto vocab_path = dir / "vocab.json", merges_path = dir / "merges.txt", config_path = dir / "tokenizer_config.json";
  const auto vocab = detail::parse_json(detail::read_text_file(vocab_path), vocab_path);
  pre_tokenizer_kind pre = pre_tokenizer_kind::gpt2;
  std::vector<special_token> specials;
  if (std::filesystem::exists(config_path)) {
    const auto cfg = detail::parse_json(detail::read_text_file(config_path), config_path);
    const auto fail = [&](std::string_view what) {
      return tokenizer_format_error(detail::concat(config_path.string(), ": ", what));
    };
    if (!cfg.is_object()) throw fail("not a JSON object");
    if (cfg.contains("pre_tokenizer")) {
      if (!cfg["pre_tokenizer"].is_string()) throw fail("\"pre_tokenizer\" is not a string");
      pre = parse_pre_tokenizer_kind(cfg["pre_tokenizer"].get<std::string>(), config_path.string());
    }
    if (cfg.contains("special_tokens")) {
      if (!cfg["special_tokens"].is_object()) throw fail("\"special_tokens\" is not an object of text -> id");
      for (const auto& [text, idj] : cfg["special_tokens"].items()) {
        token_id id = 0;
        if (!detail::json_token_id(idj, id))
          throw fail(detail::concat("special token '", text, "' has id ", idj.dump(), ", not an integer below 2^31"));
        specials.push_back({text, id});
      }
    } else if (cfg.contains("added_tokens_decoder") && cfg["added_tokens_decoder"].is_object()) {
      for (const auto& [ids, a] : cfg["added_tokens_decoder"].items()) {
        token_id id = 0;
        if (!detail::parse_uint(ids, id) || !a.is_object() || !a.contains("content") || !a["content"].is_string())
          throw fail(detail::concat("malformed added_tokens_decoder entry '", ids, "'"));
        specials.push_back({a["content"].get<std::string>(), id});
      }
    }
  }
  const auto merges_text = detail::read_text_file(merges_path);
  std::vector<std::pair<std::string, std::string>> merges;
  std::vector<std::string> merge_where;
  const auto lines = detail::split_lines(merges_text);
  for (std::size_t ln = 0; ln < lines.size(); ++ln) {
    const auto l = lines[ln];
    if (l.empty() || (ln == 0 && l.starts_with("#version"))) continue;
    const auto sp = l.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp + 1 == l.size() || l.find(' ', sp + 1) != std::string_view::npos)
      throw tokenizer_format_error(detail::concat(merges_path.string(), ":", ln + 1, ": '", l,
                                                  "' is not two tokens separated by one space"));
    merges.emplace_back(std::string(l.substr(0, sp)), std::string(l.substr(sp + 1)));
    merge_where.push_back(detail::concat(merges_path.string(), ":", ln + 1));
  }
  return detail::from_hf_parts(vocab, vocab_path.string(), merges, merge_where, std::move(specials), pre);
}

}  // namespace tfm
