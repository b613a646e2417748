# tfm_tokenize: train (or load) a byte-level BPE tokenizer and write train/val token shards.
if(TFM_TEXT_ENABLED)
  tfm_add_example(tfm_tokenize SOURCES tokenize.cpp)
  target_link_libraries(tfm_tokenize PRIVATE tfm::text)
endif()
