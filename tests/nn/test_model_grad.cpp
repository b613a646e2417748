// Finite-difference gradient checks in double of the whole model, for every variant and for the
// combinations whose code paths meet: every trainable parameter tensor gets sampled elements checked
// (all elements of the small ones), plus the gradient with respect to the embedding input through wte.
#define TFM_TEST_MODULE test_model_grad
#include "support/test_main.hpp"

#include <boost/mpl/list.hpp>
#include <cmath>
#include <cstring>
#include <limits>

#include "model_configs.hpp"
#include "model_test_util.hpp"
#include "tfm/nn/model.hpp"

namespace nn = tfm::nn;
using namespace tfm::test;

namespace {

nn::dims small_dims(int kv) {
  nn::dims d;
  d.vocab = 23;
  d.ctx = 12;
  d.d_model = 16;
  d.layers = 2;
  d.heads = 4;
  d.kv_heads = kv;
  d.d_ff = 24;
  return d;
}

// Sampled elements per larger tensor. Fewer under AddressSanitizer: CI's -O0 sanitizer build runs
// this file for memory errors, where every sample costs two forwards at -O0; the Release run checks
// the numbers with the full sample.
#ifdef __SANITIZE_ADDRESS__
constexpr std::size_t fd_samples = 10;
#else
constexpr std::size_t fd_samples = 29;
#endif

// As small_dims with d_model 32: head size 8, so that a RoPE fraction of 1/2 rotates two pairs and
// leaves four dimensions alone (with head size 4 it rotates one pair).
nn::dims wide_dims(int kv) {
  nn::dims d = small_dims(kv);
  d.d_model = 32;
  return d;
}

template <class Cfg>
void check_gradients(const nn::dims& d) {
  nn::model<Cfg> m(d);
  randomize(m, 11);
  const int B = 2, T = 9;
  auto tok = random_tokens(B * T, m.sizes().vocab, 1);
  auto tgt = random_tokens(B * T, m.sizes().vocab, 2);
  tgt[3] = nn::ignore_index;
  tgt[12] = nn::ignore_index;
  // A backward of another batch first: the checked backward then starts from stale activations, scratch
  // and gradients (not a zeroed arena), which it must neither read nor keep.
  auto tok0 = random_tokens(B * T, m.sizes().vocab, 3), tgt0 = random_tokens(B * T, m.sizes().vocab, 4);
  m.forward(tok0.data(), tgt0.data(), B, T);
  m.backward();
  m.forward(tok.data(), tgt.data(), B, T);
  m.zero_grad();
  m.backward();
  std::vector<double> analytic(m.gradients().begin(), m.gradients().end());
  auto w = m.parameters();
  const double h = 1e-5;
  int checked = 0;
  double worst = 0;
  std::string worst_name;
  for (auto const& p : m.parameter_table()) {
    if (!p.trainable) continue;  // a LoRA model's frozen base has no gradient
    const std::size_t stride = p.size <= 40 ? 1 : p.size / fd_samples + 1;
    for (std::size_t e = (p.size > 40 ? (p.size * 7) % stride : 0); e < p.size; e += stride) {
      const std::size_t i = p.offset + e;
      const double a = analytic[std::size_t(p.grad_offset) + e];  // = i without LoRA
      const double w0 = w[i];
      w[i] = w0 + h;
      const double lp = m.forward(tok.data(), tgt.data(), B, T);
      w[i] = w0 - h;
      const double lm = m.forward(tok.data(), tgt.data(), B, T);
      w[i] = w0;
      const double num = (lp - lm) / (2 * h);
      const double err = std::abs(num - a) / (1e-6 + std::abs(num));
      if (std::abs(num - a) > 1e-8 + 1e-5 * std::abs(num)) {
        BOOST_ERROR(p.name << "[" << e << "]: analytic " << a << " vs numeric " << num);
      }
      if (err > worst) {
        worst = err;
        worst_name = p.name;
      }
      ++checked;
    }
  }
  BOOST_TEST_MESSAGE(checked << " elements checked, worst relative error " << worst << " (" << worst_name << ")");
  BOOST_TEST(checked > 100);
}
template <class Cfg>
void check_gradients(int kv) {
  check_gradients<Cfg>(small_dims(kv));
}

// Combinations of variants whose code paths meet (each variant alone is checked in the suites below).
// Post-norm with RMSNorm (no norm bias), SwiGLU, no biases, an untied head, RoPE and GQA.
template <class P, class Kernel = nn::attn::naive>
struct cfg_post_norm_llama : cfg_llama<P, Kernel> {
  static constexpr nn::norm_position norm_at = nn::norm_position::post;
};
// Partial RoPE (fraction 1/2, theta 500) on the q and k heads of GQA.
template <class P, class Kernel = nn::attn::naive>
struct cfg_rope_half_gqa : cfg_llama<P, Kernel> {
  using position = rope_half_pos;
};
// ALiBi with GQA and a bidirectional sliding window; without biases (LayerNorm without its bias).
template <class P, class Kernel = nn::attn::naive>
struct cfg_alibi_gqa_window_bidir : base_gpt2<P> {
  using attention = nn::attn::config<nn::attn::gqa<2>, nn::attn::sliding_window<3, false>, Kernel>;
  using position = nn::pos::alibi;
  static constexpr bool biases = false;
};
// SwiGLU with biases (c_fc.bias holds gate and up).
template <class P, class Kernel = nn::attn::naive>
struct cfg_swiglu_biases : cfg_gpt2<P, Kernel> {
  using mlp = nn::mlps::swiglu;
};
// Block weights stored [in, out] with an untied head (always [V, D]), SwiGLU's fused gate and up
// columns and GQA's narrower c_attn.
template <class P, class Kernel = nn::attn::naive>
struct cfg_in_out_llama : cfg_llama<P, Kernel> {
  static constexpr nn::weight_layout weights = nn::weight_layout::in_out;
};
// LoRA adapters with dropout in post-norm blocks, on the two projections whose input gradient goes to
// the block input (c_attn before RoPE, SwiGLU's gate), which post-norm accumulates into (beta = 1)
// where pre-norm overwrites it: only the adapters have gradients.
struct post_norm_lora_policy : nn::lora::adapters<nn::lora::q | nn::lora::gate, 2> {
  static constexpr double dropout = 0.2;
};
template <class P>
using cfg_post_norm_lora = with_lora<cfg_post_norm_llama<P>, post_norm_lora_policy>;

}  // namespace

