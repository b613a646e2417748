// The trainer on a cuda-space model with the CUDA optimizers: ten steps equal the host trainer's
// (same data, same initial weights) to fp32 tolerance, a checkpoint taken on the GPU resumes on
// the GPU to the same weights as an uninterrupted run (within the tolerance that the CUDA
// kernels' atomics leave), and a non-finite step is skipped; a LoRA fine-tune (adapters with
// dropout) on the GPU follows the host's. Exits 77 without a CUDA device.
#include "tfm/nn/model.cuh"
#include "tfm/train/optim_cuda.cuh"

#define TFM_TEST_MODULE test_trainer_cuda
#define TFM_TEST_NEEDS_CUDA
#include "support/test_main.hpp"

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "nn/model_configs.hpp"
#include "tfm/train/trainer.hpp"

namespace fs = std::filesystem;
namespace nn = tfm::nn;
namespace tr = tfm::train;

namespace {
using cfg = tfm::test::cfg_gpt2<float>;
const nn::dims dims{16, 16, 32, 2, 2, 2, 64};

std::vector<std::uint32_t> pattern(std::size_t n) {
  std::vector<std::uint32_t> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = std::uint32_t(i % 10 + (i % 97 == 7 ? 5 : 0)) % 16;
  return v;
}

// Trains m with opt for `steps` steps on the pattern corpus (batches of 4 × 16 tokens, warm-up +
// cosine 3e-3 → 3e-4); o gives the other options. Returns all the weights afterwards.
template <class M, class Opt>
std::vector<float> train_on_pattern(M& m, Opt& opt, std::int64_t steps, tr::train_options o, bool resume = false) {
  auto c = tr::token_corpus::from_tokens(pattern(4000), 4000, 16);
  tr::batch_source train(c, tr::split{0, 3600}, 16, tr::sampling::random_windows, 3);
  o.batch = 4;
  o.steps = steps;
  o.show_progress = false;
  tr::trainer t(m, opt, tr::warmup_cosine{3e-3, 3e-4, 2, steps}, train, o);
  if (resume) t.resume();
  t.run();
  return m.parameters_to_host();
}

template <class Space, class Opt, class Cfg = cfg>
std::vector<float> run(std::int64_t steps, const fs::path& out = {}, std::int64_t stop = -1, bool resume = false) {
  nn::model<Cfg, Space> m(dims);
  m.init(5);
  Opt opt(m.num_trainable(), tr::decay_groups(m.parameter_table(), {.weight_decay = 0.1}), {.beta1 = 0.9, .beta2 = 0.99});
  tr::train_options o;
  o.out_dir = out;
  o.stop_after = stop;
  return train_on_pattern(m, opt, steps, o, resume);
}

// LoRA fine-tune (nn::lora adapters on q, v, o and down, rank 4): the trainer drives the adapter
// tail (trainable_parameters(), gradients()); returns all the weights after `steps` steps.
struct lora_policy : nn::lora::adapters<nn::lora::q | nn::lora::v | nn::lora::o | nn::lora::down, 4> {
  static constexpr double dropout = 0.1;
};
using lora_cfg = tfm::test::with_lora<cfg, lora_policy>;
template <class Space, class Opt>
std::vector<float> run_lora(std::int64_t steps, std::size_t* trainable = nullptr) {
  nn::model<lora_cfg, Space> m(dims);
  m.init(5);
  if (trainable) *trainable = m.num_trainable();
  Opt opt(m.num_trainable(), tr::decay_groups(m.parameter_table(), {.weight_decay = 0.0}), {.beta1 = 0.9, .beta2 = 0.99});
  tr::train_options o;
  o.dropout_seed = 1234;
  return train_on_pattern(m, opt, steps, o);
}

double worst_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double w = 0;
  for (std::size_t i = 0; i < a.size(); ++i) w = std::max(w, double(std::abs(a[i] - b[i])));
  return w;
}

struct temp_dir {
  fs::path path = fs::temp_directory_path() / ("tfm_test_trainer_cuda_" + std::to_string(::getpid()) + "_" +
                                               std::to_string(counter++));
  static inline int counter = 0;
  temp_dir() { fs::create_directories(path); }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};
}  // namespace

BOOST_AUTO_TEST_CASE(cuda_training_equals_host_training) {
  const auto host = run<tfm::space::host, tr::adamw<float>>(10);
  const auto dev = run<tfm::space::cuda, tr::cuda_adamw<float>>(10);
  BOOST_TEST(worst_diff(host, dev) < 1e-4);
}

