// The CUDA backend's norm operations (nn/ops_cuda.cuh) against the host ones in double, with
// the warp-per-row kernels on (the default) and off (set_warp_norms(false)):
// LayerNorm and RMSNorm, forward and backward, float or bf16 activations (y, dy), widths on
// both sides of every switch between the warp-per-row kernels (D <= 1024: 8, 16, 24 or 32
// columns per lane) and the block-per-row ones, row counts below and above the number of warps
// the backward launches (so warps take several rows), dx overwritten and accumulated, and dw, db
// added to what they held. Tolerances: float results 2e-5 of the tensor's scale (dw, db: sums
// over up to 3000 rows, 1e-4); bf16 y one bf16 rounding (2^-8 relative) more.
// The element-wise operations (GELU forward and backward, residual add, narrow to and widen from
// bf16 / fp16), float and bf16: the word-at-a-time kernels (aligned pointers) bit for bit against
// the element-at-a-time ones (the same arrays one element off alignment), lengths with and
// without a tail, and both against the host.
// Without a CUDA device the executable exits 77 (skipped).
#include "tfm/nn/ops_cuda.cuh"

#define TFM_TEST_MODULE test_ops_cuda
#define TFM_TEST_NEEDS_CUDA
#include "support/test_main.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda_buffers.hpp"
#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/core/dtype.hpp"
#include "tfm/core/rng.hpp"
#include "tfm/nn/math.hpp"
#include "tfm/nn/ops_host.hpp"

namespace nn = tfm::nn;
namespace cu = tfm::cuda;
using tfm::test::to_device;
using tfm::test::to_host;

namespace {

template <class T>
double to_double(T v) {
  if constexpr (std::is_same_v<T, tfm::bfloat16>)
    return double(float(v));
  else
    return double(v);
}

template <class T>
std::vector<double> wide(const std::vector<T>& v) {
  std::vector<double> r(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) r[i] = to_double(v[i]);
  return r;
}

// max |got − ref| ≤ tol · max(1, max |ref|) + rel · |ref| per element
template <class G>
void expect_close(const std::vector<G>& got, const std::vector<double>& ref, double tol, double rel,
                  const std::string& what) {
  BOOST_TEST_REQUIRE(got.size() == ref.size());
  double scale = 1;
  for (double r : ref) scale = std::max(scale, std::abs(r));
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < ref.size(); ++i) {
    const double g = to_double(got[i]);
    const double excess = std::abs(g - ref[i]) - rel * std::abs(ref[i]);
    if (!(excess <= worst)) worst = excess, at = i;  // NaN is the worst
  }
  BOOST_TEST(worst <= tol * scale, what << ": element " << at << " got " << to_double(got[at]) << ", expected "
                                        << ref[at] << " (tolerance " << tol * scale << ")");
}

