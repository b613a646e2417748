// tfm/nn/model.hpp — model<Config>: a decoder-only transformer whose architecture is the type
// Config (nn/config.hpp), with a forward pass (logits, fused cross-entropy loss) and a backward
// pass (every parameter's gradient) on the host. docs/model.md defines the computation.
//
// Memory is planned: parameters and gradients are two flat arrays allocated at construction;
// activations for up to (B, T) tokens are two arenas (parameter type and compute type) allocated
// by reserve(B, T) (or the first forward), not per step. The parameter table gives every
// tensor's name, shape and offset.
//
// With mixed precision (precision_bf16 / precision_fp16, docs/model.md "Mixed precision") the
// parameters, gradients and residual stream stay float; every forward rounds the parameters into
// a compute-type copy, and matrix multiplies read and write compute-type activations.
//
// Block weight matrices are read through the config's storage policy (nn/storage.hpp, docs/model.md
// "Weight storage"): dense, or a packed form (fp8) that every forward refreshes from the float
// master weights and every multiply unpacks into one compute-type scratch matrix.
//
// A config with a lora policy (nn::lora::adapters, docs/model.md "LoRA") appends adapter tensors
// after every base tensor and trains only them: the base is frozen (no gradient memory, no
// gradient work beyond what the adapters need), gradients() covers the trainable tail only.
//
//   tfm::nn::model<tfm::nn::presets::gpt2<>> m;   // GPT-2 small
//   m.init(42);
//   float loss = m.forward(tokens, targets, B, T);
//   m.zero_grad(); m.backward();
#pragma once
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "tfm/core/dtype.hpp"
#include "tfm/core/error.hpp"
#include "tfm/core/memory.hpp"
#include "tfm/core/rng.hpp"
#include "tfm/nn/config.hpp"
#include "tfm/nn/math.hpp"
#include "tfm/nn/ops_host.hpp"
#include "tfm/nn/storage_host.hpp"

namespace tfm::nn {

// One parameter tensor in the flat parameter array.
struct param_info {
  std::string name;
  std::vector<std::int64_t> shape;
  std::size_t offset = 0;  // elements from the start of the parameter array
  std::size_t size = 0;    // elements
  double init_std = 0;     // normal(0, init_std); 0 → constant init_value
  double init_value = 0;
  bool matrix = false;     // a block weight matrix (the layout option applies)
  bool trainable = true;   // false: frozen (the base of a LoRA model)
  std::ptrdiff_t grad_offset = -1;  // elements from the start of the gradient array; -1 when frozen
};

inline constexpr int ignore_index = -100;

namespace detail {

// One adapted projection (the same in every layer): base weight [out, in], adapter rows
// [row0, row0 + rows). Parameters h.{l}.<proj>.lora_A.<name> [r, in], .lora_B.<name> [rows, r].
struct adapter_site {
  unsigned target;   // one nn::lora::target bit
  std::string name;  // q, k, v, qkv, o, gate, up, down
  std::string proj;  // attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj
  int which;         // 0 c_attn, 1 attn c_proj, 2 c_fc, 3 mlp c_proj
  int in, out, row0, rows;
};

// Parameter offsets of one block's tensors; -1 where the config has none.
struct layer_offsets {
  std::ptrdiff_t ln1_w, ln1_b, attn_w, attn_b, proj_w, proj_b, ln2_w, ln2_b, fc_w, fc_b, fcp_w, fcp_b;
};

// What the parameter table depends on, as values: one function (not one per model type) lays
// out the tables of all configs.
struct table_spec {
  bool learned_pos, swiglu, norm_bias, biases, pre_norm, tied, in_out;
  bool lora;
  unsigned lora_targets;
  int lora_rank;
};

// The parameter table of a model: names, shapes and offsets of every tensor, the per-layer
// offsets and the LoRA adapter sites. A base of model<Cfg, Space> that does not depend on the
// config type, so that its code is compiled once per translation unit.
class param_table {
 protected:
  // `reserve` (≥ the size) elements are set aside: the head's padded rows follow its V rows.
  void add_param(bool in_out, std::string name, std::vector<std::int64_t> shape, double std_, double value,
                 bool matrix = false, std::size_t reserve = 0) {
    std::size_t n = 1;
    for (auto s : shape) n *= std::size_t(s);
    if (matrix && in_out) std::swap(shape[0], shape[1]);
    // 16-element alignment keeps every tensor on its own cache line (64 bytes of float)
    n_params_ = (n_params_ + 15) / 16 * 16;
    table_.push_back({std::move(name), std::move(shape), n_params_, n, std_, value, matrix});
    n_params_ += std::max(n, reserve);
  }
  TFM_HOST_NOINLINE void build_table(const table_spec& sp, const dims& d, std::int64_t vocab_padded) {
    const std::int64_t V = d.vocab, C = d.ctx, D = d.d_model, F = d.d_ff, hd = d.head_dim();
    const std::int64_t H = d.heads, KV = d.kv_heads;
    const double s = 0.02, sr = 0.02 / std::sqrt(2.0 * d.layers);
    const std::size_t head_rows = std::size_t(vocab_padded) * std::size_t(D);  // zero rows past V
    const bool io = sp.in_out;
    add_param(io, "wte", {V, D}, s, 0, false, sp.tied ? head_rows : 0);
    if (sp.learned_pos) add_param(io, "wpe", {C, D}, s, 0);
    const std::int64_t fc = sp.swiglu ? 2 * F : F;
    for (int l = 0; l < d.layers; ++l) {
      const std::string h = "h." + std::to_string(l) + ".";
      add_param(io, h + "ln_1.weight", {D}, 0, 1);
      if (sp.norm_bias) add_param(io, h + "ln_1.bias", {D}, 0, 0);
      add_param(io, h + "attn.c_attn.weight", {(H + 2 * KV) * hd, D}, s, 0, true);
      if (sp.biases) add_param(io, h + "attn.c_attn.bias", {(H + 2 * KV) * hd}, 0, 0);
      add_param(io, h + "attn.c_proj.weight", {D, H * hd}, sr, 0, true);
      if (sp.biases) add_param(io, h + "attn.c_proj.bias", {D}, 0, 0);
      add_param(io, h + "ln_2.weight", {D}, 0, 1);
      if (sp.norm_bias) add_param(io, h + "ln_2.bias", {D}, 0, 0);
      add_param(io, h + "mlp.c_fc.weight", {fc, D}, s, 0, true);
      if (sp.biases) add_param(io, h + "mlp.c_fc.bias", {fc}, 0, 0);
      add_param(io, h + "mlp.c_proj.weight", {D, F}, sr, 0, true);
      if (sp.biases) add_param(io, h + "mlp.c_proj.bias", {D}, 0, 0);
    }
    if (sp.pre_norm) {
      add_param(io, "ln_f.weight", {D}, 0, 1);
      if (sp.norm_bias) add_param(io, "ln_f.bias", {D}, 0, 0);
    }
    if (!sp.tied) add_param(io, "lm_head.weight", {V, D}, s, 0, false, head_rows);
    n_params_ = (n_params_ + 15) / 16 * 16;
    tail_ = sp.lora ? n_params_ : 0;
    if (sp.lora) build_adapters(sp, d);
    n_grads_ = n_params_ - tail_;
    for (auto& pi : table_) {
      pi.trainable = pi.offset >= tail_;
      pi.grad_offset = pi.trainable ? std::ptrdiff_t(pi.offset - tail_) : -1;
    }
    // fast per-layer lookup
    layer_.resize(std::size_t(d.layers));
    for (int l = 0; l < d.layers; ++l) {
      const std::string h = "h." + std::to_string(l) + ".";
      auto off = [&](const char* n) -> std::ptrdiff_t {
        const param_info* pi = find(h + n);
        return pi ? std::ptrdiff_t(pi->offset) : -1;
      };
      layer_[std::size_t(l)] = {off("ln_1.weight"),      off("ln_1.bias"),          off("attn.c_attn.weight"),
                                off("attn.c_attn.bias"), off("attn.c_proj.weight"), off("attn.c_proj.bias"),
                                off("ln_2.weight"),      off("ln_2.bias"),          off("mlp.c_fc.weight"),
                                off("mlp.c_fc.bias"),    off("mlp.c_proj.weight"),  off("mlp.c_proj.bias")};
    }
  }
  // Adapter sites in target-bit order, then per layer and site lora_A [r, in] (normal(0,
  // 1/sqrt(in)), like PEFT's Kaiming-uniform in spread) and lora_B [rows, r] (zero: the adapted
  // model starts as the base).
  void build_adapters(const table_spec& sp, const dims& d) {
    const int D = d.d_model, F = d.d_ff, hd = d.head_dim(), H = d.heads, KV = d.kv_heads, qkv = d.qkv_dim();
    const int fc = sp.swiglu ? 2 * F : F, r = sp.lora_rank;
    const unsigned tg = sp.lora_targets;
    auto site = [&](unsigned bit, const char* name, const char* proj, int which, int in, int out, int row0, int rows) {
      if (tg & bit) sites_.push_back({bit, name, proj, which, in, out, row0, rows});
    };
    site(lora::q, "q", "attn.c_attn", 0, D, qkv, 0, H * hd);
    site(lora::k, "k", "attn.c_attn", 0, D, qkv, H * hd, KV * hd);
    site(lora::v, "v", "attn.c_attn", 0, D, qkv, (H + KV) * hd, KV * hd);
    site(lora::qkv, "qkv", "attn.c_attn", 0, D, qkv, 0, qkv);
    site(lora::o, "o", "attn.c_proj", 1, H * hd, D, 0, D);
    site(lora::gate, "gate", "mlp.c_fc", 2, D, fc, 0, F);
    site(lora::up, "up", "mlp.c_fc", 2, D, fc, sp.swiglu ? F : 0, F);
    site(lora::down, "down", "mlp.c_proj", 3, F, D, 0, D);
    lora_a_.clear();
    lora_b_.clear();
    for (int l = 0; l < d.layers; ++l)
      for (auto const& st : sites_) {
        const std::string h = "h." + std::to_string(l) + "." + st.proj;
        lora_a_.push_back(n_params_ = (n_params_ + 15) / 16 * 16);
        add_param(false, h + ".lora_A." + st.name, {r, st.in}, 1.0 / std::sqrt(double(st.in)), 0);
        lora_b_.push_back(n_params_ = (n_params_ + 15) / 16 * 16);
        add_param(false, h + ".lora_B." + st.name, {st.rows, r}, 0, 0);
      }
    n_params_ = (n_params_ + 15) / 16 * 16;
  }
  const param_info* find(std::string_view name) const {
    for (auto const& p : table_)
      if (p.name == name) return &p;
    return nullptr;
  }
  const param_info& info(std::string_view name) const {
    if (const param_info* p = find(name)) return *p;
    throw invalid_argument(tfm::detail::concat("nn::model: no parameter named '", name, "'"));
  }

