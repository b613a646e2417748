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

# tfm_pretrain end to end on a text file of the repository (byte-level), in both precisions, and
# a wrong --precision rejected by name.
if(TFM_TEXT_ENABLED AND TFM_BUILD_EXAMPLES)
  foreach(_p fp32 bf16)
    add_test(NAME test_pretrain_example_${_p}
             COMMAND tfm_pretrain --text "${PROJECT_SOURCE_DIR}/README.md" --precision ${_p} --layers 1
                     --heads 2 --d-model 32 --ctx 16 --batch 4 --steps 12 --warmup 2 --eval-every 6
                     --eval-batches 2 --threads 2 --out "${CMAKE_CURRENT_BINARY_DIR}/pretrain_${_p}")
    set_tests_properties(test_pretrain_example_${_p} PROPERTIES LABELS unit
      PASS_REGULAR_EXPRESSION "validation: loss [0-9]+\\.[0-9]+, perplexity")
  endforeach()
  add_test(NAME test_pretrain_example_bad_precision
           COMMAND tfm_pretrain --text "${PROJECT_SOURCE_DIR}/README.md" --precision fp64)
  set_tests_properties(test_pretrain_example_bad_precision PROPERTIES LABELS unit
    PASS_REGULAR_EXPRESSION "--precision must be fp32 or bf16, not 'fp64'")
  # numbers on the command line: NaN/infinity, out-of-range and fractional counts are named
  foreach(_case "lr;nan;not a finite number" "steps;1e30;out of range" "batch;2.5;not a whole number")
    list(GET _case 0 _flag)
    list(GET _case 1 _value)
    list(GET _case 2 _says)
    add_test(NAME test_pretrain_example_bad_${_flag}
             COMMAND tfm_pretrain --text "${PROJECT_SOURCE_DIR}/README.md" --${_flag} ${_value})
    set_tests_properties(test_pretrain_example_bad_${_flag} PROPERTIES LABELS unit
      PASS_REGULAR_EXPRESSION "--${_flag}: '${_value}' is ${_says}")
  endforeach()
endif()
