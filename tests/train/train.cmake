# The trainer: optimizers (vs PyTorch numbers), schedules, data batches, the loop (determinism,
# exact resume, non-finite steps), checkpoints and Hugging Face weight formats.
if(TFM_TEXT_ENABLED)
  tfm_add_test(test_train SOURCES train/test_train.cpp LABELS unit)
  target_link_libraries(test_train PRIVATE tfm::text)
  tfm_add_test(test_checkpoint SOURCES train/test_checkpoint.cpp LABELS unit)
  target_link_libraries(test_checkpoint PRIVATE tfm::text)
endif()
