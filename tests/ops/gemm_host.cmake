# Host GEMM kernels against gemm_ref. Kernels for instruction sets the CPU lacks (AVX-512,
# AVX512_BF16, AMX) are compiled into the binary through target attributes and their cases skip.
tfm_add_test(test_gemm_host SOURCES ops/test_gemm_host.cpp TIMEOUT 600)
# The sanitizer build is -O0, where this test spends its time in the plain reference GEMM and
# element accessors it checks every kernel against: -O1 for this file cuts its run from about 200
# to 40 s on 2 cores (the longest sanitized test) for about 45 s more compilation.
if(TFM_SANITIZE)
  set_source_files_properties(ops/test_gemm_host.cpp PROPERTIES COMPILE_OPTIONS -O1)
endif()
# The default kernel with AMX switched off (TFM_HOST_AMX=0): an AMX build must fall back to the
# AVX512_BF16 kernel and stay correct.
add_test(NAME test_gemm_host_without_amx COMMAND test_gemm_host --log_level=message --run_test=gemm_host)
set_tests_properties(test_gemm_host_without_amx PROPERTIES LABELS unit
  ENVIRONMENT "TFM_HOST_AMX=0;OMP_WAIT_POLICY=passive")

# The main job (examples/tfm_main): every host GEMM variant against the reference on one small
# shape, and a malformed --shape refused by name.
if(TFM_BUILD_EXAMPLES)
  add_test(NAME test_main_example COMMAND tfm_main --threads 2 --repeats 1 --shape 64,96,80)
  set_tests_properties(test_main_example PROPERTIES LABELS unit
    PASS_REGULAR_EXPRESSION "all GEMM variants agree with the reference")
  add_test(NAME test_main_example_bad_shape COMMAND tfm_main --shape 256,768,768x)
  set_tests_properties(test_main_example_bad_shape PROPERTIES LABELS unit
    PASS_REGULAR_EXPRESSION "--shape wants M,N,K with positive integers")
endif()
