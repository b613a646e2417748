// Weights in Hugging Face's names and layouts (GPT2LMHeadModel, LlamaForCausalLM) and tfm's own,
// round trips that give the same logits, checkpoint directories: manifest, keep-last, and
// refusal of truncated, corrupted, incomplete or mismatched checkpoints without touching the model.
#define TFM_TEST_MODULE train_checkpoint
#include "support/test_main.hpp"
#include "support/temp_files.hpp"

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "nn/model_configs.hpp"
#include "nn/model_test_util.hpp"
#include "tfm/train/checkpoint.hpp"
#include "tfm/train/lora.hpp"

namespace fs = std::filesystem;
namespace nn = tfm::nn;
namespace tr = tfm::train;

namespace {

using tfm::test::check_throws_with;
using tfm::test::temp_dir;

template <class Cfg>
std::vector<float> logits_of(nn::model<Cfg>& m) {
  const auto tok = tfm::test::random_tokens(2 * 8, m.sizes().vocab, 5);
  m.forward(tok.data(), nullptr, 2, 8);
  return m.logits_to_host();
}

// Save, load into a fresh model: identical parameters and logits.
template <class Cfg>
void round_trip(const nn::dims& d, const fs::path& dir) {
  nn::model<Cfg> a(d), b(d);
  tfm::test::randomize(a, 42);
  tr::save_pretrained(a, dir);
  tr::load_pretrained(b, dir);
  const auto pa = a.parameters_to_host(), pb = b.parameters_to_host();
  BOOST_TEST(pa == pb, boost::test_tools::per_element());
  const auto la = logits_of(a), lb = logits_of(b);
  BOOST_TEST(la == lb, boost::test_tools::per_element());
}

struct gpt2_in_out : tfm::test::cfg_gpt2<float> {
  static constexpr nn::weight_layout weights = nn::weight_layout::in_out;
};
struct gpt2_untied : tfm::test::cfg_gpt2<float> {
  static constexpr bool tied = false;
};
struct gpt2_lora_all : tfm::test::cfg_gpt2<float> {
  using lora = nn::lora::adapters<nn::lora::qkv | nn::lora::o | nn::lora::up | nn::lora::down, 4>;
};
struct llama_lora_all : tfm::test::cfg_llama<float> {
  using lora = nn::lora::adapters<nn::lora::q | nn::lora::k | nn::lora::v | nn::lora::o | nn::lora::gate |
                                      nn::lora::up | nn::lora::down, 4>;
};

}  // namespace

BOOST_AUTO_TEST_CASE(gpt2_uses_transformers_names_and_conv1d_layout) {
  temp_dir d;
  using cfg = tfm::test::cfg_gpt2<float>;
  static_assert(tr::family_of<cfg>() == tr::hf_family::gpt2);
  const nn::dims dims{20, 16, 16, 2, 2, 2, 40};
  nn::model<cfg> m(dims);
  tfm::test::randomize(m, 1);
  tr::save_pretrained(m, d.path);
  tfm::io::safetensors_file f(d.path / "model.safetensors");
  BOOST_TEST(f.has("transformer.wte.weight"));
  BOOST_TEST(f.has("transformer.wpe.weight"));
  BOOST_TEST(f.has("transformer.ln_f.bias"));
  BOOST_TEST(!f.has("lm_head.weight"));  // tied, as GPT-2's own files
  const std::vector<std::int64_t> c_attn{16, 48}, c_fc{16, 40}, proj{40, 16};
  BOOST_TEST(f.info("transformer.h.1.attn.c_attn.weight").shape == c_attn, boost::test_tools::per_element());
  BOOST_TEST(f.info("transformer.h.0.mlp.c_fc.weight").shape == c_fc, boost::test_tools::per_element());
  BOOST_TEST(f.info("transformer.h.0.mlp.c_proj.weight").shape == proj, boost::test_tools::per_element());
  BOOST_TEST(f.size() == 2 + 2 * 12 + 2u);
  // Conv1D [in, out]: element (i, o) is tfm's W[o, i]
  const auto w = f.read_as<float>("transformer.h.1.attn.c_attn.weight");
  const auto tw = m.param("h.1.attn.c_attn.weight");
  for (int o = 0; o < 48; o += 7)
    for (int i = 0; i < 16; i += 3) BOOST_TEST(w[std::size_t(i) * 48 + o] == tw[std::size_t(o) * 16 + i]);
  std::ifstream cj(d.path / "config.json");
  const auto j = nlohmann::json::parse(cj);
  BOOST_TEST(j["model_type"] == "gpt2");
  BOOST_TEST(j["architectures"][0] == "GPT2LMHeadModel");
  BOOST_TEST(j["n_embd"] == 16);
  BOOST_TEST(j["n_inner"] == 40);
  BOOST_TEST(j["n_positions"] == 16);
  BOOST_TEST(j["activation_function"] == "gelu_new");
  BOOST_TEST(j["tie_word_embeddings"] == true);
  // keys the caller adds (the data's end-of-text id) land in config.json
  tr::save_pretrained(m, d.path / "eot", {{"bos_token_id", 7}, {"eos_token_id", 7}});
  std::ifstream cj2(d.path / "eot" / "config.json");
  const auto j2 = nlohmann::json::parse(cj2);
  BOOST_TEST(j2["eos_token_id"] == 7);
  BOOST_TEST(j2["bos_token_id"] == 7);
  BOOST_TEST(j2["model_type"] == "gpt2");
}

