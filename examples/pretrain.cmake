# tfm_pretrain: pretraining from a text file (byte-level) or token shards, with checkpoints.
if(TFM_TEXT_ENABLED)
  tfm_add_example(tfm_pretrain SOURCES pretrain.cpp)
  target_link_libraries(tfm_pretrain PRIVATE tfm::text)
endif()
