// tfm/nn/attention_host.hpp — host (CPU) attention kernels, forward and backward.
//
// Two implementations of docs/model.md's attention (masks, sliding window, ALiBi, GQA/MQA):
//  * naive: materialises the probabilities P[B][H][T][T]; the reference.
//  * flash: tiled, online softmax, O(T) extra memory (logsumexp per row); the backward pass
//    follows FlashAttention-2: P is recomputed from the saved logsumexp, D_i = rowsum(dO∘O); one
//    task per (batch, kv head) sums dQ, dK and dV together, or, with few such pairs or a sliding
//    window, dK/dV and dQ run as two passes (the same bits where both apply).
//
// Layouts. Element (b,t,h,d) of q is q[(b*T + t)*ld_q + h*hd + d]; k and v are the same with the
// kv head g in place of h (strides ld_k, ld_v). dq, dk, dv share the layout (and strides) of
// q, k, v; only the elements that belong to the heads are written, so q, k, v (and dq, dk, dv)
// may be interleaved in one [B, T, (H + 2·KV)·hd] buffer. out / dout are contiguous [B, T, H, hd].
// Query head h reads kv head h / (H / KV).
//
// Template parameters: T is the element type (float or double; all arithmetic is done in T);
// HeadDim is 0 for a head size taken from the shape, or a compile-time head size (which must
// equal shape.head_dim) that lets the compiler unroll the inner loops.
//
// The allowed keys of a query row i always form one contiguous range [lo(i), hi(i)), with lo and
// hi non-decreasing in i; tiles outside the band are never visited (causal flash does about half
// the work of bidirectional, a sliding window O(T·W)).
#pragma once

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <type_traits>
#include <vector>

#include "tfm/backend/host/cpu.hpp"
#include "tfm/backend/host/simd.hpp"
#include "tfm/backend/host/threading.hpp"
#include "tfm/core/error.hpp"

#if TFM_HOST_X86_SIMD
#include <immintrin.h>
#endif

