// tfm_pretrain — pretrains a language model with tfm's trainer. The architecture is a type
// chosen in code (GPT-2 or Llama style below, run-time sizes); sizes, data, optimizer, schedule
// and steps come from flags (--help). Progress on the terminal, metrics.jsonl, loss.svg and
// checkpoints (Hugging Face safetensors + config.json) go to --out. Ctrl-C saves a checkpoint
// and stops; --resume continues exactly where the last checkpoint left off.
//
// Character-level Shakespeare, the configuration tools/train_shakespeare_torch.py also runs:
//   tfm_pretrain --text tinyshakespeare.txt --layers 4 --heads 4 --d-model 128 --ctx 64
//     --batch 12 --steps 2000 --lr 1e-3 --min-lr 1e-4 --warmup 100 --beta2 0.99 --out runs/shakespeare
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <vector>

#include "cli.hpp"
#include "tfm/backend/host/threading.hpp"
#include "tfm/nn/model.hpp"
#include "tfm/train/trainer.hpp"

namespace {

namespace nn = tfm::nn;
namespace tr = tfm::train;

// The architectures this program offers, as types: GPT-2 or Llama style, each with the naive
// attention kernel (fastest at short contexts) or the flash-tiled one (O(T) memory), computing
// in fp32 or in bf16 over fp32 master weights (bf16 GEMMs run on AMX where the CPU has it).
template <class Kernel, class Precision>
struct gpt2_arch : nn::presets::gpt2<nn::dynamic_sizes> {
  using attention = nn::attn::config<nn::attn::mha, nn::attn::causal, Kernel>;
  using precision = Precision;
};
template <class Kernel, class Precision>
struct llama_arch : nn::presets::llama<nn::dynamic_sizes> {
  using attention = nn::attn::config<nn::attn::gqa<nn::dynamic>, nn::attn::causal, Kernel>;
  using precision = Precision;
};
template <class A>
inline constexpr bool is_llama = std::is_base_of_v<nn::presets::llama<nn::dynamic_sizes>, A>;

struct options {
  std::string arch = "gpt2", attention = "auto", precision = "fp32";
  std::string text;                       // byte-level tokens from a text file
  std::vector<std::string> shards, val_shards;
  double val_fraction = 0.1;
  int vocab = 0, ctx = 64, d_model = 128, layers = 4, heads = 4, kv_heads = 0, d_ff = 0;
  int batch = 12, accum = 1;
  long long steps = 2000, warmup = 100, stable = 0, decay = 0;
  std::string schedule = "cosine", optimizer = "adamw";
  double lr = 1e-3, min_lr = 1e-4, wd = 0.1, beta1 = 0.9, beta2 = 0.99, eps = 1e-8, momentum = 0.9, clip = 1.0;
  bool decay_embeddings = true;
  long long eval_every = 250, checkpoint_every = 0;
  int eval_batches = 20, keep = 3, threads = 0;
  std::string out, init_from;
  bool resume = false;
  double loss_scale = 0;  // > 0: dynamic loss scaling from this scale
  unsigned long long seed = 1337;
  long long log_every = 50;
};

void usage() {
  std::puts(
      "usage: tfm_pretrain (--text FILE | --shards A[,B...]) [options]\n"
      "data:\n"
      "  --text FILE            byte-level tokens (vocabulary 256) of a text file\n"
      "  --shards A,B,...       token shards (tfm_tokenize / the data pipeline)\n"
      "  --val-shards A,...     validation shards (default: the last --val-fraction of the data)\n"
      "  --val-fraction F       validation share when no --val-shards (default 0.1)\n"
      "model (architecture chosen in code: gpt2 = GPT-2, llama = RMSNorm/RoPE/SwiGLU/GQA):\n"
      "  --arch gpt2|llama      (default gpt2)\n"
      "  --attention naive|flash|auto  attention kernel (auto: naive up to a context of 256, else flash)\n"
      "  --precision fp32|bf16  compute type (bf16: bf16 matrix multiplies and activations over fp32\n"
      "                         master weights and optimizer state; fp32 is the default)\n"
      "  --vocab N              (default: the data's vocabulary)\n"
      "  --ctx N --d-model N --layers N --heads N --kv-heads N --d-ff N\n"
      "                         (defaults 64, 128, 4, 4, heads, 4·d_model (gpt2) or 8/3·d_model (llama))\n"
      "training:\n"
      "  --batch N --accum N    sequences per micro-batch (12), micro-batches per step (1)\n"
      "  --steps N              optimizer steps (2000)\n"
      "  --optimizer adamw|sgd  (adamw)   --lr X (1e-3)  --wd X (0.1)  --beta1 X (0.9)  --beta2 X (0.99)\n"
      "  --eps X (1e-8)  --momentum X (sgd, 0.9)  --clip X (global norm, 1.0; 0 = off)\n"
      "  --no-decay-embeddings  exclude embeddings from weight decay (norms and biases never decay)\n"
      "  --schedule cosine|wsd|constant  (cosine: warm-up then cosine to --min-lr at the last step;\n"
      "                         wsd: warm-up, stable, then --decay steps down to --min-lr)\n"
      "  --warmup N (100)  --min-lr X (1e-4)  --decay N (wsd: decay steps, default steps/5)\n"
      "  --seed N (1337)  --threads N (default: OMP_NUM_THREADS or all cores)\n"
      "  --loss-scale X         dynamic loss scaling from scale X (backs off on overflow, grows every 2000 steps)\n"
      "output:\n"
      "  --out DIR              metrics.jsonl, loss.svg, checkpoints/step-N (safetensors + config.json)\n"
      "  --eval-every N (250)  --eval-batches N (20)  --checkpoint-every N (0: at the end)  --keep N (3)\n"
      "  --log-every N          plain progress lines when not on a terminal (50)\n"
      "  --resume               continue from the latest checkpoint in --out\n"
      "  --init-from DIR        start from saved weights (a checkpoint or save_pretrained directory)");
}

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> v;
  std::size_t b = 0;
  while (b <= s.size()) {
    const auto e = s.find(',', b);
    const auto part = s.substr(b, e == std::string::npos ? std::string::npos : e - b);
    if (!part.empty()) v.push_back(part);
    if (e == std::string::npos) break;
    b = e + 1;
  }
  return v;
}

