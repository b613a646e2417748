# tfm_finetune_lora: LoRA fine-tuning of a saved model on new text or instruction data.
if(TFM_TEXT_ENABLED)
  tfm_add_example(tfm_finetune_lora SOURCES finetune_lora.cpp)
  target_link_libraries(tfm_finetune_lora PRIVATE tfm::text)
endif()
