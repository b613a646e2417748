# The model on CUDA: the golden fixtures, CUDA against host on random weights (head dims 64 and
# 128), and the attention kernels alone (fp32 and the bf16 flash variant) against the host ones.
tfm_add_test(test_model_cuda SOURCES nn/test_model_cuda.cu TIMEOUT 600)
if(TARGET test_model_cuda)
  target_compile_definitions(test_model_cuda PRIVATE TFM_SOURCE_DIR_FALLBACK="${PROJECT_SOURCE_DIR}")
  # The host reference code (OpenMP loops) compiled by nvcc's host pass: OpenMP's compile flag
  # only reaches CXX sources through OpenMP::OpenMP_CXX.
  if(OpenMP_CXX_FOUND)
    target_compile_options(test_model_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=${OpenMP_CXX_FLAGS}>)
  endif()
endif()

# LoRA adapters on CUDA: the cuda_backend's lora_* members through the model, against the host
# model (fp32 and bf16 compute, with and without dropout), and merge / unmerge on the device.
tfm_add_test(test_lora_cuda SOURCES nn/test_lora_cuda.cu TIMEOUT 600)
if(TARGET test_lora_cuda)
  if(OpenMP_CXX_FOUND)
    target_compile_options(test_lora_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=${OpenMP_CXX_FLAGS}>)
  endif()
endif()
