// The model and its attention kernels on CUDA (nn/model.cuh):
//  (a) every PyTorch golden fixture (tests/nn/fixtures) against model<Cfg<float>, space::cuda>,
//      naive and flash, with test_model_golden.cpp's float tolerances (logits and loss 1e-5,
//      gradients 1e-4, relative to each tensor's scale);
//  (b) the CUDA model against the host model on random weights, head sizes 64 and 128 (static),
//      T = 200 (partial tiles), causal / bidirectional / windows / GQA / MQA / RoPE / ALiBi, naive
//      and flash: logits 1e-4, loss 1e-5 (relative), gradients 1e-3;
//  (c) the attention kernels alone against attention_host.hpp in double (T = 300, hd 64, 128 and
//      the generic path with hd 8 and 6, every mask, ALiBi, GQA/MQA): fp32 kernels 1e-4; the bf16
//      flash variant against the double host run on the same bf16-rounded inputs: 2e-2 for out,
//      dq, dk, dv (bf16 outputs carry 2^-8 relative rounding, plus fp32 accumulation of T terms),
//      lse 1e-3 absolute-over-scale. The tensor-core bf16 forward (attention_flash_forward_bf16_mma;
//      hd 64, 128; T 1..257, every mask, ALiBi, GQA / MHA) against the double host run and the
//      SIMT bf16 forward: out 1.5e-2, lse 1e-3 absolute. The tensor-core bf16 backward (_mma; same
//      cases) against the double naive backward and the SIMT bf16 backward: dq, dk, dv 3e-2.
//  (d) bf16 / fp16 compute (mixed precision): the fixtures with test_model_mixed.cpp's
//      tolerances, and the CUDA mixed model as accurate as the host mixed model, both measured
//      against the fp32 host model on the same weights.
//  (e) fp8 weight storage (nn/storage_cuda.cuh): pack / unpack against the host ops bit for bit
//      (bytes, scales, float / double / bf16 / fp16 values), and fp8-storage CUDA models (gpt2,
//      in_out layout, llama bf16; per tensor and per channel) against the host model: effective
//      weights bit for bit, logits / loss / gradients within (b)'s or (d)'s tolerances.
// Without a CUDA device the executable exits 77 (skipped).
#include "tfm/nn/model.cuh"

#define TFM_TEST_MODULE test_model_cuda
#define TFM_TEST_NEEDS_CUDA
#include "support/test_main.hpp"

#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda_buffers.hpp"
#include "golden_fixture.hpp"
#include "model_configs.hpp"
#include "step_compare.hpp"
#include "model_test_util.hpp"
#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/core/rng.hpp"
#include "tfm/io/safetensors.hpp"

namespace nn = tfm::nn;
namespace cu = tfm::cuda;
using namespace tfm::test;

