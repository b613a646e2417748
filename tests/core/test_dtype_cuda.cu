// Our types on the device against CUDA's intrinsics there (bit for bit, every float and
// every pattern), and the device against the host. NaN inputs are held to NaN-ness only in
// the device-vs-host checks: the payload the hardware gives is CUDA's business, and the
// device-vs-CUDA checks already hold it to CUDA's bits.
#define TFM_TEST_NEEDS_CUDA
#define TFM_TEST_MODULE test_dtype_cuda
#include "support/test_main.hpp"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/core/dtype.hpp"

namespace {

using tfm::bfloat16;
using tfm::float8_e4m3;
using tfm::float8_e5m2;
using tfm::half;

constexpr int n_formats = 4;
const char* const format_names[n_formats] = {"half", "bfloat16", "float8_e4m3", "float8_e5m2"};

// A device buffer that frees itself.
template <class T>
struct device_buffer {
  T* ptr = nullptr;
  std::size_t n = 0;
  explicit device_buffer(std::size_t count) : n(count) {
    TFM_CUDA_CHECK(cudaMalloc(&ptr, count * sizeof(T)));
    TFM_CUDA_CHECK(cudaMemset(ptr, 0, count * sizeof(T)));
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  ~device_buffer() { cudaFree(ptr); }
  std::vector<T> to_host() const {
    std::vector<T> h(n);
    TFM_CUDA_CHECK(cudaMemcpy(h.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost));
    return h;
  }
  void from_host(const std::vector<T>& h) {
    TFM_CUDA_CHECK(cudaMemcpy(ptr, h.data(), n * sizeof(T), cudaMemcpyHostToDevice));
  }
};

// ---------------------------------------------------------------- conversions by format index
template <int Fmt>
struct type_of_format;
template <>
struct type_of_format<0> {
  using type = half;
};
template <>
struct type_of_format<1> {
  using type = bfloat16;
};
template <>
struct type_of_format<2> {
  using type = float8_e4m3;
};
template <>
struct type_of_format<3> {
  using type = float8_e5m2;
};
template <int Fmt>
using fmt_t = typename type_of_format<Fmt>::type;

template <int Fmt, class Src>
__host__ __device__ std::uint32_t ours_from(Src x) {
  return fmt_t<Fmt>(x).bits();
}

template <int Fmt, class Src>
__device__ std::uint32_t cuda_from(Src x) {
  if constexpr (Fmt == 0) {
    if constexpr (sizeof(Src) == 4)
      return __half_as_ushort(__float2half(x));
    else
      return __half_as_ushort(__double2half(x));
  } else if constexpr (Fmt == 1) {
    if constexpr (sizeof(Src) == 4)
      return __bfloat16_as_ushort(__float2bfloat16(x));
    else
      return __bfloat16_as_ushort(__double2bfloat16(x));
  } else if constexpr (Fmt == 2) {
    return __nv_fp8_e4m3(x).__x;
  } else {
    return __nv_fp8_e5m2(x).__x;
  }
}

template <int Fmt>
__host__ __device__ float ours_to_float(std::uint32_t b) {
  using T = fmt_t<Fmt>;
  return static_cast<float>(T::from_bits(static_cast<typename T::storage>(b)));
}

template <int Fmt>
__device__ float cuda_to_float(std::uint32_t b) {
  if constexpr (Fmt == 0) {
    return __half2float(__ushort_as_half(static_cast<unsigned short>(b)));
  } else if constexpr (Fmt == 1) {
    return __bfloat162float(__ushort_as_bfloat16(static_cast<unsigned short>(b)));
  } else if constexpr (Fmt == 2) {
    __nv_fp8_e4m3 v;
    v.__x = static_cast<__nv_fp8_storage_t>(b);
    return static_cast<float>(v);
  } else {
    __nv_fp8_e5m2 v;
    v.__x = static_cast<__nv_fp8_storage_t>(b);
    return static_cast<float>(v);
  }
}

// ---------------------------------------------------------------- kernels
constexpr std::uint64_t all_floats = 1ull << 32;
constexpr std::uint64_t host_stride = 509;  // every 509th float also goes back to the host
constexpr std::uint64_t host_count = (all_floats + host_stride - 1) / host_stride;

template <int Fmt>
__device__ void check_float(float x, std::uint64_t i, unsigned long long* bad, unsigned long long* first_bad,
                            std::uint16_t* out) {
  const std::uint32_t ours = ours_from<Fmt>(x);
  if (ours != cuda_from<Fmt>(x)) {
    atomicAdd(&bad[Fmt], 1ull);
    atomicMin(&first_bad[Fmt], static_cast<unsigned long long>(i));
  }
  if (i % host_stride == 0) out[Fmt * host_count + i / host_stride] = static_cast<std::uint16_t>(ours);
}

// Every float, every format: ours against CUDA's, counted on the device.
__global__ void float_sweep(unsigned long long* bad, unsigned long long* first_bad, std::uint16_t* out) {
  const std::uint64_t step = std::uint64_t(gridDim.x) * blockDim.x;
  for (std::uint64_t i = std::uint64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < all_floats; i += step) {
    const float x = __uint_as_float(static_cast<std::uint32_t>(i));
    check_float<0>(x, i, bad, first_bad, out);
    check_float<1>(x, i, bad, first_bad, out);
    check_float<2>(x, i, bad, first_bad, out);
    check_float<3>(x, i, bad, first_bad, out);
  }
}

// Every pattern of format Fmt to float: ours and CUDA's, as float bits.
template <int Fmt>
__global__ void decode_all(std::uint32_t n, std::uint32_t* ours, std::uint32_t* cuda) {
  for (std::uint32_t p = blockIdx.x * blockDim.x + threadIdx.x; p < n; p += gridDim.x * blockDim.x) {
    ours[p] = __float_as_uint(ours_to_float<Fmt>(p));
    cuda[p] = __float_as_uint(cuda_to_float<Fmt>(p));
  }
}

template <int Fmt>
__global__ void from_doubles(const double* xs, std::size_t n, std::uint32_t* ours, std::uint32_t* cuda) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    ours[i] = ours_from<Fmt>(xs[i]);
    cuda[i] = cuda_from<Fmt>(xs[i]);
  }
}

