# Data pipeline tests (tfm/data). They need the text side (PCRE2, utf8proc, xxHash, json).
if(TFM_TEXT_ENABLED)
  foreach(_t clean quality dedup pii reader pipeline)
    tfm_add_test(test_data_${_t} SOURCES data/test_${_t}.cpp)
    target_link_libraries(test_data_${_t} PRIVATE tfm::text)
  endforeach()
  tfm_add_test(test_data_shakespeare SOURCES data/test_shakespeare.cpp LABELS unit shared-data)
  target_link_libraries(test_data_shakespeare PRIVATE tfm::text)
  tfm_add_test(test_data_large SOURCES data/test_large.cpp LABELS slow TIMEOUT 1800)
  target_link_libraries(test_data_large PRIVATE tfm::text)
endif()

# The example: --help, and a run over the shared corpus when it is there.
if(TFM_TEXT_ENABLED AND TFM_BUILD_EXAMPLES)
  add_test(NAME test_data_example_help COMMAND tfm_data_pipeline --help)
  set_tests_properties(test_data_example_help PROPERTIES LABELS unit PASS_REGULAR_EXPRESSION "usage: tfm_data_pipeline")
  add_test(NAME test_data_example_bad_number
           COMMAND tfm_data_pipeline --bands 12abc "${PROJECT_SOURCE_DIR}/README.md" -o unused.jsonl)
  set_tests_properties(test_data_example_bad_number PROPERTIES LABELS unit
    PASS_REGULAR_EXPRESSION "--bands: '12abc' is not a number")
  if(EXISTS "${TFM_SHARED_DATA_DIR}/corpus")
    add_test(NAME test_data_example_run
             COMMAND tfm_data_pipeline --quiet --short-documents "${TFM_SHARED_DATA_DIR}/corpus"
                     -o "${CMAKE_CURRENT_BINARY_DIR}/data_example/corpus.jsonl")
    set_tests_properties(test_data_example_run PROPERTIES LABELS "unit;shared-data")
  endif()
endif()
