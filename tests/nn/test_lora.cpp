// LoRA adapters (nn::lora, docs/model.md "LoRA"): finite-difference gradients of the adapters in
// double (GPT-2-like and GQA llama-like, rslora, dropout), the frozen base (no gradients), merge
// and unmerge in both weight layouts, parameter counts, B = 0 is the base model, a short
// fine-tune with the trainer, PEFT adapter files, exact resume, and dropout's determinism.
#define TFM_TEST_MODULE test_lora
#include "support/test_main.hpp"
#include "support/temp_files.hpp"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "model_configs.hpp"
#include "model_test_util.hpp"
#include "tfm/io/safetensors.hpp"
#include "tfm/nn/model.hpp"
#include "tfm/train/checkpoint.hpp"
#include "tfm/train/lora.hpp"
#include "tfm/train/trainer.hpp"

namespace fs = std::filesystem;
namespace nn = tfm::nn;
namespace tr = tfm::train;
namespace lo = tfm::nn::lora;
using namespace tfm::test;

namespace {


// ---- configs ----
template <class P>
using gpt2_lora = with_lora<cfg_gpt2<P>, lo::adapters<lo::qkv | lo::o | lo::up | lo::down, 3>>;
template <class P>
using llama_lora = with_lora<cfg_llama<P>, lo::adapters<lo::q | lo::k | lo::v | lo::o | lo::gate | lo::up | lo::down, 3>>;
struct rs_policy : lo::adapters<lo::q | lo::v | lo::down, 4> {
  static constexpr double alpha = 5.0;
  static constexpr bool rslora = true;
};
template <class P>
using llama_rslora = with_lora<cfg_llama<P>, rs_policy>;
// q and v on GPT-2's fused c_attn: no PEFT names (tfm's own), in_out layout.
template <class P>
using in_out_lora = with_lora<cfg_in_out<P>, lo::adapters<lo::q | lo::v | lo::o | lo::up | lo::down, 2>>;
struct drop_policy : lo::adapters<lo::q | lo::k | lo::v | lo::o | lo::gate | lo::up | lo::down, 2> {
  static constexpr double dropout = 0.3;
};
template <class P>
using llama_dropout = with_lora<cfg_llama<P>, drop_policy>;
template <class P>
using llama_nodrop = with_lora<cfg_llama<P>, lo::adapters<lo::q | lo::k | lo::v | lo::o | lo::gate | lo::up | lo::down, 2>>;

nn::dims small_dims(int kv) { return nn::dims{23, 12, 16, 2, 4, kv, 24}; }

// ---- (a) adapter gradients vs central differences ----
template <class Cfg>
void check_gradients(int kv, bool dropout_seed = false) {
  nn::model<Cfg> m(small_dims(kv));
  randomize(m, 11);  // B random too: with B = 0, dA would be 0 and prove nothing
  if (dropout_seed) m.set_dropout_seed(77, 3);
  const int B = 2, T = 9;
  auto tok = random_tokens(B * T, m.sizes().vocab, 1);
  auto tgt = random_tokens(B * T, m.sizes().vocab, 2);
  tgt[3] = nn::ignore_index;
  m.forward(tok.data(), tgt.data(), B, T);
  m.zero_grad();
  m.backward();
  std::vector<double> analytic(m.gradients().begin(), m.gradients().end());
  auto w = m.parameters();
  const double h = 1e-5;
  int checked = 0, adapters = 0;
  for (auto const& p : m.parameter_table()) {
    if (!p.trainable) continue;
    ++adapters;
    BOOST_TEST(p.name.find(".lora_") != std::string::npos);
    const std::size_t stride = p.size <= 40 ? 1 : p.size / 23 + 1;
    for (std::size_t e = 0; e < p.size; e += stride) {
      const std::size_t i = p.offset + e;
      const double a = analytic[std::size_t(p.grad_offset) + e];
      const double w0 = w[i];
      w[i] = w0 + h;
      const double lp = m.forward(tok.data(), tgt.data(), B, T);
      w[i] = w0 - h;
      const double lm = m.forward(tok.data(), tgt.data(), B, T);
      w[i] = w0;
      const double num = (lp - lm) / (2 * h);
      if (std::abs(num - a) > 1e-8 + 1e-5 * std::abs(num))
        BOOST_ERROR(p.name << "[" << e << "]: analytic " << a << " vs numeric " << num);
      ++checked;
    }
  }
  BOOST_TEST(adapters == 2 * m.sizes().layers * int(m.adapter_sites().size()));
  BOOST_TEST(checked > 100);
}

// Σ over layers and adapters of r·(in + rows): the trainable parameters by formula.
template <class Cfg>
std::size_t trainable_formula(const nn::dims& d, bool swiglu) {
  using pol = typename nn::config_traits<Cfg>::lora_policy;
  const std::size_t D = d.d_model, F = d.d_ff, hd = d.head_dim(), H = d.heads, KV = d.kv_heads, r = pol::rank;
  std::size_t per = 0;
  const unsigned t = pol::targets;
  if (t & lo::q) per += r * (D + H * hd);
  if (t & lo::k) per += r * (D + KV * hd);
  if (t & lo::v) per += r * (D + KV * hd);
  if (t & lo::qkv) per += r * (D + (H + 2 * KV) * hd);
  if (t & lo::o) per += r * (H * hd + D);
  if (t & lo::gate) per += r * (D + F);
  if (t & lo::up) per += r * (D + F);
  if (t & lo::down) per += r * (F + D);
  (void)swiglu;
  return per * std::size_t(d.layers);
}

template <class Cfg>
void check_counts(int kv) {
  nn::model<Cfg> m(small_dims(kv));
  std::size_t sum = 0, n = 0;
  for (auto const& p : m.parameter_table())
    if (p.trainable) {
      sum += p.size;
      ++n;
    }
  BOOST_TEST(sum == trainable_formula<Cfg>(m.sizes(), nn::config_traits<Cfg>::swiglu));
  // num_trainable() is the tail, 16-element aligned per tensor
  BOOST_TEST(m.num_trainable() >= sum);
  BOOST_TEST(m.num_trainable() < sum + 16 * n);
  BOOST_TEST(m.gradients().size() == m.num_trainable());
  BOOST_TEST(m.trainable_parameters().size() == m.num_trainable());
  BOOST_TEST(m.trainable_parameters().data() + m.num_trainable() == m.parameters().data() + m.num_parameters());
}

template <class Cfg>
void check_merge(int kv) {
  nn::model<Cfg> m(small_dims(kv));
  randomize(m, 21);
  const int B = 2, T = 7;
  auto tok = random_tokens(B * T, m.sizes().vocab, 4);
  auto tgt = random_tokens(B * T, m.sizes().vocab, 5);
  const auto w0 = m.parameters_to_host();
  m.forward(tok.data(), nullptr, B, T);
  const auto a = m.logits_to_host();
  m.merge_adapters();
  BOOST_TEST(m.merged());
  m.forward(tok.data(), nullptr, B, T);
  const auto b = m.logits_to_host();
  double scale = 0;
  for (auto v : a) scale = std::max(scale, double(std::abs(v)));
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(double(a[i]) - double(b[i])));
  BOOST_TEST(worst <= 1e-5 * scale);
  // the base weights changed, the adapters did not
  const auto wm = m.parameters_to_host();
  bool changed = false;
  for (auto const& p : m.parameter_table())
    for (std::size_t e = 0; e < p.size; ++e) {
      if (p.trainable)
        BOOST_TEST(wm[p.offset + e] == w0[p.offset + e]);
      else
        changed |= wm[p.offset + e] != w0[p.offset + e];
    }
  BOOST_TEST(changed);
  m.forward(tok.data(), tgt.data(), B, T);
  BOOST_CHECK_THROW(m.backward(), tfm::invalid_argument);
  BOOST_CHECK_THROW(m.merge_adapters(), tfm::invalid_argument);
  m.unmerge_adapters();
  BOOST_TEST(!m.merged());
  const auto wu = m.parameters_to_host();
  double werr = 0;
  for (std::size_t i = 0; i < wu.size(); ++i) werr = std::max(werr, std::abs(double(wu[i]) - double(w0[i])));
  BOOST_TEST(werr <= 1e-6);
  m.forward(tok.data(), nullptr, B, T);
  const auto c = m.logits_to_host();
  double cerr = 0;
  for (std::size_t i = 0; i < a.size(); ++i) cerr = std::max(cerr, std::abs(double(a[i]) - double(c[i])));
  BOOST_TEST(cerr <= 1e-5 * scale);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(gradients)
// Mixed precision (bf16 / fp16 compute): logits and adapter gradients against the float model on
// the same (deliberately large, randomize()) weights, dropout masks included. Errors grow with
// these weights (about 3e-2 for bf16 logits, 9e-2 with dropout's extra rounding), and fp16's are
// about 8× smaller (its 3 more mantissa bits), which is what separates rounding from a wrong
// index: fp16 must be within logits 2e-2, gradients 5e-2 and below bf16; bf16 within 0.15 / 0.3.
template <class Lo, class Hi>
std::pair<double, double> mixed_errors(int kv) {
  nn::model<Hi> f(small_dims(kv));
  randomize(f, 11);
  f.set_dropout_seed(77, 3);
  nn::model<Lo> m(small_dims(kv));
  m.parameters_from_host(f.parameters_to_host());
  m.set_dropout_seed(77, 3);
  const int B = 2, T = 9;
  auto tok = random_tokens(B * T, f.sizes().vocab, 1);
  auto tgt = random_tokens(B * T, f.sizes().vocab, 2);
  auto run = [&](auto& model) {
    model.forward(tok.data(), tgt.data(), B, T);
    auto logits = model.logits_to_host();
    model.zero_grad();
    model.backward();
    return std::pair{logits, model.gradients_to_host()};
  };
  const auto [lf, gf] = run(f);
  const auto [lm, gm] = run(m);
  double worst = 0;
  for (auto const& p : f.parameter_table()) {
    if (!p.trainable) continue;
    const auto at = std::ptrdiff_t(p.grad_offset);
    const std::vector<float> a(gm.begin() + at, gm.begin() + at + std::ptrdiff_t(p.size));
    const std::vector<float> b(gf.begin() + at, gf.begin() + at + std::ptrdiff_t(p.size));
    worst = std::max(worst, rel_error(a, b));
  }
  return {rel_error(lm, lf), worst};
}
template <template <class> class Cfg>
void check_mixed(int kv, const char* name) {
  const auto [lb, gb] = mixed_errors<Cfg<tfm::bfloat16>, Cfg<float>>(kv);
  const auto [lh, gh] = mixed_errors<Cfg<tfm::half>, Cfg<float>>(kv);
  BOOST_TEST_MESSAGE("LoRA " << name << " vs float: bf16 logits " << lb << " adapter gradients " << gb
                             << "; fp16 logits " << lh << " gradients " << gh);
  BOOST_TEST(lh <= 2e-2, name);
  BOOST_TEST(gh <= 5e-2, name);
  BOOST_TEST(lb <= 0.15, name);
  BOOST_TEST(gb <= 0.3, name);
  BOOST_TEST(lh > 0.0, name);  // really computed in reduced precision
  BOOST_TEST(lh < lb, name);
}
BOOST_AUTO_TEST_CASE(mixed_precision_adapters) {
  check_mixed<llama_lora>(2, "llama q,k,v,o,gate,up,down");
  check_mixed<llama_dropout>(2, "llama with dropout");
  check_mixed<gpt2_lora>(4, "gpt2 qkv,o,up,down");
  check_mixed<in_out_lora>(4, "gpt2 in_out q,v,o,up,down");
}

BOOST_AUTO_TEST_CASE(gpt2_qkv_o_up_down) { check_gradients<gpt2_lora<double>>(4); }
BOOST_AUTO_TEST_CASE(llama_gqa_all_targets) { check_gradients<llama_lora<double>>(2); }
BOOST_AUTO_TEST_CASE(llama_rslora_scale) { check_gradients<llama_rslora<double>>(2); }
BOOST_AUTO_TEST_CASE(in_out_layout_q_v) { check_gradients<in_out_lora<double>>(4); }
BOOST_AUTO_TEST_CASE(with_dropout) { check_gradients<llama_dropout<double>>(2, true); }
BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(frozen_base)

BOOST_AUTO_TEST_CASE(base_has_no_gradient) {
  nn::model<llama_lora<double>> m(small_dims(2));
  BOOST_CHECK_THROW(m.grad("h.0.attn.c_attn.weight"), tfm::invalid_argument);
  BOOST_CHECK_THROW(m.grad("wte"), tfm::invalid_argument);
  BOOST_CHECK_THROW(m.grad("h.1.ln_2.weight"), tfm::invalid_argument);
  BOOST_TEST(m.grad("h.0.attn.c_attn.lora_A.q").size() == std::size_t(3 * 16));
  BOOST_TEST(m.grad("h.1.mlp.c_fc.lora_B.gate").size() == std::size_t(24 * 3));
  BOOST_TEST(m.info("wte").grad_offset == -1);
  BOOST_TEST(!m.info("wte").trainable);
  BOOST_TEST(m.gradients().size() == m.num_trainable());
  BOOST_TEST(m.num_trainable() < m.num_parameters() / 2);
  // a plain model: everything trainable, gradient offsets = parameter offsets
  nn::model<cfg_llama<double>> b(small_dims(2));
  BOOST_TEST(b.num_trainable() == b.num_parameters());
  for (auto const& p : b.parameter_table()) BOOST_TEST(p.grad_offset == std::ptrdiff_t(p.offset));
  // decay groups cover exactly the adapters, in gradient space
  const auto g = tr::decay_groups(m.parameter_table(), {.weight_decay = 0.1});
  std::size_t n = 0;
  for (auto const& grp : g)
    for (auto const& r : grp.ranges) {
      BOOST_TEST(r.first + r.second <= m.num_trainable());
      n += r.second;
    }
  BOOST_TEST(n == trainable_formula<llama_lora<double>>(m.sizes(), true));
}

BOOST_AUTO_TEST_CASE(trainable_counts_match_the_formula) {
  check_counts<gpt2_lora<double>>(4);
  check_counts<llama_lora<double>>(2);
  check_counts<llama_rslora<float>>(1);
  check_counts<in_out_lora<float>>(4);
}

// (e) B = 0 (the initialisation): the LoRA model computes exactly the base model.
BOOST_AUTO_TEST_CASE(zero_b_is_the_base_model) {
  nn::model<llama_lora<float>> m(small_dims(2));
  nn::model<cfg_llama<float>> b(small_dims(2));
  m.init(5);
  b.init(5);  // the base tensors draw the same streams
  for (auto const& p : b.parameter_table()) BOOST_TEST(m.info(p.name).offset == p.offset);
  const auto wb = b.parameters_to_host();
  const auto wm = m.parameters_to_host();
  BOOST_TEST(std::memcmp(wb.data(), wm.data(), wb.size() * sizeof(float)) == 0);
  bool a_nonzero = false;
  for (auto const& p : m.parameter_table())
    if (p.trainable)
      for (std::size_t e = 0; e < p.size; ++e) {
        if (p.name.find("lora_B") != std::string::npos) BOOST_TEST(wm[p.offset + e] == 0.0f);
        else a_nonzero |= wm[p.offset + e] != 0.0f;
      }
  BOOST_TEST(a_nonzero);
  auto tok = random_tokens(2 * 8, 23, 9);
  m.forward(tok.data(), nullptr, 2, 8);
  b.forward(tok.data(), nullptr, 2, 8);
  const auto lm = m.logits_to_host(), lb = b.logits_to_host();
  BOOST_TEST(std::memcmp(lm.data(), lb.data(), lm.size() * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(merge)
BOOST_AUTO_TEST_CASE(out_in_layout) { check_merge<gpt2_lora<float>>(4); }
BOOST_AUTO_TEST_CASE(out_in_llama) { check_merge<llama_lora<float>>(2); }
BOOST_AUTO_TEST_CASE(in_out_layout) { check_merge<in_out_lora<float>>(4); }
BOOST_AUTO_TEST_SUITE_END()

// ---- dropout ----
BOOST_AUTO_TEST_SUITE(dropout)

BOOST_AUTO_TEST_CASE(deterministic_per_step_and_off_in_evaluation) {
  nn::model<llama_dropout<float>> m(small_dims(2));
  nn::model<llama_nodrop<float>> plain(small_dims(2));
  randomize(m, 3);
  plain.parameters_from_host(m.parameters_to_host());
  auto tok = random_tokens(2 * 8, 23, 9);
  auto run = [&](auto& mm) {
    mm.forward(tok.data(), nullptr, 2, 8);
    return mm.logits_to_host();
  };
  m.set_dropout_seed(5, 1);
  const auto a = run(m), a2 = run(m);
  BOOST_TEST(std::memcmp(a.data(), a2.data(), a.size() * sizeof(float)) == 0);
  m.set_dropout_seed(5, 2);
  const auto b = run(m);
  BOOST_TEST(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0);
  m.set_dropout_seed(6, 1);
  const auto c = run(m);
  BOOST_TEST(std::memcmp(a.data(), c.data(), a.size() * sizeof(float)) != 0);
  const auto p = run(plain);
  BOOST_TEST(std::memcmp(a.data(), p.data(), a.size() * sizeof(float)) != 0);  // dropout did something
  m.set_training(false);
  BOOST_TEST(!m.training());
  const auto e = run(m);
  BOOST_TEST(std::memcmp(e.data(), p.data(), e.size() * sizeof(float)) == 0);
  // the mask: about 30% dropped, survivors scaled by 1/0.7
  std::vector<float> x(4000, 1.0f), y(4000);
  tfm::nn::host::lora_dropout<float>(40, 100, x.data(), 100, y.data(), 1, 2, 0.3);
  int dropped = 0;
  for (float v : y) {
    if (v == 0.0f) ++dropped;
    else BOOST_TEST(std::abs(v - 1.0f / 0.7f) < 1e-6f);
  }
  BOOST_TEST(dropped > 1050);
  BOOST_TEST(dropped < 1350);
}

BOOST_AUTO_TEST_SUITE_END()

// ---- with the trainer ----
namespace {

std::vector<std::uint32_t> pattern_tokens(std::size_t n, std::uint32_t mult) {
  std::vector<std::uint32_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::uint32_t((i * mult) % 10);
  for (std::size_t i = 7; i < n; i += 97) v[i] = 10 + std::uint32_t(tfm::rng::random_u32(3, 1, i) % 6);
  return v;
}
nn::dims tiny_dims() { return nn::dims{16, 16, 16, 2, 2, 2, 32}; }

template <class P>
using tiny_lora = with_lora<cfg_gpt2<P>, lo::adapters<lo::qkv | lo::o | lo::up | lo::down, 4>>;
struct tiny_drop_policy : lo::adapters<lo::qkv | lo::o | lo::up | lo::down, 4> {
  static constexpr double dropout = 0.1;
};
struct tiny_lora_dropout : cfg_gpt2<float> {
  using lora = tiny_drop_policy;
};

// LoRA training run on pattern `mult` from base weights `base` (empty: init); returns all weights.
template <class Cfg>
std::vector<float> train_lora(const std::vector<float>& base, std::uint32_t mult, std::int64_t steps,
                              const fs::path& out = {}, std::int64_t stop_after = -1, bool resume = false,
                              double* val_before = nullptr, double* val_after = nullptr) {
  nn::model<Cfg> m(tiny_dims());
  m.init(11);
  if (!base.empty()) std::copy(base.begin(), base.end(), m.parameters().begin());
  tr::adamw<float> opt(m.num_trainable(), tr::decay_groups(m.parameter_table(), {.weight_decay = 0.0}),
                       {.beta1 = 0.9, .beta2 = 0.99});
  auto c = tr::token_corpus::from_tokens(pattern_tokens(4000, mult), 4000, 16);
  auto [trs, vas] = tr::split_at(c, 0.9);
  tr::batch_source train(c, trs, 12, tr::sampling::random_windows, 99);
  tr::batch_source val(c, vas, 12, tr::sampling::sequential, 0);
  if (val_before) *val_before = tr::evaluate(m, val, 4, 4).loss;
  tr::train_options o;
  o.batch = 4;
  o.steps = steps;
  o.eval_every = 0;
  o.eval_batches = 4;
  o.out_dir = out;
  o.stop_after = stop_after;
  o.show_progress = false;
  o.dropout_seed = 1234;
  tr::trainer t(m, opt, tr::warmup_cosine{.max_lr = 1e-2, .min_lr = 1e-3, .warmup = 5, .decay_end = steps}, train, o);
  t.set_validation(val);
  if (resume) t.resume();
  auto s = t.run();
  if (val_after) *val_after = s.last_eval ? s.last_eval->loss : tr::evaluate(m, val, 4, 4).loss;
  return m.parameters_to_host();
}

// A plain model trained briefly on pattern 1.
std::vector<float> pretrain_base() {
  nn::model<cfg_gpt2<float>> m(tiny_dims());
  m.init(11);
  tr::adamw<float> opt(m.num_trainable(), tr::decay_groups(m.parameter_table(), {.weight_decay = 0.1}),
                       {.beta1 = 0.9, .beta2 = 0.99});
  auto c = tr::token_corpus::from_tokens(pattern_tokens(4000, 1), 4000, 16);
  tr::batch_source train(c, tr::split{0, c.size()}, 12, tr::sampling::random_windows, 7);
  tr::train_options o;
  o.batch = 4;
  o.steps = 120;
  o.show_progress = false;
  tr::trainer t(m, opt, tr::warmup_cosine{.max_lr = 3e-3, .min_lr = 3e-4, .warmup = 5, .decay_end = 120}, train, o);
  t.run();
  return m.parameters_to_host();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(training)

BOOST_AUTO_TEST_CASE(fine_tune_lowers_validation_loss_on_a_new_pattern) {
  const auto base = pretrain_base();
  double before = 0, after = 0;
  const auto w = train_lora<tiny_lora<float>>(base, 3, 120, {}, -1, false, &before, &after);
  BOOST_TEST_MESSAGE("LoRA fine-tune: validation loss " << before << " -> " << after);
  BOOST_TEST(after < 0.6 * before);
  // the base did not move
  BOOST_TEST(std::memcmp(w.data(), base.data(), base.size() * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_CASE(bf16_fine_tune_lowers_validation_loss) {
  // LoRA on bf16 compute: float adapters and optimizer state, bf16 matrix multiplies
  const auto base = pretrain_base();
  double before = 0, after = 0;
  const auto w = train_lora<tiny_lora<tfm::bfloat16>>(base, 3, 120, {}, -1, false, &before, &after);
  BOOST_TEST_MESSAGE("LoRA fine-tune, bf16 compute: validation loss " << before << " -> " << after);
  BOOST_TEST(after < 0.6 * before);
  BOOST_TEST(std::memcmp(w.data(), base.data(), base.size() * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_CASE(resume_is_exact) {
  temp_dir d1, d2;
  const auto full = train_lora<tiny_lora_dropout>({}, 3, 20, d1.path);
  const auto first = train_lora<tiny_lora_dropout>({}, 3, 20, d2.path, 10);
  BOOST_TEST(fs::exists(d2.path / "checkpoints" / "step-00000010" / "manifest.json"));
  // the checkpoint holds the adapters (tfm names beside the Hugging Face ones)
  tfm::io::safetensors_file f(d2.path / "checkpoints" / "step-00000010" / "model.safetensors");
  BOOST_TEST(f.has("h.0.attn.c_attn.lora_A.qkv"));
  BOOST_TEST(f.has("transformer.h.0.attn.c_attn.weight"));
  const auto second = train_lora<tiny_lora_dropout>({}, 3, 20, d2.path, -1, true);
  BOOST_TEST(std::memcmp(full.data(), second.data(), full.size() * sizeof(float)) == 0);
  BOOST_TEST(std::memcmp(full.data(), first.data(), full.size() * sizeof(float)) != 0);
}

BOOST_AUTO_TEST_SUITE_END()

// ---- adapter files ----
BOOST_AUTO_TEST_SUITE(adapter_files)

template <class P>
using llama_qv = with_lora<cfg_llama<P>, lo::adapters<lo::q | lo::v, 2>>;
template <class P>
using llama_qv_r4 = with_lora<cfg_llama<P>, lo::adapters<lo::q | lo::v, 4>>;

BOOST_AUTO_TEST_CASE(round_trip_with_peft_names) {
  temp_dir d;
  const nn::dims dims{61, 16, 32, 2, 4, 2, 48};
  nn::model<llama_qv<float>> m(dims);
  randomize(m, 8);
  tr::save_adapters(m, d.path / "adapter");
  tr::save_pretrained(m, d.path / "full");
  tfm::io::safetensors_file f(d.path / "adapter" / "adapter_model.safetensors");
  BOOST_TEST(f.names().size() == std::size_t(2 * 2 * 2));
  const std::string q = "base_model.model.model.layers.1.self_attn.q_proj.";
  BOOST_TEST_REQUIRE(f.has(q + "lora_A.weight"));
  BOOST_TEST((f.info(q + "lora_A.weight").shape == std::vector<std::int64_t>{2, 32}));
  BOOST_TEST((f.info(q + "lora_B.weight").shape == std::vector<std::int64_t>{32, 2}));
  BOOST_TEST((f.info("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight").shape ==
              std::vector<std::int64_t>{16, 2}));  // GQA: 2 kv heads of 8
  const auto cfg = nlohmann::json::parse(tfm::read_file(d.path / "adapter" / "adapter_config.json"));
  BOOST_TEST(cfg["peft_type"] == "LORA");
  BOOST_TEST(cfg["r"] == 2);
  BOOST_TEST(cfg["lora_alpha"] == 4.0);
  BOOST_TEST(cfg["fan_in_fan_out"] == false);
  BOOST_TEST((cfg["target_modules"] == nlohmann::json{"q_proj", "v_proj"}));
  BOOST_TEST(fs::file_size(d.path / "adapter" / "adapter_model.safetensors") * 10 <
             fs::file_size(d.path / "full" / "model.safetensors"));

  nn::model<llama_qv<float>> n(dims);
  n.init(1);
  tr::load_adapters(n, d.path / "adapter");
  const auto wm = m.parameters_to_host(), wn = n.parameters_to_host();
  for (auto const& p : m.parameter_table())
    if (p.trainable)
      BOOST_TEST(std::memcmp(wm.data() + p.offset, wn.data() + p.offset, p.size * sizeof(float)) == 0);
  // a different rank is refused and leaves the model alone
  nn::model<llama_qv_r4<float>> r4(dims);
  r4.init(2);
  const auto before = r4.parameters_to_host();
  BOOST_CHECK_THROW(tr::load_adapters(r4, d.path / "adapter"), tr::checkpoint_error);
  const auto after = r4.parameters_to_host();
  BOOST_TEST(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)) == 0);
  // adapter_config.json fields of the wrong JSON type, or an integer that only its low 32 bits
  // would make the rank, are refused with the file named and leave the model alone (nlohmann's
  // type_error escaped before, and r = 2^32 + 2 was read as 2)
  {
    const auto cfg_path = d.path / "adapter" / "adapter_config.json";
    const std::string original = tfm::read_file(cfg_path);
    const auto with = [&](const char* k, const nlohmann::json& v, const std::string& what) {
      auto c = nlohmann::json::parse(original);
      c[k] = v;
      std::ofstream(cfg_path, std::ios::binary) << c.dump(2);
      nn::model<llama_qv<float>> t(dims);
      t.init(3);
      const auto w0 = t.parameters_to_host();
      tfm::test::check_throws_with<tr::checkpoint_error>([&] { tr::load_adapters(t, d.path / "adapter"); }, what);
      BOOST_TEST(t.parameters_to_host() == w0, boost::test_tools::per_element());
    };
    with("r", "2", "adapter_config.json: \"r\" is \"2\", not an integer");
    with("r", (std::int64_t{1} << 32) + 2, "the adapters have rank 4294967298");
    with("lora_alpha", "4", "adapter_config.json: \"lora_alpha\" is \"4\", not a number");
    with("use_rslora", "no", "adapter_config.json: \"use_rslora\" is \"no\", not true or false");
    std::ofstream(cfg_path, std::ios::binary) << original;
  }
  // the full weights load back too (adapters included)
  nn::model<llama_qv<float>> full(dims);
  tr::load_pretrained(full, d.path / "full");
  const auto wf = full.parameters_to_host();
  BOOST_TEST(std::memcmp(wm.data(), wf.data(), wm.size() * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_CASE(gpt2_peft_and_native_names) {
  temp_dir d;
  nn::model<gpt2_lora<float>> g(small_dims(4));
  randomize(g, 2);
  tr::save_adapters(g, d.path / "g");
  tfm::io::safetensors_file f(d.path / "g" / "adapter_model.safetensors");
  const std::string p = "base_model.model.transformer.h.0.";
  BOOST_TEST(f.has(p + "attn.c_attn.lora_A.weight"));
  BOOST_TEST((f.info(p + "attn.c_attn.lora_B.weight").shape == std::vector<std::int64_t>{48, 3}));
  BOOST_TEST(f.has(p + "attn.c_proj.lora_A.weight"));
  BOOST_TEST(f.has(p + "mlp.c_fc.lora_B.weight"));
  BOOST_TEST(f.has(p + "mlp.c_proj.lora_B.weight"));
  const auto cfg = nlohmann::json::parse(tfm::read_file(d.path / "g" / "adapter_config.json"));
  BOOST_TEST(cfg["fan_in_fan_out"] == true);
  BOOST_TEST((cfg["target_modules"] == nlohmann::json{"c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"}));
  nn::model<gpt2_lora<float>> g2(small_dims(4));
  tr::load_adapters(g2, d.path / "g");
  BOOST_TEST(std::memcmp(g.trainable_parameters().data(), g2.trainable_parameters().data(),
                         g.num_trainable() * sizeof(float)) == 0);

  // q and v of a fused c_attn: PEFT cannot say it, tfm names are used
  nn::model<in_out_lora<float>> n(small_dims(4));
  randomize(n, 3);
  tr::save_adapters(n, d.path / "n");
  tfm::io::safetensors_file fn(d.path / "n" / "adapter_model.safetensors");
  BOOST_TEST(fn.has("h.1.attn.c_attn.lora_A.q"));
  BOOST_TEST(fn.has("h.1.attn.c_attn.lora_B.v"));
  BOOST_TEST(fn.has("h.0.mlp.c_proj.lora_B.down"));
  nn::model<in_out_lora<float>> n2(small_dims(4));
  tr::load_adapters(n2, d.path / "n");
  BOOST_TEST(std::memcmp(n.trainable_parameters().data(), n2.trainable_parameters().data(),
                         n.num_trainable() * sizeof(float)) == 0);
  // adapters of another architecture are refused
  BOOST_CHECK_THROW(tr::load_adapters(n2, d.path / "g"), tr::checkpoint_error);
}

// save_pretrained of a merged model is a plain model's file; of an unmerged one a plain model refuses.
BOOST_AUTO_TEST_CASE(merged_export_loads_into_the_plain_model) {
  temp_dir d;
  nn::model<llama_qv<float>> m(small_dims(2));
  randomize(m, 4);
  tr::save_pretrained(m, d.path / "unmerged");
  nn::model<cfg_llama<float>> plain(small_dims(2));
  BOOST_CHECK_THROW(tr::load_pretrained(plain, d.path / "unmerged"), tr::checkpoint_error);
  auto tok = random_tokens(2 * 6, 23, 3);
  m.merge_adapters();
  tr::save_pretrained(m, d.path / "merged");
  m.forward(tok.data(), nullptr, 2, 6);
  const auto a = m.logits_to_host();
  tr::load_pretrained(plain, d.path / "merged");
  plain.forward(tok.data(), nullptr, 2, 6);
  const auto b = plain.logits_to_host();
  BOOST_TEST(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  tfm::io::safetensors_file f(d.path / "merged" / "model.safetensors");
  BOOST_TEST(!f.has("h.0.attn.c_attn.lora_A.q"));
}

BOOST_AUTO_TEST_SUITE_END()