BOOST_AUTO_TEST_SUITE(naive_kernel)
BOOST_AUTO_TEST_CASE(gpt2) { check_gradients<cfg_gpt2<double>>(4); }
BOOST_AUTO_TEST_CASE(llama) { check_gradients<cfg_llama<double>>(2); }
BOOST_AUTO_TEST_CASE(mqa) { check_gradients<cfg_mqa<double>>(1); }
BOOST_AUTO_TEST_CASE(gqa) { check_gradients<cfg_gqa<double>>(2); }
BOOST_AUTO_TEST_CASE(bidirectional) { check_gradients<cfg_bidirectional<double>>(4); }
BOOST_AUTO_TEST_CASE(window) { check_gradients<cfg_window<double>>(4); }
BOOST_AUTO_TEST_CASE(window_bidir) { check_gradients<cfg_window_bidir<double>>(4); }
BOOST_AUTO_TEST_CASE(pos_none) { check_gradients<cfg_pos_none<double>>(4); }
BOOST_AUTO_TEST_CASE(sinusoidal) { check_gradients<cfg_sinusoidal<double>>(4); }
BOOST_AUTO_TEST_CASE(rope_half) { check_gradients<cfg_rope_half<double>>(4); }
BOOST_AUTO_TEST_CASE(alibi) { check_gradients<cfg_alibi<double>>(4); }
BOOST_AUTO_TEST_CASE(post_norm) { check_gradients<cfg_post_norm<double>>(4); }
BOOST_AUTO_TEST_CASE(untied) { check_gradients<cfg_untied<double>>(4); }
BOOST_AUTO_TEST_CASE(rmsnorm_gelu) { check_gradients<cfg_rmsnorm_gelu<double>>(4); }
BOOST_AUTO_TEST_CASE(in_out_layout) { check_gradients<cfg_in_out<double>>(4); }
BOOST_AUTO_TEST_CASE(padded_vocab_untied) { check_gradients<cfg_llama_padded<double>>(2); }
BOOST_AUTO_TEST_CASE(padded_vocab_tied) { check_gradients<cfg_padded<double>>(4); }  // wte: embedding and head
BOOST_AUTO_TEST_CASE(post_norm_rmsnorm_swiglu) { check_gradients<cfg_post_norm_llama<double>>(2); }
BOOST_AUTO_TEST_CASE(swiglu_biases) { check_gradients<cfg_swiglu_biases<double>>(4); }
BOOST_AUTO_TEST_CASE(in_out_untied_swiglu_gqa) { check_gradients<cfg_in_out_llama<double>>(2); }
BOOST_AUTO_TEST_CASE(lora_post_norm_dropout) { check_gradients<cfg_post_norm_lora<double>>(2); }
BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(flash_kernel)
BOOST_AUTO_TEST_CASE(gpt2) { check_gradients<cfg_gpt2<double, nn::attn::flash>>(4); }
BOOST_AUTO_TEST_CASE(llama) { check_gradients<cfg_llama<double, nn::attn::flash>>(2); }
BOOST_AUTO_TEST_CASE(mqa) { check_gradients<cfg_mqa<double, nn::attn::flash>>(1); }
BOOST_AUTO_TEST_CASE(bidirectional) { check_gradients<cfg_bidirectional<double, nn::attn::flash>>(4); }
BOOST_AUTO_TEST_CASE(window) { check_gradients<cfg_window<double, nn::attn::flash>>(4); }
BOOST_AUTO_TEST_CASE(window_bidir) { check_gradients<cfg_window_bidir<double, nn::attn::flash>>(4); }
BOOST_AUTO_TEST_CASE(alibi) { check_gradients<cfg_alibi<double, nn::attn::flash>>(4); }
BOOST_AUTO_TEST_CASE(rope_half) { check_gradients<cfg_rope_half<double, nn::attn::flash>>(4); }
BOOST_AUTO_TEST_CASE(rope_half_gqa) { check_gradients<cfg_rope_half_gqa<double, nn::attn::flash>>(wide_dims(2)); }
BOOST_AUTO_TEST_CASE(alibi_gqa_window_bidir_no_biases) {
  check_gradients<cfg_alibi_gqa_window_bidir<double, nn::attn::flash>>(2);
}
BOOST_AUTO_TEST_SUITE_END()

