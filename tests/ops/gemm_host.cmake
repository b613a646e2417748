# Host GEMM kernels against gemm_ref. Kernels for instruction sets the CPU lacks (AVX-512,
# AVX512_BF16, AMX) are compiled into the binary through target attributes and their cases skip.
tfm_add_test(test_gemm_host SOURCES ops/test_gemm_host.cpp TIMEOUT 600)
# The default kernel with AMX switched off (TFM_HOST_AMX=0): an AMX build must fall back to the
# AVX512_BF16 kernel and stay correct.
add_test(NAME test_gemm_host_without_amx COMMAND test_gemm_host --log_level=message --run_test=gemm_host)
set_tests_properties(test_gemm_host_without_amx PROPERTIES LABELS unit
  ENVIRONMENT "TFM_HOST_AMX=0;OMP_WAIT_POLICY=passive")