  std::vector<param_info> table_;
  std::vector<layer_offsets> layer_;
  std::size_t n_params_ = 0;
  std::size_t tail_ = 0;     // first trainable element (0 without LoRA)
  std::size_t n_grads_ = 0;  // trainable elements: n_params_ − tail_
  std::vector<adapter_site> sites_;
  std::vector<std::size_t> lora_a_, lora_b_;  // parameter offsets, [layer · sites + site]
};

}  // namespace detail

template <class Cfg, class Space = space::host>
class model : private detail::param_table {
 public:
  using config = Cfg;
  using traits = config_traits<Cfg>;
  using T = typename traits::param_type;
  // Compute type: T, or bfloat16/half over float master weights (mixed precision, docs/model.md
  // "Mixed precision": matrix-multiply operands and outputs in C, float everywhere else).
  using C = typename traits::compute_type;
  static constexpr bool mixed = !std::is_same_v<C, T>;
  using space_type = Space;
  using backend = typename backend_for<Space, T>::type;
  static constexpr int static_head_dim = traits::static_head_dim;
  using lora_policy = typename traits::lora_policy;
  static constexpr bool has_lora = traits::has_lora;
  static constexpr bool all_dense = traits::all_dense;

  // One adapted projection (detail::adapter_site).
  using adapter_site = detail::adapter_site;

  // Sizes not fixed by the config come from `d`.
  explicit model(dims d = {}) : d_(traits::resolve(d)) {
    build_table(detail::table_spec{traits::learned_pos, traits::swiglu, traits::norm_bias, traits::biases,
                                   traits::pre_norm, traits::tied, traits::layout == weight_layout::in_out, has_lora,
                                   lora_targets(), lora_rank()},
                d_, vocab_padded());
    build_storage();
    params_ = buffer<T, Space>(n_params_);
    grads_ = buffer<T, Space>(n_grads_);
    if constexpr (mixed) cparams_ = buffer<C, Space>(n_cparams_);
    be_.zero(params_.data(), n_params_);
    be_.zero(grads_.data(), n_grads_);
    build_position_tables();
  }

  const dims& sizes() const { return d_; }
  // The vocabulary rounded up to the config's vocab_multiple: the output head's rows and the
  // logits' row stride (= sizes().vocab without padding).
  std::int64_t vocab_padded() const {
    constexpr std::int64_t m = traits::vocab_multiple;
    return (std::int64_t(d_.vocab) + m - 1) / m * m;
  }
  // Elements of the parameters in the table (what 6·N·tokens counts): num_parameters() less the
  // alignment gaps and the head's padded rows.
  std::size_t num_weights() const {
    std::size_t n = 0;
    for (auto const& p : table_) n += p.size;
    return n;
  }
  const std::vector<param_info>& parameter_table() const { return table_; }
  std::size_t num_parameters() const { return n_params_; }
  // The mutable accessors (parameters(), trainable_parameters(), param()) let the caller write:
  // the next forward refreshes the mixed-precision compute copy from them.
  std::span<T> parameters() {
    copy_current_ = false;
    return {params_.data(), n_params_};
  }
  std::span<const T> parameters() const { return {params_.data(), n_params_}; }
  // Gradients of the trainable parameters, in the layout of trainable_parameters(): all of
  // parameters() without LoRA, the adapter tail with it.
  std::span<T> gradients() {
    settle_grads();
    return {grads_.data(), n_grads_};
  }
  std::span<const T> gradients() const {
    settle_grads();
    return {grads_.data(), n_grads_};
  }
  std::span<T> trainable_parameters() {
    copy_current_ = false;
    return {params_.data() + tail_, n_params_ - tail_};
  }
  std::span<const T> trainable_parameters() const { return {params_.data() + tail_, n_params_ - tail_}; }
  std::size_t num_trainable() const { return n_grads_; }

  const param_info& info(std::string_view name) const { return param_table::info(name); }
  bool has(std::string_view name) const { return find(name) != nullptr; }
  std::span<T> param(std::string_view name) {
    auto const& p = info(name);
    copy_current_ = false;
    return {params_.data() + p.offset, p.size};
  }
  std::span<T> grad(std::string_view name) {
    auto const& p = info(name);
    expects<invalid_argument>(p.trainable, "nn::model: parameter '", name,
                              "' is frozen (LoRA trains only the adapters) and has no gradient");
    settle_grads();
    return {grads_.data() + p.grad_offset, p.size};
  }

  // GPT-2 initialisation from `seed` (docs/model.md): parameter p element e draws normal(seed, p, e).
  void init(std::uint64_t seed) {
    std::vector<T> w(n_params_, T(0));
    for (std::size_t p = 0; p < table_.size(); ++p) {
      auto const& pi = table_[p];
      if (pi.init_std == 0) {
        for (std::size_t e = 0; e < pi.size; ++e) w[pi.offset + e] = T(pi.init_value);
      } else {
        for (std::size_t e = 0; e < pi.size; ++e)
          w[pi.offset + e] = T(pi.init_std * double(tfm::rng::normal(seed, p, e)));
      }
    }
    copy_current_ = false;
    be_.upload(params_.data(), w.data(), n_params_);
  }

  // Gradients to zero. Lazily, as PyTorch's set_to_none: the next backward writes the linear
  // layers' weight and bias gradients instead of adding to them (no clearing pass, no reading
  // of the old values) and clears only the rest; reading the gradients before that (gradients(),
  // grad(), gradients_to_host()) clears them all first.
  void zero_grad() { grads_fresh_ = true; }

  // Copies of the parameters / gradients in host memory, and loading parameters from one (any space).
  std::vector<T> parameters_to_host() {
    std::vector<T> h(n_params_);
    be_.download(h.data(), params_.data(), n_params_);
    return h;
  }
  std::vector<T> gradients_to_host() {
    settle_grads();
    std::vector<T> h(n_grads_);
    be_.download(h.data(), grads_.data(), n_grads_);
    return h;
  }
  void parameters_from_host(std::span<const T> h) {
    expects<invalid_argument>(h.size() == n_params_, "nn::model: parameters_from_host got ", h.size(),
                              " values for ", n_params_, " parameters");
    copy_current_ = false;
    be_.upload(params_.data(), h.data(), n_params_);
  }
  backend& get_backend() { return be_; }

  // ---- in-place updates that keep the compute copy (host, mixed precision) ----
  // After an optimizer writes the parameters through trainable_parameters(), the next forward
  // narrows every parameter into the compute copy again: a pass that reads 4 and writes 2 bytes
  // per parameter (10-20 ms for GPT-2 small on two cores). update_parameters(f) calls
  //   f(std::span<T> trainable, const compute_copy_writer& copy)
  // with the trainable parameters (as trainable_parameters()), and f calls copy(off, n) for every
  // range [off, off + n) of the span it changed, once changed, from any thread (disjoint ranges at
  // a time), or writes copy.contiguous(off, n) itself: the optimizers of train/optim.hpp write each
  // block's copy while it is in cache (AdamW in its vector loop). The forwards after it skip the refresh until writable
  // parameters are handed out again (parameters(), trainable_parameters(), param(), init, parameters_from_host), so a
  // span taken before update_parameters must not be written after it.
  static constexpr bool writes_compute_copy = mixed && std::is_same_v<Space, space::host>;
  // Copies of at least this many bytes are written with streaming stores: too large for the caches,
  // the next forward reads them from memory either way, and ordinary stores would first read each
  // line (GPT-2 small's 249 MB bf16 copy: 250 instead of 500 MB moved). A variable, so that tests
  // can take the streaming path with small models.
  static inline std::size_t stream_copy_min_bytes = std::size_t(128) << 20;
  class compute_copy_writer {
   public:
    using compute_type = C;
    // Rounds trainable parameters [off, off + n) into the copy.
    void operator()(std::size_t off, std::size_t n) const { m_->write_copy(off, n); }
    // The copy of trainable parameters [off, off + n) as one array (an optimizer may write it
    // itself), or null where the range crosses a gap of the copy (packed matrices).
    C* contiguous(std::size_t off, std::size_t n) const { return m_->copy_of(off, n); }
    // Whether the copy is too large for the caches (written with streaming stores).
    bool streaming() const { return m_->copy_streams(); }