namespace tfm::nn {

struct attention_shape {
  int batch, seq, heads, kv_heads, head_dim;  // B, T, H, KV, hd ; H % KV == 0
  std::int64_t ld_q, ld_k, ld_v;              // elements between consecutive tokens in q, k, v
};

struct attention_mask {
  bool causal = true;
  int window = 0;      // 0 = no window; causal: i - W < j <= i; bidirectional: |i - j| < W
  bool alibi = false;  // add -m_h * |i - j|
  float scale = 0;     // 0 means 1 / sqrt(head_dim)
};

// ALiBi slopes m_h of docs/model.md, computed in double and returned in T.
template <class T = float>
std::vector<T> alibi_slopes(int heads) {
  std::vector<T> m;
  if (heads <= 0) return m;
  m.reserve(static_cast<std::size_t>(heads));
  int n = 1;
  while (n * 2 <= heads) n *= 2;  // n = 2^floor(log2 H)
  for (int h = 0; h < n; ++h) m.push_back(static_cast<T>(std::exp2(-8.0 * (h + 1) / n)));
  for (int k = 0; static_cast<int>(m.size()) < heads; ++k)
    m.push_back(static_cast<T>(std::exp2(-8.0 * (2 * k + 1) / (2.0 * n))));
  return m;
}

inline std::size_t naive_probs_size(const attention_shape& s) {
  return static_cast<std::size_t>(s.batch) * s.heads * s.seq * s.seq;
}
// One row of T per (b, kv head) task.
inline std::size_t naive_scratch_size(const attention_shape& s) {
  return static_cast<std::size_t>(s.batch) * s.kv_heads * s.seq;
}
// D = rowsum(dO∘O) for every (b, h, t). Tile buffers are per-thread locals, so the size does not
// depend on `threads` (kept for the interface).
inline std::size_t flash_scratch_size(const attention_shape& s, int /*threads*/) {
  return static_cast<std::size_t>(s.batch) * s.heads * s.seq;
}

namespace detail::attn {

inline constexpr int flash_br = 64;  // query rows per tile
inline constexpr int flash_bc = 64;  // keys per tile

// The flash backward's schedule: one pass over (b, kv head) pairs where they are enough for the
// threads and no sliding window is set, else two passes (attention_flash_backward). `two_pass`
// forces the two passes (the tests compare the schedules bit for bit).
enum class flash_backward_schedule { automatic, two_pass };
inline flash_backward_schedule flash_backward_schedule_used = flash_backward_schedule::automatic;

template <int HeadDim>
inline void check(const attention_shape& s, const attention_mask& m, const char* op) {
  auto fail = [&](const char* why) {
    std::ostringstream os;
    os << op << ": " << why << " (B=" << s.batch << " T=" << s.seq << " H=" << s.heads
       << " KV=" << s.kv_heads << " hd=" << s.head_dim << " HeadDim=" << HeadDim
       << " ld_q=" << s.ld_q << " ld_k=" << s.ld_k << " ld_v=" << s.ld_v
       << " window=" << m.window << ")";
    throw shape_error(os.str());
  };
  if (s.batch < 0 || s.seq < 0 || s.heads <= 0 || s.kv_heads <= 0 || s.head_dim <= 0)
    fail("sizes must be positive");
  if (s.heads % s.kv_heads != 0) fail("heads must be a multiple of kv_heads");
  if (HeadDim != 0 && HeadDim != s.head_dim) fail("static HeadDim differs from shape.head_dim");
  if (s.ld_q < std::int64_t(s.heads) * s.head_dim || s.ld_k < std::int64_t(s.kv_heads) * s.head_dim ||
      s.ld_v < std::int64_t(s.kv_heads) * s.head_dim)
    fail("token strides smaller than the heads they hold");
  if (m.window < 0) fail("negative window");
}

// Mask geometry: row i attends to keys [lo(i), hi(i)); both non-decreasing in i.
struct band {
  int T;
  bool causal;
  int W;
  int lo(int i) const { return W > 0 ? std::max(0, i - W + 1) : 0; }
  int hi(int i) const {
    if (causal) return std::min(T, i + 1);
    return W > 0 ? std::min(T, i + W) : T;
  }
  // Rows that see at least one key of [j0, j1): [row_begin, row_end).
  int row_begin(int j0) const {
    if (causal) return j0;
    return W > 0 ? std::max(0, j0 - W + 1) : 0;
  }
  int row_end(int j1) const { return W > 0 ? std::min(T, j1 + W - 1) : T; }
};

// exp for the softmax. float: a branch-free range reduction (x = n·ln2 + r) and a degree-7
// Taylor polynomial (relative error ~1e-7, i.e. about one float ulp) that GCC vectorises;
// arguments below -87.3 give ~1e-38 instead of 0, which is below any softmax sum's resolution.
// double: std::exp.
template <class T>
inline T exp_t(T x) {
  if constexpr (std::is_same_v<T, float>) {
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    constexpr float magic = 12582912.0f;  // 1.5 * 2^23: rounds to an integer
    const float t = x * 1.44269504088896341f + magic;
    const float n = t - magic;
    const float r = (x - n * 0.693145751953125f) - n * 1.428606765330187045e-06f;
    float p = 1.0f / 5040;
    p = p * r + 1.0f / 720;
    p = p * r + 1.0f / 120;
    p = p * r + 1.0f / 24;
    p = p * r + 1.0f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const std::int32_t bits = (static_cast<std::int32_t>(n) + 127) << 23;
    return p * std::bit_cast<float>(bits);
  } else {
    return std::exp(x);
  }
}

template <class T>
inline T scale_of(const attention_mask& m, int hd) {
  return m.scale != 0 ? static_cast<T>(m.scale) : static_cast<T>(1.0 / std::sqrt(static_cast<double>(hd)));
}

template <class T>
inline T slope_of(const attention_mask& m, const std::vector<T>& slopes, int h) {
  return m.alibi ? slopes[static_cast<std::size_t>(h)] : T(0);
}

template <class T, int HeadDim>
inline T dot(const T* a, const T* b, int hd_dyn) {
  const int hd = HeadDim > 0 ? HeadDim : hd_dyn;
  T s = 0;
  // simd reduction: lanes of partial sums (a fixed order for a given build, so still deterministic)
#pragma omp simd reduction(+ : s)
  for (int d = 0; d < hd; ++d) s += a[d] * b[d];
  return s;
}

template <class T, int HeadDim>
inline void axpy(T a, const T* x, T* y, int hd_dyn) {
  const int hd = HeadDim > 0 ? HeadDim : hd_dyn;
#pragma omp simd
  for (int d = 0; d < hd; ++d) y[d] += a * x[d];
}

// Transposes rows [j0, j0+nc) of one head (row stride ld) into dst[d*flash_bc + c]; columns
// nc..flash_bc-1 are zeroed.
#if TFM_HOST_X86_SIMD
TFM_TARGET_AVX512 inline void load_transposed_avx512(const float* src, std::int64_t ld, int nc, int hd, float* dst);
#endif
template <class T, int HeadDim>
inline void load_transposed(const T* src, std::int64_t ld, int nc, int hd_dyn, T* dst) {
#if TFM_HOST_X86_SIMD
  if constexpr (std::is_same_v<T, float> && HeadDim > 0 && HeadDim % 16 == 0)
    if (tfm::host::cpu_runs<tfm::host::isa::avx512>()) return load_transposed_avx512(src, ld, nc, HeadDim, dst);
#endif
  const int hd = HeadDim > 0 ? HeadDim : hd_dyn;
  constexpr int BC = flash_bc;
  for (int c = 0; c < nc; ++c) {
    const T* row = src + c * ld;
    for (int d = 0; d < hd; ++d) dst[d * BC + c] = row[d];
  }
  if (nc < BC)
    for (int d = 0; d < hd; ++d)
      for (int c = nc; c < BC; ++c) dst[d * BC + c] = T(0);
}

// S[r*BC + c] = q_r · Kt[:, c] for nr rows (q rows given by pointer + stride). Vectorises over c.
template <class T, int HeadDim>
inline void rows_times_kt(const T* q, std::int64_t ldq, int nr, const T* kt, int hd_dyn, T* S) {
  const int hd = HeadDim > 0 ? HeadDim : hd_dyn;
  constexpr int BC = flash_bc;
  for (int r = 0; r < nr; ++r) {
    const T* qr = q + r * ldq;
    T* sr = S + r * BC;
    for (int c = 0; c < BC; ++c) sr[c] = T(0);
    for (int d = 0; d < hd; ++d) {
      const T a = qr[d];
      const T* kd = kt + d * BC;
      for (int c = 0; c < BC; ++c) sr[c] += a * kd[c];
    }
  }
}

// ---- the fp32 AVX-512 tile products of the flash kernels ----
// C[m × 16·NV] (+)= A[m × k] · B[k × 16·NV]: A(i, p) at a[i·ars + p·acs] (any strides, so Pᵀ and
// dSᵀ need no copy), row p of B at b + p·ldb (16·NV contiguous floats), row i of C at c + i·ldc.
// Rows of C are register blocks (MR rows × NV vectors) over the whole k: the axpy form loaded and
// stored a row of C per multiply-add and ran the tiles at ~40 GFLOP/s.
#if TFM_HOST_X86_SIMD
template <int NV>
TFM_TARGET_AVX512 inline void tile_gemm_avx512(int m, int k, const float* a, std::int64_t ars, std::int64_t acs,
                                               const float* b, std::int64_t ldb, float* c, std::int64_t ldc,
                                               bool accumulate) {
  constexpr int MR = NV <= 4 ? 4 : 2;  // ≤ 25 of the 32 zmm registers
  const auto rows = [&]<int R>(int i) {
    __m512 acc[R][NV];
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v)
        acc[r][v] = accumulate ? _mm512_loadu_ps(c + (i + r) * ldc + 16 * v) : _mm512_setzero_ps();
    const float* ai = a + i * ars;
    for (int p = 0; p < k; ++p) {
      const float* bp = b + p * ldb;
      __m512 bv[NV];
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_loadu_ps(bp + 16 * v);
      for (int r = 0; r < R; ++r) {
        const __m512 x = _mm512_set1_ps(ai[r * ars + p * acs]);
        for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(x, bv[v], acc[r][v]);
      }
    }
    for (int r = 0; r < R; ++r)
      for (int v = 0; v < NV; ++v) _mm512_storeu_ps(c + (i + r) * ldc + 16 * v, acc[r][v]);
  };
  int i = 0;
  for (; i + MR <= m; i += MR) rows.template operator()<MR>(i);
  for (; i < m; ++i) rows.template operator()<1>(i);
}
// ---- the fp32 AVX-512 row steps of the flash kernels (with the tile products above) ----
// A row of scores is flash_bc = 64 floats, 4 vectors; key c of the tile is allowed for
// cl ≤ c < ch (the caller skips rows with none). d(c) = |rel − c| with rel = i − j0, the ALiBi
// distance, enters only when slope ≠ 0.
namespace avx512_rows {
inline constexpr int vectors = flash_bc / 16;
TFM_TARGET_AVX512 inline __mmask16 allowed(int v, int cl, int ch) {
  const int lo = std::clamp(cl - 16 * v, 0, 16), hi = std::clamp(ch - 16 * v, 0, 16);
  return static_cast<__mmask16>(((1u << hi) - 1) & ~((1u << lo) - 1));
}
// s·scale − slope·d(c) for the 16 keys of vector v.
TFM_TARGET_AVX512 inline __m512 logits(const float* sr, int v, float scale, float slope, int rel) {
  const __m512 x = _mm512_mul_ps(_mm512_loadu_ps(sr + 16 * v), _mm512_set1_ps(scale));
  if (slope == 0.0f) return x;
  const __m512i c = _mm512_add_epi32(_mm512_set1_epi32(16 * v),
                                     _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  // (maskz forms with every lane: GCC 12 warns about the plain intrinsics' undefined operand)
  const __m512 d =
      _mm512_maskz_cvtepi32_ps(0xFFFF, _mm512_maskz_abs_epi32(0xFFFF, _mm512_sub_epi32(_mm512_set1_epi32(rel), c)));
  return _mm512_fnmadd_ps(_mm512_set1_ps(slope), d, x);
}
}  // namespace avx512_rows

// Forward, one row: the allowed logits' max joins the running max m; sr becomes
// exp(logit − m_new) at the allowed keys and 0 elsewhere; returns their sum and sets alpha =
// exp(m_old − m_new) (0 for the row's first keys).
TFM_TARGET_AVX512 inline float flash_row_forward_avx512(float* sr, int cl, int ch, int rel, float scale, float slope,
                                                        float& m, float& alpha) {
  namespace r = avx512_rows;
  __m512 x[r::vectors];
  __mmask16 k[r::vectors];
  __m512 mx = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int v = 0; v < r::vectors; ++v) {
    k[v] = r::allowed(v, cl, ch);
    x[v] = r::logits(sr, v, scale, slope, rel);
    mx = _mm512_mask_max_ps(mx, k[v], mx, x[v]);
  }
  const float mnew = std::max(m, tfm::host::avx512::reduce_max16(mx));
  alpha = m == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(m - mnew);
  m = mnew;
  const __m512 mv = _mm512_set1_ps(mnew);
  __m512 sum = _mm512_setzero_ps();
  for (int v = 0; v < r::vectors; ++v) {
    const __m512 p = _mm512_maskz_mov_ps(k[v], tfm::host::avx512::exp16(_mm512_sub_ps(x[v], mv)));
    _mm512_storeu_ps(sr + 16 * v, p);
    sum = _mm512_add_ps(sum, p);
  }
  return tfm::host::avx512::reduce_add16(sum);
}
// Backward, one row: pr = P = exp(logit − L) and dr = dS = P·(dP − D)·scale at the allowed keys
// (dr holds dP on entry), 0 elsewhere.
TFM_TARGET_AVX512 inline void flash_row_backward_avx512(float* pr, float* dr, int cl, int ch, int rel, float scale,
                                                        float slope, float L, float D) {
  namespace r = avx512_rows;
  const __m512 lv = _mm512_set1_ps(L), dv = _mm512_set1_ps(D), sv = _mm512_set1_ps(scale);
  for (int v = 0; v < r::vectors; ++v) {
    const __mmask16 k = r::allowed(v, cl, ch);
    const __m512 p =
        _mm512_maskz_mov_ps(k, tfm::host::avx512::exp16(_mm512_sub_ps(r::logits(pr, v, scale, slope, rel), lv)));
    const __m512 ds = _mm512_mul_ps(_mm512_mul_ps(p, _mm512_sub_ps(_mm512_loadu_ps(dr + 16 * v), dv)), sv);
    _mm512_storeu_ps(pr + 16 * v, p);
    _mm512_storeu_ps(dr + 16 * v, _mm512_maskz_mov_ps(k, ds));
  }
}
// load_transposed for fp32 with hd a multiple of 16: 16×16 blocks through registers.
TFM_TARGET_AVX512 inline void load_transposed_avx512(const float* src, std::int64_t ld, int nc, int hd, float* dst) {
  constexpr int BC = flash_bc;
  for (int c0 = 0; c0 < BC; c0 += 16)
    for (int d0 = 0; d0 < hd; d0 += 16) {
      __m512i r[16];
      for (int i = 0; i < 16; ++i)
        r[i] = c0 + i < nc ? _mm512_castps_si512(_mm512_loadu_ps(src + (c0 + i) * ld + d0)) : _mm512_setzero_si512();
      tfm::host::avx512::transpose_16x16_epi32(r);
      for (int d = 0; d < 16; ++d) _mm512_storeu_si512(dst + (d0 + d) * BC + c0, r[d]);
    }
}
#endif

// Whether the flash kernels of T and HeadDim use tile_gemm_avx512 (fp32, head size 32, 64 or 128,
// a CPU with AVX-512).
template <class T, int HeadDim>
inline bool tile_gemm_fast() {
#if TFM_HOST_X86_SIMD
  if constexpr (std::is_same_v<T, float> && (HeadDim == 32 || HeadDim == 64 || HeadDim == 128))
    return tfm::host::cpu_runs<tfm::host::isa::avx512>();
#endif
  return false;
}

// One row of the forward's online softmax over a tile: the allowed logits (keys [cl, ch) of the
// tile at j0, row i) update the running max m and become exp(logit − m) in sr; returns their sum,
// and alpha = exp(m_old − m_new) (0 for the row's first keys). `fast` (the tile-product path,
// tile_gemm_fast) runs flash_row_forward_avx512, which also zeroes the other keys for its P·V.
template <class T>
T flash_row_forward([[maybe_unused]] bool fast, T* sr, int cl, int ch, int i, int j0, T scale, T slope, T& m,
                    T& alpha) {
#if TFM_HOST_X86_SIMD
  if constexpr (std::is_same_v<T, float>)
    if (fast) return flash_row_forward_avx512(sr, cl, ch, i - j0, scale, slope, m, alpha);
#endif
  T mx = -std::numeric_limits<T>::infinity();
  for (int c = cl; c < ch; ++c) {
    sr[c] = sr[c] * scale - slope * T(std::abs(i - (j0 + c)));
    mx = std::max(mx, sr[c]);
  }
  const T mnew = std::max(m, mx);
  alpha = m == -std::numeric_limits<T>::infinity() ? T(0) : std::exp(m - mnew);
  m = mnew;
  for (int c = cl; c < ch; ++c) sr[c] = exp_t(sr[c] - mnew);
  T sum = 0;
  for (int c = cl; c < ch; ++c) sum += sr[c];
  return sum;
}

// C (+)= A·B for the flash kernels, N a head size or flash_bc: the AVX-512 kernel for fp32 (called
// where tile_gemm_fast() holds), plain loops otherwise.
template <int N, class T>
inline void tile_gemm(int m, int k, const T* a, std::int64_t ars, std::int64_t acs, const T* b, std::int64_t ldb,
                      T* c, std::int64_t ldc, bool accumulate) {
#if TFM_HOST_X86_SIMD
  if constexpr (std::is_same_v<T, float> && N % 16 == 0 && N <= 128) {
    tile_gemm_avx512<N / 16>(m, k, a, ars, acs, b, ldb, c, ldc, accumulate);
    return;
  }
#endif
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < N; ++j) {
      T sum = accumulate ? c[i * ldc + j] : T(0);
      for (int p = 0; p < k; ++p) sum += a[i * ars + p * acs] * b[p * ldb + j];
      c[i * ldc + j] = sum;
    }
}

