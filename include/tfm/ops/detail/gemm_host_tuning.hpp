// tfm/ops/detail/gemm_host_tuning.hpp — cache block sizes of the blocked host GEMM, one constexpr
// policy per instruction set. The register tile (MR×NR) belongs to the micro-kernel; these
// blocks decide what stays in which cache: a KC×NR sliver of B in L1, an MC×KC block of A in
// L2, a KC×NC panel of B in L3.
#pragma once
#include <cstdint>

#include "tfm/backend/host/cpu.hpp"

namespace tfm {

// Cache blocks of the blocked GEMM, in elements; zero means "the tuned value for the ISA".
struct gemm_block_sizes {
  std::int64_t mc = 0;  // rows of the A block one work item keeps in L2 (multiple of MR)
  std::int64_t kc = 0;  // depth of one rank-kc update: A and B slivers of kc stay in L1
  std::int64_t nc = 0;  // columns of the packed B panel (multiple of NR), L3-resident
  std::int64_t mp = 0;  // rows of A packed at once (multiple of mc), L3-resident

  friend constexpr bool operator==(const gemm_block_sizes&, const gemm_block_sizes&) = default;
};

namespace detail {

// Packed A and packed B each stay within this many bytes: a bigger product runs as several
// super-blocks of C (fewer rows or columns when K is large).
inline constexpr std::int64_t gemm_host_pack_budget_bytes = std::int64_t{8} << 20;

template <host::isa Isa>
struct gemm_host_tuning;

// Portable kernel (4×16 tile). Measured on AMD EPYC Zen 3 (2.45 GHz, 1 thread, built for
// -march=native so the loops auto-vectorise to AVX2): TODO
template <>
struct gemm_host_tuning<host::isa::scalar> {
  static constexpr gemm_block_sizes blocks{.mc = 96, .kc = 256, .nc = 4080, .mp = 1152};
};

// AVX2 + FMA kernel (6×16 tile). Measured on AMD EPYC Zen 3 (32 KiB L1d, 512 KiB L2 per core,
// 32 MiB shared L3): TODO
template <>
struct gemm_host_tuning<host::isa::avx2> {
  static constexpr gemm_block_sizes blocks{.mc = 264, .kc = 256, .nc = 4080, .mp = 1056};
};

// AVX-512 kernel (12×32 tile). Not measured: no AVX-512 machine was available when this was
// written. Chosen so the B sliver (KC×NR×4 = 32 KiB... halved by kc = 192: 24 KiB) stays within a
// 48 KiB L1d and the A block (MC×KC×4 = 144×192×4 = 108 KiB) well inside a 1-2 MiB L2.
template <>
struct gemm_host_tuning<host::isa::avx512> {
  static constexpr gemm_block_sizes blocks{.mc = 144, .kc = 192, .nc = 4096, .mp = 1152};
};

// AVX512_BF16 kernel (12×32 tile over K pairs): bf16 panels are half the bytes of fp32 ones, so
// twice the depth fits the same caches. Not measured (no such machine available).
template <>
struct gemm_host_tuning<host::isa::avx512_bf16> {
  static constexpr gemm_block_sizes blocks{.mc = 144, .kc = 384, .nc = 4096, .mp = 1152};
};

}  // namespace detail
}  // namespace tfm