   private:
    friend class model;
    explicit compute_copy_writer(model* m) : m_(m) {}
    model* m_;
  };
  template <class F>
  void update_parameters(F&& f) {
    static_assert(writes_compute_copy,
                  "nn::model::update_parameters: only host models with mixed precision have a compute copy to write");
    refresh_copy();         // the parameters f leaves alone must be current too
    copy_current_ = false;  // until f has returned
    f(std::span<T>(params_.data() + tail_, n_params_ - tail_), compute_copy_writer(this));
    copy_current_ = true;
  }

  // Plans the activation arena for batches up to B×T.
  void reserve(int B, int T_) {
    expects<invalid_argument>(B > 0 && T_ > 0, "nn::model: batch and sequence length must be positive, got B=", B,
                              " T=", T_);
    expects<invalid_argument>(T_ <= d_.ctx, "nn::model: sequence length ", T_, " exceeds the context length ",
                              d_.ctx);
    if (std::int64_t(B) * T_ <= cap_tokens_ && T_ <= cap_T_ && B <= cap_B_) return;
    cap_B_ = std::max(B, cap_B_);
    cap_T_ = std::max(T_, cap_T_);
    cap_tokens_ = std::int64_t(cap_B_) * cap_T_;
    plan(cap_B_, cap_T_);
  }

  // Bytes held for activations (the arena) and for parameters + gradients.
  std::size_t activation_bytes() const { return arena_.size() * sizeof(T) + carena_.size() * sizeof(C); }
  // (with mixed precision, the compute-type copy of the parameters is included, and with packed
  // weight storage the packed weights and the matrix they unpack into)
  std::size_t parameter_bytes() const {
    return (n_params_ + n_grads_) * sizeof(T) + cparams_.size() * sizeof(C) + storage_bytes();
  }
  // Bytes of packed block weights (0 when all storage is dense) and of their unpacking scratch.
  std::size_t storage_bytes() const { return wstore_.size() + wscratch_.size() * sizeof(C); }
  // The shape of a block weight matrix of kind k as the storage sees it.
  matrix_shape weight_shape(weight_kind k) const {
    const std::int64_t D = d_.d_model, F = d_.d_ff, HD = std::int64_t(d_.heads) * d_.head_dim();
    const std::int64_t fc = traits::swiglu ? 2 * F : F;
    switch (k) {
      case weight_kind::attn_qkv: return {d_.qkv_dim(), D, io_layout};
      case weight_kind::attn_out: return {D, HD, io_layout};
      case weight_kind::mlp_in: return {fc, D, io_layout};
      case weight_kind::mlp_out: return {D, F, io_layout};
    }
    return {};
  }
  // The values a forward now would multiply with for block matrix k of layer l, in the compute
  // type and the model's weight layout (host memory): the parameters (or their compute copy) for
  // dense storage, the unpacked matrix for packed storage. Refreshes both from the parameters,
  // as forward does.
  std::vector<C> effective_weight(int l, weight_kind k) {
    expects<invalid_argument>(l >= 0 && l < d_.layers, "nn::model: effective_weight: no layer ", l);
    refresh_weights();
    const matrix_shape sh = weight_shape(k);
    std::vector<C> h(std::size_t(sh.size()));
    const C* w = nullptr;
    for_each_kind([&](auto kc) {
      if (decltype(kc)::value == k) w = wmat<decltype(kc)::value>(l);
    });
    be_.download(h.data(), w, h.size());
    return h;
  }

  // ---- LoRA (all no-ops or errors without a lora policy) ----
  const std::vector<adapter_site>& adapter_sites() const { return sites_; }
  // alpha / rank, or alpha / sqrt(rank) with rslora.
  static double lora_scale() {
    if constexpr (has_lora)
      return lora_policy::rslora ? lora_policy::alpha / std::sqrt(double(lora_policy::rank))
                                 : lora_policy::alpha / double(lora_policy::rank);
    else
      return 0.0;
  }
  // Training mode (default) applies adapter dropout; evaluation mode does not.
  void set_training(bool on) { training_ = on; }
  bool training() const { return training_; }
  // Evaluation mode until the returned guard goes out of scope, then the previous mode again.
  class eval_scope {
   public:
    explicit eval_scope(model& m) : m_(m), was_(m.training_) { m.training_ = false; }
    ~eval_scope() { m_.training_ = was_; }
    eval_scope(const eval_scope&) = delete;
    eval_scope& operator=(const eval_scope&) = delete;

   private:
    model& m_;
    bool was_;
  };
  [[nodiscard]] eval_scope evaluation() { return eval_scope(*this); }
  // The dropout masks of the next forward/backward are a function of (seed, step, layer,
  // target, element): a run replays exactly from a step. The trainer calls this every step.
  void set_dropout_seed(std::uint64_t seed, std::uint64_t step) {
    dropout_seed_ = seed;
    dropout_step_ = step;
  }
  // Folds scale·B·A into the base rows (forward then skips the adapters); unmerge subtracts it.
  void merge_adapters() {
    expects<invalid_argument>(has_lora, "nn::model: merge_adapters needs a config with a lora policy");
    expects<invalid_argument>(!merged_, "nn::model: the adapters are already merged");
    apply_merge(1.0);
    merged_ = true;
    logits_valid_ = false;
  }
  void unmerge_adapters() {
    expects<invalid_argument>(merged_, "nn::model: unmerge_adapters: the adapters are not merged");
    apply_merge(-1.0);
    merged_ = false;
    logits_valid_ = false;
  }
  bool merged() const { return merged_; }

  // Forward over tokens[B·T] (row-major [B, T]). With targets (same shape; ignore_index = skip)
  // returns the mean cross-entropy; without, returns 0 and only computes logits.
  double forward(const std::int32_t* tokens, const std::int32_t* targets, int B, int T_) {
    return forward_pass(tokens, targets, B, T_, nullptr);
  }

  // forward() and then backward(loss_scale), for training: the cross-entropy's gradient is
  // written over each row of logits while the row is in cache (one pass over the logits instead
  // of two), so afterwards logits() is gone, as after backward(). Same loss and gradients as the
  // two calls, bit for bit. A non-finite loss skips the backward (the gradients are unchanged)
  // and is returned; targets are required.
  double forward_backward(const std::int32_t* tokens, const std::int32_t* targets, int B, int T_,
                          double loss_scale = 1.0) {
    expects<invalid_argument>(targets != nullptr, "nn::model: forward_backward needs targets");
    check_backward(loss_scale);
    const double loss = forward_pass(tokens, targets, B, T_, &loss_scale);
    if (std::isfinite(loss)) backward_from_logit_grads();
    return loss;
  }

 private:
  // fused_scale: null for a plain forward; else the loss scale of a backward that follows, whose
  // logit gradients the cross-entropy writes in place of the logits.
  double forward_pass(const std::int32_t* tokens, const std::int32_t* targets, int B, int T_, const double* fused_scale) {
    reserve(B, T_);
    B_ = B;
    T_cur_ = T_;
    const std::int64_t N = std::int64_t(B) * T_;
    const int D = d_.d_model, V = d_.vocab;
    for (std::int64_t n = 0; n < N; ++n)
      expects<invalid_argument>(tokens[n] >= 0 && tokens[n] < V, "nn::model: token id ", tokens[n], " at position ", n,
                                " is outside the vocabulary [0, ", V, ")");
    be_.upload(tokens_.data(), tokens, std::size_t(N));
    has_targets_ = targets != nullptr;
    if (has_targets_) {
      for (std::int64_t n = 0; n < N; ++n)
        expects<invalid_argument>(targets[n] == ignore_index || (targets[n] >= 0 && targets[n] < V),
                                  "nn::model: target ", targets[n], " at position ", n,
                                  " is outside the vocabulary [0, ", V, ") and is not the ignore index ", ignore_index);
      be_.upload(targets_.data(), targets, std::size_t(N));
    }

    refresh_weights();
    const T* posp = nullptr;
    if constexpr (traits::learned_pos) posp = p("wpe");
    if constexpr (traits::sinusoidal_pos) posp = sin_table_.data();
    expects<invalid_argument>(!(traits::learned_pos || traits::sinusoidal_pos) || posp != nullptr, "nn::model: no position table");
    be_.embedding_forward(B, T_, D, tokens_.data(), p("wte"), V, posp, act(a_resid_, 0));

    for (int l = 0; l < d_.layers; ++l) layer_forward(l, N);

    const C* top = head_input();
    if constexpr (traits::pre_norm)
      norm_fwd(N, act(a_resid_, d_.layers), p("ln_f.weight"), traits::norm_bias ? p("ln_f.bias") : nullptr,
               cbuf(a_lnf_), buf(a_lnf_mean_), buf(a_lnf_rstd_));
    else if constexpr (mixed)
      be_.narrow(N * D, act(a_resid_, d_.layers), cbuf(a_topc_));
    const int Vp = int(vocab_padded());  // the head's rows and the logits' row stride
    lin_fwd(N, D, Vp, top, head_weight(), false, nullptr, cbuf(a_logits_));
    logits_valid_ = true;
    loss_ = 0;
    count_ = 0;
    if (has_targets_ && fused_scale) {
      std::int64_t counted = 0;
      for (std::int64_t n = 0; n < N; ++n) counted += targets[n] != ignore_index;
      const double dscale = logit_grad_scale(*fused_scale, counted);
      C* z = cbuf(a_logits_);
      double total = 0;
      if constexpr (mixed)
        total = be_.xent_forward_backward_mixed(N, V, Vp, z, targets_.data(), ignore_index, buf(a_lse_),
                                                buf(a_losses_), count_, dscale, z);
      else
        total = be_.xent_forward_backward(N, V, Vp, z, targets_.data(), ignore_index, buf(a_lse_), buf(a_losses_),
                                          count_, dscale, z);
      logits_valid_ = false;  // they are the logits' gradients now
      loss_ = count_ > 0 ? total / double(count_) : 0.0;
    } else if (has_targets_) {
      double total = 0;
      if constexpr (mixed)
        total = be_.xent_forward_mixed(N, V, Vp, cbuf(a_logits_), targets_.data(), ignore_index, buf(a_lse_),
                                       buf(a_losses_), count_);
      else
        total = be_.xent_forward(N, V, Vp, cbuf(a_logits_), targets_.data(), ignore_index, buf(a_lse_), buf(a_losses_), count_);
      loss_ = count_ > 0 ? total / double(count_) : 0.0;
    }
    return loss_;
  }

