# Programs that must be rejected at compile time with a readable message.
tfm_add_compile_fail_test(compile_fail_gemm_static_mismatch SOURCE compile_fail/gemm_static_mismatch.cpp
  REGEX "gemm: static extents of the operands do not match")
