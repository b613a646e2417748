# The CUDA backend's layer operations alone against the host ones (nn/ops_cuda.cuh): the norms'
# warp-per-row and block-per-row kernels over widths on both sides of each switch.
tfm_add_test(test_ops_cuda SOURCES nn/test_ops_cuda.cu TIMEOUT 300)
if(TARGET test_ops_cuda AND OpenMP_CXX_FOUND)
  target_compile_options(test_ops_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=${OpenMP_CXX_FLAGS}>)
endif()