// With a run-time head size (HeadDim == 0) that has a specialised kernel (32, 64, 128), calls
// f(std::integral_constant<int, hd>) and returns true; otherwise returns false.
template <int HeadDim, class F>
inline bool with_static_head_dim(int hd, F&& f) {
  if constexpr (HeadDim == 0) {
    switch (hd) {
      case 32: f(std::integral_constant<int, 32>{}); return true;
      case 64: f(std::integral_constant<int, 64>{}); return true;
      case 128: f(std::integral_constant<int, 128>{}); return true;
      default: break;
    }
  }
  return false;
}

}  // namespace detail::attn

// ------------------------------------------------------------------------------------ naive
template <class T, int HeadDim = 0>
void attention_naive_forward(const attention_shape& s, const attention_mask& m, const T* q,
                             const T* k, const T* v, T* out, T* probs) {
  // common head sizes get a kernel specialised at compile time
  if (detail::attn::with_static_head_dim<HeadDim>(s.head_dim, [&](auto hd) {
        attention_naive_forward<T, decltype(hd)::value>(s, m, q, k, v, out, probs);
      }))
    return;

  static_assert(std::is_floating_point_v<T>, "attention: T must be float or double");
  namespace da = detail::attn;
  da::check<HeadDim>(s, m, "attention_naive_forward");
  const int B = s.batch, Tn = s.seq, H = s.heads, G = H / s.kv_heads;
  const int hd = HeadDim > 0 ? HeadDim : s.head_dim;
  const T scale = da::scale_of<T>(m, hd);
  const std::vector<T> slopes = alibi_slopes<T>(H);
  const da::band bd{Tn, m.causal, m.window};
  const std::int64_t ldo = std::int64_t(H) * hd;
  [[maybe_unused]] const int nthreads = tfm::host::num_threads();
  const std::int64_t tasks = std::int64_t(B) * H;

#pragma omp parallel for schedule(dynamic) num_threads(nthreads)
  for (std::int64_t task = 0; task < tasks; ++task) {
    const int b = int(task / H), h = int(task % H), g = h / G;
    const T slope = da::slope_of(m, slopes, h);
    const T* qb = q + std::int64_t(b) * Tn * s.ld_q + std::int64_t(h) * hd;
    const T* kb = k + std::int64_t(b) * Tn * s.ld_k + std::int64_t(g) * hd;
    const T* vb = v + std::int64_t(b) * Tn * s.ld_v + std::int64_t(g) * hd;
    T* ob = out + std::int64_t(b) * Tn * ldo + std::int64_t(h) * hd;
    T* pb = probs + (std::int64_t(b) * H + h) * Tn * Tn;
    for (int i = 0; i < Tn; ++i) {
      T* p = pb + std::int64_t(i) * Tn;
      T* o = ob + std::int64_t(i) * ldo;
      const int lo = bd.lo(i), hi = bd.hi(i);
      for (int j = 0; j < Tn; ++j) p[j] = T(0);
      for (int d = 0; d < hd; ++d) o[d] = T(0);
      if (hi <= lo) continue;  // no key: output 0
      const T* qi = qb + std::int64_t(i) * s.ld_q;
      T mx = -std::numeric_limits<T>::infinity();
      for (int j = lo; j < hi; ++j) {
        const T sc = scale * da::dot<T, HeadDim>(qi, kb + std::int64_t(j) * s.ld_k, hd) -
                     slope * T(std::abs(i - j));
        p[j] = sc;
        mx = std::max(mx, sc);
      }
      T sum = 0;
      for (int j = lo; j < hi; ++j) {
        p[j] = da::exp_t(p[j] - mx);
      }
      for (int j = lo; j < hi; ++j) sum += p[j];
      const T inv = T(1) / sum;
      for (int j = lo; j < hi; ++j) {
        p[j] *= inv;
        da::axpy<T, HeadDim>(p[j], vb + std::int64_t(j) * s.ld_v, o, hd);
      }
    }
  }
}

