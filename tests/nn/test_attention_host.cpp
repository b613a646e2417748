#define TFM_TEST_MODULE test_attention_host
#include "support/test_main.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "tfm/nn/attention_host.hpp"

using namespace tfm::nn;

namespace {

enum class impl { naive, flash };

// q, k, v (and dq, dk, dv) live in one buffer at offsets oq, ok, ov. Interleaved: one
// [B, T, (H + 2·KV)·hd] buffer (as the model calls it); otherwise three contiguous tensors.
template <class T>
struct problem {
  attention_shape s{};
  attention_mask m{};
  std::size_t oq = 0, ok = 0, ov = 0;
  std::vector<T> x;     // q, k, v
  std::vector<T> wout;  // loss = sum(out ∘ wout), so dout = wout
  std::size_t out_size() const { return std::size_t(s.batch) * s.seq * s.heads * s.head_dim; }
};

template <class T>
problem<T> make_problem(int B, int Tn, int H, int KV, int hd, attention_mask m, bool inter,
                        unsigned seed) {
  problem<T> p;
  p.m = m;
  p.s = {B, Tn, H, KV, hd, 0, 0, 0};
  const std::size_t rows = std::size_t(B) * Tn;
  if (inter) {
    const std::int64_t ld = std::int64_t(H + 2 * KV) * hd;
    p.s.ld_q = p.s.ld_k = p.s.ld_v = ld;
    p.oq = 0;
    p.ok = std::size_t(H) * hd;
    p.ov = std::size_t(H + KV) * hd;
    p.x.resize(rows * ld);
  } else {
    p.s.ld_q = std::int64_t(H) * hd;
    p.s.ld_k = p.s.ld_v = std::int64_t(KV) * hd;
    p.oq = 0;
    p.ok = rows * H * hd;
    p.ov = p.ok + rows * KV * hd;
    p.x.resize(p.ov + rows * KV * hd);
  }
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  for (auto& e : p.x) e = T(u(gen));
  p.wout.resize(p.out_size());
  for (auto& e : p.wout) e = T(u(gen));
  return p;
}

template <class T, int HD = 0>
std::vector<T> forward(impl which, const problem<T>& p, const T* x, std::vector<T>* saved = nullptr) {
  std::vector<T> out(p.out_size(), T(-7));
  std::vector<T> aux;
  if (which == impl::naive) {
    aux.assign(naive_probs_size(p.s), T(0));
    attention_naive_forward<T, HD>(p.s, p.m, x + p.oq, x + p.ok, x + p.ov, out.data(), aux.data());
  } else {
    aux.assign(std::size_t(p.s.batch) * p.s.heads * p.s.seq, T(0));
    attention_flash_forward<T, HD>(p.s, p.m, x + p.oq, x + p.ok, x + p.ov, out.data(), aux.data());
  }
  if (saved) *saved = std::move(aux);
  return out;
}

// Gradient of sum(out ∘ wout) with respect to the whole buffer x (dq, dk, dv at the same offsets).
// dx starts as garbage: the kernels must overwrite it.
template <class T, int HD = 0>
std::vector<T> backward(impl which, const problem<T>& p, std::vector<T>* out_ret = nullptr) {
  std::vector<T> saved;
  std::vector<T> out = forward<T, HD>(which, p, p.x.data(), &saved);
  std::vector<T> dx(p.x.size(), T(1e30));
  const T* x = p.x.data();
  if (which == impl::naive) {
    std::vector<T> scratch(std::max<std::size_t>(1, naive_scratch_size(p.s)));
    attention_naive_backward<T, HD>(p.s, p.m, x + p.oq, x + p.ok, x + p.ov, saved.data(),
                                    p.wout.data(), dx.data() + p.oq, dx.data() + p.ok,
                                    dx.data() + p.ov, scratch.data());
  } else {
    std::vector<T> scratch(std::max<std::size_t>(1, flash_scratch_size(p.s, 4)));
    attention_flash_backward<T, HD>(p.s, p.m, x + p.oq, x + p.ok, x + p.ov, out.data(),
                                    p.wout.data(), saved.data(), dx.data() + p.oq,
                                    dx.data() + p.ok, dx.data() + p.ov, scratch.data());
  }
  if (out_ret) *out_ret = std::move(out);
  return dx;
}

template <class T>
double loss(impl which, const problem<T>& p, const std::vector<T>& x) {
  const std::vector<T> out = forward<T>(which, p, x.data());
  double l = 0;
  for (std::size_t i = 0; i < out.size(); ++i) l += double(out[i]) * double(p.wout[i]);
  return l;
}

// max |a - b| / max |b|
template <class T>
double rel_err(const std::vector<T>& a, const std::vector<T>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    num = std::max(num, std::abs(double(a[i]) - double(b[i])));
    den = std::max(den, std::abs(double(b[i])));
  }
  return den > 0 ? num / den : num;
}

