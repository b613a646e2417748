// tfm/train/trainer.hpp — one training loop for every model, optimizer, schedule and data source.
//
//   nn::model<Cfg> m(dims); m.init(seed);
//   train::adamw<float> opt(m.num_trainable(), train::decay_groups(m.parameter_table(), {.weight_decay = 0.1}),
//                           {.beta1 = 0.9, .beta2 = 0.99});
//   train::trainer t(m, opt, train::warmup_cosine{1e-3, 1e-4, 100, 2000}, train_data, options);
//   t.set_validation(val_data);
//   t.run();
//
// A step: `grad_accum` micro-batches of forward + backward (gradients add up, each micro-batch's
// weighted by its share of the step's counted targets, so that the step is one batch of
// grad_accum·batch sequences; one model::forward_backward call each, whose cross-entropy writes
// the logits' gradient in the same pass that computes the loss), the global gradient norm (one pass), then one
// optimizer pass that applies 1/grad_accum and the clipping factor as it reads each gradient. A non-finite loss or
// gradient never reaches the weights: the step is skipped and counted; `max_bad_steps` of them in a row stop training
// with an error.
//
// Around it: evaluation every `eval_every` steps (loss, perplexity, bits per byte), a progress
// bar (plain lines when not on a terminal), metrics.jsonl, loss.svg, and checkpoints (train/
// checkpoint.hpp) every `checkpoint_every` steps and at the end. resume(dir) restores weights,
// optimizer state, step and data position: the continued run is bit for bit the uninterrupted
// one on the host (same build, same thread count).
#pragma once
#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <numbers>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "tfm/core/error.hpp"
#include "tfm/nn/model.hpp"
#include "tfm/train/checkpoint.hpp"
#include "tfm/train/data.hpp"
#include "tfm/train/optim.hpp"
#include "tfm/train/report.hpp"
#include "tfm/train/schedule.hpp"

