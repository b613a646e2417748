// Finite-difference gradient checks in double of the whole model, for every variant: every
// parameter tensor gets sampled elements checked (all elements of the small ones), plus the
// gradient with respect to the embedding input through wte.
#define TFM_TEST_MODULE test_model_grad
#include "support/test_main.hpp"

#include <boost/mpl/list.hpp>
#include <cmath>

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

template <class Cfg>
void check_gradients(int kv) {
  nn::model<Cfg> m(small_dims(kv));
  randomize(m, 11);
  const int B = 2, T = 9;
  auto tok = random_tokens(B * T, m.sizes().vocab, 1);
  auto tgt = random_tokens(B * T, m.sizes().vocab, 2);
  tgt[3] = nn::ignore_index;
  tgt[12] = nn::ignore_index;
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
    const std::size_t stride = p.size <= 40 ? 1 : p.size / 29 + 1;
    for (std::size_t e = (p.size > 40 ? (p.size * 7) % stride : 0); e < p.size; e += stride) {
      const std::size_t i = p.offset + e;
      const double w0 = w[i];
      w[i] = w0 + h;
      const double lp = m.forward(tok.data(), tgt.data(), B, T);
      w[i] = w0 - h;
      const double lm = m.forward(tok.data(), tgt.data(), B, T);
      w[i] = w0;
      const double num = (lp - lm) / (2 * h);
      const double err = std::abs(num - analytic[i]) / (1e-6 + std::abs(num));
      if (std::abs(num - analytic[i]) > 1e-8 + 1e-5 * std::abs(num)) {
        BOOST_ERROR(p.name << "[" << e << "]: analytic " << analytic[i] << " vs numeric " << num);
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
BOOST_AUTO_TEST_SUITE_END()
