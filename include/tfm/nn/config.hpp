// tfm/nn/config.hpp — a transformer's architecture as a type.
//
// A config is a struct whose members name the choices (docs/model.md defines the model exactly):
//
//   struct my_model : tfm::nn::presets::gpt2<tfm::nn::presets::gpt2_small> {
//     using attention = tfm::nn::attn::config<tfm::nn::attn::gqa<4>, tfm::nn::attn::causal,
//                                             tfm::nn::attn::flash>;
//   };
//
// Members (every preset sets all of them; derive and override what differs):
//   sizes      nn::sizes<V, C, D, L, H, KV, F>, each 0 (= nn::dynamic) for a run-time value
//   attention  attn::config<Heads, Mask, Kernel>: attn::mha / mqa / gqa<KV>; attn::causal /
//              bidirectional / sliding_window<W, causal?>; attn::naive / flash
//   position   pos::none / learned / sinusoidal / rope (derive to set theta, fraction) / alibi
//   norm       norms::layernorm / rmsnorm;  norm_at: norm_position::pre / post
//   mlp        mlps::gelu (tanh approximation) / swiglu
//   biases, tied (bool);  precision: nn::precision_policy<Param, Compute>
//   weights    nn::weight_layout::out_in ([out, in], nn.Linear) / in_out (GPT-2 Conv1D)
//   storage    how block weight matrices are stored (nn/storage.hpp): nn::dense, nn::fp8<Format,
//              Scaling>, or nn::weight_storage<QKV, Out, In, Down> with one policy per kind of
//              matrix; further formats plug in through nn::storage_traits / nn::storage_ops.
//   lora       (optional) nn::lora::adapters<Targets, Rank> (derive to set alpha, rslora,
//              dropout): low-rank adapters on the chosen projections, base weights frozen.
//              Absent: lora::none, a plain model.
//
// config_traits<Cfg> checks a config: a wrong combination is a static_assert with a message;
// run-time sizes are checked by dims::validate(), which throws invalid_argument.
#pragma once
#include <cstdint>
#include <string>
#include <type_traits>

#include "tfm/core/dtype.hpp"
#include "tfm/core/error.hpp"
#include "tfm/nn/storage.hpp"