namespace tfm::train {

// Training cannot go on (diverged: too many non-finite steps in a row).
class training_error : public error {
 public:
  using error::error;
};

// Dynamic loss scaling (what fp16 compute needs; it works with any precision): backward computes
// the gradients of loss·scale; a step whose scaled gradients overflow (Inf/NaN) is skipped and
// reported as an overflow — not counted toward max_bad_steps while the scale can still back off —
// and the scale is multiplied by `backoff`; after `interval` steps without overflow it is
// multiplied by `growth`. The optimizer divides the scale out in its single pass.
struct loss_scaling {
  bool enabled = false;
  double init = 65536.0, growth = 2.0, backoff = 0.5, min_scale = 1.0;
  std::int64_t interval = 2000;
};

struct train_options {
  int batch = 8;       // sequences per micro-batch
  int grad_accum = 1;  // micro-batches per optimizer step
  std::int64_t steps = 1000;
  double clip = 1.0;  // global gradient norm limit; <= 0: no clipping
  std::int64_t eval_every = 0;  // 0: only at the end (when a validation source is set)
  int eval_batches = 20;
  std::int64_t checkpoint_every = 0;  // 0: only at the end (when out_dir is set)
  int keep_last = 3;
  std::filesystem::path out_dir;  // checkpoints/, metrics.jsonl, loss.svg; empty: nothing written
  int max_bad_steps = 5;          // non-finite steps in a row before giving up
  std::int64_t log_every = 10;    // plain progress lines (not on a terminal) every n steps
  bool show_progress = true;
  std::FILE* progress_out = stderr;
  loss_scaling scaling;            // off by default
  // Extra keys for every checkpoint's config.json, e.g. {"bos_token_id": eot, "eos_token_id": eot}
  // so that transformers' generate() stops at the data's end-of-text token
  nlohmann::json hf_config_extra = nlohmann::json::object();
  std::uint64_t dropout_seed = 0;  // LoRA adapter dropout: masks from (seed, step, micro-batch)
  std::int64_t stop_after = -1;    // stop (with a checkpoint) once this step is done; -1: never
                                   // (at or past `steps`: the run is complete, with its final evaluation)
  const std::atomic<bool>* interrupt = nullptr;  // set (e.g. by SIGINT): checkpoint and stop after the step
};

struct train_summary {
  std::int64_t step = 0;             // steps completed (including skipped ones)
  std::int64_t skipped = 0;          // steps whose update was skipped (non-finite)
  std::int64_t overflows = 0;        // of which loss-scaling overflows
  double last_loss = std::numeric_limits<double>::quiet_NaN();
  std::optional<eval_metrics> last_eval;
  double seconds = 0;                // wall-clock time of this run() call
  double train_seconds = 0;          // of which forward, backward and optimizer steps
  bool interrupted = false;
};

// Mean loss over `batches` fixed windows of a source; bits per byte from the corpus's byte count.
template <class Model>
eval_metrics evaluate(Model& m, const batch_source& src, int batches, int B, std::int64_t step = 0) {
  expects(batches >= 1 && B >= 1, "evaluate: need at least one batch of at least one sequence, got ", batches,
          " batches of ", B);
  const int T = src.seq_len();
  std::vector<std::int32_t> tok(std::size_t(B) * T), tgt(tok.size());
  double sum = 0;
  std::int64_t n = 0;
  const std::uint64_t count = std::uint64_t(batches) * B;
  const auto eval_mode = m.evaluation();  // no adapter dropout while evaluating
  for (int b = 0; b < batches; ++b) {
    for (int r = 0; r < B; ++r)
      src.eval_window(std::uint64_t(b) * B + r, count, std::span(tok).subspan(std::size_t(r) * T, T),
                      std::span(tgt).subspan(std::size_t(r) * T, T));
    sum += m.forward(tok.data(), tgt.data(), B, T) * double(m.counted_targets());
    n += m.counted_targets();
  }
  eval_metrics e;
  e.step = step;
  e.loss = n > 0 ? sum / double(n) : std::numeric_limits<double>::quiet_NaN();
  e.perplexity = std::exp(e.loss);
  const double bpt = src.corpus().bytes_per_token();
  e.bits_per_byte = bpt > 0 ? e.loss / std::numbers::ln2 / bpt : std::numeric_limits<double>::quiet_NaN();
  return e;
}

// Whether opt.step can write m's compute copy as it updates: a host model with mixed precision
// (nn::model::writes_compute_copy) and an optimizer with step(params, grads, lr, scale, copy).
template <class Model, class Optimizer>
inline constexpr bool optimizer_writes_copy = [] {
  if constexpr (requires { Model::writes_compute_copy; }) {
    if constexpr (Model::writes_compute_copy)
      return requires(Optimizer & o, Model & m, const typename Model::compute_copy_writer& w) {
        o.step(m.trainable_parameters(), m.gradients(), 1.0, 1.0, w);
      };
  }
  return false;
}();

// One optimizer step over m's trainable parameters with gradients g (what the trainer does).
// Where optimizer_writes_copy and write_copy: through m.update_parameters, the optimizer writing
// the compute copy as it updates, so the next forward skips narrowing every parameter; else
// through trainable_parameters() (the next forward narrows them).
template <class Model, class Optimizer>
void optimizer_step(Model& m, Optimizer& opt, std::span<const typename Model::T> g, double lr, double grad_scale,
                    [[maybe_unused]] bool write_copy = true) {
  if constexpr (optimizer_writes_copy<Model, Optimizer>) {
    if (write_copy) {
      m.update_parameters([&](auto p, const auto& copy) { opt.step(p, g, lr, grad_scale, copy); });
      return;
    }
  }
  opt.step(m.trainable_parameters(), g, lr, grad_scale);
}

// Source: where training batches come from — batch_source, instruction_batches, or any type with
// seq_len(), next(B, tokens, targets), position() and set_position().
template <class Model, class Optimizer, class Schedule, class Source = batch_source>
class trainer {
 public:
  using T = typename Model::T;
  // Whether the optimizer step writes the model's compute copy (optimizer_step).
  static constexpr bool writes_compute_copy = optimizer_writes_copy<Model, Optimizer>;

