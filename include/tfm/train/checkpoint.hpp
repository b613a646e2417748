// tfm/train/checkpoint.hpp — model weights in the formats other tools load, and checkpoint
// directories that survive being killed at any moment.
//
// Weights: save_pretrained(model, dir) writes dir/model.safetensors and dir/config.json with the
// tensor names, shapes and config keys of Hugging Face transformers:
//   - gpt2 family (LayerNorm, learned positions, GELU, pre-norm, MHA, causal) → GPT2LMHeadModel:
//     transformer.wte.weight, transformer.h.{i}.attn.c_attn.weight [D, 3D] (Conv1D: [in, out]), …
//   - llama family (RMSNorm, full RoPE, SwiGLU, no biases, pre-norm, causal) → LlamaForCausalLM:
//     model.layers.{i}.self_attn.{q,k,v,o}_proj.weight, mlp.{gate,up,down}_proj.weight, …
//   - anything else: tfm's own names (docs/model.md) and "model_type": "tfm".
// Every config.json also carries "tfm_architecture", the config's choices as a string;
// load_pretrained refuses weights whose architecture or sizes differ from the model's.
//
// Checkpoints: checkpoint_dir(root, keep_last) writes root/step-NNNNNNNN/ holding the weights
// above, trainer_state.safetensors (optimizer state, step, data position, counters, in tensors
// and metadata) and manifest.json (size and XXH64 of every file). The directory is assembled
// under a temporary name, every file fsynced, then renamed into place and the parent fsynced:
// a reader sees the previous checkpoint or the complete new one. Loading checks the manifest
// before reading anything, and reads everything before changing the model: a truncated or
// corrupted checkpoint is refused with the file named, never half-loaded.
#pragma once
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <unistd.h>
#include <nlohmann/json.hpp>
#include <xxhash.h>

#include "tfm/core/error.hpp"
#include "tfm/core/file.hpp"
#include "tfm/io/safetensors.hpp"
#include "tfm/nn/model.hpp"

