# Data pipeline stage throughput (one thread, MB/s). Needs the text side.
if(TFM_TEXT_ENABLED)
  tfm_add_benchmark(bench_data SOURCES bench_data.cpp)
  target_link_libraries(bench_data PRIVATE tfm::text)
  target_compile_definitions(bench_data PRIVATE TFM_SHARED_DATA_DIR="${TFM_SHARED_DATA_DIR}")
endif()
