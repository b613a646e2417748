if(TFM_TEXT_ENABLED)
  tfm_add_test(test_tokenizer SOURCES tokenizer/test_tokenizer.cpp LABELS unit)
  target_link_libraries(test_tokenizer PRIVATE tfm::text)
  tfm_add_test(test_tokenizer_vocab SOURCES tokenizer/test_tokenizer_vocab.cpp LABELS unit shared-data)
  target_link_libraries(test_tokenizer_vocab PRIVATE tfm::text)
  tfm_add_test(test_shard SOURCES tokenizer/test_shard.cpp LABELS unit)
  target_link_libraries(test_shard PRIVATE tfm::text)
endif()

# The example refuses malformed numbers by name (a negative vocabulary size was read as 2^64 − 1).
if(TFM_TEXT_ENABLED AND TFM_BUILD_EXAMPLES)
  add_test(NAME test_tokenize_example_bad_number
           COMMAND tfm_tokenize --corpus "${PROJECT_SOURCE_DIR}/README.md" --out unused --vocab-size -1)
  set_tests_properties(test_tokenize_example_bad_number PROPERTIES LABELS unit
    PASS_REGULAR_EXPRESSION "--vocab-size: '-1' is negative")
endif()
