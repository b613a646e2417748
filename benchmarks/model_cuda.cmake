# The model on CUDA: flash attention (fp32 and bf16 inputs) forward/backward, GPT-2 small training step.
tfm_add_benchmark(bench_model_cuda SOURCES bench_model_cuda.cu)
if(TARGET bench_model_cuda AND OpenMP_CXX_FOUND)
  target_compile_options(bench_model_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=${OpenMP_CXX_FLAGS}>)
endif()
