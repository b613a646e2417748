# Host GEMM kernels against gemm_ref. Kernels for instruction sets the CPU lacks (AVX-512,
# AVX512_BF16) are compiled into the binary through target attributes and their cases skip.
tfm_add_test(test_gemm_host SOURCES ops/test_gemm_host.cpp TIMEOUT 600)
