// Must not compile: the storage policy is not one nn::storage_traits knows.
#include "tfm/nn/model.hpp"
struct my_format {};
struct cfg : tfm::nn::presets::gpt2<tfm::nn::sizes<64, 16, 32, 1, 4, 4, 64>> {
  using storage = tfm::nn::weight_storage<tfm::nn::dense, my_format>;
};
int main() { tfm::nn::model<cfg> m; }