namespace {

// (a) uses golden_fixture.hpp's run_fixture in the cuda space
template <class Cfg>
void run_fixture(const std::string& name, double tol_logits, double tol_grad, double tol_loss = -1) {
  golden::run_fixture<Cfg, tfm::space::cuda>(name, tol_logits, tol_grad, tol_loss);
}

template <template <class, class> class Cfg>
void both_kernels(const std::string& name) {
  run_fixture<Cfg<float, nn::attn::naive>>(name, 1e-5, 1e-4);
  run_fixture<Cfg<float, nn::attn::flash>>(name, 1e-5, 1e-4);
}

// ------------------------------------------------------------------------ (b) CUDA vs host
// V = 97, ctx 256, d_model 256, 2 layers, d_ff 512; heads 4 (hd 64) or 2 (hd 128).
template <int H>
using rsizes = nn::sizes<97, 256, 256, 2, H, 0, 512>;

template <int H, class Heads, class Mask, class Kernel>
struct rcfg_gpt2 : nn::presets::gpt2<rsizes<H>> {
  using attention = nn::attn::config<Heads, Mask, Kernel>;
};
template <int H, class Heads, class Mask, class Kernel>
struct rcfg_llama : nn::presets::llama<rsizes<H>> {
  using attention = nn::attn::config<Heads, Mask, Kernel>;
};
template <int H, class Heads, class Mask, class Kernel>
struct rcfg_alibi : rcfg_gpt2<H, Heads, Mask, Kernel> {
  using position = nn::pos::alibi;
};
template <int H, class Heads, class Mask, class Kernel>
struct rcfg_post : rcfg_gpt2<H, Heads, Mask, Kernel> {
  static constexpr nn::norm_position norm_at = nn::norm_position::post;
};

template <class Cfg>
void cuda_vs_host(const std::string& name, double tol_logits = 1e-4, double tol_loss = 1e-5, double tol_grad = 1e-3) {
  constexpr int B = 2, T = 200;
  nn::model<Cfg> h;
  randomize(h, 1234);
  const auto tok = random_tokens(std::size_t(B) * T, h.sizes().vocab, 5);
  auto tgt = random_tokens(std::size_t(B) * T, h.sizes().vocab, 6);
  for (std::size_t i = 0; i < tgt.size(); i += 7) tgt[i] = nn::ignore_index;
  const auto want = run_step(h, tok, tgt, B, T);
  nn::model<Cfg, tfm::space::cuda> c;
  c.parameters_from_host(h.parameters());
  check_step("cuda vs host " + name, run_step(c, tok, tgt, B, T), want, c.parameter_table(),
             {tol_logits, tol_loss, tol_grad});
}

template <template <int, class, class, class> class Cfg, int H, class Heads, class Mask>
void cuda_vs_host_both(const std::string& name) {
  cuda_vs_host<Cfg<H, Heads, Mask, nn::attn::naive>>(name + "/naive");
  cuda_vs_host<Cfg<H, Heads, Mask, nn::attn::flash>>(name + "/flash");
}

// (d) mixed precision (bf16 / fp16 compute over float weights) on CUDA against the host's mixed
// model. Both round the same values at the same points, but GEMM accumulation orders differ (and
// the tensor-core attention rounds P to bf16), so single roundings flip and the two mixed runs
// differ by about their own error. On an H200 the CUDA bf16 run was 2.5e-2 (logits) and up to
// 1e-1 (gradients) away from the host bf16 run, while matching the PyTorch fixtures as closely as
// the host does (golden_mixed_bf16_fp16). The test therefore measures both against the fp32 host
// model on the same weights and requires the CUDA mixed run to be about as accurate as the host's:
// error at most 1.5× the host's plus a floor (bf16: logits 4e-3, loss 1e-3 relative, gradients
// 1.5e-2; fp16 a quarter of that). With these random weights (loss ≈ 13) bf16 itself is far from
// fp32 (host: logits 0.18, gradients up to 0.6 on the H200 run), so no absolute cap is set here:
// the fixtures above bound the absolute error on a realistic model.
template <int H, class Heads, class Mask, class Kernel>
struct rcfg_gpt2_bf16 : rcfg_gpt2<H, Heads, Mask, Kernel> {
  using precision = nn::precision_bf16;
};
template <int H, class Heads, class Mask, class Kernel>
struct rcfg_llama_bf16 : rcfg_llama<H, Heads, Mask, Kernel> {
  using precision = nn::precision_bf16;
};
template <int H, class Heads, class Mask, class Kernel>
struct rcfg_post_fp16 : rcfg_post<H, Heads, Mask, Kernel> {
  using precision = nn::precision_fp16;
};
template <class Cfg>
struct fp32_of : Cfg {
  using precision = nn::precision_fp32;
};

template <class Cfg>
void cuda_vs_host_mixed_one(const std::string& name, double scale) {
  constexpr int B = 2, T = 200;
  nn::model<Cfg> h;
  randomize(h, 1234);
  const auto tok = random_tokens(std::size_t(B) * T, h.sizes().vocab, 5);
  auto tgt = random_tokens(std::size_t(B) * T, h.sizes().vocab, 6);
  for (std::size_t i = 0; i < tgt.size(); i += 7) tgt[i] = nn::ignore_index;
  nn::model<fp32_of<Cfg>> f;
  f.parameters_from_host(h.parameters());
  const auto exact = run_step(f, tok, tgt, B, T);
  const auto host = run_step(h, tok, tgt, B, T);
  nn::model<Cfg, tfm::space::cuda> c;
  c.parameters_from_host(h.parameters());
  check_step_accuracy("cuda vs host " + name, run_step(c, tok, tgt, B, T), host, exact, c.parameter_table(),
                      {4e-3 * scale, 1e-3 * scale, 1.5e-2 * scale});
}

template <template <int, class, class, class> class Cfg, int H, class Heads, class Mask>
void cuda_vs_host_mixed(const std::string& name, double scale) {
  cuda_vs_host_mixed_one<Cfg<H, Heads, Mask, nn::attn::naive>>(name + "/naive", scale);
  cuda_vs_host_mixed_one<Cfg<H, Heads, Mask, nn::attn::flash>>(name + "/flash", scale);
}

// ------------------------------------------------------------------------ (c) attention alone
struct attn_case {
  int B, T, H, KV, hd;
  bool causal;
  int window;
  bool alibi;
};

std::string describe(const attn_case& c) {
  return tfm::detail::concat("B=", c.B, " T=", c.T, " H=", c.H, " KV=", c.KV, " hd=", c.hd, c.causal ? " causal" : " bidir",
                             " W=", c.window, c.alibi ? " alibi" : "");
}

// Elements of the heads in a strided [B·T][ld] array (head part only), as doubles.
std::vector<double> heads_of(const std::vector<double>& x, std::int64_t rows, int width, std::int64_t ld,
                             std::int64_t off) {
  std::vector<double> r(std::size_t(rows) * width);
  for (std::int64_t n = 0; n < rows; ++n)
    for (int e = 0; e < width; ++e) r[std::size_t(n) * width + e] = x[std::size_t(n * ld + off + e)];
  return r;
}
template <class F>
std::vector<double> heads_of(const std::vector<F>& x, std::int64_t rows, int width, std::int64_t ld,
                             std::int64_t off) {
  std::vector<double> r(std::size_t(rows) * width);
  for (std::int64_t n = 0; n < rows; ++n)
    for (int e = 0; e < width; ++e) r[std::size_t(n) * width + e] = double(x[std::size_t(n * ld + off + e)]);
  return r;
}

float bf_round(float x) { return __bfloat162float(__float2bfloat16(x)); }
std::vector<float> to_float(const std::vector<__nv_bfloat16>& x) {
  std::vector<float> r(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) r[i] = __bfloat162float(x[i]);
  return r;
}

template <int HD>
void attention_case(const attn_case& c) {
  const std::string what = describe(c) + " HD=" + std::to_string(HD);
  const std::int64_t ld = std::int64_t(c.H + 2 * c.KV) * c.hd, rows = std::int64_t(c.B) * c.T;
  const nn::attention_shape s{c.B, c.T, c.H, c.KV, c.hd, ld, ld, ld};
  nn::attention_mask m;
  m.causal = c.causal;
  m.window = c.window;
  m.alibi = c.alibi;
  const std::int64_t qoff = 0, koff = std::int64_t(c.H) * c.hd, voff = koff + std::int64_t(c.KV) * c.hd;
  const int wq = c.H * c.hd, wkv = c.KV * c.hd;
  const std::size_t nqkv = std::size_t(rows * ld), nout = std::size_t(rows) * wq;
  std::vector<float> qkv(nqkv), dout(nout);
  for (std::size_t i = 0; i < nqkv; ++i) qkv[i] = bf_round(tfm::rng::normal(77, 1, i));  // bf16-exact inputs
  for (std::size_t i = 0; i < nout; ++i) dout[i] = bf_round(tfm::rng::normal(77, 2, i));

  // Reference: host naive in double (probabilities), host flash in double for the lse.
  std::vector<double> qkv_d(qkv.begin(), qkv.end()), dout_d(dout.begin(), dout.end());
  std::vector<double> out_ref(nout), probs(nn::naive_probs_size(s)), lse_ref(std::size_t(c.B) * c.H * c.T),
      out_f(nout), dqkv_ref(nqkv, 0.0), scr(nn::naive_scratch_size(s));
  nn::attention_naive_forward<double>(s, m, qkv_d.data() + qoff, qkv_d.data() + koff, qkv_d.data() + voff,
                                      out_ref.data(), probs.data());
  nn::attention_flash_forward<double>(s, m, qkv_d.data() + qoff, qkv_d.data() + koff, qkv_d.data() + voff,
                                      out_f.data(), lse_ref.data());
  nn::attention_naive_backward<double>(s, m, qkv_d.data() + qoff, qkv_d.data() + koff, qkv_d.data() + voff,
                                       probs.data(), dout_d.data(), dqkv_ref.data() + qoff, dqkv_ref.data() + koff,
                                       dqkv_ref.data() + voff, scr.data());
  const auto dq_ref = heads_of(dqkv_ref, rows, wq, ld, qoff);
  const auto dk_ref = heads_of(dqkv_ref, rows, wkv, ld, koff);
  const auto dv_ref = heads_of(dqkv_ref, rows, wkv, ld, voff);

  cu::stream st;
  auto d_qkv = to_device(qkv);
  auto d_dout = to_device(dout);
  cu::device_buffer<float> d_out(nout), d_dqkv(nqkv);
  const float* q = d_qkv.data() + qoff;
  const float* k = d_qkv.data() + koff;
  const float* v = d_qkv.data() + voff;
  auto check_grads = [&](const char* kernel, const std::vector<float>& dqkv, double tol) {
    const double eq = rel_error(heads_of(dqkv, rows, wq, ld, qoff), dq_ref);
    const double ek = rel_error(heads_of(dqkv, rows, wkv, ld, koff), dk_ref);
    const double ev = rel_error(heads_of(dqkv, rows, wkv, ld, voff), dv_ref);
    BOOST_TEST(eq <= tol, what << " " << kernel << ": dq error " << eq);
    BOOST_TEST(ek <= tol, what << " " << kernel << ": dk error " << ek);
    BOOST_TEST(ev <= tol, what << " " << kernel << ": dv error " << ev);
  };

  {  // naive fp32
    cu::device_buffer<float> d_probs(nn::naive_probs_size(s)), d_scr(nn::attention_naive_cuda_scratch_size(s));
    nn::attention_naive_forward_cuda<float, HD>(s, m, q, k, v, d_out.data(), d_probs.data(), st.get());
    TFM_CUDA_CHECK(cudaMemsetAsync(d_dqkv.data(), 0, d_dqkv.bytes(), st.get()));
    nn::attention_naive_backward_cuda<float, HD>(s, m, q, k, v, d_probs.data(), d_dout.data(), d_dqkv.data() + qoff,
                                                 d_dqkv.data() + koff, d_dqkv.data() + voff, d_scr.data(), st.get());
    st.synchronize();
    const double eo = rel_error(to_host(d_out), out_ref);
    const double ep = rel_error(to_host(d_probs), probs);
    BOOST_TEST(eo <= 1e-4, what << " naive: out error " << eo);
    BOOST_TEST(ep <= 1e-4, what << " naive: probs error " << ep);
    check_grads("naive", to_host(d_dqkv), 1e-4);
  }
  {  // flash fp32
    cu::device_buffer<float> d_lse(std::size_t(c.B) * c.H * c.T), d_scr(nn::attention_flash_cuda_scratch_size(s));
    nn::attention_flash_forward_cuda<float, HD>(s, m, q, k, v, d_out.data(), d_lse.data(), st.get());
    TFM_CUDA_CHECK(cudaMemsetAsync(d_dqkv.data(), 0xff, d_dqkv.bytes(), st.get()));  // NaN: every head element must be written
    nn::attention_flash_backward_cuda<float, HD>(s, m, q, k, v, d_out.data(), d_dout.data(), d_lse.data(),
                                                 d_dqkv.data() + qoff, d_dqkv.data() + koff, d_dqkv.data() + voff,
                                                 d_scr.data(), st.get());
    st.synchronize();
    const double eo = rel_error(to_host(d_out), out_ref);
    const double el = rel_error(to_host(d_lse), lse_ref);
    BOOST_TEST(eo <= 1e-4, what << " flash: out error " << eo);
    BOOST_TEST(el <= 1e-5, what << " flash: lse error " << el);
    check_grads("flash", to_host(d_dqkv), 1e-4);
  }
  if constexpr (HD == 0 || HD == 64 || HD == 128) {  // bf16 flash (same, bf16-exact, inputs)
    std::vector<__nv_bfloat16> qkv_b(nqkv), dout_b(nout);
    for (std::size_t i = 0; i < nqkv; ++i) qkv_b[i] = __float2bfloat16(qkv[i]);
    for (std::size_t i = 0; i < nout; ++i) dout_b[i] = __float2bfloat16(dout[i]);
    auto b_qkv = to_device(qkv_b);
    auto b_dout = to_device(dout_b);
    cu::device_buffer<__nv_bfloat16> b_out(nout), b_dqkv(nqkv);
    cu::device_buffer<float> d_lse(std::size_t(c.B) * c.H * c.T), d_scr(nn::attention_flash_bf16_scratch_floats(s));
    const __nv_bfloat16* bq = b_qkv.data() + qoff;
    const __nv_bfloat16* bk = b_qkv.data() + koff;
    const __nv_bfloat16* bv = b_qkv.data() + voff;
    // the CUDA-core kernels (fp32 arithmetic throughout)
    nn::attention_flash_forward_bf16_simt(s, m, bq, bk, bv, b_out.data(), d_lse.data(), st.get());
    nn::attention_flash_backward_bf16_simt(s, m, bq, bk, bv, b_out.data(), b_dout.data(), d_lse.data(),
                                           b_dqkv.data() + qoff, b_dqkv.data() + koff, b_dqkv.data() + voff,
                                           d_scr.data(), st.get());
    st.synchronize();
    const double eo = rel_error(to_float(to_host(b_out)), out_ref);
    const double el = rel_error(to_host(d_lse), lse_ref);
    BOOST_TEST(eo <= 2e-2, what << " bf16 flash: out error " << eo);
    BOOST_TEST(el <= 1e-3, what << " bf16 flash: lse error " << el);
    // dO·O uses the bf16-rounded O: D differs from the reference by ~2^-8 relative.
    check_grads("bf16 flash", to_float(to_host(b_dqkv)), 2e-2);
    // the defaults (tensor-core kernels for hd 64 / 128): P and dS are rounded to bf16 before
    // their products as well
    TFM_CUDA_CHECK(cudaMemsetAsync(b_dqkv.data(), 0xff, b_dqkv.bytes(), st.get()));
    nn::attention_flash_forward_bf16(s, m, bq, bk, bv, b_out.data(), d_lse.data(), st.get());
    nn::attention_flash_backward_bf16(s, m, bq, bk, bv, b_out.data(), b_dout.data(), d_lse.data(),
                                      b_dqkv.data() + qoff, b_dqkv.data() + koff, b_dqkv.data() + voff, d_scr.data(),
                                      st.get());
    st.synchronize();
    check_grads("bf16 flash (default kernels)", to_float(to_host(b_dqkv)), 3e-2);
  }
}

// The tensor-core (MMA) bf16 forward against the host flash forward in double on the same
// bf16-exact inputs, and against the SIMT bf16 forward: out relative error 1.5e-2 (P is rounded
// to bf16 before P·V, and out is bf16), lse max absolute difference 1e-3. pad widens the token
// stride so that it is not a multiple of 8 bf16 (the element-wise loads instead of 16-byte ones).
void attention_mma_case(const attn_case& c, int pad) {
  const std::string what = describe(c) + " pad=" + std::to_string(pad);
  const std::int64_t ld = std::int64_t(c.H + 2 * c.KV) * c.hd + pad, rows = std::int64_t(c.B) * c.T;
  const nn::attention_shape s{c.B, c.T, c.H, c.KV, c.hd, ld, ld, ld};
  nn::attention_mask m;
  m.causal = c.causal;
  m.window = c.window;
  m.alibi = c.alibi;
  const std::int64_t qoff = 0, koff = std::int64_t(c.H) * c.hd, voff = koff + std::int64_t(c.KV) * c.hd;
  const std::size_t nqkv = std::size_t(rows * ld), nout = std::size_t(rows) * c.H * c.hd;
  const std::size_t nlse = std::size_t(c.B) * c.H * c.T;
  std::vector<float> qkv(nqkv);
  for (std::size_t i = 0; i < nqkv; ++i) qkv[i] = bf_round(tfm::rng::normal(79, 1, i));  // bf16-exact inputs
  std::vector<double> qkv_d(qkv.begin(), qkv.end()), out_ref(nout), lse_ref(nlse);
  nn::attention_flash_forward<double>(s, m, qkv_d.data() + qoff, qkv_d.data() + koff, qkv_d.data() + voff,
                                      out_ref.data(), lse_ref.data());

  std::vector<__nv_bfloat16> qkv_b(nqkv);
  for (std::size_t i = 0; i < nqkv; ++i) qkv_b[i] = __float2bfloat16(qkv[i]);
  cu::stream st;
  auto b_qkv = to_device(qkv_b);
  const __nv_bfloat16* bq = b_qkv.data() + qoff;
  const __nv_bfloat16* bk = b_qkv.data() + koff;
  const __nv_bfloat16* bv = b_qkv.data() + voff;
  cu::device_buffer<__nv_bfloat16> o_mma(nout), o_simt(nout);
  cu::device_buffer<float> l_mma(nlse), l_simt(nlse);
  // NaN everywhere first: every element of out and lse must be written.
  TFM_CUDA_CHECK(cudaMemsetAsync(o_mma.data(), 0xff, o_mma.bytes(), st.get()));
  TFM_CUDA_CHECK(cudaMemsetAsync(l_mma.data(), 0xff, l_mma.bytes(), st.get()));
  nn::attention_flash_forward_bf16_mma(s, m, bq, bk, bv, o_mma.data(), l_mma.data(), st.get());
  nn::attention_flash_forward_bf16_simt(s, m, bq, bk, bv, o_simt.data(), l_simt.data(), st.get());
  st.synchronize();
  auto lse_diff = [](const std::vector<float>& got, const auto& want) {
    double d = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      const double g = got[i], w = double(want[i]);
      if (g == w) continue;  // equal infinities included
      d = std::isfinite(g) && std::isfinite(w) ? std::max(d, std::abs(g - w)) : INFINITY;
    }
    return d;
  };
  const auto om = to_float(to_host(o_mma)), os = to_float(to_host(o_simt));
  const auto lm = to_host(l_mma), ls = to_host(l_simt);
  const double eo = rel_error(om, out_ref), el = lse_diff(lm, lse_ref);
  const double eos = rel_error(om, os), els = lse_diff(lm, ls);
  BOOST_TEST(eo <= 1.5e-2, what << " bf16 mma: out error " << eo);
  BOOST_TEST(el <= 1e-3, what << " bf16 mma: lse difference " << el);
  BOOST_TEST(eos <= 1.5e-2, what << " bf16 mma vs simt: out error " << eos);
  BOOST_TEST(els <= 1e-3, what << " bf16 mma vs simt: lse difference " << els);
}