std::string describe(const attention_shape& s, const attention_mask& m, impl which) {
  return std::string(which == impl::naive ? "naive" : "flash") + " B=" + std::to_string(s.batch) +
         " T=" + std::to_string(s.seq) + " H=" + std::to_string(s.heads) +
         " KV=" + std::to_string(s.kv_heads) + " hd=" + std::to_string(s.head_dim) +
         (m.causal ? " causal" : " bidir") + " W=" + std::to_string(m.window) +
         (m.alibi ? " alibi" : "") + " ld_q=" + std::to_string(s.ld_q);
}

void grad_check(int B, int Tn, int H, int KV, int hd, attention_mask m, bool inter = true) {
  // Thousands of tiny calls: one thread avoids fork/join costs on busy machines.
  tfm::host::scoped_num_threads one_thread(1);
  for (impl which : {impl::naive, impl::flash}) {
    problem<double> p = make_problem<double>(B, Tn, H, KV, hd, m, inter, 1234u + unsigned(Tn * 7 + H));
    const std::vector<double> ana = backward<double>(which, p);
    std::vector<double> num(p.x.size());
    std::vector<double> x = p.x;
    const double h = 1e-6;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double x0 = x[i];
      x[i] = x0 + h;
      const double fp = loss(which, p, x);
      x[i] = x0 - h;
      const double fm = loss(which, p, x);
      x[i] = x0;
      num[i] = (fp - fm) / (2 * h);
    }
    const double e = rel_err(ana, num);
    BOOST_TEST_INFO(describe(p.s, m, which) << " grad rel err " << e);
    BOOST_TEST(e < 1e-6);
  }
}

attention_mask mk(bool causal, int window = 0, bool alibi = false, float scale = 0) {
  attention_mask m;
  m.causal = causal;
  m.window = window;
  m.alibi = alibi;
  m.scale = scale;
  return m;
}

// flash against naive: out and dq, dk, dv.
template <class T>
void flash_vs_naive(int B, int Tn, int H, int KV, int hd, attention_mask m, bool inter, double tol) {
  problem<T> p = make_problem<T>(B, Tn, H, KV, hd, m, inter, 99u + unsigned(Tn));
  std::vector<T> on, of;
  const std::vector<T> gn = backward<T>(impl::naive, p, &on);
  const std::vector<T> gf = backward<T>(impl::flash, p, &of);
  const double eo = rel_err(of, on), eg = rel_err(gf, gn);
  BOOST_TEST_INFO(describe(p.s, m, impl::flash) << " out err " << eo << " grad err " << eg);
  BOOST_TEST(eo < tol);
  BOOST_TEST(eg < tol);
}

}  // namespace

BOOST_AUTO_TEST_CASE(alibi_slope_values) {
  const auto s8 = alibi_slopes<double>(8);
  BOOST_TEST(s8.size() == 8u);
  for (int h = 0; h < 8; ++h) BOOST_TEST(s8[h] == std::exp2(-(h + 1.0)));
  const auto s6 = alibi_slopes<double>(6);  // n = 4: 2^-2, 2^-4, 2^-6, 2^-8, then 2^-1, 2^-3
  const double want6[] = {0.25, 1.0 / 16, 1.0 / 64, 1.0 / 256, 0.5, 0.125};
  BOOST_TEST(s6.size() == 6u);
  for (int h = 0; h < 6; ++h) BOOST_TEST(s6[h] == want6[h]);
  const auto s1 = alibi_slopes<float>(1);
  BOOST_TEST(s1.size() == 1u);
  BOOST_TEST(s1[0] == 1.0f / 256);
}

