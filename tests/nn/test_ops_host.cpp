// The host softmax cross-entropy (nn/ops_host.hpp) against float64 references: every SIMD row
// kernel this CPU runs (AVX2, AVX-512) and the dispatching entry points, over vocabulary sizes
// that exercise the vector loops, their two-accumulator unrolling and the scalar tails (1 … 50257,
// GPT-2's), with large and equal logits and ignored targets; the GELU kernels (AVX-512 against
// AVX2); and host::zero_fill.
#define TFM_TEST_MODULE test_ops_host
#include "support/test_main.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <type_traits>
#include <vector>

#include "tfm/backend/host/threading.hpp"
#include "tfm/backend/host/zero.hpp"
#include "tfm/nn/ops_host.hpp"

namespace host = tfm::nn::host;
namespace hd = tfm::nn::host::detail;

namespace {

constexpr int ignore = -100;  // as nn::ignore_index
constexpr int vocab_sizes[] = {1, 7, 15, 16, 17, 31, 32, 33, 61, 1000, 50257};

// A row of V logits: normal·scale plus a shift, so that exp without subtracting the max would
// overflow for shift = 1e4.
std::vector<float> make_row(int V, float scale, float shift, unsigned seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> r(static_cast<std::size_t>(V));
  for (auto& x : r) x = shift + scale * nd(gen);
  return r;
}

double ref_max(const std::vector<float>& r) { return *std::max_element(r.begin(), r.end()); }
double ref_sum_exp(const std::vector<float>& r, double m) {
  double s = 0;
  for (float x : r) s += std::exp(double(x) - m);
  return s;
}

// Each row kernel against float64: the max exactly, Σ exp(r − m) to float precision (relative
// 2e-6: the degree-7 exp is good to ~1e-7 per element), and with the exponentials stored (what
// the cross-entropy's gradient is made of) the same sum, bit for bit, and each e[j] to 2e-6.
template <class Max, class SumExp, class SumExpStore>
void check_row_kernels(Max row_max, SumExp row_sum_exp, SumExpStore row_sum_exp_store) {
  for (int V : vocab_sizes) {
    for (float shift : {0.0f, 1e4f, -30.0f}) {
      const auto r = make_row(V, 4.0f, shift, unsigned(V) * 7u + 1u);
      const float m = row_max(r.data(), V);
      BOOST_TEST(double(m) == ref_max(r), "V=" << V << " shift=" << shift);
      const double s = row_sum_exp(r.data(), V, m);
      const double s_ref = ref_sum_exp(r, m);
      BOOST_TEST(std::abs(s - s_ref) <= 2e-6 * s_ref, "V=" << V << " shift=" << shift << ": " << s << " vs " << s_ref);
      std::vector<float> e(r.size(), -1.0f);
      BOOST_TEST(row_sum_exp_store(r.data(), V, m, e.data()) == s, "V=" << V << " shift=" << shift);
      for (int j = 0; j < V; ++j) {
        const double want = std::exp(double(r[std::size_t(j)]) - double(m));
        BOOST_TEST(std::abs(e[std::size_t(j)] - want) <= 2e-6 * want + 1e-30, "V=" << V << " j=" << j);
      }
      std::vector<float> in_place = r;  // e may be r
      BOOST_TEST(row_sum_exp_store(in_place.data(), V, m, in_place.data()) == s);
      BOOST_TEST(std::memcmp(in_place.data(), e.data(), e.size() * sizeof(float)) == 0);
    }
    // all logits equal: the max is that value and the sum is V
    const std::vector<float> flat(std::size_t(V), 3.5f);
    BOOST_TEST(row_max(flat.data(), V) == 3.5f);
    BOOST_TEST(std::abs(row_sum_exp(flat.data(), V, 3.5f) - V) <= 1e-6 * V);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(row_kernels_portable) {
  check_row_kernels([](const float* r, int V) { return hd::row_max<float>(r, V); },
                    [](const float* r, int V, float m) { return hd::row_sum_exp<float>(r, V, m); },
                    [](const float* r, int V, float m, float* e) { return hd::row_sum_exp<float>(r, V, m, e); });
}

#if TFM_HOST_X86_SIMD
BOOST_AUTO_TEST_CASE(row_kernels_avx2) {
  if (!tfm::host::cpu_supports(tfm::host::isa::avx2)) {
    BOOST_TEST_MESSAGE("SKIP: this CPU has no AVX2");
    return;
  }
  check_row_kernels(
      hd::row_max_avx2, [](const float* r, int V, float m) { return hd::row_sum_exp_avx2(r, V, m); },
      [](const float* r, int V, float m, float* e) { return hd::row_sum_exp_avx2<true>(r, V, m, e); });
}
BOOST_AUTO_TEST_CASE(row_kernels_avx512) {
  if (!tfm::host::cpu_supports(tfm::host::isa::avx512)) {
    BOOST_TEST_MESSAGE("SKIP: this CPU has no AVX-512");
    return;
  }
  check_row_kernels(
      hd::row_max_avx512, [](const float* r, int V, float m) { return hd::row_sum_exp_avx512(r, V, m); },
      [](const float* r, int V, float m, float* e) { return hd::row_sum_exp_avx512<true>(r, V, m, e); });
}
// exp16 equals exp8 lane by lane (the same polynomial), over the clamped range and beyond.
BOOST_AUTO_TEST_CASE(exp16_equals_exp8) {
  if (!tfm::host::cpu_supports(tfm::host::isa::avx512)) {
    BOOST_TEST_MESSAGE("SKIP: this CPU has no AVX-512");
    return;
  }
  std::vector<float> x;
  for (float v = -100.0f; v <= 100.0f; v += 0.37f) x.push_back(v);
  while (x.size() % 16) x.push_back(0.0f);
  std::vector<float> a(x.size()), b(x.size());
  for (std::size_t i = 0; i < x.size(); i += 16) {
    _mm512_storeu_ps(&a[i], tfm::host::avx512::exp16(_mm512_loadu_ps(&x[i])));
    _mm256_storeu_ps(&b[i], tfm::host::avx2::exp8(_mm256_loadu_ps(&x[i])));
    _mm256_storeu_ps(&b[i + 8], tfm::host::avx2::exp8(_mm256_loadu_ps(&x[i + 8])));
  }
  for (std::size_t i = 0; i < x.size(); ++i) BOOST_TEST(a[i] == b[i], "x=" << x[i]);
}

// The AVX-512 GELU kernels equal the AVX2 ones bit for bit (forward and backward, lengths that
// leave AVX2 and scalar tails, huge, zero, signed-zero, NaN and saturating inputs), and both are
// within float rounding of the double GELU.
BOOST_AUTO_TEST_CASE(gelu_avx512_equals_avx2) {
  if (!tfm::host::cpu_supports(tfm::host::isa::avx512)) {
    BOOST_TEST_MESSAGE("SKIP: this CPU has no AVX-512");
    return;
  }
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  for (std::int64_t n : {1, 7, 8, 15, 16, 17, 31, 40, 1000, 4099}) {
    std::vector<float> x(static_cast<std::size_t>(n)), dy(x.size());
    for (auto& v : x) v = nd(rng);
    for (auto& v : dy) v = nd(rng);
    const float special[] = {1e30f, -1e30f, 0.0f, -0.0f, 12.0f, -12.0f, std::numeric_limits<float>::quiet_NaN()};
    for (std::size_t i = 0; i < std::size(special) && i < x.size(); ++i) x[i] = special[i];
    std::vector<float> f2(x.size()), f5(x.size()), b2(x.size()), b5(x.size());
    hd::gelu_forward_avx2(0, n, x.data(), f2.data());
    hd::gelu_forward_avx512(0, n, x.data(), f5.data());
    hd::gelu_backward_avx2(0, n, x.data(), dy.data(), b2.data());
    hd::gelu_backward_avx512(0, n, x.data(), dy.data(), b5.data());
    BOOST_TEST(std::memcmp(f2.data(), f5.data(), f2.size() * sizeof(float)) == 0, "forward, n=" << n);
    BOOST_TEST(std::memcmp(b2.data(), b5.data(), b2.size() * sizeof(float)) == 0, "backward, n=" << n);
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double u = x[i];
      if (std::isnan(u) || std::abs(u) > 1e3) continue;
      const double t = std::tanh(0.7978845608028654 * (u + 0.044715 * u * u * u));
      const double y = 0.5 * u * (1 + t);
      const double g = 0.5 * (1 + t) + 0.5 * u * (1 - t * t) * 0.7978845608028654 * (1 + 3 * 0.044715 * u * u);
      BOOST_TEST(std::abs(f5[i] - y) <= 1e-6 * (1 + std::abs(y)), "gelu(" << u << ")");
      // 1 + tanh cancels for u ≪ 0: absolute error in units of dy
      BOOST_TEST(std::abs(b5[i] - dy[i] * g) <= 1e-6 * std::abs(dy[i]) * (1 + std::abs(u)) + 1e-6 * std::abs(dy[i] * g),
                 "gelu'(" << u << ") · " << dy[i] << ": " << b5[i] << " vs " << dy[i] * g);
    }
  }
}
#endif

// xent_forward / xent_backward over N rows against float64: lse, per-row losses, the total and
// count, ignored rows, and the gradient scale·(softmax − onehot) written in place.
BOOST_AUTO_TEST_CASE(xent_forward_backward) {
  for (int V : vocab_sizes) {
    const int N = 6;
    std::vector<float> z;
    for (int n = 0; n < N; ++n) {
      const auto r = make_row(V, 3.0f, n == 2 ? 1e4f : 0.0f, unsigned(V * 31 + n));
      z.insert(z.end(), r.begin(), r.end());
    }
    std::vector<std::int32_t> y(N);
    for (int n = 0; n < N; ++n) y[std::size_t(n)] = (n * 7919) % V;
    y[3] = ignore;
    std::vector<float> lse(N), losses(N);
    std::int64_t count = 0;
    const double total = host::xent_forward<float>(N, V, V, z.data(), y.data(), ignore, lse.data(),
                                                    losses.data(), count);
    BOOST_TEST(count == N - 1);
    double total_ref = 0;
    std::vector<double> lse_ref(N);
    for (int n = 0; n < N; ++n) {
      const std::vector<float> r(z.begin() + std::ptrdiff_t(n) * V, z.begin() + std::ptrdiff_t(n + 1) * V);
      const double m = ref_max(r);
      lse_ref[std::size_t(n)] = m + std::log(ref_sum_exp(r, m));
      BOOST_TEST(std::abs(lse[std::size_t(n)] - lse_ref[std::size_t(n)]) <= 2e-6 * std::max(1.0, std::abs(lse_ref[std::size_t(n)])),
                 "V=" << V << " row " << n);
      if (n == 3) {
        BOOST_TEST(losses[3] == 0.0f);
        continue;
      }
      const double loss = lse_ref[std::size_t(n)] - double(r[std::size_t(y[std::size_t(n)])]);
      total_ref += loss;
      BOOST_TEST(std::abs(losses[std::size_t(n)] - loss) <= 1e-5 * std::max(1.0, std::abs(lse_ref[std::size_t(n)])),
                 "V=" << V << " row " << n);
    }
    BOOST_TEST(std::abs(total - total_ref) <= 1e-4 * std::max(1.0, std::abs(total_ref)), "V=" << V);

    const double scale = 1.0 / double(count);
    std::vector<float> dz = z;
    host::xent_backward<float>(N, V, V, dz.data(), y.data(), ignore, lse.data(), scale, dz.data());
    for (int n = 0; n < N; ++n)
      for (int j = 0; j < V; ++j) {
        const std::size_t i = std::size_t(n) * V + std::size_t(j);
        double want = 0;
        if (n != 3) {
          want = scale * std::exp(double(z[i]) - lse_ref[std::size_t(n)]);  // the exact softmax
          if (j == y[std::size_t(n)]) want -= scale;
        }
        BOOST_TEST(std::abs(dz[i] - want) <= 2e-6 * scale + 2e-6 * std::abs(want), "V=" << V << " row " << n << " j=" << j);
      }
  }
}

// A padded vocabulary (rows ld > V apart, as a config with vocab_multiple lays out the logits):
// the padding columns hold NaN and huge values that must not be read; forward gives bit for bit
// the unpadded results, backward the unpadded gradient and zeros in the padding.
BOOST_AUTO_TEST_CASE(xent_padded_rows_match_the_unpadded_ones) {
  for (int V : vocab_sizes) {
    for (std::int64_t ld : {std::int64_t(V) + 1, (std::int64_t(V) + 63) / 64 * 64 + 64}) {
      const int N = 5;
      std::vector<float> z, zp(std::size_t(N * ld));
      for (int n = 0; n < N; ++n) {
        const auto r = make_row(V, 4.0f, 0.0f, unsigned(V * 17 + n));
        z.insert(z.end(), r.begin(), r.end());
        std::copy(r.begin(), r.end(), zp.begin() + n * ld);
        for (std::int64_t j = V; j < ld; ++j)
          zp[std::size_t(n * ld + j)] = j % 2 ? std::numeric_limits<float>::quiet_NaN() : 1e30f;
      }
      std::vector<std::int32_t> y(N);
      for (int n = 0; n < N; ++n) y[std::size_t(n)] = (n * 104729 + 3) % V;
      y[1] = ignore;
      std::vector<float> lse(N), losses(N), lse_p(N), losses_p(N);
      std::int64_t count = 0, count_p = 0;
      const double total = host::xent_forward<float>(N, V, V, z.data(), y.data(), ignore, lse.data(), losses.data(), count);
      const double total_p =
          host::xent_forward<float>(N, V, ld, zp.data(), y.data(), ignore, lse_p.data(), losses_p.data(), count_p);
      BOOST_TEST(total_p == total, "V=" << V << " ld=" << ld);
      BOOST_TEST(count_p == count);
      BOOST_TEST(lse_p == lse, boost::test_tools::per_element());
      BOOST_TEST(losses_p == losses, boost::test_tools::per_element());
      host::xent_backward<float>(N, V, V, z.data(), y.data(), ignore, lse.data(), 0.25, z.data());
      host::xent_backward<float>(N, V, ld, zp.data(), y.data(), ignore, lse_p.data(), 0.25, zp.data());
      for (int n = 0; n < N; ++n) {
        for (int j = 0; j < V; ++j)
          BOOST_TEST(zp[std::size_t(n * ld + j)] == z[std::size_t(n * V + j)], "V=" << V << " row " << n << " j=" << j);
        for (std::int64_t j = V; j < ld; ++j)
          BOOST_TEST(zp[std::size_t(n * ld + j)] == 0.0f, "V=" << V << " ld=" << ld << " padding column " << j);
      }
    }
  }
  std::vector<float> z(8), l(2), lo(2);
  std::vector<std::int32_t> y(2, 0);
  std::int64_t c = 0;
  BOOST_CHECK_THROW(host::xent_forward<float>(2, 4, 3, z.data(), y.data(), ignore, l.data(), lo.data(), c),
                    tfm::invalid_argument);
}

// xent_forward_backward (one pass, what training runs) against xent_forward then xent_backward:
// the same lse, losses, total, count and gradient, bit for bit, in float and bf16 logits, with a
// padded row stride, ignored targets and 1 or 2 threads.
template <class Z>
void check_fused_xent(int V, std::int64_t ld, int threads) {
  tfm::host::scoped_num_threads nt(threads);
  const int N = 9;
  std::vector<Z> z(std::size_t(N * ld));
  for (int n = 0; n < N; ++n) {
    const auto r = make_row(V, 3.0f, n == 4 ? 50.0f : 0.0f, unsigned(V * 13 + n));
    for (int j = 0; j < V; ++j) z[std::size_t(n * ld + j)] = Z(r[std::size_t(j)]);
    for (std::int64_t j = V; j < ld; ++j) z[std::size_t(n * ld + j)] = Z(7.0f);
  }
  std::vector<std::int32_t> y(N);
  for (int n = 0; n < N; ++n) y[std::size_t(n)] = (n * 31 + 5) % V;
  y[2] = ignore;
  std::vector<float> lse_a(N), loss_a(N), lse_b(N), loss_b(N);
  std::int64_t ca = 0, cb = 0;
  std::vector<Z> da = z, db = z;
  double ta = 0, tb = 0;
  const double scale = 0.375;
  if constexpr (std::is_same_v<Z, float>) {
    ta = host::xent_forward<float>(N, V, ld, da.data(), y.data(), ignore, lse_a.data(), loss_a.data(), ca);
    host::xent_backward<float>(N, V, ld, da.data(), y.data(), ignore, lse_a.data(), scale, da.data());
    tb = host::xent_forward_backward<float>(N, V, ld, db.data(), y.data(), ignore, lse_b.data(), loss_b.data(), cb,
                                            scale, db.data());
  } else {
    ta = host::mixed::xent_forward(N, V, ld, da.data(), y.data(), ignore, lse_a.data(), loss_a.data(), ca);
    host::mixed::xent_backward(N, V, ld, da.data(), y.data(), ignore, lse_a.data(), scale, da.data());
    tb = host::mixed::xent_forward_backward(N, V, ld, db.data(), y.data(), ignore, lse_b.data(), loss_b.data(), cb,
                                            scale, db.data());
  }
  BOOST_TEST(ta == tb, "V=" << V << " ld=" << ld);
  BOOST_TEST(ca == cb);
  BOOST_TEST(ca == N - 1);
  BOOST_TEST(lse_a == lse_b, boost::test_tools::per_element());
  BOOST_TEST(loss_a == loss_b, boost::test_tools::per_element());
  BOOST_TEST(std::memcmp(da.data(), db.data(), da.size() * sizeof(Z)) == 0, "V=" << V << " ld=" << ld);
  for (std::int64_t j = V; j < ld; ++j) BOOST_TEST(float(db[std::size_t(3 * ld + j)]) == 0.0f);
}
BOOST_AUTO_TEST_CASE(xent_forward_backward_fused_equals_the_two_passes) {
  for (int V : {1, 17, 61, 1000, 50257})
    for (int threads : {1, 2}) {
      check_fused_xent<float>(V, V, threads);
      check_fused_xent<float>(V, (V + 63) / 64 * 64 + (V == 1000 ? 64 : 0), threads);
      check_fused_xent<tfm::bfloat16>(V, V + 3, threads);
    }
}

// xent_backward refuses a target outside [0, V) that is not the ignore index, as xent_forward does
// (it indexed dz[y] unchecked: a target of V wrote the padding column, -5 the row before). The
// rows are padded so that the stray write stays inside the buffer without the check.
BOOST_AUTO_TEST_CASE(xent_backward_refuses_bad_targets) {
  const int V = 8, N = 2;
  const std::int64_t ld = V + 4;
  for (std::int32_t bad : {std::int32_t(V), std::int32_t(-5)}) {
    const std::vector<std::int32_t> y = {1, bad};
    std::vector<float> z(std::size_t(N * ld), 0.5f), lse(N, 0.0f);
    BOOST_CHECK_THROW(host::xent_backward<float>(N, V, ld, z.data(), y.data(), ignore, lse.data(), 1.0, z.data()),
                      tfm::invalid_argument);
    std::vector<tfm::bfloat16> zb(z.size(), tfm::bfloat16(0.5f));
    BOOST_CHECK_THROW(host::mixed::xent_backward(N, V, ld, zb.data(), y.data(), ignore, lse.data(), 1.0, zb.data()),
                      tfm::invalid_argument);
  }
}

// host::zero_fill (what zero_grad runs): sizes below and above the thread split (1 MiB) and the
// streaming-store threshold (128 MiB), unaligned starts and odd lengths; the bytes around the
// range keep their values.
BOOST_AUTO_TEST_CASE(zero_fill_clears_exactly_the_range) {
  for (int threads : {1, 2}) {
    tfm::host::scoped_num_threads nt(threads);
    for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(63), std::size_t(1) << 20,
                          (std::size_t(1) << 20) + 5, (std::size_t(128) << 20) + 77}) {
      for (std::size_t off : {std::size_t(0), std::size_t(3)}) {
        std::vector<unsigned char> buf(n + 128, 0xA5);
        tfm::host::zero_fill(buf.data() + 64 + off, n);
        std::size_t wrong = 0;
        for (std::size_t i = 0; i < buf.size(); ++i) {
          const bool inside = i >= 64 + off && i < 64 + off + n;
          wrong += buf[i] != (inside ? 0 : 0xA5);
        }
        BOOST_TEST(wrong == 0u, "n " << n << " offset " << off << " threads " << threads);
      }
    }
  }
  std::vector<float> f(300001, 1.5f);
  tfm::host::zero_fill(f.data() + 1, f.size() - 2);
  BOOST_TEST(f.front() == 1.5f);
  BOOST_TEST(f.back() == 1.5f);
  BOOST_TEST(std::count(f.begin() + 1, f.end() - 1, 0.0f) == std::ptrdiff_t(f.size() - 2));
}
