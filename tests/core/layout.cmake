tfm_add_test(test_layout SOURCES core/test_layout.cpp)

# Static shape errors must be compile errors with a readable message: each
# TFM_LAYOUT_FAIL_CASE of test_layout.cpp is built on its own and must fail with its
# static_assert text.
set(_tfm_layout_fail_cases
  "1|static extents of the two shapes differ"
  "2|the shapes have different ranks or nest differently"
  "3|the leading dimension is smaller than the contiguous extent"
  "4|a tile extent does not divide the matrix extent"
  "5|do not divide each other"
  "6|wrong number of coordinates"
  "7|the shape and the stride must nest the same way"
  "8|carry into one another")
foreach(_case IN LISTS _tfm_layout_fail_cases)
  string(REPLACE "|" ";" _parts "${_case}")
  list(GET _parts 0 _n)
  list(GET _parts 1 _msg)
  tfm_add_compile_fail_test(test_layout_static_error_${_n} SOURCE core/test_layout.cpp REGEX "${_msg}")
  target_compile_definitions(test_layout_static_error_${_n} PRIVATE TFM_LAYOUT_FAIL_CASE=${_n})
endforeach()

# The layout headers in device code: test_layout.cpp's static_asserts and a kernel over the
# whole API, compiled (not run) by nvcc.
if(TFM_CUDA_ENABLED)
  add_test(NAME test_layout_nvcc
    COMMAND ${CMAKE_CUDA_COMPILER} -std=c++20 --expt-relaxed-constexpr -x cu -I${PROJECT_SOURCE_DIR}/include
            -DTFM_LAYOUT_NVCC_CHECK -c ${CMAKE_CURRENT_SOURCE_DIR}/core/test_layout.cpp
            -o ${CMAKE_CURRENT_BINARY_DIR}/test_layout_nvcc.o)
  set_tests_properties(test_layout_nvcc PROPERTIES LABELS "unit;cuda")
endif()
