// tfm/ops/detail/gemm_host_scalar.hpp — the portable host GEMM micro-kernel: a 4×16 tile of
// plain loops that the compiler vectorises for whatever the translation unit targets. bf16 and
// fp16 inputs are widened to fp32 while packing.
#pragma once
#include <cstdint>

#include "tfm/core/config.hpp"
#include "tfm/ops/detail/gemm_host_pack.hpp"
#include "tfm/ops/detail/gemm_host_tuning.hpp"

namespace tfm::detail {

template <int MR, int NR>
TFM_HOST_NOINLINE void gemm_micro_portable(std::int64_t kc, const float* TFM_RESTRICT a,
                                           const float* TFM_RESTRICT b, const gemm_tile_out& out) {
  alignas(64) float acc[MR * NR] = {};
  for (std::int64_t k = 0; k < kc; ++k) {
    TFM_UNROLL
    for (int i = 0; i < MR; ++i) {
      const float ai = a[k * MR + i];
      TFM_UNROLL
      for (int j = 0; j < NR; ++j) acc[i * NR + j] += ai * b[k * NR + j];
    }
  }
  gemm_store_tile<MR, NR>(acc, out);
}

template <host_gemm_input T>
struct gemm_host_kernel<host::isa::scalar, T> {
  using packed_type = float;
  static constexpr int mr = 4;
  static constexpr int nr = 16;
  static constexpr int k_group = 1;
  static constexpr gemm_block_sizes blocks = gemm_host_tuning<host::isa::scalar>::blocks;

  static void pack_a(strided_matrix<const T> a, float* dst, std::int64_t panel_stride) {
    gemm_pack_a_panels<mr>(a, panel_stride, [dst](strided_matrix<const T> p, std::int64_t at) {
      gemm_pack_a_panel_generic<mr>(p, dst + at);
    });
  }
  static void pack_b(strided_matrix<const T> b, float* dst, std::int64_t panel_stride) {
    gemm_pack_b_panels<nr>(b, panel_stride, [dst](strided_matrix<const T> p, std::int64_t at) {
      gemm_pack_b_panel_generic<nr>(p, dst + at);
    });
  }
  static void run(std::int64_t kc, const float* a, const float* b, const gemm_tile_out& out) {
    gemm_micro_portable<mr, nr>(kc, a, b, out);
  }
};

}  // namespace tfm::detail