template <class T, int HeadDim = 0>
void attention_naive_backward(const attention_shape& s, const attention_mask& m, const T* q,
                              const T* k, const T* v, const T* probs, const T* dout, T* dq, T* dk,
                              T* dv, T* scratch) {
  // common head sizes get a kernel specialised at compile time
  if (detail::attn::with_static_head_dim<HeadDim>(s.head_dim, [&](auto hd) {
        attention_naive_backward<T, decltype(hd)::value>(s, m, q, k, v, probs, dout, dq, dk, dv, scratch);
      }))
    return;

  static_assert(std::is_floating_point_v<T>, "attention: T must be float or double");
  namespace da = detail::attn;
  da::check<HeadDim>(s, m, "attention_naive_backward");
  const int B = s.batch, Tn = s.seq, H = s.heads, KV = s.kv_heads, G = H / KV;
  const int hd = HeadDim > 0 ? HeadDim : s.head_dim;
  const T scale = da::scale_of<T>(m, hd);
  const da::band bd{Tn, m.causal, m.window};
  const std::int64_t ldo = std::int64_t(H) * hd;
  [[maybe_unused]] const int nthreads = tfm::host::num_threads();
  const std::int64_t tasks = std::int64_t(B) * KV;

  // One task per (b, kv head): it owns dk/dv of that head and dq of the group's query heads.
#pragma omp parallel for schedule(dynamic) num_threads(nthreads)
  for (std::int64_t task = 0; task < tasks; ++task) {
    const int b = int(task / KV), g = int(task % KV);
    T* dS = scratch + task * Tn;
    const T* kb = k + std::int64_t(b) * Tn * s.ld_k + std::int64_t(g) * hd;
    const T* vb = v + std::int64_t(b) * Tn * s.ld_v + std::int64_t(g) * hd;
    T* dkb = dk + std::int64_t(b) * Tn * s.ld_k + std::int64_t(g) * hd;
    T* dvb = dv + std::int64_t(b) * Tn * s.ld_v + std::int64_t(g) * hd;
    for (int j = 0; j < Tn; ++j)
      for (int d = 0; d < hd; ++d) {
        dkb[std::int64_t(j) * s.ld_k + d] = T(0);
        dvb[std::int64_t(j) * s.ld_v + d] = T(0);
      }
    for (int h = g * G; h < (g + 1) * G; ++h) {
      const T* qb = q + std::int64_t(b) * Tn * s.ld_q + std::int64_t(h) * hd;
      T* dqb = dq + std::int64_t(b) * Tn * s.ld_q + std::int64_t(h) * hd;
      const T* dob = dout + std::int64_t(b) * Tn * ldo + std::int64_t(h) * hd;
      const T* pb = probs + (std::int64_t(b) * H + h) * Tn * Tn;
      for (int i = 0; i < Tn; ++i) {
        T* dqi = dqb + std::int64_t(i) * s.ld_q;
        for (int d = 0; d < hd; ++d) dqi[d] = T(0);
        const int lo = bd.lo(i), hi = bd.hi(i);
        if (hi <= lo) continue;
        const T* p = pb + std::int64_t(i) * Tn;
        const T* doi = dob + std::int64_t(i) * ldo;
        const T* qi = qb + std::int64_t(i) * s.ld_q;
        T Di = 0;
        for (int j = lo; j < hi; ++j) {
          dS[j] = da::dot<T, HeadDim>(doi, vb + std::int64_t(j) * s.ld_v, hd);  // dP
          Di += p[j] * dS[j];
        }
        for (int j = lo; j < hi; ++j) {
          const T ds = p[j] * (dS[j] - Di) * scale;
          da::axpy<T, HeadDim>(ds, kb + std::int64_t(j) * s.ld_k, dqi, hd);
          da::axpy<T, HeadDim>(ds, qi, dkb + std::int64_t(j) * s.ld_k, hd);
          da::axpy<T, HeadDim>(p[j], doi, dvb + std::int64_t(j) * s.ld_v, hd);
        }
      }
    }
  }
}

