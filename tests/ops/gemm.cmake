tfm_add_test(test_gemm SOURCES ops/test_gemm.cpp)
tfm_add_test(test_gemm_tensor_cuda SOURCES ops/test_gemm_tensor_cuda.cu)
