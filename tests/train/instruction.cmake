if(TFM_TEXT_ENABLED)
  tfm_add_test(test_instruction SOURCES train/test_instruction.cpp LABELS unit)
  target_link_libraries(test_instruction PRIVATE tfm::text)
endif()
