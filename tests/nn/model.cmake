# The model: finite-difference gradients (double) of every variant, PyTorch golden fixtures,
# invariants.
tfm_add_test(test_model_grad SOURCES nn/test_model_grad.cpp TIMEOUT 600)
tfm_add_test(test_model_golden SOURCES nn/test_model_golden.cpp)
target_compile_definitions(test_model_golden PRIVATE TFM_SOURCE_DIR_FALLBACK="${PROJECT_SOURCE_DIR}")
# Mixed precision (bf16 / fp16 compute over float parameters) against the same fixtures.
tfm_add_test(test_model_mixed SOURCES nn/test_model_mixed.cpp)
target_compile_definitions(test_model_mixed PRIVATE TFM_SOURCE_DIR_FALLBACK="${PROJECT_SOURCE_DIR}")
# Weight storage (fp8 block matrices): packing, the dense model at the rounded weights, fixtures.
tfm_add_test(test_model_storage SOURCES nn/test_model_storage.cpp)
target_compile_definitions(test_model_storage PRIVATE TFM_SOURCE_DIR_FALLBACK="${PROJECT_SOURCE_DIR}")
