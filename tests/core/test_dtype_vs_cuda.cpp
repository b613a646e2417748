// Our conversions against CUDA's own, bit for bit, on the host: cuda_fp16.h, cuda_bf16.h and
// cuda_fp8.h define their conversions __host__ __device__, so a g++ translation unit can call
// them (no GPU, no cudart). The device instructions are compared in test_dtype_cuda.cu.
//
// float -> T: every float takes 100+ s on one core for all four formats (about 4 ns per
// input for ours and CUDA's together), so
// by default the sweep is every exponent and sign x the top 11 mantissa bits x 6 patterns of
// the low 12 (the rounding cases at every rounding position), plus every 97th float.
// TFM_DTYPE_FULL_SWEEP=1 checks all 2^32 floats.
#define TFM_TEST_MODULE test_dtype_vs_cuda
#include "support/test_main.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "tfm/core/dtype.hpp"

// cuda_fp16.h declares a global `half` (typedef of __half): tfm's types are named in full here.
using tfm::bfloat16;
using tfm::float8_e4m3;
using tfm::float8_e5m2;

namespace {

// CUDA's conversions, reduced to bit patterns.
std::uint16_t cuda_f16(float x) { return static_cast<__half_raw>(__float2half(x)).x; }
std::uint16_t cuda_f16_ctor(float x) { return static_cast<__half_raw>(__half(x)).x; }
std::uint16_t cuda_bf16(float x) { return static_cast<__nv_bfloat16_raw>(__float2bfloat16(x)).x; }
std::uint16_t cuda_bf16_ctor(float x) { return static_cast<__nv_bfloat16_raw>(__nv_bfloat16(x)).x; }
std::uint8_t cuda_e4m3(float x) { return __nv_fp8_e4m3(x).__x; }
std::uint8_t cuda_e5m2(float x) { return __nv_fp8_e5m2(x).__x; }

std::uint16_t cuda_f16(double x) { return static_cast<__half_raw>(__double2half(x)).x; }
std::uint16_t cuda_bf16(double x) { return static_cast<__nv_bfloat16_raw>(__double2bfloat16(x)).x; }
std::uint8_t cuda_e4m3(double x) { return __nv_fp8_e4m3(x).__x; }
std::uint8_t cuda_e5m2(double x) { return __nv_fp8_e5m2(x).__x; }

__half cuda_half_of(std::uint16_t b) {
  __half_raw r;
  r.x = b;
  return __half(r);
}
__nv_bfloat16 cuda_bf16_of(std::uint16_t b) {
  __nv_bfloat16_raw r;
  r.x = b;
  return __nv_bfloat16(r);
}
float cuda_to_float_f16(std::uint32_t b) { return __half2float(cuda_half_of(static_cast<std::uint16_t>(b))); }
float cuda_to_float_bf16(std::uint32_t b) {
  return __bfloat162float(cuda_bf16_of(static_cast<std::uint16_t>(b)));
}
float cuda_to_float_e4m3(std::uint32_t b) {
  __nv_fp8_e4m3 v;
  v.__x = static_cast<__nv_fp8_storage_t>(b);
  return static_cast<float>(v);
}
float cuda_to_float_e5m2(std::uint32_t b) {
  __nv_fp8_e5m2 v;
  v.__x = static_cast<__nv_fp8_storage_t>(b);
  return static_cast<float>(v);
}

std::uint32_t u32(float x) { return std::bit_cast<std::uint32_t>(x); }
float f32(std::uint32_t b) { return std::bit_cast<float>(b); }

std::string hex(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

bool full_sweep() {
  const char* e = std::getenv("TFM_DTYPE_FULL_SWEEP");
  return e != nullptr && std::string(e) == "1";
}

// The float inputs of the sweep, by index.
struct float_sweep {
  std::uint64_t stride;
  std::uint64_t boundary_count() const { return stride == 1 ? 0 : 512ull * 2048 * 6; }
  std::uint64_t strided_count() const { return (0x100000000ull + stride - 1) / stride; }
  std::uint64_t size() const { return boundary_count() + strided_count(); }
  std::uint32_t operator()(std::uint64_t i) const {
    static constexpr std::uint32_t low[6] = {0x000, 0x001, 0x7FF, 0x800, 0x801, 0xFFF};
    if (i < boundary_count()) {
      const auto sign_exp = static_cast<std::uint32_t>(i / (2048 * 6));
      const auto high = static_cast<std::uint32_t>((i / 6) % 2048);
      return (sign_exp << 23) | (high << 12) | low[i % 6];
    }
    return static_cast<std::uint32_t>((i - boundary_count()) * stride);
  }
};

// Counts indices where ours(input(i)) != theirs(input(i)); on a mismatch, reports the first few.
template <class Input, class Ours, class Theirs>
void compare_all(const std::string& what, std::uint64_t n, Input input, Ours ours, Theirs theirs) {
  const auto t0 = std::chrono::steady_clock::now();
  std::uint64_t bad = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(+ : bad)
#endif
  for (std::int64_t i = 0; i < static_cast<std::int64_t>(n); ++i) {
    const auto x = input(static_cast<std::uint64_t>(i));
    bad += ours(x) != theirs(x) ? 1 : 0;
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  BOOST_TEST_MESSAGE(what << ": " << n << " inputs in " << s << " s");
  BOOST_TEST(bad == 0u, what << ": " << bad << " of " << n << " inputs differ from CUDA");
  int shown = 0;
  for (std::uint64_t i = 0; bad != 0 && i < n && shown < 8; ++i) {
    const auto x = input(i);
    if (ours(x) == theirs(x)) continue;
    ++shown;
    std::uint64_t xb;
    if constexpr (sizeof(x) == 4)
      xb = std::bit_cast<std::uint32_t>(x);
    else
      xb = std::bit_cast<std::uint64_t>(x);
    BOOST_ERROR(what << ": input " << hex(xb) << " gives " << hex(ours(x)) << ", CUDA " << hex(theirs(x)));
  }
}

// `ours` defaults to T's constructor; the portable _ref path is compared separately where the
// host uses another one (F16C for half, the add-and-shift for bfloat16).
template <class T, class Theirs, class Ours>
void compare_from_float(const std::string& what, Theirs theirs, Ours ours) {
  const float_sweep sweep{full_sweep() ? 1u : 97u};
  compare_all(
      what, sweep.size(), [&](std::uint64_t i) { return f32(sweep(i)); },
      [&](float x) { return static_cast<std::uint32_t>(ours(x)); },
      [&](float x) { return static_cast<std::uint32_t>(theirs(x)); });
}
template <class T, class Theirs>
void compare_from_float(const std::string& what, Theirs theirs) {
  compare_from_float<T>(what, theirs, [](float x) { return T(x).bits(); });
}

template <class T, class Theirs>
void compare_to_float(const std::string& what, Theirs theirs) {
  constexpr std::uint64_t n = std::uint64_t(1) << (8 * sizeof(typename T::storage));
  compare_all(
      what, n, [](std::uint64_t i) { return static_cast<std::uint32_t>(i); },
      [](std::uint32_t b) {
        return u32(static_cast<float>(T::from_bits(static_cast<typename T::storage>(b))));
      },
      [&](std::uint32_t b) { return u32(theirs(b)); });
}

// Doubles where a single rounding matters: every value of T, the midpoints between
// neighbours nudged by far less than a float ulp, random doubles in and out of range, NaNs.
template <class T>
std::vector<double> interesting_doubles() {
  std::vector<double> xs;
  const std::uint32_t n = 1u << (8 * sizeof(typename T::storage));
  for (std::uint32_t p = 0; p + 1 < n; ++p) {
    const T a = T::from_bits(static_cast<typename T::storage>(p));
    const T b = T::from_bits(static_cast<typename T::storage>(p + 1));
    if (!isfinite(a)) continue;
    const double va = static_cast<double>(a);
    xs.push_back(va);
    if (!isfinite(b) || signbit(a) != signbit(b)) continue;
    const double mid = (va + static_cast<double>(b)) / 2;
    for (double d : {mid, mid * (1 + 0x1p-40), mid * (1 - 0x1p-40), std::nextafter(mid, 0.0),
                     std::nextafter(mid, 2 * mid)})
      xs.push_back(d);
  }
  const double max = static_cast<double>(std::numeric_limits<T>::max());
  for (double d : {max * (1 + 0x1p-40), max * 1.03, max * 1.0625, max * 1.125, max * 2, 1e300, 0x1p-150,
                   std::numeric_limits<double>::infinity(), std::numeric_limits<double>::denorm_min()})
    xs.push_back(d), xs.push_back(-d);
  std::mt19937_64 rng(0xd0b1e5eedull);
  std::uniform_int_distribution<std::uint64_t> bits64;
  std::uniform_int_distribution<int> expo(-140, 130);
  for (int i = 0; i < 500000; ++i) {
    xs.push_back(std::bit_cast<double>(bits64(rng)));
    const auto e = static_cast<std::uint64_t>(expo(rng) + 1023);
    xs.push_back(std::bit_cast<double>((bits64(rng) & 0x800FFFFFFFFFFFFFull) | (e << 52)));
  }
  for (std::uint64_t b : {0x7FF8000000000000ull, 0xFFF8000000000000ull, 0x7FF0000000000001ull,
                          0xFFF0000000000001ull, 0x7FF4000000000000ull, 0xFFF4000000000000ull,
                          0x7FFC000000000000ull, 0x7FFFFFFFFFFFFFFFull, 0xFFFFFFFFFFFFFFFFull})
    xs.push_back(std::bit_cast<double>(b));
  return xs;
}

template <class T, class Theirs>
void compare_from_double(const std::string& what, Theirs theirs) {
  const std::vector<double> xs = interesting_doubles<T>();
  compare_all(
      what, xs.size(), [&](std::uint64_t i) { return xs[i]; },
      [](double x) { return static_cast<std::uint32_t>(T(x).bits()); },
      [&](double x) { return static_cast<std::uint32_t>(theirs(x)); });
}

}  // namespace

BOOST_AUTO_TEST_CASE(float_to_half_matches_float2half) {
  compare_from_float<tfm::half>("float -> half vs __float2half", [](float x) { return cuda_f16(x); });
  compare_from_float<tfm::half>("float -> half vs __half(float)", [](float x) { return cuda_f16_ctor(x); });
}
BOOST_AUTO_TEST_CASE(float_to_bfloat16_matches_float2bfloat16) {
  compare_from_float<bfloat16>("float -> bfloat16 vs __float2bfloat16", [](float x) { return cuda_bf16(x); });
  compare_from_float<bfloat16>("float -> bfloat16 vs __nv_bfloat16(float)",
                               [](float x) { return cuda_bf16_ctor(x); });
}
BOOST_AUTO_TEST_CASE(float_to_fp8_matches_nv_fp8_constructors) {
  compare_from_float<float8_e4m3>("float -> e4m3 vs __nv_fp8_e4m3(float)",
                                  [](float x) { return cuda_e4m3(x); });
  compare_from_float<float8_e5m2>("float -> e5m2 vs __nv_fp8_e5m2(float)",
                                  [](float x) { return cuda_e5m2(x); });
}

BOOST_AUTO_TEST_CASE(portable_paths_match_too) {
  compare_from_float<tfm::half>(
      "float -> half, portable path, vs __float2half", [](float x) { return cuda_f16(x); },
      [](float x) { return tfm::detail::from_float_ref<tfm::formats::f16>(x); });
  compare_from_float<bfloat16>(
      "float -> bfloat16, portable path, vs __float2bfloat16", [](float x) { return cuda_bf16(x); },
      [](float x) { return tfm::detail::from_float_ref<tfm::formats::bf16>(x); });
  for (std::uint32_t b = 0; b < 0x10000; ++b) {
    const float ours = tfm::detail::to_float_ref<tfm::formats::f16>(static_cast<std::uint16_t>(b));
    BOOST_TEST(u32(ours) == u32(cuda_to_float_f16(b)), "half -> float, portable path, pattern " << hex(b));
  }
}

BOOST_AUTO_TEST_CASE(to_float_matches_for_every_pattern) {
  compare_to_float<tfm::half>("half -> float vs __half2float", cuda_to_float_f16);
  compare_to_float<bfloat16>("bfloat16 -> float vs __bfloat162float", cuda_to_float_bf16);
  compare_to_float<float8_e4m3>("e4m3 -> float vs __nv_fp8_e4m3::operator float", cuda_to_float_e4m3);
  compare_to_float<float8_e5m2>("e5m2 -> float vs __nv_fp8_e5m2::operator float", cuda_to_float_e5m2);
}

BOOST_AUTO_TEST_CASE(double_conversions_match) {
  compare_from_double<tfm::half>("double -> half vs __double2half", [](double x) { return cuda_f16(x); });
  compare_from_double<bfloat16>("double -> bfloat16 vs __double2bfloat16",
                                [](double x) { return cuda_bf16(x); });
  compare_from_double<float8_e4m3>("double -> e4m3 vs __nv_fp8_e4m3(double)",
                                   [](double x) { return cuda_e4m3(x); });
  compare_from_double<float8_e5m2>("double -> e5m2 vs __nv_fp8_e5m2(double)",
                                   [](double x) { return cuda_e5m2(x); });
}

// CUDA's host operators on __half / __nv_bfloat16 (float arithmetic rounded back) against ours.
BOOST_AUTO_TEST_CASE(arithmetic_matches_cuda_host_operators) {
  std::mt19937 rng(0x0a51u);
  std::uniform_int_distribution<std::uint32_t> pat(0, 0xFFFF);
  std::vector<std::uint32_t> pairs(400000);
  for (auto& p : pairs) p = pat(rng) | (pat(rng) << 16);
  auto input = [&](std::uint64_t i) { return pairs[i]; };
  const char* names[4] = {"+", "-", "*", "/"};
  for (int op = 0; op < 4; ++op) {
    auto apply = [op](auto a, auto b) {
      switch (op) {
        case 0:
          return a + b;
        case 1:
          return a - b;
        case 2:
          return a * b;
        default:
          return a / b;
      }
    };
    compare_all(
        std::string("half ") + names[op], pairs.size(), input,
        [&](std::uint32_t p) {
          return static_cast<std::uint32_t>(
              apply(tfm::half::from_bits(std::uint16_t(p)), tfm::half::from_bits(std::uint16_t(p >> 16)))
                  .bits());
        },
        [&](std::uint32_t p) {
          return static_cast<std::uint32_t>(
              static_cast<__half_raw>(
                  apply(cuda_half_of(std::uint16_t(p)), cuda_half_of(std::uint16_t(p >> 16))))
                  .x);
        });
    compare_all(
        std::string("bfloat16 ") + names[op], pairs.size(), input,
        [&](std::uint32_t p) {
          return static_cast<std::uint32_t>(
              apply(bfloat16::from_bits(std::uint16_t(p)), bfloat16::from_bits(std::uint16_t(p >> 16)))
                  .bits());
        },
        [&](std::uint32_t p) {
          return static_cast<std::uint32_t>(
              static_cast<__nv_bfloat16_raw>(
                  apply(cuda_bf16_of(std::uint16_t(p)), cuda_bf16_of(std::uint16_t(p >> 16))))
                  .x);
        });
  }
}

// numeric_limits against CUDA's own constants where it has them.
BOOST_AUTO_TEST_CASE(limits_match_cuda_constants) {
  BOOST_TEST(std::numeric_limits<tfm::half>::max().bits() ==
             static_cast<__half_raw>(CUDART_MAX_NORMAL_FP16).x);
  BOOST_TEST(std::numeric_limits<tfm::half>::denorm_min().bits() ==
             static_cast<__half_raw>(CUDART_MIN_DENORM_FP16).x);
  BOOST_TEST(std::numeric_limits<tfm::half>::infinity().bits() == static_cast<__half_raw>(CUDART_INF_FP16).x);
  BOOST_TEST(std::numeric_limits<tfm::half>::quiet_NaN().bits() ==
             static_cast<__half_raw>(CUDART_NAN_FP16).x);
  BOOST_TEST(std::numeric_limits<bfloat16>::max().bits() ==
             static_cast<__nv_bfloat16_raw>(CUDART_MAX_NORMAL_BF16).x);
  BOOST_TEST(std::numeric_limits<bfloat16>::denorm_min().bits() ==
             static_cast<__nv_bfloat16_raw>(CUDART_MIN_DENORM_BF16).x);
  BOOST_TEST(std::numeric_limits<bfloat16>::infinity().bits() ==
             static_cast<__nv_bfloat16_raw>(CUDART_INF_BF16).x);
  BOOST_TEST(std::numeric_limits<bfloat16>::quiet_NaN().bits() ==
             static_cast<__nv_bfloat16_raw>(CUDART_NAN_BF16).x);
}
