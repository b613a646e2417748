// tfm/nn/ops_host.hpp — the host layer kernels of the model, forward and backward, on raw
// row-major arrays. T is float or double (double for gradient checks). Element math comes from
// nn/math.hpp, shared with the CUDA kernels. Gradients of parameters accumulate (+=); gradients
// of activations are written as `dx = beta·dx + …` where a flag or beta says so.
//
// Rows are parallelised with OpenMP; reductions over rows (norm and bias gradients) use
// per-thread partial sums in caller-provided scratch so the result does not depend on timing
// only through summation order within fixed thread chunks (deterministic for a fixed thread
// count).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "tfm/backend/host/cpu.hpp"
#include "tfm/backend/host/simd.hpp"
#include "tfm/backend/host/zero.hpp"
#include "tfm/core/dtype.hpp"
#include "tfm/core/error.hpp"
#include "tfm/core/memory.hpp"
#include "tfm/core/rng.hpp"
#include "tfm/nn/attention_host.hpp"
#include "tfm/nn/math.hpp"
#include "tfm/ops/detail/gemm_host.hpp"
#include "tfm/ops/detail/matrix.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tfm::nn::host {

inline int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}
inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// ---- matrix multiply: C = alpha·A·B + beta·C (strided operands) ----
// float: the blocked host GEMM; double: a plain loop (used by the gradient checks); bfloat16
// operands with a float C: the blocked GEMM with bf16 inputs.
template <class T>
void matmul(double alpha, tfm::detail::strided_matrix<const T> a, tfm::detail::strided_matrix<const T> b,
            double beta, tfm::detail::strided_matrix<std::conditional_t<std::is_same_v<T, double>, double, float>> c) {
  if constexpr (std::is_same_v<T, double>) {
    const std::int64_t M = c.rows, N = c.cols, K = a.cols;
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < M; ++i) {
      for (std::int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (std::int64_t k = 0; k < K; ++k) s += a(i, k) * b(k, j);
        c(i, j) = alpha * s + (beta == 0 ? 0.0 : beta * c(i, j));
      }
    }
  } else {
    tfm::detail::gemm_host(tfm::gemm_blocked{}, static_cast<float>(alpha), a, b, static_cast<float>(beta), c);
  }
}

// alpha·A·B (float or reduced-precision operands) handed block by block to
// epi(src, ld, i0, rows, j0, cols) while each block is in cache (detail::gemm_host_epilogue);
// c: M×N float memory the GEMM may need for sums over a long K.
template <class T, class Epilogue>
void matmul_epilogue(double alpha, tfm::detail::strided_matrix<const T> a, tfm::detail::strided_matrix<const T> b,
                     tfm::detail::strided_matrix<float> c, Epilogue&& epi) {
  tfm::detail::gemm_host_epilogue(tfm::gemm_blocked{}, static_cast<float>(alpha), a, b, c, epi);
}

template <class T>
tfm::detail::strided_matrix<const T> mat(const T* p, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  return {p, rows, cols, ld, 1};
}
template <class T>
tfm::detail::strided_matrix<T> mat_mut(T* p, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  return {p, rows, cols, ld, 1};
}

// ---- embedding ----
// out[n, :] = wte[tok[n], :] + pos[n % T, :] (pos may be null). Token ids are checked.
template <class T>
void embedding_forward(int B, int T_, int D, const std::int32_t* tok, const T* wte, int vocab, const T* pos, T* out) {
  const std::int64_t N = std::int64_t(B) * T_;
  for (std::int64_t n = 0; n < N; ++n)
    expects<invalid_argument>(tok[n] >= 0 && tok[n] < vocab, "nn::model: token id ", tok[n], " at position ", n,
                              " is outside the vocabulary [0, ", vocab, ")");
#pragma omp parallel for schedule(static)
  for (std::int64_t n = 0; n < N; ++n) {
    const T* e = wte + std::int64_t(tok[n]) * D;
    const T* p = pos ? pos + (n % T_) * D : nullptr;
    T* o = out + n * D;
    if (p)
      for (int c = 0; c < D; ++c) o[c] = e[c] + p[c];
    else
      for (int c = 0; c < D; ++c) o[c] = e[c];
  }
}
// dwte[tok[n]] += dout[n]; dpos[t] += Σ_b dout[b, t] (either may be null: skipped, a frozen
// table). Parallel over columns so that repeated tokens never race.
template <class T>
void embedding_backward(int B, int T_, int D, const std::int32_t* tok, const T* dout, T* dwte, T* dpos) {
  if (!dwte && !dpos) return;
  const std::int64_t N = std::int64_t(B) * T_;
  const int chunk = 64;
#pragma omp parallel for schedule(static)
  for (int c0 = 0; c0 < D; c0 += chunk) {
    const int c1 = std::min(D, c0 + chunk);
    for (std::int64_t n = 0; n < N; ++n) {
      const T* g = dout + n * D;
      if (dwte) {
        T* w = dwte + std::int64_t(tok[n]) * D;
        for (int c = c0; c < c1; ++c) w[c] += g[c];
      }
      if (dpos) {
        T* p = dpos + (n % T_) * D;
        for (int c = c0; c < c1; ++c) p[c] += g[c];
      }
    }
  }
}

// ---- norms ----
// LayerNorm (Rms = false) or RMSNorm (Rms = true) over rows of width D:
// y = (x − mean)·rstd·w + b  /  y = x·rstd·w. mean (LayerNorm only) and rstd are saved.
// y may be a narrower storage type Y (mixed precision: the norm computes in T and rounds y once).
template <bool Rms, class T, class Y = T>
void norm_forward(std::int64_t N, int D, const T* x, const T* w, const T* b, Y* y, T* mean, T* rstd, double eps) {
#pragma omp parallel for schedule(static)
  for (std::int64_t n = 0; n < N; ++n) {
    const T* xr = x + n * D;
    // The sums run in SIMD lanes of doubles (a fixed order for a given build, so still
    // deterministic): one serial chain of D double additions per sum took half the norm's time.
    double m = 0;
    if constexpr (!Rms) {
#pragma omp simd reduction(+ : m)
      for (int c = 0; c < D; ++c) m += double(xr[c]);
      m /= D;
    }
    double v = 0;
#pragma omp simd reduction(+ : v)
    for (int c = 0; c < D; ++c) {
      const double d = double(xr[c]) - m;
      v += d * d;
    }
    v /= D;
    const double r = 1.0 / std::sqrt(v + eps);
    const T mt = T(m), rt = T(r);
    Y* yr = y + n * D;
    for (int c = 0; c < D; ++c) {
      const T h = (xr[c] - mt) * rt;
      yr[c] = static_cast<Y>(b ? h * w[c] + b[c] : h * w[c]);
    }
    if constexpr (!Rms) mean[n] = mt;
    rstd[n] = rt;
  }
}