namespace tfm::train {

class checkpoint_error : public error {
 public:
  using error::error;
};

enum class hf_family { gpt2, llama, native };

// The config's choices as one string, e.g. "norm=layernorm/pre pos=learned mlp=gelu attn=mha/causal/w0
// biases=1 tied=1 param=f32". Kernel (naive/flash) and weight layout are not part of it: they
// do not change the function the weights compute.
template <class Cfg>
std::string architecture_string() {
  using tr = nn::config_traits<Cfg>;
  std::string pos = tr::learned_pos ? "learned" : tr::sinusoidal_pos ? "sinusoidal" : tr::alibi ? "alibi" : "none";
  if constexpr (tr::rope)
    pos = tfm::detail::concat("rope(theta=", tr::position::theta, ",fraction=", tr::position::fraction, ")");
  const std::string heads = tr::kv_fixed == -1 ? "mha" : tr::kv_fixed == 1 ? "mqa" : "gqa";
  return tfm::detail::concat("norm=", tr::layernorm ? "layernorm" : "rmsnorm", tr::pre_norm ? "/pre" : "/post",
                             " pos=", pos, " mlp=", tr::swiglu ? "swiglu" : "gelu", " attn=", heads,
                             tr::is_causal ? "/causal" : "/bidirectional", "/w", tr::window, " biases=", int(tr::biases),
                             " tied=", int(tr::tied), " param=", sizeof(typename tr::param_type) == 8 ? "f64" : "f32");
}

template <class Cfg>
constexpr hf_family family_of() {
  using tr = nn::config_traits<Cfg>;
  constexpr bool common = tr::pre_norm && tr::is_causal && tr::window == 0;
  if constexpr (common && tr::layernorm && tr::learned_pos && !tr::swiglu && tr::kv_fixed == -1) return hf_family::gpt2;
  if constexpr (common && tr::rope && !tr::layernorm && tr::swiglu && !tr::biases) {
    if constexpr (tr::position::fraction == 1.0) return hf_family::llama;
  }
  return hf_family::native;
}

namespace detail {

// One exported tensor: rows [row0, row0 + rows) of a tfm parameter (all of it for vectors and
// embeddings), as [rows, in] (Linear) or transposed to [in, rows] (GPT-2's Conv1D).
struct hf_piece {
  std::string hf, tfm;
  std::int64_t row0 = 0, rows = -1;
  bool transpose = false;
};

template <class Cfg>
std::vector<hf_piece> hf_pieces(const nn::dims& d) {
  using tr = nn::config_traits<Cfg>;
  constexpr hf_family fam = family_of<Cfg>();
  std::vector<hf_piece> v;
  const std::int64_t hd = d.head_dim(), H = d.heads, KV = d.kv_heads, F = d.d_ff;
  if constexpr (fam == hf_family::gpt2) {
    v.push_back({"transformer.wte.weight", "wte"});
    v.push_back({"transformer.wpe.weight", "wpe"});
    for (int l = 0; l < d.layers; ++l) {
      const std::string h = "h." + std::to_string(l) + ".", t = "transformer." + h;
      for (const char* n : {"ln_1", "ln_2"}) {
        v.push_back({t + n + ".weight", h + n + ".weight"});
        if (tr::biases) v.push_back({t + n + ".bias", h + n + ".bias"});
      }
      for (const char* n : {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}) {
        v.push_back({t + n + ".weight", h + n + ".weight", 0, -1, true});
        if (tr::biases) v.push_back({t + n + ".bias", h + n + ".bias"});
      }
    }
    v.push_back({"transformer.ln_f.weight", "ln_f.weight"});
    if (tr::biases) v.push_back({"transformer.ln_f.bias", "ln_f.bias"});
    if (!tr::tied) v.push_back({"lm_head.weight", "lm_head.weight"});
  } else if constexpr (fam == hf_family::llama) {
    v.push_back({"model.embed_tokens.weight", "wte"});
    for (int l = 0; l < d.layers; ++l) {
      const std::string h = "h." + std::to_string(l) + ".", t = "model.layers." + std::to_string(l) + ".";
      v.push_back({t + "input_layernorm.weight", h + "ln_1.weight"});
      v.push_back({t + "self_attn.q_proj.weight", h + "attn.c_attn.weight", 0, H * hd});
      v.push_back({t + "self_attn.k_proj.weight", h + "attn.c_attn.weight", H * hd, KV * hd});
      v.push_back({t + "self_attn.v_proj.weight", h + "attn.c_attn.weight", (H + KV) * hd, KV * hd});
      v.push_back({t + "self_attn.o_proj.weight", h + "attn.c_proj.weight"});
      v.push_back({t + "post_attention_layernorm.weight", h + "ln_2.weight"});
      v.push_back({t + "mlp.gate_proj.weight", h + "mlp.c_fc.weight", 0, F});
      v.push_back({t + "mlp.up_proj.weight", h + "mlp.c_fc.weight", F, F});
      v.push_back({t + "mlp.down_proj.weight", h + "mlp.c_proj.weight"});
    }
    v.push_back({"model.norm.weight", "ln_f.weight"});
    if (!tr::tied) v.push_back({"lm_head.weight", "lm_head.weight"});
  }
  return v;
}

// Logical [out, in] view of a parameter whatever its storage layout.
struct matrix_view {
  std::int64_t out, in;
  bool stored_in_out;
  std::size_t at(std::int64_t r, std::int64_t c) const {
    return stored_in_out ? std::size_t(c * out + r) : std::size_t(r * in + c);
  }
};

template <class Cfg>
matrix_view view_of(const nn::param_info& p) {
  const bool io = p.matrix && nn::config_traits<Cfg>::layout == nn::weight_layout::in_out;
  if (p.shape.size() == 1) return {p.shape[0], 1, false};
  return io ? matrix_view{p.shape[1], p.shape[0], true} : matrix_view{p.shape[0], p.shape[1], false};
}

inline std::uint64_t file_xxh64(const std::filesystem::path& p, std::uint64_t& size) {
  std::ifstream i(p, std::ios::binary);
  if (!i) throw checkpoint_error(tfm::detail::concat(p.string(), ": cannot open (", std::strerror(errno), ")"));
  XXH64_state_t* st = XXH64_createState();
  XXH64_reset(st, 0);
  std::vector<char> buf(1 << 20);
  size = 0;
  while (i) {
    i.read(buf.data(), std::streamsize(buf.size()));
    const auto n = i.gcount();
    XXH64_update(st, buf.data(), std::size_t(n));
    size += std::uint64_t(n);
  }
  const auto h = XXH64_digest(st);
  XXH64_freeState(st);
  return h;
}

inline std::string hex64(std::uint64_t v) {
  char b[17];
  std::snprintf(b, sizeof b, "%016llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace detail

// The config.json for a model (Hugging Face keys for the gpt2 / llama families).
template <class Cfg>
nlohmann::json hf_config(const nn::dims& d) {
  using tr = nn::config_traits<Cfg>;
  constexpr hf_family fam = family_of<Cfg>();
  nlohmann::json j;
  if constexpr (fam == hf_family::gpt2) {
    j = {{"architectures", {"GPT2LMHeadModel"}},
         {"model_type", "gpt2"},
         {"vocab_size", d.vocab},
         {"n_positions", d.ctx},
         {"n_ctx", d.ctx},
         {"n_embd", d.d_model},
         {"n_layer", d.layers},
         {"n_head", d.heads},
         {"n_inner", d.d_ff},
         {"activation_function", "gelu_new"},
         {"layer_norm_epsilon", 1e-5},
         {"resid_pdrop", 0.0},
         {"embd_pdrop", 0.0},
         {"attn_pdrop", 0.0},
         {"scale_attn_weights", true},
         {"tie_word_embeddings", tr::tied}};
  } else if constexpr (fam == hf_family::llama) {
    j = {{"architectures", {"LlamaForCausalLM"}},
         {"model_type", "llama"},
         {"vocab_size", d.vocab},
         {"max_position_embeddings", d.ctx},
         {"hidden_size", d.d_model},
         {"num_hidden_layers", d.layers},
         {"num_attention_heads", d.heads},
         {"num_key_value_heads", d.kv_heads},
         {"intermediate_size", d.d_ff},
         {"hidden_act", "silu"},
         {"rms_norm_eps", 1e-5},
         {"rope_theta", double(tr::position::theta)},
         {"attention_bias", false},
         {"mlp_bias", false},
         {"tie_word_embeddings", tr::tied}};
  } else {
    j = {{"model_type", "tfm"},
         {"vocab_size", d.vocab},
         {"context", d.ctx},
         {"d_model", d.d_model},
         {"layers", d.layers},
         {"heads", d.heads},
         {"kv_heads", d.kv_heads},
         {"d_ff", d.d_ff}};
  }
  j["torch_dtype"] = sizeof(typename tr::param_type) == 8 ? "float64" : "float32";
  j["tfm_architecture"] = architecture_string<Cfg>();
  return j;
}

// Reads the sizes a config.json describes (any of the three families).
inline nn::dims dims_from_config(const nlohmann::json& j, const std::string& where) {
  auto get = [&](const char* k) -> int {
    auto it = j.find(k);
    // get<int>() would keep the low 32 bits of a larger value (2^32 + 20 read as 20)
    const bool fits =
        it != j.end() && it->is_number_integer() &&
        (it->is_number_unsigned() ? it->get<std::uint64_t>() <= std::uint64_t(INT_MAX)
                                  : it->get<std::int64_t>() >= INT_MIN && it->get<std::int64_t>() <= INT_MAX);
    if (!fits)
      throw checkpoint_error(tfm::detail::concat(where, ": config.json has no integer '", k, "' (of int range)"));
    return it->get<int>();
  };
  nn::dims d;
  const auto model_type = j.find("model_type");
  const std::string type = model_type != j.end() && model_type->is_string() ? model_type->get<std::string>() : "";
  if (type == "gpt2") {
    d = {get("vocab_size"), get("n_positions"), get("n_embd"), get("n_layer"), get("n_head"), get("n_head"), 0};
    d.d_ff = j.contains("n_inner") && !j["n_inner"].is_null() ? get("n_inner") : 4 * d.d_model;  // null: 4 * n_embd
  } else if (type == "llama") {
    d = {get("vocab_size"), get("max_position_embeddings"), get("hidden_size"), get("num_hidden_layers"),
         get("num_attention_heads"), get("num_key_value_heads"), get("intermediate_size")};
  } else if (type == "tfm") {
    d = {get("vocab_size"), get("context"), get("d_model"), get("layers"), get("heads"), get("kv_heads"), get("d_ff")};
  } else {
    throw checkpoint_error(tfm::detail::concat(where, ": config.json model_type '", type,
                                               "' is not one tfm reads (gpt2, llama, tfm)"));
  }
  return d;
}

// A LoRA adapter tensor (h.{i}.<proj>.lora_A.<t> / lora_B.<t>): the trainable tail of a LoRA model.
inline bool is_adapter(const nn::param_info& p) {
  return p.name.find(".lora_A.") != std::string::npos || p.name.find(".lora_B.") != std::string::npos;
}

// Writes dir/model.safetensors and dir/config.json (creating dir). A LoRA model's adapters are
// included under their tfm names (config.json then says "tfm_lora_adapters": true, and a plain
// model refuses the file); a model with merged adapters writes its merged base weights only —
// a plain model's file.
template <class Cfg, class Space>
void save_pretrained(nn::model<Cfg, Space>& m, const std::filesystem::path& dir,
                     const nlohmann::json& extra_config = nlohmann::json::object()) {
  using T = typename nn::model<Cfg, Space>::T;
  std::filesystem::create_directories(dir);
  const auto w = m.parameters_to_host();
  const bool adapters = nn::config_traits<Cfg>::has_lora && !m.merged();
  io::safetensors_writer out;
  const auto pieces = detail::hf_pieces<Cfg>(m.sizes());
  if (pieces.empty()) {
    for (auto const& p : m.parameter_table())
      if (adapters || !is_adapter(p)) out.add(p.name, std::span<const T>(w.data() + p.offset, p.size), p.shape);
  } else {
    for (auto const& pc : pieces) {
      const auto& p = m.info(pc.tfm);
      const auto v = detail::view_of<Cfg>(p);
      const std::int64_t rows = pc.rows < 0 ? v.out : pc.rows;
      std::vector<T> t(std::size_t(rows * v.in));
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < v.in; ++c)
          t[pc.transpose ? std::size_t(c * rows + r) : std::size_t(r * v.in + c)] = w[p.offset + v.at(pc.row0 + r, c)];
      std::vector<std::int64_t> shape = p.shape.size() == 1 ? std::vector<std::int64_t>{rows}
                                        : pc.transpose      ? std::vector<std::int64_t>{v.in, rows}
                                                            : std::vector<std::int64_t>{rows, v.in};
      out.add(pc.hf, std::span<const T>(t), shape);
    }
    // LoRA adapters have no Hugging Face name in a full model file: they go in under tfm's own
    // names (train/lora.hpp writes the PEFT adapter files).
    for (auto const& p : m.parameter_table())
      if (adapters && is_adapter(p)) out.add(p.name, std::span<const T>(w.data() + p.offset, p.size), p.shape);
  }
  out.set_metadata("format", "pt");
  out.write(dir / "model.safetensors");
  auto cfg = hf_config<Cfg>(m.sizes());
  if (adapters) cfg["tfm_lora_adapters"] = true;
  // keys only the caller knows (the data's end-of-text id as bos/eos_token_id, say) go on top
  if (extra_config.is_object()) cfg.update(extra_config);
  write_file_atomic<checkpoint_error>(dir / "config.json", cfg.dump(2) + "\n", true);
}

// Loads weights written by save_pretrained (or by transformers, for the gpt2 / llama families)
// into m. Checks the architecture string when present, the sizes, every tensor's presence,
// dtype and shape; changes m only when all of it is right. A LoRA model's adapters are read when
// the file has them and keep their current values otherwise (base weights into a LoRA model).
template <class Cfg, class Space>
void load_pretrained(nn::model<Cfg, Space>& m, const std::filesystem::path& dir) {
  using T = typename nn::model<Cfg, Space>::T;
  const std::string where = dir.string();
  nlohmann::json cfg = nlohmann::json::parse(read_file<checkpoint_error>(dir / "config.json"), nullptr, false);
  if (cfg.is_discarded() || !cfg.is_object())
    throw checkpoint_error(tfm::detail::concat((dir / "config.json").string(), ": not a JSON object"));
  if (cfg.contains("tfm_architecture")) {
    const std::string a = cfg["tfm_architecture"].is_string() ? cfg["tfm_architecture"].get<std::string>() : "";
    expects<checkpoint_error>(a == architecture_string<Cfg>(), where, ": the weights are for architecture '", a,
                              "' but the model is '", architecture_string<Cfg>(), "'");
  }
  const auto lora_flag = cfg.find("tfm_lora_adapters");
  expects<checkpoint_error>(lora_flag == cfg.end() || lora_flag->is_boolean(), (dir / "config.json").string(),
                            ": \"tfm_lora_adapters\" must be true or false");
  expects<checkpoint_error>(nn::config_traits<Cfg>::has_lora || lora_flag == cfg.end() || !lora_flag->get<bool>(),
                            where,
                            ": the weights hold unmerged LoRA adapters, which this model (no lora policy) would drop; "
                            "load them into the LoRA config, or merge_adapters() before save_pretrained");
  const nn::dims d = dims_from_config(cfg, where), md = m.sizes();
  expects<checkpoint_error>(d.vocab == md.vocab && d.ctx == md.ctx && d.d_model == md.d_model && d.layers == md.layers &&
                                d.heads == md.heads && d.kv_heads == md.kv_heads && d.d_ff == md.d_ff,
                            where, ": config.json sizes (", d.to_string(), ") differ from the model's (", md.to_string(), ")");
  io::safetensors_file f(dir / "model.safetensors");
  std::vector<T> w = m.parameters_to_host();  // adapters absent from the file keep these values
  const auto pieces = detail::hf_pieces<Cfg>(md);
  auto read_adapters = [&] {
    for (auto const& p : m.parameter_table()) {
      if (!is_adapter(p) || !f.has(p.name)) continue;
      const auto& i = f.info(p.name);
      expects<checkpoint_error>(i.shape == p.shape, where, ": tensor ", p.name, " has shape ",
                                tfm::io::detail::shape_string(i.shape), ", the model needs ",
                                tfm::io::detail::shape_string(p.shape));
      const auto v = f.read_as<T>(p.name);
      std::copy(v.begin(), v.end(), w.begin() + std::ptrdiff_t(p.offset));
    }
  };
  if (pieces.empty()) {
    for (auto const& p : m.parameter_table()) {
      if (is_adapter(p)) continue;
      const auto& i = f.info(p.name);
      expects<checkpoint_error>(i.shape == p.shape, where, ": tensor ", p.name, " has shape ", tfm::io::detail::shape_string(i.shape),
                                ", the model needs ", tfm::io::detail::shape_string(p.shape));
      const auto v = f.read_as<T>(p.name);
      std::copy(v.begin(), v.end(), w.begin() + std::ptrdiff_t(p.offset));
    }
  } else {
    for (auto const& pc : pieces) {
      const auto& p = m.info(pc.tfm);
      const auto mv = detail::view_of<Cfg>(p);
      const std::int64_t rows = pc.rows < 0 ? mv.out : pc.rows;
      const std::vector<std::int64_t> shape = p.shape.size() == 1 ? std::vector<std::int64_t>{rows}
                                              : pc.transpose      ? std::vector<std::int64_t>{mv.in, rows}
                                                                  : std::vector<std::int64_t>{rows, mv.in};
      const auto& i = f.info(pc.hf);
      expects<checkpoint_error>(i.shape == shape, where, ": tensor ", pc.hf, " has shape ", tfm::io::detail::shape_string(i.shape),
                                ", the model needs ", tfm::io::detail::shape_string(shape));
      const auto t = f.read_as<T>(pc.hf);
      for (std::int64_t r = 0; r < rows; ++r)
        for (std::int64_t c = 0; c < mv.in; ++c)
          w[p.offset + mv.at(pc.row0 + r, c)] = t[pc.transpose ? std::size_t(c * rows + r) : std::size_t(r * mv.in + c)];
    }
  }
  read_adapters();
  m.parameters_from_host(w);
}

// ---- checkpoint directories ----

// What a trainer saves beside the weights: named arrays (optimizer state) and scalar fields.
struct trainer_state {
  std::map<std::string, std::string> fields;       // step, data position, counters, … as text
  std::map<std::string, std::vector<float>> arrays;  // optimizer state
};

class checkpoint_dir {
 public:
  explicit checkpoint_dir(std::filesystem::path root, int keep_last = 3) : root_(std::move(root)), keep_(keep_last) {
    expects<checkpoint_error>(keep_last >= 1, "checkpoint_dir: keep_last must be at least 1, got ", keep_last);
  }
  const std::filesystem::path& root() const { return root_; }

  static std::string step_name(std::int64_t step) {
    char b[32];
    std::snprintf(b, sizeof b, "step-%08lld", static_cast<long long>(step));
    return b;
  }

  // Writes a complete checkpoint for `step`, then removes all but the newest keep_last ones.
  template <class Cfg, class Space>
  std::filesystem::path save(std::int64_t step, nn::model<Cfg, Space>& m, const trainer_state& st,
                             const nlohmann::json& extra_config = nlohmann::json::object()) {
    std::filesystem::create_directories(root_);
    const auto final_dir = root_ / step_name(step);
    const auto tmp = root_ / (".tmp-" + step_name(step) + "-" + std::to_string(::getpid()));
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);
    save_pretrained(m, tmp, extra_config);
    {
      io::safetensors_writer w;
      for (auto const& [k, v] : st.arrays) w.add("optimizer." + k, std::span<const float>(v), {std::int64_t(v.size())});
      for (auto const& [k, v] : st.fields) w.set_metadata(k, v);
      w.set_metadata("tfm_architecture", architecture_string<Cfg>());
      w.write(tmp / "trainer_state.safetensors");
    }
    nlohmann::json man;
    man["step"] = step;
    for (const char* f : {"model.safetensors", "config.json", "trainer_state.safetensors"}) {
      std::uint64_t size = 0;
      const auto h = detail::file_xxh64(tmp / f, size);
      sync_path<checkpoint_error>(tmp / f);
      man["files"][f] = {{"bytes", size}, {"xxh64", detail::hex64(h)}};
    }
    write_file_atomic<checkpoint_error>(tmp / "manifest.json", man.dump(2) + "\n", true);
    sync_path<checkpoint_error>(tmp, true);
    if (std::filesystem::exists(final_dir)) {  // the same step again (a rerun): swap, then drop the old one
      const auto old = root_ / (".old-" + step_name(step) + "-" + std::to_string(::getpid()));
      std::filesystem::rename(final_dir, old);
      std::filesystem::rename(tmp, final_dir);
      std::filesystem::remove_all(old, ec);
    } else {
      std::filesystem::rename(tmp, final_dir, ec);
      if (ec)
        throw checkpoint_error(tfm::detail::concat(final_dir.string(), ": cannot rename the checkpoint into place (",
                                                   ec.message(), ")"));
    }
    sync_path<checkpoint_error>(root_, true);
    prune(final_dir);
    return final_dir;
  }

  // Complete checkpoints (with a manifest), oldest first.
  std::vector<std::filesystem::path> list() const {
    std::vector<std::filesystem::path> v;
    std::error_code ec;
    if (!std::filesystem::is_directory(root_, ec)) return v;
    for (auto const& e : std::filesystem::directory_iterator(root_)) {
      const auto n = e.path().filename().string();
      if (e.is_directory() && n.rfind("step-", 0) == 0 && std::filesystem::exists(e.path() / "manifest.json"))
        v.push_back(e.path());
    }
    std::sort(v.begin(), v.end());
    return v;
  }
  std::optional<std::filesystem::path> latest() const {
    auto v = list();
    if (v.empty()) return std::nullopt;
    return v.back();
  }

  // Checks the manifest of a checkpoint directory: every file present with its size and hash.
  static void verify(const std::filesystem::path& dir) {
    const auto mp = dir / "manifest.json";
    expects<checkpoint_error>(std::filesystem::exists(mp), dir.string(),
                              ": no manifest.json (an incomplete checkpoint, or not a tfm checkpoint)");
    nlohmann::json man = nlohmann::json::parse(read_file<checkpoint_error>(mp), nullptr, false);
    expects<checkpoint_error>(!man.is_discarded() && man.is_object() && man.contains("files") && man["files"].is_object(),
                              mp.string(), ": not a valid manifest");
    // The files load() reads must be listed: a manifest that lost them would check nothing.
    for (const char* f : {"model.safetensors", "config.json", "trainer_state.safetensors"})
      expects<checkpoint_error>(man["files"].contains(f), mp.string(), ": not a valid manifest (no entry for ", f, ")");
    for (auto const& [name, info] : man["files"].items()) {
      expects<checkpoint_error>(name != "." && name != ".." && std::filesystem::path(name).filename() == name,
                                mp.string(), ": lists '", name, "', which is not a file name in the checkpoint");
      expects<checkpoint_error>(info.is_object() && info.contains("bytes") && info["bytes"].is_number_unsigned() &&
                                    info.contains("xxh64") && info["xxh64"].is_string(),
                                mp.string(), ": the entry for ", name,
                                " needs \"bytes\" (an integer) and \"xxh64\" (a string)");
      const auto p = dir / name;
      expects<checkpoint_error>(std::filesystem::exists(p), p.string(), ": missing (listed in the manifest)");
      std::uint64_t size = 0;
      const auto h = detail::file_xxh64(p, size);
      const std::uint64_t want = info.value("bytes", std::uint64_t(0));
      expects<checkpoint_error>(size == want, p.string(), ": ", size, " bytes, the manifest says ", want,
                                " (truncated or overwritten)");
      expects<checkpoint_error>(detail::hex64(h) == info.value("xxh64", std::string()), p.string(),
                                ": checksum mismatch (corrupted)");
    }
  }

  // Verifies and loads a checkpoint: weights into m, the rest returned. `check` (optional) sees
  // the trainer state first and throws if it does not fit the caller; m changes only if
  // everything checked out.
  template <class Cfg, class Space>
  static trainer_state load(const std::filesystem::path& dir, nn::model<Cfg, Space>& m,
                            const std::function<void(const trainer_state&)>& check = {}) {
    verify(dir);
    trainer_state st;
    io::safetensors_file f(dir / "trainer_state.safetensors");
    const auto& md = f.metadata();
    auto it = md.find("tfm_architecture");
    expects<checkpoint_error>(it != md.end() && it->second == architecture_string<Cfg>(), dir.string(),
                              ": the trainer state is for architecture '", it == md.end() ? "?" : it->second,
                              "' but the model is '", architecture_string<Cfg>(), "'");
    for (auto const& [k, v] : md)
      if (k != "tfm_architecture" && k != "format") st.fields[k] = v;
    for (auto const& n : f.names()) {
      expects<checkpoint_error>(n.rfind("optimizer.", 0) == 0, dir.string(), ": unexpected tensor ", n,
                                " in trainer_state.safetensors");
      st.arrays[n.substr(10)] = f.read_as<float>(n);
    }
    if (check) check(st);
    load_pretrained(m, dir);  // last: it changes m only when the weights check out
    return st;
  }

 private:
  // Removes the oldest checkpoints until keep_last remain. The one just written (`newest`) counts
  // as the newest whatever its step: a run resumed from an older checkpoint than the directory's
  // last (resume(dir)) writes steps below those of the abandoned run, and rotation by name alone
  // deleted the checkpoint it had just written (with keep_last = 1) and kept the stale one.
  void prune(const std::filesystem::path& newest) {
    auto v = list();
    if (const auto it = std::find(v.begin(), v.end(), newest); it != v.end()) std::rotate(it, it + 1, v.end());
    std::error_code ec;
    while (v.size() > std::size_t(keep_)) {
      std::filesystem::remove_all(v.front(), ec);
      v.erase(v.begin());
    }
  }

  std::filesystem::path root_;
  int keep_;
};

}  // namespace tfm::train
