# A tiny consumer project built against tfm after `cmake --install` and through add_subdirectory.
add_test(NAME test_install_consumer
  COMMAND ${CMAKE_COMMAND} -DSRC=${PROJECT_SOURCE_DIR} -DWORK=${CMAKE_CURRENT_BINARY_DIR}/install-consumer
          -DWITH_CUDA=${TFM_CUDA_ENABLED} -P ${CMAKE_CURRENT_SOURCE_DIR}/install/consumer/run_consumer.cmake)
set_tests_properties(test_install_consumer PROPERTIES LABELS "slow" TIMEOUT 900)