// ---- invariants of the whole model ----
BOOST_AUTO_TEST_SUITE(invariants)

// Changing future tokens never changes past logits (causal masks, every position encoding).
template <class Cfg>
void check_causal(int kv) {
  nn::model<Cfg> m(small_dims(kv));
  randomize(m, 5);
  const int B = 1, T = 10;
  auto tok = random_tokens(T, m.sizes().vocab, 3);
  m.forward(tok.data(), nullptr, B, T);
  auto a = m.logits_to_host();
  for (int t = 6; t < T; ++t) tok[t] = (tok[t] + 1) % m.sizes().vocab;
  m.forward(tok.data(), nullptr, B, T);
  auto b = m.logits_to_host();
  const int V = m.sizes().vocab;
  for (int i = 0; i < 6 * V; ++i) BOOST_TEST(a[i] == b[i]);
  bool changed = false;
  for (int i = 6 * V; i < T * V; ++i) changed |= a[i] != b[i];
  BOOST_TEST(changed);
}
BOOST_AUTO_TEST_CASE(causal_past_logits_fixed) {
  check_causal<cfg_gpt2<double>>(4);
  check_causal<cfg_llama<double, nn::attn::flash>>(2);
  check_causal<cfg_alibi<double>>(4);
  check_causal<cfg_window<double, nn::attn::flash>>(4);
}

