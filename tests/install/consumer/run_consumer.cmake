# Builds and runs tests/install/consumer against tfm both ways (installed package and
# add_subdirectory). Invoked by CTest:  cmake -DSRC=<tfm> -DWORK=<dir> -DWITH_CUDA=ON|OFF -P ...
cmake_minimum_required(VERSION 3.24)
foreach(v SRC WORK WITH_CUDA)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_consumer.cmake: -D${v}= is required")
  endif()
endforeach()
file(REMOVE_RECURSE ${WORK})
set(gen_args -DCMAKE_BUILD_TYPE=Release)
if(WITH_CUDA)
  list(APPEND gen_args -DCMAKE_CUDA_ARCHITECTURES=90)
endif()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  message(STATUS "${out}")
endfunction()

# 1. install tfm (headers and package files only: no tests, benchmarks or examples)
run(${CMAKE_COMMAND} -S ${SRC} -B ${WORK}/tfm-build -DTFM_BUILD_TESTS=OFF -DTFM_BUILD_BENCHMARKS=OFF
    -DTFM_BUILD_EXAMPLES=OFF -DTFM_CUDA=OFF -DCMAKE_INSTALL_PREFIX=${WORK}/prefix)
run(${CMAKE_COMMAND} --install ${WORK}/tfm-build)
if(NOT EXISTS ${WORK}/prefix/share/cmake/tfm/tfmConfig.cmake OR NOT EXISTS ${WORK}/prefix/include/tfm/tfm.hpp)
  message(FATAL_ERROR "install did not produce tfmConfig.cmake and include/tfm/tfm.hpp")
endif()

# 2. consume it both ways
foreach(mode package subdir)
  run(${CMAKE_COMMAND} -S ${SRC}/tests/install/consumer -B ${WORK}/consumer-${mode} ${gen_args}
      -DTFM_CONSUME=${mode} -DTFM_SOURCE=${SRC} -DCMAKE_PREFIX_PATH=${WORK}/prefix -DWITH_CUDA=${WITH_CUDA})
  run(${CMAKE_COMMAND} --build ${WORK}/consumer-${mode} -j 2)
  run(${WORK}/consumer-${mode}/consumer)
  if(WITH_CUDA)
    run(${WORK}/consumer-${mode}/consumer_cuda)
  endif()
endforeach()