// a op b for random pattern pairs (a in the low half of the word, b in the high half).
template <int Fmt>
__global__ void arithmetic(const std::uint32_t* pairs, std::size_t n, std::uint32_t* ours,
                           std::uint32_t* cuda) {
  for (std::size_t i = blockIdx.x * std::size_t(blockDim.x) + threadIdx.x; i < n;
       i += std::size_t(gridDim.x) * blockDim.x) {
    using T = fmt_t<Fmt>;
    const T a = T::from_bits(static_cast<std::uint16_t>(pairs[i]));
    const T b = T::from_bits(static_cast<std::uint16_t>(pairs[i] >> 16));
    ours[4 * i + 0] = (a + b).bits();
    ours[4 * i + 1] = (a - b).bits();
    ours[4 * i + 2] = (a * b).bits();
    ours[4 * i + 3] = (a / b).bits();
    if constexpr (Fmt == 0) {
      const __half ca = __ushort_as_half(a.bits()), cb = __ushort_as_half(b.bits());
      cuda[4 * i + 0] = __half_as_ushort(__hadd(ca, cb));
      cuda[4 * i + 1] = __half_as_ushort(__hsub(ca, cb));
      cuda[4 * i + 2] = __half_as_ushort(__hmul(ca, cb));
      cuda[4 * i + 3] = __half_as_ushort(__hdiv(ca, cb));
    } else {
      const __nv_bfloat16 ca = __ushort_as_bfloat16(a.bits()), cb = __ushort_as_bfloat16(b.bits());
      cuda[4 * i + 0] = __bfloat16_as_ushort(__hadd(ca, cb));
      cuda[4 * i + 1] = __bfloat16_as_ushort(__hsub(ca, cb));
      cuda[4 * i + 2] = __bfloat16_as_ushort(__hmul(ca, cb));
      cuda[4 * i + 3] = __bfloat16_as_ushort(__hdiv(ca, cb));
    }
  }
}