// The tensor-core (MMA) bf16 backward against the naive backward in double on the same
// bf16-exact inputs (with the double forward's output, so that only the backward is measured) and
// against the CUDA-core bf16 backward on the same bf16 output and lse: dq, dk, dv relative error
// 3e-2 (P and dS are rounded to bf16 before their products; the outputs are bf16). Every element
// of dq, dk, dv must be written (they start as NaN). pad as in attention_mma_case.
void attention_mma_backward_case(const attn_case& c, int pad) {
  const std::string what = describe(c) + " pad=" + std::to_string(pad);
  const std::int64_t ld = std::int64_t(c.H + 2 * c.KV) * c.hd + pad, rows = std::int64_t(c.B) * c.T;
  const nn::attention_shape s{c.B, c.T, c.H, c.KV, c.hd, ld, ld, ld};
  nn::attention_mask m;
  m.causal = c.causal;
  m.window = c.window;
  m.alibi = c.alibi;
  const std::int64_t qoff = 0, koff = std::int64_t(c.H) * c.hd, voff = koff + std::int64_t(c.KV) * c.hd;
  const int wq = c.H * c.hd, wkv = c.KV * c.hd;
  const std::size_t nqkv = std::size_t(rows * ld), nout = std::size_t(rows) * wq;
  const std::size_t nlse = std::size_t(c.B) * c.H * c.T;
  std::vector<float> qkv(nqkv), dout(nout);
  for (std::size_t i = 0; i < nqkv; ++i) qkv[i] = bf_round(tfm::rng::normal(81, 1, i));
  for (std::size_t i = 0; i < nout; ++i) dout[i] = bf_round(tfm::rng::normal(81, 2, i));
  std::vector<double> qkv_d(qkv.begin(), qkv.end()), dout_d(dout.begin(), dout.end());
  std::vector<double> out_ref(nout), probs(nn::naive_probs_size(s)), lse_ref(nlse), dqkv_ref(nqkv, 0.0),
      scr(nn::naive_scratch_size(s));
  nn::attention_naive_forward<double>(s, m, qkv_d.data() + qoff, qkv_d.data() + koff, qkv_d.data() + voff,
                                      out_ref.data(), probs.data());
  nn::attention_flash_forward<double>(s, m, qkv_d.data() + qoff, qkv_d.data() + koff, qkv_d.data() + voff,
                                      out_ref.data(), lse_ref.data());
  nn::attention_naive_backward<double>(s, m, qkv_d.data() + qoff, qkv_d.data() + koff, qkv_d.data() + voff,
                                       probs.data(), dout_d.data(), dqkv_ref.data() + qoff, dqkv_ref.data() + koff,
                                       dqkv_ref.data() + voff, scr.data());

  std::vector<__nv_bfloat16> qkv_b(nqkv), dout_b(nout), out_b(nout);
  for (std::size_t i = 0; i < nqkv; ++i) qkv_b[i] = __float2bfloat16(qkv[i]);
  for (std::size_t i = 0; i < nout; ++i) dout_b[i] = __float2bfloat16(dout[i]);
  for (std::size_t i = 0; i < nout; ++i) out_b[i] = __float2bfloat16(float(out_ref[i]));
  std::vector<float> lse_f(lse_ref.begin(), lse_ref.end());
  cu::stream st;
  auto b_qkv = to_device(qkv_b);
  auto b_dout = to_device(dout_b);
  auto b_out = to_device(out_b);
  auto d_lse = to_device(lse_f);
  cu::device_buffer<__nv_bfloat16> g_mma(nqkv), g_simt(nqkv);
  cu::device_buffer<float> d_scr(nn::attention_flash_bf16_scratch_floats(s));
  const __nv_bfloat16* bq = b_qkv.data() + qoff;
  const __nv_bfloat16* bk = b_qkv.data() + koff;
  const __nv_bfloat16* bv = b_qkv.data() + voff;
  TFM_CUDA_CHECK(cudaMemsetAsync(g_mma.data(), 0xff, g_mma.bytes(), st.get()));
  TFM_CUDA_CHECK(cudaMemsetAsync(g_simt.data(), 0xff, g_simt.bytes(), st.get()));
  nn::attention_flash_backward_bf16_mma(s, m, bq, bk, bv, b_out.data(), b_dout.data(), d_lse.data(),
                                        g_mma.data() + qoff, g_mma.data() + koff, g_mma.data() + voff, d_scr.data(),
                                        st.get());
  nn::attention_flash_backward_bf16_simt(s, m, bq, bk, bv, b_out.data(), b_dout.data(), d_lse.data(),
                                         g_simt.data() + qoff, g_simt.data() + koff, g_simt.data() + voff,
                                         d_scr.data(), st.get());
  st.synchronize();
  const auto gm = to_float(to_host(g_mma)), gs = to_float(to_host(g_simt));
  const struct {
    const char* name;
    std::int64_t off;
    int width;
  } parts[] = {{"dq", qoff, wq}, {"dk", koff, wkv}, {"dv", voff, wkv}};
  double dv_scale = 0;
  for (double x : heads_of(dqkv_ref, rows, wkv, ld, voff)) dv_scale = std::max(dv_scale, std::abs(x));
  for (auto const& pt : parts) {
    const auto ref = heads_of(dqkv_ref, rows, pt.width, ld, pt.off);
    const auto got = heads_of(gm, rows, pt.width, ld, pt.off);
    if (c.T == 1 && pt.off != voff) {
      // One token: out = v, so dP − D = v·dO − dO·out = 0 and dq = dk = 0 in exact arithmetic; a
      // relative error would measure rounding noise. Written, finite and tiny instead.
      double worst = 0;
      for (double x : got) worst = std::isfinite(x) ? std::max(worst, std::abs(x)) : INFINITY;
      BOOST_TEST(worst <= 1e-3 * dv_scale, what << " bf16 mma backward: " << pt.name << " should be ~0, max " << worst);
      continue;
    }
    const double e = rel_error(got, ref);
    const double es = rel_error(got, heads_of(gs, rows, pt.width, ld, pt.off));
    BOOST_TEST(e <= 3e-2, what << " bf16 mma backward: " << pt.name << " error " << e);
    BOOST_TEST(es <= 3e-2, what << " bf16 mma vs simt backward: " << pt.name << " difference " << es);
  }
}