 public:
  // Logits [B, T, vocab_padded()] of the last forward in the compute type, in the model's memory
  // space: rows vocab_padded() apart, of which the first vocab are the vocabulary's (valid
  // until backward, which reuses their memory).
  std::span<const C> logits() const {
    expects<invalid_argument>(logits_valid_, "nn::model: logits are gone (backward reuses their memory) or no forward ran");
    return {carena_.data() + a_logits_, std::size_t(B_) * T_cur_ * std::size_t(vocab_padded())};
  }
  // The logits [B, T, V] as a host vector of the parameter type (the padding columns dropped).
  std::vector<T> logits_to_host() {
    auto l = logits();
    std::vector<C> h(l.size());
    be_.download(h.data(), l.data(), l.size());
    if (const std::size_t V = std::size_t(d_.vocab), Vp = std::size_t(vocab_padded()); Vp != V) {
      for (std::size_t r = 1; r < l.size() / Vp; ++r) std::copy_n(h.data() + r * Vp, V, h.data() + r * V);
      h.resize(l.size() / Vp * V);
    }
    if constexpr (mixed) {
      std::vector<T> w(h.size());
      for (std::size_t i = 0; i < h.size(); ++i) w[i] = static_cast<T>(h[i]);
      return w;
    } else {
      return h;
    }
  }
  double loss() const { return loss_; }
  std::int64_t counted_targets() const { return count_; }

  // Gradients of the mean loss of the last forward, accumulated into gradients().
  // loss_scale multiplies every gradient (dynamic loss scaling: the trainer divides it out).
  void backward(double loss_scale = 1.0) {
    check_backward(loss_scale);
    expects<invalid_argument>(has_targets_, "nn::model: backward needs a forward with targets");
    expects<invalid_argument>(logits_valid_, "nn::model: backward needs a fresh forward (it was already run)");
    const std::int64_t N = std::int64_t(B_) * T_cur_;
    const int V = d_.vocab, Vp = int(vocab_padded());
    C* dz = cbuf(a_logits_);  // in place
    const double dscale = logit_grad_scale(loss_scale, count_);
    if constexpr (mixed)
      be_.xent_backward_mixed(N, V, Vp, dz, targets_.data(), ignore_index, buf(a_lse_), dscale, dz);
    else
      be_.xent_backward(N, V, Vp, dz, targets_.data(), ignore_index, buf(a_lse_), dscale, dz);
    logits_valid_ = false;
    backward_from_logit_grads();
  }

 private:
  void check_backward(double loss_scale) const {
    expects<invalid_argument>(loss_scale > 0 && std::isfinite(loss_scale), "nn::model: the loss scale must be positive and finite, got ", loss_scale);
    expects<invalid_argument>(!merged_, "nn::model: backward with merged adapters (unmerge_adapters() first: the "
                                        "adapter gradients need the adapters separate)");
  }
  // The logits' gradient is loss_scale / (counted targets) · (softmax − onehot). Beyond T's range
  // the scale is T's infinity (a double → float conversion out of range is undefined behaviour;
  // infinity is what overflow detection downstream expects).
  static double logit_grad_scale(double loss_scale, std::int64_t counted) {
    const double s = counted > 0 ? loss_scale / double(counted) : 0.0;
    return s > double(std::numeric_limits<T>::max()) ? std::numeric_limits<double>::infinity() : s;
  }
  // The backward below the cross-entropy: the logits' buffer holds their gradient.
  void backward_from_logit_grads() {
    // After zero_grad(): the linear layers' gradients (overwrite_grads_) are written, the rest
    // cleared here first.
    overwrite_grads_ = grads_fresh_;
    if (grads_fresh_) {
      for (auto [off, n] : cleared_by_backward()) be_.zero(grads_.data() + off, n);
      grads_fresh_ = false;
    }
    struct reset {
      bool& flag;
      ~reset() { flag = false; }
    } const reset_overwrite{overwrite_grads_};
    const int B = B_, T_ = T_cur_;
    const std::int64_t N = std::int64_t(B) * T_;
    const int D = d_.d_model, Vp = int(vocab_padded());
    const C* dz = cbuf(a_logits_);
    T* dr = buf(b_resid_);
    // logits = top · Wᵀ (W [V, D]); pre-norm: the gradient of the final norm's output (compute
    // type), post-norm: of the residual stream
    if constexpr (traits::pre_norm) {
      lin_bwd(N, D, Vp, head_input(), head_weight(), false, dz, cbuf(b_n_), 0.0, head_grad(), nullptr);
      norm_bwd(N, cbuf(b_n_), act(a_resid_, d_.layers), p("ln_f.weight"), buf(a_lnf_mean_), buf(a_lnf_rstd_), dr,
               false, g("ln_f.weight"), traits::norm_bias ? g("ln_f.bias") : nullptr);
    } else {
      lin_bwd(N, D, Vp, head_input(), head_weight(), false, dz, dr, 0.0, head_grad(), nullptr);
    }
    for (int l = d_.layers - 1; l >= 0; --l) layer_backward(l, N);
    T* dpos = nullptr;
    if constexpr (traits::learned_pos) dpos = g("wpe");
    be_.embedding_backward(B, T_, D, tokens_.data(), dr, g("wte"), dpos);
  }

  // ---- lazily cleared gradients (zero_grad) ----
  // Clears the gradients now if zero_grad() left them logically zero. Const: the values do not
  // change, only their storage catches up (a model defined const never had zero_grad() called).
  void settle_grads() const {
    if (!grads_fresh_) return;
    auto& self = const_cast<model&>(*this);
    self.be_.zero(self.grads_.data(), n_grads_);
    grads_fresh_ = false;
  }
  // The gradient ranges (offsets into grads_, lengths) a backward after zero_grad() clears: all
  // but those its linear layers write whole (weights, biases, the head; none with LoRA, whose
  // base is frozen).
  std::vector<std::pair<std::size_t, std::size_t>> cleared_by_backward() {
    std::vector<std::pair<std::size_t, std::size_t>> written, cleared;
    const auto add = [&](T* gp, std::int64_t n) {
      if (gp) written.push_back({std::size_t(gp - grads_.data()), std::size_t(n)});
    };
    for (int l = 0; l < d_.layers; ++l) {
      auto const& o = layer_[std::size_t(l)];
      for_each_kind([&](auto kc) {
        constexpr weight_kind k = decltype(kc)::value;
        const matrix_shape sh = weight_shape(k);
        add(go(kind_offset(o, k)), sh.size());
        add(go(bias_offset(o, k)), sh.rows);
      });
    }
    add(head_grad(), std::int64_t(vocab_padded()) * d_.d_model);
    std::sort(written.begin(), written.end());
    std::size_t at = 0;
    for (auto [off, n] : written) {
      if (off > at) cleared.push_back({at, off - at});
      at = std::max(at, off + n);
    }
    if (n_grads_ > at) cleared.push_back({at, n_grads_ - at});
    return cleared;
  }
  static std::ptrdiff_t bias_offset(const detail::layer_offsets& o, weight_kind k) {
    switch (k) {
      case weight_kind::attn_qkv:
        return o.attn_b;
      case weight_kind::attn_out:
        return o.proj_b;
      case weight_kind::mlp_in:
        return o.fc_b;
      case weight_kind::mlp_out:
        return o.fcp_b;
    }
    return -1;
  }