// ---------------------------------------------------------------- host side helpers
std::string hex(std::uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

bool is_nan_pattern(int fmt, std::uint32_t b) {
  switch (fmt) {
    case 0:
      return tfm::isnan(half::from_bits(static_cast<std::uint16_t>(b)));
    case 1:
      return tfm::isnan(bfloat16::from_bits(static_cast<std::uint16_t>(b)));
    case 2:
      return tfm::isnan(float8_e4m3::from_bits(static_cast<std::uint8_t>(b)));
    default:
      return tfm::isnan(float8_e5m2::from_bits(static_cast<std::uint8_t>(b)));
  }
}

// Reports strict mismatches (bits differ) and, where `nan_lenient` says the input is NaN,
// only a loss of NaN-ness; payload differences there are counted and printed.
struct tally {
  std::string what;
  std::uint64_t strict = 0, nan_payload = 0, checked = 0;
  template <class Detail>
  void check(std::uint32_t got, std::uint32_t want, bool got_nan, bool want_nan, bool nan_lenient,
             Detail detail) {
    ++checked;
    if (got == want) return;
    if (nan_lenient && got_nan && want_nan) {
      ++nan_payload;
      return;
    }
    if (strict < 8) BOOST_ERROR(what << ": " << detail() << " gives " << hex(got) << ", want " << hex(want));
    ++strict;
  }
  ~tally() {
    BOOST_TEST(strict == 0u, what << ": " << strict << " of " << checked << " differ");
    BOOST_TEST_MESSAGE(what << ": " << checked << " checked, " << nan_payload
                            << " NaNs with other payload bits");
  }
};

float f32(std::uint32_t b) { return std::bit_cast<float>(b); }
bool is_nan_float_bits(std::uint32_t b) { return (b & 0x7FFFFFFFu) > 0x7F800000u; }

template <int Fmt>
void check_decode() {
  using T = fmt_t<Fmt>;
  const std::uint32_t n = 1u << (8 * sizeof(typename T::storage));
  device_buffer<std::uint32_t> ours(n), cuda(n);
  decode_all<Fmt><<<64, 256>>>(n, ours.ptr, cuda.ptr);
  TFM_CUDA_CHECK(cudaGetLastError());
  TFM_CUDA_CHECK(cudaDeviceSynchronize());
  const auto o = ours.to_host(), c = cuda.to_host();
  tally vs_cuda{std::string(format_names[Fmt]) + " -> float, device: ours vs CUDA"};
  tally vs_host{std::string(format_names[Fmt]) + " -> float, device vs host"};
  for (std::uint32_t p = 0; p < n; ++p) {
    auto detail = [&] { return "pattern " + hex(p); };
    vs_cuda.check(o[p], c[p], false, false, false, detail);
    const std::uint32_t host = std::bit_cast<std::uint32_t>(ours_to_float<Fmt>(p));
    vs_host.check(o[p], host, is_nan_float_bits(o[p]), is_nan_float_bits(host), is_nan_pattern(Fmt, p),
                  detail);
  }
}

template <int Fmt>
void check_doubles(const std::vector<double>& xs) {
  device_buffer<double> in(xs.size());
  in.from_host(xs);
  device_buffer<std::uint32_t> ours(xs.size()), cuda(xs.size());
  from_doubles<Fmt><<<256, 256>>>(in.ptr, xs.size(), ours.ptr, cuda.ptr);
  TFM_CUDA_CHECK(cudaGetLastError());
  TFM_CUDA_CHECK(cudaDeviceSynchronize());
  const auto o = ours.to_host(), c = cuda.to_host();
  tally vs_cuda{std::string("double -> ") + format_names[Fmt] + ", device: ours vs CUDA"};
  tally vs_host{std::string("double -> ") + format_names[Fmt] + ", device vs host"};
  for (std::size_t i = 0; i < xs.size(); ++i) {
    auto detail = [&] { return "double " + hex(std::bit_cast<std::uint64_t>(xs[i])); };
    vs_cuda.check(o[i], c[i], false, false, false, detail);
    const std::uint32_t host = ours_from<Fmt>(xs[i]);
    vs_host.check(o[i], host, is_nan_pattern(Fmt, o[i]), is_nan_pattern(Fmt, host), std::isnan(xs[i]),
                  detail);
  }
}

template <int Fmt>
void check_arithmetic() {
  std::mt19937 rng(0x0a51u + Fmt);
  std::uniform_int_distribution<std::uint32_t> pat(0, 0xFFFF);
  std::vector<std::uint32_t> pairs(1 << 20);
  for (auto& p : pairs) p = pat(rng) | (pat(rng) << 16);
  device_buffer<std::uint32_t> in(pairs.size()), ours(4 * pairs.size()), cuda(4 * pairs.size());
  in.from_host(pairs);
  arithmetic<Fmt><<<256, 256>>>(in.ptr, pairs.size(), ours.ptr, cuda.ptr);
  TFM_CUDA_CHECK(cudaGetLastError());
  TFM_CUDA_CHECK(cudaDeviceSynchronize());
  const auto o = ours.to_host(), c = cuda.to_host();
  using T = fmt_t<Fmt>;
  tally vs_cuda{std::string(format_names[Fmt]) + " arithmetic, device: ours vs CUDA's __hadd/__hsub/__hmul"};
  // CUDA's device __hdiv multiplies by rcp.approx and patches only tiny results; ours divides in
  // float (IEEE division unless built with fast math), so differences are reported, not failed.
  std::uint64_t div_differs = 0;
  tally vs_host{std::string(format_names[Fmt]) + " arithmetic, device vs host"};
  for (std::size_t i = 0; i < pairs.size(); ++i) {
    const T a = T::from_bits(static_cast<std::uint16_t>(pairs[i]));
    const T b = T::from_bits(static_cast<std::uint16_t>(pairs[i] >> 16));
    const T host[4] = {a + b, a - b, a * b, a / b};
    for (int op = 0; op < 4; ++op) {
      auto detail = [&] { return "op " + std::to_string(op) + " on " + hex(pairs[i]); };
      const std::uint32_t got = o[4 * i + op];
      // A NaN result's payload is the instruction's choice; CUDA's own host and device differ there.
      if (op == 3) {
        div_differs += got != c[4 * i + op] && !(is_nan_pattern(Fmt, got) && is_nan_pattern(Fmt, c[4 * i + op]));
      } else {
        vs_cuda.check(got, c[4 * i + op], is_nan_pattern(Fmt, got), is_nan_pattern(Fmt, c[4 * i + op]), true,
                      detail);
      }
      vs_host.check(got, host[op].bits(), is_nan_pattern(Fmt, got), tfm::isnan(host[op]), true, detail);
    }
  }
  BOOST_TEST_MESSAGE(format_names[Fmt] << " division: " << div_differs << " of " << pairs.size()
                                       << " results differ from CUDA's device __hdiv");
}

std::vector<double> interesting_doubles() {
  std::vector<double> xs;
  std::mt19937_64 rng(0xd0b1e5eedull);
  std::uniform_int_distribution<std::uint64_t> bits64;
  std::uniform_int_distribution<int> expo(-140, 130);
  for (int i = 0; i < (1 << 20); ++i) {
    xs.push_back(std::bit_cast<double>(bits64(rng)));
    const auto e = static_cast<std::uint64_t>(expo(rng) + 1023);
    xs.push_back(std::bit_cast<double>((bits64(rng) & 0x800FFFFFFFFFFFFFull) | (e << 52)));
  }
  // Midpoints of half (a superset of the fp8 ones) and of bfloat16, nudged by 2^-40.
  for (std::uint32_t p = 0; p < 0x7C00; ++p) {
    const double mid =
        (double(half::from_bits(std::uint16_t(p))) + double(half::from_bits(std::uint16_t(p + 1)))) / 2;
    for (double d : {mid, mid * (1 + 0x1p-40), mid * (1 - 0x1p-40)}) xs.push_back(d), xs.push_back(-d);
  }
  for (std::uint32_t p = 0; p < 0x7F80; ++p) {
    const double mid =
        (double(bfloat16::from_bits(std::uint16_t(p))) + double(bfloat16::from_bits(std::uint16_t(p + 1)))) /
        2;
    for (double d : {mid, mid * (1 + 0x1p-40), mid * (1 - 0x1p-40)}) xs.push_back(d), xs.push_back(-d);
  }
  for (std::uint64_t b :
       {0x7FF8000000000000ull, 0xFFF8000000000000ull, 0x7FF0000000000001ull, 0xFFF0000000000001ull,
        0x7FF4000000000000ull, 0x7FFFFFFFFFFFFFFFull, 0x7FF0000000000000ull, 0xFFF0000000000000ull})
    xs.push_back(std::bit_cast<double>(b));
  return xs;
}

}  // namespace

