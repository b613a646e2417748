// tfm/train/lora.hpp — LoRA adapter files: save_adapters / load_adapters write and read only a
// model's adapter tensors (nn::lora, docs/model.md "LoRA") in the layout of Hugging Face PEFT:
//   dir/adapter_model.safetensors   lora_A [r, in] and lora_B [out, r] of every adapted module
//   dir/adapter_config.json         peft_type LORA, r, lora_alpha, target_modules, … (only keys
//                                   PEFT knows: PEFT refuses others); tfm's architecture string
//                                   and target bits go in the safetensors metadata
// Names follow PEFT where PEFT can express the targets:
//   llama family: base_model.model.model.layers.{i}.self_attn.{q,k,v,o}_proj.lora_{A,B}.weight,
//                 ….mlp.{gate,up,down}_proj.lora_{A,B}.weight
//   gpt2 family:  base_model.model.transformer.h.{i}.{attn.c_attn, attn.c_proj, mlp.c_fc,
//                 mlp.c_proj}.lora_{A,B}.weight (targets qkv, o, up, down; fan_in_fan_out)
// Anything else (q/k/v alone on GPT-2's fused c_attn, qkv on llama, other architectures) keeps
// tfm's parameter names (h.{i}.attn.c_attn.lora_A.q, …) and lists the tfm target names.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tfm/core/error.hpp"
#include "tfm/io/safetensors.hpp"
#include "tfm/nn/model.hpp"
#include "tfm/train/checkpoint.hpp"