inline std::size_t norm_scratch_size(int D) { return std::size_t(2) * D * max_threads(); }

// dx = (accumulate ? dx : 0) + ∂L/∂x; dw += Σ dy·x̂, db += Σ dy (dw null: neither, a frozen
// norm). scratch: norm_scratch_size(D). dy may be stored in a narrower type G (mixed precision).
template <bool Rms, class T, class G = T>
void norm_backward(std::int64_t N, int D, const G* dy, const T* x, const T* w, const T* mean, const T* rstd, T* dx,
                   bool accumulate, T* dw, T* db, T* scratch) {
  const int threads = max_threads();
  std::fill(scratch, scratch + std::size_t(2) * D * threads, T(0));
#pragma omp parallel
  {
    T* pdw = scratch + std::size_t(2) * D * thread_id();
    T* pdb = pdw + D;
#pragma omp for schedule(static)
    for (std::int64_t n = 0; n < N; ++n) {
      const T* xr = x + n * D;
      const G* gs = dy + n * D;
      const auto g = [gs](int c) { return static_cast<T>(gs[c]); };
      const T m = Rms ? T(0) : mean[n];
      const T r = rstd[n];
      // dx̂ = dy·w; dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂))   (LayerNorm)
      //                 r·(dx̂ − x̂·mean(dx̂·x̂))               (RMSNorm)
      double s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
      for (int c = 0; c < D; ++c) {
        const T h = (xr[c] - m) * r;
        const T gc = g(c);
        const T dh = gc * w[c];
        s1 += dh;
        s2 += double(dh) * h;
        pdw[c] += gc * h;
        pdb[c] += gc;
      }
      const T a1 = Rms ? T(0) : T(s1 / D), a2 = T(s2 / D);
      T* o = dx + n * D;
      for (int c = 0; c < D; ++c) {
        const T h = (xr[c] - m) * r;
        const T v = r * (g(c) * w[c] - a1 - h * a2);
        o[c] = accumulate ? o[c] + v : v;
      }
    }
  }
  for (int t = 0; t < threads && dw; ++t) {
    const T* pdw = scratch + std::size_t(2) * D * t;
    for (int c = 0; c < D; ++c) dw[c] += pdw[c];
    if (db)
      for (int c = 0; c < D; ++c) db[c] += pdw[D + c];
  }
}

// ---- linear: y[N, out] = x[N, in]·Wᵀ + b, W stored [out, in] (InOut = false) or [in, out] ----
template <class T>
void linear_forward(std::int64_t N, int in, int out, const T* x, const T* W, bool in_out, const T* b, T* y) {
  const auto A = mat(x, N, in, in);
  const auto Wm = in_out ? mat(W, in, out, out) : mat(W, out, in, in).transposed();
  matmul<T>(1.0, A, Wm, 0.0, mat_mut(y, N, out, out));
  if (b) {
#pragma omp parallel for schedule(static)
    for (std::int64_t n = 0; n < N; ++n)
      for (int j = 0; j < out; ++j) y[n * out + j] += b[j];
  }
}
inline std::size_t linear_scratch_size(int out) { return std::size_t(out) * max_threads(); }

// dx = beta·dx + dy·W (dx may be null: skipped); dW += dyᵀ·x (or xᵀ·dy); db += Σ dy (dW, db
// may be null: skipped, a frozen layer). overwrite: dW = …, db = … instead (their old contents,
// even NaN, are never read: a gradient buffer cleared lazily, nn::model::zero_grad).
template <class T>
void linear_backward(std::int64_t N, int in, int out, const T* x, const T* W, bool in_out, const T* dy, T* dx,
                     double beta, T* dW, T* db, T* scratch, bool overwrite = false) {
  const double wbeta = overwrite ? 0.0 : 1.0;
  if (dx) {
    const auto Wm = in_out ? mat(W, in, out, out).transposed() : mat(W, out, in, in);
    matmul<T>(1.0, mat(dy, N, out, out), Wm, beta, mat_mut(dx, N, in, in));
  }
  if (!dW) {
  } else if (in_out) {  // dW [in, out] += xᵀ·dy
    matmul<T>(1.0, mat(x, N, in, in).transposed(), mat(dy, N, out, out), wbeta, mat_mut(dW, in, out, out));
  } else {  // dW [out, in] += dyᵀ·x
    matmul<T>(1.0, mat(dy, N, out, out).transposed(), mat(x, N, in, in), wbeta, mat_mut(dW, out, in, in));
  }
  if (db) {
    const int threads = max_threads();
    std::fill(scratch, scratch + std::size_t(out) * threads, T(0));
#pragma omp parallel
    {
      T* p = scratch + std::size_t(out) * thread_id();
#pragma omp for schedule(static)
      for (std::int64_t n = 0; n < N; ++n)
        for (int j = 0; j < out; ++j) p[j] += dy[n * out + j];
    }
    if (overwrite) std::fill(db, db + out, T(0));
    for (int t = 0; t < threads; ++t)
      for (int j = 0; j < out; ++j) db[j] += scratch[std::size_t(out) * t + j];
  }
}

// ---- low-rank adapters (LoRA) ----
// An adapter on a projection with input x [N, in] (row stride ldx) adds to `rows` output columns
// y [N, rows] (row stride ldy: a column slice of the projection's output):
//   forward   t = x·Aᵀ [N, r] (saved);  y += scale·t·Bᵀ          A [r, in], B [rows, r]
//   backward  dB += scale·dyᵀ·t;  dt = scale·dy·B;  dA += dtᵀ·x;  dx = dx_beta·dx + dt·A
// x is the adapter's input after dropout. dt: scratch [N, r]. In backward dx may alias x (x is
// read for dA before dx is written), which lets the dropout path reuse one scratch.
template <class T>
void lora_forward(std::int64_t N, int in, int rows, int r, const T* x, std::int64_t ldx, const T* A, const T* B,
                  double scale, T* t, T* y, std::int64_t ldy) {
  matmul<T>(1.0, mat(x, N, in, ldx), mat(A, r, in, in).transposed(), 0.0, mat_mut(t, N, r, r));
  matmul<T>(scale, mat(t, N, r, r), mat(B, rows, r, r).transposed(), 1.0, mat_mut(y, N, rows, ldy));
}
template <class T>
void lora_backward(std::int64_t N, int in, int rows, int r, const T* x, std::int64_t ldx, const T* A, const T* B,
                   const T* t, const T* dy, std::int64_t ldy, double scale, T* dA, T* dB, T* dt, T* dx,
                   std::int64_t lddx, double dx_beta) {
  const auto dym = mat(dy, N, rows, ldy);
  matmul<T>(scale, dym.transposed(), mat(t, N, r, r), 1.0, mat_mut(dB, rows, r, r));
  matmul<T>(scale, dym, mat(B, rows, r, r), 0.0, mat_mut(dt, N, r, r));
  matmul<T>(1.0, mat<T>(dt, N, r, r).transposed(), mat(x, N, in, ldx), 1.0, mat_mut(dA, r, in, in));
  matmul<T>(1.0, mat<T>(dt, N, r, r), mat(A, r, in, in), dx_beta, mat_mut(dx, N, in, lddx));
}

