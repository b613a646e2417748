// tests/nn/golden_fixture.hpp — loads a PyTorch golden fixture (tests/nn/fixtures/<variant>.
// safetensors, written by tools/make_model_fixtures.py) into a model of a compile-time config and
// compares logits, loss and every parameter gradient with it.
#pragma once
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "model_configs.hpp"
#include "model_test_util.hpp"
#include "support/test_main.hpp"
#include "tfm/io/safetensors.hpp"
#include "tfm/nn/model.hpp"

namespace tfm::test::golden {
namespace nn = tfm::nn;

inline std::filesystem::path fixture_dir() {
  const char* src = std::getenv("TFM_SOURCE_DIR");
  return std::filesystem::path(src ? src : TFM_SOURCE_DIR_FALLBACK) / "tests" / "nn" / "fixtures";
}

template <class Cfg>
void check_metadata(const std::map<std::string, std::string>& md) {
  using tr = nn::config_traits<Cfg>;
  auto is = [&](const char* k, const std::string& v) {
    BOOST_TEST_INFO("metadata " << k);
    BOOST_TEST(md.at(k) == v);
  };
  is("mlp", tr::swiglu ? "swiglu" : "gelu");
  is("norm", tr::layernorm ? "layernorm" : "rmsnorm");
  is("norm_position", tr::pre_norm ? "pre" : "post");
  is("biases", tr::biases ? "1" : "0");
  is("tied", tr::tied ? "1" : "0");
  is("mask", tr::is_causal ? "causal" : "bidirectional");
  is("window", std::to_string(tr::window));
  const char* pos = tr::learned_pos ? "learned" : tr::sinusoidal_pos ? "sinusoidal" : tr::rope ? "rope" : tr::alibi ? "alibi" : "none";
  is("position", pos);
  if constexpr (tr::rope) {
    BOOST_TEST(std::stod(md.at("rope_theta")) == tr::position::theta);
    BOOST_TEST(std::stod(md.at("rope_fraction")) == tr::position::fraction);
  }
}

struct errors {
  double logits = 0, loss = 0, grad = 0;  // relative errors; grad: the worst parameter's
};

// Loads fixture `name` into a model<Cfg, Space> (weights through a host copy, so any memory
// space) and checks logits, loss and every gradient against it. Returns the errors.
template <class Cfg, class Space = tfm::space::host>
errors run_fixture(const std::string& name, double tol_logits, double tol_grad, double tol_loss = -1) {
  if (tol_loss < 0) tol_loss = tol_logits;
  const tfm::io::safetensors_file f(fixture_dir() / (name + ".safetensors"));
  const auto& md = f.metadata();
  check_metadata<Cfg>(md);
  nn::dims d;
  d.vocab = std::stoi(md.at("vocab"));
  d.ctx = std::stoi(md.at("ctx"));
  d.d_model = std::stoi(md.at("d_model"));
  d.layers = std::stoi(md.at("n_layer"));
  d.heads = std::stoi(md.at("n_head"));
  d.kv_heads = std::stoi(md.at("n_kv_head"));
  d.d_ff = std::stoi(md.at("d_ff"));
  const int B = std::stoi(md.at("batch")), T = std::stoi(md.at("seq"));
  nn::model<Cfg, Space> m(d);
  using P = typename nn::model<Cfg, Space>::T;
  constexpr bool in_out = nn::config_traits<Cfg>::layout == nn::weight_layout::in_out;
  // element (r, c) of a fixture matrix [out, in] sits at c·rows + r in the model's [in, out]
  // (a vector is one row: rows = 1)
  auto model_index = [&](const nn::param_info& p, std::int64_t rows, std::int64_t cols, std::int64_t r,
                         std::int64_t c) { return in_out && p.matrix ? c * rows + r : r * cols + c; };
  auto rows_of = [&](const nn::param_info& p) {
    const auto& shape = f.info(p.name).shape;
    return shape.size() == 2 ? shape[0] : std::int64_t(1);
  };
  std::vector<P> w(m.num_parameters(), P(0));
  for (auto const& p : m.parameter_table()) {
    BOOST_TEST_INFO("parameter " << p.name);
    BOOST_REQUIRE(f.has(p.name));
    const auto v = f.read_as<P>(p.name);
    BOOST_REQUIRE_EQUAL(v.size(), p.size);
    const auto rows = rows_of(p), cols = std::int64_t(p.size) / rows;
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c)
        w[p.offset + std::size_t(model_index(p, rows, cols, r, c))] = v[std::size_t(r * cols + c)];
  }
  m.parameters_from_host(w);
  BOOST_TEST(f.size() == 2 * m.parameter_table().size() + 4, "the fixture holds exactly the model's parameters");
  const auto tok = f.read_as<std::int32_t>("tokens");
  const auto tgt = f.read_as<std::int32_t>("targets");
  const auto want_logits = f.read_as<double>("logits");
  const double want_loss = f.read_as<double>("loss").at(0);

  const double loss = m.forward(tok.data(), tgt.data(), B, T);
  const auto logits = m.logits_to_host();
  BOOST_REQUIRE_EQUAL(logits.size(), want_logits.size());
  const double el = rel_error(logits, want_logits);
  BOOST_TEST(el <= tol_logits, name << ": logits relative error " << el);
  BOOST_TEST(std::abs(loss - want_loss) <= tol_loss * std::abs(want_loss),
             name << ": loss " << loss << " vs PyTorch " << want_loss);
  m.zero_grad();
  m.backward();
  const auto grads = m.gradients_to_host();
  double worst = 0;
  for (auto const& p : m.parameter_table()) {
    const auto want = f.read_as<double>("grad." + p.name);
    const auto rows = rows_of(p), cols = std::int64_t(p.size) / rows;
    std::vector<double> g(p.size);
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t c = 0; c < cols; ++c)
        g[std::size_t(r * cols + c)] =
            double(grads[std::size_t(p.grad_offset) + std::size_t(model_index(p, rows, cols, r, c))]);
    const double e = rel_error(g, want);
    worst = std::max(worst, e);
    BOOST_TEST(e <= tol_grad, name << ": gradient of " << p.name << " relative error " << e);
  }
  BOOST_TEST_MESSAGE(name << ": logits error " << el << ", loss " << loss << " (PyTorch " << want_loss
                          << "), worst gradient error " << worst);
  return {el, std::abs(loss - want_loss) / std::abs(want_loss), worst};
}

}  // namespace tfm::test::golden
