// The CUDA optimizers (train/optim_cuda.cuh) against the host ones: AdamW and SGD over groups
// with gaps and different weight decays, the global gradient norm and its finite flag, and the
// state's round trip through the host. Without a CUDA device the executable exits 77 (skipped).
#include "tfm/train/optim_cuda.cuh"

#define TFM_TEST_MODULE test_optim_cuda
#define TFM_TEST_NEEDS_CUDA
#include "support/test_main.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "tfm/core/rng.hpp"

namespace tr = tfm::train;

namespace {
std::vector<tr::param_group> some_groups() {
  // two groups, a gap, a tensor longer than one chunk
  return {{"decay", {{0, 70000}, {80000, 100}}, 0.1}, {"plain", {{70016, 3000}, {90000, 5}}, 0.0}};
}
constexpr std::size_t n = 100000;

template <class T>
std::vector<T> to_host(const tfm::buffer<T, tfm::space::cuda>& b) {
  std::vector<T> h(b.size());
  tfm::cuda::copy(h.data(), b.data(), b.size() * sizeof(T), tfm::cuda::copy_kind::device_to_host);
  return h;
}
template <class T>
tfm::buffer<T, tfm::space::cuda> to_device(const std::vector<T>& h) {
  tfm::buffer<T, tfm::space::cuda> b(h.size());
  tfm::cuda::copy(b.data(), h.data(), h.size() * sizeof(T), tfm::cuda::copy_kind::host_to_device);
  return b;
}
}  // namespace

BOOST_AUTO_TEST_CASE(adamw_and_norm_match_the_host) {
  std::vector<float> p(n), g(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = tfm::rng::normal(1, 0, i), g[i] = 0.1f * tfm::rng::normal(1, 1, i);
  auto dp = to_device(p);
  auto dg = to_device(g);
  tr::adamw<float> host(n, some_groups(), {.beta1 = 0.9, .beta2 = 0.99});
  tr::cuda_adamw<float> dev(n, some_groups(), {.beta1 = 0.9, .beta2 = 0.99});
  BOOST_TEST(dev.trainable() == host.trainable());
  for (int s = 0; s < 3; ++s) {
    const auto hn = tr::global_grad_norm<float>(g, host.groups(), 0.5);
    const auto dn = dev.grad_norm(std::span<const float>(dg.data(), n), 0.5);
    BOOST_TEST(dn.finite);
    BOOST_TEST(dn.norm == hn.norm, boost::test_tools::tolerance(1e-5));
    host.step(p, g, 1e-3, 0.5);
    dev.step(std::span<float>(dp.data(), n), std::span<const float>(dg.data(), n), 1e-3, 0.5);
  }
  const auto back = to_host(dp);
  for (std::size_t i = 0; i < n; ++i) BOOST_TEST_REQUIRE(std::abs(back[i] - p[i]) <= 1e-6f * (1 + std::abs(p[i])));
  // state through the host: a fresh optimizer continues identically
  tr::cuda_adamw<float> dev2(n, some_groups(), {.beta1 = 0.9, .beta2 = 0.99});
  dev2.state_from_host(dev.state_to_host());
  dev2.set_steps_taken(dev.steps_taken());
  auto dp2 = to_device(back);
  dev.step(std::span<float>(dp.data(), n), std::span<const float>(dg.data(), n), 1e-3);
  dev2.step(std::span<float>(dp2.data(), n), std::span<const float>(dg.data(), n), 1e-3);
  BOOST_TEST(to_host(dp) == to_host(dp2), boost::test_tools::per_element());
  // a NaN gradient is reported
  g[75000 + 0] = 0;  // in the gap: ignored
  g[500] = std::numeric_limits<float>::quiet_NaN();
  auto dg2 = to_device(g);
  BOOST_TEST(!dev.grad_norm(std::span<const float>(dg2.data(), n)).finite);
}

BOOST_AUTO_TEST_CASE(sgd_matches_the_host) {
  std::vector<float> p(n), g(n);
  for (std::size_t i = 0; i < n; ++i) p[i] = tfm::rng::normal(2, 0, i), g[i] = tfm::rng::normal(2, 1, i);
  auto dp = to_device(p);
  auto dg = to_device(g);
  tr::sgd<float> host(n, some_groups(), {.momentum = 0.9, .nesterov = true});
  tr::cuda_sgd<float> dev(n, some_groups(), {.momentum = 0.9, .nesterov = true});
  for (int s = 0; s < 3; ++s) {
    host.step(p, g, 0.01);
    dev.step(std::span<float>(dp.data(), n), std::span<const float>(dg.data(), n), 0.01);
  }
  const auto back = to_host(dp);
  for (std::size_t i = 0; i < n; ++i) BOOST_TEST_REQUIRE(std::abs(back[i] - p[i]) <= 1e-6f * (1 + std::abs(p[i])));
}