// Two configs that must be the same model: with the same weights (same parameter table), the
// same logits, loss and gradients up to double rounding (the kernels sum in other orders).
template <class A, class B>
void check_same_model(int kv) {
  nn::model<A> a(small_dims(kv));
  nn::model<B> b(small_dims(kv));
  randomize(a, 9);
  b.parameters_from_host(a.parameters_to_host());
  const int Bn = 2, T = 5;
  auto tok = random_tokens(Bn * T, a.sizes().vocab, 4);
  auto tgt = random_tokens(Bn * T, a.sizes().vocab, 8);
  tgt[2] = nn::ignore_index;
  const double la = a.forward(tok.data(), tgt.data(), Bn, T);
  const double lb = b.forward(tok.data(), tgt.data(), Bn, T);
  BOOST_TEST(std::abs(la - lb) <= 1e-12 * std::abs(lb));
  auto za = a.logits_to_host(), zb = b.logits_to_host();
  BOOST_TEST_REQUIRE(za.size() == zb.size());
  for (std::size_t i = 0; i < za.size(); ++i) BOOST_TEST(std::abs(za[i] - zb[i]) <= 1e-12);
  a.zero_grad();
  b.zero_grad();
  a.backward();
  b.backward();
  auto ga = a.gradients(), gb = b.gradients();
  BOOST_TEST_REQUIRE(ga.size() == gb.size());
  // relative to each tensor's largest gradient: some are zero up to rounding (the key bias's:
  // softmax does not see a constant added to a row's scores)
  for (auto const& p : a.parameter_table()) {
    double scale = 0, worst = 0;
    for (std::size_t e = 0; e < p.size; ++e) scale = std::max(scale, std::abs(gb[p.offset + e]));
    for (std::size_t e = 0; e < p.size; ++e) worst = std::max(worst, std::abs(ga[p.offset + e] - gb[p.offset + e]));
    BOOST_TEST(worst <= 1e-11 * (scale + 1e-300), p.name << ": worst difference " << worst << " of " << scale);
  }
}
// GQA with kv_heads = heads is MHA; a window W ≥ T is full attention; the flash kernel is the
// naive one, inside the whole model (every position encoding and mask that reaches the kernel).
template <class P, class Kernel = nn::attn::naive>
struct cfg_gqa4 : base_gpt2<P> {
  using attention = nn::attn::config<nn::attn::gqa<4>, nn::attn::causal, Kernel>;
};
template <class P, bool Causal = true>
struct cfg_window_wide : base_gpt2<P> {
  using attention = nn::attn::config<nn::attn::mha, nn::attn::sliding_window<5, Causal>, nn::attn::flash>;
};
template <class P>
struct cfg_bidir_flash : base_gpt2<P> {
  using attention = nn::attn::config<nn::attn::mha, nn::attn::bidirectional, nn::attn::flash>;
};
BOOST_AUTO_TEST_CASE(gqa_full_equals_mha) {
  check_same_model<cfg_gqa4<double>, cfg_gpt2<double>>(4);
  check_same_model<cfg_gqa4<double, nn::attn::flash>, cfg_gpt2<double, nn::attn::flash>>(4);
}
BOOST_AUTO_TEST_CASE(window_at_least_T_equals_full) {
  check_same_model<cfg_window_wide<double>, cfg_gpt2<double, nn::attn::flash>>(4);
  check_same_model<cfg_window_wide<double, false>, cfg_bidir_flash<double>>(4);
}
BOOST_AUTO_TEST_CASE(flash_model_equals_naive_model) {
  check_same_model<cfg_gpt2<double, nn::attn::flash>, cfg_gpt2<double>>(4);
  check_same_model<cfg_llama<double, nn::attn::flash>, cfg_llama<double>>(2);
  check_same_model<cfg_alibi<double, nn::attn::flash>, cfg_alibi<double>>(4);
  check_same_model<cfg_window_bidir<double, nn::attn::flash>, cfg_window_bidir<double>>(4);
  check_same_model<cfg_rope_half<double, nn::attn::flash>, cfg_rope_half<double>>(4);
}