BOOST_AUTO_TEST_CASE(gradients_mha_gqa_mqa) {
  grad_check(2, 13, 2, 2, 8, mk(true));    // MHA causal
  grad_check(2, 13, 2, 2, 8, mk(false));   // MHA bidirectional
  grad_check(1, 13, 4, 2, 8, mk(true));    // GQA
  grad_check(1, 13, 4, 2, 6, mk(false));   // GQA, hd = 6
  grad_check(2, 13, 3, 1, 8, mk(true));    // MQA
  grad_check(1, 13, 3, 1, 6, mk(false));   // MQA bidirectional
  // head sizes with kernels specialised at compile time (picked at run time)
  grad_check(1, 9, 2, 1, 32, mk(true));
  grad_check(1, 9, 2, 2, 64, mk(false, 4));
}

BOOST_AUTO_TEST_CASE(gradients_windows_alibi_scale) {
  grad_check(2, 13, 2, 1, 8, mk(true, 4));                // causal window
  grad_check(1, 13, 4, 2, 6, mk(false, 3));               // bidirectional window
  grad_check(1, 13, 3, 3, 8, mk(true, 0, true));          // ALiBi causal (H = 3)
  grad_check(1, 13, 4, 2, 6, mk(false, 0, true));         // ALiBi bidirectional
  grad_check(1, 13, 4, 1, 8, mk(true, 5, true));          // ALiBi + window
  grad_check(1, 13, 2, 2, 8, mk(false, 0, false, 0.3f));  // explicit scale
  grad_check(2, 13, 4, 2, 6, mk(true), false);            // contiguous (non-interleaved) layout
}

BOOST_AUTO_TEST_CASE(gradients_across_tiles) {
  // T crosses the 64-row/64-key tiles of the flash kernels.
  grad_check(1, 70, 2, 1, 4, mk(true, 20));
  grad_check(1, 67, 2, 2, 2, mk(false, 0, true));
}

BOOST_AUTO_TEST_CASE(flash_matches_naive_double) {
  for (int Tn : {1, 13, 64, 65, 200}) {
    flash_vs_naive<double>(2, Tn, 4, 2, 8, mk(true), true, 1e-12);
    flash_vs_naive<double>(1, Tn, 4, 1, 6, mk(false), true, 1e-12);
  }
  flash_vs_naive<double>(1, 200, 4, 2, 16, mk(true, 50), true, 1e-12);
  flash_vs_naive<double>(1, 200, 4, 4, 16, mk(false, 70), false, 1e-12);
  flash_vs_naive<double>(1, 200, 3, 1, 8, mk(true, 0, true), true, 1e-12);
  flash_vs_naive<double>(1, 200, 6, 2, 8, mk(false, 0, true), true, 1e-12);
  flash_vs_naive<double>(1, 200, 2, 2, 8, mk(false, 1), true, 1e-12);  // diagonal only
}

BOOST_AUTO_TEST_CASE(flash_matches_naive_float) {
  for (int Tn : {13, 64, 129, 200}) {
    flash_vs_naive<float>(2, Tn, 4, 2, 8, mk(true), true, 1e-5);
    flash_vs_naive<float>(1, Tn, 4, 1, 16, mk(false), true, 1e-5);
  }
  flash_vs_naive<float>(1, 200, 4, 2, 32, mk(true, 40), true, 1e-5);
  flash_vs_naive<float>(1, 200, 4, 4, 8, mk(false, 70, true), false, 1e-5);
  flash_vs_naive<float>(1, 200, 4, 2, 64, mk(true, 0, true), true, 1e-5);
  // the head sizes with AVX-512 tile products (32, 64, 128): tile edges, GQA, separate q/k/v
  for (int Tn : {1, 63, 130}) {
    flash_vs_naive<float>(1, Tn, 2, 1, 128, mk(true), true, 1e-5);
    flash_vs_naive<float>(2, Tn, 4, 2, 64, mk(false), false, 1e-5);
    flash_vs_naive<float>(1, Tn, 2, 2, 32, mk(true, 17), true, 1e-5);
  }
}