BOOST_AUTO_TEST_CASE(every_float_converts_as_cuda_does_on_the_device) {
  device_buffer<unsigned long long> bad(n_formats), first_bad(n_formats);
  TFM_CUDA_CHECK(cudaMemset(first_bad.ptr, 0xFF, n_formats * sizeof(unsigned long long)));
  device_buffer<std::uint16_t> out(n_formats * host_count);
  float_sweep<<<4096, 256>>>(bad.ptr, first_bad.ptr, out.ptr);
  TFM_CUDA_CHECK(cudaGetLastError());
  TFM_CUDA_CHECK(cudaDeviceSynchronize());
  const auto b = bad.to_host(), fb = first_bad.to_host();
  for (int f = 0; f < n_formats; ++f)
    BOOST_TEST(b[f] == 0u, "float -> " << format_names[f] << ", device: " << b[f]
                                       << " floats differ from CUDA's conversion, first " << hex(fb[f]));

  // Every 509th float against the host.
  const auto o = out.to_host();
  tally vs_host{"float -> T, device vs host"};
  for (std::uint64_t j = 0; j < host_count; ++j) {
    const auto bits = static_cast<std::uint32_t>(j * host_stride);
    const float x = f32(bits);
    const std::uint32_t host[n_formats] = {ours_from<0>(x), ours_from<1>(x), ours_from<2>(x),
                                           ours_from<3>(x)};
    for (int f = 0; f < n_formats; ++f) {
      const std::uint32_t got = o[f * host_count + j];
      vs_host.check(got, host[f], is_nan_pattern(f, got), is_nan_pattern(f, host[f]), std::isnan(x),
                    [&] { return std::string(format_names[f]) + " of float " + hex(bits); });
    }
  }
}

BOOST_AUTO_TEST_CASE(every_pattern_decodes_as_cuda_does_on_the_device) {
  check_decode<0>();
  check_decode<1>();
  check_decode<2>();
  check_decode<3>();
}

BOOST_AUTO_TEST_CASE(doubles_convert_as_cuda_does_on_the_device) {
  const std::vector<double> xs = interesting_doubles();
  check_doubles<0>(xs);
  check_doubles<1>(xs);
  check_doubles<2>(xs);
  check_doubles<3>(xs);
}

BOOST_AUTO_TEST_CASE(arithmetic_matches_cuda_intrinsics_on_the_device) {
  check_arithmetic<0>();
  check_arithmetic<1>();
}
