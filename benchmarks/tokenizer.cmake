# Byte-level BPE tokenizer: encoding (GPT-2 vocabulary) and training on tiny Shakespeare.
if(TFM_TEXT_ENABLED)
  tfm_add_benchmark(bench_tokenizer SOURCES bench_tokenizer.cpp)
  target_link_libraries(bench_tokenizer PRIVATE tfm::text)
  target_compile_definitions(bench_tokenizer PRIVATE TFM_BENCH_SHARED_DATA="${TFM_SHARED_DATA_DIR}")
endif()
