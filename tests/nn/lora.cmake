# LoRA adapters: adapter gradients (double), frozen base, merge, dropout, fine-tuning with the
# trainer, PEFT adapter files and exact resume.
if(TFM_TEXT_ENABLED)
  tfm_add_test(test_lora SOURCES nn/test_lora.cpp LABELS unit TIMEOUT 600)
  target_link_libraries(test_lora PRIVATE tfm::text)
endif()