std::vector<attn_case> mask_cases(int H, int KV, int hd) {
  std::vector<attn_case> r;
  for (bool alibi : {false, true}) {
    r.push_back({2, 300, H, KV, hd, true, 0, alibi});
    r.push_back({2, 300, H, KV, hd, false, 0, alibi});
    r.push_back({2, 300, H, KV, hd, true, 37, alibi});
    r.push_back({2, 300, H, KV, hd, false, 37, alibi});
  }
  return r;
}

// ------------------------------------------------------------------------ (e) weight storage
// fp8 block weights (nn/storage_cuda.cuh) against the host ops (nn/storage_host.hpp): the packed
// bytes, scales and unpacked values bit for bit, and a packed-storage CUDA model against the same
// host model: the effective (unpacked) weights bit for bit, logits / loss / gradients within (b)'s
// float tolerances or (d)'s bf16 ones.
template <class Base, class S>
struct with_storage : Base {
  using storage = S;
};
using fp8_tensor = nn::fp8<>;
using fp8_channel = nn::fp8<tfm::float8_e4m3, nn::fp8_scaling::per_channel>;
using e5m2_channel = nn::fp8<tfm::float8_e5m2, nn::fp8_scaling::per_channel>;

template <class C>
bool same_bits(const std::vector<C>& a, const std::vector<C>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(C)) == 0);
}

