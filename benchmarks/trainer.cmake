# What the trainer adds to forward+backward (gradient norm, clipping, AdamW), per model size.
if(TFM_TEXT_ENABLED)
  tfm_add_benchmark(bench_trainer SOURCES bench_trainer.cpp)
  target_link_libraries(bench_trainer PRIVATE tfm::text)
endif()