  trainer(Model& m, Optimizer& opt, Schedule sched, Source& train, train_options o = {})
      : m_(m), opt_(opt), sched_(std::move(sched)), train_(train), o_(std::move(o)) {
    expects(o_.batch > 0 && o_.grad_accum > 0 && o_.steps >= 0, "trainer: batch (", o_.batch, ") and grad_accum (",
            o_.grad_accum, ") must be positive and steps (", o_.steps, ") not negative");
    expects(train_.seq_len() <= m_.sizes().ctx, "trainer: sequence length ", train_.seq_len(),
            " exceeds the model's context ", m_.sizes().ctx);
    expects(o_.max_bad_steps >= 1, "trainer: max_bad_steps must be at least 1");
    expects(o_.eval_every >= 0 && o_.checkpoint_every >= 0 && o_.log_every >= 0,
            "trainer: eval_every (", o_.eval_every, "), checkpoint_every (", o_.checkpoint_every, ") and log_every (",
            o_.log_every, ") must not be negative");
    expects(o_.eval_batches >= 1, "trainer: eval_batches must be at least 1, got ", o_.eval_batches);
    expects(!std::isnan(o_.clip), "trainer: the clipping norm is NaN (use 0 or less for no clipping)");
    // A device optimizer runs on the model's stream, so that its gradient norm waits for the
    // backward and the next forward waits for its update (CUDA: cuda_adamw/cuda_sgd).
    if constexpr (requires { opt_.set_stream(m_.get_backend().stream()); }) opt_.set_stream(m_.get_backend().stream());
    if (o_.scaling.enabled) {
      const auto& ls = o_.scaling;
      expects(ls.init >= ls.min_scale && ls.min_scale > 0 && ls.growth >= 1 && ls.backoff > 0 && ls.backoff < 1 &&
                  ls.interval > 0,
              "trainer: loss scaling needs init >= min_scale > 0, growth >= 1, 0 < backoff < 1, interval > 0");
      loss_scale_ = ls.init;
    }
    const std::size_t n = std::size_t(o_.batch) * train_.seq_len() * std::size_t(o_.grad_accum);
    tok_.resize(n);
    tgt_.resize(n);
    counted_.resize(std::size_t(o_.grad_accum));
  }

  // Validation windows of a token corpus: evaluate() every eval_every steps and at the end.
  void set_validation(const batch_source& val) {
    expects(val.seq_len() <= m_.sizes().ctx, "trainer: validation sequence length ", val.seq_len(),
            " exceeds the model's context ", m_.sizes().ctx);
    const batch_source* v = &val;
    eval_ = [this, v](std::int64_t step) { return evaluate(m_, *v, o_.eval_batches, o_.batch, step); };
  }
  // Any other evaluation (instruction data, say): called with the step, returns the metrics.
  void set_evaluator(std::function<eval_metrics(std::int64_t)> f) { eval_ = std::move(f); }

  std::int64_t step() const { return step_; }
  std::int64_t skipped() const { return skipped_; }
  std::int64_t overflows() const { return overflows_; }
  double loss_scale() const { return loss_scale_; }
  const train_options& options() const { return o_; }

  // The state beside the weights (what a checkpoint stores).
  trainer_state state() {
    trainer_state st;
    st.fields["step"] = std::to_string(step_);
    st.fields["optimizer_steps"] = std::to_string(opt_.steps_taken());
    st.fields["data_position"] = std::to_string(train_.position());
    st.fields["skipped"] = std::to_string(skipped_);
    st.fields["bad_in_a_row"] = std::to_string(bad_row_);
    st.fields["tokens_seen"] = std::to_string(tokens_seen_);
    if (o_.scaling.enabled) {  // exact text of the double: the resumed run uses the same scale
      char b[40];
      std::snprintf(b, sizeof b, "%.17g", loss_scale_);
      st.fields["loss_scale"] = b;
      st.fields["loss_scale_good_steps"] = std::to_string(good_steps_);
      st.fields["overflows"] = std::to_string(overflows_);
    }
    st.arrays = opt_.state_to_host();
    return st;
  }

  // Writes a checkpoint now (into out_dir/checkpoints); returns its directory.
  std::filesystem::path save_checkpoint() {
    expects(!o_.out_dir.empty(), "trainer: save_checkpoint needs options.out_dir");
    checkpoint_dir cd(o_.out_dir / "checkpoints", o_.keep_last);
    return cd.save(step_, m_, state(), o_.hf_config_extra);
  }

