// tests/support/test_main.hpp — include once per test executable, after defining
// TFM_TEST_MODULE (the suite name). With TFM_TEST_NEEDS_CUDA defined first, the executable
// prints why and exits with 77 (CTest: skipped) when no CUDA device can be used.
#pragma once
#ifndef TFM_TEST_MODULE
#error "define TFM_TEST_MODULE before including test_main.hpp"
#endif
#define BOOST_TEST_MODULE TFM_TEST_MODULE
#include <boost/test/unit_test.hpp>

#include <cstdio>
#include <cstdlib>

#ifdef TFM_TEST_NEEDS_CUDA
#include "tfm/backend/cuda/runtime.hpp"
namespace tfm::test {
// Runs before any test case: a CUDA test executable without a device reports a skip.
struct cuda_device_required {
  cuda_device_required() {
    const std::string why = tfm::cuda::why_no_device();
    if (!why.empty()) {
      std::printf("SKIP: no usable CUDA device (%s); CUDA tests run through scripts/gpu-check.sh\n",
                  why.c_str());
      std::fflush(stdout);
      // _Exit: leaving through exit() from inside the framework crashes its loggers
      std::_Exit(77);
    }
  }
};
}  // namespace tfm::test
// The macro pastes its argument into a variable name: no '::' allowed.
using tfm_test_cuda_device_required = tfm::test::cuda_device_required;
BOOST_TEST_GLOBAL_FIXTURE(tfm_test_cuda_device_required);
#endif