  // ---- parameter table (detail::param_table) ----
  static constexpr unsigned lora_targets() {
    if constexpr (has_lora)
      return lora_policy::targets;
    else
      return 0;
  }
  void build_position_tables() {
    if constexpr (traits::sinusoidal_pos) {
      std::vector<T> tab(std::size_t(d_.ctx) * d_.d_model);
      for (int t = 0; t < d_.ctx; ++t)
        for (int c = 0; c < d_.d_model; ++c) tab[std::size_t(t) * d_.d_model + c] = T(math::sinusoidal(t, c, d_.d_model));
      sin_table_ = buffer<T, Space>(tab.size());
      be_.upload(sin_table_.data(), tab.data(), tab.size());
    }
    if constexpr (traits::rope) {
      rot_ = math::rope_dims(d_.head_dim(), Cfg::position::fraction);
      std::vector<T> tab(std::max<std::size_t>(std::size_t(d_.ctx) * rot_, 1));
      for (int t = 0; t < d_.ctx; ++t)
        for (int j = 0; j < rot_ / 2; ++j) {
          const double a = math::rope_angle(t, j, rot_, Cfg::position::theta);
          tab[std::size_t(t) * rot_ + 2 * j] = T(std::cos(a));
          tab[std::size_t(t) * rot_ + 2 * j + 1] = T(std::sin(a));
        }
      rope_table_ = buffer<T, Space>(tab.size());
      be_.upload(rope_table_.data(), tab.data(), tab.size());
    }
  }

  using layer_offsets = detail::layer_offsets;

  T* p(std::string_view name) { return params_.data() + info(name).offset; }
  // Gradients of base tensors: null when frozen (the host ops then skip that work).
  T* g(std::string_view name) { return has_lora ? nullptr : grads_.data() + info(name).offset; }
  T* po(std::ptrdiff_t o) { return o < 0 ? nullptr : params_.data() + o; }
  T* go(std::ptrdiff_t o) { return o < 0 || has_lora ? nullptr : grads_.data() + o; }
  // Matrix-multiply operands (weights and their biases) in the compute type: the copy refreshed by
  // every forward with mixed precision, else the parameters themselves.
  C* pc(std::ptrdiff_t o) {
    if (o < 0) return nullptr;
    if constexpr (mixed) {
      const auto it = run_at(std::size_t(o));
      return cparams_.data() + it->dst + (std::size_t(o) - it->src);
    } else {
      return params_.data() + o;
    }
  }

  // ---- weight storage ----
  struct copy_run {
    std::size_t src, dst, n;  // parameter offset, compute-copy offset, elements
  };
  static std::ptrdiff_t kind_offset(const layer_offsets& o, weight_kind k) {
    switch (k) {
      case weight_kind::attn_qkv: return o.attn_w;
      case weight_kind::attn_out: return o.proj_w;
      case weight_kind::mlp_in: return o.fc_w;
      case weight_kind::mlp_out: return o.fcp_w;
    }
    return -1;
  }
  template <class F>
  static void for_each_kind(F&& f) {
    f(std::integral_constant<weight_kind, weight_kind::attn_qkv>{});
    f(std::integral_constant<weight_kind, weight_kind::attn_out>{});
    f(std::integral_constant<weight_kind, weight_kind::mlp_in>{});
    f(std::integral_constant<weight_kind, weight_kind::mlp_out>{});
  }
  // Byte offsets of every packed matrix, the unpacking scratch, and the compute copy's runs: the
  // parameters minus the packed matrices (which the multiplies never read in the compute type).
  void build_storage() {
    store_off_.assign(std::size_t(d_.layers), {-1, -1, -1, -1});
    std::size_t bytes = 0, scratch = 0;
    std::vector<std::pair<std::size_t, std::size_t>> packed;  // parameter ranges not copied
    for (int l = 0; l < d_.layers; ++l)
      for_each_kind([&](auto kc) {
        constexpr weight_kind k = decltype(kc)::value;
        using S = typename traits::template storage_for<k>;
        if constexpr (!storage_traits<S>::dense) {
          const matrix_shape sh = weight_shape(k);
          store_off_[std::size_t(l)][int(k)] = std::ptrdiff_t(bytes);
          bytes = tfm::nn::detail::align_up(bytes + storage_traits<S>::bytes(sh), 64);
          scratch = std::max(scratch, std::size_t(sh.size()));
          const auto off = std::size_t(kind_offset(layer_[std::size_t(l)], k));
          packed.push_back({off, off + std::size_t(sh.size())});
        }
      });
    if (bytes > 0) {
      wstore_ = buffer<std::uint8_t, Space>(bytes);
      wscratch_ = buffer<C, Space>(scratch);
    }
    std::sort(packed.begin(), packed.end());
    cruns_.clear();
    std::size_t at = 0, dst = 0;
    for (auto [a, b] : packed) {
      if (a > at) cruns_.push_back({at, dst, a - at}), dst += (a - at + 15) / 16 * 16;
      at = b;
    }
    if (n_params_ > at || cruns_.empty()) cruns_.push_back({at, dst, n_params_ - at}), dst += n_params_ - at;
    n_cparams_ = dst;
  }
  // The compute copy from the parameters (mixed precision), unless it is current.
  void refresh_copy() {
    if constexpr (mixed)
      if (!copy_current_)
        for (auto const& r : cruns_) be_.narrow(std::int64_t(r.n), params_.data() + r.src, cparams_.data() + r.dst);
  }
  // The copy run holding parameter offset a (runs ascend in both offsets): the last one starting at
  // or before a (a may lie past its end, in a packed matrix); begin() if none does.
  typename std::vector<copy_run>::const_iterator run_at(std::size_t a) const {
    auto it =
        std::upper_bound(cruns_.begin(), cruns_.end(), a, [](std::size_t v, const copy_run& r) { return v < r.src; });
    return it == cruns_.begin() ? it : std::prev(it);
  }
  bool copy_streams() const { return n_cparams_ * sizeof(C) >= stream_copy_min_bytes; }
  void expect_trainable_range(std::size_t off, std::size_t n) const {
    expects<invalid_argument>(off <= n_params_ - tail_ && n <= n_params_ - tail_ - off,
                              "nn::model: compute copy range [", off, ", ", off + n, ") is outside the ",
                              n_params_ - tail_, " trainable parameters");
  }
  // The compute copy of trainable parameters [off, off + n), on the calling thread
  // (compute_copy_writer).
  void write_copy(std::size_t off, std::size_t n) {
    if constexpr (writes_compute_copy) {
      expect_trainable_range(off, n);
      const std::size_t a = tail_ + off, e = a + n;
      const bool stream = copy_streams();
      for (auto it = run_at(a); it != cruns_.end() && it->src < e; ++it) {
        const std::size_t lo = std::max(a, it->src), hi = std::min(e, it->src + it->n);
        if (lo < hi)
          be_.narrow_here(std::int64_t(hi - lo), params_.data() + lo, cparams_.data() + it->dst + (lo - it->src),
                          stream);
      }
    }
  }
  // The compute copy of trainable parameters [off, off + n) when one run holds all of it, else null.
  C* copy_of(std::size_t off, std::size_t n) {
    if constexpr (writes_compute_copy) {
      expect_trainable_range(off, n);
      const std::size_t a = tail_ + off;
      const auto it = run_at(a);
      if (a < it->src || a + n > it->src + it->n) return nullptr;
      return cparams_.data() + it->dst + (a - it->src);
    } else {
      return nullptr;
    }
  }
  // Every forward: the compute copy (mixed precision) and the packed matrices from the parameters.
  void refresh_weights() {
    refresh_copy();
    if constexpr (!all_dense)
      for (int l = 0; l < d_.layers; ++l)
        for_each_kind([&](auto kc) {
          constexpr weight_kind k = decltype(kc)::value;
          using S = typename traits::template storage_for<k>;
          if constexpr (!storage_traits<S>::dense)
            storage_ops<S, Space>::pack(be_, weight_shape(k), params_.data() + kind_offset(layer_[std::size_t(l)], k),
                                        wstore_.data() + store_off_[std::size_t(l)][int(k)]);
        });
  }
  // The matrix a multiply reads for kind K of layer l: in place (dense) or unpacked into scratch.
  template <weight_kind K>
  const C* wmat(int l) {
    using S = typename traits::template storage_for<K>;
    if constexpr (storage_traits<S>::dense) {
      return pc(kind_offset(layer_[std::size_t(l)], K));
    } else {
      storage_ops<S, Space>::unpack(be_, weight_shape(K), wstore_.data() + store_off_[std::size_t(l)][int(K)],
                                    wscratch_.data());
      return wscratch_.data();
    }
  }
  const C* head_weight() { return pc(std::ptrdiff_t(info(traits::tied ? "wte" : "lm_head.weight").offset)); }
  // The LM head's input: the final norm's output (pre-norm) or the top of the residual stream.
  const C* head_input() {
    if constexpr (traits::pre_norm)
      return cbuf(a_lnf_);
    else if constexpr (mixed)
      return cbuf(a_topc_);
    else
      return act(a_resid_, d_.layers);
  }
  T* head_grad() { return traits::tied ? g("wte") : g("lm_head.weight"); }