BOOST_AUTO_TEST_CASE(llama_uses_transformers_names) {
  temp_dir d;
  using cfg = tfm::test::cfg_llama<float>;
  static_assert(tr::family_of<cfg>() == tr::hf_family::llama);
  const nn::dims dims{20, 16, 16, 2, 4, 2, 24};
  nn::model<cfg> m(dims);
  tfm::test::randomize(m, 1);
  tr::save_pretrained(m, d.path);
  tfm::io::safetensors_file f(d.path / "model.safetensors");
  const std::vector<std::int64_t> q{16, 16}, kv{8, 16}, gate{24, 16}, down{16, 24};
  BOOST_TEST(f.info("model.layers.1.self_attn.q_proj.weight").shape == q, boost::test_tools::per_element());
  BOOST_TEST(f.info("model.layers.1.self_attn.k_proj.weight").shape == kv, boost::test_tools::per_element());
  BOOST_TEST(f.info("model.layers.1.self_attn.v_proj.weight").shape == kv, boost::test_tools::per_element());
  BOOST_TEST(f.info("model.layers.0.mlp.gate_proj.weight").shape == gate, boost::test_tools::per_element());
  BOOST_TEST(f.info("model.layers.0.mlp.up_proj.weight").shape == gate, boost::test_tools::per_element());
  BOOST_TEST(f.info("model.layers.0.mlp.down_proj.weight").shape == down, boost::test_tools::per_element());
  BOOST_TEST(f.has("model.norm.weight"));
  BOOST_TEST(f.has("lm_head.weight"));
  BOOST_TEST(f.has("model.layers.0.post_attention_layernorm.weight"));
  // v_proj is the last KV·hd rows of c_attn; up_proj the second half of c_fc
  const auto v = f.read_as<float>("model.layers.1.self_attn.v_proj.weight");
  const auto cw = m.param("h.1.attn.c_attn.weight");
  BOOST_TEST(v[0] == cw[std::size_t(24) * 16]);
  const auto up = f.read_as<float>("model.layers.0.mlp.up_proj.weight");
  BOOST_TEST(up[5] == m.param("h.0.mlp.c_fc.weight")[std::size_t(24) * 16 + 5]);
  std::ifstream cj(d.path / "config.json");
  const auto j = nlohmann::json::parse(cj);
  BOOST_TEST(j["model_type"] == "llama");
  BOOST_TEST(j["num_key_value_heads"] == 2);
  BOOST_TEST(j["intermediate_size"] == 24);
  BOOST_TEST(j["tie_word_embeddings"] == false);
}

