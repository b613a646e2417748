tfm_add_test(test_tensor SOURCES core/test_tensor.cpp)
tfm_add_test(test_tensor_cuda SOURCES core/test_tensor_cuda.cu)
