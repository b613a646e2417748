# Host GEMM benchmark. When OpenBLAS (with its cblas.h) is found, its cblas_sgemm (and
# cblas_sbgemm when present) run as peers in the same binary; without it the binary only
# times tfm's kernels.
tfm_add_benchmark(bench_gemm_host SOURCES bench_gemm_host.cpp)

set(_tfm_saved_bla_vendor "${BLA_VENDOR}")
set(BLA_VENDOR OpenBLAS)
find_package(BLAS QUIET)
set(BLA_VENDOR "${_tfm_saved_bla_vendor}")
unset(_tfm_saved_bla_vendor)

if(BLAS_FOUND)
  find_path(TFM_OPENBLAS_CBLAS_INCLUDE_DIR cblas.h
            HINTS ${BLAS_ROOT} PATH_SUFFIXES openblas openblas-pthread openblas-openmp)
endif()
if(BLAS_FOUND AND TFM_OPENBLAS_CBLAS_INCLUDE_DIR)
  include(CheckSymbolExists)
  set(CMAKE_REQUIRED_INCLUDES ${TFM_OPENBLAS_CBLAS_INCLUDE_DIR})
  set(CMAKE_REQUIRED_LIBRARIES ${BLAS_LIBRARIES})
  check_symbol_exists(openblas_set_num_threads "cblas.h" TFM_HAVE_OPENBLAS_SET_NUM_THREADS)
  check_symbol_exists(cblas_sbgemm "cblas.h" TFM_HAVE_OPENBLAS_SBGEMM)
  unset(CMAKE_REQUIRED_INCLUDES)
  unset(CMAKE_REQUIRED_LIBRARIES)
endif()

if(TFM_HAVE_OPENBLAS_SET_NUM_THREADS)
  message(STATUS "tfm: bench_gemm_host compares with OpenBLAS (${BLAS_LIBRARIES})")
  target_include_directories(bench_gemm_host SYSTEM PRIVATE ${TFM_OPENBLAS_CBLAS_INCLUDE_DIR})
  target_link_libraries(bench_gemm_host PRIVATE ${BLAS_LIBRARIES})
  target_compile_definitions(bench_gemm_host PRIVATE TFM_BENCH_OPENBLAS=1)
  if(TFM_HAVE_OPENBLAS_SBGEMM)
    target_compile_definitions(bench_gemm_host PRIVATE TFM_BENCH_OPENBLAS_SBGEMM=1)
  endif()
else()
  message(STATUS "tfm: OpenBLAS not found; bench_gemm_host runs without the OpenBLAS peer")
endif()