  // ---- LoRA ----
  bool dropout_active() const {
    if constexpr (has_lora)
      return lora_policy::dropout > 0 && training_;
    else
      return false;
  }
  // Philox stream of one adapter's dropout mask: step, layer and target bit in disjoint bits.
  std::uint64_t dropout_stream(int l, unsigned target) const {
    return (dropout_step_ << 20) ^ (std::uint64_t(l) << 8) ^ std::uint64_t(target);
  }
  // Adds the adapters of projection `which` of layer l: x [N, in] → y [N, out] (row strides in, out).
  void lora_fwd(int l, int which, std::int64_t N, const C* x, C* y) {
    if constexpr (has_lora) {
      if (merged_) return;
      const int r = lora_policy::rank;
      for (std::size_t k = 0; k < sites_.size(); ++k) {
        const auto& st = sites_[k];
        if (st.which != which) continue;
        const std::size_t a = std::size_t(l) * sites_.size() + k;
        const C* xin = x;
        C* t = clay(l, l_lora_t_ + k * lora_t_stride_);
        if (dropout_active()) {
          if constexpr (mixed)
            be_.lora_dropout_mixed(N, st.in, x, st.in, cbuf(b_lora_x_), dropout_seed_, dropout_stream(l, st.target),
                                   lora_policy::dropout);
          else
            be_.lora_dropout(N, st.in, x, st.in, cbuf(b_lora_x_), dropout_seed_, dropout_stream(l, st.target),
                             lora_policy::dropout);
          xin = cbuf(b_lora_x_);
        }
        if constexpr (mixed)
          be_.lora_forward_mixed(N, st.in, st.rows, r, xin, st.in, pc(lora_a_[a]), pc(lora_b_[a]), lora_scale(), t,
                                 y + st.row0, st.out, buf(b_tile_));
        else
          be_.lora_forward(N, st.in, st.rows, r, xin, st.in, pc(lora_a_[a]), pc(lora_b_[a]), lora_scale(), t,
                           y + st.row0, st.out);
      }
    }
  }
  // Backward of lora_fwd: dy [N, out] (the projection's output gradient), dx [N, in] += ….
  template <class DX>
  void lora_bwd(int l, int which, std::int64_t N, const C* x, const C* dy, DX* dx) {
    if constexpr (has_lora) {
      const int r = lora_policy::rank;
      for (std::size_t k = 0; k < sites_.size(); ++k) {
        const auto& st = sites_[k];
        if (st.which != which) continue;
        const std::size_t a = std::size_t(l) * sites_.size() + k;
        T* dA = grads_.data() + (lora_a_[a] - tail_);
        T* dB = grads_.data() + (lora_b_[a] - tail_);
        const C* t = clay(l, l_lora_t_ + k * lora_t_stride_);
        const C* A = pc(lora_a_[a]);
        const C* B = pc(lora_b_[a]);
        if (dropout_active()) {
          // the mask again (not stored): x̃ = drop(x) for dA, then dx += drop'(dt·A) through the same scratch
          C* xd = cbuf(b_lora_x_);
          const auto stream = dropout_stream(l, st.target);
          if constexpr (mixed) {
            be_.lora_dropout_mixed(N, st.in, x, st.in, xd, dropout_seed_, stream, lora_policy::dropout);
            be_.lora_backward_mixed(N, st.in, st.rows, r, xd, st.in, A, B, t, dy + st.row0, st.out, lora_scale(), dA,
                                    dB, cbuf(b_lora_dt_), xd, st.in, 0.0, buf(b_tile_));
            be_.lora_dropout_backward_mixed(N, st.in, xd, dx, st.in, dropout_seed_, stream, lora_policy::dropout);
          } else {
            be_.lora_dropout(N, st.in, x, st.in, xd, dropout_seed_, stream, lora_policy::dropout);
            be_.lora_backward(N, st.in, st.rows, r, xd, st.in, A, B, t, dy + st.row0, st.out, lora_scale(), dA, dB,
                              cbuf(b_lora_dt_), xd, st.in, 0.0);
            be_.lora_dropout_backward(N, st.in, xd, dx, st.in, dropout_seed_, stream, lora_policy::dropout);
          }
        } else if constexpr (mixed) {
          be_.lora_backward_mixed(N, st.in, st.rows, r, x, st.in, A, B, t, dy + st.row0, st.out, lora_scale(), dA, dB,
                                  cbuf(b_lora_dt_), dx, st.in, 1.0, buf(b_tile_));
        } else {
          be_.lora_backward(N, st.in, st.rows, r, x, st.in, A, B, t, dy + st.row0, st.out, lora_scale(), dA, dB,
                            cbuf(b_lora_dt_), dx, st.in, 1.0);
        }
      }
    }
  }
  // base rows += sign·scale·B·A for every adapter (on a host copy of the parameters).
  void apply_merge(double sign) {
    if constexpr (has_lora) {
      auto w = parameters_to_host();
      const int r = lora_policy::rank;
      const double s = sign * lora_scale();
      const bool io = traits::layout == weight_layout::in_out;
      for (int l = 0; l < d_.layers; ++l)
        for (std::size_t k = 0; k < sites_.size(); ++k) {
          const auto& st = sites_[k];
          const std::size_t a = std::size_t(l) * sites_.size() + k;
          const auto& o = layer_[l];
          const std::ptrdiff_t base = st.which == 0 ? o.attn_w : st.which == 1 ? o.proj_w : st.which == 2 ? o.fc_w : o.fcp_w;
          const T* A = w.data() + lora_a_[a];
          const T* B = w.data() + lora_b_[a];
          for (int i = 0; i < st.rows; ++i)
            for (int j = 0; j < st.in; ++j) {
              double acc = 0;
              for (int q = 0; q < r; ++q) acc += double(B[std::size_t(i) * r + q]) * double(A[std::size_t(q) * st.in + j]);
              const std::int64_t row = st.row0 + i;
              const std::size_t idx = io ? std::size_t(j) * st.out + row : std::size_t(row) * st.in + j;
              w[std::size_t(base) + idx] = T(double(w[std::size_t(base) + idx]) + s * acc);
            }
        }
      parameters_from_host(w);
    }
  }

  // ---- activation arena ----
  // Two arenas: arena_ (parameter type: the residual stream, norm and attention statistics, the
  // loss, backward scratch) and carena_ (compute type: everything a matrix multiply reads or
  // writes). Offsets are elements into one of them; per-layer arrays use stride *_stride_.
  void plan(int B, int T_) {
    const std::int64_t N = std::int64_t(B) * T_;
    const std::int64_t D = d_.d_model, Vp = vocab_padded(), F = d_.d_ff, L = d_.layers, H = d_.heads;
    const std::int64_t qkv = d_.qkv_dim(), fc = traits::swiglu ? 2 * F : F, HD = H * d_.head_dim();
    auto taker = [](std::size_t& off) {
      return [&off](std::size_t n) {
        const std::size_t o = off;
        off += (n + 15) / 16 * 16;
        return o;
      };
    };
    const std::size_t stats = be_.template attention_stats_size<traits::flash>(shape(B, T_));
    // per layer; resid-in is shared (resid[l])
    std::size_t lo = 0, clo = 0;
    auto lt = taker(lo);    // parameter type
    auto clt = taker(clo);  // compute type
    l_mid_ = lt(N * D);
    l_m1_ = lt(N);
    l_r1_ = lt(N);
    l_u1_ = traits::pre_norm ? 0 : lt(N * D);
    l_stats_ = lt(stats);
    l_m2_ = lt(N);
    l_r2_ = lt(N);
    l_u2_ = traits::pre_norm ? 0 : lt(N * D);
    l_n1_ = traits::pre_norm ? clt(N * D) : 0;
    l_n2_ = traits::pre_norm ? clt(N * D) : 0;
    // post-norm with mixed precision: the compute-type copies of the two block inputs
    l_x1c_ = !traits::pre_norm && mixed ? clt(N * D) : 0;
    l_x2c_ = !traits::pre_norm && mixed ? clt(N * D) : 0;
    l_qkv_ = clt(N * qkv);
    l_att_ = clt(N * HD);
    l_fc_ = clt(N * fc);
    l_act_ = clt(N * F);
    lora_t_stride_ = has_lora ? (N * lora_rank() + 15) / 16 * 16 : 0;
    l_lora_t_ = clt(sites_.size() * lora_t_stride_);  // t = drop(x)·Aᵀ [N, r] per adapter
    layer_stride_ = lo;
    clayer_stride_ = clo;

    std::size_t off = 0, coff = 0;
    auto take = taker(off);
    auto ctake = taker(coff);
    resid_stride_ = (N * D + 15) / 16 * 16;
    a_resid_ = take(std::size_t(L + 1) * resid_stride_);
    a_layers_ = take(std::size_t(L) * layer_stride_);
    a_lnf_mean_ = take(N);
    a_lnf_rstd_ = take(N);
    a_lse_ = take(N);
    a_losses_ = take(N);
    // backward scratch (reused by every layer)
    b_resid_ = take(N * D);
    b_tmp_ = take(N * D);
    const std::size_t attn_scratch = be_.template attention_scratch_size<traits::flash>(shape(B, T_));
    b_attn_scratch_ = take(std::max<std::size_t>(attn_scratch, 1));
    b_scratch_ = take(std::max({be_.norm_scratch_size(int(D)), be_.linear_scratch_size(int(std::max({Vp, fc, qkv, D}))),
                                std::size_t(1)}));
    // mixed precision: float tiles of the rounded GEMM outputs, float copies of attention operands
    b_tile_ = take(mixed ? be_.mixed_tile_floats(N, std::max({Vp, fc, qkv, D, F, HD})) : 0);
    b_wide_ = take(mixed ? be_.attention_wide_floats(shape(B, T_)) : 0);

    c_layers_ = ctake(std::size_t(L) * clayer_stride_);
    a_lnf_ = traits::pre_norm ? ctake(N * D) : 0;
    a_topc_ = !traits::pre_norm && mixed ? ctake(N * D) : 0;
    a_logits_ = ctake(N * Vp);
    b_n_ = traits::pre_norm ? ctake(N * D) : 0;
    b_ctmp_ = ctake(N * D);
    b_dc_ = mixed ? ctake(N * D) : 0;
    b_qkv_ = ctake(N * qkv);
    b_att_ = ctake(N * HD);
    b_fc_ = ctake(N * fc);
    b_act_ = ctake(N * F);
    b_lora_dt_ = ctake(has_lora ? N * lora_rank() : 0);                          // dt [N, r]
    b_lora_x_ = ctake(has_lora && lora_dropout() > 0 ? N * std::max(D, F) : 0);  // drop(x) [N, in]

    arena_ = buffer<T, Space>(off);
    be_.zero(arena_.data(), off);
    carena_ = buffer<C, Space>(coff);
    if constexpr (mixed)
      be_.zero_compute(carena_.data(), coff);
    else
      be_.zero(carena_.data(), coff);
    tokens_ = buffer<std::int32_t, Space>(std::size_t(N));
    targets_ = buffer<std::int32_t, Space>(std::size_t(N));
  }

