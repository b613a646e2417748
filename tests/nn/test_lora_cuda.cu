// LoRA adapters (nn::lora, docs/model.md "LoRA") on CUDA (cuda_backend's lora_* members):
//  (a) model<lora config, space::cuda> against the host model on the same parameters (init, then
//      every lora_B set to 0.05·sin(e + 1) so the adapters contribute), the same dropout seed:
//      logits, loss and the adapter gradients with test_model_cuda.cu's fp32 tolerances (logits
//      1e-4, loss 1e-5 relative, gradients 1e-3): llama-like GQA (q, v, o, down; with and without
//      dropout 0.1), GPT-2 in_out layout (q, v, o, down; and with dropout), GPT-2 (qkv, up);
//  (b) bf16 compute (mixed precision): as accurate as the host's mixed model, both measured
//      against the host's fp32 model (step_compare.hpp's check_step_accuracy), with and without
//      dropout;
//  (c) merge_adapters() on CUDA: the merged forward's logits equal the unmerged ones (1e-4), and
//      unmerge_adapters() restores the parameters.
// Without a CUDA device the executable exits 77 (skipped).
#include "tfm/nn/model.cuh"

#define TFM_TEST_MODULE test_lora_cuda
#define TFM_TEST_NEEDS_CUDA
#include "support/test_main.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "model_configs.hpp"
#include "model_test_util.hpp"
#include "step_compare.hpp"

namespace nn = tfm::nn;
namespace lo = tfm::nn::lora;
using namespace tfm::test;

