# The trainer: optimizers (vs PyTorch numbers), schedules, data batches, the loop (determinism,
# exact resume, non-finite steps), checkpoints and Hugging Face weight formats.
if(TFM_TEXT_ENABLED)
  tfm_add_test(test_train SOURCES train/test_train.cpp LABELS unit)
  target_link_libraries(test_train PRIVATE tfm::text)
  tfm_add_test(test_checkpoint SOURCES train/test_checkpoint.cpp LABELS unit)
  target_link_libraries(test_checkpoint PRIVATE tfm::text)
endif()
# The CUDA optimizers against the host ones (runs through scripts/gpu-check.sh).
tfm_add_test(test_optim_cuda SOURCES train/test_optim_cuda.cu)
if(TARGET test_optim_cuda AND OpenMP_CXX_FOUND)
  target_compile_options(test_optim_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=${OpenMP_CXX_FLAGS}>)
endif()
# The trainer on a cuda-space model (runs through scripts/gpu-check.sh).
if(TFM_TEXT_ENABLED)
  tfm_add_test(test_trainer_cuda SOURCES train/test_trainer_cuda.cu)
  if(TARGET test_trainer_cuda)
    target_link_libraries(test_trainer_cuda PRIVATE tfm::text)
    if(OpenMP_CXX_FOUND)
      target_compile_options(test_trainer_cuda PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=${OpenMP_CXX_FLAGS}>)
    endif()
  endif()
endif()
