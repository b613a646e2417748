// tfm/nn/model.cuh — model<Config, tfm::space::cuda>: include this (from a .cu translation unit)
// to run the model of nn/model.hpp on a CUDA device with the backend of nn/ops_cuda.cuh.
//
//   tfm::nn::model<tfm::nn::presets::gpt2<>, tfm::space::cuda> m;
//   m.init(42);
//   double loss = m.forward(tokens, targets, B, T);   // tokens/targets in host memory
//   m.zero_grad(); m.backward();
//   m.get_backend().synchronize();                     // before timing or reading device memory
#pragma once
// nvcc's front end warns (#179, #39) about `x % 0` and `x / 0` in config.hpp's static_asserts and
// static_head_dim for run-time sizes, although those operands sit behind `sizes::heads == 0 ||` /
// `?:` guards and are never evaluated; silence exactly those two for nn/ headers.
#ifdef __NVCC__
#pragma nv_diagnostic push
#pragma nv_diag_suppress 179
#pragma nv_diag_suppress 39
#endif
#include "tfm/nn/config.hpp"
#include "tfm/nn/model.hpp"
#include "tfm/nn/attention_cuda.cuh"
#include "tfm/nn/ops_cuda.cuh"
#include "tfm/nn/storage_cuda.cuh"
#ifdef __NVCC__
#pragma nv_diagnostic pop
#endif
