// A CUDA program using tfm as a package: tfm types and the RNG in a kernel. Without a GPU it
// only proves that it compiles and links, and says so.
#include <tfm/tfm.hpp>

#include <cstdio>

__global__ void draw(float* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = float(tfm::bfloat16(tfm::rng::normal(7, 0, i)));
}

int main() {
  const std::string why = tfm::cuda::why_no_device();
  if (!why.empty()) {
    std::printf("tfm CUDA consumer built; not run: %s\n", why.c_str());
    return 0;
  }
  tfm::buffer<float, tfm::space::cuda> d(256);
  draw<<<1, 256>>>(d.data(), 256);
  TFM_CUDA_CHECK(cudaGetLastError());
  tfm::buffer<float> h(256);
  tfm::cuda::copy(h.data(), d.data(), 256 * sizeof(float));
  for (int i = 0; i < 256; ++i)
    if (h[i] != float(tfm::bfloat16(tfm::rng::normal(7, 0, i)))) return 1;
  std::printf("tfm CUDA consumer: device and host agree\n");
  return 0;
}