namespace tfm::nn {

inline constexpr int dynamic = 0;

// Sizes: vocabulary, context, d_model, layers, heads, kv-heads, FFN width. 0 = given at run time.
// kv_heads may be 0 when the attention policy fixes it (mha: = heads, mqa: 1, gqa<G>: G).
template <int V, int C, int D, int L, int H, int KV, int F>
struct sizes {
  static constexpr int vocab = V, ctx = C, d_model = D, layers = L, heads = H, kv_heads = KV, d_ff = F;
};
using dynamic_sizes = sizes<0, 0, 0, 0, 0, 0, 0>;

namespace attn {
struct mha {};
struct mqa {};
template <int KV>  // number of key/value heads; 0 = from the run-time sizes
struct gqa {
  static constexpr int kv_heads = KV;
};
struct causal {
  static constexpr bool is_causal = true;
  static constexpr int window = 0;
};
struct bidirectional {
  static constexpr bool is_causal = false;
  static constexpr int window = 0;
};
// Each query sees at most W keys: causal i−W < j ≤ i; bidirectional |i − j| < W.
template <int W, bool Causal = true>
struct sliding_window {
  static_assert(W > 0, "attn::sliding_window<W>: the window W must be positive");
  static constexpr bool is_causal = Causal;
  static constexpr int window = W;
};
struct naive {};  // materialised T×T probabilities (the reference)
struct flash {};  // tiled online softmax, O(T) extra memory
template <class Heads = mha, class Mask = causal, class Kernel = naive>
struct config {
  using heads = Heads;
  using mask = Mask;
  using kernel = Kernel;
};
}  // namespace attn

namespace pos {
struct none {};
struct learned {};
struct sinusoidal {};
// Derive to change: struct my_rope : pos::rope { static constexpr double theta = 5e5; };
struct rope {
  static constexpr double theta = 10000.0;
  static constexpr double fraction = 1.0;
};
struct alibi {};
}  // namespace pos

namespace norms {
struct layernorm {};
struct rmsnorm {};
}  // namespace norms
enum class norm_position { pre, post };

namespace mlps {
struct gelu {};
struct swiglu {};
}  // namespace mlps

enum class weight_layout { out_in, in_out };

// Parameter type (master weights, gradients, optimizer) and compute type: Param itself (float or
// double), or bfloat16 / half over float parameters — mixed precision as PyTorch autocast does it
// (matrix-multiply operands and outputs in Compute with float accumulation, everything else in
// float; docs/model.md "Mixed precision"). Shorthands: precision_bf16, precision_fp16.
template <class Param = float, class Compute = Param>
struct precision_policy {
  using param_type = Param;
  using compute_type = Compute;
};

using precision_fp32 = precision_policy<float>;
using precision_bf16 = precision_policy<float, bfloat16>;
using precision_fp16 = precision_policy<float, half>;


// Low-rank adapters (LoRA, Hu et al. 2021): a targeted projection W [out, in] computes
// y = x·Wᵀ + scale·(drop(x)·Aᵀ)·Bᵀ on its rows, A [r, in], B [rows, r]; only A and B train.
//   struct my_lora : nn::lora::adapters<nn::lora::q | nn::lora::v, 8> { static constexpr double alpha = 32; };
//   struct my_model : nn::presets::llama<> { using lora = my_lora; };
// docs/model.md ("LoRA") defines names, scale, dropout and merging.
namespace lora {
enum target : unsigned {
  q = 1,
  k = 2,
  v = 4,
  qkv = 8,  // one adapter over the whole fused c_attn
  o = 16,
  gate = 32,  // SwiGLU only: rows [0, F) of c_fc
  up = 64,    // SwiGLU: rows [F, 2F) of c_fc; GELU: all of c_fc
  down = 128,
};
inline constexpr unsigned all_targets = q | k | v | qkv | o | gate | up | down;
struct none {};
template <unsigned Targets, int Rank>
struct adapters {
  static constexpr unsigned targets = Targets;
  static constexpr int rank = Rank;
  static constexpr double alpha = 2.0 * Rank;  // scale = alpha / rank (rslora: alpha / sqrt(rank))
  static constexpr bool rslora = false;
  static constexpr double dropout = 0.0;  // on the adapter input, training mode only
};
}  // namespace lora

// Run-time sizes of one model instance (static sizes are filled in from the config).
struct dims {
  int vocab = 0, ctx = 0, d_model = 0, layers = 0, heads = 0, kv_heads = 0, d_ff = 0;
  int head_dim() const { return heads > 0 ? d_model / heads : 0; }
  int qkv_dim() const { return (heads + 2 * kv_heads) * head_dim(); }
  std::string to_string() const {
    return tfm::detail::concat("vocab=", vocab, " ctx=", ctx, " d_model=", d_model, " layers=", layers,
                          " heads=", heads, " kv_heads=", kv_heads, " d_ff=", d_ff);
  }
};

template <class T>
inline constexpr bool is_rope_v = std::is_base_of_v<pos::rope, T>;

namespace detail {
template <class H>
struct kv_rule {  // gqa<G>
  static constexpr int fixed = H::kv_heads;
};
template <>
struct kv_rule<nn::attn::mha> {
  static constexpr int fixed = -1;  // = heads
};
template <>
struct kv_rule<nn::attn::mqa> {
  static constexpr int fixed = 1;
};
template <class P>
constexpr bool rope_fraction_ok() {
  if constexpr (is_rope_v<P>)
    return P::fraction > 0.0 && P::fraction <= 1.0;
  else
    return true;
}
template <class P>
constexpr bool rope_theta_ok() {
  if constexpr (is_rope_v<P>)
    return P::theta > 0.0;
  else
    return true;
}
// Cfg::lora when the config declares one, else lora::none (existing configs need no member).
template <class C, class = void>
struct lora_of {
  using type = nn::lora::none;
};
template <class C>
struct lora_of<C, std::void_t<typename C::lora>> {
  using type = typename C::lora;
};
// The checks of a lora policy; `what` selects one (each is its own static_assert message).
enum class lora_check { rank, targets_known, qkv_alone, gate_swiglu, alpha, dropout };
template <class P, bool Swiglu>
constexpr bool lora_ok(lora_check what) {
  if constexpr (std::is_same_v<P, nn::lora::none>) {
    return true;
  } else {
    switch (what) {
      case lora_check::rank: return P::rank > 0;
      case lora_check::targets_known: return P::targets != 0 && (P::targets & ~nn::lora::all_targets) == 0;
      case lora_check::qkv_alone:
        return !(P::targets & nn::lora::qkv) || !(P::targets & (nn::lora::q | nn::lora::k | nn::lora::v));
      case lora_check::gate_swiglu: return Swiglu || !(P::targets & nn::lora::gate);
      case lora_check::alpha: return P::alpha > 0.0;
      case lora_check::dropout: return P::dropout >= 0.0 && P::dropout < 1.0;
    }
    return false;
  }
}
// Cfg::vocab_multiple when the config declares one, else 1 (no padding).
template <class C>
constexpr int vocab_multiple_of() {
  if constexpr (requires { C::vocab_multiple; })
    return int(C::vocab_multiple);
  else
    return 1;
}
template <class T>
inline constexpr bool one_of_kernels = std::is_same_v<T, nn::attn::naive> || std::is_same_v<T, nn::attn::flash>;
}  // namespace detail

// Validated view of a config: resolved types and the static part of the sizes.
template <class Cfg>
struct config_traits {
  using sizes = typename Cfg::sizes;
  using attention = typename Cfg::attention;
  using heads_policy = typename attention::heads;
  using mask = typename attention::mask;
  using kernel = typename attention::kernel;
  using position = typename Cfg::position;
  using norm = typename Cfg::norm;
  using mlp = typename Cfg::mlp;
  using param_type = typename Cfg::precision::param_type;
  using compute_type = typename Cfg::precision::compute_type;
  using storage = typename Cfg::storage;
  static constexpr norm_position norm_at = Cfg::norm_at;
  static constexpr bool biases = Cfg::biases;
  static constexpr bool tied = Cfg::tied;
  static constexpr weight_layout layout = Cfg::weights;
  static constexpr bool is_causal = mask::is_causal;
  static constexpr int window = mask::window;
  static constexpr bool pre_norm = norm_at == norm_position::pre;
  static constexpr bool flash = std::is_same_v<kernel, attn::flash>;
  static constexpr bool swiglu = std::is_same_v<mlp, mlps::swiglu>;
  static constexpr bool layernorm = std::is_same_v<norm, norms::layernorm>;
  static constexpr bool norm_bias = layernorm && biases;
  static constexpr bool learned_pos = std::is_same_v<position, pos::learned>;
  static constexpr bool sinusoidal_pos = std::is_same_v<position, pos::sinusoidal>;
  static constexpr bool rope = is_rope_v<position>;
  static constexpr bool alibi = std::is_same_v<position, pos::alibi>;
  using lora_policy = typename detail::lora_of<Cfg>::type;
  static constexpr bool has_lora = !std::is_same_v<lora_policy, lora::none>;
  // The output head's rows (and the logits' row stride) are the vocabulary rounded up to this
  // multiple: `static constexpr int vocab_multiple = 64;` in a config pads GPT-2's 50,257 to
  // 50,304, as llm.c does, so that the head's products run on aligned rows. The extra rows are
  // zero, belong to no parameter (checkpoints, optimizer and norm never see them) and their
  // logits are left out of the loss. 1 (the default): no padding.
  static constexpr int vocab_multiple = detail::vocab_multiple_of<Cfg>();
  static_assert(vocab_multiple >= 1 && vocab_multiple <= 4096, "config: vocab_multiple must be in [1, 4096]");

