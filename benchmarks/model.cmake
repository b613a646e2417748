# Host model forward+backward (GPT-2 small, a 4-layer d=256 model, a Llama-style model, one
# block) and the best GEMM rate measured in the same process.
tfm_add_benchmark(bench_model SOURCES bench_model.cpp)
