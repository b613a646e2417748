// tfm/ops/detail/gemm_cuda_policy.hpp — the policies (tag types) that choose how a CUDA GEMM
// runs: cuBLASLt with a given math mode, or tfm's own shared-memory tiled kernel. Plain C++ with
// no CUDA includes, so host code can name a policy; running one needs gemm_cuda.cuh.
#pragma once
#include <concepts>
#include <type_traits>

#include "tfm/core/config.hpp"

namespace tfm {

// The precision the multiplications run in; products are accumulated in fp32 in every mode.
namespace gemm_math {
// fp32 multiplies on CUDA cores (CUBLAS_COMPUTE_32F with fp32 inputs). Inputs: float.
struct fp32 {};
// fp32 in memory, multiplies on tensor cores in TF32 (10-bit mantissa;
// CUBLAS_COMPUTE_32F_FAST_TF32). Inputs: float.
struct tf32 {};
// bf16 inputs on tensor cores (CUBLAS_COMPUTE_32F, A/B CUDA_R_16BF). Inputs: tfm::bfloat16.
struct bf16 {};
// fp16 inputs on tensor cores (CUBLAS_COMPUTE_32F, A/B CUDA_R_16F). Inputs: tfm::half.
struct fp16 {};
// Chosen by the input type: fp32 for float, bf16 for tfm::bfloat16, fp16 for tfm::half.
// (fp32 inputs never silently drop to TF32: ask for gemm_math::tf32.)
struct by_input {};
}  // namespace gemm_math

template <class M>
concept gemm_math_mode =
    std::same_as<M, gemm_math::fp32> || std::same_as<M, gemm_math::tf32> ||
    std::same_as<M, gemm_math::bf16> || std::same_as<M, gemm_math::fp16> ||
    std::same_as<M, gemm_math::by_input>;

// C = alpha·A·B + beta·C through cuBLASLt. The handle's plan cache keeps one descriptor set and
// heuristic pick per problem (types, shape, leading dimensions, alignment).
template <gemm_math_mode Math = gemm_math::by_input>
struct gemm_cublaslt {
  using math = Math;
};

// tfm's own GEMM: a shared-memory tiled kernel (the teaching/reference variant, no tensor cores).
// Each block computes a BlockM×BlockN tile of C, stepping through K in BlockK slices staged in
// shared memory as fp32; each thread keeps a ThreadM×ThreadN register tile whose rows and columns
// are spread with stride (BlockM/ThreadM, BlockN/ThreadN) so that neighbouring threads touch
// neighbouring shared-memory words and neighbouring columns of C. Any strides, any sizes.
// Sizes are not tuned: 64×64×16 with 4×4 per thread (256 threads, 8.3 KB of shared memory) is the
// classic textbook shape, chosen for clarity; no figure justifies them yet.
template <int BlockM = 64, int BlockN = 64, int BlockK = 16, int ThreadM = 4, int ThreadN = 4>
struct gemm_tiled_policy {
  static_assert(BlockM > 0 && BlockN > 0 && BlockK > 0 && ThreadM > 0 && ThreadN > 0);
  static_assert(BlockM % ThreadM == 0 && BlockN % ThreadN == 0,
                "gemm_tiled_policy: a block tile must split evenly into thread tiles");
  static constexpr int block_m = BlockM;
  static constexpr int block_n = BlockN;
  static constexpr int block_k = BlockK;
  static constexpr int thread_m = ThreadM;
  static constexpr int thread_n = ThreadN;
  static constexpr int threads_m = BlockM / ThreadM;  // threads along M in a block
  static constexpr int threads_n = BlockN / ThreadN;  // threads along N in a block
  static constexpr int threads = threads_m * threads_n;
  // One padding word per shared-memory row: the loads of a row-major A write shared memory
  // column-wise, and a stride of block_m+1 words spreads them over the banks.
  static constexpr int smem_pad = 1;
  static_assert(threads <= 1024, "gemm_tiled_policy: at most 1024 threads per block");
  static_assert((BlockM * BlockK) % threads == 0 && (BlockK * BlockN) % threads == 0,
                "gemm_tiled_policy: each thread must load the same number of A and B elements");
};
using gemm_tiled = gemm_tiled_policy<>;

namespace detail {
template <class P>
struct is_gemm_cublaslt : std::false_type {};
template <class M>
struct is_gemm_cublaslt<gemm_cublaslt<M>> : std::true_type {};
template <class P>
struct is_gemm_tiled : std::false_type {};
template <int BM, int BN, int BK, int TM, int TN>
struct is_gemm_tiled<gemm_tiled_policy<BM, BN, BK, TM, TN>> : std::true_type {};
}  // namespace detail

template <class P>
concept gemm_cuda_policy = detail::is_gemm_cublaslt<P>::value || detail::is_gemm_tiled<P>::value;

}  // namespace tfm