  // kv heads: fixed by the attention policy, else from the sizes.
  static constexpr int kv_fixed = detail::kv_rule<heads_policy>::fixed;
  static constexpr int static_kv =
      kv_fixed == -1 ? sizes::heads : (kv_fixed > 0 ? kv_fixed : sizes::kv_heads);

  static_assert(std::is_same_v<param_type, float> || std::is_same_v<param_type, double>,
                "nn::precision_policy: parameters are float or double");
  static_assert(std::is_same_v<compute_type, param_type> ||
                    (std::is_same_v<param_type, float> &&
                     (std::is_same_v<compute_type, bfloat16> || std::is_same_v<compute_type, half>)),
                "nn::precision_policy<Param, Compute>: Compute is Param (float or double), or bfloat16 / half over "
                "float parameters (mixed precision)");
  template <weight_kind K>
  using storage_for = storage_of<storage, K>;
  static constexpr bool storage_known = storage_traits<storage_for<weight_kind::attn_qkv>>::known &&
                                        storage_traits<storage_for<weight_kind::attn_out>>::known &&
                                        storage_traits<storage_for<weight_kind::mlp_in>>::known &&
                                        storage_traits<storage_for<weight_kind::mlp_out>>::known;
  static constexpr bool all_dense = storage_traits<storage_for<weight_kind::attn_qkv>>::dense &&
                                    storage_traits<storage_for<weight_kind::attn_out>>::dense &&
                                    storage_traits<storage_for<weight_kind::mlp_in>>::dense &&
                                    storage_traits<storage_for<weight_kind::mlp_out>>::dense;
  static_assert(storage_known,
                "config: storage must be nn::dense, nn::fp8<Format, Scaling>, a policy with an nn::storage_traits "
                "specialisation, or nn::weight_storage<QKV, Out, In, Down> of those");
  static_assert(detail::one_of_kernels<kernel>, "attn::config: the kernel must be attn::naive or attn::flash");
  static_assert(std::is_same_v<norm, norms::layernorm> || std::is_same_v<norm, norms::rmsnorm>,
                "config: norm must be norms::layernorm or norms::rmsnorm");
  static_assert(std::is_same_v<mlp, mlps::gelu> || std::is_same_v<mlp, mlps::swiglu>,
                "config: mlp must be mlps::gelu or mlps::swiglu");
  static_assert(std::is_same_v<position, pos::none> || learned_pos || sinusoidal_pos || rope || alibi,
                "config: position must be pos::none, learned, sinusoidal, rope (or derived) or alibi");
  static_assert(detail::rope_fraction_ok<position>(), "pos::rope: fraction must be in (0, 1]");
  static_assert(detail::rope_theta_ok<position>(), "pos::rope: theta must be positive");
  static_assert(sizes::vocab >= 0 && sizes::ctx >= 0 && sizes::d_model >= 0 && sizes::layers >= 0 &&
                    sizes::heads >= 0 && sizes::kv_heads >= 0 && sizes::d_ff >= 0,
                "nn::sizes: sizes are positive, or 0 for a run-time size");
  static_assert(sizes::heads == 0 || sizes::d_model == 0 || sizes::d_model % sizes::heads == 0,
                "nn::sizes: heads must divide d_model");
  static_assert(kv_fixed != 0 || sizes::kv_heads == 0 || sizes::heads == 0 || sizes::heads % sizes::kv_heads == 0,
                "nn::sizes: kv_heads must divide heads");
  static_assert(kv_fixed <= 0 || sizes::heads == 0 || sizes::heads % kv_fixed == 0,
                "attn::gqa<KV>: KV must divide the number of heads");
  static_assert(kv_fixed <= 0 || sizes::kv_heads == 0 || sizes::kv_heads == kv_fixed,
                "nn::sizes: kv_heads contradicts the attention policy (mqa: 1, gqa<KV>: KV)");
  static_assert(kv_fixed != -1 || sizes::kv_heads == 0 || sizes::kv_heads == sizes::heads,
                "nn::sizes: attn::mha needs kv_heads == heads (use gqa or mqa for fewer)");
  static_assert(!rope || sizes::heads == 0 || sizes::d_model == 0 || (sizes::d_model / sizes::heads) % 2 == 0,
                "pos::rope: the head size d_model/heads must be even");
  static_assert(!sinusoidal_pos || sizes::d_model == 0 || sizes::d_model % 2 == 0,
                "pos::sinusoidal: d_model must be even");
  static_assert(window == 0 || sizes::ctx == 0 || window > 0, "attn::sliding_window: W must be positive");
  static_assert(detail::lora_ok<lora_policy, swiglu>(detail::lora_check::rank),
                "lora::adapters<Targets, Rank>: the rank must be positive");
  static_assert(detail::lora_ok<lora_policy, swiglu>(detail::lora_check::targets_known),
                "lora::adapters<Targets, Rank>: Targets must be a non-empty combination of lora::q, k, v, qkv, o, "
                "gate, up, down");
  static_assert(detail::lora_ok<lora_policy, swiglu>(detail::lora_check::qkv_alone),
                "lora::adapters: lora::qkv (one adapter over the fused c_attn) cannot be combined with q, k or v");
  static_assert(detail::lora_ok<lora_policy, swiglu>(detail::lora_check::gate_swiglu),
                "lora::adapters: lora::gate needs the SwiGLU MLP (a GELU MLP has no gate projection)");
  static_assert(detail::lora_ok<lora_policy, swiglu>(detail::lora_check::alpha),
                "lora::adapters: alpha must be positive");
  static_assert(detail::lora_ok<lora_policy, swiglu>(detail::lora_check::dropout),
                "lora::adapters: dropout must be in [0, 1)");

