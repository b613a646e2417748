// Compiled without FMA contraction, optimisation or vector ISA extensions (see rng.cmake):
// the same header must give the same bits as the natively compiled test, as it must on a GPU.
#include <cstdint>
#include <vector>

#include "tfm/core/rng.hpp"

namespace tfm::test {
std::vector<float> strict_normals(std::uint64_t seed, std::uint64_t stream, std::size_t n) {
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = rng::normal(seed, stream, i);
  return out;
}
std::vector<float> strict_uniforms(std::uint64_t seed, std::uint64_t stream, std::size_t n) {
  std::vector<float> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = rng::uniform(seed, stream, i);
  return out;
}
}  // namespace tfm::test
