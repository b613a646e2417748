#define TFM_TEST_MODULE test_rng
#include "support/test_main.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "tfm/core/rng.hpp"

namespace tfm::test {
std::vector<float> strict_normals(std::uint64_t seed, std::uint64_t stream, std::size_t n);
std::vector<float> strict_uniforms(std::uint64_t seed, std::uint64_t stream, std::size_t n);
}  // namespace tfm::test

using namespace tfm;

// Random123's published known-answer vectors (tests/kat_vectors of the reference code).
BOOST_AUTO_TEST_CASE(philox_known_answers) {
  struct kat {
    rng::u32x4 ctr;
    rng::u32x2 key;
    std::uint32_t out[4];
  };
  const kat kats[] = {
      {{{0, 0, 0, 0}}, {{0, 0}}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}}, {{0xffffffff, 0xffffffff}},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}}, {{0xa4093822, 0x299f31d0}},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const auto& k : kats) {
    const auto r = rng::philox4x32<10>(k.ctr, k.key);
    for (int i = 0; i < 4; ++i) BOOST_TEST(r.v[i] == k.out[i]);
  }
}

BOOST_AUTO_TEST_CASE(counter_mapping_and_stateful_generator_agree) {
  const std::uint64_t seed = 0x0123456789abcdefull, stream = 0xfedcba9876543210ull;
  const auto b = rng::random_block(seed, stream, 0x100000002ull);
  const auto d = rng::philox4x32<10>({{2u, 1u, 0x76543210u, 0xfedcba98u}}, {{0x89abcdefu, 0x01234567u}});
  for (int i = 0; i < 4; ++i) BOOST_TEST(b.v[i] == d.v[i]);

  rng::philox g(seed, stream, 5);
  for (std::uint64_t i = 5; i < 200; ++i) BOOST_TEST(g.next_u32() == rng::random_u32(seed, stream, i));
  BOOST_TEST(g.offset() == 200u);
  rng::philox h(seed, stream, 0);
  for (std::uint64_t i = 0; i < 64; ++i) BOOST_TEST(h.next_normal() == rng::normal(seed, stream, i));
}

BOOST_AUTO_TEST_CASE(streams_and_seeds_are_independent) {
  int same_stream = 0, same_seed = 0;
  for (std::uint64_t i = 0; i < 4096; ++i) {
    same_stream += rng::random_u32(1, 0, i) == rng::random_u32(1, 1, i);
    same_seed += rng::random_u32(1, 0, i) == rng::random_u32(2, 0, i);
  }
  BOOST_TEST(same_stream <= 1);
  BOOST_TEST(same_seed <= 1);
}

BOOST_AUTO_TEST_CASE(uniform_range_and_moments) {
  const std::size_t n = 1 << 20;
  double sum = 0, sum2 = 0;
  float lo = 1, hi = 0;
  std::vector<int> bins(64, 0);
  for (std::size_t i = 0; i < n; ++i) {
    const float u = rng::uniform(42, 7, i);
    BOOST_REQUIRE(u >= 0.0f);
    BOOST_REQUIRE(u < 1.0f);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    sum += u;
    sum2 += double(u) * u;
    ++bins[static_cast<int>(u * 64)];
  }
  const double mean = sum / n, var = sum2 / n - mean * mean;
  BOOST_TEST(std::abs(mean - 0.5) < 2e-3);
  BOOST_TEST(std::abs(var - 1.0 / 12) < 1e-3);
  // chi-square over 64 equal bins; 63 degrees of freedom, 99.99th percentile ~ 117
  double chi2 = 0;
  const double expect = double(n) / 64;
  for (int c : bins) chi2 += (c - expect) * (c - expect) / expect;
  BOOST_TEST(chi2 < 117.0);
  BOOST_TEST(lo < 1e-5f);
  BOOST_TEST(hi > 1.0f - 1e-5f);
  // open-at-zero variant never returns 0
  BOOST_TEST(rng::u32_to_uniform_open0(0u) > 0.0f);
  BOOST_TEST(rng::u32_to_uniform_open0(0xffffffffu) == 1.0f);
}

// Our log/sincos replacements against the C library in double.
BOOST_AUTO_TEST_CASE(normal_transform_accuracy) {
  double worst = 0;
  for (std::uint64_t i = 0; i < 200000; ++i) {
    const std::uint32_t a = rng::random_u32(9, 0, 2 * i), b = rng::random_u32(9, 0, 2 * i + 1);
    float z0, z1;
    rng::u32_to_normal2(a, b, z0, z1);
    const double u1 = double((a >> 8) + 1u) / 16777216.0, u2 = double(b >> 8) / 16777216.0;
    const double r = std::sqrt(-2.0 * std::log(u1));
    const double e0 = r * std::cos(2 * M_PI * u2), e1 = r * std::sin(2 * M_PI * u2);
    worst = std::max({worst, std::abs(z0 - e0) / std::max(1.0, r), std::abs(z1 - e1) / std::max(1.0, r)});
  }
  BOOST_TEST_MESSAGE("worst normal error relative to radius: " << worst);
  BOOST_TEST(worst < 2e-6);
  // extreme inputs: u1 = 2^-24 (largest radius) and u1 = 1 (radius 0)
  float z0, z1;
  rng::u32_to_normal2(0u, 0u, z0, z1);
  BOOST_TEST(std::abs(z0 - std::sqrt(-2.0 * std::log(1.0 / 16777216.0))) < 1e-5);
  BOOST_TEST(std::abs(z1) < 1e-6);
  rng::u32_to_normal2(0xffffffffu, 0x40000000u, z0, z1);
  BOOST_TEST(z0 == 0.0f);
}

BOOST_AUTO_TEST_CASE(normal_moments) {
  const std::size_t n = 1 << 20;
  double s1 = 0, s2 = 0, s3 = 0, s4 = 0;
  std::size_t beyond3 = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double z = rng::normal(1234, 0, i);
    s1 += z;
    s2 += z * z;
    s3 += z * z * z;
    s4 += z * z * z * z;
    beyond3 += std::abs(z) > 3;
  }
  const double m = s1 / n, v = s2 / n - m * m;
  BOOST_TEST(std::abs(m) < 5e-3);
  BOOST_TEST(std::abs(v - 1) < 5e-3);
  BOOST_TEST(std::abs(s3 / n) < 2e-2);
  BOOST_TEST(std::abs(s4 / n - 3) < 4e-2);
  // P(|z| > 3) = 0.0026998
  BOOST_TEST(std::abs(double(beyond3) / n - 0.0026998) < 3e-4);
}

// The same numbers whatever the compiler does with the float maths (stands in for the GPU).
BOOST_AUTO_TEST_CASE(bits_do_not_depend_on_compile_flags) {
  const std::size_t n = 1 << 16;
  const auto sn = test::strict_normals(77, 3, n);
  const auto su = test::strict_uniforms(77, 3, n);
  std::size_t diff_n = 0, diff_u = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const float zn = rng::normal(77, 3, i), zu = rng::uniform(77, 3, i);
    diff_n += std::memcmp(&zn, &sn[i], 4) != 0;
    diff_u += std::memcmp(&zu, &su[i], 4) != 0;
  }
  BOOST_TEST(diff_n == 0u);
  BOOST_TEST(diff_u == 0u);
}
