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

// Accuracy of a lower-precision step (`got`: bf16 / fp16 compute on CUDA, say) against another
// run of the same precision (`peer`: the host's) when both are measured against the step in a
// higher precision (`exact`): each error at most 1.5× the peer's plus a floor (logits and
// gradients relative to each tensor's scale, loss relative to the exact loss). Two runs that
// round at the same points but accumulate in different orders differ by about their own error,
// so this asks "as accurate as the reference implementation" rather than "equal to it".
struct accuracy_floors {
  double logits, loss, grad;
};
inline double check_step_accuracy(const std::string& name, const step_outputs& got, const step_outputs& peer,
                                  const step_outputs& exact, const std::vector<nn::param_info>& table,
                                  accuracy_floors f) {
  BOOST_TEST(got.counted == exact.counted, name << ": counted targets");
  auto compare = [&](const std::string& part, const std::vector<float>& g, const std::vector<float>& h,
                     const std::vector<float>& x, double floor) {
    const double eg = rel_error(g, x), eh = rel_error(h, x);
    BOOST_TEST(eg <= 1.5 * eh + floor, name << ": " << part << " error vs the exact step " << eg << ", peer's " << eh);
    return eg;
  };
  const double el = compare("logits", got.logits, peer.logits, exact.logits, f.logits);
  const double dl = std::abs(got.loss - exact.loss), hl = std::abs(peer.loss - exact.loss);
  BOOST_TEST(dl <= 1.5 * hl + f.loss * std::abs(exact.loss),
             name << ": loss " << got.loss << ", peer " << peer.loss << ", exact " << exact.loss);
  double worst = 0;
  for (auto const& p : table) {
    if (!p.trainable) continue;
    const auto at = std::ptrdiff_t(p.grad_offset), end = at + std::ptrdiff_t(p.size);
    auto part = [&](const std::vector<float>& v) { return std::vector<float>(v.begin() + at, v.begin() + end); };
    worst = std::max(worst, compare("gradient of " + p.name, part(got.grads), part(peer.grads), part(exact.grads),
                                    f.grad));
  }
  BOOST_TEST_MESSAGE(name << ": against the exact step, logits " << el << " (peer " << rel_error(peer.logits, exact.logits)
                          << "), loss " << got.loss << " (peer " << peer.loss << ", exact " << exact.loss
                          << "), worst gradient " << worst);
  return worst;
}

}  // namespace tfm::test