// Inverted dropout of the adapter input: element e = n·in + c is kept (and scaled by 1/(1−p))
// when uniform(seed, stream, e) ≥ p. The mask is a pure function of (seed, stream, e), so the
// backward pass recomputes it instead of storing it.
inline bool dropout_keep(std::uint64_t seed, std::uint64_t stream, std::uint64_t e, double p) {
  return double(tfm::rng::uniform(seed, stream, e)) >= p;
}
// y [N, in] = drop(x [N, in], row stride ldx)
template <class T>
void lora_dropout(std::int64_t N, int in, const T* x, std::int64_t ldx, T* y, std::uint64_t seed, std::uint64_t stream,
                  double p) {
  const T s = T(1.0 / (1.0 - p));
#pragma omp parallel for schedule(static)
  for (std::int64_t n = 0; n < N; ++n)
    for (int c = 0; c < in; ++c) {
      const std::uint64_t e = std::uint64_t(n) * std::uint64_t(in) + std::uint64_t(c);
      y[n * in + c] = dropout_keep(seed, stream, e, p) ? x[n * ldx + c] * s : T(0);
    }
}
// dx [N, in] (row stride lddx) += drop'(g [N, in]): the same mask and scale as lora_dropout.
template <class T>
void lora_dropout_backward(std::int64_t N, int in, const T* g, T* dx, std::int64_t lddx, std::uint64_t seed,
                           std::uint64_t stream, double p) {
  const T s = T(1.0 / (1.0 - p));
#pragma omp parallel for schedule(static)
  for (std::int64_t n = 0; n < N; ++n)
    for (int c = 0; c < in; ++c) {
      const std::uint64_t e = std::uint64_t(n) * std::uint64_t(in) + std::uint64_t(c);
      if (dropout_keep(seed, stream, e, p)) dx[n * lddx + c] += g[n * in + c] * s;
    }
}

// ---- activations ----
// Element math on data stored as S runs in math_t<S>: double for double, float for float and for
// the 16-bit compute types of mixed precision (read as float, each result rounded once).
template <class S>
using math_t = std::conditional_t<std::is_same_v<S, double>, double, float>;

// x: [N, 2F] = [gate | up] per row; y [N, F] = silu(gate)·up.
template <class S>
void swiglu_forward(std::int64_t N, int F, const S* x, S* y) {
  using A = math_t<S>;
#pragma omp parallel for schedule(static)
  for (std::int64_t n = 0; n < N; ++n) {
    const S* g = x + n * 2 * F;
    const S* u = g + F;
    for (int j = 0; j < F; ++j) y[n * F + j] = static_cast<S>(math::silu(static_cast<A>(g[j])) * static_cast<A>(u[j]));
  }
}
template <class S>
void swiglu_backward(std::int64_t N, int F, const S* x, const S* dy, S* dx) {
  using A = math_t<S>;
#pragma omp parallel for schedule(static)
  for (std::int64_t n = 0; n < N; ++n) {
    const S* g = x + n * 2 * F;
    const S* u = g + F;
    S* dg = dx + n * 2 * F;
    S* du = dg + F;
    for (int j = 0; j < F; ++j) {
      const A d = static_cast<A>(dy[n * F + j]), gj = static_cast<A>(g[j]), uj = static_cast<A>(u[j]);
      dg[j] = static_cast<S>(d * uj * math::silu_grad(gj));
      du[j] = static_cast<S>(d * math::silu(gj));
    }
  }
}

// ---- RoPE on the q and k heads of a fused qkv buffer ----
// qkv row n (token t = n % T) holds heads_total = H + KV rotated heads of width hd at stride
// ld. table: [C, rot/2] pairs (cos, sin). inverse = true rotates by −angle (the backward pass).
// qkv stored as S (see math_t), the table in the math type.
template <class S>
void rope_apply(std::int64_t N, int T_, int rotated_heads, int hd, int rot, std::int64_t ld, S* qkv,
                const math_t<S>* cos_sin, bool inverse) {
  using A = math_t<S>;
  const int half = rot / 2;
#pragma omp parallel for schedule(static)
  for (std::int64_t n = 0; n < N; ++n) {
    const A* cs = cos_sin + std::int64_t(n % T_) * rot;
    S* row = qkv + n * ld;
    for (int h = 0; h < rotated_heads; ++h) {
      S* v = row + std::int64_t(h) * hd;
      for (int j = 0; j < half; ++j) {
        const A c = cs[2 * j], s = inverse ? -cs[2 * j + 1] : cs[2 * j + 1];
        const A a = static_cast<A>(v[j]), b = static_cast<A>(v[j + half]);
        v[j] = static_cast<S>(a * c - b * s);
        v[j + half] = static_cast<S>(b * c + a * s);
      }
    }
  }
}

// ---- residual ----
// y = a + b; b may be stored narrower (a block's output under mixed precision).
template <class T, class S = T>
void add(std::int64_t n, const T* a, const S* b, T* y) {
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) y[i] = a[i] + static_cast<T>(b[i]);
}
template <class T>
void add_inplace(std::int64_t n, T* y, const T* x) {
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) y[i] += x[i];
}

