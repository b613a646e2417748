# tfm/core/dtype.hpp: host reference tests, the comparison with CUDA's own conversion code
# (CUDA headers only, no GPU) and the device test.
tfm_add_test(test_dtype SOURCES core/test_dtype.cpp)
if(TFM_CUDA_ENABLED)
  # A g++-compiled TU that calls the __host__ __device__ conversions of cuda_fp16.h,
  # cuda_bf16.h and cuda_fp8.h on the host. With CUDA 13.0 these headers compile warning-free
  # under g++ 12 -std=c++20 -Wall -Wextra and need no define; neither cudart nor a GPU is used.
  tfm_add_test(test_dtype_vs_cuda SOURCES core/test_dtype_vs_cuda.cpp)
  target_include_directories(test_dtype_vs_cuda PRIVATE ${CUDAToolkit_INCLUDE_DIRS})
  tfm_add_test(test_dtype_cuda SOURCES core/test_dtype_cuda.cu)
endif()
