// tests/nn/model_configs.hpp — small model configs covering every variant of nn/config.hpp, in
// a chosen parameter type. Sizes are run-time (the fixtures' sizes come from their metadata).
#pragma once
#include "tfm/nn/config.hpp"

namespace tfm::test {
namespace nn = tfm::nn;

// P: the parameter type (float, double), or bfloat16 / half for mixed precision over float.
template <class P>
struct precision_for {
  using type = nn::precision_policy<P>;
};
template <>
struct precision_for<tfm::bfloat16> {
  using type = nn::precision_bf16;
};
template <>
struct precision_for<tfm::half> {
  using type = nn::precision_fp16;
};

template <class P>
struct base_gpt2 : nn::presets::gpt2<nn::dynamic_sizes> {
  using precision = typename precision_for<P>::type;
};
template <class P>
struct base_llama : nn::presets::llama<nn::dynamic_sizes> {
  using precision = typename precision_for<P>::type;
};

template <class P, class Kernel = nn::attn::naive>
struct cfg_gpt2 : base_gpt2<P> {
  using attention = nn::attn::config<nn::attn::mha, nn::attn::causal, Kernel>;
};
template <class P, class Kernel = nn::attn::naive>
struct cfg_llama : base_llama<P> {
  using attention = nn::attn::config<nn::attn::gqa<nn::dynamic>, nn::attn::causal, Kernel>;
};
template <class P, class Kernel = nn::attn::naive>
struct cfg_mqa : base_gpt2<P> {
  using attention = nn::attn::config<nn::attn::mqa, nn::attn::causal, Kernel>;
};
template <class P, class Kernel = nn::attn::naive>
struct cfg_gqa : base_gpt2<P> {
  using attention = nn::attn::config<nn::attn::gqa<2>, nn::attn::causal, Kernel>;
};
template <class P, class Kernel = nn::attn::naive>
struct cfg_bidirectional : base_gpt2<P> {
  using attention = nn::attn::config<nn::attn::mha, nn::attn::bidirectional, Kernel>;
};
template <class P, class Kernel = nn::attn::naive>
struct cfg_window : base_gpt2<P> {
  using attention = nn::attn::config<nn::attn::mha, nn::attn::sliding_window<5>, Kernel>;
};
template <class P, class Kernel = nn::attn::naive>
struct cfg_window_bidir : base_gpt2<P> {
  using attention = nn::attn::config<nn::attn::mha, nn::attn::sliding_window<3, false>, Kernel>;
};
template <class P, class Kernel = nn::attn::naive>
struct cfg_pos_none : cfg_gpt2<P, Kernel> {
  using position = nn::pos::none;
};
template <class P, class Kernel = nn::attn::naive>
struct cfg_sinusoidal : cfg_gpt2<P, Kernel> {
  using position = nn::pos::sinusoidal;
};
struct rope_half_pos : nn::pos::rope {
  static constexpr double theta = 500.0;
  static constexpr double fraction = 0.5;
};
template <class P, class Kernel = nn::attn::naive>
struct cfg_rope_half : cfg_gpt2<P, Kernel> {
  using position = rope_half_pos;
};
template <class P, class Kernel = nn::attn::naive>
struct cfg_alibi : cfg_gpt2<P, Kernel> {
  using position = nn::pos::alibi;
};
template <class P, class Kernel = nn::attn::naive>
struct cfg_post_norm : cfg_gpt2<P, Kernel> {
  static constexpr nn::norm_position norm_at = nn::norm_position::post;
};
template <class P, class Kernel = nn::attn::naive>
struct cfg_untied : cfg_gpt2<P, Kernel> {
  static constexpr bool tied = false;
};
// The output head padded to a multiple of 16 rows (vocabulary 23 → 32), tied and untied.
template <class P, class Kernel = nn::attn::naive>
struct cfg_padded : cfg_gpt2<P, Kernel> {
  static constexpr int vocab_multiple = 16;
};
template <class P, class Kernel = nn::attn::naive>
struct cfg_llama_padded : cfg_llama<P, Kernel> {
  static constexpr int vocab_multiple = 16;
};
template <class P, class Kernel = nn::attn::naive>
struct cfg_rmsnorm_gelu : cfg_gpt2<P, Kernel> {
  using norm = nn::norms::rmsnorm;
};
// Not in the fixtures (no PyTorch counterpart needed): GPT-2 weights stored [in, out].
template <class P, class Kernel = nn::attn::naive>
struct cfg_in_out : cfg_gpt2<P, Kernel> {
  static constexpr nn::weight_layout weights = nn::weight_layout::in_out;
};

// The fixtures' sizes (tools/make_model_fixtures.py).
// Config Base with LoRA adapters Policy (nn::lora).
template <class Base, class Policy>
struct with_lora : Base {
  using lora = Policy;
};

inline nn::dims fixture_dims(int kv_heads, bool swiglu) {
  nn::dims d;
  d.vocab = 61;
  d.ctx = 16;
  d.d_model = 32;
  d.layers = 2;
  d.heads = 4;
  d.kv_heads = kv_heads;
  d.d_ff = swiglu ? 48 : 128;
  return d;
}

}  // namespace tfm::test
