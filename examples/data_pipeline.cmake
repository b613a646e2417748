# tfm_data_pipeline: clean, filter, deduplicate and scrub a directory of .txt/.jsonl files.
if(TFM_TEXT_ENABLED)
  tfm_add_example(tfm_data_pipeline SOURCES data_pipeline.cpp)
  target_link_libraries(tfm_data_pipeline PRIVATE tfm::text)
endif()
