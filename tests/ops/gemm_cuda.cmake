# CUDA GEMM (cuBLASLt policies and tfm's tiled kernel) against a double-precision host reference.
# Skips (exit 77) without a GPU; runs through scripts/gpu-check.sh.
tfm_add_test(test_gemm_cuda SOURCES ops/test_gemm_cuda.cu TIMEOUT 600)
