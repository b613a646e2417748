// tfm/backend/cuda/types.hpp — where tfm's element types meet CUDA's: the cudaDataType_t that
// cuBLAS(Lt) is told, and the CUDA type (__nv_bfloat16, __half) that kernels compute with.
// tfm::bfloat16 / tfm::half are bit-compatible with CUDA's, so device pointers are reinterpreted,
// never converted. Host-only C++ (CUDA headers, no kernels).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <library_types.h>

#include <type_traits>

#include "tfm/core/config.hpp"
#include "tfm/core/dtype.hpp"

namespace tfm::cuda {

// element_traits<T>: `native` is the CUDA type with T's bits, `data_type` the cudaDataType_t.
// Undefined for element types CUDA GEMMs do not take.
template <class T>
struct element_traits;
template <>
struct element_traits<float> {
  using native = float;
  static constexpr cudaDataType_t data_type = CUDA_R_32F;
};
template <>
struct element_traits<::tfm::bfloat16> {
  using native = __nv_bfloat16;
  static constexpr cudaDataType_t data_type = CUDA_R_16BF;
};
template <>
struct element_traits<::tfm::half> {
  using native = __half;
  static constexpr cudaDataType_t data_type = CUDA_R_16F;
};
template <>
struct element_traits<__nv_bfloat16> : element_traits<::tfm::bfloat16> {};
template <>
struct element_traits<__half> : element_traits<::tfm::half> {};

// T (cv-qualifiers ignored) is an element type CUDA GEMMs take.
template <class T>
concept cuda_element = requires { element_traits<std::remove_cv_t<T>>::data_type; };

template <cuda_element T>
inline constexpr cudaDataType_t data_type_of = element_traits<std::remove_cv_t<T>>::data_type;

// The CUDA type with T's bits, keeping T's const.
template <cuda_element T>
using native_t = std::conditional_t<std::is_const_v<T>,
                                    const typename element_traits<std::remove_cv_t<T>>::native,
                                    typename element_traits<std::remove_cv_t<T>>::native>;

// The same device pointer seen as the CUDA type (bit-compatible, so only the type changes).
template <cuda_element T>
native_t<T>* to_native(T* p) noexcept {
  using N = std::remove_cv_t<native_t<T>>;
  static_assert(sizeof(N) == sizeof(std::remove_cv_t<T>) && alignof(N) == alignof(std::remove_cv_t<T>),
                "tfm::cuda::to_native: tfm's type must be bit-compatible with CUDA's");
  return reinterpret_cast<native_t<T>*>(p);
}

}  // namespace tfm::cuda
