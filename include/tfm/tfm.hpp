// tfm/tfm.hpp — everything in tfm. Host code needs nothing beyond a C++20 compiler (OpenMP
// optional); the CUDA backend comes in when nvcc compiles, or when the target defines
// TFM_WITH_CUDA (tfm_enable_cuda() in CMake) for host-side CUDA runtime use.
#pragma once
#include "tfm/core.hpp"
#include "tfm/ops.hpp"
#if TFM_HAS_CUDA
#include "tfm/backend/cuda/cublas.hpp"
#include "tfm/backend/cuda/runtime.hpp"
#endif
