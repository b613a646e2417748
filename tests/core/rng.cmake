tfm_add_test(test_rng SOURCES core/test_rng.cpp core/rng_strict.cpp)
# The second TU is built the way a different compiler or target would see the maths.
set_source_files_properties(core/rng_strict.cpp PROPERTIES COMPILE_OPTIONS "-O0;-ffp-contract=off;-march=x86-64;-mtune=generic")
tfm_add_test(test_rng_cuda SOURCES core/test_rng_cuda.cu)