options parse(int argc, char** argv) {
  options o;
  tfm::examples::cli args(argc, argv, "tfm_pretrain", usage);
  while (args.next()) {
    if (args.is("--arch")) o.arch = args.value();
    else if (args.is("--precision")) o.precision = args.value();
    else if (args.is("--attention")) o.attention = args.value();
    else if (args.is("--text")) o.text = args.value();
    else if (args.is("--shards")) o.shards = split_commas(args.value());
    else if (args.is("--val-shards")) o.val_shards = split_commas(args.value());
    else if (args.is("--val-fraction")) args.number(o.val_fraction);
    else if (args.is("--vocab")) args.number(o.vocab);
    else if (args.is("--ctx")) args.number(o.ctx);
    else if (args.is("--d-model")) args.number(o.d_model);
    else if (args.is("--layers")) args.number(o.layers);
    else if (args.is("--heads")) args.number(o.heads);
    else if (args.is("--kv-heads")) args.number(o.kv_heads);
    else if (args.is("--d-ff")) args.number(o.d_ff);
    else if (args.is("--batch")) args.number(o.batch);
    else if (args.is("--accum")) args.number(o.accum);
    else if (args.is("--steps")) args.number(o.steps);
    else if (args.is("--optimizer")) o.optimizer = args.value();
    else if (args.is("--lr")) args.number(o.lr);
    else if (args.is("--min-lr")) args.number(o.min_lr);
    else if (args.is("--wd")) args.number(o.wd);
    else if (args.is("--beta1")) args.number(o.beta1);
    else if (args.is("--beta2")) args.number(o.beta2);
    else if (args.is("--eps")) args.number(o.eps);
    else if (args.is("--momentum")) args.number(o.momentum);
    else if (args.is("--clip")) args.number(o.clip);
    else if (args.is("--no-decay-embeddings")) o.decay_embeddings = false;
    else if (args.is("--schedule")) o.schedule = args.value();
    else if (args.is("--warmup")) args.number(o.warmup);
    else if (args.is("--decay")) args.non_negative(o.decay);
    else if (args.is("--seed")) args.number(o.seed);
    else if (args.is("--threads")) args.non_negative(o.threads);
    else if (args.is("--out")) o.out = args.value();
    else if (args.is("--eval-every")) args.number(o.eval_every);
    else if (args.is("--eval-batches")) args.number(o.eval_batches);
    else if (args.is("--checkpoint-every")) args.number(o.checkpoint_every);
    else if (args.is("--keep")) args.number(o.keep);
    else if (args.is("--log-every")) args.number(o.log_every);
    else if (args.is("--resume")) o.resume = true;
    else if (args.is("--loss-scale")) args.non_negative(o.loss_scale);
    else if (args.is("--init-from")) o.init_from = args.value();
    else args.unknown();
  }
  if (o.text.empty() == o.shards.empty()) {
    std::fprintf(stderr, "tfm_pretrain: give exactly one of --text FILE or --shards A,B,... (see --help)\n");
    std::exit(2);
  }
  // what the library does not see as given (it gets 1 − F)
  if (o.val_shards.empty() && !(o.val_fraction > 0 && o.val_fraction < 1))
    args.fail("--val-fraction must be in (0, 1), got %g", o.val_fraction);
  return o;
}

