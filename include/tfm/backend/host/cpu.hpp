// tfm/backend/host/cpu.hpp — the host instruction sets tfm's kernels are written for: which one
// this translation unit was compiled for (it picks the default kernels at compile time) and
// whether the running CPU can execute each (tests use it to skip kernels the CPU lacks).
#pragma once
#include <cstdlib>
#include <string_view>

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(__CUDACC__)
#include <cpuid.h>
#endif
#if (defined(__x86_64__) || defined(__i386__)) && defined(__linux__) && !defined(__CUDACC__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "tfm/core/config.hpp"

// x86 SIMD kernels need GCC or Clang (function-level `target` attributes, immintrin.h). nvcc's
// front end is kept away from them: host code in .cu files gets the portable kernels.
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(__CUDACC__)
#define TFM_HOST_X86_SIMD 1
#else
#define TFM_HOST_X86_SIMD 0
#endif

// Function attributes that compile one function for an instruction set the rest of the
// translation unit may not assume; callers check `cpu_supports` before running such code.
#if TFM_HOST_X86_SIMD
#define TFM_TARGET_AVX2 __attribute__((target("avx2,fma")))
// AVX2 plus F16C (fp16 <-> fp32 conversions); check cpu_has_f16c() before running it.
#define TFM_TARGET_AVX2_F16C __attribute__((target("avx2,fma,f16c")))
#define TFM_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
#define TFM_TARGET_AVX512_BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")))
// AVX512_BF16 plus the AMX tile unit with bf16 dot products; check cpu_supports(isa::amx_bf16),
// which also asks the OS for the tile state, before running it.
#define TFM_TARGET_AMX_BF16                                                                 \
  __attribute__((target(                                                                    \
      "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma,amx-tile,amx-bf16")))
#endif

// Keeps a micro-kernel a function of its own: inlined into the blocked driver, GCC 12 ran out
// of registers and re-loaded B from memory in every FMA (55 instead of 80 GFLOP/s on Zen 3).
#if defined(__GNUC__) || defined(__clang__)
#define TFM_HOST_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define TFM_HOST_NOINLINE __declspec(noinline)
#else
#define TFM_HOST_NOINLINE
#endif

namespace tfm::host {

// Instruction-set levels host kernels exist for. Each level includes the ones before it.
enum class isa {
  scalar,       // portable C++, auto-vectorised by the compiler for whatever it targets
  avx2,         // AVX2 + FMA
  avx512,       // AVX-512 F, BW, VL, DQ
  avx512_bf16,  // avx512 + AVX512_BF16 (vdpbf16ps)
  amx_bf16,     // avx512_bf16 + AMX-TILE and AMX-BF16 (tdpbf16ps), with the OS's leave to use them
};

// The level this translation unit is compiled for (-march, -mavx2 ...): the default kernels.
inline constexpr isa native_isa =
#if TFM_HOST_X86_SIMD && defined(__AVX512F__) && defined(__AVX512BW__) &&    \
    defined(__AVX512VL__) && defined(__AVX512DQ__) && defined(__AVX512BF16__) && \
    defined(__AMX_TILE__) && defined(__AMX_BF16__)
    isa::amx_bf16;
#elif TFM_HOST_X86_SIMD && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512DQ__) && defined(__AVX512BF16__)
    isa::avx512_bf16;
#elif TFM_HOST_X86_SIMD && defined(__AVX512F__) && defined(__AVX512BW__) && \
    defined(__AVX512VL__) && defined(__AVX512DQ__)
    isa::avx512;
#elif TFM_HOST_X86_SIMD && defined(__AVX2__) && defined(__FMA__)
    isa::avx2;
#else
    isa::scalar;
#endif

constexpr std::string_view isa_name(isa i) {
  switch (i) {
    case isa::scalar: return "scalar";
    case isa::avx2: return "avx2";
    case isa::avx512: return "avx512";
    case isa::avx512_bf16: return "avx512_bf16";
    case isa::amx_bf16: return "amx_bf16";
  }
  return "?";
}

// Whether kernels for `i` are compiled into this translation unit (x86 with GCC/Clang: all of
// them, through `target` attributes, AMX on x86-64 only; elsewhere only the portable ones).
constexpr bool isa_compiled([[maybe_unused]] isa i) {
#if TFM_HOST_X86_SIMD && defined(__x86_64__)
  return true;
#else
  return i == isa::scalar || (TFM_HOST_X86_SIMD && i != isa::amx_bf16);
#endif
}

// Whether this process may use the AMX tiles with bf16 dot products: the CPU has AMX-TILE and
// AMX-BF16 (CPUID leaf 7, EDX bits 24 and 22) and Linux grants the process the tile data state
// (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, Linux 5.16 and later). Asked once per
// process; the grant covers every thread. Setting the environment variable TFM_HOST_AMX=0 turns
// AMX off for the process (the bf16 GEMMs then run the AVX512_BF16 kernel).
inline bool amx_tiles_enabled() {
#if TFM_HOST_X86_SIMD && defined(__linux__) && defined(SYS_arch_prctl)
  static const bool enabled = [] {
    if (const char* e = std::getenv("TFM_HOST_AMX"); e != nullptr && std::string_view(e) == "0")
      return false;
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx) == 0) return false;
    if ((edx & (1u << 24)) == 0 || (edx & (1u << 22)) == 0) return false;
    constexpr long arch_req_xcomp_perm = 0x1023;
    constexpr long xfeature_xtiledata = 18;
    return syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) == 0;
  }();
  return enabled;
#else
  return false;
#endif
}

// Whether the running CPU (and OS) can execute code for `i`.
inline bool cpu_supports(isa i) {
#if TFM_HOST_X86_SIMD
  switch (i) {
    case isa::scalar: return true;
    case isa::avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case isa::avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    case isa::avx512_bf16: return cpu_supports(isa::avx512) && __builtin_cpu_supports("avx512bf16");
    case isa::amx_bf16: return cpu_supports(isa::avx512_bf16) && amx_tiles_enabled();
  }
  return false;
#else
  return i == isa::scalar;
#endif
}

// cpu_supports(I), asked once per process: for kernels that pick their instruction set on every
// call.
template <isa I>
inline bool cpu_runs() {
  static const bool ok = cpu_supports(I);
  return ok;
}

// Whether the CPU converts fp16 in hardware (F16C). Every AVX2 CPU we know of has it, but
// cpu_supports(isa::avx2) does not promise it. CPUID leaf 1, ECX bit 29, asked once per process
// (Clang 14's __builtin_cpu_supports does not know "f16c").
inline bool cpu_has_f16c() {
#if TFM_HOST_X86_SIMD && defined(__F16C__)
  return true;
#elif TFM_HOST_X86_SIMD
  static const bool has = [] {
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    return __get_cpuid(1, &eax, &ebx, &ecx, &edx) != 0 && (ecx & bit_F16C) != 0;
  }();
  return has;
#else
  return false;
#endif
}

}  // namespace tfm::host