// ---- softmax cross-entropy, fused ----
namespace detail {
#if TFM_HOST_X86_SIMD
TFM_TARGET_AVX2 inline float row_max_avx2(const float* r, int V) {
  __m256 m = _mm256_set1_ps(r[0]);
  int j = 0;
  for (; j + 8 <= V; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(r + j));
  float s = tfm::host::avx2::hmax8(m);
  for (; j < V; ++j) s = std::max(s, r[j]);
  return s;
}
// Float lanes sum blocks of 256 values (16 per lane); the blocks add up in double, so the error
// does not grow with V (one float sum per lane over GPT-2's 50257 was off by 2e-6 relative).
// With Store, e[j] = exp(r[j] − m) too (e may be r): the same sum.
template <bool Store = false>
TFM_TARGET_AVX2 inline double row_sum_exp_avx2(const float* r, int V, float m, [[maybe_unused]] float* e = nullptr) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256d total = _mm256_setzero_pd();
  int j = 0;
  while (j + 16 <= V) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    for (const int end = std::min(V - 15, j + 256); j < end; j += 16) {
      const __m256 x0 = tfm::host::avx2::exp8(_mm256_sub_ps(_mm256_loadu_ps(r + j), mv));
      const __m256 x1 = tfm::host::avx2::exp8(_mm256_sub_ps(_mm256_loadu_ps(r + j + 8), mv));
      if constexpr (Store) {
        _mm256_storeu_ps(e + j, x0);
        _mm256_storeu_ps(e + j + 8, x1);
      }
      a0 = _mm256_add_ps(a0, x0);
      a1 = _mm256_add_ps(a1, x1);
    }
    const __m256 a = _mm256_add_ps(a0, a1);
    total = _mm256_add_pd(total, _mm256_cvtps_pd(_mm256_castps256_ps128(a)));
    total = _mm256_add_pd(total, _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)));
  }
  alignas(32) double t[4];
  _mm256_store_pd(t, total);
  double s = (t[0] + t[1]) + (t[2] + t[3]);
  for (; j < V; ++j) {
    const float x = nn::detail::attn::exp_t<float>(r[j] - m);
    if constexpr (Store) e[j] = x;
    s += x;
  }
  return s;
}
// The same three over 16 lanes, with two accumulators where a sum or max carries a dependency.
TFM_TARGET_AVX512 inline float row_max_avx512(const float* r, int V) {
  __m512 m0 = _mm512_set1_ps(r[0]), m1 = m0;
  int j = 0;
  for (; j + 32 <= V; j += 32) {
    m0 = _mm512_maskz_max_ps(tfm::host::avx512::all16, m0, _mm512_loadu_ps(r + j));
    m1 = _mm512_maskz_max_ps(tfm::host::avx512::all16, m1, _mm512_loadu_ps(r + j + 16));
  }
  float s = tfm::host::avx512::hmax16(_mm512_maskz_max_ps(tfm::host::avx512::all16, m0, m1));
  for (; j < V; ++j) s = std::max(s, r[j]);
  return s;
}
template <bool Store = false>
TFM_TARGET_AVX512 inline double row_sum_exp_avx512(const float* r, int V, float m,
                                                   [[maybe_unused]] float* e = nullptr) {
  using tfm::host::avx512::all16;
  const __m512 mv = _mm512_set1_ps(m);
  __m512d total = _mm512_setzero_pd();
  int j = 0;
  while (j + 32 <= V) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (const int end = std::min(V - 31, j + 512); j < end; j += 32) {
      const __m512 x0 = tfm::host::avx512::exp16(_mm512_sub_ps(_mm512_loadu_ps(r + j), mv));
      const __m512 x1 = tfm::host::avx512::exp16(_mm512_sub_ps(_mm512_loadu_ps(r + j + 16), mv));
      if constexpr (Store) {
        _mm512_storeu_ps(e + j, x0);
        _mm512_storeu_ps(e + j + 16, x1);
      }
      a0 = _mm512_add_ps(a0, x0);
      a1 = _mm512_add_ps(a1, x1);
    }
    const __m512 a = _mm512_add_ps(a0, a1);
    total = _mm512_add_pd(total, _mm512_maskz_cvtps_pd(0xFF, _mm512_maskz_extractf32x8_ps(0xFF, a, 0)));
    total = _mm512_add_pd(total, _mm512_maskz_cvtps_pd(0xFF, _mm512_maskz_extractf32x8_ps(0xFF, a, 1)));
  }
  alignas(64) double t[8];
  _mm512_store_pd(t, total);
  double s = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
  for (; j < V; ++j) {
    const float x = nn::detail::attn::exp_t<float>(r[j] - m);
    if constexpr (Store) e[j] = x;
    s += x;
  }
  return s;
}
#endif
inline bool use_avx512() { return tfm::host::cpu_runs<tfm::host::isa::avx512>(); }
inline bool use_avx2() { return tfm::host::cpu_runs<tfm::host::isa::avx2>(); }

template <class T>
T row_max(const T* r, int V) {
#if TFM_HOST_X86_SIMD
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx512()) return row_max_avx512(r, V);
    if (use_avx2()) return row_max_avx2(r, V);
  }
#endif
  T m = r[0];
  for (int j = 1; j < V; ++j) m = std::max(m, r[j]);
  return m;
}
// Σ exp(r − m), summed in double; with e, also e[j] = exp(r[j] − m) (e may be r; the same sum).
template <class T>
double row_sum_exp(const T* r, int V, T m, T* e = nullptr) {
#if TFM_HOST_X86_SIMD
  if constexpr (std::is_same_v<T, float>) {
    if (use_avx512()) return e ? row_sum_exp_avx512<true>(r, V, m, e) : row_sum_exp_avx512(r, V, m);
    if (use_avx2()) return e ? row_sum_exp_avx2<true>(r, V, m, e) : row_sum_exp_avx2(r, V, m);
  }
#endif
  double s = 0;
  for (int j = 0; j < V; ++j) {
    const T x = nn::detail::attn::exp_t<T>(r[j] - m);
    if (e) e[j] = x;
    s += x;
  }
  return s;
}
}  // namespace detail

