// tfm/nn/storage.hpp — how a model stores its block weight matrices (the `storage` member of a
// config, docs/model.md "Weight storage").
//
// A block has four kinds of weight matrix (weight_kind): the fused q/k/v projection (c_attn),
// the attention output (attn.c_proj), the MLP input (c_fc; gate and up for SwiGLU) and the MLP
// output (mlp.c_proj). A config's `storage` is one storage policy for all four, or
// nn::weight_storage<QKV, Out, In, Down> with one per kind:
//
//   struct my_model : nn::presets::gpt2<> {
//     using precision = nn::precision_bf16;
//     using storage = nn::weight_storage<nn::fp8<>, nn::dense, nn::fp8<>, nn::fp8<>>;
//   };
//
// Policies:
//   dense                     the matrix multiplies read the parameters (or, with mixed precision,
//                             their compute-type copy)
//   fp8<Format, Scaling>      every forward rounds the parameters into Format (float8_e4m3 by
//                             default, or float8_e5m2) with one float scale per tensor or per
//                             output channel (amax / Format's largest finite value); the matrix
//                             multiplies of forward and backward read those values, widened.
//                             Parameter gradients are taken at the rounded weights and applied
//                             to the float master weights (straight-through), as fp8 training
//                             recipes do.
//
// Embedding, positions, norms, biases and the LM head stay dense.
//
// Plugging in another storage (a quantised format, say) takes three things and no change to the
// layers: storage_traits<S> (known, dense, bytes(shape)), and storage_ops<S, Space> for each
// memory space with pack(backend, shape, master weights, bytes) — the stored form from the
// parameters, run by every forward — and unpack(backend, shape, bytes, compute-type matrix) —
// the dense matrix a multiply reads, in the model's weight layout. The fp8 ops live in
// nn/storage_host.hpp and nn/storage_cuda.cuh.
#pragma once
#include <cstddef>
#include <cstdint>
#include <limits>
#include <tuple>
#include <type_traits>

#include "tfm/core/config.hpp"
#include "tfm/core/dtype.hpp"

namespace tfm::nn {

enum class weight_kind : int { attn_qkv = 0, attn_out = 1, mlp_in = 2, mlp_out = 3 };
inline constexpr int weight_kinds = 4;

// One block weight matrix as a storage sees it: `rows` output channels of `cols` inputs each,
// held [rows, cols] (weight_layout::out_in) or [cols, rows] (io = true, weight_layout::in_out).
struct matrix_shape {
  std::int64_t rows = 0, cols = 0;
  bool io = false;
  constexpr std::int64_t size() const { return rows * cols; }
};

struct dense {};  // block weights as plain arrays of the parameter type

enum class fp8_scaling { per_tensor, per_channel };
template <class Format = float8_e4m3, fp8_scaling Scaling = fp8_scaling::per_tensor>
struct fp8 {
  using format = Format;
  static constexpr fp8_scaling scaling = Scaling;
};

// One storage policy per kind of block weight.
template <class QKV, class Out = QKV, class In = QKV, class Down = QKV>
struct weight_storage {
  using kinds = std::tuple<QKV, Out, In, Down>;
};

template <class S>
struct storage_traits {
  static constexpr bool known = false;
  static constexpr bool dense = true;
};
template <>
struct storage_traits<dense> {
  static constexpr bool known = true;
  static constexpr bool dense = true;
  static constexpr std::size_t bytes(matrix_shape) { return 0; }
};

namespace detail {
constexpr std::size_t align_up(std::size_t n, std::size_t a) { return (n + a - 1) / a * a; }
template <class S>
struct storage_kinds {
  using type = std::tuple<S, S, S, S>;
};
template <class A, class B, class C, class D>
struct storage_kinds<weight_storage<A, B, C, D>> {
  using type = std::tuple<A, B, C, D>;
};
template <class F8>
inline constexpr bool is_fp8_format = std::is_same_v<F8, float8_e4m3> || std::is_same_v<F8, float8_e5m2>;
}  // namespace detail

// The storage of kind K under a config's `storage` member.
template <class Storage, weight_kind K>
using storage_of = std::tuple_element_t<int(K), typename detail::storage_kinds<Storage>::type>;

// fp8 payload: the rows·cols format values in the matrix's own element order, then (at a 64-byte
// boundary) the float scales, one per tensor or one per output channel.
template <class F8, fp8_scaling Sc>
struct storage_traits<fp8<F8, Sc>> {
  static_assert(detail::is_fp8_format<F8>, "nn::fp8<Format>: Format is tfm::float8_e4m3 or tfm::float8_e5m2");
  static constexpr bool known = true;
  static constexpr bool dense = false;
  static constexpr std::size_t scales(matrix_shape m) {
    return Sc == fp8_scaling::per_tensor ? 1 : std::size_t(m.rows);
  }
  static constexpr std::size_t scale_offset(matrix_shape m) { return detail::align_up(std::size_t(m.size()), 64); }
  static constexpr std::size_t bytes(matrix_shape m) { return scale_offset(m) + scales(m) * sizeof(float); }
};

// The element math of fp8 storage, shared by host and device (docs/model.md "Weight storage").
namespace fp8_math {
// |x| as ordered bits: the largest of them is the amax (NaN orders above every number).
TFM_HOST_DEVICE std::uint32_t abs_bits(float x) {
  return tfm::detail::bit_cast<std::uint32_t>(x) & 0x7fffffffu;
}
TFM_HOST_DEVICE float from_bits(std::uint32_t b) { return tfm::detail::bit_cast<float>(b); }
// scale = amax / largest finite value; 1 for an all-zero tensor (a NaN amax stays NaN, so NaN
// weights give NaN outputs rather than silently becoming numbers).
template <class F8>
TFM_HOST_DEVICE float scale(float amax) {
  constexpr float top = float(std::numeric_limits<F8>::max());
  return amax == 0.0f ? 1.0f : amax / top;
}
template <class F8>
TFM_HOST_DEVICE F8 quantize(float w, float s) {
  return F8(w / s);
}
TFM_HOST_DEVICE float dequantize(float q, float s) { return q * s; }
}  // namespace fp8_math

}  // namespace tfm::nn
