// The counter-based generator on the device gives the host's bits exactly.
#define TFM_TEST_NEEDS_CUDA
#define TFM_TEST_MODULE test_rng_cuda
#include "support/test_main.hpp"

#include <cstdint>
#include <cstring>
#include <vector>

#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/core/rng.hpp"

namespace {
__global__ void draw(std::uint64_t seed, std::uint64_t stream, std::uint64_t n, std::uint32_t* u32,
                     float* uni, float* nrm) {
  for (std::uint64_t i = blockIdx.x * std::uint64_t(blockDim.x) + threadIdx.x; i < n;
       i += std::uint64_t(gridDim.x) * blockDim.x) {
    u32[i] = tfm::rng::random_u32(seed, stream, i);
    uni[i] = tfm::rng::uniform(seed, stream, i);
    nrm[i] = tfm::rng::normal(seed, stream, i);
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(device_matches_host_bit_for_bit) {
  const std::uint64_t n = 1 << 20, seed = 0x5eedull, stream = 11;
  std::uint32_t* du;
  float *dn, *dr;
  TFM_CUDA_CHECK(cudaMalloc(&du, n * 4));
  TFM_CUDA_CHECK(cudaMalloc(&dn, n * 4));
  TFM_CUDA_CHECK(cudaMalloc(&dr, n * 4));
  draw<<<256, 256>>>(seed, stream, n, du, dn, dr);
  TFM_CUDA_CHECK(cudaGetLastError());
  std::vector<std::uint32_t> u(n);
  std::vector<float> un(n), nr(n);
  TFM_CUDA_CHECK(cudaMemcpy(u.data(), du, n * 4, cudaMemcpyDeviceToHost));
  TFM_CUDA_CHECK(cudaMemcpy(un.data(), dn, n * 4, cudaMemcpyDeviceToHost));
  TFM_CUDA_CHECK(cudaMemcpy(nr.data(), dr, n * 4, cudaMemcpyDeviceToHost));
  cudaFree(du);
  cudaFree(dn);
  cudaFree(dr);
  std::size_t bad_u = 0, bad_un = 0, bad_nr = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    const float hu = tfm::rng::uniform(seed, stream, i), hn = tfm::rng::normal(seed, stream, i);
    bad_u += u[i] != tfm::rng::random_u32(seed, stream, i);
    bad_un += std::memcmp(&hu, &un[i], 4) != 0;
    bad_nr += std::memcmp(&hn, &nr[i], 4) != 0;
  }
  BOOST_TEST(bad_u == 0u);
  BOOST_TEST(bad_un == 0u);
  BOOST_TEST(bad_nr == 0u);
}
