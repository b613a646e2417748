// tfm/core/config.hpp — the one header every other tfm header includes first.
// Host/device qualifiers (plain `inline` when the compiler is not nvcc), unrolling hints,
// the library version and what the compiler lets us use.
#pragma once

#define TFM_VERSION_MAJOR 0
#define TFM_VERSION_MINOR 1
#define TFM_VERSION_PATCH 0
#define TFM_VERSION (TFM_VERSION_MAJOR * 10000 + TFM_VERSION_MINOR * 100 + TFM_VERSION_PATCH)

#if defined(__CUDACC__)
#define TFM_HOST_DEVICE __host__ __device__ __forceinline__
#define TFM_DEVICE __device__ __forceinline__
#define TFM_HOST __host__ __forceinline__
#define TFM_GLOBAL __global__
#else
#define TFM_HOST_DEVICE inline
#define TFM_DEVICE inline
#define TFM_HOST inline
#endif

// True while compiling device code (the device pass of nvcc).
#if defined(__CUDA_ARCH__)
#define TFM_DEVICE_CODE 1
#else
#define TFM_DEVICE_CODE 0
#endif

// nvcc's device pass and clang understand `#pragma unroll`; nvcc's host pass hands pragmas to
// the host compiler (g++ would warn), so there it expands to nothing.
#if defined(__CUDA_ARCH__) || (defined(__clang__) && !defined(__CUDACC__))
#define TFM_UNROLL _Pragma("unroll")
#define TFM_NO_UNROLL _Pragma("unroll 1")
#elif defined(__CUDACC__)
#define TFM_UNROLL
#define TFM_NO_UNROLL
#elif defined(__GNUC__)
#define TFM_UNROLL _Pragma("GCC unroll 16")
#define TFM_NO_UNROLL _Pragma("GCC unroll 1")
#else
#define TFM_UNROLL
#define TFM_NO_UNROLL
#endif

#if defined(__GNUC__) || defined(__clang__)
#define TFM_RESTRICT __restrict__
#define TFM_ALWAYS_INLINE inline __attribute__((always_inline))
#define TFM_LIKELY(x) __builtin_expect(!!(x), 1)
#define TFM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define TFM_RESTRICT
#define TFM_ALWAYS_INLINE inline
#define TFM_LIKELY(x) (x)
#define TFM_UNLIKELY(x) (x)
#endif

// CUDA support in host translation units: on when nvcc compiles, or when the build defines
// TFM_WITH_CUDA (CMake does so for targets that link CUDA::cudart). Headers under
// tfm/backend/cuda and the `cuda` memory space need it.
#if defined(__CUDACC__) || defined(TFM_WITH_CUDA)
#define TFM_HAS_CUDA 1
#else
#define TFM_HAS_CUDA 0
#endif

namespace tfm {
struct version_info {
  int major, minor, patch;
};
inline constexpr version_info version{TFM_VERSION_MAJOR, TFM_VERSION_MINOR, TFM_VERSION_PATCH};
}  // namespace tfm
