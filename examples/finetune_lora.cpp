// tfm_finetune_lora — LoRA fine-tuning of a saved GPT-2-style model (a tfm_pretrain checkpoint
// or any save_pretrained / GPT2LMHeadModel directory with byte-level vocabulary ≥ 256).
//
// The adapters are a compile-time policy of the config (below: rank 8, α = 16, on the fused
// attention projection, or on every block projection with --targets all). The base weights are
// frozen: no gradients, no optimizer state. Data: a text file (byte-level, 90/10 split) or
// instruction JSONL ({"prompt", "response"} per line; loss on the response only). Writes to --out:
//   adapter/   adapter_model.safetensors + adapter_config.json (PEFT names), small
//   merged/    the base with the adapters merged in (model.safetensors + config.json), for inference
//   checkpoints/, metrics.jsonl, loss.svg as tfm_pretrain does
//
//   tfm_finetune_lora --base runs/shakespeare/checkpoints/step-00002000 --text new.txt --steps 300 --out runs/lora
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli.hpp"
#include "tfm/backend/host/threading.hpp"
#include "tfm/nn/model.hpp"
#include "tfm/train/instruction.hpp"
#include "tfm/train/lora.hpp"
#include "tfm/train/trainer.hpp"

namespace {

namespace nn = tfm::nn;
namespace tr = tfm::train;

// The base architecture (what tfm_pretrain --arch gpt2 trains) and two LoRA variants of it.
struct base_arch : nn::presets::gpt2<nn::dynamic_sizes> {};
struct lora_attn : base_arch {
  using lora = nn::lora::adapters<nn::lora::qkv, 8>;
};
struct lora_all : base_arch {
  using lora = nn::lora::adapters<nn::lora::qkv | nn::lora::o | nn::lora::up | nn::lora::down, 8>;
};

struct options {
  std::string base, text, instructions, out = "runs/lora", targets = "attn";
  long long steps = 300, warmup = 20, eval_every = 100;
  int batch = 12, ctx = 0, eval_batches = 20, threads = 0;
  double lr = 1e-3, min_lr = 1e-4, clip = 1.0;
  unsigned long long seed = 1;
};

void usage() {
  std::puts(
      "usage: tfm_finetune_lora --base DIR (--text FILE | --instructions FILE.jsonl) [options]\n"
      "  --base DIR             weights to adapt (a checkpoint or save_pretrained directory, GPT-2 style)\n"
      "  --text FILE            new text, byte-level tokens, first 90% train / last 10% validation\n"
      "  --instructions FILE    JSONL {\"prompt\": ..., \"response\": ...}; last 10% of the lines validate\n"
      "  --targets attn|all     adapters on the attention projection (attn) or on all four block projections\n"
      "  --steps N (300)  --batch N (12)  --ctx N (the base's context)  --lr X (1e-3)  --min-lr X (1e-4)\n"
      "  --warmup N (20)  --clip X (1.0)  --eval-every N (100)  --eval-batches N (20)  --seed N  --threads N\n"
      "  --out DIR              adapter/, merged/, checkpoints/, metrics.jsonl, loss.svg (runs/lora)");
}

options parse(int argc, char** argv) {
  options o;
  tfm::examples::cli args(argc, argv, "tfm_finetune_lora", usage);
  while (args.next()) {
    if (args.is("--base")) o.base = args.value();
    else if (args.is("--text")) o.text = args.value();
    else if (args.is("--instructions")) o.instructions = args.value();
    else if (args.is("--targets")) o.targets = args.value();
    else if (args.is("--out")) o.out = args.value();
    else if (args.is("--steps")) args.number(o.steps);
    else if (args.is("--warmup")) args.number(o.warmup);
    else if (args.is("--eval-every")) args.number(o.eval_every);
    else if (args.is("--batch")) args.number(o.batch);
    else if (args.is("--ctx")) args.non_negative(o.ctx);
    else if (args.is("--eval-batches")) args.number(o.eval_batches);
    else if (args.is("--threads")) args.non_negative(o.threads);
    else if (args.is("--lr")) args.number(o.lr);
    else if (args.is("--min-lr")) args.number(o.min_lr);
    else if (args.is("--clip")) args.number(o.clip);
    else if (args.is("--seed")) args.number(o.seed);
    else args.unknown();
  }
  if (o.base.empty() || o.text.empty() == o.instructions.empty()) {
    std::fprintf(stderr, "tfm_finetune_lora: give --base and exactly one of --text or --instructions (see --help)\n");
    std::exit(2);
  }
  return o;
}

// Sizes from the base directory's config.json.
nn::dims base_dims(const std::filesystem::path& dir) {
  const auto j = nlohmann::json::parse(tfm::read_file(dir / "config.json"), nullptr, false);
  if (j.is_discarded()) throw tfm::error(tfm::detail::concat((dir / "config.json").string(), ": not JSON"));
  return tr::dims_from_config(j, dir.string());
}

// Writes the base with the adapters merged in, as a plain (adapter-free) model.
template <class Arch>
void save_merged(nn::model<Arch>& m, const std::filesystem::path& dir) {
  m.merge_adapters();
  nn::model<base_arch> plain(m.sizes());
  const auto all = m.parameters_to_host();
  plain.parameters_from_host(std::span<const float>(all.data(), plain.num_parameters()));
  tr::save_pretrained(plain, dir);
  m.unmerge_adapters();
}

template <class Arch>
int run(const options& o) {
  if (o.threads > 0) tfm::host::set_num_threads(o.threads);
  const nn::dims d = base_dims(o.base);
  tfm::expects(d.vocab >= 256, "tfm_finetune_lora: the base vocabulary (", d.vocab, ") must hold the 256 byte ids");
  const int T = o.ctx > 0 ? o.ctx : d.ctx;
  nn::model<Arch> m(d);
  m.init(o.seed);  // adapters: A random, B = 0 (the model starts equal to the base)
  tr::load_pretrained(m, o.base);
  std::fprintf(stderr, "base %s: %s; LoRA rank %d on '%s': %zu trainable of %zu parameters (%.2f%%)\n",
               o.base.c_str(), d.to_string().c_str(), Arch::lora::rank, o.targets.c_str(), m.num_trainable(),
               m.num_parameters(), 100.0 * double(m.num_trainable()) / double(m.num_parameters()));
  tr::adamw<float> opt(m.num_trainable(), tr::decay_groups(m.parameter_table(), {.weight_decay = 0.0}),
                       {.beta1 = 0.9, .beta2 = 0.99});
  tr::warmup_cosine sched{o.lr, o.min_lr, std::min(o.warmup, o.steps), o.steps};
  tr::train_options to;
  to.batch = o.batch;
  to.steps = o.steps;
  to.clip = o.clip;
  to.eval_every = o.eval_every;
  to.eval_batches = o.eval_batches;
  to.out_dir = o.out;
  to.log_every = 50;
  to.interrupt = tfm::examples::interrupt_on_sigint();
  to.dropout_seed = o.seed;

  tr::train_summary s;
  double before = 0, after = 0;
  if (!o.text.empty()) {
    auto corpus = tr::token_corpus::from_text_bytes(o.text);
    auto [trs, vas] = tr::split_at(corpus, 0.9);
    tr::batch_source train(corpus, trs, T, tr::sampling::random_windows, o.seed);
    tr::batch_source val(corpus, vas, T, tr::sampling::sequential, 0, "validation");
    before = tr::evaluate(m, val, o.eval_batches, o.batch).loss;
    tr::trainer t(m, opt, sched, train, to);
    t.set_validation(val);
    s = t.run();
    after = tr::evaluate(m, val, o.eval_batches, o.batch).loss;
  } else {
    auto bytes = [](std::string_view text) { return std::vector<std::uint32_t>(text.begin(), text.end()); };
    // byte-level ids: each byte is its own id; the base's last id serves as end-of-text
    tr::instruction_options io{T, std::uint32_t(d.vocab - 1), std::uint32_t(d.vocab)};
    tr::instruction_dataset all(o.instructions, bytes, io);
    // the last 10% of the examples validate
    const std::size_t nval = std::max<std::size_t>(1, all.size() / 10);
    tfm::expects(all.size() > nval, "tfm_finetune_lora: ", o.instructions, " needs at least 2 examples");
    tr::instruction_batches train(all, T, o.seed, 0, all.size() - nval);
    auto val_loss = [&] { return tr::instruction_loss(m, all, o.batch, T, all.size() - nval, all.size()); };
    before = val_loss();
    tr::trainer t(m, opt, sched, train, to);
    t.set_evaluator([&](std::int64_t step) {
      tr::eval_metrics e;
      e.step = step;
      e.loss = val_loss();
      e.perplexity = std::exp(e.loss);
      return e;
    });
    s = t.run();
    after = val_loss();
  }
  tr::save_adapters(m, std::filesystem::path(o.out) / "adapter");
  save_merged(m, std::filesystem::path(o.out) / "merged");
  std::printf("validation loss %.4f -> %.4f after %lld steps (%.1f s); adapters in %s/adapter, merged model in %s/merged\n",
              before, after, static_cast<long long>(s.step), s.seconds, o.out.c_str(), o.out.c_str());
  if (s.interrupted) std::printf("interrupted\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  try {
    if (o.targets == "attn") return run<lora_attn>(o);
    if (o.targets == "all") return run<lora_all>(o);
    std::fprintf(stderr, "tfm_finetune_lora: --targets must be attn or all\n");
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tfm_finetune_lora: %s\n", e.what());
    return 1;
  }
}