namespace detail {
#if TFM_HOST_X86_SIMD
// tanh(√(2/π)·(u + 0.044715·u³)) of 8 values, as 1 − 2/(exp(2a) + 1).
TFM_TARGET_AVX2 inline __m256 gelu_tanh_inner8(__m256 u) {
  const __m256 u3 = _mm256_mul_ps(_mm256_mul_ps(u, u), u);
  const __m256 a = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f), _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), u3, u));
  const __m256 e = tfm::host::avx2::exp8(_mm256_add_ps(a, a));
  return _mm256_sub_ps(_mm256_set1_ps(1.0f), _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
}
TFM_TARGET_AVX2 inline void gelu_forward_avx2(std::int64_t i0, std::int64_t i1, const float* x, float* y) {
  std::int64_t i = i0;
  for (; i + 8 <= i1; i += 8) {
    const __m256 u = _mm256_loadu_ps(x + i);
    const __m256 th = gelu_tanh_inner8(u);
    _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), u), _mm256_add_ps(_mm256_set1_ps(1.0f), th)));
  }
  for (; i < i1; ++i) y[i] = math::gelu_tanh(x[i]);
}
TFM_TARGET_AVX2 inline void gelu_backward_avx2(std::int64_t i0, std::int64_t i1, const float* x, const float* dy,
                                               float* dx) {
  std::int64_t i = i0;
  const __m256 half = _mm256_set1_ps(0.5f), one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= i1; i += 8) {
    const __m256 u = _mm256_loadu_ps(x + i);
    const __m256 th = gelu_tanh_inner8(u);
    const __m256 sech2 = _mm256_fnmadd_ps(th, th, one);
    const __m256 du = _mm256_mul_ps(_mm256_set1_ps(0.7978845608028654f),
                                    _mm256_fmadd_ps(_mm256_set1_ps(3 * 0.044715f), _mm256_mul_ps(u, u), one));
    const __m256 g = _mm256_fmadd_ps(_mm256_mul_ps(half, u), _mm256_mul_ps(sech2, du), _mm256_mul_ps(half, _mm256_add_ps(one, th)));
    _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(dy + i), g));
  }
  for (; i < i1; ++i) dx[i] = dy[i] * math::gelu_tanh_grad(x[i]);
}
// The same over 16 lanes: each step as in the AVX2 kernels (avx512::exp16 equals avx2::exp8 lane
// for lane), so the results are the AVX2 kernels' bit for bit; the last n % 16 elements go
// through them.
TFM_TARGET_AVX512 inline __m512 gelu_tanh_inner16(__m512 u) {
  const __m512 u3 = _mm512_mul_ps(_mm512_mul_ps(u, u), u);
  const __m512 a =
      _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f), _mm512_fmadd_ps(_mm512_set1_ps(0.044715f), u3, u));
  const __m512 e = tfm::host::avx512::exp16(_mm512_add_ps(a, a));
  return _mm512_sub_ps(_mm512_set1_ps(1.0f),
                       _mm512_div_ps(_mm512_set1_ps(2.0f), _mm512_add_ps(e, _mm512_set1_ps(1.0f))));
}
TFM_TARGET_AVX512 inline void gelu_forward_avx512(std::int64_t i0, std::int64_t i1, const float* x, float* y) {
  std::int64_t i = i0;
  for (; i + 16 <= i1; i += 16) {
    const __m512 u = _mm512_loadu_ps(x + i);
    const __m512 th = gelu_tanh_inner16(u);
    _mm512_storeu_ps(y + i,
                     _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), u), _mm512_add_ps(_mm512_set1_ps(1.0f), th)));
  }
  gelu_forward_avx2(i, i1, x, y);
}
TFM_TARGET_AVX512 inline void gelu_backward_avx512(std::int64_t i0, std::int64_t i1, const float* x, const float* dy,
                                                   float* dx) {
  std::int64_t i = i0;
  const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
  for (; i + 16 <= i1; i += 16) {
    const __m512 u = _mm512_loadu_ps(x + i);
    const __m512 th = gelu_tanh_inner16(u);
    const __m512 sech2 = _mm512_fnmadd_ps(th, th, one);
    const __m512 du = _mm512_mul_ps(_mm512_set1_ps(0.7978845608028654f),
                                    _mm512_fmadd_ps(_mm512_set1_ps(3 * 0.044715f), _mm512_mul_ps(u, u), one));
    const __m512 g =
        _mm512_fmadd_ps(_mm512_mul_ps(half, u), _mm512_mul_ps(sech2, du), _mm512_mul_ps(half, _mm512_add_ps(one, th)));
    _mm512_storeu_ps(dx + i, _mm512_mul_ps(_mm512_loadu_ps(dy + i), g));
  }
  gelu_backward_avx2(i, i1, x, dy, dx);
}
#endif
// GELU over [i0, i1) of float arrays with the widest vector kernel the CPU runs (false: none).
inline bool gelu_forward_simd([[maybe_unused]] std::int64_t i0, [[maybe_unused]] std::int64_t i1,
                              [[maybe_unused]] const float* x, [[maybe_unused]] float* y) {
#if TFM_HOST_X86_SIMD
  if (use_avx512()) return gelu_forward_avx512(i0, i1, x, y), true;
  if (use_avx2()) return gelu_forward_avx2(i0, i1, x, y), true;
#endif
  return false;
}
inline bool gelu_backward_simd([[maybe_unused]] std::int64_t i0, [[maybe_unused]] std::int64_t i1,
                               [[maybe_unused]] const float* x, [[maybe_unused]] const float* dy,
                               [[maybe_unused]] float* dx) {
#if TFM_HOST_X86_SIMD
  if (use_avx512()) return gelu_backward_avx512(i0, i1, x, dy, dx), true;
  if (use_avx2()) return gelu_backward_avx2(i0, i1, x, dy, dx), true;
#endif
  return false;
}
// Splits [0, n) into per-thread chunks of whole 8-element vectors.
template <class F>
void parallel_chunks(std::int64_t n, F&& f) {
  const std::int64_t chunk = 1 << 14;
#pragma omp parallel for schedule(static)
  for (std::int64_t c = 0; c < (n + chunk - 1) / chunk; ++c) f(c * chunk, std::min(n, (c + 1) * chunk));
}
}  // namespace detail

template <class T>
void gelu_forward(std::int64_t n, const T* x, T* y) {
#if TFM_HOST_X86_SIMD
  if constexpr (std::is_same_v<T, float>)
    if (detail::use_avx2())
      return detail::parallel_chunks(n, [&](std::int64_t a, std::int64_t b) { detail::gelu_forward_simd(a, b, x, y); });
#endif
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) y[i] = math::gelu_tanh(x[i]);
}
template <class T>
void gelu_backward(std::int64_t n, const T* x, const T* dy, T* dx) {
#if TFM_HOST_X86_SIMD
  if constexpr (std::is_same_v<T, float>)
    if (detail::use_avx2())
      return detail::parallel_chunks(
          n, [&](std::int64_t a, std::int64_t b) { detail::gelu_backward_simd(a, b, x, dy, dx); });
#endif
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < n; ++i) dx[i] = dy[i] * math::gelu_tanh_grad(x[i]);
}