// The flash backward's one-pass schedule (a task per (batch, kv head) sums dQ with dK and dV)
// against the two passes: the same bits wherever it runs (no sliding window), on the AVX-512 tile
// path (fp32, hd 32/64/128) and the portable one (double, odd head sizes), across tile edges,
// GQA/MQA, ALiBi, an explicit scale and both q/k/v layouts. (On the threads of the test: the
// one pass needs 2 × threads pairs; one thread here so that every case takes it.)
template <class T, int HD = 0>
void schedules_agree(int B, int Tn, int H, int KV, int hd, attention_mask m, bool inter) {
  namespace da = tfm::nn::detail::attn;
  tfm::host::scoped_num_threads one_thread(1);
  const problem<T> p = make_problem<T>(B, Tn, H, KV, hd, m, inter, 77u + unsigned(Tn));
  da::flash_backward_schedule_used = da::flash_backward_schedule::two_pass;
  const std::vector<T> two = backward<T, HD>(impl::flash, p);
  da::flash_backward_schedule_used = da::flash_backward_schedule::automatic;
  const std::vector<T> one = backward<T, HD>(impl::flash, p);
  BOOST_TEST(std::memcmp(one.data(), two.data(), one.size() * sizeof(T)) == 0, describe(p.s, p.m, impl::flash));
}

BOOST_AUTO_TEST_CASE(flash_backward_schedules_agree) {
  for (int Tn : {1, 63, 64, 65, 200}) {
    schedules_agree<float>(2, Tn, 4, 2, 64, mk(true), true);
    schedules_agree<float>(2, Tn, 2, 2, 128, mk(false), false);
    schedules_agree<double>(2, Tn, 4, 1, 6, mk(true), true);
  }
  schedules_agree<float>(3, 130, 6, 3, 32, mk(true, 0, true), true);  // ALiBi, GQA
  schedules_agree<float>(2, 130, 2, 1, 64, mk(false, 0, false, 0.3f), true);
  schedules_agree<float, 64>(2, 130, 4, 2, 64, mk(true), false);  // static head size
  schedules_agree<double>(2, 77, 3, 3, 8, mk(false, 0, true), false);
  // a sliding window keeps the two passes: trivially the same, but the dQ must still be right
  schedules_agree<float>(2, 130, 4, 2, 64, mk(true, 40), true);
}

BOOST_AUTO_TEST_CASE(causality_invariant) {
  for (impl which : {impl::naive, impl::flash})
    for (attention_mask m : {mk(true), mk(true, 5), mk(true, 0, true)}) {
      problem<double> p = make_problem<double>(1, 100, 4, 2, 8, m, true, 7u);
      const std::vector<double> base = forward<double>(which, p, p.x.data());
      const int H = p.s.heads, hd = p.s.head_dim;
      for (int i : {0, 37, 64, 98}) {
        std::vector<double> x = p.x;
        // change q, k, v of every token after i
        for (int t = i + 1; t < p.s.seq; ++t)
          for (std::int64_t e = 0; e < p.s.ld_q; ++e) x[t * p.s.ld_q + e] += 0.5 + 0.01 * double(e);
        const std::vector<double> changed = forward<double>(which, p, x.data());
        bool same = true;
        for (int t = 0; t <= i; ++t)
          for (int e = 0; e < H * hd; ++e)
            same = same && changed[std::size_t(t) * H * hd + e] == base[std::size_t(t) * H * hd + e];
        BOOST_TEST_INFO(describe(p.s, m, which) << " i=" << i);
        BOOST_TEST(same);
      }
    }
}

BOOST_AUTO_TEST_CASE(window_at_least_T_is_no_window) {
  for (impl which : {impl::naive, impl::flash})
    for (bool causal : {true, false})
      for (int W : {90, 200}) {
        problem<double> p = make_problem<double>(1, 90, 2, 1, 8, mk(causal), true, 3u);
        std::vector<double> o0, o1;
        const std::vector<double> g0 = backward<double>(which, p, &o0);
        p.m.window = W;
        const std::vector<double> g1 = backward<double>(which, p, &o1);
        BOOST_TEST(rel_err(o1, o0) == 0.0);
        BOOST_TEST(rel_err(g1, g0) == 0.0);
      }
}

