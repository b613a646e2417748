// The model against PyTorch: tests/nn/fixtures/<variant>.safetensors hold weights, tokens,
// targets, logits, loss and every parameter gradient computed in float64 by
// tools/make_model_fixtures.py. Each variant is loaded into the matching compile-time config
// (checked against the fixture's metadata) and must match:
//   float  model: logits and loss to 1e-5, gradients to 1e-4 (relative, see rel_error());
//   double model: everything to 1e-10;
//   flash  kernel: the same tolerances as naive.
// Mixed precision (bf16 / fp16 compute) against the same fixtures: test_model_mixed.cpp.
#define TFM_TEST_MODULE test_model_golden
#include "support/test_main.hpp"

#include "golden_fixture.hpp"

namespace nn = tfm::nn;
using namespace tfm::test;
using namespace tfm::test::golden;

namespace {

template <template <class, class> class Cfg>
void all_kinds(const std::string& name) {
  run_fixture<Cfg<float, nn::attn::naive>>(name, 1e-5, 1e-4);
  run_fixture<Cfg<float, nn::attn::flash>>(name, 1e-5, 1e-4);
  run_fixture<Cfg<double, nn::attn::naive>>(name, 1e-10, 1e-10);
  run_fixture<Cfg<double, nn::attn::flash>>(name, 1e-10, 1e-10);
}

}  // namespace

BOOST_AUTO_TEST_CASE(gpt2) { all_kinds<cfg_gpt2>("gpt2"); }
BOOST_AUTO_TEST_CASE(llama) { all_kinds<cfg_llama>("llama"); }
BOOST_AUTO_TEST_CASE(mqa) { all_kinds<cfg_mqa>("mqa"); }
BOOST_AUTO_TEST_CASE(gqa) { all_kinds<cfg_gqa>("gqa"); }
BOOST_AUTO_TEST_CASE(bidirectional) { all_kinds<cfg_bidirectional>("bidirectional"); }
BOOST_AUTO_TEST_CASE(window) { all_kinds<cfg_window>("window"); }
BOOST_AUTO_TEST_CASE(window_bidir) { all_kinds<cfg_window_bidir>("window_bidir"); }
BOOST_AUTO_TEST_CASE(pos_none) { all_kinds<cfg_pos_none>("pos_none"); }
BOOST_AUTO_TEST_CASE(sinusoidal) { all_kinds<cfg_sinusoidal>("sinusoidal"); }
BOOST_AUTO_TEST_CASE(rope_half) { all_kinds<cfg_rope_half>("rope_half"); }
BOOST_AUTO_TEST_CASE(alibi) { all_kinds<cfg_alibi>("alibi"); }
BOOST_AUTO_TEST_CASE(post_norm) { all_kinds<cfg_post_norm>("post_norm"); }
BOOST_AUTO_TEST_CASE(untied) { all_kinds<cfg_untied>("untied"); }
BOOST_AUTO_TEST_CASE(rmsnorm_gelu) { all_kinds<cfg_rmsnorm_gelu>("rmsnorm_gelu"); }
// The output head padded to a multiple of 16 rows (vocabulary 61 → 64): the same PyTorch
// results, tied (gpt2) and untied (llama).
BOOST_AUTO_TEST_CASE(padded_vocabulary) {
  run_fixture<cfg_padded<float, nn::attn::flash>>("gpt2", 1e-5, 1e-4);
  run_fixture<cfg_llama_padded<float, nn::attn::naive>>("llama", 1e-5, 1e-4);
}

// The transposed weight layout, loaded from the gpt2 fixture.
BOOST_AUTO_TEST_CASE(in_out_layout) {
  run_fixture<cfg_in_out<float>>("gpt2", 1e-5, 1e-4);
  run_fixture<cfg_in_out<double>>("gpt2", 1e-10, 1e-10);
}