// Unpacks `d_packed` on the device into C and `packed` on the host; the two must be identical.
template <class S, class C>
void check_unpack(nn::cuda_backend<float>& be, nn::matrix_shape m, const std::vector<std::uint8_t>& packed,
                  const cu::device_buffer<std::uint8_t>& d_packed, const char* type) {
  int hb = 0;
  std::vector<C> want(std::size_t(m.size()));
  nn::storage_ops<S, tfm::space::host>::unpack(hb, m, packed.data(), want.data());
  cu::device_buffer<C> d_out(want.size());
  TFM_CUDA_CHECK(cudaMemsetAsync(d_out.data(), 0xff, d_out.bytes(), be.stream()));
  nn::storage_ops<S, tfm::space::cuda>::unpack(be, m, d_packed.data(), d_out.data());
  be.synchronize();
  BOOST_TEST(same_bits(to_host(d_out), want), "unpacked " << type << " values differ from the host's");
}

template <class S, class W = float>
void storage_vs_host(nn::matrix_shape m, std::uint32_t seed) {
  using traits = nn::storage_traits<S>;
  BOOST_TEST_INFO("shape " << m.rows << "x" << m.cols << (m.io ? " io" : "")
                           << (S::scaling == nn::fp8_scaling::per_channel ? " per channel" : " per tensor")
                           << (std::is_same_v<typename S::format, tfm::float8_e5m2> ? " e5m2" : " e4m3")
                           << (std::is_same_v<W, double> ? " double weights" : ""));
  std::vector<W> w(std::size_t(m.size()));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = W(0.05f * tfm::rng::normal(seed, 0, i));
  // one output channel of zeros, one much larger than the rest, some tiny values
  for (std::int64_t c = 0; c < m.cols; ++c) {
    const std::int64_t i0 = m.io ? c * m.rows : c, i1 = m.io ? c * m.rows + 1 : m.cols + c;
    w[std::size_t(i0)] = 0;
    w[std::size_t(i1)] *= 40;
  }
  for (std::size_t i = 0; i < w.size(); i += 11) w[i] *= W(1e-4);
  const std::size_t bytes = traits::bytes(m), off = traits::scale_offset(m), nsb = traits::scales(m) * sizeof(float);
  std::vector<std::uint8_t> packed(bytes, 0);
  int hb = 0;
  nn::storage_ops<S, tfm::space::host>::pack(hb, m, w.data(), packed.data());

  nn::cuda_backend<float> be;
  const auto d_w = to_device(w);
  cu::device_buffer<std::uint8_t> d_packed(bytes);
  TFM_CUDA_CHECK(cudaMemsetAsync(d_packed.data(), 0xab, bytes, be.stream()));  // stale values, as a reused buffer
  nn::storage_ops<S, tfm::space::cuda>::pack(be, m, d_w.data(), d_packed.data());
  be.synchronize();
  const auto got = to_host(d_packed);
  BOOST_TEST(std::memcmp(got.data(), packed.data(), std::size_t(m.size())) == 0, "packed fp8 bytes differ");
  BOOST_TEST(std::memcmp(got.data() + off, packed.data() + off, nsb) == 0, "scales differ");
  // packing again over its own output gives the same bytes (the amax slots are reset)
  nn::storage_ops<S, tfm::space::cuda>::pack(be, m, d_w.data(), d_packed.data());
  be.synchronize();
  const auto again = to_host(d_packed);
  BOOST_TEST(std::memcmp(again.data(), got.data(), bytes) == 0, "a second pack differs");

  check_unpack<S, float>(be, m, packed, d_packed, "float");
  check_unpack<S, double>(be, m, packed, d_packed, "double");
  check_unpack<S, tfm::bfloat16>(be, m, packed, d_packed, "bfloat16");
  check_unpack<S, tfm::half>(be, m, packed, d_packed, "half");
}