BOOST_AUTO_TEST_CASE(gqa_equals_mha_with_repeated_kv) {
  const int B = 2, Tn = 77, H = 4, KV = 2, hd = 8, G = H / KV;
  for (impl which : {impl::naive, impl::flash})
    for (attention_mask m : {mk(true), mk(false, 10, true)}) {
      problem<double> g = make_problem<double>(B, Tn, H, KV, hd, m, false, 11u);
      // MHA problem whose head h holds kv head h / G of the GQA problem.
      problem<double> a = make_problem<double>(B, Tn, H, H, hd, m, false, 12u);
      a.wout = g.wout;
      for (int bt = 0; bt < B * Tn; ++bt) {
        for (int e = 0; e < H * hd; ++e) a.x[a.oq + bt * H * hd + e] = g.x[g.oq + bt * H * hd + e];
        for (int h = 0; h < H; ++h)
          for (int d = 0; d < hd; ++d) {
            a.x[a.ok + (bt * H + h) * hd + d] = g.x[g.ok + (bt * KV + h / G) * hd + d];
            a.x[a.ov + (bt * H + h) * hd + d] = g.x[g.ov + (bt * KV + h / G) * hd + d];
          }
      }
      std::vector<double> og, oa;
      const std::vector<double> dg = backward<double>(which, g, &og);
      const std::vector<double> da = backward<double>(which, a, &oa);
      BOOST_TEST(rel_err(og, oa) < 1e-14);
      // dq equal; dk, dv of kv head g = sum over its query heads of the MHA gradients.
      std::vector<double> want(g.x.size(), 0.0);
      for (int bt = 0; bt < B * Tn; ++bt) {
        for (int e = 0; e < H * hd; ++e) want[g.oq + bt * H * hd + e] = da[a.oq + bt * H * hd + e];
        for (int h = 0; h < H; ++h)
          for (int d = 0; d < hd; ++d) {
            want[g.ok + (bt * KV + h / G) * hd + d] += da[a.ok + (bt * H + h) * hd + d];
            want[g.ov + (bt * KV + h / G) * hd + d] += da[a.ov + (bt * H + h) * hd + d];
          }
      }
      BOOST_TEST_INFO(describe(g.s, m, which));
      BOOST_TEST(rel_err(dg, want) < 1e-13);
    }
}

BOOST_AUTO_TEST_CASE(static_head_dim_equals_dynamic) {
  for (impl which : {impl::naive, impl::flash}) {
    {
      problem<double> p = make_problem<double>(1, 150, 4, 2, 64, mk(true, 0, true), true, 5u);
      std::vector<double> o0, o1;
      const auto g0 = backward<double, 0>(which, p, &o0);
      const auto g1 = backward<double, 64>(which, p, &o1);
      BOOST_TEST(rel_err(o1, o0) < 1e-13);
      BOOST_TEST(rel_err(g1, g0) < 1e-13);
    }
    {
      problem<float> p = make_problem<float>(1, 150, 4, 1, 64, mk(false, 40), true, 6u);
      std::vector<float> o0, o1;
      const auto g0 = backward<float, 0>(which, p, &o0);
      const auto g1 = backward<float, 64>(which, p, &o1);
      BOOST_TEST(rel_err(o1, o0) < 1e-5);
      BOOST_TEST(rel_err(g1, g0) < 1e-5);
    }
  }
}

BOOST_AUTO_TEST_CASE(rejects_bad_shapes) {
  std::vector<float> buf(4096), out(4096), lse(64);
  attention_shape s{1, 4, 3, 2, 8, 3 * 8, 2 * 8, 2 * 8};  // 3 % 2 != 0
  BOOST_CHECK_THROW(attention_flash_forward<float>(s, {}, buf.data(), buf.data(), buf.data(),
                                                   out.data(), lse.data()),
                    tfm::shape_error);
  s = {1, 4, 2, 2, 8, 16, 16, 16};
  BOOST_CHECK_THROW((attention_flash_forward<float, 64>(s, {}, buf.data(), buf.data(), buf.data(),
                                                        out.data(), lse.data())),
                    tfm::shape_error);
  s.ld_q = 8;
  BOOST_CHECK_THROW(attention_naive_forward<float>(s, {}, buf.data(), buf.data(), buf.data(),
                                                   out.data(), buf.data()),
                    tfm::shape_error);
}

BOOST_AUTO_TEST_CASE(float_exp_accuracy) {
  double worst = 0;
  for (float x = -80.f; x <= 80.f; x += 0.001953125f) {
    const double want = std::exp(double(x));
    worst = std::max(worst, std::abs(double(tfm::nn::detail::attn::exp_t(x)) - want) / want);
  }
  BOOST_TEST(worst < 4e-7);
  BOOST_TEST(tfm::nn::detail::attn::exp_t(0.0f) == 1.0f);
  BOOST_TEST(tfm::nn::detail::attn::exp_t(-1000.0f) < 1e-37f);
  BOOST_TEST(tfm::nn::detail::attn::exp_t(-1000.0) == 0.0);
}