namespace {

// ---- configs: rank 4, alpha 8 ----
struct qvod_policy : lo::adapters<lo::q | lo::v | lo::o | lo::down, 4> {
  static constexpr double alpha = 8.0;
};
struct qvod_drop_policy : qvod_policy {
  static constexpr double dropout = 0.1;
};
struct qkv_up_policy : lo::adapters<lo::qkv | lo::up, 4> {
  static constexpr double alpha = 8.0;
};

template <class P>
using llama_lora = with_lora<cfg_llama<P>, qvod_policy>;
template <class P>
using llama_lora_dropout = with_lora<cfg_llama<P>, qvod_drop_policy>;
template <class P>
using in_out_lora = with_lora<cfg_in_out<P>, qvod_policy>;
template <class P>
using in_out_lora_dropout = with_lora<cfg_in_out<P>, qvod_drop_policy>;
template <class P>
using gpt2_qkv_up = with_lora<cfg_gpt2<P>, qkv_up_policy>;

using tolerances = step_tolerances;
constexpr tolerances fp32_tol{1e-4, 1e-5, 1e-3};

// init(seed), then every lora_B element e = 0.05·sin(e + 1) (B = 0 would make the adapters a no-op).
template <class M>
std::vector<float> lora_parameters(M& m, std::uint64_t seed) {
  m.init(seed);
  auto w = m.parameters_to_host();
  for (auto const& p : m.parameter_table())
    if (p.name.find(".lora_B.") != std::string::npos)
      for (std::size_t e = 0; e < p.size; ++e) w[p.offset + e] = float(0.05 * std::sin(double(e + 1)));
  return w;
}

template <class Cfg>
void cuda_vs_host(const std::string& name, const nn::dims& d, tolerances tol) {
  constexpr int B = 2, T = 16;
  nn::model<Cfg> h(d);
  nn::model<Cfg, tfm::space::cuda> c(d);
  const auto w = lora_parameters(h, 7);
  const auto tok = random_tokens(std::size_t(B) * T, d.vocab, 5);
  auto tgt = random_tokens(std::size_t(B) * T, d.vocab, 6);
  for (std::size_t i = 0; i < tgt.size(); i += 7) tgt[i] = nn::ignore_index;

  // the base model (B = 0): the adapters must change the logits
  h.forward(tok.data(), nullptr, B, T);
  const auto base_logits = h.logits_to_host();

  h.parameters_from_host(w);
  c.parameters_from_host(w);
  h.set_dropout_seed(77, 3);
  c.set_dropout_seed(77, 3);

  const auto want = run_step(h, tok, tgt, B, T);
  BOOST_TEST(rel_error(base_logits, want.logits) > 1e-2, name << ": the adapters change nothing");

  const auto got = run_step(c, tok, tgt, B, T);
  if (const auto fb = c.get_backend().lt().fallbacks(); fb > 0)  // tfm's kernel ran instead of cuBLASLt
    BOOST_TEST_MESSAGE(name << ": " << fb << " GEMMs on the fallback kernel; last refusal: "
                            << c.get_backend().lt().last_rejection());
  BOOST_REQUIRE_EQUAL(got.grads.size(), c.num_trainable());
  check_step("LoRA cuda vs host " + name, got, want, c.parameter_table(), tol);
  // only adapters train, and each of them gets a gradient on the host
  int adapters = 0;
  for (auto const& p : c.parameter_table()) {
    if (!p.trainable) continue;
    ++adapters;
    BOOST_TEST(p.name.find(".lora_") != std::string::npos);
    const auto at = want.grads.begin() + std::ptrdiff_t(p.grad_offset);
    const bool nonzero = std::any_of(at, at + std::ptrdiff_t(p.size), [](float v) { return v != 0.0f; });
    BOOST_TEST(nonzero, name << ": host gradient of " << p.name << " is zero");
  }
  BOOST_TEST(adapters == 2 * d.layers * int(c.adapter_sites().size()));
}

// (b) bf16 compute: the CUDA step as accurate as the host's bf16 step, both against the host's
// fp32 step (Exact: the same config with float compute) on the same parameters and dropout masks
// (step_compare.hpp's check_step_accuracy).
template <class Cfg, class Exact>
void cuda_vs_host_mixed(const std::string& name, const nn::dims& d) {
  constexpr int B = 2, T = 16;
  nn::model<Cfg> h(d);
  nn::model<Cfg, tfm::space::cuda> c(d);
  nn::model<Exact> f(d);
  const auto w = lora_parameters(h, 7);
  const auto tok = random_tokens(std::size_t(B) * T, d.vocab, 5);
  auto tgt = random_tokens(std::size_t(B) * T, d.vocab, 6);
  for (std::size_t i = 0; i < tgt.size(); i += 7) tgt[i] = nn::ignore_index;
  h.parameters_from_host(w);
  c.parameters_from_host(w);
  f.parameters_from_host(w);
  h.set_dropout_seed(77, 3);
  c.set_dropout_seed(77, 3);
  f.set_dropout_seed(77, 3);
  const auto exact = run_step(f, tok, tgt, B, T);
  const auto host = run_step(h, tok, tgt, B, T);
  const auto got = run_step(c, tok, tgt, B, T);
  if (const auto fb = c.get_backend().lt().fallbacks(); fb > 0)
    BOOST_TEST_MESSAGE(name << ": " << fb << " GEMMs on the fallback kernel; last refusal: "
                            << c.get_backend().lt().last_rejection());
  BOOST_REQUIRE_EQUAL(got.grads.size(), c.num_trainable());
  check_step_accuracy("LoRA cuda vs host " + name, got, host, exact, c.parameter_table(), {4e-3, 1e-3, 1.5e-2});
}

// merge_adapters on CUDA: the merged forward equals the unmerged one; unmerge restores the weights.
template <class Cfg>
void merge_on_cuda(const std::string& name, const nn::dims& d) {
  constexpr int B = 2, T = 16;
  nn::model<Cfg, tfm::space::cuda> c(d);
  nn::model<Cfg> h(d);
  const auto w0 = lora_parameters(h, 9);
  c.parameters_from_host(w0);
  const auto tok = random_tokens(std::size_t(B) * T, d.vocab, 8);
  c.forward(tok.data(), nullptr, B, T);
  const auto a = c.logits_to_host();
  c.merge_adapters();
  BOOST_TEST(c.merged());
  c.forward(tok.data(), nullptr, B, T);
  const auto b = c.logits_to_host();
  const double e = rel_error(b, a);
  BOOST_TEST(e <= 1e-4, name << ": merged logits relative error " << e);
  // the base weights changed, the adapters did not
  const auto wm = c.parameters_to_host();
  bool changed = false, adapters_same = true;
  for (auto const& p : c.parameter_table())
    for (std::size_t e2 = 0; e2 < p.size; ++e2) {
      if (p.trainable)
        adapters_same &= wm[p.offset + e2] == w0[p.offset + e2];
      else
        changed |= wm[p.offset + e2] != w0[p.offset + e2];
    }
  BOOST_TEST(changed, name << ": merging changed no base weight");
  BOOST_TEST(adapters_same, name << ": merging changed an adapter");
  c.unmerge_adapters();
  BOOST_TEST(!c.merged());
  const auto wu = c.parameters_to_host();
  double werr = 0;
  for (std::size_t i = 0; i < wu.size(); ++i) werr = std::max(werr, std::abs(double(wu[i]) - double(w0[i])));
  BOOST_TEST(werr <= 1e-6, name << ": unmerge left a parameter off by " << werr);
  c.forward(tok.data(), nullptr, B, T);
  const double eu = rel_error(c.logits_to_host(), a);
  BOOST_TEST(eu <= 1e-4, name << ": logits after unmerge relative error " << eu);
}

const nn::dims llama_dims = fixture_dims(2, true);
const nn::dims gpt2_dims = fixture_dims(4, false);

}  // namespace

