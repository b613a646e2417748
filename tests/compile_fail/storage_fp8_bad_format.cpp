// Must not compile: fp8 storage of a format that is not an 8-bit float.
#include "tfm/nn/model.hpp"
struct cfg : tfm::nn::presets::gpt2<tfm::nn::sizes<64, 16, 32, 1, 4, 4, 64>> {
  using storage = tfm::nn::fp8<tfm::half>;
};
int main() { tfm::nn::model<cfg> m; }
