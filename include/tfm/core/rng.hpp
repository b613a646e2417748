// tfm/core/rng.hpp — counter-based random numbers (Philox4x32-10) that give the same bits on
// the host and on a CUDA device. A number is a pure function of (seed, stream, index): no
// state to carry between kernels, so initialisation and dropout are reproducible anywhere.
//
// Bit-identical host/device output is the point of this header, so the float transforms
// below use only operations that IEEE 754 rounds the same way everywhere (+, -, *, /, sqrt,
// and explicit fma). Every product that feeds a sum is written as an explicit fma, so no
// compiler's contraction of a*b+c can change a result.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "tfm/core/config.hpp"

namespace tfm::rng {

struct u32x4 {
  std::uint32_t v[4];
};
struct u32x2 {
  std::uint32_t v[2];
};

namespace detail {
inline constexpr std::uint32_t philox_m0 = 0xD2511F53u;
inline constexpr std::uint32_t philox_m1 = 0xCD9E8D57u;
inline constexpr std::uint32_t philox_w0 = 0x9E3779B9u;  // golden ratio
inline constexpr std::uint32_t philox_w1 = 0xBB67AE85u;  // sqrt(3) - 1

TFM_HOST_DEVICE void mulhilo(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  const std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
}

TFM_HOST_DEVICE float fma(float a, float b, float c) {
#if TFM_DEVICE_CODE
  return __fmaf_rn(a, b, c);
#else
  return std::fma(a, b, c);
#endif
}
TFM_HOST_DEVICE float sqrt(float x) {
#if TFM_DEVICE_CODE
  return __fsqrt_rn(x);
#else
  return std::sqrt(x);
#endif
}
TFM_HOST_DEVICE float div(float a, float b) {
#if TFM_DEVICE_CODE
  return __fdiv_rn(a, b);
#else
  return a / b;
#endif
}
TFM_HOST_DEVICE std::uint32_t float_bits(float x) {
#if TFM_DEVICE_CODE
  return __float_as_uint(x);
#else
  std::uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
#endif
}
TFM_HOST_DEVICE float bits_float(std::uint32_t u) {
#if TFM_DEVICE_CODE
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, 4);
  return x;
#endif
}
}  // namespace detail

// Philox4x32 with R rounds (Salmon et al., SC'11). R = 10 is the standard choice (also cuRAND's).
template <int R = 10>
TFM_HOST_DEVICE u32x4 philox4x32(u32x4 ctr, u32x2 key) {
  TFM_UNROLL
  for (int r = 0; r < R; ++r) {
    if (r > 0) {
      key.v[0] += detail::philox_w0;
      key.v[1] += detail::philox_w1;
    }
    std::uint32_t hi0, lo0, hi1, lo1;
    detail::mulhilo(detail::philox_m0, ctr.v[0], hi0, lo0);
    detail::mulhilo(detail::philox_m1, ctr.v[2], hi1, lo1);
    ctr = u32x4{{hi1 ^ ctr.v[1] ^ key.v[0], lo1, hi0 ^ ctr.v[3] ^ key.v[1], lo0}};
  }
  return ctr;
}

// The four 32-bit words for block `index` of stream `stream` under `seed`.
// Block b covers the element indices 4b .. 4b+3 of the helpers below.
TFM_HOST_DEVICE u32x4 random_block(std::uint64_t seed, std::uint64_t stream, std::uint64_t index) {
  const u32x4 ctr{{static_cast<std::uint32_t>(index), static_cast<std::uint32_t>(index >> 32),
                   static_cast<std::uint32_t>(stream), static_cast<std::uint32_t>(stream >> 32)}};
  const u32x2 key{{static_cast<std::uint32_t>(seed), static_cast<std::uint32_t>(seed >> 32)}};
  return philox4x32<10>(ctr, key);
}

// One 32-bit word: element `i` of stream `stream`.
TFM_HOST_DEVICE std::uint32_t random_u32(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) {
  return random_block(seed, stream, i >> 2).v[i & 3];
}

// [0, 1) with 24 random bits: exact multiples of 2^-24.
TFM_HOST_DEVICE float u32_to_uniform(std::uint32_t x) {
  return static_cast<float>(x >> 8) * (1.0f / 16777216.0f);
}
// (0, 1]: never zero, for logarithms.
TFM_HOST_DEVICE float u32_to_uniform_open0(std::uint32_t x) {
  return static_cast<float>((x >> 8) + 1u) * (1.0f / 16777216.0f);
}