// ------------------------------------------------------------------------------------ flash
template <class T, int HeadDim = 0>
void attention_flash_forward(const attention_shape& s, const attention_mask& m, const T* q,
                             const T* k, const T* v, T* out, T* lse) {
  // common head sizes get a kernel specialised at compile time
  if (detail::attn::with_static_head_dim<HeadDim>(s.head_dim, [&](auto hd) {
        attention_flash_forward<T, decltype(hd)::value>(s, m, q, k, v, out, lse);
      }))
    return;

  static_assert(std::is_floating_point_v<T>, "attention: T must be float or double");
  namespace da = detail::attn;
  constexpr int BR = da::flash_br, BC = da::flash_bc;
  da::check<HeadDim>(s, m, "attention_flash_forward");
  const int B = s.batch, Tn = s.seq, H = s.heads, G = H / s.kv_heads;
  const int hd = HeadDim > 0 ? HeadDim : s.head_dim;
  const T scale = da::scale_of<T>(m, hd);
  const std::vector<T> slopes = alibi_slopes<T>(H);
  const da::band bd{Tn, m.causal, m.window};
  const std::int64_t ldo = std::int64_t(H) * hd;
  [[maybe_unused]] const int nthreads = tfm::host::num_threads();
  const int qtiles = (Tn + BR - 1) / BR;
  const std::int64_t tasks = std::int64_t(B) * H * qtiles;
  constexpr T ninf = -std::numeric_limits<T>::infinity();
  const bool fast = da::tile_gemm_fast<T, HeadDim>();

#pragma omp parallel num_threads(nthreads)
  {
    std::vector<T> kt_buf(std::size_t(hd) * BC), s_buf(std::size_t(BR) * BC),
        acc_buf(std::size_t(BR) * hd), m_buf(BR), l_buf(BR);
    T* kt = kt_buf.data();
    T* S = s_buf.data();
    T* acc = acc_buf.data();
    T* mrow = m_buf.data();
    T* lrow = l_buf.data();
#pragma omp for schedule(dynamic)
    for (std::int64_t task = 0; task < tasks; ++task) {
      // Longest (latest) causal tiles first: the tile index runs backwards.
      const int qt = qtiles - 1 - int(task % qtiles);
      const int bh = int(task / qtiles);
      const int b = bh / H, h = bh % H, g = h / G;
      const T slope = da::slope_of(m, slopes, h);
      const int i0 = qt * BR, i1 = std::min(Tn, i0 + BR), nr = i1 - i0;
      const T* qb = q + (std::int64_t(b) * Tn + i0) * s.ld_q + std::int64_t(h) * hd;
      const T* kb = k + std::int64_t(b) * Tn * s.ld_k + std::int64_t(g) * hd;
      const T* vb = v + std::int64_t(b) * Tn * s.ld_v + std::int64_t(g) * hd;
      for (int r = 0; r < nr; ++r) {
        mrow[r] = ninf;
        lrow[r] = T(0);
        for (int d = 0; d < hd; ++d) acc[r * hd + d] = T(0);
      }
      const int jbeg = bd.lo(i0), jend = bd.hi(i1 - 1);
      for (int j0 = jbeg; j0 < jend; j0 += BC) {
        const int j1 = std::min(jend, j0 + BC), nc = j1 - j0;
        da::load_transposed<T, HeadDim>(kb + std::int64_t(j0) * s.ld_k, s.ld_k, nc, hd, kt);
        if (fast)
          da::tile_gemm<BC>(nr, hd, qb, s.ld_q, 1, kt, BC, S, BC, false);
        else
          da::rows_times_kt<T, HeadDim>(qb, s.ld_q, nr, kt, hd, S);
        for (int r = 0; r < nr; ++r) {
          const int i = i0 + r;
          const int cl = std::max(bd.lo(i), j0) - j0, ch = std::min(bd.hi(i), j1) - j0;
          T* sr = S + r * BC;
          if (ch <= cl) {                            // no key of this tile for this row
            if (fast) std::fill(sr, sr + BC, T(0));  // P·V below runs over the whole tile
            continue;
          }
          T alpha;
          const T sum = da::flash_row_forward(fast, sr, cl, ch, i, j0, scale, slope, mrow[r], alpha);
          lrow[r] = lrow[r] * alpha + sum;
          T* ar = acc + r * hd;
          if (alpha != T(1))
            for (int d = 0; d < hd; ++d) ar[d] *= alpha;
          if (!fast)
            for (int c = cl; c < ch; ++c)
              da::axpy<T, HeadDim>(sr[c], vb + std::int64_t(j0 + c) * s.ld_v, ar, hd);
        }
        if (fast)
          da::tile_gemm<HeadDim>(nr, nc, S, BC, 1, vb + std::int64_t(j0) * s.ld_v, s.ld_v, acc, hd, true);
      }
      T* ob = out + (std::int64_t(b) * Tn + i0) * ldo + std::int64_t(h) * hd;
      T* lb = lse + (std::int64_t(b) * H + h) * Tn + i0;
      for (int r = 0; r < nr; ++r) {
        T* o = ob + r * ldo;
        if (lrow[r] > T(0)) {
          const T inv = T(1) / lrow[r];
          for (int d = 0; d < hd; ++d) o[d] = acc[r * hd + d] * inv;
          lb[r] = mrow[r] + std::log(lrow[r]);
        } else {  // every key masked
          for (int d = 0; d < hd; ++d) o[d] = T(0);
          lb[r] = ninf;
        }
      }
    }
  }
}