  // Restores a checkpoint directory (or the latest one under out_dir/checkpoints when `dir`
  // is empty). Everything is checked before anything changes.
  std::filesystem::path resume(std::filesystem::path dir = {}) {
    if (dir.empty()) {
      expects(!o_.out_dir.empty(), "trainer: resume() without a directory needs options.out_dir");
      auto l = checkpoint_dir(o_.out_dir / "checkpoints", o_.keep_last).latest();
      expects<checkpoint_error>(l.has_value(), (o_.out_dir / "checkpoints").string(), ": no checkpoint to resume from");
      dir = *l;
    }
    // Every field is read whole (std::stoll read "12abc" as 12 and threw without naming the file);
    // counts are non-negative, the loss scale positive and finite.
    auto field = [&](const trainer_state& st, const char* k) -> const std::string& {
      auto it = st.fields.find(k);
      expects<checkpoint_error>(it != st.fields.end(), dir.string(), ": the trainer state has no field '", k, "'");
      return it->second;
    };
    auto num = [&](const trainer_state& st, const char* k) -> std::int64_t {
      const std::string& t = field(st, k);
      std::int64_t v = -1;
      const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
      expects<checkpoint_error>(r.ec == std::errc{} && r.ptr == t.data() + t.size() && v >= 0, dir.string(),
                                ": the trainer state's '", k, "' is \"", t, "\", not a count (an integer >= 0)");
      return v;
    };
    auto scale = [&](const trainer_state& st) -> double {
      const std::string& t = field(st, "loss_scale");
      double v = 0;
      const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
      expects<checkpoint_error>(r.ec == std::errc{} && r.ptr == t.data() + t.size() && std::isfinite(v) && v > 0,
                                dir.string(), ": the trainer state's 'loss_scale' is \"", t,
                                "\", not a positive finite number");
      return v;
    };
    const bool scaled = o_.scaling.enabled;
    // Everything is checked before the model, the optimizer or this trainer changes.
    const trainer_state st = checkpoint_dir::load(dir, m_, [&](const trainer_state& s) {
      for (auto const& [name, size] : opt_.state_sizes()) {
        const auto it = s.arrays.find(name);
        expects<checkpoint_error>(it != s.arrays.end(), dir.string(), ": the trainer state has no optimizer.", name,
                                  " (saved by a different optimizer?)");
        expects<checkpoint_error>(it->second.size() == size, dir.string(), ": optimizer.", name, " holds ",
                                  it->second.size(), " values, this optimizer has ", size);
      }
      for (const char* k : {"optimizer_steps", "step", "data_position", "skipped", "tokens_seen"}) num(s, k);
      expects<checkpoint_error>(num(s, "bad_in_a_row") <= std::numeric_limits<int>::max(), dir.string(),
                                ": the trainer state's 'bad_in_a_row' is out of range");
      if (scaled && s.fields.count("loss_scale")) {
        scale(s);
        for (const char* k : {"loss_scale_good_steps", "overflows"}) num(s, k);
      }
    });
    opt_.state_from_host(st.arrays);
    opt_.set_steps_taken(num(st, "optimizer_steps"));
    step_ = num(st, "step");
    train_.set_position(std::uint64_t(num(st, "data_position")));
    skipped_ = num(st, "skipped");
    bad_row_ = int(num(st, "bad_in_a_row"));
    tokens_seen_ = num(st, "tokens_seen");
    if (scaled && st.fields.count("loss_scale")) {
      loss_scale_ = scale(st);
      good_steps_ = num(st, "loss_scale_good_steps");
      overflows_ = num(st, "overflows");
    }
    return dir;
  }

