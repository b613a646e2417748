// The trainer's parts: optimizers against PyTorch's numbers (tools/optim_reference.py),
// parameter groups, schedules, clipping, batches from shards and their errors, and the loop:
// loss goes down, accumulation, non-finite steps skipped, determinism and exact resume, and the
// optimizer writing a mixed-precision model's compute copy.
#define TFM_TEST_MODULE train
#include "support/test_main.hpp"
#include "support/temp_files.hpp"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "nn/model_configs.hpp"
#include "tfm/data/shard.hpp"
#include "tfm/train/instruction.hpp"
#include "tfm/train/lora.hpp"
#include "tfm/train/trainer.hpp"

namespace fs = std::filesystem;
namespace nn = tfm::nn;
namespace tr = tfm::train;

namespace {

using tfm::test::check_throws_with;
using tfm::test::temp_dir;



// A tiny GPT-2-shaped model (vocabulary 16).
using small_cfg = tfm::test::cfg_gpt2<float>;
nn::dims small_dims() { return nn::dims{16, 16, 16, 2, 2, 2, 32}; }

// A corpus with structure to learn: repeating "0 1 2 … 9" with an occasional random token.
std::vector<std::uint32_t> pattern_tokens(std::size_t n) {
  std::vector<std::uint32_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::uint32_t(i % 10);
  for (std::size_t i = 7; i < n; i += 97) v[i] = 10 + std::uint32_t(tfm::rng::random_u32(3, 1, i) % 6);
  return v;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(optimizers)

const double p0[] = {0.5, -1.25, 2.0, 0.0, -0.1};
const double grads[3][5] = {{0.1, -0.2, 0.3, 1.0, -5.0}, {0.2, 0.1, -0.4, 1.0, 5.0}, {-0.3, 0.05, 0.2, -1.0, 0.5}};

template <class Opt>
std::vector<double> run3(Opt& opt, double lr) {
  std::vector<double> p(p0, p0 + 5);
  for (auto const& g : grads) opt.step(std::span<double>(p), std::span<const double>(g, 5), lr);
  return p;
}

BOOST_AUTO_TEST_CASE(adamw_matches_pytorch) {
  tr::adamw<double, double> opt(5, {tr::param_group{"all", {{0, 5}}, 0.1}}, {.beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8});
  const auto p = run3(opt, 1e-2);
  const double want[] = {0.47955665601716219, -1.232993530549279, 1.9849719964105608, -0.022589935973362639,
                         -0.091104749379006089};
  for (int i = 0; i < 5; ++i) BOOST_TEST(p[i] == want[i], boost::test_tools::tolerance(1e-12));
  BOOST_TEST(opt.steps_taken() == 3);
}

BOOST_AUTO_TEST_CASE(sgd_matches_pytorch) {
  {
    tr::sgd<double, double> opt(5, {tr::param_group{"all", {{0, 5}}, 0.01}}, {.momentum = 0.9});
    const auto p = run3(opt, 0.1);
    const double want[] = {0.46215538949999996, -1.21285947875, 1.9635635679999999, -0.36052010000000001,
                           0.25416102010000025};
    for (int i = 0; i < 5; ++i) BOOST_TEST(p[i] == want[i], boost::test_tools::tolerance(1e-12));
  }
  {
    tr::sgd<double, double> opt(5, {tr::param_group{"all", {{0, 5}}, 0.0}}, {.momentum = 0.9, .nesterov = true});
    const auto p = run3(opt, 0.1);
    const double want[] = {0.46840999999999994, -1.2178199999999999, 1.96723, -0.4249, 0.16950000000000004};
    for (int i = 0; i < 5; ++i) BOOST_TEST(p[i] == want[i], boost::test_tools::tolerance(1e-12));
  }
}

BOOST_AUTO_TEST_CASE(grad_scale_equals_scaled_gradients) {
  // step(..., lr, s) with gradients g equals step(..., lr, 1) with gradients s·g
  std::vector<float> a(40000), b(40000), g(40000), gs(40000);
  for (std::size_t i = 0; i < a.size(); ++i) {
    a[i] = b[i] = tfm::rng::normal(1, 0, i);
    g[i] = tfm::rng::normal(1, 1, i);
    gs[i] = g[i] * 0.25f;
  }
  tr::adamw<float> o1(a.size(), {tr::param_group{"all", {{0, a.size()}}, 0.1}});
  tr::adamw<float> o2(a.size(), {tr::param_group{"all", {{0, a.size()}}, 0.1}});
  for (int s = 0; s < 3; ++s) {
    o1.step(a, g, 1e-3, 0.25);
    o2.step(b, gs, 1e-3, 1.0);
  }
  BOOST_TEST(a == b, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(float_adamw_matches_a_double_reference) {
  // The float step (AVX-512 and AVX2 bodies, scalar tails) against the same update in double, over
  // groups of odd sizes and different decays, with a gradient scale, for three steps.
  const std::size_t n = 70011;
  const std::vector<tr::param_group> groups{{"a", {{0, 1}, {3, 17}, {40, 40000}}, 0.1},
                                            {"b", {{40040, 29971}, {20, 15}}, 0.0}};
  std::vector<float> p(n), g(n);
  std::vector<double> pd(n), md(n, 0.0), vd(n, 0.0);
  for (std::size_t i = 0; i < n; ++i) pd[i] = p[i] = tfm::rng::normal(2, 0, i);
  tr::adamw<float> opt(n, groups, {.beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8});
  const double lr = 1e-2, gs = 0.5;
  for (int t = 1; t <= 3; ++t) {
    for (std::size_t i = 0; i < n; ++i) g[i] = tfm::rng::normal(2, std::uint64_t(t), i);
    opt.step(p, g, lr, gs);
    const double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.99, t);
    for (auto const& gr : groups)
      for (auto const& [off, len] : gr.ranges)
        for (std::size_t i = off; i < off + len; ++i) {
          const double gi = double(g[i]) * gs;
          md[i] = 0.9 * md[i] + 0.1 * gi;
          vd[i] = 0.99 * vd[i] + 0.01 * gi * gi;
          pd[i] = pd[i] * (1 - lr * gr.weight_decay) - lr / bc1 * md[i] / (std::sqrt(vd[i] / bc2) + 1e-8);
        }
  }
  std::size_t bad = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (!(std::abs(double(p[i]) - pd[i]) <= 1e-6 * std::abs(pd[i]) + 1e-7)) ++bad;
  BOOST_TEST(bad == 0u);
  // elements in no group never move
  for (std::size_t i : {std::size_t(1), std::size_t(2), std::size_t(35), std::size_t(39)}) BOOST_TEST(p[i] == float(pd[i]));
}

BOOST_AUTO_TEST_CASE(frozen_parameters_keep_values_and_cost_no_state) {
  std::vector<float> p(100, 1.0f), g(100, 1.0f);
  tr::adamw<float> opt(100, {tr::param_group{"some", {{10, 20}, {50, 5}}, 0.0}});
  BOOST_TEST(opt.trainable() == 25u);
  BOOST_TEST(opt.state_bytes() == 2 * 25 * sizeof(float));
  opt.step(p, g, 0.1);
  for (int i = 0; i < 100; ++i) {
    const bool trained = (i >= 10 && i < 30) || (i >= 50 && i < 55);
    BOOST_TEST((p[i] != 1.0f) == trained);
  }
}

BOOST_AUTO_TEST_CASE(bad_groups_are_refused) {
  check_throws_with<tfm::invalid_argument>([] { tr::adamw<float> o(10, {tr::param_group{"a", {{5, 10}}, 0}}); },
                                           "outside the 10 parameters");
  check_throws_with<tfm::invalid_argument>(
      [] { tr::adamw<float> o(10, {tr::param_group{"a", {{0, 5}}, 0}, tr::param_group{"b", {{4, 2}}, 0}}); }, "overlap");
  check_throws_with<tfm::invalid_argument>([] { tr::adamw<float> o(10, {}, {.beta1 = 1.0}); }, "beta1");
  std::vector<float> p(10), g(9);
  tr::adamw<float> o(10, {tr::param_group{"a", {{0, 10}}, 0}});
  check_throws_with<tfm::invalid_argument>([&] { o.step(p, g, 0.1); }, "9 gradients");
  for (double wd : {-0.1, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()})
    check_throws_with<tfm::invalid_argument>(
        [&] {
          tr::sgd<float> s(10, {tr::param_group{"b", {{0, 10}}, wd}});
        },
        "group 'b' has weight decay");
}

// A NaN or negative learning rate (or gradient scale) is refused before anything is written.
BOOST_AUTO_TEST_CASE(bad_step_arguments_are_refused) {
  std::vector<float> p(10, 1.0f), g(10, 0.5f);
  tr::adamw<float> a(10, {tr::param_group{"a", {{0, 10}}, 0.1}});
  tr::sgd<float> s(10, {tr::param_group{"a", {{0, 10}}, 0.1}});
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  for (double lr : {nan, -1e-3, inf}) {
    check_throws_with<tfm::invalid_argument>([&] { a.step(p, g, lr); }, "adamw::step: the learning rate");
    check_throws_with<tfm::invalid_argument>([&] { s.step(p, g, lr); }, "sgd::step: the learning rate");
  }
  check_throws_with<tfm::invalid_argument>([&] { a.step(p, g, 0.1, nan); }, "gradient scale");
  BOOST_TEST(std::all_of(p.begin(), p.end(), [](float x) { return x == 1.0f; }));
  a.step(p, g, 0.0);  // zero is a rate (weights stay, the moments move)
  BOOST_TEST(std::all_of(p.begin(), p.end(), [](float x) { return x == 1.0f; }));
}

BOOST_AUTO_TEST_CASE(decay_groups_follow_the_policy) {
  nn::model<tfm::test::cfg_gpt2<float>> g(small_dims());
  auto groups = tr::decay_groups(g.parameter_table(), {.weight_decay = 0.1});
  BOOST_TEST_REQUIRE(groups.size() == 2u);
  auto in = [&](const tr::param_group& grp, std::string_view name) {
    const auto& p = g.info(name);
    for (auto const& r : grp.ranges)
      if (r.first == p.offset) return true;
    return false;
  };
  BOOST_TEST(in(groups[0], "h.0.attn.c_attn.weight"));
  BOOST_TEST(in(groups[0], "wte"));
  BOOST_TEST(in(groups[1], "h.0.ln_1.weight"));
  BOOST_TEST(in(groups[1], "h.1.mlp.c_fc.bias"));
  BOOST_TEST(in(groups[1], "ln_f.bias"));
  auto no_emb = tr::decay_groups(g.parameter_table(), {.weight_decay = 0.1, .embeddings = false});
  BOOST_TEST(in(no_emb[1], "wte"));
  BOOST_TEST(in(no_emb[1], "wpe"));
  nn::model<tfm::test::cfg_llama<float>> l(nn::dims{16, 16, 16, 1, 4, 2, 24});
  auto lg = tr::decay_groups(l.parameter_table(), {});
  std::size_t total = 0;
  for (auto const& p : l.parameter_table()) total += p.size;
  BOOST_TEST(lg[0].numel() + lg[1].numel() == total);
}

BOOST_AUTO_TEST_CASE(global_norm_and_clipping) {
  std::vector<float> g(100000, 0.0f);
  double want = 0;
  for (std::size_t i = 0; i < g.size(); ++i) {
    g[i] = float(i % 7) - 3.0f;
    want += double(g[i]) * g[i];
  }
  std::vector<tr::param_group> groups{{"all", {{0, g.size()}}, 0}};
  auto s = tr::global_grad_norm<float>(g, groups, 0.5);
  BOOST_TEST(s.finite);
  BOOST_TEST(s.norm == 0.5 * std::sqrt(want), boost::test_tools::tolerance(1e-12));
  BOOST_TEST(tr::clip_factor(10.0, 1.0) == 1.0 / (10.0 + 1e-6), boost::test_tools::tolerance(1e-15));
  BOOST_TEST(tr::clip_factor(0.5, 1.0) == 1.0);
  BOOST_TEST(tr::clip_factor(10.0, 0.0) == 1.0);
  // a non-finite element anywhere (the start, the body read in sub-streams, the tail) is seen
  for (std::size_t at : {std::size_t(0), std::size_t(77777), std::size_t(99967), std::size_t(99990)}) {
    const float keep = g[at];
    g[at] = std::numeric_limits<float>::infinity();
    BOOST_TEST(!tr::global_grad_norm<float>(g, groups).finite, "inf at " << at);
    g[at] = std::numeric_limits<float>::quiet_NaN();
    BOOST_TEST(!tr::global_grad_norm<float>(g, groups).finite, "nan at " << at);
    g[at] = keep;
  }
}

BOOST_AUTO_TEST_CASE(global_norm_over_many_ranges) {
  // ranges of odd sizes, long ones read in interleaved sub-streams, against a plain double sum;
  // elements outside the groups do not count
  const std::size_t n = 300007;
  std::vector<float> g(n);
  for (std::size_t i = 0; i < n; ++i) g[i] = tfm::rng::normal(4, 0, i) * (1.0f + float(i % 13));
  const std::vector<tr::param_group> groups{{"a", {{5, 1}, {10, 4095}, {4200, 150001}}, 0.1},
                                            {"b", {{160000, 140007}, {4105, 77}}, 0.0}};
  double want = 0;
  for (auto const& gr : groups)
    for (auto const& [off, len] : gr.ranges)
      for (std::size_t i = off; i < off + len; ++i) want += double(g[i]) * double(g[i]);
  g[0] = g[4] = g[4199] = std::numeric_limits<float>::infinity();  // outside every range
  const auto s = tr::global_grad_norm<float>(g, groups);
  BOOST_TEST(s.finite);
  BOOST_TEST(s.norm == std::sqrt(want), boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(schedules)

BOOST_AUTO_TEST_CASE(warmup_cosine_like_nanogpt) {
  tr::warmup_cosine s{.max_lr = 1e-3, .min_lr = 1e-4, .warmup = 100, .decay_end = 2000};
  BOOST_TEST(s(0) == 1e-3 * 1 / 101, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(s(99) == 1e-3 * 100 / 101, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(s(100) == 1e-3, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(s(1050) == 0.5 * (1e-3 + 1e-4), boost::test_tools::tolerance(1e-12));
  BOOST_TEST(s(2000) == 1e-4);
  BOOST_TEST(s(5000) == 1e-4);
  for (int i = 101; i < 2000; ++i) BOOST_TEST_REQUIRE(s(i) <= s(i - 1));
}

BOOST_AUTO_TEST_CASE(warmup_stable_decay_phases) {
  using shape = tr::warmup_stable_decay::shape;
  tr::warmup_stable_decay s{.max_lr = 1.0, .min_lr = 0.0, .warmup = 10, .stable = 100, .decay = 50};
  BOOST_TEST(s(4) == 5.0 / 11, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(s(10) == 1.0);
  BOOST_TEST(s(109) == 1.0);
  BOOST_TEST(s(135) == 0.5, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(s(160) == 0.0);
  s.decay_shape = shape::one_minus_sqrt;
  BOOST_TEST(s(110 + 25) == 1.0 - std::sqrt(0.5), boost::test_tools::tolerance(1e-12));
  s.decay_shape = shape::cosine;
  BOOST_TEST(s(135) == 0.5, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(tr::constant_lr{3e-4}(123456) == 3e-4);
}

BOOST_AUTO_TEST_CASE(bad_rates_are_refused) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  check_throws_with<tfm::invalid_argument>([&] { (void)tr::constant_lr{nan}(0); }, "constant_lr: the learning rate");
  check_throws_with<tfm::invalid_argument>([&] { (void)tr::constant_lr{-1.0}(0); }, "constant_lr: the learning rate");
  check_throws_with<tfm::invalid_argument>([&] { (void)tr::warmup_cosine{.max_lr = nan}(3); }, "max_lr=nan");
  check_throws_with<tfm::invalid_argument>([&] { (void)tr::warmup_cosine{.min_lr = -1e-4}(3); }, "min_lr=-0.0001");
  check_throws_with<tfm::invalid_argument>(
      [&] { (void)tr::warmup_stable_decay{.max_lr = std::numeric_limits<double>::infinity()}(3); },
      "warmup_stable_decay: learning rates must be finite");
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(data)

BOOST_AUTO_TEST_CASE(windows_shift_targets_and_replay_from_a_position) {
  std::vector<std::uint32_t> ids(1000);
  for (std::size_t i = 0; i < ids.size(); ++i) ids[i] = std::uint32_t(i % 50);
  auto c = tr::token_corpus::from_tokens(ids, 1000, 50);
  auto [trs, vas] = tr::split_at(c, 0.9);
  BOOST_TEST(trs.end == 900u);
  BOOST_TEST(vas.size() == 100u);
  tr::batch_source a(c, trs, 8, tr::sampling::random_windows, 5);
  std::vector<std::int32_t> t1(32), g1(32), t2(32), g2(32);
  a.next(4, t1, g1);
  for (int b = 0; b < 4; ++b)
    for (int i = 0; i < 8; ++i) {
      BOOST_TEST(g1[b * 8 + i] == (t1[b * 8 + i] + 1) % 50);  // the next id of the corpus
    }
  const auto pos = a.position();
  a.next(4, t1, g1);
  tr::batch_source b(c, trs, 8, tr::sampling::random_windows, 5);
  b.set_position(pos);
  b.next(4, t2, g2);
  BOOST_TEST(t1 == t2, boost::test_tools::per_element());
  // sequential: consecutive windows, then wrap
  tr::batch_source s(c, tr::split{0, 20}, 8, tr::sampling::sequential, 0);
  std::vector<std::int32_t> t3(24), g3(24);
  s.next(3, t3, g3);
  BOOST_TEST(t3[0] == 0);
  BOOST_TEST(t3[8] == 8);
  BOOST_TEST(t3[16] == 0);  // windows() == 2: the third wraps to the start
  BOOST_TEST(s.windows() == 2u);
}

BOOST_AUTO_TEST_CASE(shards_read_across_files) {
  temp_dir d;
  std::vector<std::uint32_t> a{9, 1, 2, 3, 9, 4}, b{9, 5, 6, 7, 8};
  tfm::write_shard(d.path / "a.bin", a, 10, 9, 6);
  tfm::write_shard(d.path / "b.bin", b, 10, 9, 4);
  auto c = tr::token_corpus::from_shards({d.path / "a.bin", d.path / "b.bin"}, 10);
  BOOST_TEST(c.size() == 11u);
  BOOST_TEST(c.source_bytes() == 10u);
  std::vector<std::int32_t> out(5);
  c.read(4, out);
  const std::vector<std::int32_t> want{9, 4, 9, 5, 6};
  BOOST_TEST(out == want, boost::test_tools::per_element());
  // bytes per token: 10 bytes over 11 ids minus 3 separators
  BOOST_TEST(c.bytes_per_token() == 10.0 / 8.0);
}

BOOST_AUTO_TEST_CASE(bad_data_is_named) {
  temp_dir d;
  std::vector<std::uint32_t> a{9, 1, 2, 3, 9, 40};
  tfm::write_shard(d.path / "big.bin", a, 100, 9, 6);
  check_throws_with<tr::data_error>([&] { tr::token_corpus::from_shards({d.path / "big.bin"}, 16); },
                                    "big.bin: token 5 is 40, not below the model's vocabulary of 16");
  check_throws_with<tfm::shard_error>([&] { tr::token_corpus::from_shards({d.path / "missing.bin"}, 16); },
                                      "missing.bin");
  {
    std::ofstream o(d.path / "junk.bin", std::ios::binary);
    o << std::string(100, 'x');
  }
  check_throws_with<tfm::shard_error>([&] { tr::token_corpus::from_shards({d.path / "junk.bin"}, 16); }, "wrong magic");
  std::vector<std::uint32_t> ok{9, 1, 2, 3, 9, 4, 5, 6};
  tfm::write_shard(d.path / "ok.bin", ok, 10, 9, 6);
  fs::resize_file(d.path / "ok.bin", fs::file_size(d.path / "ok.bin") - 3);
  check_throws_with<tfm::shard_error>([&] { tr::token_corpus::from_shards({d.path / "ok.bin"}, 16); }, "truncated");
  tfm::write_shard(d.path / "short.bin", std::vector<std::uint32_t>{9, 1, 2, 3}, 10, 9, 3);
  auto c = tr::token_corpus::from_shards({d.path / "short.bin"}, 16);
  check_throws_with<tr::data_error>(
      [&] { tr::batch_source s(c, tr::split{0, c.size()}, 8, tr::sampling::random_windows, 0); },
      "short.bin: the train split holds 4 tokens, fewer than one window of context 8 + 1");
}

BOOST_AUTO_TEST_SUITE_END()

namespace {

struct run_result {
  std::vector<float> weights;
  tr::train_summary summary;
};

// One run of the small model on the pattern corpus (model seed 11, random training windows, a
// sequential validation split), with every option the tests need; out empty: no files.
struct probe_options {
  std::int64_t steps = 12, stop_after = -1, checkpoint_every = 0, eval_every = 0;
  int accum = 1, batch = 2, keep_last = 3, eval_batches = 2;
  double weight_decay = 0.1, clip = 1.0;
  fs::path out;
  bool resume = false;  // from the latest checkpoint under out, or from resume_from when set
  fs::path resume_from;
  tr::loss_scaling scaling{};
  std::uint64_t dropout_seed = 0;
  bool evaluator = false;  // set_evaluator (recording its steps) instead of set_validation
  nn::dims dims = small_dims();
};
struct probe_result {
  std::vector<float> weights;
  tr::train_summary summary;
  double loss_scale = 0;
  std::int64_t optimizer_steps = 0;
  std::map<std::string, std::vector<float>> optimizer_state;
  std::vector<std::int64_t> eval_steps;  // where the evaluator ran (probe_options::evaluator)
};

template <class Cfg, class Opt, class Sched = tr::warmup_cosine>
probe_result probe_run(const probe_options& p, typename Opt::options oo,
                       Sched sched = tr::warmup_cosine{.max_lr = 3e-3, .min_lr = 3e-4, .warmup = 3, .decay_end = 12}) {
  nn::model<Cfg> m(p.dims);
  m.init(11);
  Opt opt(m.num_trainable(), tr::decay_groups(m.parameter_table(), {.weight_decay = p.weight_decay}), oo);
  auto c = tr::token_corpus::from_tokens(pattern_tokens(4000), 4000, 16);
  auto [trs, vas] = tr::split_at(c, 0.9);
  tr::batch_source train(c, trs, 12, tr::sampling::random_windows, 99);
  tr::batch_source val(c, vas, 12, tr::sampling::sequential, 0);
  tr::train_options o;
  o.batch = p.batch;
  o.grad_accum = p.accum;
  o.steps = p.steps;
  o.eval_every = p.eval_every;
  o.eval_batches = p.eval_batches;
  o.checkpoint_every = p.checkpoint_every;
  o.keep_last = p.keep_last;
  o.out_dir = p.out;
  o.stop_after = p.stop_after;
  o.show_progress = false;
  o.scaling = p.scaling;
  o.dropout_seed = p.dropout_seed;
  o.clip = p.clip;
  tr::trainer t(m, opt, sched, train, o);
  probe_result r;
  if (p.evaluator)
    t.set_evaluator([&](std::int64_t step) {
      r.eval_steps.push_back(step);
      return tr::evaluate(m, val, p.eval_batches, p.batch, step);
    });
  else
    t.set_validation(val);
  if (p.resume) t.resume(p.resume_from);
  r.summary = t.run();
  r.weights = m.parameters_to_host();
  r.loss_scale = t.loss_scale();
  r.optimizer_steps = opt.steps_taken();
  r.optimizer_state = opt.state_to_host();
  return r;
}

// Trains the small model (config Cfg) on the pattern corpus; out_dir empty: no files.
template <class Cfg = small_cfg, class Opt = tr::adamw<float>>
run_result train_small(std::int64_t steps, const fs::path& out = {}, std::int64_t stop_after = -1, bool resume = false,
                       int accum = 1, int batch = 4, tr::loss_scaling scaling = {}) {
  probe_options p;
  p.steps = steps;
  p.stop_after = stop_after;
  p.eval_every = 10;
  p.accum = accum;
  p.batch = batch;
  p.eval_batches = 4;
  p.out = out;
  p.resume = resume;
  p.scaling = scaling;
  const auto r = probe_run<Cfg, Opt>(
      p, {.beta1 = 0.9, .beta2 = 0.99},
      tr::warmup_cosine{.max_lr = 3e-3, .min_lr = 3e-4, .warmup = 5, .decay_end = std::max<std::int64_t>(steps, 5)});
  return {r.weights, r.summary};
}

// The set-up of the loop tests that drive a trainer themselves: the small model initialised from
// a seed, AdamW over all its parameters without weight decay, random windows of the pattern
// corpus, and options with a batch and a step count (no progress bar).
struct small_loop {
  nn::model<small_cfg> m{small_dims()};
  tr::adamw<float> opt{m.num_parameters(), tr::decay_groups(m.parameter_table(), {})};
  tr::token_corpus c = tr::token_corpus::from_tokens(pattern_tokens(4000), 4000, 16);
  tr::batch_source train{c, tr::split{0, c.size()}, 12, tr::sampling::random_windows, 1};
  tr::train_options o;
  small_loop(std::uint64_t seed, int batch, std::int64_t steps) {
    m.init(seed);
    o.batch = batch;
    o.steps = steps;
    o.show_progress = false;
  }
};

}  // namespace

BOOST_AUTO_TEST_SUITE(loop)

BOOST_AUTO_TEST_CASE(loss_goes_down_and_validation_improves) {
  nn::model<small_cfg> m(small_dims());
  m.init(11);
  auto c = tr::token_corpus::from_tokens(pattern_tokens(4000), 4000, 16);
  auto [trs, vas] = tr::split_at(c, 0.9);
  tr::batch_source val(c, vas, 12, tr::sampling::sequential, 0);
  const double before = tr::evaluate(m, val, 4, 4).loss;
  BOOST_TEST(before > 2.0);  // about ln 16 at initialisation
  auto r = train_small(150);
  BOOST_TEST(r.summary.step == 150);
  BOOST_TEST(r.summary.skipped == 0);
  BOOST_TEST_REQUIRE(r.summary.last_eval.has_value());
  BOOST_TEST(r.summary.last_eval->loss < 0.5 * before);
  BOOST_TEST(r.summary.last_eval->perplexity == std::exp(r.summary.last_eval->loss), boost::test_tools::tolerance(1e-12));
  // one byte per token: bits per byte = loss / ln 2
  BOOST_TEST(r.summary.last_eval->bits_per_byte == r.summary.last_eval->loss / std::log(2.0),
             boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(same_seed_same_weights_bit_for_bit) {
  auto a = train_small(15), b = train_small(15);
  BOOST_TEST(std::memcmp(a.weights.data(), b.weights.data(), a.weights.size() * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_CASE(resume_is_exact) {
  temp_dir d1, d2;
  auto full = train_small(20, d1.path);
  auto first = train_small(20, d2.path, 10);
  BOOST_TEST(first.summary.step == 10);
  BOOST_TEST(fs::exists(d2.path / "checkpoints" / "step-00000010" / "manifest.json"));
  auto second = train_small(20, d2.path, -1, true);
  BOOST_TEST(second.summary.step == 20);
  BOOST_TEST(std::memcmp(full.weights.data(), second.weights.data(), full.weights.size() * sizeof(float)) == 0);
  // the files a person looks at
  BOOST_TEST(fs::exists(d2.path / "metrics.jsonl"));
  BOOST_TEST(fs::exists(d2.path / "loss.svg"));
  BOOST_TEST(fs::exists(d2.path / "checkpoints" / "step-00000020" / "config.json"));
}

BOOST_AUTO_TEST_CASE(resume_refuses_a_malformed_trainer_state) {
  // Fields that do not parse whole ("12abc" read as 12 before), negative counts (a data position
  // of -5 wrapped to 2^64 - 5) and a loss scale that is not a positive number are refused with
  // the field named, and the model is left as it was. The states are written through
  // checkpoint_dir::save, so their manifests match: only the fields are wrong.
  temp_dir d;
  train_small(20, d.path, 10);
  nn::model<small_cfg> saved(small_dims());
  const tr::trainer_state good = tr::checkpoint_dir::load(d.path / "checkpoints" / "step-00000010", saved);
  const auto refused = [&](const char* field, const char* value, const std::string& what) {
    tr::trainer_state bad = good;
    for (const char* k : {"loss_scale", "loss_scale_good_steps", "overflows"})
      bad.fields[k] = std::string(k) == "loss_scale" ? "1024" : "0";
    bad.fields[field] = value;
    temp_dir e;
    const auto dir = tr::checkpoint_dir(e.path, 5).save(10, saved, bad);
    small_loop l(11, 4, 20);
    auto& m = l.m;
    const auto before = m.parameters_to_host();
    l.o.scaling = tr::loss_scaling{.enabled = true, .init = 1024, .interval = 4};
    tr::trainer t(m, l.opt, tr::constant_lr{1e-3}, l.train, l.o);
    check_throws_with<tr::checkpoint_error>([&] { t.resume(dir); }, what);
    BOOST_TEST(m.parameters_to_host() == before, boost::test_tools::per_element());
    BOOST_TEST(t.step() == 0);
  };
  refused("data_position", "12abc", "'data_position' is \"12abc\", not a count");
  refused("data_position", "-5", "'data_position' is \"-5\", not a count");
  refused("step", "", "'step' is \"\", not a count");
  refused("tokens_seen", "1e3", "'tokens_seen' is \"1e3\", not a count");
  refused("bad_in_a_row", "4294967296", "'bad_in_a_row' is out of range");
  refused("loss_scale", "nan", "'loss_scale' is \"nan\", not a positive finite number");
  refused("loss_scale", "-2", "'loss_scale' is \"-2\", not a positive finite number");
  refused("loss_scale", "1024x", "'loss_scale' is \"1024x\"");
  refused("overflows", "x", "'overflows' is \"x\", not a count");
}

BOOST_AUTO_TEST_CASE(accumulation_equals_a_bigger_batch) {
  // 2 micro-batches of 2 sequences vs 1 batch of 4 (the same windows in the same order): the
  // same mean gradient up to rounding
  auto a = train_small(3, {}, -1, false, 2, 2), b = train_small(3, {}, -1, false, 1, 4);
  double worst = 0;
  for (std::size_t i = 0; i < a.weights.size(); ++i) worst = std::max(worst, double(std::abs(a.weights[i] - b.weights[i])));
  BOOST_TEST(worst < 2e-5);
}

BOOST_AUTO_TEST_CASE(loss_scaling_by_powers_of_two_changes_nothing) {
  // scaling by 2^k is exact in binary floating point and the optimizer divides it out in the same
  // pass: the weights equal an unscaled run's bit for bit, also across growth steps
  auto plain = train_small(12);
  auto scaled = train_small(12, {}, -1, false, 2, 2, tr::loss_scaling{.enabled = true, .init = 1024, .interval = 4});
  auto plain2 = train_small(12, {}, -1, false, 2, 2);
  BOOST_TEST(scaled.summary.overflows == 0);
  BOOST_TEST(std::memcmp(plain2.weights.data(), scaled.weights.data(), plain2.weights.size() * sizeof(float)) == 0);
  BOOST_TEST(plain.weights.size() == scaled.weights.size());
}

BOOST_AUTO_TEST_CASE(loss_scale_overflows_are_skipped_and_backed_off) {
  temp_dir d;
  // a scale beyond fp32's range overflows the gradients; the trainer halves it until the
  // steps go through, without counting them toward max_bad_steps
  small_loop l(11, 4, 40);
  auto& m = l.m;
  l.o.max_bad_steps = 2;
  l.o.out_dir = d.path;
  l.o.scaling = {.enabled = true, .init = 1e42, .interval = 1000};
  tr::trainer t(m, l.opt, tr::constant_lr{1e-3}, l.train, l.o);
  const auto before = m.parameters_to_host();
  BOOST_TEST_REQUIRE(std::isinf(float(t.loss_scale() * 16)));  // the first steps must overflow
  t.train_step();
  BOOST_TEST(t.overflows() == 1);
  BOOST_TEST(std::memcmp(before.data(), m.parameters_to_host().data(), before.size() * sizeof(float)) == 0);
  auto s = t.run();
  BOOST_TEST(s.step == 40);
  BOOST_TEST(s.overflows >= 2);  // more than max_bad_steps in a row, and no error
  BOOST_TEST(s.skipped == s.overflows);
  BOOST_TEST(t.loss_scale() < 1e42);
  BOOST_TEST(std::isfinite(s.last_loss));
  // the scale and the overflow count are in the metrics log
  const auto h = tr::metrics_log::read(d.path / "metrics.jsonl");
  BOOST_TEST_REQUIRE(!h.train.empty());
  BOOST_TEST(h.train.back().overflows == s.overflows);
  BOOST_TEST(h.train.back().loss_scale == t.loss_scale());
}

// Mixed precision: bf16 / fp16 compute over float master weights and float optimizer state.
BOOST_AUTO_TEST_CASE(bf16_compute_trains_like_fp32) {
  auto f = train_small(150);
  auto b = train_small<tfm::test::cfg_gpt2<tfm::bfloat16>>(150);
  BOOST_TEST(b.summary.skipped == 0);
  BOOST_TEST_REQUIRE(b.summary.last_eval.has_value());
  const double lf = f.summary.last_eval->loss, lb = b.summary.last_eval->loss;
  BOOST_TEST_MESSAGE("validation loss after 150 steps: fp32 " << lf << ", bf16 compute " << lb);
  BOOST_TEST(std::abs(lb - lf) <= 0.05 * lf + 0.02);
  // a different run (bf16 rounding), and still deterministic
  BOOST_TEST(std::memcmp(f.weights.data(), b.weights.data(), f.weights.size() * sizeof(float)) != 0);
  auto b2 = train_small<tfm::test::cfg_gpt2<tfm::bfloat16>>(150);
  BOOST_TEST(std::memcmp(b.weights.data(), b2.weights.data(), b.weights.size() * sizeof(float)) == 0);
}

// fp8 block weights (nn::fp8 storage, straight-through to the float master weights) over bf16
// compute: the same validation loss within a few percent.
namespace {
struct fp8_weights_cfg : tfm::test::cfg_gpt2<tfm::bfloat16> {
  using storage = nn::fp8<>;
};
struct lora_bf16_cfg : tfm::test::cfg_gpt2<tfm::bfloat16> {
  using lora = nn::lora::adapters<nn::lora::q | nn::lora::v | nn::lora::up, 4>;
};
// The optimizers without their copy-writing step: the trainer then updates through
// trainable_parameters() and the next forward narrows every parameter.
template <class Base>
struct without_copy : Base {
  using Base::Base;
  void step(std::span<float> p, std::span<const float> g, double lr, double s) { Base::step(p, g, lr, s); }
};

// n optimizer steps on a model of Cfg with sizes d; with_copy: through update_parameters (the
// optimizer writes the compute copy), else through trainable_parameters(). Returns every loss.
template <class Cfg, class Opt>
std::vector<double> steps_on(nn::model<Cfg>& m, Opt& opt, int n, bool with_copy) {
  std::vector<std::int32_t> tok(2 * 16), tgt(tok.size());
  std::vector<double> losses;
  for (int s = 0; s < n; ++s) {
    for (std::size_t i = 0; i < tok.size(); ++i) {
      tok[i] = std::int32_t(tfm::rng::random_u32(3, std::uint64_t(s), i) % std::uint32_t(m.sizes().vocab));
      tgt[i] = std::int32_t(tfm::rng::random_u32(4, std::uint64_t(s), i) % std::uint32_t(m.sizes().vocab));
    }
    m.zero_grad();
    losses.push_back(m.forward_backward(tok.data(), tgt.data(), 2, 16));
    auto g = m.gradients();
    if (with_copy)
      m.update_parameters([&](std::span<float> p, const auto& copy) { opt.step(p, g, 1e-2, 0.5, copy); });
    else
      opt.step(m.trainable_parameters(), g, 1e-2, 0.5);
  }
  losses.push_back(m.forward(tok.data(), tgt.data(), 2, 16));
  return losses;
}

// The compute copy equals the parameters narrowed (what a refresh would write), for every block
// matrix the multiplies read from the copy.
template <class Cfg>
void check_copy_is_current(nn::model<Cfg>& m) {
  for (int l = 0; l < m.sizes().layers; ++l)
    for (auto k :
         {nn::weight_kind::attn_qkv, nn::weight_kind::attn_out, nn::weight_kind::mlp_in, nn::weight_kind::mlp_out}) {
      const auto w = m.effective_weight(l, k);  // skips the refresh: the copy as the optimizer left it
      std::vector<float> p(w.size());
      const auto& all = std::as_const(m).parameters();
      const char* name = k == nn::weight_kind::attn_qkv   ? ".attn.c_attn.weight"
                         : k == nn::weight_kind::attn_out ? ".attn.c_proj.weight"
                         : k == nn::weight_kind::mlp_in   ? ".mlp.c_fc.weight"
                                                          : ".mlp.c_proj.weight";
      const auto& info = m.info("h." + std::to_string(l) + name);
      BOOST_TEST_REQUIRE(info.size == w.size());
      std::size_t bad = 0;
      for (std::size_t i = 0; i < w.size(); ++i) bad += w[i].bits() != tfm::bfloat16(all[info.offset + i]).bits();
      BOOST_TEST(bad == 0u, "layer " << l << name << ": " << bad << " copy elements differ from the parameters");
    }
}
}  // namespace

// The optimizer writing a bf16 model's compute copy block by block (model::update_parameters)
// gives the losses and weights of the plain path, in which every forward narrows the parameters
// again, bit for bit: AdamW and SGD, dense and fp8 block storage (the copy skips the packed
// matrices), LoRA (only the adapters are updated and copied), through the trainer too.
BOOST_AUTO_TEST_CASE(optimizer_writes_the_compute_copy) {
  // 2 layers of d = 64, F = 256 and a 96-token vocabulary: ~115k parameters, several copy blocks
  // per thread, ranges that end inside blocks
  const nn::dims d{96, 16, 64, 2, 4, 4, 256};
  auto compare = [&]<class Cfg, class Opt>(std::type_identity<Cfg>, std::type_identity<Opt>, auto make_opt,
                                           const char* what) {
    nn::model<Cfg> a(d), b(d);
    a.init(5);
    b.init(5);
    Opt oa = make_opt(a), ob = make_opt(b);
    const auto la = steps_on(a, oa, 6, true), lb = steps_on(b, ob, 6, false);
    BOOST_TEST_CONTEXT(what) {
      for (std::size_t i = 0; i < la.size(); ++i) BOOST_TEST(la[i] == lb[i]);
      const auto pa = a.parameters_to_host(), pb = b.parameters_to_host();
      BOOST_TEST(std::memcmp(pa.data(), pb.data(), pa.size() * sizeof(float)) == 0);
      BOOST_TEST(la.front() != la.back());  // the steps changed something
      if constexpr (nn::model<Cfg>::all_dense) check_copy_is_current(a);
    }
  };
  const auto adam = [](auto& m) {
    return tr::adamw<float>(m.num_trainable(), tr::decay_groups(m.parameter_table(), {.weight_decay = 0.1}),
                            {.beta1 = 0.9, .beta2 = 0.99});
  };
  const auto sgd = [](auto& m) {
    return tr::sgd<float>(m.num_trainable(), tr::decay_groups(m.parameter_table(), {.weight_decay = 0.01}),
                          {.momentum = 0.9});
  };
  using bf16_cfg = tfm::test::cfg_gpt2<tfm::bfloat16>;
  compare(std::type_identity<bf16_cfg>{}, std::type_identity<tr::adamw<float>>{}, adam, "bf16 adamw");
  compare(std::type_identity<bf16_cfg>{}, std::type_identity<tr::sgd<float>>{}, sgd, "bf16 sgd");
  compare(std::type_identity<fp8_weights_cfg>{}, std::type_identity<tr::adamw<float>>{}, adam, "fp8 storage adamw");
  compare(std::type_identity<lora_bf16_cfg>{}, std::type_identity<tr::adamw<float>>{}, adam, "lora bf16 adamw");
  {  // the streaming stores that large copies take
    const std::size_t saved = nn::model<bf16_cfg>::stream_copy_min_bytes;
    nn::model<bf16_cfg>::stream_copy_min_bytes = 0;
    compare(std::type_identity<bf16_cfg>{}, std::type_identity<tr::adamw<float>>{}, adam, "bf16 adamw, streaming");
    compare(std::type_identity<bf16_cfg>{}, std::type_identity<tr::sgd<float>>{}, sgd, "bf16 sgd, streaming");
    nn::model<bf16_cfg>::stream_copy_min_bytes = saved;
  }

  // through the trainer: the copy-writing path equals the plain one
  static_assert(tr::trainer<nn::model<bf16_cfg>, tr::adamw<float>, tr::constant_lr>::writes_compute_copy);
  static_assert(
      !tr::trainer<nn::model<bf16_cfg>, without_copy<tr::adamw<float>>, tr::constant_lr>::writes_compute_copy);
  static_assert(!tr::trainer<nn::model<small_cfg>, tr::adamw<float>, tr::constant_lr>::writes_compute_copy);
  auto x = train_small<bf16_cfg>(20), y = train_small<bf16_cfg, without_copy<tr::adamw<float>>>(20);
  BOOST_TEST(std::memcmp(x.weights.data(), y.weights.data(), x.weights.size() * sizeof(float)) == 0);
  BOOST_TEST(x.summary.last_loss == y.summary.last_loss);
  {  // resuming loads the weights (the copy goes stale and is refreshed): still exact
    temp_dir dir;
    train_small<bf16_cfg>(20, dir.path, 10);
    auto resumed = train_small<bf16_cfg>(20, dir.path, -1, true);
    BOOST_TEST(resumed.summary.step == 20);
    BOOST_TEST(std::memcmp(x.weights.data(), resumed.weights.data(), x.weights.size() * sizeof(float)) == 0);
  }

  // writable parameters handed out after an update make the next forward refresh the copy
  nn::model<bf16_cfg> m(d);
  m.init(7);
  auto o = adam(m);
  steps_on(m, o, 1, true);
  const auto before = m.effective_weight(0, nn::weight_kind::attn_qkv);
  m.param("h.0.attn.c_attn.weight")[3] = 0.75f;
  const auto after = m.effective_weight(0, nn::weight_kind::attn_qkv);
  BOOST_TEST(float(after[3]) == 0.75f);
  BOOST_TEST(float(before[3]) != 0.75f);
  // likewise loading weights (checkpoint resume, LoRA merge) and init
  steps_on(m, o, 1, true);
  auto w = m.parameters_to_host();
  const std::size_t at = m.info("h.0.attn.c_attn.weight").offset + 5;
  w[at] = -0.5f;
  m.parameters_from_host(w);
  BOOST_TEST(float(m.effective_weight(0, nn::weight_kind::attn_qkv)[5]) == -0.5f);
  steps_on(m, o, 1, true);
  m.init(7);
  BOOST_TEST(float(m.effective_weight(0, nn::weight_kind::attn_qkv)[5]) ==
             float(tfm::bfloat16(std::as_const(m).parameters()[at])));
}
BOOST_AUTO_TEST_CASE(fp8_weights_train_like_fp32) {
  auto f = train_small(150);
  auto q = train_small<fp8_weights_cfg>(150);
  BOOST_TEST(q.summary.skipped == 0);
  BOOST_TEST_REQUIRE(q.summary.last_eval.has_value());
  const double lf = f.summary.last_eval->loss, lq = q.summary.last_eval->loss;
  BOOST_TEST_MESSAGE("validation loss after 150 steps: fp32 " << lf << ", fp8 weights + bf16 compute " << lq);
  BOOST_TEST(std::abs(lq - lf) <= 0.1 * lf + 0.02);
  BOOST_TEST(std::memcmp(f.weights.data(), q.weights.data(), f.weights.size() * sizeof(float)) != 0);
}

BOOST_AUTO_TEST_CASE(fp16_compute_with_dynamic_loss_scaling) {
  // A scale of 2^24 is harmless in fp32 but overflows fp16 activation gradients (max 65504): the
  // fp16 run skips those steps, backs the scale off and then trains like fp32.
  const tr::loss_scaling big{.enabled = true, .init = 16777216.0, .interval = 50};
  auto f = train_small(150, {}, -1, false, 1, 4, big);
  auto h = train_small<tfm::test::cfg_gpt2<tfm::half>>(150, {}, -1, false, 1, 4, big);
  BOOST_TEST(f.summary.overflows == 0);
  BOOST_TEST(h.summary.overflows >= 1);
  BOOST_TEST(h.summary.skipped == h.summary.overflows);
  BOOST_TEST_REQUIRE(h.summary.last_eval.has_value());
  const double lf = f.summary.last_eval->loss, lh = h.summary.last_eval->loss;
  BOOST_TEST_MESSAGE("validation loss after 150 steps: fp32 " << lf << ", fp16 compute " << lh << " ("
                                                               << h.summary.overflows << " overflowing steps skipped)");
  BOOST_TEST(std::isfinite(lh));
  BOOST_TEST(std::abs(lh - lf) <= 0.05 * lf + 0.03);
}

BOOST_AUTO_TEST_CASE(non_finite_steps_never_reach_the_weights) {
  small_loop l(3, 2, 100);
  auto& m = l.m;
  m.param("wte")[5] = std::numeric_limits<float>::quiet_NaN();  // every batch holding token 5 gives NaN
  const auto before = m.parameters_to_host();
  l.o.max_bad_steps = 4;
  tr::trainer t(m, l.opt, tr::constant_lr{1e-2}, l.train, l.o);
  check_throws_with<tr::training_error>([&] { t.run(); }, "4 steps in a row had a non-finite loss or gradient");
  BOOST_TEST(t.skipped() == 4);
  const auto after = m.parameters_to_host();
  BOOST_TEST(std::memcmp(before.data(), after.data(), before.size() * sizeof(float)) == 0);
}

// A schedule that goes bad (NaN, negative) stops the run at that step, before the step touches
// the model; a NaN clipping norm is refused up front (it would silently mean "no clipping").
BOOST_AUTO_TEST_CASE(bad_learning_rates_stop_the_run_first) {
  small_loop l(3, 2, 10);
  const auto sched = [](std::int64_t step) { return step < 3 ? 1e-3 : -1e-3; };
  tr::trainer t(l.m, l.opt, sched, l.train, l.o);
  for (int i = 0; i < 3; ++i) t.train_step();
  const auto at_3 = l.m.parameters_to_host();
  check_throws_with<tfm::invalid_argument>([&] { t.train_step(); }, "schedule gave -0.001 at step 3");
  BOOST_TEST(t.step() == 3);
  const auto after = l.m.parameters_to_host();
  BOOST_TEST(std::memcmp(at_3.data(), after.data(), after.size() * sizeof(float)) == 0);
  l.o.clip = std::numeric_limits<double>::quiet_NaN();
  check_throws_with<tfm::invalid_argument>([&] { tr::trainer u(l.m, l.opt, tr::constant_lr{1e-3}, l.train, l.o); },
                                           "the clipping norm is NaN");
}

BOOST_AUTO_TEST_CASE(bad_options_are_refused) {
  const auto refused = [](auto set, const std::string& what) {
    small_loop l(3, 2, 10);
    set(l.o);
    check_throws_with<tfm::invalid_argument>([&] { tr::trainer t(l.m, l.opt, tr::constant_lr{1e-3}, l.train, l.o); },
                                             what);
  };
  refused([](tr::train_options& o) { o.eval_batches = 0; }, "eval_batches must be at least 1, got 0");
  refused([](tr::train_options& o) { o.eval_every = -1; }, "eval_every (-1)");
  refused([](tr::train_options& o) { o.checkpoint_every = -3; }, "must not be negative");
  refused([](tr::train_options& o) { o.log_every = -1; }, "must not be negative");
  refused([](tr::train_options& o) { o.grad_accum = 0; }, "grad_accum (0) must be positive");
  small_loop l(3, 2, 10);
  check_throws_with<tfm::invalid_argument>([&] { tr::evaluate(l.m, l.train, 0, 2); }, "got 0 batches of 2");
}

BOOST_AUTO_TEST_CASE(interrupt_flag_checkpoints_and_stops) {
  temp_dir d;
  small_loop l(3, 2, 100);
  std::atomic<bool> stop{true};
  l.o.out_dir = d.path;
  l.o.interrupt = &stop;
  tr::trainer t(l.m, l.opt, tr::constant_lr{1e-3}, l.train, l.o);
  auto s = t.run();
  BOOST_TEST(s.interrupted);
  BOOST_TEST(s.step == 1);
  BOOST_TEST(fs::exists(d.path / "checkpoints" / "step-00000001" / "manifest.json"));
}

BOOST_AUTO_TEST_CASE(instruction_data_trains_and_resumes_exactly) {
  // prompt: a letter twice; response: the letter three places on, twice (byte ids mod 15)
  temp_dir d;
  {
    std::ofstream f(d.path / "sft.jsonl");
    for (int i = 0; i < 60; ++i) {
      const char p = char('a' + i % 10), r = char('a' + (i + 3) % 10);
      f << "{\"prompt\": \"" << p << p << "\", \"response\": \"" << r << r << "\"}\n";
    }
  }
  auto enc = [](std::string_view t) {
    std::vector<std::uint32_t> v;
    for (unsigned char c : t) v.push_back(c % 15);
    return v;
  };
  tr::instruction_dataset data(d.path / "sft.jsonl", enc, {.context = 8, .eot_id = 15, .vocab_size = 16});
  auto run = [&](std::int64_t steps, const fs::path& out, std::int64_t stop, bool resume, double* before) {
    nn::model<small_cfg> m(small_dims());
    m.init(4);
    tr::adamw<float> opt(m.num_trainable(), tr::decay_groups(m.parameter_table(), {}));
    tr::instruction_batches train(data, 6, 9, 0, 50);  // examples 50..59 validate
    tr::train_options o;
    o.batch = 8;
    o.steps = steps;
    o.out_dir = out;
    o.stop_after = stop;
    o.show_progress = false;
    tr::trainer t(m, opt, tr::constant_lr{3e-3}, train, o);
    t.set_evaluator([&](std::int64_t step) {
      tr::eval_metrics e;
      e.step = step;
      e.loss = tr::instruction_loss(m, data, 8, 6, 50, 60);
      return e;
    });
    if (before) *before = tr::instruction_loss(m, data, 8, 6, 50, 60);
    if (resume) t.resume();
    auto s = t.run();
    return std::make_pair(m.parameters_to_host(), s);
  };
  double before = 0;
  temp_dir a, b;
  auto [w_full, s_full] = run(40, a.path, -1, false, &before);
  BOOST_TEST_REQUIRE(s_full.last_eval.has_value());
  BOOST_TEST(s_full.last_eval->loss < 0.5 * before);  // the responses are learnt
  run(40, b.path, 15, false, nullptr);
  auto [w_res, s_res] = run(40, b.path, -1, true, nullptr);
  BOOST_TEST(s_res.step == 40);
  BOOST_TEST(std::memcmp(w_full.data(), w_res.data(), w_full.size() * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_SUITE_END()

// ---- where the trainer's features meet ----
// Exact resume, accumulation, loss scaling, the compute copy, LoRA, schedules, optimizers,
// evaluators and checkpoint rotation in combinations the cases above take one at a time.
namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The first tensor (by the parameter table) where two weight vectors differ, for messages.
template <class Cfg>
std::string first_difference(const std::vector<float>& a, const std::vector<float>& b) {
  nn::model<Cfg> m(small_dims());
  for (auto const& p : m.parameter_table())
    for (std::size_t e = 0; e < p.size; ++e)
      if (std::memcmp(&a[p.offset + e], &b[p.offset + e], sizeof(float)) != 0)
        return tfm::detail::concat(p.name, "[", e, "]: ", a[p.offset + e], " vs ", b[p.offset + e]);
  return "none";
}

// Runs p to the end in one go and again stopped after `stop` then resumed (fresh objects, as a
// new process would), and checks that weights, optimizer state, counters and loss scale agree bit
// for bit.
template <class Cfg, class Opt, class Sched = tr::warmup_cosine>
void check_resume_is_exact(
    probe_options p, std::int64_t stop, typename Opt::options oo,
    Sched sched = tr::warmup_cosine{.max_lr = 3e-3, .min_lr = 3e-4, .warmup = 3, .decay_end = 12},
    const probe_result* full_in = nullptr) {
  temp_dir d1, d2;
  p.out = d1.path;
  const probe_result full = full_in ? *full_in : probe_run<Cfg, Opt>(p, oo, sched);
  p.out = d2.path;
  p.stop_after = stop;
  const auto first = probe_run<Cfg, Opt>(p, oo, sched);
  BOOST_TEST_REQUIRE(first.summary.step == stop);
  p.stop_after = -1;
  p.resume = true;
  const auto second = probe_run<Cfg, Opt>(p, oo, sched);
  BOOST_TEST_CONTEXT("stopped after step " << stop) {
    BOOST_TEST(second.summary.step == p.steps);
    BOOST_TEST(same_bits(full.weights, second.weights),
               "first difference: " << first_difference<Cfg>(full.weights, second.weights));
    BOOST_TEST(full.optimizer_steps == second.optimizer_steps);
    BOOST_TEST_REQUIRE(full.optimizer_state.size() == second.optimizer_state.size());
    for (auto const& [k, v] : full.optimizer_state)
      BOOST_TEST(same_bits(v, second.optimizer_state.at(k)), "optimizer." << k);
    BOOST_TEST(full.summary.skipped == second.summary.skipped);
    BOOST_TEST(full.summary.overflows == second.summary.overflows);
    BOOST_TEST(full.loss_scale == second.loss_scale);
    BOOST_TEST(full.summary.last_loss == second.summary.last_loss);
  }
}

// Steps (1-based counts, as the metrics log numbers them) at which the scale overflowed and grew.
struct scale_events {
  std::vector<std::int64_t> overflow, growth;
};
scale_events scale_history(const fs::path& out) {
  const auto h = tr::metrics_log::read(out / "metrics.jsonl");
  scale_events e;
  std::int64_t of = 0;
  double scale = 0;
  for (auto const& s : h.train) {
    if (s.overflows > of)
      e.overflow.push_back(s.step);
    else if (scale > 0 && s.loss_scale > scale)
      e.growth.push_back(s.step);
    of = s.overflows;
    scale = s.loss_scale;
  }
  return e;
}

const tr::adamw<float>::options adam_opts{.beta1 = 0.9, .beta2 = 0.99};

struct drop_lora_policy : nn::lora::adapters<nn::lora::qkv | nn::lora::o | nn::lora::up | nn::lora::down, 4> {
  static constexpr double dropout = 0.1;
};
struct lora_drop_bf16_cfg : tfm::test::cfg_gpt2<tfm::bfloat16> {
  using lora = drop_lora_policy;
};
struct untied_bf16_cfg : tfm::test::cfg_untied<tfm::bfloat16> {};

}  // namespace

BOOST_AUTO_TEST_SUITE(interactions)

// bf16 compute, dynamic loss scaling and two micro-batches per step: a scale above float's range
// overflows (the step is skipped, the scale backs off by 2^-8), three clean steps grow it back
// (x2^8) into overflow again. Stopped right after an overflow, right after a growth and at the
// last overflow, the resumed run is the uninterrupted one bit for bit; and the copy-writing
// optimizer equals the plain one through all of it.
BOOST_AUTO_TEST_CASE(bf16_scaled_accumulated_resume_across_overflows) {
  using cfg = tfm::test::cfg_gpt2<tfm::bfloat16>;
  probe_options p;
  p.steps = 12;
  p.accum = 2;
  p.scaling = {.enabled = true, .init = std::ldexp(1.0, 132), .growth = 256, .backoff = 1.0 / 256, .interval = 3};
  temp_dir d;
  p.out = d.path;
  const auto full = probe_run<cfg, tr::adamw<float>>(p, adam_opts);
  const auto ev = scale_history(d.path);
  BOOST_TEST_MESSAGE("bf16 + scaling + accumulation: overflows at steps " <<
                     [&] {
                       std::string s;
                       for (auto x : ev.overflow) s += std::to_string(x) + " ";
                       return s;
                     }() << ", growth at " << (ev.growth.empty() ? -1 : ev.growth.front())
                                                                          << ", final scale " << full.loss_scale);
  BOOST_TEST_REQUIRE(ev.overflow.size() >= 2u);
  BOOST_TEST_REQUIRE(!ev.growth.empty());
  BOOST_TEST(full.summary.overflows == std::int64_t(ev.overflow.size()));
  BOOST_TEST(full.summary.skipped == full.summary.overflows);
  // right after an overflow (scale just backed off), one clean step later (a partial count toward
  // growth), right after a growth, right after the last overflow
  for (std::int64_t stop : {ev.overflow.front(), ev.overflow.front() + 1, ev.growth.front(), ev.overflow.back()})
    if (stop < p.steps)
      check_resume_is_exact<cfg, tr::adamw<float>>(
          p, stop, adam_opts, tr::warmup_cosine{.max_lr = 3e-3, .min_lr = 3e-4, .warmup = 3, .decay_end = 12}, &full);
  p.out.clear();
  const auto plain = probe_run<cfg, loop::without_copy<tr::adamw<float>>>(p, adam_opts);
  BOOST_TEST(same_bits(full.weights, plain.weights),
             "copy-writing vs plain: " << first_difference<cfg>(full.weights, plain.weights));
  BOOST_TEST(full.summary.overflows == plain.summary.overflows);
}

// fp16 compute at 2^24 (fp16 activation gradients overflow, not the float ones): the same, with
// SGD (its compute copy written block by block after the update).
BOOST_AUTO_TEST_CASE(fp16_scaled_accumulated_resume_with_sgd) {
  using cfg = tfm::test::cfg_gpt2<tfm::half>;
  using sgd = tr::sgd<float>;
  probe_options p;
  p.steps = 12;
  p.accum = 2;
  p.weight_decay = 0.01;
  p.scaling = {.enabled = true, .init = 16777216.0, .interval = 3};
  temp_dir d;
  p.out = d.path;
  const sgd::options so{.momentum = 0.9};
  const tr::constant_lr lr{0.05};
  const auto full = probe_run<cfg, sgd>(p, so, lr);
  const auto ev = scale_history(d.path);
  BOOST_TEST_MESSAGE("fp16 + scaling: " << full.summary.overflows << " overflows, first at "
                                        << (ev.overflow.empty() ? -1 : ev.overflow.front()) << ", final scale "
                                        << full.loss_scale);
  BOOST_TEST_REQUIRE(!ev.overflow.empty());
  check_resume_is_exact<cfg, sgd>(p, ev.overflow.front(), so, lr, &full);
  p.out.clear();
  const auto plain = probe_run<cfg, loop::without_copy<sgd>>(p, so, lr);
  BOOST_TEST(same_bits(full.weights, plain.weights),
             "copy-writing vs plain: " << first_difference<cfg>(full.weights, plain.weights));
}

// A LoRA fine-tune in bf16 with adapter dropout and two micro-batches: resume restores adapters
// and optimizer state exactly, the frozen base never moves (in either run), the optimizer state
// covers only the adapters, the copy-writing path equals the plain one, and two runs agree.
BOOST_AUTO_TEST_CASE(lora_bf16_dropout_accumulated_resume) {
  using cfg = lora_drop_bf16_cfg;
  probe_options p;
  p.steps = 10;
  p.accum = 2;
  p.dropout_seed = 77;
  p.weight_decay = 0.0;
  temp_dir d;
  p.out = d.path;
  const auto full = probe_run<cfg, tr::adamw<float>>(p, adam_opts);
  check_resume_is_exact<cfg, tr::adamw<float>>(
      p, 4, adam_opts, tr::warmup_cosine{.max_lr = 3e-3, .min_lr = 3e-4, .warmup = 3, .decay_end = 12}, &full);
  nn::model<cfg> m0(small_dims());
  m0.init(11);
  const auto init = m0.parameters_to_host();
  std::size_t adapters_moved = 0, base_moved = 0;
  for (auto const& pi : m0.parameter_table())
    for (std::size_t e = 0; e < pi.size; ++e) {
      const bool moved = full.weights[pi.offset + e] != init[pi.offset + e];
      (pi.trainable ? adapters_moved : base_moved) += moved;
    }
  BOOST_TEST(base_moved == 0u);
  BOOST_TEST(adapters_moved > 0u);
  BOOST_TEST(full.optimizer_state.at("exp_avg").size() == m0.num_trainable());
  BOOST_TEST(m0.num_trainable() < m0.num_parameters() / 2);
  p.out.clear();
  const auto again = probe_run<cfg, tr::adamw<float>>(p, adam_opts);
  BOOST_TEST(same_bits(full.weights, again.weights));
  const auto plain = probe_run<cfg, loop::without_copy<tr::adamw<float>>>(p, adam_opts);
  BOOST_TEST(same_bits(full.weights, plain.weights),
             "copy-writing vs plain: " << first_difference<cfg>(full.weights, plain.weights));
  // the adapters of the resumed run go through PEFT files and back, onto the same base
  temp_dir a;
  nn::model<cfg> r(small_dims());
  r.parameters_from_host(full.weights);
  tr::save_adapters(r, a.path);
  nn::model<cfg> fresh(small_dims());
  fresh.init(11);
  tr::load_adapters(fresh, a.path);
  BOOST_TEST(same_bits(fresh.parameters_to_host(), full.weights));
}

// Warm-up, stable and decay phases of warmup_stable_decay: stopped at the end of warm-up, at the
// end of the stable stretch and one step into the decay, the resumed runs are exact.
BOOST_AUTO_TEST_CASE(resume_across_wsd_phase_boundaries) {
  const tr::warmup_stable_decay wsd{.max_lr = 4e-3,
                                    .min_lr = 1e-4,
                                    .warmup = 3,
                                    .stable = 4,
                                    .decay = 5,
                                    .decay_shape = tr::warmup_stable_decay::shape::one_minus_sqrt};
  probe_options p;
  p.steps = 13;  // one step past the decay's end (min_lr)
  temp_dir d;
  p.out = d.path;
  const auto full = probe_run<small_cfg, tr::adamw<float>>(p, adam_opts, wsd);
  for (std::int64_t stop : {3, 7, 8, 12})
    check_resume_is_exact<small_cfg, tr::adamw<float>>(p, stop, adam_opts, wsd, &full);
}

// SGD with momentum, with Nesterov, in bf16 compute, and without momentum (no state arrays at
// all): exact resume.
BOOST_AUTO_TEST_CASE(resume_with_sgd_variants) {
  using sgd = tr::sgd<float>;
  probe_options p;
  p.steps = 10;
  p.weight_decay = 0.01;
  const tr::constant_lr lr{0.05};
  check_resume_is_exact<small_cfg, sgd>(p, 4, {.momentum = 0.9}, lr);
  check_resume_is_exact<small_cfg, sgd>(p, 4, {.momentum = 0.9, .nesterov = true}, lr);
  check_resume_is_exact<tfm::test::cfg_gpt2<tfm::bfloat16>, sgd>(p, 4, {.momentum = 0.8, .nesterov = true}, lr);
  p.accum = 2;
  check_resume_is_exact<small_cfg, sgd>(p, 5, {.momentum = 0.0}, lr);
  // the momentum-free run writes no optimizer arrays, and resumes
  temp_dir d;
  p.out = d.path;
  p.stop_after = 3;
  probe_run<small_cfg, sgd>(p, {.momentum = 0.0}, lr);
  nn::model<small_cfg> m(small_dims());
  const auto st = tr::checkpoint_dir::load(d.path / "checkpoints" / "step-00000003", m);
  BOOST_TEST(st.arrays.empty());
  BOOST_TEST(st.fields.at("optimizer_steps") == "3");
}

// A checkpoint of the last step: resuming from it leaves nothing to do. run() trains no step,
// evaluates nothing, writes no checkpoint and no metrics line, and the weights stay.
BOOST_AUTO_TEST_CASE(resume_from_the_last_step_does_nothing_more) {
  temp_dir d;
  probe_options p;
  p.steps = 6;
  p.out = d.path;
  p.evaluator = true;
  const auto full = probe_run<small_cfg, tr::adamw<float>>(p, adam_opts);
  BOOST_TEST(full.eval_steps == (std::vector<std::int64_t>{6}), boost::test_tools::per_element());
  const auto metrics_lines = [&] {
    std::ifstream f(d.path / "metrics.jsonl");
    return std::count(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>(), '\n');
  };
  const auto lines = metrics_lines();
  const auto written = fs::last_write_time(d.path / "checkpoints" / "step-00000006" / "manifest.json");
  p.resume = true;
  const auto again = probe_run<small_cfg, tr::adamw<float>>(p, adam_opts);
  BOOST_TEST(again.summary.step == 6);
  BOOST_TEST(same_bits(full.weights, again.weights));
  BOOST_TEST(again.eval_steps.empty());
  BOOST_TEST(!again.summary.last_eval.has_value());
  BOOST_TEST(std::isnan(again.summary.last_loss));
  BOOST_TEST(again.optimizer_steps == 6);
  BOOST_TEST(metrics_lines() == lines);
  BOOST_TEST(tr::checkpoint_dir(d.path / "checkpoints").list().size() == 1u);
  BOOST_TEST((fs::last_write_time(d.path / "checkpoints" / "step-00000006" / "manifest.json") == written));
}

// stop_after at the last step: every step is done, so the run ends like a complete one (the
// final evaluation included), and its checkpoint is the complete run's.
BOOST_AUTO_TEST_CASE(stop_after_the_last_step_is_a_complete_run) {
  temp_dir d1, d2;
  probe_options p;
  p.steps = 6;
  p.evaluator = true;
  p.out = d1.path;
  const auto full = probe_run<small_cfg, tr::adamw<float>>(p, adam_opts);
  p.out = d2.path;
  p.stop_after = 6;
  const auto stopped = probe_run<small_cfg, tr::adamw<float>>(p, adam_opts);
  BOOST_TEST(same_bits(full.weights, stopped.weights));
  BOOST_TEST(stopped.summary.step == 6);
  BOOST_TEST(!stopped.summary.interrupted);
  BOOST_TEST(stopped.eval_steps == full.eval_steps, boost::test_tools::per_element());
  BOOST_TEST(stopped.summary.last_eval.has_value());
  // likewise an interrupt that arrives during the last step: nothing is left to continue
  small_loop l(3, 2, 1);
  std::atomic<bool> stop{true};
  l.o.interrupt = &stop;
  tr::trainer t(l.m, l.opt, tr::constant_lr{1e-3}, l.train, l.o);
  int evaluations = 0;
  t.set_evaluator([&](std::int64_t step) {
    ++evaluations;
    return tr::eval_metrics{.step = step};
  });
  const auto s = t.run();
  BOOST_TEST(s.step == 1);
  BOOST_TEST(!s.interrupted);
  BOOST_TEST(evaluations == 1);
}

// set_evaluator: called every eval_every steps and once at the end (not twice at the last
// step); evaluating (in evaluation mode: no adapter dropout) changes nothing in training, and a
// run stopped at an evaluation step and resumed evaluates at the uninterrupted run's steps.
BOOST_AUTO_TEST_CASE(evaluator_steps_and_no_effect_on_training) {
  using cfg = lora_drop_bf16_cfg;
  probe_options p;
  p.steps = 10;
  p.eval_every = 3;
  p.dropout_seed = 5;
  p.accum = 2;
  p.evaluator = true;
  const auto with = probe_run<cfg, tr::adamw<float>>(p, adam_opts);
  BOOST_TEST(with.eval_steps == (std::vector<std::int64_t>{3, 6, 9, 10}), boost::test_tools::per_element());
  BOOST_TEST_REQUIRE(with.summary.last_eval.has_value());
  BOOST_TEST(with.summary.last_eval->step == 10);
  p.eval_every = 0;
  const auto without = probe_run<cfg, tr::adamw<float>>(p, adam_opts);
  BOOST_TEST(without.eval_steps == (std::vector<std::int64_t>{10}), boost::test_tools::per_element());
  BOOST_TEST(same_bits(with.weights, without.weights),
             "evaluation changed training: " << first_difference<cfg>(with.weights, without.weights));
  temp_dir d;
  p.eval_every = 3;
  p.out = d.path;
  p.stop_after = 6;
  const auto first = probe_run<cfg, tr::adamw<float>>(p, adam_opts);
  p.stop_after = -1;
  p.resume = true;
  const auto second = probe_run<cfg, tr::adamw<float>>(p, adam_opts);
  BOOST_TEST(first.eval_steps == (std::vector<std::int64_t>{3, 6}), boost::test_tools::per_element());
  BOOST_TEST(second.eval_steps == (std::vector<std::int64_t>{9, 10}), boost::test_tools::per_element());
  BOOST_TEST(same_bits(with.weights, second.weights));
  BOOST_TEST(second.summary.last_eval->loss == with.summary.last_eval->loss);
}

// keep_last during a resumed run: the rotation goes on across the stop (the stop's checkpoint
// is pruned in its turn), and the newest is the final step's.
BOOST_AUTO_TEST_CASE(keep_last_rotates_across_a_resume) {
  temp_dir d;
  probe_options p;
  p.steps = 12;
  p.checkpoint_every = 2;
  p.keep_last = 2;
  p.out = d.path;
  p.stop_after = 5;
  probe_run<small_cfg, tr::adamw<float>>(p, adam_opts);
  const tr::checkpoint_dir cd(d.path / "checkpoints", 2);
  auto names = [&] {
    std::vector<std::string> v;
    for (auto const& x : cd.list()) v.push_back(x.filename().string());
    return v;
  };
  BOOST_TEST(names() == (std::vector<std::string>{"step-00000004", "step-00000005"}), boost::test_tools::per_element());
  p.stop_after = -1;
  p.resume = true;
  const auto resumed = probe_run<small_cfg, tr::adamw<float>>(p, adam_opts);
  BOOST_TEST(names() == (std::vector<std::string>{"step-00000010", "step-00000012"}), boost::test_tools::per_element());
  for (auto const& e : fs::directory_iterator(d.path / "checkpoints"))
    BOOST_TEST(e.path().filename().string()[0] != '.');
  nn::model<small_cfg> m(small_dims());
  tr::checkpoint_dir::load(*cd.latest(), m);
  BOOST_TEST(same_bits(m.parameters_to_host(), resumed.weights));
}

// A run resumed from an older checkpoint than the newest in its directory (a branch: resume(dir)
// with the stale run's later checkpoints still there): the checkpoint just written is never the
// one rotation removes, and save_checkpoint's directory exists.
BOOST_AUTO_TEST_CASE(keep_last_keeps_the_checkpoint_just_written) {
  temp_dir d;
  probe_options p;
  p.steps = 12;
  p.checkpoint_every = 4;
  p.keep_last = 2;
  p.out = d.path;
  probe_run<small_cfg, tr::adamw<float>>(p, adam_opts);  // leaves step 8 and step 12
  const auto root = d.path / "checkpoints";
  BOOST_TEST_REQUIRE(fs::exists(root / "step-00000008"));
  p.keep_last = 1;
  p.resume = true;
  p.resume_from = root / "step-00000008";
  p.stop_after = 10;
  const auto branch = probe_run<small_cfg, tr::adamw<float>>(p, adam_opts);
  BOOST_TEST(branch.summary.step == 10);
  BOOST_TEST(fs::exists(root / "step-00000010" / "manifest.json"), "the step-10 checkpoint of the branch was pruned");
  if (fs::exists(root / "step-00000010")) {
    nn::model<small_cfg> m(small_dims());
    tr::checkpoint_dir::load(root / "step-00000010", m);
    BOOST_TEST(same_bits(m.parameters_to_host(), branch.weights));
  }
}

// Thread count changed between the stop and the resume: not promised to be exact (determinism is
// per thread count), so what the resumed run gives is reported, not asserted beyond rounding. A
// model of ~115k parameters, so that the gradient norm and the optimizer split their work over
// the threads (from 2^15 elements); clipping at 0.05 makes the norm's rounding reach the weights.
BOOST_AUTO_TEST_CASE(resume_with_another_thread_count) {
  probe_options p;
  p.steps = 6;
  p.batch = 4;
  p.dims = nn::dims{96, 16, 64, 2, 4, 4, 256};
  p.clip = 0.05;
  const auto run = [&](int threads_before, int threads_after, std::int64_t stop) {
    temp_dir d;
    probe_options q = p;
    q.out = d.path;
    q.stop_after = stop;
    {
      tfm::host::scoped_num_threads t(threads_before);
      probe_run<small_cfg, tr::adamw<float>>(q, adam_opts);
    }
    q.stop_after = -1;
    q.resume = true;
    tfm::host::scoped_num_threads t(threads_after);
    return probe_run<small_cfg, tr::adamw<float>>(q, adam_opts);
  };
  const auto one = run(1, 1, 3), two = run(2, 2, 3), mixed = run(2, 1, 3);
  BOOST_TEST(mixed.summary.step == 6);
  double worst = 0;
  for (std::size_t i = 0; i < two.weights.size(); ++i)
    worst = std::max(worst, double(std::abs(mixed.weights[i] - two.weights[i])));
  BOOST_TEST_MESSAGE("threads: 1-thread run == 2-thread run: "
                     << same_bits(one.weights, two.weights) << "; 2 threads then 1 (resumed) == 2-thread run: "
                     << same_bits(mixed.weights, two.weights) << " (largest difference " << worst
                     << "); == 1-thread run: " << same_bits(mixed.weights, one.weights));
  BOOST_TEST(worst < 1e-4);  // rounding only
}

BOOST_AUTO_TEST_SUITE_END()

namespace {
// Random windows with only a leading part of each window's targets supervised (the rest
// ignore_index), as instruction data has: micro-batches hold different numbers of counted targets.
struct masked_source {
  tr::batch_source src;
  int seq_len() const { return src.seq_len(); }
  std::uint64_t position() const { return src.position(); }
  void set_position(std::uint64_t p) { src.set_position(p); }
  void next(int B, std::span<std::int32_t> tok, std::span<std::int32_t> tgt) {
    const std::uint64_t at = src.position();
    src.next(B, tok, tgt);
    const int T = src.seq_len();
    for (int b = 0; b < B; ++b) {
      const int keep = 1 + int(tfm::rng::random_u32(8, 0, at + std::uint64_t(b)) % std::uint32_t(T));
      for (int t = keep; t < T; ++t) tgt[std::size_t(b) * T + t] = nn::ignore_index;
    }
  }
};

// Random windows without token 5, except one position of the micro-batches that start at the
// given windows: with wte[5] NaN (an untied model) exactly those micro-batches give a NaN loss.
struct poisoned_source {
  tr::batch_source src;
  std::vector<std::uint64_t> poison;
  int seq_len() const { return src.seq_len(); }
  std::uint64_t position() const { return src.position(); }
  void set_position(std::uint64_t p) { src.set_position(p); }
  void next(int B, std::span<std::int32_t> tok, std::span<std::int32_t> tgt) {
    const std::uint64_t at = src.position();
    src.next(B, tok, tgt);
    for (auto& t : tok)
      if (t == 5) t = 6;
    if (std::find(poison.begin(), poison.end(), at) != poison.end()) tok[1] = 5;
  }
};
}  // namespace

BOOST_AUTO_TEST_SUITE(interactions_data)

// Two micro-batches of 2 against one batch of 4 when targets are partly ignored: the step must
// follow the mean over all counted targets of the 4 windows (what one batch computes), not the
// mean of the two micro-batches' means. One SGD step at lr 1 without momentum, decay or clipping
// exposes the gradient itself.
BOOST_AUTO_TEST_CASE(accumulation_with_ignored_targets_equals_a_bigger_batch) {
  auto c = tr::token_corpus::from_tokens(pattern_tokens(4000), 4000, 16);
  const auto step = [&](int accum, int batch, double* loss) {
    nn::model<small_cfg> m(small_dims());
    m.init(11);
    tr::sgd<float> opt(m.num_trainable(), tr::decay_groups(m.parameter_table(), {.weight_decay = 0.0}),
                       {.momentum = 0.0});
    masked_source src{tr::batch_source(c, tr::split{0, c.size()}, 12, tr::sampling::random_windows, 3)};
    tr::train_options o;
    o.batch = batch;
    o.grad_accum = accum;
    o.steps = 1;
    o.clip = 0;
    o.show_progress = false;
    const auto before = m.parameters_to_host();
    tr::trainer t(m, opt, tr::constant_lr{1.0}, src, o);
    *loss = t.train_step();
    auto after = m.parameters_to_host();
    for (std::size_t i = 0; i < after.size(); ++i) after[i] -= before[i];
    return after;
  };
  double la = 0, lb = 0;
  const auto a = step(2, 2, &la), b = step(1, 4, &lb);
  double diff = 0, norm = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    diff += double(a[i] - b[i]) * double(a[i] - b[i]);
    norm += double(b[i]) * double(b[i]);
  }
  const double rel = std::sqrt(diff / norm);
  BOOST_TEST_MESSAGE("accumulated vs one batch, ignored targets: relative update difference " << rel << ", loss " << la
                                                                                              << " vs " << lb);
  BOOST_TEST(rel < 1e-5);
  BOOST_TEST(la == lb, boost::test_tools::tolerance(1e-6));
}

// A NaN loss in the second micro-batch (the first one's gradients already accumulated) or in
// the first one (the second one's backward then overwrites lazily zeroed gradients): the step is
// skipped without touching the weights or the optimizer's step count, the loss scale does not
// back off (a NaN loss is not an overflow), and nothing of it is left for the next step: the run
// continued equals one resumed from a checkpoint right after the skipped step (fresh gradients).
BOOST_AUTO_TEST_CASE(nan_micro_batch_skips_the_step_and_leaves_no_trace) {
  const auto check = [&]<class Cfg>(std::type_identity<Cfg>, const char* what) {
    auto c = tr::token_corpus::from_tokens(pattern_tokens(4000), 4000, 16);
    // batch 2, two micro-batches: step s (0-based) draws windows 4s .. 4s+3; poison step 2's
    // second micro-batch (window 10) and step 4's first (window 16)
    const std::vector<std::uint64_t> poison{10, 16};
    auto run = [&](const fs::path& out, std::int64_t stop, bool resume, std::vector<int>* skipped_at) {
      nn::model<Cfg> m(small_dims());
      m.init(11);
      m.param("wte")[5 * 16 + 3] = std::numeric_limits<float>::quiet_NaN();
      tr::adamw<float> opt(m.num_trainable(), tr::decay_groups(m.parameter_table(), {.weight_decay = 0.1}), adam_opts);
      poisoned_source src{tr::batch_source(c, tr::split{0, c.size()}, 12, tr::sampling::random_windows, 3), poison};
      tr::train_options o;
      o.batch = 2;
      o.grad_accum = 2;
      o.steps = 8;
      o.out_dir = out;
      o.stop_after = stop;
      o.show_progress = false;
      o.scaling = {.enabled = true, .init = 1024, .interval = 1000};
      tr::trainer t(m, opt, tr::constant_lr{3e-3}, src, o);
      if (resume) t.resume();
      if (skipped_at) {  // step by step, watching the weights
        while (t.step() < o.steps) {
          const auto w = m.parameters_to_host();
          const auto n = opt.steps_taken();
          const double l = t.train_step();
          if (std::isnan(l)) {
            skipped_at->push_back(int(t.step()));
            BOOST_TEST(same_bits(w, m.parameters_to_host()));
            BOOST_TEST(opt.steps_taken() == n);
          }
          BOOST_TEST(t.loss_scale() == 1024.0);
          BOOST_TEST(t.overflows() == 0);
        }
      } else {
        t.run();
      }
      return m.parameters_to_host();
    };
    BOOST_TEST_CONTEXT(what) {
      std::vector<int> skipped;
      const auto stepped = run({}, -1, false, &skipped);
      BOOST_TEST(skipped == (std::vector<int>{3, 5}), boost::test_tools::per_element());
      temp_dir d1, d2;
      const auto full = run(d1.path, -1, false, nullptr);
      BOOST_TEST(same_bits(stepped, full));
      run(d2.path, 3, false, nullptr);  // checkpoint right after the step whose second micro-batch was NaN
      const auto resumed = run(d2.path, -1, true, nullptr);
      BOOST_TEST(same_bits(full, resumed), "first difference: " << first_difference<Cfg>(full, resumed));
      temp_dir d3;
      run(d3.path, 5, false, nullptr);  // right after the one whose first micro-batch was NaN
      BOOST_TEST(same_bits(full, run(d3.path, -1, true, nullptr)));
    }
  };
  check(std::type_identity<tfm::test::cfg_untied<float>>{}, "fp32");
  check(std::type_identity<untied_bf16_cfg>{}, "bf16");
}

BOOST_AUTO_TEST_SUITE_END()