template <class T, int HeadDim = 0>
void attention_flash_backward(const attention_shape& s, const attention_mask& m, const T* q,
                              const T* k, const T* v, const T* out, const T* dout, const T* lse,
                              T* dq, T* dk, T* dv, T* scratch) {
  // common head sizes get a kernel specialised at compile time
  if (detail::attn::with_static_head_dim<HeadDim>(s.head_dim, [&](auto hd) {
        attention_flash_backward<T, decltype(hd)::value>(s, m, q, k, v, out, dout, lse, dq, dk, dv, scratch);
      }))
    return;

  static_assert(std::is_floating_point_v<T>, "attention: T must be float or double");
  namespace da = detail::attn;
  constexpr int BR = da::flash_br, BC = da::flash_bc;
  da::check<HeadDim>(s, m, "attention_flash_backward");
  const int B = s.batch, Tn = s.seq, H = s.heads, KV = s.kv_heads, G = H / KV;
  const int hd = HeadDim > 0 ? HeadDim : s.head_dim;
  const T scale = da::scale_of<T>(m, hd);
  const std::vector<T> slopes = alibi_slopes<T>(H);
  const da::band bd{Tn, m.causal, m.window};
  const std::int64_t ldo = std::int64_t(H) * hd;
  [[maybe_unused]] const int nthreads = tfm::host::num_threads();
  T* Dall = scratch;  // [B][H][T]
  const bool fast = da::tile_gemm_fast<T, HeadDim>();

  // D_i = rowsum(dO ∘ O)
  const std::int64_t rows = std::int64_t(B) * Tn;
#pragma omp parallel for schedule(static) num_threads(nthreads)
  for (std::int64_t bt = 0; bt < rows; ++bt) {
    const int b = int(bt / Tn), t = int(bt % Tn);
    for (int h = 0; h < H; ++h) {
      const std::int64_t off = bt * ldo + std::int64_t(h) * hd;
      Dall[(std::int64_t(b) * H + h) * Tn + t] = da::dot<T, HeadDim>(dout + off, out + off, hd);
    }
  }

  // Recomputes P and dS of rows [i0, i0+nr) against keys [j0, j0+nc) (Kt, Vt transposed tiles).
  // P and dS are [BR][BC]; entries outside the mask are 0.
  auto tile = [&](int b, int h, int i0, int nr, int j0, int nc, const T* kt, const T* vt, T* P,
                  T* dS) {
    const T slope = da::slope_of(m, slopes, h);
    const T* qb = q + (std::int64_t(b) * Tn + i0) * s.ld_q + std::int64_t(h) * hd;
    const T* dob = dout + (std::int64_t(b) * Tn + i0) * ldo + std::int64_t(h) * hd;
    const T* lb = lse + (std::int64_t(b) * H + h) * Tn + i0;
    const T* Db = Dall + (std::int64_t(b) * H + h) * Tn + i0;
    if (fast) {
      da::tile_gemm<BC>(nr, hd, qb, s.ld_q, 1, kt, BC, P, BC, false);
      da::tile_gemm<BC>(nr, hd, dob, ldo, 1, vt, BC, dS, BC, false);  // dP
    } else {
      da::rows_times_kt<T, HeadDim>(qb, s.ld_q, nr, kt, hd, P);
      da::rows_times_kt<T, HeadDim>(dob, ldo, nr, vt, hd, dS);  // dP
    }
    for (int r = 0; r < nr; ++r) {
      const int i = i0 + r;
      const int cl = std::max(bd.lo(i), j0) - j0, ch = std::min(bd.hi(i), j0 + nc) - j0;
      T* pr = P + r * BC;
      T* dr = dS + r * BC;
      const T L = lb[r], Di = Db[r];
      if (!std::isfinite(L) || ch <= cl) {  // no key for this row
        for (int c = 0; c < BC; ++c) pr[c] = dr[c] = T(0);
        continue;
      }
#if TFM_HOST_X86_SIMD
      if constexpr (std::is_same_v<T, float>) {
        if (fast) {
          da::flash_row_backward_avx512(pr, dr, cl, ch, i - j0, scale, slope, L, Di);
          continue;
        }
      }
#endif
      for (int c = 0; c < cl; ++c) pr[c] = dr[c] = T(0);
      for (int c = ch; c < BC; ++c) pr[c] = dr[c] = T(0);
      for (int c = cl; c < ch; ++c) {
        const T p = da::exp_t(pr[c] * scale - slope * T(std::abs(i - (j0 + c))) - L);
        pr[c] = p;
        dr[c] = p * (dr[c] - Di) * scale;
      }
    }
  };

  const int ktiles = (Tn + BC - 1) / BC;
  // The dK/dV products of one key tile against the query tiles that see it, for query head h;
  // with dq (rows of head h, stride ld_q) also dQ += dS·K over the same tiles.
  auto key_tile = [&](int b, int g, int h, int j0, int nc, const T* kt, const T* vt, T* P, T* dS, T* dkt, T* dvt,
                      T* dq_head) {
    const int ibeg = bd.row_begin(j0), iend = bd.row_end(j0 + nc);
    const T* qb = q + std::int64_t(b) * Tn * s.ld_q + std::int64_t(h) * hd;
    const T* dob = dout + std::int64_t(b) * Tn * ldo + std::int64_t(h) * hd;
    const T* kb = k + (std::int64_t(b) * Tn + j0) * s.ld_k + std::int64_t(g) * hd;
    for (int i0 = ibeg; i0 < iend; i0 += BR) {
      const int nr = std::min(iend, i0 + BR) - i0;
      tile(b, h, i0, nr, j0, nc, kt, vt, P, dS);
      if (fast) {  // dVᵀ += Pᵀ·dO, dKᵀ += dSᵀ·Q over the tile (masked entries are 0)
        da::tile_gemm<HeadDim>(nc, nr, P, 1, BC, dob + std::int64_t(i0) * ldo, ldo, dvt, hd, true);
        da::tile_gemm<HeadDim>(nc, nr, dS, 1, BC, qb + std::int64_t(i0) * s.ld_q, s.ld_q, dkt, hd, true);
        if (dq_head)
          da::tile_gemm<HeadDim>(nr, nc, dS, BC, 1, kb, s.ld_k, dq_head + std::int64_t(i0) * s.ld_q, s.ld_q, true);
        continue;
      }
      for (int r = 0; r < nr; ++r) {
        const T* qr = qb + std::int64_t(i0 + r) * s.ld_q;
        const T* dor = dob + std::int64_t(i0 + r) * ldo;
        const T* pr = P + r * BC;
        const T* dr = dS + r * BC;
        for (int c = 0; c < nc; ++c) {
          if (pr[c] != T(0)) da::axpy<T, HeadDim>(pr[c], dor, dvt + c * hd, hd);
          if (dr[c] != T(0)) da::axpy<T, HeadDim>(dr[c], qr, dkt + c * hd, hd);
        }
        if (dq_head) {
          T* dqr = dq_head + std::int64_t(i0 + r) * s.ld_q;
          for (int c = 0; c < nc; ++c)
            if (dr[c] != T(0)) da::axpy<T, HeadDim>(dr[c], kb + std::int64_t(c) * s.ld_k, dqr, hd);
        }
      }
    }
  };
  auto store_key_tile = [&](int b, int g, int j0, int nc, const T* dkt, const T* dvt) {
    T* dkb = dk + (std::int64_t(b) * Tn + j0) * s.ld_k + std::int64_t(g) * hd;
    T* dvb = dv + (std::int64_t(b) * Tn + j0) * s.ld_v + std::int64_t(g) * hd;
    for (int c = 0; c < nc; ++c)
      for (int d = 0; d < hd; ++d) {
        dkb[c * s.ld_k + d] = dkt[c * hd + d];
        dvb[c * s.ld_v + d] = dvt[c * hd + d];
      }
  };

  // One pass, when there are (b, kv head) pairs enough for the threads: a task owns a pair, so it
  // can sum dQ of the group's query heads as well as dK, dV over its key tiles, and P, dS are
  // computed once per tile instead of once for dK/dV and again for dQ (two of the seven tile
  // products and half the exponentials). Without a sliding window both schedules cut the same
  // tiles and sum every element in the same order, so the results are the two-pass ones bit for
  // bit (and do not depend on the thread count); a window keeps the two passes.
  const std::int64_t pairs = std::int64_t(B) * KV;
  if (m.window == 0 && pairs >= 2 * std::int64_t(nthreads) &&
      da::flash_backward_schedule_used == da::flash_backward_schedule::automatic) {
#pragma omp parallel num_threads(nthreads)
    {
      std::vector<T> kt_buf(std::size_t(hd) * BC), vt_buf(std::size_t(hd) * BC), p_buf(std::size_t(BR) * BC),
          ds_buf(std::size_t(BR) * BC), dk_buf(std::size_t(BC) * hd), dv_buf(std::size_t(BC) * hd);
      T *kt = kt_buf.data(), *vt = vt_buf.data(), *P = p_buf.data(), *dS = ds_buf.data();
      T *dkt = dk_buf.data(), *dvt = dv_buf.data();
#pragma omp for schedule(dynamic)
      for (std::int64_t task = 0; task < pairs; ++task) {
        const int b = int(task / KV), g = int(task % KV);
        for (int h = g * G; h < (g + 1) * G; ++h)
          for (int t = 0; t < Tn; ++t) {
            T* row = dq + (std::int64_t(b) * Tn + t) * s.ld_q + std::int64_t(h) * hd;
            for (int d = 0; d < hd; ++d) row[d] = T(0);
          }
        for (int jt = 0; jt < ktiles; ++jt) {
          const int j0 = jt * BC, nc = std::min(Tn, j0 + BC) - j0;
          da::load_transposed<T, HeadDim>(k + (std::int64_t(b) * Tn + j0) * s.ld_k + std::int64_t(g) * hd, s.ld_k, nc,
                                          hd, kt);
          da::load_transposed<T, HeadDim>(v + (std::int64_t(b) * Tn + j0) * s.ld_v + std::int64_t(g) * hd, s.ld_v, nc,
                                          hd, vt);
          for (int x = 0; x < BC * hd; ++x) dkt[x] = dvt[x] = T(0);
          for (int h = g * G; h < (g + 1) * G; ++h)
            key_tile(b, g, h, j0, nc, kt, vt, P, dS, dkt, dvt,
                     dq + std::int64_t(b) * Tn * s.ld_q + std::int64_t(h) * hd);
          store_key_tile(b, g, j0, nc, dkt, dvt);
        }
      }
    }
    return;
  }

  // Pass 1: dK, dV. One task per (b, kv head, key tile); it loops the group's query heads and
  // the query tiles that see the key tile, so no two tasks write the same element.
  const std::int64_t ktasks = std::int64_t(B) * KV * ktiles;
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<T> kt_buf(std::size_t(hd) * BC), vt_buf(std::size_t(hd) * BC),
        p_buf(std::size_t(BR) * BC), ds_buf(std::size_t(BR) * BC), dk_buf(std::size_t(BC) * hd),
        dv_buf(std::size_t(BC) * hd);
    T *kt = kt_buf.data(), *vt = vt_buf.data(), *P = p_buf.data(), *dS = ds_buf.data();
    T *dkt = dk_buf.data(), *dvt = dv_buf.data();
#pragma omp for schedule(dynamic)
    for (std::int64_t task = 0; task < ktasks; ++task) {
      const int jt = int(task % ktiles);
      const int bg = int(task / ktiles);
      const int b = bg / KV, g = bg % KV;
      const int j0 = jt * BC, j1 = std::min(Tn, j0 + BC), nc = j1 - j0;
      const T* kb = k + (std::int64_t(b) * Tn + j0) * s.ld_k + std::int64_t(g) * hd;
      const T* vb = v + (std::int64_t(b) * Tn + j0) * s.ld_v + std::int64_t(g) * hd;
      da::load_transposed<T, HeadDim>(kb, s.ld_k, nc, hd, kt);
      da::load_transposed<T, HeadDim>(vb, s.ld_v, nc, hd, vt);
      for (int x = 0; x < BC * hd; ++x) dkt[x] = dvt[x] = T(0);
      for (int h = g * G; h < (g + 1) * G; ++h) key_tile(b, g, h, j0, nc, kt, vt, P, dS, dkt, dvt, nullptr);
      store_key_tile(b, g, j0, nc, dkt, dvt);
    }
  }

  // Pass 2: dQ. One task per (b, query head, query tile).
  const int qtiles = (Tn + BR - 1) / BR;
  const std::int64_t qtasks = std::int64_t(B) * H * qtiles;
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<T> kt_buf(std::size_t(hd) * BC), vt_buf(std::size_t(hd) * BC),
        p_buf(std::size_t(BR) * BC), ds_buf(std::size_t(BR) * BC), dq_buf(std::size_t(BR) * hd);
    T *kt = kt_buf.data(), *vt = vt_buf.data(), *P = p_buf.data(), *dS = ds_buf.data();
    T* dqt = dq_buf.data();
