// tests/nn/step_compare.hpp — one training step (forward with targets, backward) of a model, and
// the comparison of two such steps (a CUDA model against the host, say): counted targets, logits,
// loss and every trainable parameter's gradient within tolerances relative to each tensor's scale.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "model_test_util.hpp"
#include "support/test_main.hpp"

namespace tfm::test {

struct step_tolerances {
  double logits = 1e-4, loss = 1e-5, grad = 1e-3;
};

struct step_outputs {
  double loss = 0;
  std::int64_t counted = 0;
  std::vector<float> logits, grads;  // host copies; grads in the layout of gradients()
};

template <class M>
step_outputs run_step(M& m, const std::vector<std::int32_t>& tok, const std::vector<std::int32_t>& tgt, int B, int T) {
  step_outputs s;
  s.loss = m.forward(tok.data(), tgt.data(), B, T);
  s.counted = m.counted_targets();
  s.logits = m.logits_to_host();
  m.zero_grad();
  m.backward();
  s.grads = m.gradients_to_host();
  return s;
}

// Checks `got` against `want`; `table` names the gradients (parameter_table() of either model).
// Returns the worst gradient error.
inline double check_step(const std::string& name, const step_outputs& got, const step_outputs& want,
                         const std::vector<nn::param_info>& table, step_tolerances tol) {
  BOOST_TEST(got.counted == want.counted, name << ": counted targets");
  BOOST_REQUIRE_EQUAL(got.logits.size(), want.logits.size());
  const double el = rel_error(got.logits, want.logits);
  BOOST_TEST(el <= tol.logits, name << ": logits relative error " << el);
  BOOST_TEST(std::abs(got.loss - want.loss) <= tol.loss * std::abs(want.loss),
             name << ": loss " << got.loss << " vs " << want.loss);
  BOOST_REQUIRE_EQUAL(got.grads.size(), want.grads.size());
  double worst = 0;
  for (auto const& p : table) {
    if (!p.trainable) continue;
    const auto at = std::ptrdiff_t(p.grad_offset), end = at + std::ptrdiff_t(p.size);
    const std::vector<float> g(got.grads.begin() + at, got.grads.begin() + end);
    const std::vector<float> w(want.grads.begin() + at, want.grads.begin() + end);
    const double e = rel_error(g, w);
    worst = std::max(worst, e);
    BOOST_TEST(e <= tol.grad, name << ": gradient of " << p.name << " relative error " << e);
  }
  BOOST_TEST_MESSAGE(name << ": logits " << el << ", loss " << got.loss << " (reference " << want.loss
                          << "), worst gradient " << worst);
  return worst;
}

}  // namespace tfm::test