// losses[n] = lse(z_n) − z_n[y_n] (0 for ignored rows); lse saved. Returns Σ losses (double) and
// the number of counted rows in `count`. Targets outside [0, V) other than ignore_index throw.
// Every target is in [0, V) or the ignore index; else invalid_argument naming it.
inline void check_targets(std::int64_t N, int V, const std::int32_t* y, int ignore_index) {
  for (std::int64_t n = 0; n < N; ++n)
    expects<invalid_argument>(y[n] == ignore_index || (y[n] >= 0 && y[n] < V), "nn::model: target ", y[n],
                              " at position ", n, " is outside the vocabulary [0, ", V, ") and is not the ignore index ",
                              ignore_index);
}
namespace detail {
// The gradient of a row from its exponentials: d[j] = e[j]·(scale / Σ), then d[y] −= scale
// (softmax − onehot, scaled): one exponential per logit, shared with the forward's sum.
template <class T>
void xent_row_gradient(T* d, int V, std::int32_t y, double sum, double scale) {
  const T c = T(scale / sum);
  for (int j = 0; j < V; ++j) d[j] *= c;
  d[y] -= T(scale);
}
// One row of the forward: lse and loss (0 when the target is ignored); returns the loss in double.
// With d, also the backward (xent_row_backward's values, bit for bit): the forward's
// exponentials go to d (which may be r) and become the gradient there.
template <class T>
double xent_row_forward(const T* r, int V, std::int32_t y, int ignore_index, T& lse, T& loss, double scale = 0,
                        T* d = nullptr, std::int64_t ld = 0) {
  const bool grad = d && y != ignore_index && scale != 0;
  const T m = row_max(r, V);
  const T ry = y != ignore_index ? r[y] : T(0);  // before d, which may be r, is written
  const double sum = row_sum_exp(r, V, m, grad ? d : nullptr);
  const double l = double(m) + std::log(sum);
  lse = T(l);
  if (d) {
    std::fill(d + V, d + ld, T(0));
    if (grad)
      xent_row_gradient(d, V, y, sum, scale);
    else
      std::fill(d, d + V, T(0));
  }
  if (y == ignore_index) {
    loss = 0;
    return 0;
  }
  const double v = l - double(ry);
  loss = T(v);
  return v;
}
// One row of the backward: d = scale·(softmax(r) − onehot(y)), 0 when the target is ignored, and 0
// in the padding columns V … ld−1. d may be r. The row's max and Σ exp are computed again rather
// than taken from lse, so that d equals the fused pass's (xent_row_forward with d) bit for bit and
// does not inherit lse's rounding to T (which can reach 5e-4 relative for float logits near 1e4).
template <class T>
void xent_row_backward(const T* r, T* d, int V, std::int64_t ld, std::int32_t y, int ignore_index,
                       [[maybe_unused]] T lse, double scale) {
  std::fill(d + V, d + ld, T(0));
  if (y == ignore_index || scale == 0) {
    std::fill(d, d + V, T(0));
    return;
  }
  const double sum = row_sum_exp(r, V, row_max(r, V), d);
  xent_row_gradient(d, V, y, sum, scale);
}
}  // namespace detail

// The forward over every row, and with dz the backward of each row right after it, while the
// row is in cache; `what` names the caller in errors.
template <class T>
double xent_rows(const char* what, std::int64_t N, int V, std::int64_t ld, const T* z, const std::int32_t* y,
                 int ignore_index, T* lse, T* losses, std::int64_t& count, double scale, T* dz) {
  check_targets(N, V, y, ignore_index);
  expects<invalid_argument>(ld >= V, what, ": row stride ", ld, " is below the vocabulary ", V);
  double total = 0;
  std::int64_t cnt = 0;
#pragma omp parallel for schedule(static) reduction(+ : total, cnt)
  for (std::int64_t n = 0; n < N; ++n) {
    total += detail::xent_row_forward(z + n * ld, V, y[n], ignore_index, lse[n], losses[n], scale,
                                      dz ? dz + n * ld : nullptr, ld);
    cnt += y[n] != ignore_index;
  }
  count = cnt;
  return total;
}
// Rows of z are ld ≥ V elements apart (a padded vocabulary); columns V … ld−1 are not read.
template <class T>
double xent_forward(std::int64_t N, int V, std::int64_t ld, const T* z, const std::int32_t* y, int ignore_index,
                    T* lse, T* losses, std::int64_t& count) {
  return xent_rows<T>("xent_forward", N, V, ld, z, y, ignore_index, lse, losses, count, 0.0, nullptr);
}
// dz = scale·(softmax(z) − onehot(y)), rows with ignored targets get 0; rows ld apart, and the
// padding columns V … ld−1 of dz get 0 (the head's padded rows then get no gradient). In place
// over z allowed. Targets are checked as in xent_forward (an out-of-range one would index dz[y]).
template <class T>
void xent_backward(std::int64_t N, int V, std::int64_t ld, const T* z, const std::int32_t* y, int ignore_index,
                   const T* lse, double scale, T* dz) {
  check_targets(N, V, y, ignore_index);
  expects<invalid_argument>(ld >= V, "xent_backward: row stride ", ld, " is below the vocabulary ", V);
#pragma omp parallel for schedule(static)
  for (std::int64_t n = 0; n < N; ++n)
    detail::xent_row_backward(z + n * ld, dz + n * ld, V, ld, y[n], ignore_index, lse[n], scale);
}
// xent_forward and then xent_backward, row by row while the row is in cache (one pass over the
// logits instead of two): the same lse, losses, total and dz, bit for bit. In place allowed.
template <class T>
double xent_forward_backward(std::int64_t N, int V, std::int64_t ld, const T* z, const std::int32_t* y,
                             int ignore_index, T* lse, T* losses, std::int64_t& count, double scale, T* dz) {
  return xent_rows<T>("xent_forward_backward", N, V, ld, z, y, ignore_index, lse, losses, count, scale, dz);
}

}  // namespace tfm::nn::host

// bf16/fp16 compute (host::mixed): needs the kernels above.
#include "tfm/nn/ops_host_mixed.hpp"

// ---- the host backend of model<Config, space::host> ----
// model.hpp calls layers only through a backend object; ops_cuda.cuh defines the same members
// for space::cuda. Pointers are in the backend's memory space; token ids are validated by the
// model on the host before they reach a backend.
namespace tfm::nn {

template <class Space, class T>
struct backend_for;  // specialised per memory space

template <class T>
struct host_backend {
  using space = tfm::space::host;
  template <class U>
  using buffer_t = tfm::buffer<U, space>;