namespace tfm::train {

namespace detail {

// Whether PEFT's module names can describe this config's adapters.
template <class Cfg>
constexpr bool peft_names() {
  using pol = typename nn::config_traits<Cfg>::lora_policy;
  constexpr hf_family fam = family_of<Cfg>();
  if constexpr (fam == hf_family::llama) return !(pol::targets & nn::lora::qkv);
  if constexpr (fam == hf_family::gpt2) return !(pol::targets & (nn::lora::q | nn::lora::k | nn::lora::v));
  return false;
}

// (module path below the layer, target_modules entry) of one adapter target under PEFT names.
template <class Cfg>
std::pair<std::string, std::string> peft_module(unsigned target) {
  if constexpr (family_of<Cfg>() == hf_family::llama) {
    switch (target) {
      case nn::lora::q: return {"self_attn.q_proj", "q_proj"};
      case nn::lora::k: return {"self_attn.k_proj", "k_proj"};
      case nn::lora::v: return {"self_attn.v_proj", "v_proj"};
      case nn::lora::o: return {"self_attn.o_proj", "o_proj"};
      case nn::lora::gate: return {"mlp.gate_proj", "gate_proj"};
      case nn::lora::up: return {"mlp.up_proj", "up_proj"};
      case nn::lora::down: return {"mlp.down_proj", "down_proj"};
      default: break;
    }
  } else {
    // GPT-2: both projections are called c_proj, so those two keep their parent in the name
    // (PEFT matches target_modules as a suffix of the module path).
    switch (target) {
      case nn::lora::qkv: return {"attn.c_attn", "c_attn"};
      case nn::lora::o: return {"attn.c_proj", "attn.c_proj"};
      case nn::lora::up: return {"mlp.c_fc", "c_fc"};
      case nn::lora::down: return {"mlp.c_proj", "mlp.c_proj"};
      default: break;
    }
  }
  throw invalid_argument(tfm::detail::concat("lora: no PEFT module for target bit ", target));
}

// The file name of layer l's adapter at `site` (B: lora_B, else lora_A).
template <class Cfg, class Site>
std::string adapter_file_name(int l, const Site& site, bool B) {
  if constexpr (peft_names<Cfg>()) {
    const std::string prefix = family_of<Cfg>() == hf_family::llama ? "base_model.model.model.layers."
                                                                     : "base_model.model.transformer.h.";
    return prefix + std::to_string(l) + "." + peft_module<Cfg>(site.target).first + (B ? ".lora_B" : ".lora_A") +
           ".weight";
  } else {
    return "h." + std::to_string(l) + "." + site.proj + (B ? ".lora_B." : ".lora_A.") + site.name;
  }
}

template <class Model>
std::string adapter_param_name(int l, const typename Model::adapter_site& site, bool B) {
  return "h." + std::to_string(l) + "." + site.proj + (B ? ".lora_B." : ".lora_A.") + site.name;
}

}  // namespace detail

// The adapter_config.json of a LoRA model.
template <class Cfg, class Space>
nlohmann::json adapter_config(const nn::model<Cfg, Space>& m) {
  using pol = typename nn::config_traits<Cfg>::lora_policy;
  nlohmann::json targets = nlohmann::json::array();
  for (auto const& s : m.adapter_sites()) {
    if constexpr (detail::peft_names<Cfg>())
      targets.push_back(detail::peft_module<Cfg>(s.target).second);
    else
      targets.push_back(s.name);
  }
  return {{"peft_type", "LORA"},
          {"task_type", "CAUSAL_LM"},
          {"r", pol::rank},
          {"lora_alpha", pol::alpha},
          {"lora_dropout", pol::dropout},
          {"use_rslora", pol::rslora},
          {"target_modules", targets},
          {"bias", "none"},
          {"fan_in_fan_out", family_of<Cfg>() == hf_family::gpt2 && detail::peft_names<Cfg>()}};
}

// Writes dir/adapter_model.safetensors (the adapter tensors only) and dir/adapter_config.json.
// Each file is written to a temporary name, fsynced and renamed into place.
template <class Cfg, class Space>
void save_adapters(nn::model<Cfg, Space>& m, const std::filesystem::path& dir) {
  static_assert(nn::config_traits<Cfg>::has_lora, "train::save_adapters: the config has no lora policy");
  using model_t = nn::model<Cfg, Space>;
  using T = typename model_t::T;
  std::filesystem::create_directories(dir);
  const auto w = m.parameters_to_host();
  io::safetensors_writer out;
  for (int l = 0; l < m.sizes().layers; ++l)
    for (auto const& s : m.adapter_sites())
      for (bool B : {false, true}) {
        const auto& p = m.info(detail::adapter_param_name<model_t>(l, s, B));
        out.add(detail::adapter_file_name<Cfg>(l, s, B), std::span<const T>(w.data() + p.offset, p.size), p.shape);
      }
  out.set_metadata("format", "pt");
  out.set_metadata("tfm_architecture", architecture_string<Cfg>());
  out.set_metadata("tfm_targets", std::to_string(nn::config_traits<Cfg>::lora_policy::targets));
  out.write(dir / "adapter_model.safetensors");
  write_file_atomic<checkpoint_error>(dir / "adapter_config.json", adapter_config(m).dump(2) + "\n", true);
}

// Reads adapters written by save_adapters into m. Checks the architecture, rank, targets, alpha,
// rslora and every tensor's shape; changes m only when all of it is right.
template <class Cfg, class Space>
void load_adapters(nn::model<Cfg, Space>& m, const std::filesystem::path& dir) {
  static_assert(nn::config_traits<Cfg>::has_lora, "train::load_adapters: the config has no lora policy");
  using model_t = nn::model<Cfg, Space>;
  using T = typename model_t::T;
  using pol = typename nn::config_traits<Cfg>::lora_policy;
  const std::string where = dir.string();
  expects<checkpoint_error>(!m.merged(), where, ": load_adapters into a model with merged adapters (unmerge first)");
  const auto cp = dir / "adapter_config.json";
  nlohmann::json cfg = nlohmann::json::parse(read_file<checkpoint_error>(cp), nullptr, false);
  expects<checkpoint_error>(!cfg.is_discarded() && cfg.is_object(), cp.string(), ": not a JSON object");
  io::safetensors_file f(dir / "adapter_model.safetensors");
  const auto meta = [&](const char* k) {
    auto it = f.metadata().find(k);
    return it == f.metadata().end() ? std::string("?") : it->second;
  };
  const std::string arch = meta("tfm_architecture");
  expects<checkpoint_error>(arch == architecture_string<Cfg>(), where, ": the adapters are for architecture '", arch,
                            "' but the model is '", architecture_string<Cfg>(), "'");
  // The fields are read with their JSON types checked (value() would throw nlohmann's type_error
  // without the file, and cut an integer to its low 32 bits).
  const auto field = [&](const char* k, const char* want, auto ok) {
    const auto it = cfg.find(k);
    expects<checkpoint_error>(it != cfg.end() && ok(*it), cp.string(), ": \"", k, "\" is ",
                              it == cfg.end() ? std::string("missing") : it->dump(), ", not ", want);
    return *it;
  };
  const auto rank = field("r", "an integer", [](const nlohmann::json& j) { return j.is_number_integer(); });
  const bool rank_fits = rank.is_number_unsigned() ? rank.template get<std::uint64_t>() == std::uint64_t(pol::rank)
                                                   : rank.template get<std::int64_t>() == std::int64_t(pol::rank);
  expects<checkpoint_error>(rank_fits, where, ": the adapters have rank ", rank.dump(), ", the model ", pol::rank);
  const std::string targets = meta("tfm_targets");
  expects<checkpoint_error>(targets == std::to_string(pol::targets), where, ": the adapters target bits ", targets,
                            ", the model's lora policy ", pol::targets);
  const double alpha =
      field("lora_alpha", "a number", [](const nlohmann::json& j) { return j.is_number(); }).template get<double>();
  const auto rs = cfg.find("use_rslora");  // absent: false, as PEFT writes it only when set
  expects<checkpoint_error>(rs == cfg.end() || rs->is_boolean(), cp.string(), ": \"use_rslora\" is ",
                            rs == cfg.end() ? std::string() : rs->dump(), ", not true or false");
  const bool rslora = rs != cfg.end() && rs->template get<bool>();
  expects<checkpoint_error>(alpha == pol::alpha && rslora == pol::rslora, where, ": the adapters have lora_alpha ",
                            alpha, " use_rslora ", rslora, ", the model ", pol::alpha, " / ", pol::rslora);
  std::vector<T> w = m.parameters_to_host();
  for (int l = 0; l < m.sizes().layers; ++l)
    for (auto const& s : m.adapter_sites())
      for (bool B : {false, true}) {
        const auto& p = m.info(detail::adapter_param_name<model_t>(l, s, B));
        const std::string n = detail::adapter_file_name<Cfg>(l, s, B);
        expects<checkpoint_error>(f.has(n), where, ": adapter_model.safetensors has no tensor ", n);
        const auto& i = f.info(n);
        expects<checkpoint_error>(i.shape == p.shape, where, ": tensor ", n, " has shape ",
                                  tfm::io::detail::shape_string(i.shape), ", the model needs ",
                                  tfm::io::detail::shape_string(p.shape));
        const auto v = f.read_as<T>(n);
        std::copy(v.begin(), v.end(), w.begin() + std::ptrdiff_t(p.offset));
      }
  m.parameters_from_host(w);
}

}  // namespace tfm::train