  // One optimizer step (grad_accum micro-batches). Returns the mean loss (NaN when skipped).
  double train_step() {
    const int B = o_.batch, Tn = train_.seq_len();
    // the schedule's value first: a bad one stops the run before this step changes anything
    const double lr = sched_(step_);
    expects(std::isfinite(lr) && lr >= 0, "trainer: the learning-rate schedule gave ", lr, " at step ", step_,
            " (it must be finite and not negative)");
    m_.zero_grad();
    double loss_sum = 0;
    bool finite = true;
    // Every micro-batch's windows first, and the targets each one counts (not ignore_index): a
    // micro-batch's mean loss is weighted by its share of the step's counted targets, so the step
    // follows the mean over all of them, as one batch of grad_accum·batch sequences would (with
    // targets partly ignored, as instruction data has, micro-batches count different numbers).
    // Where every micro-batch counts the same, each weight is exactly 1.
    const std::size_t per = std::size_t(B) * std::size_t(Tn);
    std::int64_t counted_total = 0;
    for (int a = 0; a < o_.grad_accum; ++a) {
      const std::span<std::int32_t> tk(tok_.data() + std::size_t(a) * per, per),
          tg(tgt_.data() + std::size_t(a) * per, per);
      train_.next(B, tk, tg);
      counted_[std::size_t(a)] =
          std::int64_t(std::count_if(tg.begin(), tg.end(), [](std::int32_t t) { return t != nn::ignore_index; }));
      counted_total += counted_[std::size_t(a)];
    }
    for (int a = 0; a < o_.grad_accum; ++a) {
      const std::int32_t* tk = tok_.data() + std::size_t(a) * per;
      const std::int32_t* tg = tgt_.data() + std::size_t(a) * per;
      const std::int64_t c = counted_[std::size_t(a)];
      const double w = c > 0 ? double(o_.grad_accum) * double(c) / double(counted_total) : 1.0;
      m_.set_dropout_seed(o_.dropout_seed, std::uint64_t(step_) * std::uint64_t(o_.grad_accum) + std::uint64_t(a));
      const double ls = (o_.scaling.enabled ? loss_scale_ : 1.0) * w;
      // forward and backward in one call where the model has it (one pass over the logits); a
      // non-finite loss skips the backward: its gradient would be garbage, the step is skipped
      double l;
      if constexpr (requires { m_.forward_backward(tk, tg, B, Tn, ls); }) {
        l = m_.forward_backward(tk, tg, B, Tn, ls);
      } else {
        l = m_.forward(tk, tg, B, Tn);
        if (std::isfinite(l)) m_.backward(ls);
      }
      if (!std::isfinite(l)) {
        finite = false;
        continue;
      }
      loss_sum += l * w;
    }
    tokens_seen_ += std::int64_t(B) * Tn * o_.grad_accum;
    last_lr_ = lr;
    const double ls = o_.scaling.enabled ? loss_scale_ : 1.0;
    const double scale = 1.0 / (o_.grad_accum * ls);
    grad_stats gs{};
    bool overflow = false;
    if (finite) {
      gs = opt_.grad_norm(m_.gradients(), scale);
      overflow = !gs.finite && o_.scaling.enabled && loss_scale_ > o_.scaling.min_scale;
      finite = gs.finite;
    }
    last_norm_ = finite ? gs.norm : std::numeric_limits<double>::quiet_NaN();
    ++step_;
    if (overflow) {  // the scale was too large: back off and try the next step
      ++skipped_;
      ++overflows_;
      good_steps_ = 0;
      loss_scale_ = std::max(o_.scaling.min_scale, loss_scale_ * o_.scaling.backoff);
      return loss_sum / o_.grad_accum;
    }
    if (!finite) {
      ++skipped_;
      ++bad_row_;
      if (bad_row_ >= o_.max_bad_steps)
        throw training_error(tfm::detail::concat(
            "trainer: ", bad_row_, " steps in a row had a non-finite loss or gradient (the last at step ", step_,
            "); the weights were not updated by any of them. Lower the learning rate, check the data, or raise "
            "max_bad_steps."));
      return std::numeric_limits<double>::quiet_NaN();
    }
    bad_row_ = 0;
    update(lr, scale * clip_factor(gs.norm, o_.clip));
    if (o_.scaling.enabled && ++good_steps_ >= o_.scaling.interval) {
      loss_scale_ *= o_.scaling.growth;
      good_steps_ = 0;
    }
    return loss_sum / o_.grad_accum;
  }

  eval_metrics evaluate_now() {
    expects(bool(eval_), "trainer: no validation set (set_validation or set_evaluator)");
    return eval_(step_);
  }