  // memory
  void zero(T* p, std::size_t n) { tfm::host::zero_fill(p, n); }
  void copy(T* dst, const T* src, std::size_t n) { std::copy(src, src + n, dst); }
  template <class U>
  void upload(U* dst, const U* host_src, std::size_t n) { std::copy(host_src, host_src + n, dst); }
  template <class U>
  void download(U* host_dst, const U* src, std::size_t n) { std::copy(src, src + n, host_dst); }
  void synchronize() {}

  // layers (see the free functions above)
  void embedding_forward(int B, int T_, int D, const std::int32_t* tok, const T* wte, int V, const T* pos, T* out) {
    host::embedding_forward(B, T_, D, tok, wte, V, pos, out);
  }
  void embedding_backward(int B, int T_, int D, const std::int32_t* tok, const T* dout, T* dwte, T* dpos) {
    host::embedding_backward(B, T_, D, tok, dout, dwte, dpos);
  }
  // y (forward) and dy (backward) may be compute-type (mixed precision); the rest is T.
  template <bool Rms, class Y = T>
  void norm_forward(std::int64_t N, int D, const T* x, const T* w, const T* b, Y* y, T* mean, T* rstd, double eps) {
    host::norm_forward<Rms>(N, D, x, w, b, y, mean, rstd, eps);
  }
  template <bool Rms, class G = T>
  void norm_backward(std::int64_t N, int D, const G* dy, const T* x, const T* w, const T* mean, const T* rstd, T* dx,
                     bool acc, T* dw, T* db, T* scratch) {
    host::norm_backward<Rms>(N, D, dy, x, w, mean, rstd, dx, acc, dw, db, scratch);
  }
  std::size_t norm_scratch_size(int D) const { return host::norm_scratch_size(D); }
  void linear_forward(std::int64_t N, int in, int out, const T* x, const T* W, bool in_out, const T* b, T* y) {
    host::linear_forward<T>(N, in, out, x, W, in_out, b, y);
  }
  void linear_backward(std::int64_t N, int in, int out, const T* x, const T* W, bool in_out, const T* dy, T* dx,
                       double beta, T* dW, T* db, T* scratch, bool overwrite = false) {
    host::linear_backward<T>(N, in, out, x, W, in_out, dy, dx, beta, dW, db, scratch, overwrite);
  }
  std::size_t linear_scratch_size(int out) const { return host::linear_scratch_size(out); }
  void gelu_forward(std::int64_t n, const T* x, T* y) { host::gelu_forward<T>(n, x, y); }
  void gelu_backward(std::int64_t n, const T* x, const T* dy, T* dx) { host::gelu_backward<T>(n, x, dy, dx); }
  void swiglu_forward(std::int64_t N, int F, const T* x, T* y) { host::swiglu_forward<T>(N, F, x, y); }
  void swiglu_backward(std::int64_t N, int F, const T* x, const T* dy, T* dx) {
    host::swiglu_backward<T>(N, F, x, dy, dx);
  }
  void rope_apply(std::int64_t N, int T_, int heads, int hd, int rot, std::int64_t ld, T* qkv, const T* table,
                  bool inverse) {
    host::rope_apply(N, T_, heads, hd, rot, ld, qkv, table, inverse);
  }
  void add(std::int64_t n, const T* a, const T* b, T* y) { host::add<T>(n, a, b, y); }
  // low-rank adapters (the model calls these only for configs with a lora policy; cuda_backend has the same)
  void lora_forward(std::int64_t N, int in, int rows, int r, const T* x, std::int64_t ldx, const T* A, const T* B,
                    double scale, T* t, T* y, std::int64_t ldy) {
    host::lora_forward<T>(N, in, rows, r, x, ldx, A, B, scale, t, y, ldy);
  }
  void lora_backward(std::int64_t N, int in, int rows, int r, const T* x, std::int64_t ldx, const T* A, const T* B,
                     const T* t, const T* dy, std::int64_t ldy, double scale, T* dA, T* dB, T* dt, T* dx,
                     std::int64_t lddx, double dx_beta) {
    host::lora_backward<T>(N, in, rows, r, x, ldx, A, B, t, dy, ldy, scale, dA, dB, dt, dx, lddx, dx_beta);
  }
  void lora_dropout(std::int64_t N, int in, const T* x, std::int64_t ldx, T* y, std::uint64_t seed,
                    std::uint64_t stream, double p) {
    host::lora_dropout<T>(N, in, x, ldx, y, seed, stream, p);
  }
  void lora_dropout_backward(std::int64_t N, int in, const T* g, T* dx, std::int64_t lddx, std::uint64_t seed,
                             std::uint64_t stream, double p) {
    host::lora_dropout_backward<T>(N, in, g, dx, lddx, seed, stream, p);
  }
  // Σ losses and the counted rows.
  double xent_forward(std::int64_t N, int V, std::int64_t ld, const T* z, const std::int32_t* y, int ignore, T* lse,
                      T* losses, std::int64_t& count) {
    return host::xent_forward<T>(N, V, ld, z, y, ignore, lse, losses, count);
  }
  void xent_backward(std::int64_t N, int V, std::int64_t ld, const T* z, const std::int32_t* y, int ignore,
                     const T* lse, double scale, T* dz) {
    host::xent_backward<T>(N, V, ld, z, y, ignore, lse, scale, dz);
  }
  double xent_forward_backward(std::int64_t N, int V, std::int64_t ld, const T* z, const std::int32_t* y, int ignore,
                               T* lse, T* losses, std::int64_t& count, double scale, T* dz) {
    return host::xent_forward_backward<T>(N, V, ld, z, y, ignore, lse, losses, count, scale, dz);
  }

