// tests/data/text_gen.hpp — deterministic generated text for the data tests.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace tfm::test {

// A lower-case word of `len` letters.
inline std::string random_word(std::mt19937_64& rng, std::size_t len) {
  std::string w(len, 'a');
  for (auto& c : w) c = static_cast<char>('a' + rng() % 26);
  return w;
}

inline std::vector<std::string> random_vocab(std::mt19937_64& rng, std::size_t n, std::size_t min_len = 3,
                                             std::size_t max_len = 9) {
  std::vector<std::string> v(n);
  for (auto& w : v) w = random_word(rng, min_len + rng() % (max_len - min_len + 1));
  return v;
}

// `n` words from `vocab` with "the" and "and" among them, `per_line` words per line: a
// document that passes every default Gopher filter when n >= 50.
inline std::string prose(std::mt19937_64& rng, const std::vector<std::string>& vocab, std::size_t n,
                         std::size_t per_line = 12) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) {
    if (i) s += (i % per_line == 0) ? '\n' : ' ';
    s += i == 1 ? "the" : i == 3 ? "and" : vocab[rng() % vocab.size()];
  }
  return s;
}

// A temporary directory removed at scope exit.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() / ("tfm_data_" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path write(const std::string& name, const std::string& content) const {
    const auto p = path / name;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
};

inline std::vector<std::string> read_lines(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<std::string> out;
  for (std::string l; std::getline(f, l);) out.push_back(l);
  return out;
}

}  // namespace tfm::test