  static constexpr int static_head_dim =
      (sizes::heads > 0 && sizes::d_model > 0) ? sizes::d_model / sizes::heads : 0;

  // The sizes of an instance: static ones from the config, dynamic ones from `d`. A size given
  // both ways must agree.
  static dims resolve(dims d) {
    auto pick = [](int stat, int run, const char* what) {
      if (stat == 0) return run;
      expects<invalid_argument>(run == 0 || run == stat, "nn::model: ", what, " is fixed to ", stat,
                                " by the config but ", run, " was given");
      return stat;
    };
    dims r;
    r.vocab = pick(sizes::vocab, d.vocab, "vocab");
    r.ctx = pick(sizes::ctx, d.ctx, "ctx");
    r.d_model = pick(sizes::d_model, d.d_model, "d_model");
    r.layers = pick(sizes::layers, d.layers, "layers");
    r.heads = pick(sizes::heads, d.heads, "heads");
    r.d_ff = pick(sizes::d_ff, d.d_ff, "d_ff");
    if (kv_fixed == -1) {
      expects<invalid_argument>(d.kv_heads == 0 || d.kv_heads == r.heads, "nn::model: attn::mha needs kv_heads == heads (",
                                r.heads, ") but ", d.kv_heads, " was given");
      r.kv_heads = r.heads;
    } else if (kv_fixed > 0) {
      r.kv_heads = pick(kv_fixed, d.kv_heads, "kv_heads");
    } else {
      r.kv_heads = pick(sizes::kv_heads, d.kv_heads, "kv_heads");
    }
    validate(r);
    return r;
  }

