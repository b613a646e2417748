// tfm/ops/detail/gemm_host_tuning.hpp — cache block sizes of the blocked host GEMM, one constexpr
// policy per instruction set. The register tile (MR×NR) belongs to the micro-kernel; these
// blocks decide what stays in which cache: a KC×NR sliver of packed B in L1, an MC×KC block of
// packed A in L2, and how much of C one pass covers.
#pragma once
#include <cstdint>

#include "tfm/backend/host/cpu.hpp"

namespace tfm {

// Cache blocks of the blocked GEMM, in elements; zero means "the tuned value for the ISA".
struct gemm_block_sizes {
  std::int64_t mc = 0;  // rows of the A block a work item keeps in L2 (multiple of MR)
  std::int64_t kc = 0;  // depth of one rank-kc update (the B sliver of kc × NR stays in L1)
  std::int64_t nc = 0;  // columns of C per pass: bounds the shared packed B (multiple of NR)
  std::int64_t mp = 0;  // rows of C per pass: bounds the packed A (multiple of mc)

  friend constexpr bool operator==(const gemm_block_sizes&, const gemm_block_sizes&) = default;
};

namespace detail {

// Packed A and packed B each stay within this many bytes: a bigger product runs as several
// super-blocks of C (fewer rows or columns when K is large).
inline constexpr std::int64_t gemm_host_pack_budget_bytes = std::int64_t{8} << 20;

template <host::isa Isa>
struct gemm_host_tuning;

// Figures below: GFLOP/s on one thread of the AMD EPYC (Zen 3, 2.45 GHz base, 32 KiB L1d and
// 512 KiB L2 per core, L3 shared with other tenants), geometric mean over GPT-2 small's
// shapes (M, N, K) = (256, 768, 768), (256, 2304, 768), (256, 3072, 768), (256, 768, 3072),
// (1024, 1024, 1024), process CPU time, best of 6, all variants interleaved in one run (the
// machine was busy: absolute numbers moved 10% between runs, rankings did not).

// Portable kernel (4×16 tile, compiled with -march=native: GCC vectorises it to AVX2).
//   mc=96 kc=256: 27.9   mc=264 kc=256: 28.7   mc=264 kc=384: 30.8   mc=128 kc=128: 22.8
template <>
struct gemm_host_tuning<host::isa::scalar> {
  static constexpr gemm_block_sizes blocks{.mc = 264, .kc = 384, .nc = 4080, .mp = 1056};
};

// AVX2 + FMA kernel (6×16 tile). Two runs:
//   mc=96  kc=256: 64.8 / 71.4   mc=144 kc=256: 65.3 / 72.0   mc=264 kc=256: 66.0 / 74.0
//   mc=96  kc=384: 64.7 / 72.1   mc=264 kc=384: 67.3 / 74.1   mc=264 kc=512: 66.2 / 73.4
//   mc=528 kc=384: 66.4 / 74.4
// mc = 264 holds all 256 rows of the GPT-2 shapes in one block (A block 396 KiB, in L2), so B
// is packed and read once; kc = 384 halves the passes over C against 256 (a 24 KiB B sliver
// still fits L1). nc only bounds the packed B panel (M > mc); 4080 = 255·16.
template <>
struct gemm_host_tuning<host::isa::avx2> {
  static constexpr gemm_block_sizes blocks{.mc = 264, .kc = 384, .nc = 4080, .mp = 1056};
};

// AVX-512 kernel (12×32 tile), measured on 2 cores of an Intel Xeon (Emerald Rapids, 48 KiB L1d,
// 2 MiB L2), best of 3 in bench_gemm_host: kc = 384 against 192 took 256×768×768 from 2.02 to
// 1.33 ms and 1024³ from 11.1 to 10.1 ms, and the 4-layer d=256 model step (whose K = 256 head
// products no longer run as two passes over a 2048×50257 C) from 1352 to 1209 ms. The B sliver
// (kc·32·4 = 48 KiB) then fills L1d; mc = 264 as for AVX2.
template <>
struct gemm_host_tuning<host::isa::avx512> {
  static constexpr gemm_block_sizes blocks{.mc = 264, .kc = 384, .nc = 4096, .mp = 1056};
};

// AVX512_BF16 kernel (12×32 tile over K pairs): bf16 panels are half the bytes of fp32 ones,
// so kc = 384 gives the same 24 KiB B sliver. Measured on a 2-core AMD EPYC (Zen 5, 48 KiB L1d,
// 1 MiB L2, no AMX), 2026-11-29: GFLOP/s, geometric mean over the GPT-2 shapes above plus NT
// (256, 2304, 768), (256, 768, 3072), TN (768, 3072, 256), (768, 768, 256) and the head's NT
// (2048, 4096, 256), best of 15 per shape, 2 threads / 1 thread:
//   mc=264 kc=384: 922 / 466   mc=264 kc=256: 918 / 463   mc=264 kc=512: 931 / 469
//   mc=264 kc=768: 930 / 473   mc=264 kc=1024: 936 / 474  mc=144 kc=384: 901 / 460
//   mc=144 kc=768: 915 / 464   mc=96 kc=768: 912 / 463    mc=528 kc=384: 920 / 467
// All within 4% of each other (and about twice the fp32 kernel's rate on the same machine), so
// the values stay those of the fp32 kernel.
template <>
struct gemm_host_tuning<host::isa::avx512_bf16> {
  static constexpr gemm_block_sizes blocks{.mc = 264, .kc = 384, .nc = 4096, .mp = 1056};
};

// AMX kernel (32×32 tile, K in steps of 32), on the same Xeon: (mc, kc) = (256, 768), (256, 384),
// (128, 768), (512, 1536) and (64, 768) were within the machine's noise of each other over the
// GPT-2 shapes (bf16 256×768×768 0.36–0.50 ms); (256, 768) holds a whole K = 768 in one block.
template <>
struct gemm_host_tuning<host::isa::amx_bf16> {
  static constexpr gemm_block_sizes blocks{.mc = 256, .kc = 768, .nc = 4096, .mp = 1024};
};

}  // namespace detail
}  // namespace tfm