template <class S>
void storage_shapes_vs_host() {
  storage_vs_host<S>({7, 33, false}, 1);
  storage_vs_host<S>({33, 7, true}, 2);
  storage_vs_host<S>({96, 1500, false}, 3);
  storage_vs_host<S>({1500, 40, true}, 4);
}

// Host and CUDA models of the fixture sizes with the same parameters (init, then ×10, so the
// rounding matters): effective weights bit for bit, then forward + backward within the tolerances.
template <class Cfg>
void storage_model_vs_host(const std::string& name, bool swiglu, double tol_logits, double tol_loss,
                           double tol_grad) {
  const nn::dims d = fixture_dims(swiglu ? 2 : 4, swiglu);
  nn::model<Cfg> h(d);
  nn::model<Cfg, tfm::space::cuda> c(d);
  h.init(5);
  auto w = h.parameters_to_host();
  for (auto& x : w) x = x * 10;
  h.parameters_from_host(w);
  c.parameters_from_host(w);
  for (int l = 0; l < d.layers; ++l)
    for (auto k : {nn::weight_kind::attn_qkv, nn::weight_kind::attn_out, nn::weight_kind::mlp_in,
                   nn::weight_kind::mlp_out}) {
      const auto want = h.effective_weight(l, k);
      const auto got = c.effective_weight(l, k);
      BOOST_TEST(got.size() == want.size());
      BOOST_TEST(same_bits(got, want), name << ": effective weight of layer " << l << " kind " << int(k) << " differs");
    }

  constexpr int B = 2, T = 16;
  const auto tok = random_tokens(std::size_t(B) * T, d.vocab, 11);
  auto tgt = random_tokens(std::size_t(B) * T, d.vocab, 12);
  for (std::size_t i = 0; i < tgt.size(); i += 5) tgt[i] = nn::ignore_index;
  const auto want = run_step(h, tok, tgt, B, T);
  check_step("fp8 storage cuda vs host " + name, run_step(c, tok, tgt, B, T), want, c.parameter_table(),
             {tol_logits, tol_loss, tol_grad});
}