namespace detail {
// ln(x) for x in (0, 1]: x = m·2^e with m in [sqrt(1/2), sqrt(2)), ln m by the atanh series in
// s = (m-1)/(m+1) (|s| < 0.172, terms to s^11 give < 1 ulp of truncation).
TFM_HOST_DEVICE float log_unit(float x) {
  std::uint32_t u = float_bits(x);
  int e = static_cast<int>((u >> 23) & 0xff) - 127;
  u = (u & 0x007fffffu) | 0x3f800000u;  // m in [1, 2)
  float m = bits_float(u);
  if (m > 1.41421356f) {
    m = m * 0.5f;
    e += 1;
  }
  const float s = div(m - 1.0f, m + 1.0f);
  const float s2 = s * s;
  float p = 2.0f / 11.0f;
  p = fma(p, s2, 2.0f / 9.0f);
  p = fma(p, s2, 2.0f / 7.0f);
  p = fma(p, s2, 2.0f / 5.0f);
  p = fma(p, s2, 2.0f / 3.0f);
  p = fma(p, s2, 2.0f);
  const float ln_m = p * s;
  return fma(static_cast<float>(e), 0.693147180559945309f, ln_m);
}

// sin(pi/2 · f) and cos(pi/2 · f) for f in [-0.5, 0.5], Taylor polynomials in f
// (truncation error below 3e-10 at |f| = 0.5).
TFM_HOST_DEVICE void sincos_quarter(float f, float& s, float& c) {
  const float f2 = f * f;
  // sin(a f) = a f (1 - a^2 f^2/6 + a^4 f^4/120 - ...), a = pi/2
  float ps = 1.6044118478735982e-4f;  // a^8/9! (times a for the leading factor below)
  ps = fma(ps, f2, -4.6817541353186881e-3f);
  ps = fma(ps, f2, 7.9692626246167046e-2f);
  ps = fma(ps, f2, -6.4596409750624625e-1f);
  ps = fma(ps, f2, 1.5707963267948966f);
  s = ps * f;
  float pc = -2.5202042373060605e-5f;  // -a^10/10!
  pc = fma(pc, f2, 9.1926027483942659e-4f);
  pc = fma(pc, f2, -2.0863480763352961e-2f);
  pc = fma(pc, f2, 2.5366950790104802e-1f);
  pc = fma(pc, f2, -1.2337005501361698f);
  c = fma(pc, f2, 1.0f);
}
}  // namespace detail

// Two standard normal numbers from two words (Box–Muller). Identical bits on host and device.
TFM_HOST_DEVICE void u32_to_normal2(std::uint32_t a, std::uint32_t b, float& z0, float& z1) {
  const float u1 = u32_to_uniform_open0(a);
  const float r = detail::sqrt(-2.0f * detail::log_unit(u1));
  // angle = 2·pi·u2 with u2 = k / 2^24: split into quarter turns q and a remainder in [-0.5, 0.5].
  const std::uint32_t k = b >> 8;                      // 24 bits
  const std::uint32_t q = ((k + (1u << 21)) >> 22) & 3u;  // nearest quarter turn
  const std::int32_t rem = static_cast<std::int32_t>(k - (((k + (1u << 21)) >> 22) << 22));
  const float f = static_cast<float>(rem) * (1.0f / 4194304.0f);  // exact, in [-0.5, 0.5)
  float s, c;
  detail::sincos_quarter(f, s, c);
  float sn, cs;  // rotate by q quarter turns
  switch (q) {
    case 0: sn = s; cs = c; break;
    case 1: sn = c; cs = -s; break;
    case 2: sn = -s; cs = -c; break;
    default: sn = -c; cs = s; break;
  }
  z0 = r * cs;
  z1 = r * sn;
}

// Element i of a uniform [0,1) sequence.
TFM_HOST_DEVICE float uniform(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) {
  return u32_to_uniform(random_u32(seed, stream, i));
}

// Element i of a standard normal sequence (elements 2j and 2j+1 share one Box–Muller pair).
TFM_HOST_DEVICE float normal(std::uint64_t seed, std::uint64_t stream, std::uint64_t i) {
  const u32x4 b = random_block(seed, stream, i >> 2);
  const unsigned lane = static_cast<unsigned>(i & 3);
  float z0, z1;
  u32_to_normal2(b.v[lane & 2u], b.v[(lane & 2u) + 1], z0, z1);
  return (lane & 1u) ? z1 : z0;
}

// A small stateful generator over one (seed, stream): convenient on the host for sequential
// draws; it produces exactly the sequence of random_u32 / uniform / normal at indices 0, 1, ...
class philox {
 public:
  TFM_HOST_DEVICE constexpr philox(std::uint64_t seed, std::uint64_t stream = 0, std::uint64_t offset = 0)
      : seed_(seed), stream_(stream), index_(offset) {}

  TFM_HOST_DEVICE std::uint32_t next_u32() { return random_u32(seed_, stream_, index_++); }
  TFM_HOST_DEVICE float next_uniform() { return uniform(seed_, stream_, index_++); }
  TFM_HOST_DEVICE float next_normal() { return normal(seed_, stream_, index_++); }
  // Uniform integer in [0, n), n > 0 (Lemire's multiply-shift; bias < n / 2^32).
  TFM_HOST_DEVICE std::uint32_t next_below(std::uint32_t n) {
    return static_cast<std::uint32_t>((static_cast<std::uint64_t>(next_u32()) * n) >> 32);
  }

  TFM_HOST_DEVICE constexpr std::uint64_t seed() const { return seed_; }
  TFM_HOST_DEVICE constexpr std::uint64_t stream() const { return stream_; }
  // Position in the sequence: save it in a checkpoint and pass it back as `offset`.
  TFM_HOST_DEVICE constexpr std::uint64_t offset() const { return index_; }

 private:
  std::uint64_t seed_, stream_, index_;
};

}  // namespace tfm::rng