// bf16 compute over float weights (mixed precision): the device run follows the host's. AdamW
// moves a weight whose gradient is near zero by about ±lr either way, so a bf16 rounding that
// flips such a sign moves single weights by up to 2·lr per step (the host bf16 run against the
// fp32 one: worst 1.0e-2, mean 4.7e-5 after these 10 steps): compare the mean difference.
BOOST_AUTO_TEST_CASE(cuda_bf16_training_follows_host_bf16_training) {
  using bf16_cfg = tfm::test::cfg_gpt2<tfm::bfloat16>;
  const auto host = run<tfm::space::host, tr::adamw<float>, bf16_cfg>(10);
  const auto dev = run<tfm::space::cuda, tr::cuda_adamw<float>, bf16_cfg>(10);
  const auto f32 = run<tfm::space::host, tr::adamw<float>>(10);
  auto mean_diff = [](const std::vector<float>& a, const std::vector<float>& b) {
    double s = 0;
    for (std::size_t i = 0; i < a.size(); ++i) s += std::abs(double(a[i]) - double(b[i]));
    return s / double(a.size());
  };
  BOOST_TEST(mean_diff(host, dev) < 5e-4);
  BOOST_TEST(mean_diff(host, f32) < 5e-4);
  BOOST_TEST(worst_diff(host, dev) < 6e-2);
}

BOOST_AUTO_TEST_CASE(cuda_resume_continues_the_run) {
  temp_dir a, b;
  const auto full = run<tfm::space::cuda, tr::cuda_adamw<float>>(12, a.path);
  run<tfm::space::cuda, tr::cuda_adamw<float>>(12, b.path, 6);
  const auto resumed = run<tfm::space::cuda, tr::cuda_adamw<float>>(12, b.path, -1, true);
  BOOST_TEST(worst_diff(full, resumed) < 1e-5);
}

// LoRA on CUDA (cuda_backend's lora_* members, dropout 0.1) follows the host run from the same
// start: the frozen base stays bit for bit, the adapters move, and they end close to the host's
// (compared by the mean difference, as the bf16 case: AdamW turns a near-zero gradient's sign into
// a ±lr step, so single adapter weights may differ by a few lr).
BOOST_AUTO_TEST_CASE(cuda_lora_fine_tune_follows_host) {
  std::size_t n = 0;
  const auto host = run_lora<tfm::space::host, tr::adamw<float>>(30, &n);
  const auto dev = run_lora<tfm::space::cuda, tr::cuda_adamw<float>>(30);
  nn::model<lora_cfg> m0(dims);
  m0.init(5);
  const auto start = m0.parameters_to_host();
  BOOST_REQUIRE_EQUAL(host.size(), dev.size());
  BOOST_REQUIRE(n > 0 && n < host.size());
  const std::size_t tail = host.size() - n;  // the adapters are the trainable tail
  const std::vector<float> base_h(host.begin(), host.begin() + std::ptrdiff_t(tail));
  const std::vector<float> base_d(dev.begin(), dev.begin() + std::ptrdiff_t(tail));
  const std::vector<float> base0(start.begin(), start.begin() + std::ptrdiff_t(tail));
  BOOST_TEST(worst_diff(base_d, base0) == 0.0);
  BOOST_TEST(worst_diff(base_h, base0) == 0.0);
  const std::vector<float> ad_h(host.begin() + std::ptrdiff_t(tail), host.end());
  const std::vector<float> ad_d(dev.begin() + std::ptrdiff_t(tail), dev.end());
  const std::vector<float> ad0(start.begin() + std::ptrdiff_t(tail), start.end());
  double mean = 0, moved = 0;
  for (std::size_t i = 0; i < ad_h.size(); ++i) {
    mean += std::abs(double(ad_h[i]) - double(ad_d[i]));
    moved += std::abs(double(ad_h[i]) - double(ad0[i]));
  }
  mean /= double(ad_h.size());
  moved /= double(ad_h.size());
  BOOST_TEST_MESSAGE("LoRA fine-tune cuda vs host: mean adapter difference " << mean << ", worst "
                                                                             << worst_diff(ad_h, ad_d)
                                                                             << "; mean movement " << moved);
  BOOST_TEST(moved > 1e-3);  // the adapters trained
  BOOST_TEST(mean < 5e-4);
  BOOST_TEST(mean < 0.1 * moved);
}