BOOST_AUTO_TEST_CASE(round_trips_give_the_same_logits) {
  {
    temp_dir d;
    round_trip<tfm::test::cfg_gpt2<float>>(nn::dims{20, 16, 16, 2, 2, 2, 40}, d.path);
  }
  {
    temp_dir d;
    round_trip<gpt2_in_out>(nn::dims{20, 16, 16, 2, 2, 2, 40}, d.path);
  }
  {
    temp_dir d;
    round_trip<gpt2_untied>(nn::dims{20, 16, 16, 1, 2, 2, 40}, d.path);
  }
  {
    temp_dir d;
    round_trip<tfm::test::cfg_llama<float>>(nn::dims{20, 16, 16, 2, 4, 2, 24}, d.path);
  }
  {
    temp_dir d;  // not a transformers architecture: tfm's own names
    using cfg = tfm::test::cfg_gqa<float>;
    static_assert(tr::family_of<cfg>() == tr::hf_family::native);
    round_trip<cfg>(nn::dims{20, 16, 16, 2, 4, 2, 24}, d.path);
    tfm::io::safetensors_file f(d.path / "model.safetensors");
    BOOST_TEST(f.has("h.0.attn.c_attn.weight"));
  }
  {
    // in_out layout saved, loaded as out_in: same function
    temp_dir d;
    const nn::dims dims{20, 16, 16, 2, 2, 2, 40};
    nn::model<gpt2_in_out> a(dims);
    nn::model<tfm::test::cfg_gpt2<float>> b(dims);
    tfm::test::randomize(a, 8);
    tr::save_pretrained(a, d.path);
    tr::load_pretrained(b, d.path);
    const auto la = logits_of(a), lb = logits_of(b);
    for (std::size_t i = 0; i < la.size(); ++i) BOOST_TEST_REQUIRE(std::abs(la[i] - lb[i]) < 1e-5);
  }
}

BOOST_AUTO_TEST_CASE(mismatches_are_refused) {
  temp_dir d;
  nn::model<tfm::test::cfg_gpt2<float>> a(nn::dims{20, 16, 16, 2, 2, 2, 40});
  tfm::test::randomize(a, 1);
  tr::save_pretrained(a, d.path);
  nn::model<tfm::test::cfg_gpt2<float>> wider(nn::dims{20, 16, 32, 2, 2, 2, 40});
  check_throws_with<tr::checkpoint_error>([&] { tr::load_pretrained(wider, d.path); }, "differ from the model's");
  nn::model<tfm::test::cfg_sinusoidal<float>> other(nn::dims{20, 16, 16, 2, 2, 2, 40});
  check_throws_with<tr::checkpoint_error>([&] { tr::load_pretrained(other, d.path); }, "architecture");
  check_throws_with<tr::checkpoint_error>([&] { tr::load_pretrained(a, d.path / "nope"); }, "nope");
}

namespace {
tr::trainer_state some_state() {
  tr::trainer_state st;
  st.fields["step"] = "7";
  st.arrays["exp_avg"] = {1, 2, 3};
  return st;
}
}  // namespace

BOOST_AUTO_TEST_CASE(checkpoint_dirs_keep_the_last_n_and_load_back) {
  temp_dir d;
  nn::model<tfm::test::cfg_gpt2<float>> m(nn::dims{20, 16, 16, 1, 2, 2, 40});
  tfm::test::randomize(m, 2);
  tr::checkpoint_dir cd(d.path, 2);
  for (int s : {1, 2, 3}) cd.save(s, m, some_state());
  const auto l = cd.list();
  BOOST_TEST_REQUIRE(l.size() == 2u);
  BOOST_TEST(l[0].filename() == "step-00000002");
  BOOST_TEST(l[1].filename() == "step-00000003");
  BOOST_TEST(cd.latest()->filename() == "step-00000003");
  for (auto const& e : fs::directory_iterator(d.path)) BOOST_TEST(e.path().filename().string().rfind(".tmp", 0) != 0);
  nn::model<tfm::test::cfg_gpt2<float>> n(m.sizes());
  auto st = tr::checkpoint_dir::load(*cd.latest(), n);
  BOOST_TEST(st.fields.at("step") == "7");
  BOOST_TEST(st.arrays.at("exp_avg") == (std::vector<float>{1, 2, 3}), boost::test_tools::per_element());
  BOOST_TEST(m.parameters_to_host() == n.parameters_to_host(), boost::test_tools::per_element());
}