#pragma omp for schedule(dynamic)
    for (std::int64_t task = 0; task < qtasks; ++task) {
      const int qt = qtiles - 1 - int(task % qtiles);
      const int bh = int(task / qtiles);
      const int b = bh / H, h = bh % H, g = h / G;
      const int i0 = qt * BR, i1 = std::min(Tn, i0 + BR), nr = i1 - i0;
      const T* kb = k + std::int64_t(b) * Tn * s.ld_k + std::int64_t(g) * hd;
      const T* vb = v + std::int64_t(b) * Tn * s.ld_v + std::int64_t(g) * hd;
      for (int x = 0; x < nr * hd; ++x) dqt[x] = T(0);
      const int jbeg = bd.lo(i0), jend = bd.hi(i1 - 1);
      for (int j0 = jbeg; j0 < jend; j0 += BC) {
        const int nc = std::min(jend, j0 + BC) - j0;
        da::load_transposed<T, HeadDim>(kb + std::int64_t(j0) * s.ld_k, s.ld_k, nc, hd, kt);
        da::load_transposed<T, HeadDim>(vb + std::int64_t(j0) * s.ld_v, s.ld_v, nc, hd, vt);
        tile(b, h, i0, nr, j0, nc, kt, vt, P, dS);
        if (fast) {  // dQ += dS·K
          da::tile_gemm<HeadDim>(nr, nc, dS, BC, 1, kb + std::int64_t(j0) * s.ld_k, s.ld_k, dqt, hd, true);
          continue;
        }
        for (int r = 0; r < nr; ++r) {
          const T* dr = dS + r * BC;
          T* dqr = dqt + r * hd;
          for (int c = 0; c < nc; ++c)
            if (dr[c] != T(0))
              da::axpy<T, HeadDim>(dr[c], kb + std::int64_t(j0 + c) * s.ld_k, dqr, hd);
        }
      }
      T* dqb = dq + (std::int64_t(b) * Tn + i0) * s.ld_q + std::int64_t(h) * hd;
      for (int r = 0; r < nr; ++r)
        for (int d = 0; d < hd; ++d) dqb[r * s.ld_q + d] = dqt[r * hd + d];
    }
  }
}

}  // namespace tfm::nn