  static constexpr int lora_rank() {
    if constexpr (has_lora) return lora_policy::rank;
    else return 0;
  }
  static constexpr double lora_dropout() {
    if constexpr (has_lora) return lora_policy::dropout;
    else return 0.0;
  }

  attention_shape shape(int B, int T_) const {
    const std::int64_t qkv = d_.qkv_dim();
    return attention_shape{B, T_, d_.heads, d_.kv_heads, d_.head_dim(), qkv, qkv, qkv};
  }
  attention_mask mask() const {
    attention_mask m;
    m.causal = traits::is_causal;
    m.window = traits::window;
    m.alibi = traits::alibi;
    m.scale = 0;
    return m;
  }

  T* buf(std::size_t off) { return arena_.data() + off; }
  C* cbuf(std::size_t off) { return carena_.data() + off; }
  T* act(std::size_t base, int l) { return arena_.data() + base + std::size_t(l) * resid_stride_; }
  T* lay(int l, std::size_t off) { return arena_.data() + a_layers_ + std::size_t(l) * layer_stride_ + off; }
  C* clay(int l, std::size_t off) { return carena_.data() + c_layers_ + std::size_t(l) * clayer_stride_ + off; }

  // ---- layer calls: the backend's kernels, or the mixed-precision host kernels ----
  template <class Y>
  void norm_fwd(std::int64_t N, const T* x, const T* w, const T* b, Y* y, T* mean, T* rstd) {
    be_.template norm_forward<!traits::layernorm>(N, d_.d_model, x, w, b, y, mean, rstd, 1e-5);
  }
  template <class G>
  void norm_bwd(std::int64_t N, const G* dy, const T* x, const T* w, const T* mean, const T* rstd, T* dx, bool acc,
                T* dw, T* db) {
    be_.template norm_backward<!traits::layernorm>(N, d_.d_model, dy, x, w, mean, rstd, dx, acc, dw, db,
                                                   buf(b_scratch_));
  }
  // y [N, out] = x·Wᵀ + b (y: compute type, or the parameter type for a float output)
  template <class Y>
  void lin_fwd(std::int64_t N, int in, int out, const C* x, const C* W, bool io, const C* b, Y* y) {
    if constexpr (mixed)
      be_.linear_forward_mixed(N, in, out, x, W, io, b, y, buf(b_tile_));
    else
      be_.linear_forward(N, in, out, x, W, io, b, y);
  }
  template <class DX>
  void lin_bwd(std::int64_t N, int in, int out, const C* x, const C* W, bool io, const C* dy, DX* dx, double beta,
               T* dW, T* db) {
    if constexpr (mixed)
      be_.linear_backward_mixed(N, in, out, x, W, io, dy, dx, beta, dW, db, buf(b_tile_), buf(b_scratch_),
                                overwrite_grads_);
    else
      be_.linear_backward(N, in, out, x, W, io, dy, dx, beta, dW, db, buf(b_scratch_), overwrite_grads_);
  }
  // y = a (residual) + b (a block's output)
  void residual_add(std::int64_t n, const T* a, const C* b, T* y) {
    if constexpr (mixed)
      be_.add_mixed(n, a, b, y);
    else
      be_.add(n, a, b, y);
  }
  // A residual-stream gradient [N, D] as a matrix-multiply operand: rounded into scratch (mixed).
  const C* compute_grad(std::int64_t N, const T* d) {
    if constexpr (mixed) {
      be_.narrow(N * d_.d_model, d, cbuf(b_dc_));
      return cbuf(b_dc_);
    } else {
      return d;
    }
  }
  // A residual-stream tensor [N, D] as a matrix-multiply input: rounded into `copy` (mixed).
  const C* compute_input(std::int64_t N, const T* x, C* copy) {
    if constexpr (mixed) {
      be_.narrow(N * d_.d_model, x, copy);
      return copy;
    } else {
      return x;
    }
  }
  static constexpr bool io_layout = traits::layout == weight_layout::in_out;

  void attention_forward(int l, std::int64_t N, const C* in) {
    const auto& o = layer_[l];
    const int D = d_.d_model, qkv = d_.qkv_dim(), hd = d_.head_dim();
    C* q = clay(l, l_qkv_);
    lin_fwd(N, D, qkv, in, wmat<weight_kind::attn_qkv>(l), io_layout, pc(o.attn_b), q);
    lora_fwd(l, 0, N, in, q);
    const auto sh = shape(B_, T_cur_);
    const C* k = q + std::int64_t(d_.heads) * hd;
    const C* v = k + std::int64_t(d_.kv_heads) * hd;
    if constexpr (mixed) {
      if constexpr (traits::rope)
        be_.rope_apply_mixed(N, T_cur_, d_.heads + d_.kv_heads, hd, rot_, qkv, q, rope_table_.data(), false);
      be_.template attention_forward_mixed<traits::flash, static_head_dim>(sh, mask(), q, k, v, clay(l, l_att_),
                                                                           lay(l, l_stats_), buf(b_wide_));
    } else {
      if constexpr (traits::rope)
        be_.rope_apply(N, T_cur_, d_.heads + d_.kv_heads, hd, rot_, qkv, q, rope_table_.data(), false);
      be_.template attention_forward<traits::flash, static_head_dim>(sh, mask(), q, k, v, clay(l, l_att_),
                                                                    lay(l, l_stats_));
    }
  }
  // d_out: gradient of the attention block's output (after c_proj) [N, D]. Writes the gradient of
  // the block input into din (din = beta·din + …).
  template <class DIn>
  void attention_backward(int l, std::int64_t N, const C* in, const T* d_out, DIn* din, double beta) {
    const auto& o = layer_[l];
    const int D = d_.d_model, qkv = d_.qkv_dim(), hd = d_.head_dim(), HD = d_.heads * hd;
    const C* dy = compute_grad(N, d_out);
    C* datt = cbuf(b_att_);
    lin_bwd(N, HD, D, clay(l, l_att_), wmat<weight_kind::attn_out>(l), io_layout, dy, datt, 0.0, go(o.proj_w), go(o.proj_b));
    lora_bwd(l, 1, N, clay(l, l_att_), dy, datt);
    const auto sh = shape(B_, T_cur_);
    const C* q = clay(l, l_qkv_);
    const C* k = q + std::int64_t(d_.heads) * hd;
    const C* v = k + std::int64_t(d_.kv_heads) * hd;
    C* dq = cbuf(b_qkv_);
    C* dk = dq + std::int64_t(d_.heads) * hd;
    C* dv = dk + std::int64_t(d_.kv_heads) * hd;
    if constexpr (mixed) {
      be_.template attention_backward_mixed<traits::flash, static_head_dim>(sh, mask(), q, k, v, clay(l, l_att_), datt,
                                                                            lay(l, l_stats_), dq, dk, dv,
                                                                            buf(b_attn_scratch_), buf(b_wide_));
      if constexpr (traits::rope)
        be_.rope_apply_mixed(N, T_cur_, d_.heads + d_.kv_heads, hd, rot_, qkv, dq, rope_table_.data(), true);
    } else {
      be_.template attention_backward<traits::flash, static_head_dim>(sh, mask(), q, k, v, clay(l, l_att_), datt,
                                                                     lay(l, l_stats_), dq, dk, dv,
                                                                     buf(b_attn_scratch_));
      if constexpr (traits::rope)
        be_.rope_apply(N, T_cur_, d_.heads + d_.kv_heads, hd, rot_, qkv, dq, rope_table_.data(), true);
    }
    lin_bwd(N, D, qkv, in, wmat<weight_kind::attn_qkv>(l), io_layout, dq, din, beta, go(o.attn_w), go(o.attn_b));
    lora_bwd(l, 0, N, in, dq, din);
  }