namespace {
// A checkpoint of a small random model at step 1 (dir, under cd), and a differently randomised
// model of the same sizes to load it into, with its weights as they were before any load (which a
// refused load must leave).
struct saved_checkpoint {
  temp_dir d;
  nn::model<tfm::test::cfg_gpt2<float>> m{nn::dims{20, 16, 16, 1, 2, 2, 40}};
  tr::checkpoint_dir cd{d.path, 5};
  fs::path dir;
  nn::model<tfm::test::cfg_gpt2<float>> target{m.sizes()};
  std::vector<float> before;
  saved_checkpoint() {
    tfm::test::randomize(m, 2);
    dir = cd.save(1, m, some_state());
    tfm::test::randomize(target, 9);
    before = target.parameters_to_host();
  }
};
}  // namespace

BOOST_FIXTURE_TEST_CASE(damaged_checkpoints_are_refused_and_the_model_is_untouched, saved_checkpoint) {
  auto unchanged = [&] { BOOST_TEST(target.parameters_to_host() == before, boost::test_tools::per_element()); };

  // one flipped byte in the middle of the weights
  const auto w = dir / "model.safetensors";
  const auto size = fs::file_size(w);
  {
    std::fstream f(w, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(std::streamoff(size / 2));
    char c;
    f.get(c);
    f.seekp(std::streamoff(size / 2));
    f.put(char(c ^ 0x10));
  }
  check_throws_with<tr::checkpoint_error>([&] { tr::checkpoint_dir::load(dir, target); },
                                          "model.safetensors: checksum mismatch");
  unchanged();
  // truncated
  fs::resize_file(w, size - 100);
  check_throws_with<tr::checkpoint_error>([&] { tr::checkpoint_dir::load(dir, target); }, "truncated");
  unchanged();
  // a directory without a manifest (killed before it was complete)
  const auto dir2 = cd.save(2, m, some_state());
  fs::remove(dir2 / "manifest.json");
  check_throws_with<tr::checkpoint_error>([&] { tr::checkpoint_dir::load(dir2, target); }, "no manifest.json");
  unchanged();
  BOOST_TEST(cd.list().size() == 1u);  // step 1 still listed (damaged files are found on load), step 2 is not
  // a trainer state for another architecture
  const auto dir3 = cd.save(3, m, some_state());
  nn::model<tfm::test::cfg_sinusoidal<float>> other(m.sizes());
  check_throws_with<tr::checkpoint_error>([&] { tr::checkpoint_dir::load(dir3, other); }, "architecture");
}

// Fields of the wrong JSON type or range in config.json and manifest.json (with a manifest that
// matches the edited files) are checkpoint errors naming the file, never an exception from the
// JSON library or a value cut to 32 bits; a manifest must list the files load() reads, by plain
// names inside the checkpoint.
BOOST_FIXTURE_TEST_CASE(malformed_config_and_manifest_fields_are_refused, saved_checkpoint) {
  const auto config = nlohmann::json::parse(tfm::read_file(dir / "config.json"));
  const auto write = [](const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; };
  // Writes config.json (and a manifest that matches it), or the manifest's "files" as given.
  const auto rewrite = [&](const nlohmann::json& cfg, const nlohmann::json& files = nullptr) {
    write(dir / "config.json", cfg.dump(2));
    nlohmann::json man;
    for (const char* f : {"model.safetensors", "config.json", "trainer_state.safetensors"}) {
      std::uint64_t size = 0;
      const auto h = tr::detail::file_xxh64(dir / f, size);
      man["files"][f] = {{"bytes", size}, {"xxh64", tr::detail::hex64(h)}};
    }
    if (!files.is_null()) man["files"] = files;
    write(dir / "manifest.json", man.dump(2));
  };
  const auto refused = [&](const std::string& what) {
    check_throws_with<tr::checkpoint_error>([&] { tr::checkpoint_dir::load(dir, target); }, what);
    BOOST_TEST(target.parameters_to_host() == before, boost::test_tools::per_element());
  };
  auto cfg = config;
  cfg["model_type"] = 5;
  rewrite(cfg);
  refused("model_type '' is not one tfm reads");
  cfg = config;
  cfg["vocab_size"] = (std::int64_t{1} << 32) + 20;  // 20 once cut to an int
  rewrite(cfg);
  refused("no integer 'vocab_size'");
  cfg = config;
  cfg["n_inner"] = "40";
  rewrite(cfg);
  refused("no integer 'n_inner'");
  cfg = config;
  cfg["tfm_lora_adapters"] = "no";
  rewrite(cfg);
  refused("config.json: \"tfm_lora_adapters\" must be true or false");

  rewrite(config, nlohmann::json::object());
  refused("manifest.json: not a valid manifest (no entry for model.safetensors)");
  rewrite(config);
  auto man = nlohmann::json::parse(tfm::read_file(dir / "manifest.json"));
  auto files = man["files"];
  files["config.json"] = 5;
  rewrite(config, files);
  refused("manifest.json: the entry for config.json needs \"bytes\"");
  files = man["files"];
  files["config.json"]["bytes"] = "12";
  rewrite(config, files);
  refused("the entry for config.json needs \"bytes\"");
  files = man["files"];
  files["../../elsewhere"] = files["config.json"];
  rewrite(config, files);
  refused("lists '../../elsewhere', which is not a file name in the checkpoint");

  rewrite(config);  // the same files with a complete manifest load
  tr::checkpoint_dir::load(dir, target);
  BOOST_TEST(target.parameters_to_host() == m.parameters_to_host(), boost::test_tools::per_element());
}

// With TFM_HF_EXPORT_DIR set: writes a gpt2-family and a llama-family model (save_pretrained)
// and, beside each, reference.safetensors with input tokens and tfm's logits, for
// tools/check_hf_interop.py to load with transformers and compare. Without it: nothing to do.
BOOST_AUTO_TEST_CASE(export_for_transformers) {
  const char* env = std::getenv("TFM_HF_EXPORT_DIR");
  if (!env || !*env) {
    BOOST_TEST_MESSAGE("TFM_HF_EXPORT_DIR not set: no export for tools/check_hf_interop.py");
    return;
  }
  auto write = [&](auto& m, const fs::path& dir) {
    tfm::test::randomize(m, 77);
    // GPT-2-like magnitudes keep the logits in a range where fp32 comparisons mean something
    for (auto& w : m.parameters()) w *= 0.5f;
    tr::save_pretrained(m, dir);
    const int B = 2, T = 12;
    const auto tok = tfm::test::random_tokens(std::size_t(B) * T, m.sizes().vocab, 9);
    m.forward(tok.data(), nullptr, B, T);
    const auto logits = m.logits_to_host();
    tfm::io::safetensors_writer w;
    w.add("tokens", std::span<const std::int32_t>(tok), {B, T});
    w.add("logits", std::span<const float>(logits), {B, T, m.sizes().vocab});
    w.write(dir / "reference.safetensors");
  };
  nn::model<tfm::test::cfg_gpt2<float>> g(nn::dims{50, 16, 32, 2, 4, 4, 128});
  write(g, fs::path(env) / "gpt2");
  nn::model<tfm::test::cfg_llama<float>> l(nn::dims{50, 16, 32, 2, 4, 2, 48});
  write(l, fs::path(env) / "llama");
  // LoRA: base weights (a plain model's files) in base/, PEFT adapters in adapter/, and the
  // logits of base + adapters in reference.safetensors; the script applies them with PEFT
  auto write_lora = [&](auto& m, auto& plain, const fs::path& dir) {
    write(m, dir);  // random base and adapters (B non-zero), logits of the adapted model
    const auto all = m.parameters_to_host();
    plain.parameters_from_host(std::span<const float>(all.data(), plain.num_parameters()));
    tr::save_pretrained(plain, dir / "base");
    tr::save_adapters(m, dir / "adapter");
    fs::remove(dir / "model.safetensors");  // the LoRA model's own file is not for transformers
    fs::remove(dir / "config.json");
  };
  nn::model<gpt2_lora_all> gl(nn::dims{50, 16, 32, 2, 4, 4, 128});
  nn::model<tfm::test::cfg_gpt2<float>> gp(gl.sizes());
  write_lora(gl, gp, fs::path(env) / "gpt2_lora");
  nn::model<llama_lora_all> ll(nn::dims{50, 16, 32, 2, 4, 2, 48});
  nn::model<tfm::test::cfg_llama<float>> lp(ll.sizes());
  write_lora(ll, lp, fs::path(env) / "llama_lora");
}
