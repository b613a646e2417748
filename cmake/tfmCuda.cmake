# tfm_enable_cuda(<target>): make <target> use tfm's CUDA parts (the `cuda` memory space,
# cuBLASLt GEMM, CUDA kernels). Needs the CUDA toolkit; host-only users never call it.
function(tfm_enable_cuda target)
  if(NOT TARGET CUDA::cudart)
    find_package(CUDAToolkit REQUIRED)
  endif()
  target_link_libraries(${target} PRIVATE CUDA::cudart CUDA::cublasLt CUDA::cublas)
  target_compile_definitions(${target} PRIVATE TFM_WITH_CUDA=1)
endfunction()