template <bool Rms, class A>
void norm_case(std::int64_t N, int D, std::uint64_t seed, bool warp_kernels) {
  const std::string name = std::string(Rms ? "rmsnorm" : "layernorm") +
                           (std::is_same_v<A, float> ? " float" : " bf16") + " N=" + std::to_string(N) +
                           " D=" + std::to_string(D) + (warp_kernels ? "" : " (block-per-row kernels)");
  const std::size_t nd = std::size_t(N) * std::size_t(D), nc = static_cast<std::size_t>(D);
  std::vector<float> x(nd), w(nc), b(nc), dx0(nd), dw0(nc), db0(nc);
  std::vector<A> dy(nd);
  for (std::size_t i = 0; i < nd; ++i) {
    x[i] = 0.5f + 2.0f * tfm::rng::normal(seed, 0, i);  // an offset: LayerNorm's mean matters
    dy[i] = A(tfm::rng::normal(seed, 1, i));
    dx0[i] = tfm::rng::normal(seed, 2, i);
  }
  for (int c = 0; c < D; ++c) {
    w[std::size_t(c)] = 1.0f + 0.3f * tfm::rng::normal(seed, 3, std::uint64_t(c));
    b[std::size_t(c)] = 0.2f * tfm::rng::normal(seed, 4, std::uint64_t(c));
    dw0[std::size_t(c)] = tfm::rng::normal(seed, 5, std::uint64_t(c));
    db0[std::size_t(c)] = tfm::rng::normal(seed, 6, std::uint64_t(c));
  }
  const double eps = 1e-5;

  // reference: the host kernels in double on the same (float / bf16-exact) values
  const std::vector<double> xd = wide(x), wd = wide(w), bd = wide(b), dyd = wide(dy);
  const std::size_t nr = static_cast<std::size_t>(N);
  std::vector<double> yd(nd), mean(nr), rstd(nr);
  nn::host::norm_forward<Rms>(N, D, xd.data(), wd.data(), Rms ? nullptr : bd.data(), yd.data(), mean.data(),
                              rstd.data(), eps);
  for (int acc = 0; acc < 2; ++acc) {
    std::vector<double> dxd = acc ? wide(dx0) : std::vector<double>(nd), dwd = wide(dw0), dbd = wide(db0);
    std::vector<double> scratch(nn::host::norm_scratch_size(D));
    nn::host::norm_backward<Rms>(N, D, dyd.data(), xd.data(), wd.data(), mean.data(), rstd.data(), dxd.data(), acc == 1,
                                 dwd.data(), Rms ? nullptr : dbd.data(), scratch.data());

    nn::cuda_backend<float> be;
    be.set_warp_norms(warp_kernels);
    auto d_x = to_device(x), d_w = to_device(w), d_b = to_device(b), d_dx = to_device(dx0), d_dw = to_device(dw0),
         d_db = to_device(db0);
    auto d_dy = to_device(dy);
    cu::device_buffer<A> d_y(nd);
    cu::device_buffer<float> d_mean(nr), d_rstd(nr), d_scratch(be.norm_scratch_size(D));
    be.template norm_forward<Rms, A>(N, D, d_x.data(), d_w.data(), Rms ? nullptr : d_b.data(), d_y.data(),
                                     d_mean.data(), d_rstd.data(), eps);
    be.template norm_backward<Rms, A>(N, D, d_dy.data(), d_x.data(), d_w.data(), d_mean.data(), d_rstd.data(),
                                      d_dx.data(), acc == 1, d_dw.data(), Rms ? nullptr : d_db.data(),
                                      d_scratch.data());
    be.synchronize();
    const std::string tag = name + (acc ? " (dx accumulated)" : "");
    if (acc == 0) {
      const double yrel = std::is_same_v<A, float> ? 0.0 : 1.0 / 256;
      expect_close(to_host(d_y, nd), yd, 2e-5, yrel, tag + " y");
      expect_close(to_host(d_rstd, nr), rstd, 2e-5, 0, tag + " rstd");
      if (!Rms) expect_close(to_host(d_mean, nr), mean, 2e-5, 0, tag + " mean");
    }
    expect_close(to_host(d_dx, nd), dxd, 2e-5, 0, tag + " dx");
    expect_close(to_host(d_dw, nc), dwd, 1e-4, 0, tag + " dw");
    expect_close(to_host(d_db, nc), Rms ? wide(db0) : dbd, 1e-4, 0, tag + " db");
  }
}

template <bool Rms, class A>
void norm_widths() {
  std::uint64_t seed = Rms ? 100 : 200;
  for (int D : {1, 7, 64, 255, 256, 257, 512, 600, 768, 769, 1000, 1024, 1025, 1600})
    for (std::int64_t N : {1, 9, 3000})
      for (bool warp : {true, false}) norm_case<Rms, A>(N, D, ++seed, warp);
}

// Device copies of inputs placed at an aligned start (offset 0: the word kernels and a tail) or
// one element past it (offset 1: the element kernels only).
template <class U>
cu::device_buffer<U> placed(const std::vector<U>& v, std::size_t off) {
  std::vector<U> h(v.size() + 1, U(0));
  std::copy(v.begin(), v.end(), h.begin() + std::ptrdiff_t(off));
  return to_device(h);
}
template <class U>
bool same_bits(const std::vector<U>& a, const std::vector<U>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(U)) == 0);
}