// A padded head (vocab_multiple) is the same model: with the same weights (copied by name, the
// arenas differ), the same loss, logits and gradients; the padded rows of the weights and of
// their gradients stay zero, the logits' rows are vocab_padded() apart.
template <class Padded, class Plain>
void check_padding(int kv) {
  nn::model<Padded> a(small_dims(kv));
  nn::model<Plain> b(small_dims(kv));
  BOOST_TEST(a.vocab_padded() == 32);
  BOOST_TEST(b.vocab_padded() == 23);
  BOOST_TEST(a.num_weights() == b.num_weights());
  BOOST_TEST(a.num_parameters() >= b.num_parameters() + (32 - 23) * 16);
  randomize(a, 21);
  for (auto const& p : a.parameter_table()) {
    auto src = a.param(p.name);
    auto dst = b.param(p.name);
    std::copy(src.begin(), src.end(), dst.begin());
  }
  const int B = 2, T = 7;
  auto tok = random_tokens(B * T, 23, 6);
  auto tgt = random_tokens(B * T, 23, 7);
  tgt[4] = nn::ignore_index;
  const double la = a.forward(tok.data(), tgt.data(), B, T);
  const double lb = b.forward(tok.data(), tgt.data(), B, T);
  BOOST_TEST(std::abs(la - lb) <= 1e-13 * std::abs(lb));
  BOOST_TEST(a.logits().size() == std::size_t(B * T * 32));
  const auto za = a.logits_to_host(), zb = b.logits_to_host();
  BOOST_TEST_REQUIRE(za.size() == zb.size());
  for (std::size_t i = 0; i < za.size(); ++i) BOOST_TEST(std::abs(za[i] - zb[i]) <= 1e-13 * (1 + std::abs(zb[i])));
  for (int r = 0; r < B * T; ++r)  // zero weight rows: zero logits in the padding
    for (int j = 23; j < 32; ++j) BOOST_TEST(a.logits()[std::size_t(r * 32 + j)] == 0.0);
  a.zero_grad();
  b.zero_grad();
  a.backward();
  b.backward();
  for (auto const& p : a.parameter_table()) {
    auto ga = a.grad(p.name);
    auto gb = b.grad(p.name);
    double worst = 0;
    for (std::size_t i = 0; i < ga.size(); ++i)
      worst = std::max(worst, std::abs(ga[i] - gb[i]) / (1e-12 + std::abs(gb[i])));
    BOOST_TEST(worst <= 1e-10, p.name << ": worst relative difference " << worst);
  }
  const auto& head = a.info(a.has("lm_head.weight") ? "lm_head.weight" : "wte");
  const std::size_t pad_begin = head.offset + head.size, pad_end = head.offset + std::size_t(32 * 16);
  for (std::size_t i = pad_begin; i < pad_end; ++i) {
    BOOST_TEST(a.parameters()[i] == 0.0);
    BOOST_TEST(a.gradients()[i] == 0.0);
  }
}
BOOST_AUTO_TEST_CASE(padded_vocabulary_is_the_same_model) {
  check_padding<cfg_padded<double>, cfg_gpt2<double>>(4);
  check_padding<cfg_llama_padded<double, nn::attn::flash>, cfg_llama<double, nn::attn::flash>>(2);
}

