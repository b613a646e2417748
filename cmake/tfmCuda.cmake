# tfm_enable_cuda(<target>): make <target> use tfm's CUDA parts (the `cuda` memory space,
# cuBLASLt GEMM, CUDA kernels). Needs the CUDA toolkit; host-only users never call it.
function(tfm_enable_cuda target)
  if(NOT TARGET CUDA::cudart)
    find_package(CUDAToolkit REQUIRED)
  endif()
  target_link_libraries(${target} PRIVATE CUDA::cudart CUDA::cublasLt CUDA::cublas)
  target_compile_definitions(${target} PRIVATE TFM_WITH_CUDA=1)
  # Link the runtime once, as the shared library the toolkit's other libraries use.
  set_target_properties(${target} PROPERTIES CUDA_RUNTIME_LIBRARY Shared)
  # tfm is C++20 in .cu files too. CMake 3.25 knows no C++20 flag for nvcc 13 (CUDA_STANDARD 20
  # fails there), so ask for it directly unless the target sets a CUDA standard itself.
  get_target_property(_std ${target} CUDA_STANDARD)
  if(NOT _std)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-std=c++20>)
  endif()
endfunction()