template <class Arch, class Opt, class Sched>
int train_with(const options& o, nn::model<Arch>& m, Opt& opt, Sched sched, tr::batch_source& train,
               const tr::batch_source& val) {
  tr::train_options to;
  to.batch = o.batch;
  to.grad_accum = o.accum;
  to.steps = o.steps;
  to.clip = o.clip;
  to.eval_every = o.eval_every;
  to.eval_batches = o.eval_batches;
  to.checkpoint_every = o.checkpoint_every;
  to.keep_last = o.keep;
  to.out_dir = o.out;
  to.log_every = o.log_every;
  to.interrupt = tfm::examples::interrupt_on_sigint();
  if (o.loss_scale > 0) to.scaling = {.enabled = true, .init = o.loss_scale};
  // the shards' end-of-text id is what generation should start from and stop at; byte-level text
  // has none (null: transformers' defaults, 50256 for GPT-2 or 1/2 for Llama, would be wrong ids)
  if (o.shards.empty()) {
    to.hf_config_extra = {{"bos_token_id", nullptr}, {"eos_token_id", nullptr}};
  } else {
    const auto eot = tfm::token_shard(o.shards[0], false).eot_id();
    to.hf_config_extra = {{"bos_token_id", eot}, {"eos_token_id", eot}};
  }
  tr::trainer t(m, opt, sched, train, to);
  t.set_validation(val);
  if (o.resume) {
    const auto dir = t.resume();
    std::fprintf(stderr, "resumed from %s at step %lld\n", dir.c_str(), static_cast<long long>(t.step()));
  }
  const auto s = t.run();
  if (s.overflows > 0) std::printf("loss scaling: %lld overflowing steps skipped\n", static_cast<long long>(s.overflows));
  std::printf("steps %lld (skipped %lld) in %.1f s (training %.1f s, %.0f tokens/s)\n", static_cast<long long>(s.step),
              static_cast<long long>(s.skipped), s.seconds, s.train_seconds,
              double(s.step) * o.batch * o.accum * train.seq_len() / std::max(s.train_seconds, 1e-9));
  if (s.last_eval)
    std::printf("validation: loss %.4f, perplexity %.3f, bits/byte %.4f\n", s.last_eval->loss, s.last_eval->perplexity,
                s.last_eval->bits_per_byte);
  if (s.interrupted) std::printf("interrupted: continue with --resume\n");
  return 0;
}

