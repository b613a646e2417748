// tfm/ops.hpp — the ops module. Host ops always; the CUDA overloads when nvcc compiles.
#pragma once
#include "tfm/ops/gemm.hpp"
#if defined(__CUDACC__)
#include "tfm/ops/gemm.cuh"
#endif
