// tfm/ops/gemm.hpp — the public GEMM over tfm tensors: C = alpha·op(A)·op(B) + beta·C with
// op = trans::n or trans::t, fp32, bf16 or fp16 inputs and fp32 accumulation. Host tensors
// dispatch to the host kernels (policy gemm_ref or gemm_blocked); cuda tensors to ops/gemm.cuh.
//
// Operands are rank-2 tensors with flat (non-tiled) layouts and any strides. Extents that are
// static on both sides are checked at compile time; the rest throw shape_error naming the op
// and the shapes.
#pragma once
#include <concepts>
#include <cstdint>
#include <string>
#include <type_traits>

#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"
#include "tfm/core/tensor.hpp"
#include "tfm/ops/detail/gemm_host.hpp"
#include "tfm/ops/detail/matrix.hpp"

namespace tfm {

// op(X): as stored, or transposed.
enum class trans : bool { n = false, t = true };

namespace detail {

template <class T, layout_type L, memory_space S>
strided_matrix<T> as_matrix(tensor<T, L, S> const& x, trans op) {
  static_assert(L::rank == 2, "gemm: operands must be rank-2 tensors");
  static_assert(integer_like<std::remove_cvref_t<decltype(stride<0>(x.layout()))>> &&
                    integer_like<std::remove_cvref_t<decltype(stride<1>(x.layout()))>>,
                "gemm: operands need flat layouts (one stride per mode); tiled layouts are not GEMM operands");
  const strided_matrix<T> m{x.data(), static_cast<std::int64_t>(shape<0>(x.layout())),
                            static_cast<std::int64_t>(shape<1>(x.layout())),
                            static_cast<std::int64_t>(stride<0>(x.layout())),
                            static_cast<std::int64_t>(stride<1>(x.layout()))};
  return op == trans::t ? m.transposed() : m;
}

template <class X, class Y>
constexpr void static_extent_check() {
  if constexpr (is_static_v<X> && is_static_v<Y>) {
    static_assert(X::value == Y::value, "gemm: static extents of the operands do not match");
  }
}

// Compile-time checks where both extents are static (only possible without a run-time trans).
template <class LA, class LB, class LC>
constexpr void gemm_static_checks() {
  using MA = std::remove_cvref_t<decltype(shape<0>(std::declval<LA>()))>;
  using KA = std::remove_cvref_t<decltype(shape<1>(std::declval<LA>()))>;
  using KB = std::remove_cvref_t<decltype(shape<0>(std::declval<LB>()))>;
  using NB = std::remove_cvref_t<decltype(shape<1>(std::declval<LB>()))>;
  using MC = std::remove_cvref_t<decltype(shape<0>(std::declval<LC>()))>;
  using NC = std::remove_cvref_t<decltype(shape<1>(std::declval<LC>()))>;
  static_extent_check<KA, KB>();
  static_extent_check<MA, MC>();
  static_extent_check<NB, NC>();
}

inline std::string extent_string(std::int64_t r, std::int64_t c) {
  return concat("(", r, ", ", c, ")");
}

template <class TA, class TB, class TC>
void check_gemm_shapes(const char* op, strided_matrix<TA> const& a, strided_matrix<TB> const& b,
                       strided_matrix<TC> const& c) {
  if (a.cols != b.rows || a.rows != c.rows || b.cols != c.cols)
    throw shape_error(concat(op, ": op(A) is ", extent_string(a.rows, a.cols), ", op(B) is ",
                             extent_string(b.rows, b.cols), " and C is ", extent_string(c.rows, c.cols),
                             "; expected (M, K), (K, N) and (M, N)"));
}

}  // namespace detail

// Host: C = alpha·op(A)·op(B) + beta·C.
template <host_gemm_policy Policy, class TA, layout_type LA, class TB, layout_type LB, layout_type LC>
void gemm(Policy policy, float alpha, tensor<TA, LA, space::host> const& a, trans ta,
          tensor<TB, LB, space::host> const& b, trans tb, float beta,
          tensor<float, LC, space::host> const& c) {
  static_assert(std::same_as<std::remove_const_t<TA>, std::remove_const_t<TB>>,
                "gemm: A and B must have the same element type (float, bfloat16 or half)");
  const auto ma = detail::as_matrix(tensor<const std::remove_const_t<TA>, LA, space::host>(a), ta);
  const auto mb = detail::as_matrix(tensor<const std::remove_const_t<TB>, LB, space::host>(b), tb);
  const auto mc = detail::as_matrix(c, trans::n);
  detail::check_gemm_shapes("gemm", ma, mb, mc);
  detail::gemm_host(policy, alpha, ma, mb, beta, mc);
}

// Host, operands as stored (no transposition): shapes static on both sides are checked when
// compiling.
template <host_gemm_policy Policy, class TA, layout_type LA, class TB, layout_type LB, layout_type LC>
void gemm(Policy policy, float alpha, tensor<TA, LA, space::host> const& a,
          tensor<TB, LB, space::host> const& b, float beta, tensor<float, LC, space::host> const& c) {
  detail::gemm_static_checks<LA, LB, LC>();
  gemm(policy, alpha, a, trans::n, b, trans::n, beta, c);
}

// Default variant: the blocked kernel for this CPU.
template <class TA, layout_type LA, class TB, layout_type LB, layout_type LC>
void gemm(float alpha, tensor<TA, LA, space::host> const& a, trans ta, tensor<TB, LB, space::host> const& b,
          trans tb, float beta, tensor<float, LC, space::host> const& c) {
  gemm(gemm_blocked{}, alpha, a, ta, b, tb, beta, c);
}
template <class TA, layout_type LA, class TB, layout_type LB, layout_type LC>
void gemm(float alpha, tensor<TA, LA, space::host> const& a, tensor<TB, LB, space::host> const& b, float beta,
          tensor<float, LC, space::host> const& c) {
  gemm(gemm_blocked{}, alpha, a, b, beta, c);
}

}  // namespace tfm