  void mlp_forward(int l, std::int64_t N, const C* in, C* out) {
    const auto& o = layer_[l];
    const int D = d_.d_model, F = d_.d_ff, fc = traits::swiglu ? 2 * F : F;
    lin_fwd(N, D, fc, in, wmat<weight_kind::mlp_in>(l), io_layout, pc(o.fc_b), clay(l, l_fc_));
    lora_fwd(l, 2, N, in, clay(l, l_fc_));
    if constexpr (mixed) {
      if constexpr (traits::swiglu)
        be_.swiglu_forward_mixed(N, F, clay(l, l_fc_), clay(l, l_act_));
      else
        be_.gelu_forward_mixed(N * F, clay(l, l_fc_), clay(l, l_act_));
    } else {
      if constexpr (traits::swiglu)
        be_.swiglu_forward(N, F, clay(l, l_fc_), clay(l, l_act_));
      else
        be_.gelu_forward(N * F, clay(l, l_fc_), clay(l, l_act_));
    }
    lin_fwd(N, F, D, clay(l, l_act_), wmat<weight_kind::mlp_out>(l), io_layout, pc(o.fcp_b), out);
    lora_fwd(l, 3, N, clay(l, l_act_), out);
  }
  template <class DIn>
  void mlp_backward(int l, std::int64_t N, const C* in, const T* d_out, DIn* din, double beta) {
    const auto& o = layer_[l];
    const int D = d_.d_model, F = d_.d_ff, fc = traits::swiglu ? 2 * F : F;
    const C* dy = compute_grad(N, d_out);
    C* dact = cbuf(b_act_);
    C* dfc = cbuf(b_fc_);
    lin_bwd(N, F, D, clay(l, l_act_), wmat<weight_kind::mlp_out>(l), io_layout, dy, dact, 0.0, go(o.fcp_w), go(o.fcp_b));
    lora_bwd(l, 3, N, clay(l, l_act_), dy, dact);
    if constexpr (mixed) {
      if constexpr (traits::swiglu)
        be_.swiglu_backward_mixed(N, F, clay(l, l_fc_), dact, dfc);
      else
        be_.gelu_backward_mixed(N * F, clay(l, l_fc_), dact, dfc);
    } else {
      if constexpr (traits::swiglu)
        be_.swiglu_backward(N, F, clay(l, l_fc_), dact, dfc);
      else
        be_.gelu_backward(N * F, clay(l, l_fc_), dact, dfc);
    }
    lin_bwd(N, D, fc, in, wmat<weight_kind::mlp_in>(l), io_layout, dfc, din, beta, go(o.fc_w), go(o.fc_b));
    lora_bwd(l, 2, N, in, dfc, din);
  }

  void layer_forward(int l, std::int64_t N) {
    const auto& o = layer_[l];
    const std::int64_t ND = N * d_.d_model;
    const int HD = d_.heads * d_.head_dim();
    const T* r = act(a_resid_, l);
    T* next = act(a_resid_, l + 1);
    T* mid = lay(l, l_mid_);
    C* tmp = cbuf(b_ctmp_);  // block output before the residual add
    if constexpr (traits::pre_norm) {
      norm_fwd(N, r, po(o.ln1_w), po(o.ln1_b), clay(l, l_n1_), lay(l, l_m1_), lay(l, l_r1_));
      attention_forward(l, N, clay(l, l_n1_));
      lin_fwd(N, HD, d_.d_model, clay(l, l_att_), wmat<weight_kind::attn_out>(l), io_layout, pc(o.proj_b), tmp);
      lora_fwd(l, 1, N, clay(l, l_att_), tmp);
      residual_add(ND, r, tmp, mid);
      norm_fwd(N, mid, po(o.ln2_w), po(o.ln2_b), clay(l, l_n2_), lay(l, l_m2_), lay(l, l_r2_));
      mlp_forward(l, N, clay(l, l_n2_), tmp);
      residual_add(ND, mid, tmp, next);
    } else {
      attention_forward(l, N, compute_input(N, r, clay(l, l_x1c_)));
      lin_fwd(N, HD, d_.d_model, clay(l, l_att_), wmat<weight_kind::attn_out>(l), io_layout, pc(o.proj_b), tmp);
      lora_fwd(l, 1, N, clay(l, l_att_), tmp);
      residual_add(ND, r, tmp, lay(l, l_u1_));
      norm_fwd(N, lay(l, l_u1_), po(o.ln1_w), po(o.ln1_b), mid, lay(l, l_m1_), lay(l, l_r1_));
      mlp_forward(l, N, compute_input(N, mid, clay(l, l_x2c_)), tmp);
      residual_add(ND, mid, tmp, lay(l, l_u2_));
      norm_fwd(N, lay(l, l_u2_), po(o.ln2_w), po(o.ln2_b), next, lay(l, l_m2_), lay(l, l_r2_));
    }
  }

  // On entry buf(b_resid_) holds ∂L/∂resid[l+1]; on exit ∂L/∂resid[l].
  void layer_backward(int l, std::int64_t N) {
    const auto& o = layer_[l];
    T* dr = buf(b_resid_);
    T* du = buf(b_tmp_);
    const T* r = act(a_resid_, l);
    T* mid = lay(l, l_mid_);
    if constexpr (traits::pre_norm) {
      C* dn = cbuf(b_n_);  // gradient of a norm's output (compute type)
      // next = mid + mlp(N2(mid))
      mlp_backward(l, N, clay(l, l_n2_), dr, dn, 0.0);
      norm_bwd(N, dn, mid, po(o.ln2_w), lay(l, l_m2_), lay(l, l_r2_), dr, true, go(o.ln2_w), go(o.ln2_b));
      // mid = r + proj(attn(N1(r)))
      attention_backward(l, N, clay(l, l_n1_), dr, dn, 0.0);
      norm_bwd(N, dn, r, po(o.ln1_w), lay(l, l_m1_), lay(l, l_r1_), dr, true, go(o.ln1_w), go(o.ln1_b));
    } else {
      // the matrix-multiply inputs of the two blocks: the saved compute-type copies (mixed)
      const C* x1 = nullptr;
      const C* x2 = nullptr;
      if constexpr (mixed) {
        x1 = clay(l, l_x1c_);
        x2 = clay(l, l_x2c_);
      } else {
        x1 = r;
        x2 = mid;
      }
      // next = N2(u2), u2 = mid + mlp(mid)
      norm_bwd(N, dr, lay(l, l_u2_), po(o.ln2_w), lay(l, l_m2_), lay(l, l_r2_), du, false, go(o.ln2_w), go(o.ln2_b));
      mlp_backward(l, N, x2, du, du, 1.0);  // du = ∂L/∂mid
      // mid = N1(u1), u1 = r + attn(r)
      norm_bwd(N, du, lay(l, l_u1_), po(o.ln1_w), lay(l, l_m1_), lay(l, l_r1_), dr, false, go(o.ln1_w), go(o.ln1_b));
      be_.copy(du, dr, std::size_t(N) * d_.d_model);
      attention_backward(l, N, x1, du, dr, 1.0);
    }
  }

  dims d_;
  bool training_ = true, merged_ = false;
  std::uint64_t dropout_seed_ = 0, dropout_step_ = 0;
  backend be_;
  buffer<T, Space> params_, grads_, arena_, sin_table_, rope_table_;
  // Mixed precision: the compute copy equals the parameters (an update_parameters() wrote both and
  // nothing has handed out writable parameters since); forward then skips the refresh.
  bool copy_current_ = false;
  mutable bool grads_fresh_ = false;   // zero_grad() since the last backward: grads_ hold stale values
  bool overwrite_grads_ = false;       // during such a backward: linear layers write their gradients
  buffer<C, Space> cparams_, carena_;  // mixed precision: the compute copy (empty otherwise); C activations
  std::vector<copy_run> cruns_;          // the compute copy's parameter runs
  std::size_t n_cparams_ = 0;
  std::vector<std::array<std::ptrdiff_t, weight_kinds>> store_off_;  // packed bytes per layer and kind; -1 dense
  buffer<std::uint8_t, Space> wstore_;  // packed block matrices
  buffer<C, Space> wscratch_;           // the unpacked matrix a multiply reads
  int rot_ = 0;

  int cap_B_ = 0, cap_T_ = 0;
  std::int64_t cap_tokens_ = 0;
  int B_ = 0, T_cur_ = 0;
  buffer<std::int32_t, Space> tokens_, targets_;
  bool has_targets_ = false, logits_valid_ = false;
  double loss_ = 0;
  std::int64_t count_ = 0;

  std::size_t layer_stride_ = 0, clayer_stride_ = 0, resid_stride_ = 0;
  // per-layer offsets (parameter-type arena / compute-type arena)
  std::size_t l_mid_ = 0, l_m1_ = 0, l_r1_ = 0, l_u1_ = 0, l_stats_ = 0, l_m2_ = 0, l_r2_ = 0, l_u2_ = 0;
  std::size_t l_n1_ = 0, l_n2_ = 0, l_x1c_ = 0, l_x2c_ = 0, l_qkv_ = 0, l_att_ = 0, l_fc_ = 0, l_act_ = 0,
              l_lora_t_ = 0, lora_t_stride_ = 0;
  // whole-model offsets (parameter-type arena)
  std::size_t a_resid_ = 0, a_layers_ = 0, a_lnf_mean_ = 0, a_lnf_rstd_ = 0, a_lse_ = 0, a_losses_ = 0, b_resid_ = 0,
              b_tmp_ = 0, b_attn_scratch_ = 0, b_scratch_ = 0, b_tile_ = 0, b_wide_ = 0;
  // whole-model offsets (compute-type arena)
  std::size_t c_layers_ = 0, a_lnf_ = 0, a_topc_ = 0, a_logits_ = 0, b_n_ = 0, b_ctmp_ = 0, b_dc_ = 0, b_qkv_ = 0,
              b_att_ = 0, b_fc_ = 0, b_act_ = 0, b_lora_dt_ = 0, b_lora_x_ = 0;
};

}  // namespace tfm::nn