// (a)
BOOST_AUTO_TEST_CASE(llama_q_v_o_down) { cuda_vs_host<llama_lora<float>>("llama q,v,o,down", llama_dims, fp32_tol); }
BOOST_AUTO_TEST_CASE(llama_q_v_o_down_dropout) {
  cuda_vs_host<llama_lora_dropout<float>>("llama q,v,o,down dropout 0.1", llama_dims, fp32_tol);
}
BOOST_AUTO_TEST_CASE(in_out_q_v_o_down) {
  cuda_vs_host<in_out_lora<float>>("gpt2 in_out q,v,o,down", gpt2_dims, fp32_tol);
}
BOOST_AUTO_TEST_CASE(in_out_q_v_o_down_dropout) {
  cuda_vs_host<in_out_lora_dropout<float>>("gpt2 in_out q,v,o,down dropout 0.1", gpt2_dims, fp32_tol);
}
BOOST_AUTO_TEST_CASE(gpt2_qkv_up_fused) { cuda_vs_host<gpt2_qkv_up<float>>("gpt2 qkv,up", gpt2_dims, fp32_tol); }

// (b)
BOOST_AUTO_TEST_CASE(llama_bf16) {
  cuda_vs_host_mixed<llama_lora<tfm::bfloat16>, llama_lora<float>>("llama bf16 q,v,o,down", llama_dims);
}
BOOST_AUTO_TEST_CASE(llama_bf16_dropout) {
  cuda_vs_host_mixed<llama_lora_dropout<tfm::bfloat16>, llama_lora_dropout<float>>("llama bf16 q,v,o,down dropout 0.1",
                                                                                  llama_dims);
}

// (c)
BOOST_AUTO_TEST_CASE(merge_llama) { merge_on_cuda<llama_lora<float>>("llama", llama_dims); }
BOOST_AUTO_TEST_CASE(merge_in_out) { merge_on_cuda<in_out_lora<float>>("gpt2 in_out", gpt2_dims); }
BOOST_AUTO_TEST_CASE(merge_gpt2_qkv_up) { merge_on_cuda<gpt2_qkv_up<float>>("gpt2 qkv,up", gpt2_dims); }
