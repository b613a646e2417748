# CUDA GEMM: tfm's cuBLASLt wrapper, tfm's tiled kernel and a direct cublasGemmEx peer.
tfm_add_benchmark(bench_gemm_cuda SOURCES bench_gemm_cuda.cu)