  // Runs until options.steps are done (from the current step: after resume() it continues).
  train_summary run() {
    using clock = std::chrono::steady_clock;
    const auto t0 = clock::now();
    train_summary sum;
    std::optional<metrics_log> log;
    if (!o_.out_dir.empty()) {
      std::filesystem::create_directories(o_.out_dir);
      log.emplace(o_.out_dir / "metrics.jsonl");
    }
    std::optional<progress> bar;
    if (o_.show_progress) bar.emplace(o_.progress_out, false, false, std::max<std::int64_t>(1, o_.log_every));
    const std::int64_t start_step = step_;
    double train_s = 0;
    auto do_eval = [&] {
      if (!eval_) return;
      const auto e = evaluate_now();
      sum.last_eval = e;
      if (log) log->write(e);
      if (bar)
        bar->message(tfm::detail::concat("eval step ", e.step, ": val loss ", e.loss, ", perplexity ", e.perplexity,
                                         std::isfinite(e.bits_per_byte) ? tfm::detail::concat(", bits/byte ", e.bits_per_byte) : ""));
    };
    bool stopped = false;
    while (step_ < o_.steps) {
      const auto s0 = clock::now();
      const double l = train_step();
      const double dt = std::chrono::duration<double>(clock::now() - s0).count();
      train_s += dt;
      sum.last_loss = l;
      step_metrics sm{};
      sm.step = step_;
      sm.total_steps = o_.steps;
      sm.loss = l;
      sm.lr = last_lr_;
      sm.grad_norm = last_norm_;
      sm.tokens_per_s = double(std::int64_t(o_.batch) * train_.seq_len() * o_.grad_accum) / std::max(dt, 1e-9);
      sm.elapsed_s = std::chrono::duration<double>(clock::now() - t0).count();
      sm.skipped = skipped_;
      sm.loss_scale = o_.scaling.enabled ? loss_scale_ : 0.0;
      sm.overflows = overflows_;
      if (log) log->write(sm);
      if (bar) bar->update(sm);
      if (o_.eval_every > 0 && step_ % o_.eval_every == 0 && step_ < o_.steps) do_eval();
      const bool interrupt = o_.interrupt && o_.interrupt->load();
      // after the last step there is nothing left to stop: the run ends as a complete one (with
      // its final evaluation, which a resumed run would never make up)
      const bool stop_here = step_ < o_.steps && ((o_.stop_after >= 0 && step_ >= o_.stop_after) || interrupt);
      if (!o_.out_dir.empty() && step_ < o_.steps && !stop_here && o_.checkpoint_every > 0 &&
          step_ % o_.checkpoint_every == 0)
        save_checkpoint();
      if (stop_here) {
        stopped = true;
        sum.interrupted = interrupt;
        break;
      }
    }
    if (!stopped && step_ > start_step) do_eval();
    if (!o_.out_dir.empty() && (step_ > start_step || stopped)) {
      const auto dir = save_checkpoint();
      if (bar) bar->message(tfm::detail::concat("checkpoint: ", dir.string()));
      if (log) {
        const auto hist = metrics_log::read(o_.out_dir / "metrics.jsonl");
        std::vector<std::pair<double, double>> tr, va;
        for (auto const& p : hist.train) tr.emplace_back(double(p.step), p.loss);
        for (auto const& p : hist.eval) va.emplace_back(double(p.step), p.loss);
        write_loss_plot_svg(o_.out_dir / "loss.svg", tr, va, "training loss");
      }
    }
    if (bar) bar->finish();
    sum.step = step_;
    sum.skipped = skipped_;
    sum.overflows = overflows_;
    sum.seconds = std::chrono::duration<double>(clock::now() - t0).count();
    sum.train_seconds = train_s;
    return sum;
  }

 private:
  void update(double lr, double grad_scale) { optimizer_step(m_, opt_, m_.gradients(), lr, grad_scale); }
  Model& m_;
  Optimizer& opt_;
  Schedule sched_;
  Source& train_;
  std::function<eval_metrics(std::int64_t)> eval_;
  train_options o_;
  std::vector<std::int32_t> tok_, tgt_;  // the step's grad_accum micro-batches, one after the other
  std::vector<std::int64_t> counted_;    // targets each micro-batch counts
  std::int64_t step_ = 0, skipped_ = 0, tokens_seen_ = 0;
  int bad_row_ = 0;
  double loss_scale_ = 1.0;
  std::int64_t good_steps_ = 0, overflows_ = 0;
  double last_lr_ = 0, last_norm_ = 0;
};

}  // namespace tfm::train