// forward_backward (the trainer's call: the cross-entropy's gradient written in the forward's
// pass over the logits) gives the loss and gradients of forward then backward, bit for bit, with
// a loss scale and gradients accumulating over two calls; a non-finite loss leaves the gradients
// as they were.
template <class Cfg>
void check_forward_backward(int kv) {
  nn::model<Cfg> a(small_dims(kv)), b(small_dims(kv));
  randomize(a, 31);
  b.parameters_from_host(a.parameters_to_host());
  const int B = 2, T = 8;
  a.zero_grad();
  b.zero_grad();
  for (int call = 0; call < 2; ++call) {
    auto tok = random_tokens(B * T, 23, 40 + call);
    auto tgt = random_tokens(B * T, 23, 50 + call);
    tgt[5] = nn::ignore_index;
    const double la = a.forward(tok.data(), tgt.data(), B, T);
    a.backward(4.0);
    const double lb = b.forward_backward(tok.data(), tgt.data(), B, T, 4.0);
    BOOST_TEST(la == lb);
    BOOST_TEST(a.counted_targets() == b.counted_targets());
  }
  const auto ga = a.gradients_to_host(), gb = b.gradients_to_host();
  BOOST_TEST(std::memcmp(ga.data(), gb.data(), ga.size() * sizeof(ga[0])) == 0);
  BOOST_CHECK_THROW(b.logits(), tfm::invalid_argument);  // gone, as after backward
  BOOST_CHECK_THROW(b.backward(), tfm::invalid_argument);
  // a NaN weight: the loss is NaN and the backward is skipped
  b.param("ln_f.weight")[0] = std::numeric_limits<typename nn::model<Cfg>::T>::quiet_NaN();
  auto tok = random_tokens(B * T, 23, 60);
  BOOST_TEST(std::isnan(b.forward_backward(tok.data(), tok.data(), B, T)));
  const auto gc = b.gradients_to_host();
  BOOST_TEST(std::memcmp(gb.data(), gc.data(), gb.size() * sizeof(gb[0])) == 0);
  BOOST_CHECK_THROW(b.forward_backward(tok.data(), nullptr, B, T), tfm::invalid_argument);
  BOOST_CHECK_THROW(b.forward_backward(tok.data(), tok.data(), B, T, 0.0), tfm::invalid_argument);
}
BOOST_AUTO_TEST_CASE(forward_backward_equals_forward_then_backward) {
  check_forward_backward<cfg_gpt2<double>>(4);
  check_forward_backward<cfg_llama_padded<double, nn::attn::flash>>(2);
}

// zero_grad() is lazy (the next backward writes the linear layers' gradients and clears the rest):
// after a backward that left stale gradients, zero_grad() then two accumulating backwards give
// the values of a model whose gradients were cleared eagerly (gradients() forces the clearing);
// reading after zero_grad() alone gives zeros; a skipped backward (non-finite loss) leaves zeros.
template <class Cfg>
void check_lazy_zero_grad(int kv) {
  nn::model<Cfg> lazy(small_dims(kv)), eager(small_dims(kv));
  randomize(lazy, 41);
  eager.parameters_from_host(lazy.parameters_to_host());
  const int B = 2, T = 8;
  auto tok0 = random_tokens(B * T, 23, 70), tgt0 = random_tokens(B * T, 23, 71);
  lazy.forward_backward(tok0.data(), tgt0.data(), B, T);  // stale gradients
  lazy.zero_grad();
  eager.zero_grad();
  (void)eager.gradients();  // cleared now: its backwards below add to zeros
  for (int call = 0; call < 2; ++call) {
    auto tok = random_tokens(B * T, 23, 72 + call), tgt = random_tokens(B * T, 23, 74 + call);
    BOOST_TEST(lazy.forward_backward(tok.data(), tgt.data(), B, T) ==
               eager.forward_backward(tok.data(), tgt.data(), B, T));
  }
  const auto gl = lazy.gradients_to_host(), ge = eager.gradients_to_host();
  BOOST_TEST_REQUIRE(gl.size() == ge.size());
  std::size_t differ = 0;
  for (std::size_t i = 0; i < gl.size(); ++i) differ += gl[i] == ge[i] ? 0 : 1;  // == : +0 and -0 agree
  BOOST_TEST(differ == 0u, differ << " of " << gl.size() << " gradients differ after a lazy zero_grad");
  // zero_grad, then read: zeros
  lazy.zero_grad();
  std::size_t nonzero = 0;
  for (auto v : lazy.gradients()) nonzero += v == 0 ? 0 : 1;
  BOOST_TEST(nonzero == 0u);
  // zero_grad, a backward skipped for a NaN loss, then read: zeros
  lazy.forward_backward(tok0.data(), tgt0.data(), B, T);
  lazy.zero_grad();
  const char* head = lazy.has("lm_head.weight") ? "lm_head.weight" : "wte";  // every row's logits
  const auto saved = lazy.param(head)[0];
  lazy.param(head)[0] = std::numeric_limits<typename nn::model<Cfg>::T>::quiet_NaN();
  BOOST_TEST(std::isnan(lazy.forward_backward(tok0.data(), tgt0.data(), B, T)));
  lazy.param(head)[0] = saved;
  nonzero = 0;
  for (auto v : lazy.gradients_to_host()) nonzero += v == 0 ? 0 : 1;
  BOOST_TEST(nonzero == 0u);
}