  static void validate(dims const& d) {
    auto pos_ = [&](int v, const char* what) {
      expects<invalid_argument>(v > 0, "nn::model: ", what, " must be positive, got ", v, " (", d.to_string(), ")");
    };
    pos_(d.vocab, "vocab");
    pos_(d.ctx, "ctx");
    pos_(d.d_model, "d_model");
    pos_(d.layers, "layers");
    pos_(d.heads, "heads");
    pos_(d.kv_heads, "kv_heads");
    pos_(d.d_ff, "d_ff");
    expects<invalid_argument>(d.d_model % d.heads == 0, "nn::model: heads (", d.heads, ") must divide d_model (",
                              d.d_model, ")");
    expects<invalid_argument>(d.heads % d.kv_heads == 0, "nn::model: kv_heads (", d.kv_heads,
                              ") must divide heads (", d.heads, ")");
    if constexpr (rope)
      expects<invalid_argument>(d.head_dim() % 2 == 0, "nn::model: RoPE needs an even head size, got ", d.head_dim());
    if constexpr (sinusoidal_pos)
      expects<invalid_argument>(d.d_model % 2 == 0, "nn::model: sinusoidal positions need an even d_model, got ",
                                d.d_model);
  }
};

// ---- presets ----
namespace presets {

// GPT-2 sizes (vocabulary 50257, context 1024).
using gpt2_small = sizes<50257, 1024, 768, 12, 12, 12, 3072>;
using gpt2_medium = sizes<50257, 1024, 1024, 24, 16, 16, 4096>;
using gpt2_large = sizes<50257, 1024, 1280, 36, 20, 20, 5120>;
using gpt2_xl = sizes<50257, 1024, 1600, 48, 25, 25, 6400>;

// Exactly GPT-2: learned positions, pre-LayerNorm, GELU (tanh), MHA causal, biases, tied head.
template <class Sizes = gpt2_small>
struct gpt2 {
  using sizes = Sizes;
  using attention = attn::config<attn::mha, attn::causal, attn::naive>;
  using position = pos::learned;
  using norm = norms::layernorm;
  static constexpr norm_position norm_at = norm_position::pre;
  using mlp = mlps::gelu;
  static constexpr bool biases = true;
  static constexpr bool tied = true;
  using precision = precision_policy<float>;
  static constexpr weight_layout weights = weight_layout::out_in;
  using storage = dense;
};

// Llama-7B-like sizes; a llama config usually sets its own.
using llama_7b = sizes<32000, 4096, 4096, 32, 32, 32, 11008>;

// Llama: RMSNorm, RoPE (theta 10000), SwiGLU, GQA (kv heads from the sizes), no biases, untied.
template <class Sizes = llama_7b>
struct llama {
  using sizes = Sizes;
  using attention = attn::config<attn::gqa<dynamic>, attn::causal, attn::naive>;  // kv heads from the sizes
  using position = pos::rope;
  using norm = norms::rmsnorm;
  static constexpr norm_position norm_at = norm_position::pre;
  using mlp = mlps::swiglu;
  static constexpr bool biases = false;
  static constexpr bool tied = false;
  using precision = precision_policy<float>;
  static constexpr weight_layout weights = weight_layout::out_in;
  using storage = dense;
};

}  // namespace presets
}  // namespace tfm::nn
