# Host-side tests of the CUDA backend: plain C++ (g++) linked with the CUDA runtime and cuBLAS(Lt).
# They run on machines without a GPU (label unit) and cover more when one is present.
if(TFM_CUDA_ENABLED)
  tfm_add_test(test_cuda_host SOURCES backend/test_cuda_host.cpp LABELS unit)
  tfm_enable_cuda(test_cuda_host)
endif()