template <class S>
void storage_models_vs_host(const std::string& what) {
  storage_model_vs_host<with_storage<cfg_gpt2<float>, S>>("gpt2 " + what, false, 1e-4, 1e-5, 1e-3);
  storage_model_vs_host<with_storage<cfg_in_out<float>, S>>("in_out " + what, false, 1e-4, 1e-5, 1e-3);
  storage_model_vs_host<with_storage<cfg_llama<tfm::bfloat16>, S>>("llama bf16 " + what, true, 2e-2, 5e-3, 5e-2);
}

}  // namespace

// (a)
BOOST_AUTO_TEST_CASE(golden_gpt2) { both_kernels<cfg_gpt2>("gpt2"); }
BOOST_AUTO_TEST_CASE(golden_llama) { both_kernels<cfg_llama>("llama"); }
BOOST_AUTO_TEST_CASE(golden_mqa) { both_kernels<cfg_mqa>("mqa"); }
BOOST_AUTO_TEST_CASE(golden_gqa) { both_kernels<cfg_gqa>("gqa"); }
BOOST_AUTO_TEST_CASE(golden_bidirectional) { both_kernels<cfg_bidirectional>("bidirectional"); }
BOOST_AUTO_TEST_CASE(golden_window) { both_kernels<cfg_window>("window"); }
BOOST_AUTO_TEST_CASE(golden_window_bidir) { both_kernels<cfg_window_bidir>("window_bidir"); }
BOOST_AUTO_TEST_CASE(golden_pos_none) { both_kernels<cfg_pos_none>("pos_none"); }
BOOST_AUTO_TEST_CASE(golden_sinusoidal) { both_kernels<cfg_sinusoidal>("sinusoidal"); }
BOOST_AUTO_TEST_CASE(golden_rope_half) { both_kernels<cfg_rope_half>("rope_half"); }
BOOST_AUTO_TEST_CASE(golden_alibi) { both_kernels<cfg_alibi>("alibi"); }
BOOST_AUTO_TEST_CASE(golden_post_norm) { both_kernels<cfg_post_norm>("post_norm"); }
BOOST_AUTO_TEST_CASE(golden_untied) { both_kernels<cfg_untied>("untied"); }
BOOST_AUTO_TEST_CASE(golden_rmsnorm_gelu) { both_kernels<cfg_rmsnorm_gelu>("rmsnorm_gelu"); }
// mixed precision against the PyTorch fixtures with test_model_mixed.cpp's tolerances
BOOST_AUTO_TEST_CASE(golden_mixed_bf16_fp16) {
  run_fixture<cfg_gpt2<tfm::bfloat16, nn::attn::flash>>("gpt2", 4e-2, 1e-1, 5e-3);
  run_fixture<cfg_llama<tfm::bfloat16, nn::attn::flash>>("llama", 4e-2, 1e-1, 5e-3);
  run_fixture<cfg_post_norm<tfm::half, nn::attn::naive>>("post_norm", 1e-2, 2e-2, 1e-3);
  run_fixture<cfg_rope_half<tfm::half, nn::attn::flash>>("rope_half", 1e-2, 2e-2, 1e-3);
  // a padded, untied head (vocabulary 61 → 64: logits rows 64 apart, zero padding gradients)
  run_fixture<cfg_llama_padded<tfm::bfloat16, nn::attn::flash>>("llama", 4e-2, 1e-1, 5e-3);
}
// The fused cross-entropy (forward_backward, what the trainer runs) against forward then backward
// on the device: the same loss and gradients, bit for bit (padded untied head, bf16 logits).
BOOST_AUTO_TEST_CASE(forward_backward_equals_forward_then_backward) {
  using Cfg = cfg_llama_padded<tfm::bfloat16, nn::attn::flash>;
  const nn::dims d{61, 16, 32, 2, 4, 2, 128};
  nn::model<Cfg, tfm::space::cuda> a(d), b(d);
  a.init(3);
  b.parameters_from_host(a.parameters_to_host());
  std::vector<std::int32_t> tok(24), tgt(24);
  for (int i = 0; i < 24; ++i) {
    tok[std::size_t(i)] = (i * 7 + 2) % 61;
    tgt[std::size_t(i)] = i == 5 ? nn::ignore_index : (i * 11 + 1) % 61;
  }
  a.zero_grad();
  b.zero_grad();
  const double la = a.forward(tok.data(), tgt.data(), 2, 12);
  a.backward(3.0);
  const double lb = b.forward_backward(tok.data(), tgt.data(), 2, 12, 3.0);
  BOOST_TEST(la == lb);
  const auto ga = a.gradients_to_host(), gb = b.gradients_to_host();
  BOOST_TEST(std::memcmp(ga.data(), gb.data(), ga.size() * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_CASE(mixed_vs_host_bf16_hd64) {
  cuda_vs_host_mixed<rcfg_gpt2_bf16, 4, nn::attn::mha, nn::attn::causal>("bf16 hd64 causal", 1.0);
}
BOOST_AUTO_TEST_CASE(mixed_vs_host_bf16_hd128_gqa_rope) {
  cuda_vs_host_mixed<rcfg_llama_bf16, 2, nn::attn::gqa<1>, nn::attn::causal>("bf16 hd128 llama mqa", 1.0);
}
BOOST_AUTO_TEST_CASE(mixed_vs_host_fp16_post_norm) {
  cuda_vs_host_mixed<rcfg_post_fp16, 4, nn::attn::mha, nn::attn::bidirectional>("fp16 hd64 post-norm", 0.25);
}

BOOST_AUTO_TEST_CASE(golden_in_out_layout) {
  run_fixture<cfg_in_out<float, nn::attn::naive>>("gpt2", 1e-5, 1e-4);
  run_fixture<cfg_in_out<float, nn::attn::flash>>("gpt2", 1e-5, 1e-4);
}

// (b)
BOOST_AUTO_TEST_CASE(vs_host_hd64_causal) { cuda_vs_host_both<rcfg_gpt2, 4, nn::attn::mha, nn::attn::causal>("hd64 causal"); }
BOOST_AUTO_TEST_CASE(vs_host_hd64_gqa_window_rope) {
  cuda_vs_host_both<rcfg_llama, 4, nn::attn::gqa<2>, nn::attn::sliding_window<50>>("hd64 gqa window rope swiglu");
}
BOOST_AUTO_TEST_CASE(vs_host_hd64_post_norm_bidir) {
  cuda_vs_host_both<rcfg_post, 4, nn::attn::mha, nn::attn::bidirectional>("hd64 post-norm bidirectional");
}
BOOST_AUTO_TEST_CASE(vs_host_hd128_bidir_alibi) {
  cuda_vs_host_both<rcfg_alibi, 2, nn::attn::mha, nn::attn::bidirectional>("hd128 bidirectional alibi");
}
BOOST_AUTO_TEST_CASE(vs_host_hd128_mqa_window_bidir) {
  cuda_vs_host_both<rcfg_gpt2, 2, nn::attn::mqa, nn::attn::sliding_window<40, false>>("hd128 mqa window bidir");
}
BOOST_AUTO_TEST_CASE(vs_host_hd128_causal) { cuda_vs_host_both<rcfg_gpt2, 2, nn::attn::mha, nn::attn::causal>("hd128 causal"); }

// (c)
BOOST_AUTO_TEST_CASE(attention_hd64) {
  for (auto const& c : mask_cases(4, 4, 64)) attention_case<64>(c);
  for (auto const& c : mask_cases(4, 2, 64)) attention_case<64>(c);
}
BOOST_AUTO_TEST_CASE(attention_hd128) {
  for (auto const& c : mask_cases(4, 1, 128)) attention_case<128>(c);
  for (auto const& c : mask_cases(4, 2, 128)) attention_case<0>(c);  // dynamic head size, same kernels
}
// The tensor-core kernels' cases, f(case, pad): hd 64 and 128, T 1..257 (partial tiles), causal or
// not, windows, ALiBi, GQA and MHA; then token strides that rule out 16-byte loads.
template <class F>
void for_each_mma_case(F&& f) {
  for (int hd : {64, 128})
    for (int T : {1, 17, 64, 100, 257})
      for (bool causal : {false, true})
        for (int window : {0, 16})
          for (bool alibi : {false, true})
            for (int kv : {4, 2}) f(attn_case{2, T, 4, kv, hd, causal, window, alibi}, 0);
  f(attn_case{2, 100, 4, 2, 64, true, 0, false}, 2);
  f(attn_case{2, 257, 4, 4, 128, false, 16, true}, 2);
}

BOOST_AUTO_TEST_CASE(attention_bf16_mma_forward) {
  for_each_mma_case(attention_mma_case);
  // mma rejects other head sizes
  const nn::attention_shape s{1, 8, 2, 2, 32, 6 * 32, 6 * 32, 6 * 32};
  BOOST_CHECK_THROW(nn::attention_flash_forward_bf16_mma(s, nn::attention_mask{}, nullptr, nullptr, nullptr, nullptr,
                                                         nullptr, nullptr),
                    tfm::invalid_argument);
}
BOOST_AUTO_TEST_CASE(attention_bf16_mma_backward) {
  for_each_mma_case(attention_mma_backward_case);
  attention_mma_backward_case({1, 200, 4, 1, 64, true, 0, false}, 0);  // MQA
  const nn::attention_shape s{1, 8, 2, 2, 32, 6 * 32, 6 * 32, 6 * 32};
  BOOST_CHECK_THROW(nn::attention_flash_backward_bf16_mma(s, nn::attention_mask{}, nullptr, nullptr, nullptr, nullptr,
                                                          nullptr, nullptr, nullptr, nullptr, nullptr, nullptr,
                                                          nullptr),
                    tfm::invalid_argument);
}
BOOST_AUTO_TEST_CASE(attention_generic_head_sizes) {
  for (auto const& c : mask_cases(6, 3, 8)) attention_case<0>(c);
  for (auto const& c : mask_cases(3, 3, 6)) attention_case<6>(c);
  attention_case<0>({1, 70, 2, 1, 200, true, 0, false});  // hd 200 (padded to 256)
}

// (e)
BOOST_AUTO_TEST_CASE(storage_fp8_packing_vs_host) {
  storage_shapes_vs_host<fp8_tensor>();
  storage_shapes_vs_host<fp8_channel>();
  storage_shapes_vs_host<nn::fp8<tfm::float8_e5m2>>();
  storage_shapes_vs_host<e5m2_channel>();
  storage_vs_host<fp8_channel, double>({33, 7, true}, 5);  // double master weights
  storage_vs_host<fp8_tensor, double>({96, 1500, false}, 6);
}
BOOST_AUTO_TEST_CASE(storage_fp8_model_vs_host) {
  storage_models_vs_host<fp8_tensor>("fp8 per tensor");
  storage_models_vs_host<fp8_channel>("fp8 per channel");
}
