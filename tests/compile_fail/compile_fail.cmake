# Programs that must be rejected at compile time with a readable message.
tfm_add_compile_fail_test(compile_fail_gemm_static_mismatch SOURCE compile_fail/gemm_static_mismatch.cpp
  REGEX "gemm: static extents of the operands do not match")
tfm_add_compile_fail_test(compile_fail_storage_unknown_policy SOURCE compile_fail/storage_unknown_policy.cpp
  REGEX "config: storage must be nn::dense, nn::fp8")
tfm_add_compile_fail_test(compile_fail_storage_fp8_bad_format SOURCE compile_fail/storage_fp8_bad_format.cpp
  REGEX "nn::fp8<Format>: Format is tfm::float8_e4m3 or tfm::float8_e5m2")