  // ---- mixed precision (T = float, C = bfloat16 or half; see ops_host_mixed.hpp) ----
  template <class C>
  void narrow(std::int64_t n, const T* x, C* y) { host::mixed::narrow(n, x, y); }
  template <class C>  // on the calling thread; stream: the copy is too large to stay in cache
  void narrow_here(std::int64_t n, const T* x, C* y, bool stream) {
    host::mixed::narrow_n(n, x, y, stream);
  }
  template <class C>
  void zero_compute(C* p, std::size_t n) { tfm::host::zero_fill(p, n); }
  std::size_t mixed_tile_floats(std::int64_t N, std::int64_t width) const {
    return host::mixed::linear_scratch_floats(N, width);
  }
  std::size_t attention_wide_floats(const attention_shape& s) const { return host::mixed::attention_wide_floats(s); }
  template <class C, class Y>
  void linear_forward_mixed(std::int64_t N, int in, int out, const C* x, const C* W, bool in_out, const C* b, Y* y,
                            T* tile) {
    host::mixed::linear_forward<C, Y>(N, in, out, x, W, in_out, b, y, tile);
  }
  template <class C, class DX>
  void linear_backward_mixed(std::int64_t N, int in, int out, const C* x, const C* W, bool in_out, const C* dy, DX* dx,
                             double beta, T* dW, T* db, T* tile, T* scratch, bool overwrite = false) {
    host::mixed::linear_backward<C, DX>(N, in, out, x, W, in_out, dy, dx, beta, dW, db, tile, scratch, overwrite);
  }
  template <class C>
  void lora_forward_mixed(std::int64_t N, int in, int rows, int r, const C* x, std::int64_t ldx, const C* A,
                          const C* B, double scale, C* t, C* y, std::int64_t ldy, T* tile) {
    host::mixed::lora_forward(N, in, rows, r, x, ldx, A, B, scale, t, y, ldy, tile);
  }
  template <class C, class DX>
  void lora_backward_mixed(std::int64_t N, int in, int rows, int r, const C* x, std::int64_t ldx, const C* A,
                           const C* B, const C* t, const C* dy, std::int64_t ldy, double scale, T* dA, T* dB, C* dt,
                           DX* dx, std::int64_t lddx, double dx_beta, T* tile) {
    host::mixed::lora_backward(N, in, rows, r, x, ldx, A, B, t, dy, ldy, scale, dA, dB, dt, dx, lddx, dx_beta, tile);
  }
  template <class C>
  void lora_dropout_mixed(std::int64_t N, int in, const C* x, std::int64_t ldx, C* y, std::uint64_t seed,
                          std::uint64_t stream, double p) {
    host::mixed::lora_dropout(N, in, x, ldx, y, seed, stream, p);
  }
  template <class C, class DX>
  void lora_dropout_backward_mixed(std::int64_t N, int in, const C* g, DX* dx, std::int64_t lddx, std::uint64_t seed,
                                   std::uint64_t stream, double p) {
    host::mixed::lora_dropout_backward(N, in, g, dx, lddx, seed, stream, p);
  }
  template <class C>
  void gelu_forward_mixed(std::int64_t n, const C* x, C* y) { host::mixed::gelu_forward(n, x, y); }
  template <class C>
  void gelu_backward_mixed(std::int64_t n, const C* x, const C* dy, C* dx) { host::mixed::gelu_backward(n, x, dy, dx); }
  template <class C>
  void swiglu_forward_mixed(std::int64_t N, int F, const C* x, C* y) { host::swiglu_forward(N, F, x, y); }
  template <class C>
  void swiglu_backward_mixed(std::int64_t N, int F, const C* x, const C* dy, C* dx) {
    host::swiglu_backward(N, F, x, dy, dx);
  }
  template <class C>
  void rope_apply_mixed(std::int64_t N, int T_, int heads, int hd, int rot, std::int64_t ld, C* qkv, const T* table,
                        bool inverse) {
    host::rope_apply(N, T_, heads, hd, rot, ld, qkv, table, inverse);
  }
  template <class C>
  void add_mixed(std::int64_t n, const T* a, const C* b, T* y) { host::add(n, a, b, y); }
  template <class C>
  double xent_forward_mixed(std::int64_t N, int V, std::int64_t ld, const C* z, const std::int32_t* y, int ignore,
                            T* lse, T* losses, std::int64_t& count) {
    return host::mixed::xent_forward(N, V, ld, z, y, ignore, lse, losses, count);
  }
  template <class C>
  void xent_backward_mixed(std::int64_t N, int V, std::int64_t ld, const C* z, const std::int32_t* y, int ignore,
                           const T* lse, double scale, C* dz) {
    host::mixed::xent_backward(N, V, ld, z, y, ignore, lse, scale, dz);
  }
  template <class C>
  double xent_forward_backward_mixed(std::int64_t N, int V, std::int64_t ld, const C* z, const std::int32_t* y,
                                     int ignore, T* lse, T* losses, std::int64_t& count, double scale, C* dz) {
    return host::mixed::xent_forward_backward(N, V, ld, z, y, ignore, lse, losses, count, scale, dz);
  }
  template <bool Flash, int HD, class C>
  void attention_forward_mixed(const attention_shape& s, const attention_mask& m, const C* q, const C* k, const C* v,
                               C* o, T* stats, T* wide) {
    host::mixed::attention_forward<Flash, HD>(s, m, q, k, v, o, stats, wide);
  }
  template <bool Flash, int HD, class C>
  void attention_backward_mixed(const attention_shape& s, const attention_mask& m, const C* q, const C* k, const C* v,
                                const C* o, const C* dout, const T* stats, C* dq, C* dk, C* dv, T* scratch, T* wide) {
    host::mixed::attention_backward<Flash, HD>(s, m, q, k, v, o, dout, stats, dq, dk, dv, scratch, wide);
  }

  // attention; Flash selects the kernel, stats are probabilities (naive) or logsumexp (flash)
  template <bool Flash>
  std::size_t attention_stats_size(const attention_shape& s) const {
    return Flash ? std::size_t(s.batch) * s.heads * s.seq : naive_probs_size(s);
  }
  template <bool Flash>
  std::size_t attention_scratch_size(const attention_shape& s) const {
    return Flash ? flash_scratch_size(s, host::max_threads()) : naive_scratch_size(s);
  }
  template <bool Flash, int HD>
  void attention_forward(const attention_shape& s, const attention_mask& m, const T* q, const T* k, const T* v, T* o,
                         T* stats) {
    if constexpr (Flash)
      attention_flash_forward<T, HD>(s, m, q, k, v, o, stats);
    else
      attention_naive_forward<T, HD>(s, m, q, k, v, o, stats);
  }
  template <bool Flash, int HD>
  void attention_backward(const attention_shape& s, const attention_mask& m, const T* q, const T* k, const T* v,
                          const T* o, const T* dout, const T* stats, T* dq, T* dk, T* dv, T* scratch) {
    if constexpr (Flash)
      attention_flash_backward<T, HD>(s, m, q, k, v, o, dout, stats, dq, dk, dv, scratch);
    else
      attention_naive_backward<T, HD>(s, m, q, k, v, stats, dout, dq, dk, dv, scratch);
  }
};

template <class T>
struct backend_for<tfm::space::host, T> {
  using type = host_backend<T>;
};

}  // namespace tfm::nn