template <class P>
using cfg_gpt2_lora = with_lora<cfg_gpt2<P>, nn::lora::adapters<nn::lora::qkv | nn::lora::o | nn::lora::down, 2>>;

BOOST_AUTO_TEST_CASE(lazy_zero_grad) {
  check_lazy_zero_grad<cfg_gpt2<double>>(4);                           // tied head, learned positions
  check_lazy_zero_grad<cfg_untied<double>>(4);                         // untied: wte cleared, head written
  check_lazy_zero_grad<cfg_llama_padded<double, nn::attn::flash>>(2);  // no biases, padded head
  check_lazy_zero_grad<cfg_post_norm<double>>(4);
  check_lazy_zero_grad<cfg_gpt2_lora<double>>(4);  // LoRA: adapters only, all cleared
}

// RoPE: q·k after rotation depends only on the position difference, also when only a fraction
// of each head rotates (the other dimensions add the same q·k at every offset).
void check_rope_relative(double fraction, double theta) {
  const int hd = 8, C = 40, rot = tfm::nn::math::rope_dims(hd, fraction);
  std::vector<double> table(std::size_t(C) * rot);
  for (int t = 0; t < C; ++t)
    for (int j = 0; j < rot / 2; ++j) {
      const double ang = tfm::nn::math::rope_angle(t, j, rot, theta);
      table[std::size_t(t) * rot + 2 * j] = std::cos(ang);
      table[std::size_t(t) * rot + 2 * j + 1] = std::sin(ang);
    }
  std::vector<double> q(hd), k(hd);
  for (int d = 0; d < hd; ++d) {
    q[d] = tfm::rng::normal(1, 0, d);
    k[d] = tfm::rng::normal(1, 1, d);
  }
  auto dot_at = [&](int tq, int tk) {
    // one row per position: rope_apply rotates row n at position n % T
    std::vector<double> rows(std::size_t(C) * hd, 0.0);
    std::copy(q.begin(), q.end(), rows.begin() + std::ptrdiff_t(tq) * hd);
    std::vector<double> rk(std::size_t(C) * hd, 0.0);
    std::copy(k.begin(), k.end(), rk.begin() + std::ptrdiff_t(tk) * hd);
    tfm::nn::host::rope_apply<double>(C, C, 1, hd, rot, hd, rows.data(), table.data(), false);
    tfm::nn::host::rope_apply<double>(C, C, 1, hd, rot, hd, rk.data(), table.data(), false);
    double s = 0;
    for (int d = 0; d < hd; ++d) s += rows[std::size_t(tq) * hd + d] * rk[std::size_t(tk) * hd + d];
    return s;
  };
  const double base = dot_at(7, 3);
  BOOST_TEST(std::abs(dot_at(17, 13) - base) <= 1e-12);
  BOOST_TEST(std::abs(dot_at(34, 30) - base) <= 1e-12);
  BOOST_TEST(std::abs(dot_at(8, 3) - base) > 1e-6);  // a different offset differs
}
BOOST_AUTO_TEST_CASE(rope_relative_position) {
  check_rope_relative(1.0, 10000.0);
  check_rope_relative(0.5, 500.0);
}

BOOST_AUTO_TEST_SUITE_END()
