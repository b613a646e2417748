// A host program using tfm as a package: a small GEMM through the public API.
#include <tfm/tfm.hpp>

#include <cstdio>

int main() {
  auto a = tfm::make_owning_tensor<float>(tfm::make_row_major(3, 5));  // (3, 5)
  auto b = tfm::make_owning_tensor<float>(tfm::make_row_major(5, 2));  // (5, 2)
  auto c = tfm::make_owning_tensor<float>(tfm::make_row_major(3, 2));  // (3, 2)
  tfm::fill(a.view(), 1.0f);
  tfm::fill(b.view(), 2.0f);
  tfm::gemm(1.0f, a.view(), b.view(), 0.0f, c.view());
  const float half_trip = float(tfm::half(c(2, 1)));
  std::printf("tfm %d.%d.%d consumer: c(2,1) = %g\n", tfm::version.major, tfm::version.minor,
              tfm::version.patch, half_trip);
  return c(2, 1) == 10.0f && half_trip == 10.0f ? 0 : 1;
}
