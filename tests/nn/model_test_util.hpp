// tests/nn/model_test_util.hpp — helpers for the model tests: random weights with useful spread,
// token batches, the variant list.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "tfm/core/rng.hpp"
#include "tfm/nn/model.hpp"

namespace tfm::test {

// Relative error of `got` against `want`: max |got − want| / max(max |want|, tiny), i.e. relative
// to the tensor's scale, so elements near zero are not judged on their own tiny magnitude.
template <class A, class B>
double rel_error(const A& got, const B& want) {
  double diff = 0, scale = 1e-30;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::abs(double(got[i]) - double(want[i])));
    scale = std::max(scale, std::abs(double(want[i])));
  }
  return diff / scale;
}

// Weights with spread large enough for non-trivial gradients: matrices normal(0, 0.3), norm
// weights 1 + 0.1·normal, biases 0.1·normal.
template <class M>
void randomize(M& m, std::uint64_t seed) {
  auto w = m.parameters();
  std::size_t k = 0;
  for (auto const& p : m.parameter_table()) {
    const bool is_bias = p.name.ends_with(".bias");
    const bool is_norm = p.name.find("ln_") != std::string::npos;
    for (std::size_t e = 0; e < p.size; ++e) {
      const double z = tfm::rng::normal(seed, k, e);
      double v = 0.3 * z;
      if (is_norm && !is_bias) v = 1.0 + 0.1 * z;
      if (is_bias) v = 0.1 * z;
      w[p.offset + e] = static_cast<typename M::T>(static_cast<float>(v));
    }
    ++k;
  }
}

inline std::vector<std::int32_t> random_tokens(std::size_t n, int vocab, std::uint64_t seed) {
  std::vector<std::int32_t> t(n);
  for (std::size_t i = 0; i < n; ++i) t[i] = static_cast<std::int32_t>(tfm::rng::random_u32(seed, 7, i) % vocab);
  return t;
}

}  // namespace tfm::test