template <class S>
void elementwise_case(std::size_t n, std::uint64_t seed) {
  const std::string name = std::string(std::is_same_v<S, float> ? "float" : "bf16") + " n=" + std::to_string(n);
  nn::cuda_backend<float> be;
  std::vector<S> x(n), g(n);
  std::vector<float> a(n), f(n);
  for (std::size_t i = 0; i < n; ++i) {
    x[i] = S(3.0f * tfm::rng::normal(seed, 0, i));
    g[i] = S(tfm::rng::normal(seed, 1, i));
    a[i] = tfm::rng::normal(seed, 2, i);
    f[i] = 100.0f * tfm::rng::normal(seed, 3, i);
  }
  cu::device_buffer<S> y(n + 1), dxo(n + 1);
  cu::device_buffer<float> sum(n + 1), wide_out(n + 1);
  cu::device_buffer<tfm::bfloat16> nb(n + 1);
  cu::device_buffer<tfm::half> nh(n + 1);
  std::vector<S> y_at[2], dx_at[2];
  std::vector<float> sum_at[2], widen_at[2];
  std::vector<tfm::bfloat16> nb_at[2];
  std::vector<tfm::half> nh_at[2];
  for (std::size_t off = 0; off < 2; ++off) {
    const std::int64_t m = std::int64_t(n);
    // the inputs at element `off` of fresh buffers (cudaMalloc aligns to 256 bytes)
    const auto dx_in = placed(x, off), dg = placed(g, off);
    const auto da = placed(a, off), df = placed(f, off);
    if constexpr (std::is_same_v<S, float>) {
      be.gelu_forward(m, dx_in.data() + off, y.data() + off);
      be.gelu_backward(m, dx_in.data() + off, dg.data() + off, dxo.data() + off);
      be.add(m, da.data() + off, dg.data() + off, sum.data() + off);
    } else {
      be.gelu_forward_mixed(m, dx_in.data() + off, y.data() + off);
      be.gelu_backward_mixed(m, dx_in.data() + off, dg.data() + off, dxo.data() + off);
      be.add_mixed(m, da.data() + off, dg.data() + off, sum.data() + off);
    }
    be.narrow(m, df.data() + off, nb.data() + off);
    be.narrow(m, df.data() + off, nh.data() + off);
    be.widen(m, nb.data() + off, wide_out.data() + off);
    be.synchronize();
    y_at[off] = to_host(y, n, off);
    dx_at[off] = to_host(dxo, n, off);
    sum_at[off] = to_host(sum, n, off);
    nb_at[off] = to_host(nb, n, off);
    nh_at[off] = to_host(nh, n, off);
    widen_at[off] = to_host(wide_out, n, off);
  }
  BOOST_TEST(same_bits(y_at[0], y_at[1]), name << ": gelu forward, word and element kernels differ");
  BOOST_TEST(same_bits(dx_at[0], dx_at[1]), name << ": gelu backward, word and element kernels differ");
  BOOST_TEST(same_bits(sum_at[0], sum_at[1]), name << ": add, word and element kernels differ");
  BOOST_TEST(same_bits(nb_at[0], nb_at[1]), name << ": narrow to bf16, word and element kernels differ");
  BOOST_TEST(same_bits(nh_at[0], nh_at[1]), name << ": narrow to fp16, word and element kernels differ");
  BOOST_TEST(same_bits(widen_at[0], widen_at[1]), name << ": widen from bf16, word and element kernels differ");

  // against the host (double math; results rounded to S once)
  std::vector<double> y_ref(n), dx_ref(n), sum_ref(n), nb_ref(n), nh_ref(n);
  for (std::size_t i = 0; i < n; ++i) {
    const double xi = to_double(x[i]);
    y_ref[i] = nn::math::gelu_tanh(xi);
    dx_ref[i] = to_double(g[i]) * nn::math::gelu_tanh_grad(xi);
    sum_ref[i] = double(a[i]) + to_double(g[i]);
    nb_ref[i] = double(float(tfm::bfloat16(f[i])));
    nh_ref[i] = double(float(tfm::half(f[i])));
  }
  const double rel = std::is_same_v<S, float> ? 0.0 : 1.0 / 256;
  expect_close(y_at[0], y_ref, 1e-6, rel, name + " gelu forward");
  expect_close(dx_at[0], dx_ref, 1e-6, rel, name + " gelu backward");
  expect_close(sum_at[0], sum_ref, 1e-6, 0, name + " add");
  std::vector<double> nb_got(n), nh_got(n);
  for (std::size_t i = 0; i < n; ++i) nb_got[i] = double(float(nb_at[0][i])), nh_got[i] = double(float(nh_at[0][i]));
  BOOST_TEST(nb_got == nb_ref, name << ": narrow to bf16 differs from the host's rounding");
  BOOST_TEST(nh_got == nh_ref, name << ": narrow to fp16 differs from the host's rounding");
  BOOST_TEST(widen_at[0] == std::vector<float>(nb_got.begin(), nb_got.end()), name << ": widen from bf16 is not exact");
}

}  // namespace

BOOST_AUTO_TEST_CASE(elementwise_word_kernels_vs_element_kernels_and_host) {
  std::uint64_t seed = 300;
  for (std::size_t n : {1, 3, 4, 7, 8, 9, 15, 16, 17, 1000, 4096, 100003}) {
    elementwise_case<float>(n, ++seed);
    elementwise_case<tfm::bfloat16>(n, ++seed);
  }
}

BOOST_AUTO_TEST_CASE(layernorm_float_vs_host) { norm_widths<false, float>(); }
BOOST_AUTO_TEST_CASE(rmsnorm_float_vs_host) { norm_widths<true, float>(); }
BOOST_AUTO_TEST_CASE(layernorm_bf16_vs_host) { norm_widths<false, tfm::bfloat16>(); }
BOOST_AUTO_TEST_CASE(rmsnorm_bf16_vs_host) { norm_widths<true, tfm::bfloat16>(); }