template <class Arch>
int run(const options& o) {
  if (o.threads > 0) tfm::host::set_num_threads(o.threads);
  // data: the vocabulary is the data's unless given; every id is checked against it
  int vocab = o.vocab;
  if (vocab == 0) vocab = o.text.empty() ? int(tfm::token_shard(o.shards[0], false).vocab_size()) : 256;
  auto open = [&](const std::vector<std::string>& paths) {
    return tr::token_corpus::from_shards({paths.begin(), paths.end()}, std::uint32_t(vocab));
  };
  tr::token_corpus corpus = o.text.empty() ? open(o.shards) : tr::token_corpus::from_text_bytes(o.text);
  std::optional<tr::token_corpus> val_corpus;
  tr::split trs{0, corpus.size()}, vas{};
  if (!o.val_shards.empty()) {
    val_corpus = open(o.val_shards);
    vas = tr::split{0, val_corpus->size()};
  } else {
    std::tie(trs, vas) = tr::split_at(corpus, 1.0 - o.val_fraction);
  }
  // sizes
  nn::dims d{vocab, o.ctx, o.d_model, o.layers, o.heads, o.kv_heads > 0 ? o.kv_heads : o.heads, o.d_ff};
  if (d.d_ff == 0) {  // the default, computed wide: 4·d_model can exceed an int
    const std::int64_t w =
        is_llama<Arch> ? (8 * std::int64_t(o.d_model) / 3 + 63) / 64 * 64 : 4 * std::int64_t(o.d_model);
    tfm::expects<tfm::invalid_argument>(w <= std::numeric_limits<int>::max(), "--d-model ", o.d_model,
                                        ": the default --d-ff (", w, ") exceeds ", std::numeric_limits<int>::max());
    d.d_ff = int(w);
  }
  nn::model<Arch> m(d);
  m.init(o.seed);
  if (!o.init_from.empty()) tr::load_pretrained(m, o.init_from);
  tr::batch_source train(corpus, trs, o.ctx, tr::sampling::random_windows, o.seed, "train");
  tr::batch_source val(val_corpus ? *val_corpus : corpus, vas, o.ctx, tr::sampling::sequential, 0, "validation");
  std::fprintf(stderr, "model: %s (%s attention, %s), %s, %.2fM parameters; data: %s, %llu train / %llu validation tokens\n",
               o.arch.c_str(), nn::config_traits<Arch>::flash ? "flash" : "naive", o.precision.c_str(), d.to_string().c_str(), double(m.num_parameters()) / 1e6, corpus.name().c_str(),
               static_cast<unsigned long long>(trs.size()), static_cast<unsigned long long>(vas.size()));

  const auto groups = tr::decay_groups(m.parameter_table(), {.weight_decay = o.wd, .embeddings = o.decay_embeddings});
  auto with_sched = [&](auto& opt) {
    if (o.schedule == "cosine")
      return train_with(o, m, opt, tr::warmup_cosine{o.lr, o.min_lr, std::min(o.warmup, o.steps), o.steps}, train, val);
    if (o.schedule == "wsd") {
      const long long dec = o.decay > 0 ? o.decay : o.steps / 5;
      return train_with(o, m, opt,
                        tr::warmup_stable_decay{o.lr, o.min_lr, o.warmup, std::max(0LL, o.steps - o.warmup - dec), dec},
                        train, val);
    }
    if (o.schedule == "constant") return train_with(o, m, opt, tr::constant_lr{o.lr}, train, val);
    std::fprintf(stderr, "tfm_pretrain: --schedule must be cosine, wsd or constant, not '%s'\n", o.schedule.c_str());
    return 2;
  };
  if (o.optimizer == "adamw") {
    tr::adamw<float> opt(m.num_parameters(), groups, {.beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps});
    return with_sched(opt);
  }
  if (o.optimizer == "sgd") {
    tr::sgd<float> opt(m.num_parameters(), groups, {.momentum = o.momentum});
    return with_sched(opt);
  }
  std::fprintf(stderr, "tfm_pretrain: --optimizer must be adamw or sgd, not '%s'\n", o.optimizer.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  try {
    const bool flash = o.attention == "flash" || (o.attention == "auto" && o.ctx > 256);
    if (o.attention != "naive" && o.attention != "flash" && o.attention != "auto") {
      std::fprintf(stderr, "tfm_pretrain: --attention must be naive, flash or auto, not '%s'\n", o.attention.c_str());
      return 2;
    }
    if (o.arch != "gpt2" && o.arch != "llama") {
      std::fprintf(stderr, "tfm_pretrain: --arch must be gpt2 or llama, not '%s'\n", o.arch.c_str());
      return 2;
    }
    const auto with_precision = [&]<class P>() {
      if (o.arch == "gpt2")
        return flash ? run<gpt2_arch<nn::attn::flash, P>>(o) : run<gpt2_arch<nn::attn::naive, P>>(o);
      return flash ? run<llama_arch<nn::attn::flash, P>>(o) : run<llama_arch<nn::attn::naive, P>>(o);
    };
    if (o.precision == "fp32") return with_precision.template operator()<nn::precision_fp32>();
    if (o.precision == "bf16") return with_precision.template operator()<nn::precision_bf16>();
    std::fprintf(stderr, "tfm_pretrain: --precision must be fp32 or bf16, not '%s'\n", o.precision.c_str());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tfm_pretrain: %s\n", e.what());
    return 1;
  }
}
