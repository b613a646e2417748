// tfm/nn/attention_cuda.cuh — CUDA attention kernels, forward and backward, with the semantics of
// nn/attention_host.hpp (layouts, strides, masks, sliding window, ALiBi, GQA/MQA, saved stats).
//
//  * naive: materialises P[B][H][T][T] (the reference); its backward needs a second T×T array
//    (dS) as scratch: attention_naive_cuda_scratch_size.
//  * flash: FlashAttention-2 style tiles with an online softmax, fp32 math. Forward saves the
//    logsumexp [B][H][T]. Backward: D = rowsum(dO∘O) (scratch [B][H][T]), then one block per
//    (b, kv head, key tile) accumulates dK, dV of its keys over the query tiles and heads of the
//    group; dQ is accumulated with atomicAdd (so dQ is not bitwise deterministic).
//    Tiles outside the band of allowed keys (causal, window) are never visited.
//  * bf16 flash: the same kernels reading __nv_bfloat16 q, k, v, o, dO and writing bf16 o, dq,
//    dk, dv; all arithmetic, the lse and the dQ accumulation are fp32 (CUDA cores, no MMA).
//  * bf16 MMA forward (hd 64, 128): tensor cores (mma.sync m16n8k16, fp32 accumulators), 64
//    query rows per block of 4 warps, 64-key tiles; P is rounded to bf16 before P·V, so the
//    output differs from the fp32-math kernel by about bf16 rounding. attention_flash_forward_bf16
//    uses it for hd 64 / 128 unless TFM_FLASH_MMA=0; _mma / _simt pick one explicitly.
//  * bf16 MMA backward (hd 64, 128): one block of 4 warps per (b, kv head, 64-key tile), each
//    warp keeping dK, dV of 16 keys in registers; Sᵀ, dPᵀ, dV, dK and dQ on tensor cores, P and
//    dS rounded to bf16 before their products, dQ added in fp32 with atomicAdd.
//    attention_flash_backward_bf16 uses it for hd 64 / 128 unless TFM_FLASH_MMA=0.
//
// Head sizes: the kernels are instantiated for a padded head size HDMAX in {32, 64, 128, 256}
// (the smallest that holds hd; shared tiles are zero-padded), so hd = 64 and 128 run without
// padding and any hd <= 256 (8, 6, ...) works. All calls are asynchronous on `stream`.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <type_traits>

#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/core/error.hpp"
// config.hpp before attention_host.hpp: config.hpp names attn::… from inside tfm::nn::detail,
// where attention_host.hpp's detail::attn would otherwise be found first.
#include "tfm/nn/config.hpp"
#include "tfm/nn/attention_host.hpp"

namespace tfm::nn {

// Scratch (elements of T) of the CUDA backward passes.
inline std::size_t attention_naive_cuda_scratch_size(const attention_shape& s) { return naive_probs_size(s); }
inline std::size_t attention_flash_cuda_scratch_size(const attention_shape& s) {
  return std::size_t(s.batch) * s.heads * s.seq;
}
// The bf16 backward accumulates dQ in fp32: D [B][H][T] then dQ [B][T][H][hd] (floats).
inline std::size_t attention_flash_bf16_scratch_floats(const attention_shape& s) {
  return std::size_t(s.batch) * s.heads * s.seq + std::size_t(s.batch) * s.seq * s.heads * s.head_dim;
}

namespace detail::attn_cuda {

inline constexpr int fwd_warps = 4;     // warps per forward block
inline constexpr int fwd_rpw = 4;       // query rows per warp
inline constexpr int fwd_br = fwd_warps * fwd_rpw;  // 16 query rows per block
inline constexpr int bc = 32;           // keys per tile (one per lane)
inline constexpr int bwd_threads = 128;
inline constexpr int bwd_r = 32;        // query rows per backward chunk

// Row i attends to keys [lo(i), hi(i)) (attention_host.hpp's band, usable on the device).
struct band {
  int T;
  bool causal;
  int W;
  TFM_HOST_DEVICE int lo(int i) const { return W > 0 ? (i - W + 1 > 0 ? i - W + 1 : 0) : 0; }
  TFM_HOST_DEVICE int hi(int i) const {
    if (causal) return i + 1 < T ? i + 1 : T;
    return W > 0 ? (i + W < T ? i + W : T) : T;
  }
  TFM_HOST_DEVICE int row_begin(int j0) const {
    if (causal) return j0;
    return W > 0 ? (j0 - W + 1 > 0 ? j0 - W + 1 : 0) : 0;
  }
  TFM_HOST_DEVICE int row_end(int j1) const { return W > 0 ? (j1 + W - 1 < T ? j1 + W - 1 : T) : T; }
};

// docs/model.md's ALiBi slope of head h of H (double math, as alibi_slopes()).
TFM_HOST_DEVICE float alibi_slope(int h, int heads) {
  int n = 1;
  while (n * 2 <= heads) n *= 2;
  if (h < n) return static_cast<float>(exp2(-8.0 * (h + 1) / n));
  const int k = h - n;
  return static_cast<float>(exp2(-8.0 * (2 * k + 1) / (2.0 * n)));
}

struct params {
  int B, T, H, KV, hd;
  std::int64_t ld_q, ld_k, ld_v, ld_o;  // ld_o: H·hd (out, dout)
  float scale;
  bool alibi;
  band bd;
};

template <class T>
TFM_DEVICE float ld(const T* p) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    return __bfloat162float(*p);
  else
    return static_cast<float>(*p);
}
template <class T>
TFM_DEVICE void st(T* p, float v) {
  if constexpr (std::is_same_v<T, __nv_bfloat16>)
    *p = __float2bfloat16(v);
  else
    *p = static_cast<T>(v);
}

TFM_DEVICE float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
TFM_DEVICE float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Block-wide sum / max over blockDim.x threads (a multiple of 32, at most 1024). `red` holds 32
// floats of shared memory. Every thread gets the result.
TFM_DEVICE float block_sum(float v, float* red) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_sum(v);
  __syncthreads();  // red may still be read by a previous reduction
  if (lane == 0) red[w] = v;
  __syncthreads();
  float r = lane < nw ? red[lane] : 0.0f;
  return warp_sum(r);
}
TFM_DEVICE float block_max(float v, float* red) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  v = warp_max(v);
  __syncthreads();
  if (lane == 0) red[w] = v;
  __syncthreads();
  float r = lane < nw ? red[lane] : -INFINITY;
  return warp_max(r);
}

// ------------------------------------------------------------------------------- naive
// One block per (b, h, i): scores of row i, softmax, written to P (0 outside the band).
template <class T>
__global__ void naive_probs_kernel(params p, const T* q, const T* k, T* probs) {
  __shared__ float red[32];
  const std::int64_t row = blockIdx.x;  // (b·H + h)·T + i
  const int i = int(row % p.T), h = int((row / p.T) % p.H), b = int(row / (std::int64_t(p.T) * p.H));
  const int g = h / (p.H / p.KV);
  const float slope = p.alibi ? alibi_slope(h, p.H) : 0.0f;
  const T* qi = q + (std::int64_t(b) * p.T + i) * p.ld_q + std::int64_t(h) * p.hd;
  const T* kb = k + std::int64_t(b) * p.T * p.ld_k + std::int64_t(g) * p.hd;
  T* pr = probs + row * p.T;
  const int lo = p.bd.lo(i), hi = p.bd.hi(i);
  float mx = -INFINITY;
  for (int j = threadIdx.x; j < p.T; j += blockDim.x) {
    if (j >= lo && j < hi) {
      const T* kj = kb + std::int64_t(j) * p.ld_k;
      float s = 0;
      for (int d = 0; d < p.hd; ++d) s += float(qi[d]) * float(kj[d]);
      s = s * p.scale - slope * float(i > j ? i - j : j - i);
      pr[j] = T(s);
      mx = fmaxf(mx, s);
    }
  }
  mx = block_max(mx, red);
  float sum = 0;
  for (int j = threadIdx.x; j < p.T; j += blockDim.x) {
    if (j >= lo && j < hi) {
      const float e = expf(float(pr[j]) - mx);
      pr[j] = T(e);
      sum += e;
    }
  }
  sum = block_sum(sum, red);
  const float inv = hi > lo ? 1.0f / sum : 0.0f;
  for (int j = threadIdx.x; j < p.T; j += blockDim.x) pr[j] = (j >= lo && j < hi) ? T(float(pr[j]) * inv) : T(0);
}

// One thread per output element (b, i, h, d): o = Σ_j P_ij v_j.
template <class T>
__global__ void naive_out_kernel(params p, const T* probs, const T* v, T* out) {
  const std::int64_t n = std::int64_t(p.B) * p.T * p.H * p.hd;
  for (std::int64_t idx = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += std::int64_t(gridDim.x) * blockDim.x) {
    const int d = int(idx % p.hd), h = int((idx / p.hd) % p.H);
    const int i = int((idx / (std::int64_t(p.hd) * p.H)) % p.T), b = int(idx / (std::int64_t(p.hd) * p.H * p.T));
    const int g = h / (p.H / p.KV);
    const T* pr = probs + ((std::int64_t(b) * p.H + h) * p.T + i) * p.T;
    const T* vb = v + std::int64_t(b) * p.T * p.ld_v + std::int64_t(g) * p.hd + d;
    float acc = 0;
    for (int j = p.bd.lo(i), hi = p.bd.hi(i); j < hi; ++j) acc += float(pr[j]) * float(vb[std::int64_t(j) * p.ld_v]);
    out[idx] = T(acc);
  }
}

// One block per (b, h, i): dP_ij = dO_i·v_j, D_i = Σ_j P_ij dP_ij, dS_ij = P_ij (dP_ij − D_i)·scale.
template <class T>
__global__ void naive_ds_kernel(params p, const T* v, const T* probs, const T* dout, T* ds) {
  __shared__ float red[32];
  const std::int64_t row = blockIdx.x;
  const int i = int(row % p.T), h = int((row / p.T) % p.H), b = int(row / (std::int64_t(p.T) * p.H));
  const int g = h / (p.H / p.KV);
  const T* doi = dout + (std::int64_t(b) * p.T + i) * p.ld_o + std::int64_t(h) * p.hd;
  const T* vb = v + std::int64_t(b) * p.T * p.ld_v + std::int64_t(g) * p.hd;
  const T* pr = probs + row * p.T;
  T* dr = ds + row * p.T;
  const int lo = p.bd.lo(i), hi = p.bd.hi(i);
  float Di = 0;
  for (int j = threadIdx.x; j < p.T; j += blockDim.x) {
    float dp = 0;
    if (j >= lo && j < hi) {
      const T* vj = vb + std::int64_t(j) * p.ld_v;
      for (int d = 0; d < p.hd; ++d) dp += float(doi[d]) * float(vj[d]);
    }
    dr[j] = T(dp);
    Di += float(pr[j]) * dp;
  }
  Di = block_sum(Di, red);
  for (int j = threadIdx.x; j < p.T; j += blockDim.x)
    dr[j] = (j >= lo && j < hi) ? T(float(pr[j]) * (float(dr[j]) - Di) * p.scale) : T(0);
}

// One thread per dq element (b, i, h, d): dq = Σ_j dS_ij k_j.
template <class T>
__global__ void naive_dq_kernel(params p, const T* k, const T* ds, T* dq) {
  const std::int64_t n = std::int64_t(p.B) * p.T * p.H * p.hd;
  for (std::int64_t idx = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += std::int64_t(gridDim.x) * blockDim.x) {
    const int d = int(idx % p.hd), h = int((idx / p.hd) % p.H);
    const int i = int((idx / (std::int64_t(p.hd) * p.H)) % p.T), b = int(idx / (std::int64_t(p.hd) * p.H * p.T));
    const int g = h / (p.H / p.KV);
    const T* dr = ds + ((std::int64_t(b) * p.H + h) * p.T + i) * p.T;
    const T* kb = k + std::int64_t(b) * p.T * p.ld_k + std::int64_t(g) * p.hd + d;
    float acc = 0;
    for (int j = p.bd.lo(i), hi = p.bd.hi(i); j < hi; ++j) acc += float(dr[j]) * float(kb[std::int64_t(j) * p.ld_k]);
    dq[(std::int64_t(b) * p.T + i) * p.ld_q + std::int64_t(h) * p.hd + d] = T(acc);
  }
}

// One thread per (b, j, g, d): dk = Σ_{h of g} Σ_i dS_ij q_i, dv = Σ_{h of g} Σ_i P_ij dO_i.
template <class T>
__global__ void naive_dkv_kernel(params p, const T* q, const T* probs, const T* dout, const T* ds, T* dk, T* dv) {
  const std::int64_t n = std::int64_t(p.B) * p.T * p.KV * p.hd;
  const int G = p.H / p.KV;
  for (std::int64_t idx = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += std::int64_t(gridDim.x) * blockDim.x) {
    const int d = int(idx % p.hd), g = int((idx / p.hd) % p.KV);
    const int j = int((idx / (std::int64_t(p.hd) * p.KV)) % p.T), b = int(idx / (std::int64_t(p.hd) * p.KV * p.T));
    const int ib = p.bd.row_begin(j), ie = p.bd.row_end(j + 1);
    float ak = 0, av = 0;
    for (int h = g * G; h < (g + 1) * G; ++h) {
      const std::int64_t base = (std::int64_t(b) * p.H + h) * p.T;
      const T* qb = q + std::int64_t(b) * p.T * p.ld_q + std::int64_t(h) * p.hd + d;
      const T* dob = dout + std::int64_t(b) * p.T * p.ld_o + std::int64_t(h) * p.hd + d;
      for (int i = ib; i < ie; ++i) {
        const std::int64_t e = (base + i) * p.T + j;
        ak += float(ds[e]) * float(qb[std::int64_t(i) * p.ld_q]);
        av += float(probs[e]) * float(dob[std::int64_t(i) * p.ld_o]);
      }
    }
    const std::int64_t row = std::int64_t(b) * p.T + j;
    dk[row * p.ld_k + std::int64_t(g) * p.hd + d] = T(ak);
    dv[row * p.ld_v + std::int64_t(g) * p.hd + d] = T(av);
  }
}

// ------------------------------------------------------------------------------- flash
// Forward: one block per (b, h, tile of fwd_br query rows); fwd_warps warps, each owning fwd_rpw
// rows. Per key tile of bc keys (K, V in shared memory, zero-padded to HDMAX), lane c scores key
// c for each of its warp's rows; the online softmax runs across the warp; lane l accumulates
// output dims d = l + 32·x.
// Dynamic shared memory: Q [fwd_br][HDMAX], K [bc][HDMAX + 1], V [bc][HDMAX].
template <int HDMAX>
constexpr std::size_t fwd_smem_bytes() {
  return sizeof(float) * (std::size_t(fwd_br) * HDMAX + std::size_t(bc) * (HDMAX + 1) + std::size_t(bc) * HDMAX);
}

template <int HDMAX, class TI, class TO>
__global__ void __launch_bounds__(fwd_warps * 32)
    flash_fwd_kernel(params p, const TI* __restrict__ q, const TI* __restrict__ k, const TI* __restrict__ v,
                     TO* __restrict__ out, float* __restrict__ lse) {
  constexpr int NX = HDMAX / 32;  // output dims per lane
  constexpr int KS = HDMAX + 1;   // K row stride in shared memory (no bank conflicts)
  extern __shared__ float smem[];
  float* Qs = smem;                      // [fwd_br][HDMAX]
  float* Ks = Qs + fwd_br * HDMAX;       // [bc][KS]
  float* Vs = Ks + bc * KS;              // [bc][HDMAX]

  const int qtiles = (p.T + fwd_br - 1) / fwd_br;
  const int qt = int(blockIdx.x % qtiles);
  const int bh = int(blockIdx.x / qtiles);
  const int b = bh / p.H, h = bh % p.H, g = h / (p.H / p.KV);
  const int i0 = qt * fwd_br, i1 = min(p.T, i0 + fwd_br);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const float slope = p.alibi ? alibi_slope(h, p.H) : 0.0f;

  // Q rows of the tile (zero beyond hd and beyond T).
  for (int e = threadIdx.x; e < fwd_br * HDMAX; e += blockDim.x) {
    const int r = e / HDMAX, d = e % HDMAX, i = i0 + r;
    Qs[e] = (i < p.T && d < p.hd) ? ld(q + (std::int64_t(b) * p.T + i) * p.ld_q + std::int64_t(h) * p.hd + d) : 0.0f;
  }

  float m[fwd_rpw], l[fwd_rpw], acc[fwd_rpw][NX];
#pragma unroll
  for (int r = 0; r < fwd_rpw; ++r) {
    m[r] = -INFINITY;
    l[r] = 0.0f;
#pragma unroll
    for (int x = 0; x < NX; ++x) acc[r][x] = 0.0f;
  }

  const int jbeg = p.bd.lo(i0), jend = p.bd.hi(i1 - 1);
  const TI* kb = k + std::int64_t(b) * p.T * p.ld_k + std::int64_t(g) * p.hd;
  const TI* vb = v + std::int64_t(b) * p.T * p.ld_v + std::int64_t(g) * p.hd;
  for (int j0 = jbeg; j0 < jend; j0 += bc) {
    const int nc = min(bc, jend - j0);
    __syncthreads();  // previous tile fully used (and Qs written, on the first pass)
    for (int e = threadIdx.x; e < bc * HDMAX; e += blockDim.x) {
      const int c = e / HDMAX, d = e % HDMAX;
      const bool in = c < nc && d < p.hd;
      Ks[c * KS + d] = in ? ld(kb + std::int64_t(j0 + c) * p.ld_k + d) : 0.0f;
      Vs[c * HDMAX + d] = in ? ld(vb + std::int64_t(j0 + c) * p.ld_v + d) : 0.0f;
    }
    __syncthreads();
#pragma unroll
    for (int r = 0; r < fwd_rpw; ++r) {
      const int rr = warp * fwd_rpw + r, i = i0 + rr;
      if (i >= p.T) continue;  // warp-uniform
      const int j = j0 + lane;
      const bool valid = lane < nc && j >= p.bd.lo(i) && j < p.bd.hi(i);
      float s = -INFINITY;
      if (valid) {
        const float* qr = Qs + rr * HDMAX;
        const float* kr = Ks + lane * KS;
        float dot = 0.0f;
#pragma unroll 8
        for (int d = 0; d < HDMAX; ++d) dot += qr[d] * kr[d];
        s = dot * p.scale - slope * float(i > j ? i - j : j - i);
      }
      const float mx = warp_max(s);
      if (mx == -INFINITY) continue;  // no key of this tile for this row (warp-uniform)
      const float mnew = fmaxf(m[r], mx);
      const float alpha = m[r] == -INFINITY ? 0.0f : expf(m[r] - mnew);
      const float pj = valid ? expf(s - mnew) : 0.0f;
      l[r] = l[r] * alpha + warp_sum(pj);
      m[r] = mnew;
#pragma unroll
      for (int x = 0; x < NX; ++x) acc[r][x] *= alpha;
      for (int c = 0; c < nc; ++c) {
        const float pc = __shfl_sync(0xffffffffu, pj, c);
#pragma unroll
        for (int x = 0; x < NX; ++x) acc[r][x] += pc * Vs[c * HDMAX + lane + 32 * x];
      }
    }
  }

#pragma unroll
  for (int r = 0; r < fwd_rpw; ++r) {
    const int i = i0 + warp * fwd_rpw + r;
    if (i >= p.T) continue;
    TO* o = out + (std::int64_t(b) * p.T + i) * p.ld_o + std::int64_t(h) * p.hd;
    const bool any = l[r] > 0.0f;
    const float inv = any ? 1.0f / l[r] : 0.0f;
#pragma unroll
    for (int x = 0; x < NX; ++x) {
      const int d = lane + 32 * x;
      if (d < p.hd) st(o + d, any ? acc[r][x] * inv : 0.0f);
    }
    if (lane == 0) lse[(std::int64_t(b) * p.H + h) * p.T + i] = any ? m[r] + logf(l[r]) : -INFINITY;
  }
}

// ------------------------------------------------------------------------------- flash (bf16 MMA)
// Tensor-core forward for bf16 q, k, v and hd in {64, 128} (mma.sync m16n8k16, bf16 inputs, fp32
// accumulators; sm_80+). One block of mma_warps warps per (b, h, tile of mma_bm = 64 query rows);
// warp w owns rows 16w..16w+15 of the tile, and keeps their Q as A fragments in registers. Per
// key tile of mma_bn = 64 keys (K, V staged in shared memory as bf16 by cp.async, one buffer each:
// V of a tile loads during its S, K of the next tile during its P·V; rows padded by 8 elements so
// that the ldmatrix fragment loads are free of bank conflicts): S = Q·Kᵀ in fp32 C fragments, scaled,
// ALiBi-biased and masked per element; online softmax in fp32 (a row's 4 lanes combine their
// max / sum with __shfl_xor_sync); P is rounded to bf16 and reused from the C fragments as the A
// fragments of O += P·V. Fragment coordinates (PTX ISA, m16n8k16, gr = lane / 4, tq = lane % 4):
//   A (16×16, row): a0 (gr, 2tq..+1), a1 (gr + 8, 2tq..+1), a2 (gr, 2tq + 8..+9), a3 (gr + 8, 2tq + 8..+9)
//   B (16×8, col):  b0 (k = 2tq..+1, n = gr), b1 (k = 2tq + 8..+9, n = gr)
//   C (16×8):       c0, c1 (gr, 2tq..+1), c2, c3 (gr + 8, 2tq..+1)
// (the lower-indexed element of a pair in the low 16 bits of its register).
inline constexpr int mma_warps = 4;
inline constexpr int mma_bm = 16 * mma_warps;  // query rows per block
inline constexpr int mma_bn = 64;              // keys per tile

// c += a·b for one m16n8k16 bf16 tile.
TFM_DEVICE void mma_bf16_16816(float (&c)[4], const std::uint32_t (&a)[4], std::uint32_t b0, std::uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
#else
  (void)c;
  (void)a;
  (void)b0;
  (void)b1;
#if defined(__CUDA_ARCH__)
  __trap();  // bf16 mma.sync needs sm_80
#endif
#endif
}

// Two consecutive bf16 of shared memory (4-byte aligned) as one register.
TFM_DEVICE std::uint32_t lds32(const __nv_bfloat16* p) { return *reinterpret_cast<const std::uint32_t*>(p); }

// Fragment loads from shared memory with ldmatrix (TFM_FLASH_MMA_LDMATRIX, default 1), else with
// plain 16/32-bit loads (same fragments, more instructions).
#ifndef TFM_FLASH_MMA_LDMATRIX
#define TFM_FLASH_MMA_LDMATRIX 1
#endif

TFM_DEVICE unsigned smem_addr(const void* p) { return static_cast<unsigned>(__cvta_generic_to_shared(p)); }

// Four 8×8 b16 matrices; lanes 8m..8m+7 give the row addresses of matrix m; r[m] = matrix m's
// fragment: element (row lane / 4, cols 2(lane % 4), +1), or with Trans (rows 2(lane % 4), +1;
// col lane / 4).
template <bool Trans>
TFM_DEVICE void ldsm_x4(std::uint32_t (&r)[4], const __nv_bfloat16* row) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  if constexpr (Trans)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row)));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(smem_addr(row)));
#else
  (void)row;
  r[0] = r[1] = r[2] = r[3] = 0u;
#if defined(__CUDA_ARCH__)
  __trap();
#endif
#endif
}

// 16 bytes global → shared, asynchronously (sm_80+; a plain copy otherwise).
TFM_DEVICE void cp_async16(void* dst, const void* src) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(smem_addr(dst)), "l"(src) : "memory");
#else
  *reinterpret_cast<uint4*>(dst) = *reinterpret_cast<const uint4*>(src);
#endif
}
TFM_DEVICE void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
TFM_DEVICE void cp_async_wait_all() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_all;\n" ::: "memory");
#endif
}

// Two floats as a bf16 pair: lo in the low 16 bits.
TFM_DEVICE std::uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 x = __floats2bfloat162_rn(lo, hi);  // .x = lo (low half)
  return *reinterpret_cast<const std::uint32_t*>(&x);
}

// Rows [0, 64) of a [64][HD + 8] bf16 shared tile from src (token stride ld); rows >= n are zero.
// vec: src and ld allow 16-byte loads, issued as cp.async (one commit group; the caller waits
// with cp_async_wait_all and __syncthreads), else synchronous element loads (visible after
// __syncthreads).
template <int HD>
TFM_DEVICE void mma_load_tile(__nv_bfloat16* dst, const __nv_bfloat16* src, std::int64_t ld, int n, bool vec) {
  constexpr int S = HD + 8, C = HD / 8;  // row stride, 16-byte chunks per row
  static_assert(mma_bm == mma_bn, "one loader for Q and K/V tiles");
  if (vec) {
    for (int e = threadIdx.x; e < mma_bn * C; e += blockDim.x) {
      const int r = e / C, c = e % C;
      if (r < n)
        cp_async16(dst + r * S + c * 8, src + std::int64_t(r) * ld + c * 8);
      else
        *reinterpret_cast<uint4*>(dst + r * S + c * 8) = make_uint4(0u, 0u, 0u, 0u);
    }
    cp_async_commit();
  } else {
    const unsigned short* s16 = reinterpret_cast<const unsigned short*>(src);
    unsigned short* d16 = reinterpret_cast<unsigned short*>(dst);
    for (int e = threadIdx.x; e < mma_bn * HD; e += blockDim.x) {
      const int r = e / HD, c = e % HD;
      d16[r * S + c] = r < n ? s16[std::int64_t(r) * ld + c] : static_cast<unsigned short>(0);
    }
  }
}

// B fragments of S = Q·Kᵀ for n tiles n, n + 1 (keys 8n.., dims 16kk..) from Ks [keys][S]:
// r[0], r[1] = b0, b1 of tile n; r[2], r[3] = those of tile n + 1. b0: K[8n + gr][16kk + 2tq..+1].
template <int S>
TFM_DEVICE void mma_k_frags(std::uint32_t (&r)[4], const __nv_bfloat16* Ks, int n, int kk, int lane) {
#if TFM_FLASH_MMA_LDMATRIX
  // matrix m = lane / 8: keys 8(n + m / 2).., dims 16kk + 8(m % 2)..
  ldsm_x4<false>(r, Ks + ((n + (lane >> 4)) * 8 + (lane & 7)) * S + kk * 16 + ((lane >> 3) & 1) * 8);
#else
  const __nv_bfloat16* p = Ks + (n * 8 + (lane >> 2)) * S + kk * 16 + 2 * (lane & 3);
  r[0] = lds32(p);
  r[1] = lds32(p + 8);
  r[2] = lds32(p + 8 * S);
  r[3] = lds32(p + 8 * S + 8);
#endif
}

// B fragments of O += P·V for n tiles nt, nt + 1 (dims 8nt..) and keys 16kp.. from Vs [keys][S]
// (transposed access): b0 = (V[16kp + 2tq][8nt + gr], V[16kp + 2tq + 1][8nt + gr]), b1: keys + 8.
template <int S>
TFM_DEVICE void mma_v_frags(std::uint32_t (&r)[4], const __nv_bfloat16* Vs, int nt, int kp, int lane) {
#if TFM_FLASH_MMA_LDMATRIX
  // matrix m = lane / 8: keys 16kp + 8(m % 2).., dims 8(nt + m / 2)..; .trans
  ldsm_x4<true>(r, Vs + (kp * 16 + ((lane >> 3) & 1) * 8 + (lane & 7)) * S + (nt + (lane >> 4)) * 8);
#else
  const unsigned short* p =
      reinterpret_cast<const unsigned short*>(Vs) + (kp * 16 + 2 * (lane & 3)) * S + nt * 8 + (lane >> 2);
  auto pair = [](const unsigned short* x) { return std::uint32_t(x[0]) | (std::uint32_t(x[S]) << 16); };
  r[0] = pair(p);
  r[1] = pair(p + 8 * S);
  r[2] = pair(p + 8);
  r[3] = pair(p + 8 * S + 8);
#endif
}

// A fragment (16×16, rows r0 .. r0 + 15, cols c0 .. c0 + 15; r0 a multiple of 8, c0 of 16) of a
// row-major bf16 shared matrix with row stride S. mma_k_frags reads the same four 8×8 blocks as
// the B fragments of n tiles r0 / 8 and r0 / 8 + 1 ((rows 0-7, k lo), (rows 0-7, k hi), (rows
// 8-15, k lo), (rows 8-15, k hi)); an A fragment orders rows 8-15 before k hi.
template <int S>
TFM_DEVICE void mma_a_frags(std::uint32_t (&r)[4], const __nv_bfloat16* base, int r0, int c0, int lane) {
  mma_k_frags<S>(r, base, r0 / 8, c0 / 16, lane);
  const std::uint32_t t = r[1];
  r[1] = r[2];
  r[2] = t;
}

// A fragment of the 16×16 block (rows r0.., cols c0..; r0 a multiple of 8, c0 of 16) of Mᵀ, where
// M is stored row-major in shared memory with row stride S (A(r, c) = M[c][r]): mma_v_frags's
// blocks of n tiles r0 / 8, r0 / 8 + 1 and keys c0.., reordered the same way.
template <int S>
TFM_DEVICE void mma_at_frags(std::uint32_t (&r)[4], const __nv_bfloat16* m, int r0, int c0, int lane) {
  mma_v_frags<S>(r, m, r0 / 8, c0 / 16, lane);
  const std::uint32_t t = r[1];
  r[1] = r[2];
  r[2] = t;
}

template <int HD>
__global__ void __launch_bounds__(mma_warps * 32)
    flash_fwd_mma_kernel(params p, bool vec, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                         const __nv_bfloat16* __restrict__ v, __nv_bfloat16* __restrict__ out,
                         float* __restrict__ lse) {
  static_assert(HD == 64 || HD == 128, "MMA forward: head size 64 or 128");
  constexpr int S = HD + 8;       // shared row stride (elements); (S / 2) % 32 == 4: conflict-free
  constexpr int KD = HD / 16;     // k steps of Q·Kᵀ
  constexpr int NS = mma_bn / 8;  // n tiles of S
  constexpr int KP = mma_bn / 16; // k steps of P·V
  constexpr int NO = HD / 8;      // n tiles of O
  __shared__ __align__(16) __nv_bfloat16 Ks[mma_bn * S];  // Q of the block first, then K tiles
  __shared__ __align__(16) __nv_bfloat16 Vs[mma_bn * S];

  const int qtiles = (p.T + mma_bm - 1) / mma_bm;
  const int qt = qtiles - 1 - int(blockIdx.x % qtiles);  // the longest (causal) tiles first
  const int bh = int(blockIdx.x / qtiles);
  const int b = bh / p.H, h = bh % p.H, g = h / (p.H / p.KV);
  const int i0 = qt * mma_bm, ilast = min(p.T, i0 + mma_bm) - 1;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int gr = lane >> 2, tq = lane & 3;
  const int ra = i0 + warp * 16 + gr, rb = ra + 8;  // this thread's two rows (c0,c1 / c2,c3)
  const float slope = p.alibi ? alibi_slope(h, p.H) : 0.0f;

  // Q of the block (rows beyond T are zero) → A fragments.
  mma_load_tile<HD>(Ks, q + (std::int64_t(b) * p.T + i0) * p.ld_q + std::int64_t(h) * p.hd, p.ld_q, p.T - i0, vec);
  cp_async_wait_all();
  __syncthreads();
  std::uint32_t qf[KD][4];
#pragma unroll
  for (int kk = 0; kk < KD; ++kk) mma_a_frags<S>(qf[kk], Ks, warp * 16, kk * 16, lane);

  float o[NO][4];
#pragma unroll
  for (int nt = 0; nt < NO; ++nt) o[nt][0] = o[nt][1] = o[nt][2] = o[nt][3] = 0.0f;
  float ma = -INFINITY, mb = -INFINITY;  // running max of rows ra, rb (same in the row's 4 lanes)
  float la = 0.0f, lb = 0.0f;            // this lane's part of the running sums

  const int jbeg = p.bd.lo(i0), jend = p.bd.hi(ilast);
  const __nv_bfloat16* kb = k + std::int64_t(b) * p.T * p.ld_k + std::int64_t(g) * p.hd;
  const __nv_bfloat16* vb = v + std::int64_t(b) * p.T * p.ld_v + std::int64_t(g) * p.hd;
  // Pipeline (K, V one buffer each): K of tile t is loaded while P·V of tile t − 1 runs, V of
  // tile t while S of tile t runs.
  __syncthreads();  // Q fully read from Ks
  mma_load_tile<HD>(Ks, kb + std::int64_t(jbeg) * p.ld_k, p.ld_k, p.T - jbeg, vec);
  for (int j0 = jbeg; j0 < jend; j0 += mma_bn) {
    cp_async_wait_all();
    __syncthreads();  // K of this tile in Ks; P·V of the previous tile done with Vs
    mma_load_tile<HD>(Vs, vb + std::int64_t(j0) * p.ld_v, p.ld_v, p.T - j0, vec);

    // S = Q·Kᵀ (B fragment: key n = gr, dims k = 2tq..+1 (+8): contiguous in a K row).
    float sc[NS][4];
#pragma unroll
    for (int n = 0; n < NS; ++n) sc[n][0] = sc[n][1] = sc[n][2] = sc[n][3] = 0.0f;
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) {
#pragma unroll
      for (int n = 0; n < NS; n += 2) {
        std::uint32_t kf[4];
        mma_k_frags<S>(kf, Ks, n, kk, lane);
        mma_bf16_16816(sc[n], qf[kk], kf[0], kf[1]);
        mma_bf16_16816(sc[n + 1], qf[kk], kf[2], kf[3]);
      }
    }

    // Scale, ALiBi, masks (skipped where every row of the block sees every key of the tile).
    const bool full = j0 + mma_bn <= p.T && j0 >= p.bd.lo(i0 + mma_bm - 1) && j0 + mma_bn <= p.bd.hi(i0);
    float mxa = -INFINITY, mxb = -INFINITY;
#pragma unroll
    for (int n = 0; n < NS; ++n) {
#pragma unroll
      for (int c = 0; c < 4; ++c) {
        const int i = c < 2 ? ra : rb, j = j0 + n * 8 + 2 * tq + (c & 1);
        float s = sc[n][c] * p.scale;
        if (p.alibi) s -= slope * float(i > j ? i - j : j - i);
        if (!full && !(j < p.T && j >= p.bd.lo(i) && j < p.bd.hi(i))) s = -INFINITY;
        sc[n][c] = s;
      }
      mxa = fmaxf(mxa, fmaxf(sc[n][0], sc[n][1]));
      mxb = fmaxf(mxb, fmaxf(sc[n][2], sc[n][3]));
    }
    mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, 1));
    mxa = fmaxf(mxa, __shfl_xor_sync(0xffffffffu, mxa, 2));
    mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, 1));
    mxb = fmaxf(mxb, __shfl_xor_sync(0xffffffffu, mxb, 2));

    // Online softmax. A row that has seen no allowed key yet keeps m = -inf; it uses the
    // reference 0 so that exp(-inf - ref) = 0 and no NaN appears (its o and l stay 0).
    const float mna = fmaxf(ma, mxa), mnb = fmaxf(mb, mxb);
    const float refa = mna == -INFINITY ? 0.0f : mna, refb = mnb == -INFINITY ? 0.0f : mnb;
    const float ala = expf(ma - refa), alb = expf(mb - refb);  // 0 while m was -inf
    ma = mna;
    mb = mnb;
    la *= ala;
    lb *= alb;
#pragma unroll
    for (int nt = 0; nt < NO; ++nt) {
      o[nt][0] *= ala;
      o[nt][1] *= ala;
      o[nt][2] *= alb;
      o[nt][3] *= alb;
    }
#pragma unroll
    for (int n = 0; n < NS; ++n) {
      sc[n][0] = expf(sc[n][0] - refa);
      sc[n][1] = expf(sc[n][1] - refa);
      sc[n][2] = expf(sc[n][2] - refb);
      sc[n][3] = expf(sc[n][3] - refb);
      la += sc[n][0] + sc[n][1];
      lb += sc[n][2] + sc[n][3];
    }

    cp_async_wait_all();
    __syncthreads();  // V of this tile in Vs; S of this tile done with Ks
    if (j0 + mma_bn < jend)
      mma_load_tile<HD>(Ks, kb + std::int64_t(j0 + mma_bn) * p.ld_k, p.ld_k, p.T - j0 - mma_bn, vec);

    // O += P·V. A fragment of keys 16kp..16kp+15 = the C fragments of n tiles 2kp, 2kp + 1;
    // B fragment: keys k = 16kp + 2tq..+1 (+8) (rows of V), dim n = 8nt + gr.
#pragma unroll
    for (int kp = 0; kp < KP; ++kp) {
      const std::uint32_t pa[4] = {pack_bf16(sc[2 * kp][0], sc[2 * kp][1]), pack_bf16(sc[2 * kp][2], sc[2 * kp][3]),
                                   pack_bf16(sc[2 * kp + 1][0], sc[2 * kp + 1][1]),
                                   pack_bf16(sc[2 * kp + 1][2], sc[2 * kp + 1][3])};
#pragma unroll
      for (int nt = 0; nt < NO; nt += 2) {
        std::uint32_t vf[4];
        mma_v_frags<S>(vf, Vs, nt, kp, lane);
        mma_bf16_16816(o[nt], pa, vf[0], vf[1]);
        mma_bf16_16816(o[nt + 1], pa, vf[2], vf[3]);
      }
    }
  }

  // Row sums over the row's 4 lanes; out = O / l, lse = m + log l (fully masked rows: 0, -inf).
  la += __shfl_xor_sync(0xffffffffu, la, 1);
  la += __shfl_xor_sync(0xffffffffu, la, 2);
  lb += __shfl_xor_sync(0xffffffffu, lb, 1);
  lb += __shfl_xor_sync(0xffffffffu, lb, 2);
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int i = half == 0 ? ra : rb;
    if (i >= p.T) continue;
    const float l = half == 0 ? la : lb, mx = half == 0 ? ma : mb;
    const bool any = l > 0.0f;
    const float inv = any ? 1.0f / l : 0.0f;
    __nv_bfloat16* orow = out + (std::int64_t(b) * p.T + i) * p.ld_o + std::int64_t(h) * p.hd + 2 * tq;
#pragma unroll
    for (int nt = 0; nt < NO; ++nt) {
      orow[nt * 8] = __float2bfloat16(o[nt][2 * half] * inv);
      orow[nt * 8 + 1] = __float2bfloat16(o[nt][2 * half + 1] * inv);
    }
    if (tq == 0) lse[(std::int64_t(b) * p.H + h) * p.T + i] = any ? mx + logf(l) : -INFINITY;
  }
}

// Tensor-core backward (bf16 mma.sync, fp32 accumulators), HD = hd = 64 or 128. One block of
// mma_warps warps per (b, kv head g, key tile of mma_bn keys); warp w owns keys j0 + 16w .. +15
// and keeps their dK, dV [16][HD] in registers over every query head of the group and every
// query tile of mma_bm rows that sees the key tile. Per query tile (Q, dO in shared memory, lse
// and D beside them), per chunk of 16 queries c:
//   Sᵀ = K_w·Q_cᵀ, Pᵀ = exp(scale·Sᵀ − ALiBi − lse) (masked), dPᵀ = V_w·dO_cᵀ, dSᵀ = Pᵀ∘(dPᵀ − D),
//   dV_w += Pᵀ·dO_c, dK_w += dSᵀ·Q_c (Pᵀ, dSᵀ as bf16 A fragments straight from the accumulators),
//   and dSᵀ (bf16) goes to shared memory;
// then warp w takes queries 16w .. +15 of the tile: dQ += scale·dS·K, added to the fp32 dq_acc
// with atomicAdd (token stride ld_dq, head h at h·hd). dK is scaled once at the end.
// Dynamic shared memory: K, V, Q, dO [mma_bn][HD + 8] bf16, dSᵀ [mma_bn][mma_bm + 8] bf16,
// lse and D [mma_bm] floats.
inline constexpr int mma_ds_stride = mma_bm + 8;  // (72 / 2) % 32 == 4: conflict-free ldmatrix rows

template <int HD>
constexpr std::size_t bwd_mma_smem_bytes() {
  return sizeof(__nv_bfloat16) * (4 * std::size_t(mma_bn) * (HD + 8) + std::size_t(mma_bn) * mma_ds_stride) +
         sizeof(float) * 2 * std::size_t(mma_bm);
}

template <int HD>
__global__ void __launch_bounds__(mma_warps * 32)
    flash_bwd_mma_kernel(params p, bool vec, const __nv_bfloat16* __restrict__ q, const __nv_bfloat16* __restrict__ k,
                         const __nv_bfloat16* __restrict__ v, const __nv_bfloat16* __restrict__ dout,
                         const float* __restrict__ lse, const float* __restrict__ D, float* dq_acc,
                         std::int64_t ld_dq, __nv_bfloat16* __restrict__ dk, __nv_bfloat16* __restrict__ dv) {
  static_assert(HD == 64 || HD == 128, "MMA backward: head size 64 or 128");
  static_assert(mma_bm == mma_bn && mma_bn == 16 * mma_warps, "one 16-key slice per warp");
  constexpr int S = HD + 8, DS = mma_ds_stride;
  constexpr int KD = HD / 16;  // k steps over the head dimension
  constexpr int NO = HD / 8;   // n tiles over the head dimension
  constexpr int NC = mma_bm / 16;  // 16-query chunks per query tile
  constexpr int NH = HD == 128 ? 2 : 1, NOH = NO / NH;  // dQ in NH passes of NOH n tiles
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem_raw);
  __nv_bfloat16* Vs = Ks + mma_bn * S;
  __nv_bfloat16* Qs = Vs + mma_bn * S;
  __nv_bfloat16* Os = Qs + mma_bm * S;  // dO
  __nv_bfloat16* dSs = Os + mma_bm * S;  // dSᵀ [key][query]
  float* Ls = reinterpret_cast<float*>(dSs + mma_bn * DS);
  float* Ds = Ls + mma_bm;

  const int ktiles = (p.T + mma_bn - 1) / mma_bn;
  const int jt = ktiles - 1 - int(blockIdx.x % ktiles);  // causal: the tiles with most queries first
  const int bg = int(blockIdx.x / ktiles);
  const int b = bg / p.KV, g = bg % p.KV, G = p.H / p.KV;
  const int j0 = jt * mma_bn, j1 = min(p.T, j0 + mma_bn);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int gr = lane >> 2, tq = lane & 3;
  const int jw = j0 + 16 * warp;  // this warp's first key
  const int ja = jw + gr, jb = ja + 8;  // this thread's two keys (c0,c1 / c2,c3 rows)

  mma_load_tile<HD>(Ks, k + (std::int64_t(b) * p.T + j0) * p.ld_k + std::int64_t(g) * p.hd, p.ld_k, p.T - j0, vec);
  mma_load_tile<HD>(Vs, v + (std::int64_t(b) * p.T + j0) * p.ld_v + std::int64_t(g) * p.hd, p.ld_v, p.T - j0, vec);

  // hd 64: the warp's K and V A fragments stay in registers (they are the same for every query
  // tile); hd 128 has no registers left for them and reads them from shared memory each time.
  constexpr bool kv_in_regs = HD == 64;
  std::uint32_t kr[kv_in_regs ? KD : 1][4], vr[kv_in_regs ? KD : 1][4];
  if constexpr (kv_in_regs) {
    cp_async_wait_all();
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < KD; ++kk) {
      mma_a_frags<S>(kr[kk], Ks, 16 * warp, 16 * kk, lane);
      mma_a_frags<S>(vr[kk], Vs, 16 * warp, 16 * kk, lane);
    }
  }

  float dka[NO][4], dva[NO][4];
#pragma unroll
  for (int nt = 0; nt < NO; ++nt)
#pragma unroll
    for (int c = 0; c < 4; ++c) dka[nt][c] = dva[nt][c] = 0.0f;

  const int ibeg = p.bd.row_begin(j0), iend = p.bd.row_end(j1);
  for (int h = g * G; h < (g + 1) * G; ++h) {
    const float slope = p.alibi ? alibi_slope(h, p.H) : 0.0f;
    const __nv_bfloat16* qh = q + std::int64_t(b) * p.T * p.ld_q + std::int64_t(h) * p.hd;
    const __nv_bfloat16* oh = dout + std::int64_t(b) * p.T * p.ld_o + std::int64_t(h) * p.hd;
    const std::int64_t lrow = (std::int64_t(b) * p.H + h) * p.T;
    for (int i0 = ibeg; i0 < iend; i0 += mma_bm) {
      __syncthreads();  // the previous tile's Q, dO, dSᵀ, lse, D are fully used
      mma_load_tile<HD>(Qs, qh + std::int64_t(i0) * p.ld_q, p.ld_q, p.T - i0, vec);
      mma_load_tile<HD>(Os, oh + std::int64_t(i0) * p.ld_o, p.ld_o, p.T - i0, vec);
      for (int r = threadIdx.x; r < mma_bm; r += blockDim.x) {
        const bool in = i0 + r < p.T;
        Ls[r] = in ? lse[lrow + i0 + r] : -INFINITY;
        Ds[r] = in ? D[lrow + i0 + r] : 0.0f;
      }
      cp_async_wait_all();
      __syncthreads();
      // Every (query, key) pair of the tile allowed: no per-element mask.
      const int ilast = i0 + mma_bm - 1;
      const bool full = ilast < p.T && j0 + mma_bn <= p.T && j0 >= p.bd.lo(ilast) && j0 + mma_bn <= p.bd.hi(i0);

#pragma unroll 1
      for (int ch = 0; ch < NC; ++ch) {
        const int qc = i0 + 16 * ch;
        // No allowed pair between this warp's keys and the chunk's queries (lo, hi are monotone).
        const bool empty = qc >= p.T || p.bd.hi(min(qc + 15, p.T - 1)) <= jw || p.bd.lo(qc) >= jw + 16 || jw >= p.T;
        if (empty) {
          const std::uint32_t z = 0u;
#pragma unroll
          for (int n = 0; n < 2; ++n) {
            *reinterpret_cast<std::uint32_t*>(dSs + (16 * warp + gr) * DS + 16 * ch + 8 * n + 2 * tq) = z;
            *reinterpret_cast<std::uint32_t*>(dSs + (16 * warp + gr + 8) * DS + 16 * ch + 8 * n + 2 * tq) = z;
          }
          continue;
        }
        // Sᵀ and dPᵀ [16 keys][16 queries] (n tile n: queries qc + 8n ..).
        float st[2][4], dpt[2][4];
#pragma unroll
        for (int n = 0; n < 2; ++n)
#pragma unroll
          for (int c = 0; c < 4; ++c) st[n][c] = dpt[n][c] = 0.0f;
#pragma unroll
        for (int kk = 0; kk < KD; ++kk) {
          std::uint32_t qb[4], ob[4];
          mma_k_frags<S>(qb, Qs, 2 * ch, kk, lane);
          mma_k_frags<S>(ob, Os, 2 * ch, kk, lane);
          if constexpr (kv_in_regs) {
            mma_bf16_16816(st[0], kr[kk], qb[0], qb[1]);
            mma_bf16_16816(st[1], kr[kk], qb[2], qb[3]);
            mma_bf16_16816(dpt[0], vr[kk], ob[0], ob[1]);
            mma_bf16_16816(dpt[1], vr[kk], ob[2], ob[3]);
          } else {
            std::uint32_t ka[4], va[4];
            mma_a_frags<S>(ka, Ks, 16 * warp, 16 * kk, lane);
            mma_a_frags<S>(va, Vs, 16 * warp, 16 * kk, lane);
            mma_bf16_16816(st[0], ka, qb[0], qb[1]);
            mma_bf16_16816(st[1], ka, qb[2], qb[3]);
            mma_bf16_16816(dpt[0], va, ob[0], ob[1]);
            mma_bf16_16816(dpt[1], va, ob[2], ob[3]);
          }
        }
        // Pᵀ, dSᵀ (element c of n tile n: key c < 2 ? ja : jb, query qc + 8n + 2tq + (c & 1)).
#pragma unroll
        for (int n = 0; n < 2; ++n) {
#pragma unroll
          for (int c = 0; c < 4; ++c) {
            const int rq = 16 * ch + 8 * n + 2 * tq + (c & 1);  // query row within the tile
            const int i = i0 + rq, j = c < 2 ? ja : jb;
            const float L = Ls[rq];
            float s = st[n][c] * p.scale;
            if (p.alibi) s -= slope * float(i > j ? i - j : j - i);
            const bool ok = full || (i < p.T && j < p.T && j >= p.bd.lo(i) && j < p.bd.hi(i) && L > -INFINITY);
            const float pv = ok ? expf(s - L) : 0.0f;
            st[n][c] = pv;
            dpt[n][c] = pv * (dpt[n][c] - Ds[rq]);
          }
        }
        const std::uint32_t pa[4] = {pack_bf16(st[0][0], st[0][1]), pack_bf16(st[0][2], st[0][3]),
                                     pack_bf16(st[1][0], st[1][1]), pack_bf16(st[1][2], st[1][3])};
        const std::uint32_t sa[4] = {pack_bf16(dpt[0][0], dpt[0][1]), pack_bf16(dpt[0][2], dpt[0][3]),
                                     pack_bf16(dpt[1][0], dpt[1][1]), pack_bf16(dpt[1][2], dpt[1][3])};
        // dSᵀ to shared memory for dQ: rows = keys (local 16w + gr, + 8), cols = queries.
        *reinterpret_cast<std::uint32_t*>(dSs + (16 * warp + gr) * DS + 16 * ch + 2 * tq) = sa[0];
        *reinterpret_cast<std::uint32_t*>(dSs + (16 * warp + gr + 8) * DS + 16 * ch + 2 * tq) = sa[1];
        *reinterpret_cast<std::uint32_t*>(dSs + (16 * warp + gr) * DS + 16 * ch + 8 + 2 * tq) = sa[2];
        *reinterpret_cast<std::uint32_t*>(dSs + (16 * warp + gr + 8) * DS + 16 * ch + 8 + 2 * tq) = sa[3];
        // dV += Pᵀ·dO_c, dK += dSᵀ·Q_c (B: rows qc.. of dO / Q, transposed access).
#pragma unroll
        for (int nt = 0; nt < NO; nt += 2) {
          std::uint32_t ob[4], qb[4];
          mma_v_frags<S>(ob, Os, nt, ch, lane);
          mma_v_frags<S>(qb, Qs, nt, ch, lane);
          mma_bf16_16816(dva[nt], pa, ob[0], ob[1]);
          mma_bf16_16816(dva[nt + 1], pa, ob[2], ob[3]);
          mma_bf16_16816(dka[nt], sa, qb[0], qb[1]);
          mma_bf16_16816(dka[nt + 1], sa, qb[2], qb[3]);
        }
      }
      __syncthreads();  // dSᵀ of the whole tile in shared memory

      // dQ rows 16w .. +15 of the tile = dS·K: A = dS (from dSᵀ, transposed), B = K (transposed access).
      const int ra = i0 + 16 * warp + gr, rb = ra + 8;
      if (i0 + 16 * warp < p.T) {
#pragma unroll
        for (int hh = 0; hh < NH; ++hh) {
          float acc[NOH][4];
#pragma unroll
          for (int nt = 0; nt < NOH; ++nt) acc[nt][0] = acc[nt][1] = acc[nt][2] = acc[nt][3] = 0.0f;
#pragma unroll
          for (int kp = 0; kp < mma_bn / 16; ++kp) {
            std::uint32_t a[4];
            mma_at_frags<DS>(a, dSs, 16 * warp, 16 * kp, lane);
#pragma unroll
            for (int nt = 0; nt < NOH; nt += 2) {
              std::uint32_t kb[4];
              mma_v_frags<S>(kb, Ks, hh * NOH + nt, kp, lane);
              mma_bf16_16816(acc[nt], a, kb[0], kb[1]);
              mma_bf16_16816(acc[nt + 1], a, kb[2], kb[3]);
            }
          }
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const int i = half == 0 ? ra : rb;
            if (i >= p.T) continue;
            float* dqr = dq_acc + (std::int64_t(b) * p.T + i) * ld_dq + std::int64_t(h) * p.hd + hh * NOH * 8 + 2 * tq;
#pragma unroll
            for (int nt = 0; nt < NOH; ++nt) {
              atomicAdd(dqr + nt * 8, acc[nt][2 * half] * p.scale);
              atomicAdd(dqr + nt * 8 + 1, acc[nt][2 * half + 1] * p.scale);
            }
          }
        }
      }
    }
  }

  cp_async_wait_all();  // (no query tile: the K, V loads are still in flight)
  // dK (scaled), dV of this warp's keys.
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int j = half == 0 ? ja : jb;
    if (j >= p.T) continue;
    const std::int64_t tok = std::int64_t(b) * p.T + j;
    __nv_bfloat16* dkr = dk + tok * p.ld_k + std::int64_t(g) * p.hd + 2 * tq;
    __nv_bfloat16* dvr = dv + tok * p.ld_v + std::int64_t(g) * p.hd + 2 * tq;
#pragma unroll
    for (int nt = 0; nt < NO; ++nt) {
      dkr[nt * 8] = __float2bfloat16(dka[nt][2 * half] * p.scale);
      dkr[nt * 8 + 1] = __float2bfloat16(dka[nt][2 * half + 1] * p.scale);
      dvr[nt * 8] = __float2bfloat16(dva[nt][2 * half]);
      dvr[nt * 8 + 1] = __float2bfloat16(dva[nt][2 * half + 1]);
    }
  }
}

// D[b][h][i] = Σ_d dO·O, one warp per (b, h, i).
template <class TI>
__global__ void flash_rowdot_kernel(params p, const TI* out, const TI* dout, float* D) {
  const std::int64_t rows = std::int64_t(p.B) * p.H * p.T;
  const int lane = threadIdx.x & 31;
  const std::int64_t warps = std::int64_t(gridDim.x) * (blockDim.x >> 5);
  for (std::int64_t row = blockIdx.x * std::int64_t(blockDim.x >> 5) + (threadIdx.x >> 5); row < rows; row += warps) {
    const int i = int(row % p.T), h = int((row / p.T) % p.H), b = int(row / (std::int64_t(p.T) * p.H));
    const std::int64_t off = (std::int64_t(b) * p.T + i) * p.ld_o + std::int64_t(h) * p.hd;
    float s = 0.0f;
    for (int d = lane; d < p.hd; d += 32) s += ld(out + off + d) * ld(dout + off + d);
    s = warp_sum(s);
    if (lane == 0) D[row] = s;
  }
}

// Sets the head elements of a strided [B][T][H][hd] float array (token stride ld) to 0.
__global__ inline void zero_heads_kernel(std::int64_t rows, int width, std::int64_t ld, float* x) {
  const std::int64_t n = rows * width;
  for (std::int64_t idx = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += std::int64_t(gridDim.x) * blockDim.x)
    x[(idx / width) * ld + idx % width] = 0.0f;
}

// dq (bf16, stride ld) from the fp32 accumulator [rows][width].
__global__ inline void convert_heads_kernel(std::int64_t rows, int width, const float* acc, std::int64_t ld,
                                            __nv_bfloat16* dq) {
  const std::int64_t n = rows * width;
  for (std::int64_t idx = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; idx < n;
       idx += std::int64_t(gridDim.x) * blockDim.x)
    dq[(idx / width) * ld + idx % width] = __float2bfloat16(acc[idx]);
}

// Backward: one block (bwd_threads) per (b, kv head g, key tile of bc keys). K, V of the tile
// stay in shared memory; dK, dV of the tile live in registers (thread t owns elements
// e = t + bwd_threads·x of the [bc][HDMAX] tile). For every query head of the group and every
// chunk of bwd_r query rows that sees the tile: load Q, dO, lse, D of the chunk; compute P and dS
// [bwd_r][bc]; dV += Pᵀ·dO, dK += dSᵀ·Q; dQ_chunk += dS·K by atomicAdd into dq_acc (token
// stride ld_dq, head h at h·hd).
// Dynamic shared memory: K, V [bc][HDMAX + 1]; Q, dO [bwd_r][HDMAX]; P, dS [bwd_r][bc + 1];
// lse, D [bwd_r].
template <int HDMAX>
constexpr std::size_t bwd_smem_bytes() {
  return sizeof(float) * (2 * std::size_t(bc) * (HDMAX + 1) + 2 * std::size_t(bwd_r) * HDMAX +
                          2 * std::size_t(bwd_r) * (bc + 1) + 2 * std::size_t(bwd_r));
}

template <int HDMAX, class TI, class TO>
__global__ void __launch_bounds__(bwd_threads)
    flash_bwd_kernel(params p, const TI* __restrict__ q, const TI* __restrict__ k, const TI* __restrict__ v,
                     const TI* __restrict__ dout, const float* __restrict__ lse, const float* __restrict__ D,
                     float* dq_acc, std::int64_t ld_dq, TO* dk, TO* dv) {
  constexpr int KS = HDMAX + 1, PS = bc + 1;
  constexpr int NE = bc * HDMAX / bwd_threads;     // dK/dV elements per thread
  constexpr int NQ = bwd_r * HDMAX / bwd_threads;  // dQ elements per thread per chunk
  static_assert(bc * HDMAX % bwd_threads == 0 && bwd_r * HDMAX % bwd_threads == 0, "tile sizes");
  extern __shared__ float smem[];
  float* Ks = smem;                 // [bc][KS]
  float* Vs = Ks + bc * KS;         // [bc][KS]
  float* Qs = Vs + bc * KS;         // [bwd_r][HDMAX]
  float* Os = Qs + bwd_r * HDMAX;   // dO [bwd_r][HDMAX]
  float* Ps = Os + bwd_r * HDMAX;   // [bwd_r][PS]
  float* Ss = Ps + bwd_r * PS;      // dS [bwd_r][PS]
  float* Ls = Ss + bwd_r * PS;      // lse [bwd_r]
  float* Ds = Ls + bwd_r;           // D [bwd_r]

  const int ktiles = (p.T + bc - 1) / bc;
  const int jt = int(blockIdx.x % ktiles);
  const int bg = int(blockIdx.x / ktiles);
  const int b = bg / p.KV, g = bg % p.KV, G = p.H / p.KV;
  const int j0 = jt * bc, j1 = min(p.T, j0 + bc), nc = j1 - j0;
  const int t = threadIdx.x;

  for (int e = t; e < bc * HDMAX; e += bwd_threads) {
    const int c = e / HDMAX, d = e % HDMAX;
    const bool in = c < nc && d < p.hd;
    Ks[c * KS + d] = in ? ld(k + (std::int64_t(b) * p.T + j0 + c) * p.ld_k + std::int64_t(g) * p.hd + d) : 0.0f;
    Vs[c * KS + d] = in ? ld(v + (std::int64_t(b) * p.T + j0 + c) * p.ld_v + std::int64_t(g) * p.hd + d) : 0.0f;
  }
  float dka[NE], dva[NE];
#pragma unroll
  for (int x = 0; x < NE; ++x) dka[x] = dva[x] = 0.0f;

  const int ibeg = p.bd.row_begin(j0), iend = p.bd.row_end(j1);
  for (int h = g * G; h < (g + 1) * G; ++h) {
    const float slope = p.alibi ? alibi_slope(h, p.H) : 0.0f;
    for (int i0 = ibeg; i0 < iend; i0 += bwd_r) {
      const int nr = min(bwd_r, iend - i0);
      __syncthreads();  // the previous chunk is fully used (and K, V are written)
      for (int e = t; e < bwd_r * HDMAX; e += bwd_threads) {
        const int r = e / HDMAX, d = e % HDMAX;
        const bool in = r < nr && d < p.hd;
        const std::int64_t tok = std::int64_t(b) * p.T + i0 + r;
        Qs[e] = in ? ld(q + tok * p.ld_q + std::int64_t(h) * p.hd + d) : 0.0f;
        Os[e] = in ? ld(dout + tok * p.ld_o + std::int64_t(h) * p.hd + d) : 0.0f;
      }
      if (t < bwd_r) {
        const std::int64_t row = (std::int64_t(b) * p.H + h) * p.T + i0 + t;
        Ls[t] = t < nr ? lse[row] : -INFINITY;
        Ds[t] = t < nr ? D[row] : 0.0f;
      }
      __syncthreads();
      // P and dS: thread t takes key c = t % 32 and rows r = t / 32 + 4·x.
      {
        const int c = t & 31, j = j0 + c;
        for (int r = t >> 5; r < bwd_r; r += bwd_threads / 32) {
          const int i = i0 + r;
          const float L = Ls[r];
          const bool valid = r < nr && c < nc && (L > -INFINITY && L < INFINITY) && j >= p.bd.lo(i) && j < p.bd.hi(i);
          float pv = 0.0f, dsv = 0.0f;
          if (valid) {
            const float* qr = Qs + r * HDMAX;
            const float* dr = Os + r * HDMAX;
            const float* kr = Ks + c * KS;
            const float* vr = Vs + c * KS;
            float sk = 0.0f, dp = 0.0f;
#pragma unroll 8
            for (int d = 0; d < HDMAX; ++d) {
              sk += qr[d] * kr[d];
              dp += dr[d] * vr[d];
            }
            pv = expf(sk * p.scale - slope * float(i > j ? i - j : j - i) - L);
            dsv = pv * (dp - Ds[r]) * p.scale;
          }
          Ps[r * PS + c] = pv;
          Ss[r * PS + c] = dsv;
        }
      }
      __syncthreads();
      // dV += Pᵀ·dO, dK += dSᵀ·Q on the owned elements.
#pragma unroll
      for (int x = 0; x < NE; ++x) {
        const int e = t + bwd_threads * x, c = e / HDMAX, d = e % HDMAX;
        float av = 0.0f, ak = 0.0f;
        for (int r = 0; r < nr; ++r) {
          av += Ps[r * PS + c] * Os[r * HDMAX + d];
          ak += Ss[r * PS + c] * Qs[r * HDMAX + d];
        }
        dva[x] += av;
        dka[x] += ak;
      }
      // dQ of the chunk += dS·K.
#pragma unroll
      for (int x = 0; x < NQ; ++x) {
        const int e = t + bwd_threads * x, r = e / HDMAX, d = e % HDMAX;
        if (r < nr && d < p.hd) {
          float a = 0.0f;
          for (int c = 0; c < nc; ++c) a += Ss[r * PS + c] * Ks[c * KS + d];
          atomicAdd(dq_acc + (std::int64_t(b) * p.T + i0 + r) * ld_dq + std::int64_t(h) * p.hd + d, a);
        }
      }
    }
  }
#pragma unroll
  for (int x = 0; x < NE; ++x) {
    const int e = t + bwd_threads * x, c = e / HDMAX, d = e % HDMAX;
    if (c < nc && d < p.hd) {
      const std::int64_t tok = std::int64_t(b) * p.T + j0 + c;
      st(dk + tok * p.ld_k + std::int64_t(g) * p.hd + d, dka[x]);
      st(dv + tok * p.ld_v + std::int64_t(g) * p.hd + d, dva[x]);
    }
  }
}

inline params make_params(const attention_shape& s, const attention_mask& m) {
  params p;
  p.B = s.batch;
  p.T = s.seq;
  p.H = s.heads;
  p.KV = s.kv_heads;
  p.hd = s.head_dim;
  p.ld_q = s.ld_q;
  p.ld_k = s.ld_k;
  p.ld_v = s.ld_v;
  p.ld_o = std::int64_t(s.heads) * s.head_dim;
  p.scale = nn::detail::attn::scale_of<float>(m, s.head_dim);
  p.alibi = m.alibi;
  p.bd = band{s.seq, m.causal, m.window};
  return p;
}

inline unsigned grid_for(std::int64_t n, int threads) {
  const std::int64_t blocks = (n + threads - 1) / threads;
  return unsigned(blocks < 65536 * 8 ? (blocks > 0 ? blocks : 1) : 65536 * 8);
}

// Calls f(std::integral_constant<int, HDMAX>) with the padded head size for hd.
template <class F>
void dispatch_hd(int hd, const char* op, F&& f) {
  if (hd <= 32)
    f(std::integral_constant<int, 32>{});
  else if (hd <= 64)
    f(std::integral_constant<int, 64>{});
  else if (hd <= 128)
    f(std::integral_constant<int, 128>{});
  else if (hd <= 256)
    f(std::integral_constant<int, 256>{});
  else
    throw shape_error(::tfm::detail::concat(op, ": head size ", hd, " is above the CUDA kernels' limit of 256"));
}

template <int HeadDim>
void check(const attention_shape& s, const attention_mask& m, const char* op) {
  nn::detail::attn::check<HeadDim>(s, m, op);
  expects<shape_error>(std::int64_t(s.batch) * s.heads * ((s.seq + fwd_br - 1) / fwd_br) < (std::int64_t(1) << 31),
                       op, ": too many tiles for one grid");
}

template <int HDMAX, class TI, class TO>
void flash_forward_launch(const attention_shape& s, const attention_mask& m, const TI* q, const TI* k, const TI* v,
                          TO* out, float* lse, cudaStream_t stream) {
  const params p = make_params(s, m);
  if (s.batch == 0 || s.seq == 0) return;
  constexpr std::size_t smem = fwd_smem_bytes<HDMAX>();
  auto kern = flash_fwd_kernel<HDMAX, TI, TO>;
  TFM_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const std::int64_t blocks = std::int64_t(s.batch) * s.heads * ((s.seq + fwd_br - 1) / fwd_br);
  kern<<<unsigned(blocks), fwd_warps * 32, smem, stream>>>(p, q, k, v, out, lse);
  TFM_CUDA_CHECK(cudaGetLastError());
}

// Every token row of a bf16 [rows][ld] operand starts 16-byte aligned (the MMA kernels' cp.async
// loads), given its first row's pointer and its token stride.
inline bool rows16(const __nv_bfloat16* ptr, std::int64_t ld) {
  return reinterpret_cast<std::uintptr_t>(ptr) % 16 == 0 && ld % 8 == 0;
}

// The MMA forward (HD = hd = 64 or 128). 16-byte global loads where q, k, v and their token
// strides allow them, else element by element.
template <int HD>
void flash_forward_mma_launch(const attention_shape& s, const attention_mask& m, const __nv_bfloat16* q,
                              const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* out, float* lse,
                              cudaStream_t stream) {
  const params p = make_params(s, m);
  if (s.batch == 0 || s.seq == 0) return;
  const bool vec = rows16(q, s.ld_q) && rows16(k, s.ld_k) && rows16(v, s.ld_v);
  const std::int64_t blocks = std::int64_t(s.batch) * s.heads * ((s.seq + mma_bm - 1) / mma_bm);
  flash_fwd_mma_kernel<HD><<<unsigned(blocks), mma_warps * 32, 0, stream>>>(p, vec, q, k, v, out, lse);
  TFM_CUDA_CHECK(cudaGetLastError());
}

// TFM_FLASH_MMA=0 turns the MMA kernels off in attention_flash_forward_bf16 and
// attention_flash_backward_bf16 (read once).
inline bool flash_mma_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("TFM_FLASH_MMA");
    return !(e != nullptr && std::string_view(e) == "0");
  }();
  return on;
}

// Zeroes dq_acc (token stride ld_dq) and computes D = rowsum(dO ∘ O) [B][H][T]: what both
// backward kernels need first.
template <class TI>
void flash_backward_prologue(const attention_shape& s, const params& p, const TI* out, const TI* dout, float* D,
                             float* dq_acc, std::int64_t ld_dq, cudaStream_t stream) {
  const std::int64_t rows = std::int64_t(s.batch) * s.seq;
  const int width = s.heads * s.head_dim;
  zero_heads_kernel<<<grid_for(rows * width, 256), 256, 0, stream>>>(rows, width, ld_dq, dq_acc);
  TFM_CUDA_CHECK(cudaGetLastError());
  flash_rowdot_kernel<TI><<<grid_for(std::int64_t(s.batch) * s.heads * s.seq * 32, 256), 256, 0, stream>>>(
      p, out, dout, D);
  TFM_CUDA_CHECK(cudaGetLastError());
}

// The MMA backward (HD = hd = 64 or 128); 16-byte loads where q, k, v, dout and their strides allow.
template <int HD>
void flash_backward_mma_launch(const attention_shape& s, const attention_mask& m, const __nv_bfloat16* q,
                               const __nv_bfloat16* k, const __nv_bfloat16* v, const __nv_bfloat16* out,
                               const __nv_bfloat16* dout, const float* lse, float* D, float* dq_acc,
                               std::int64_t ld_dq, __nv_bfloat16* dk, __nv_bfloat16* dv, cudaStream_t stream) {
  const params p = make_params(s, m);
  if (s.batch == 0 || s.seq == 0) return;
  flash_backward_prologue(s, p, out, dout, D, dq_acc, ld_dq, stream);
  const bool vec = rows16(q, s.ld_q) && rows16(k, s.ld_k) && rows16(v, s.ld_v) && rows16(dout, p.ld_o);
  constexpr std::size_t smem = bwd_mma_smem_bytes<HD>();
  auto kern = flash_bwd_mma_kernel<HD>;
  TFM_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const std::int64_t blocks = std::int64_t(s.batch) * s.kv_heads * ((s.seq + mma_bn - 1) / mma_bn);
  kern<<<unsigned(blocks), mma_warps * 32, smem, stream>>>(p, vec, q, k, v, dout, lse, D, dq_acc, ld_dq, dk, dv);
  TFM_CUDA_CHECK(cudaGetLastError());
}

// dq_acc: fp32 dQ accumulator with token stride ld_dq (zeroed here); D: [B][H][T] floats.
template <int HDMAX, class TI, class TO>
void flash_backward_launch(const attention_shape& s, const attention_mask& m, const TI* q, const TI* k, const TI* v,
                           const TI* out, const TI* dout, const float* lse, float* D, float* dq_acc,
                           std::int64_t ld_dq, TO* dk, TO* dv, cudaStream_t stream) {
  const params p = make_params(s, m);
  if (s.batch == 0 || s.seq == 0) return;
  flash_backward_prologue(s, p, out, dout, D, dq_acc, ld_dq, stream);
  constexpr std::size_t smem = bwd_smem_bytes<HDMAX>();
  auto kern = flash_bwd_kernel<HDMAX, TI, TO>;
  TFM_CUDA_CHECK(cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const std::int64_t blocks = std::int64_t(s.batch) * s.kv_heads * ((s.seq + bc - 1) / bc);
  kern<<<unsigned(blocks), bwd_threads, smem, stream>>>(p, q, k, v, dout, lse, D, dq_acc, ld_dq, dk, dv);
  TFM_CUDA_CHECK(cudaGetLastError());
}

}  // namespace detail::attn_cuda

// ---------------------------------------------------------------------------- entry points
// T = float (the kernels compute in fp32). HeadDim: 0 (from the shape) or the static head size.

template <class T, int HeadDim = 0>
void attention_naive_forward_cuda(const attention_shape& s, const attention_mask& m, const T* q, const T* k,
                                  const T* v, T* out, T* probs, cudaStream_t stream) {
  static_assert(std::is_same_v<T, float>, "CUDA attention: T must be float");
  namespace ac = detail::attn_cuda;
  ac::check<HeadDim>(s, m, "attention_naive_forward_cuda");
  if (s.batch == 0 || s.seq == 0) return;
  const ac::params p = ac::make_params(s, m);
  const std::int64_t rows = std::int64_t(s.batch) * s.heads * s.seq;
  ac::naive_probs_kernel<T><<<unsigned(rows), 128, 0, stream>>>(p, q, k, probs);
  TFM_CUDA_CHECK(cudaGetLastError());
  ac::naive_out_kernel<T><<<ac::grid_for(rows * s.head_dim, 256), 256, 0, stream>>>(p, probs, v, out);
  TFM_CUDA_CHECK(cudaGetLastError());
}

// scratch: attention_naive_cuda_scratch_size(s) elements.
template <class T, int HeadDim = 0>
void attention_naive_backward_cuda(const attention_shape& s, const attention_mask& m, const T* q, const T* k,
                                   const T* v, const T* probs, const T* dout, T* dq, T* dk, T* dv, T* scratch,
                                   cudaStream_t stream) {
  static_assert(std::is_same_v<T, float>, "CUDA attention: T must be float");
  namespace ac = detail::attn_cuda;
  ac::check<HeadDim>(s, m, "attention_naive_backward_cuda");
  if (s.batch == 0 || s.seq == 0) return;
  const ac::params p = ac::make_params(s, m);
  const std::int64_t rows = std::int64_t(s.batch) * s.heads * s.seq;
  ac::naive_ds_kernel<T><<<unsigned(rows), 128, 0, stream>>>(p, v, probs, dout, scratch);
  TFM_CUDA_CHECK(cudaGetLastError());
  ac::naive_dq_kernel<T><<<ac::grid_for(rows * s.head_dim, 256), 256, 0, stream>>>(p, k, scratch, dq);
  TFM_CUDA_CHECK(cudaGetLastError());
  const std::int64_t kvn = std::int64_t(s.batch) * s.seq * s.kv_heads * s.head_dim;
  ac::naive_dkv_kernel<T><<<ac::grid_for(kvn, 256), 256, 0, stream>>>(p, q, probs, dout, scratch, dk, dv);
  TFM_CUDA_CHECK(cudaGetLastError());
}

// lse: [B][H][T].
template <class T, int HeadDim = 0>
void attention_flash_forward_cuda(const attention_shape& s, const attention_mask& m, const T* q, const T* k,
                                  const T* v, T* out, T* lse, cudaStream_t stream) {
  static_assert(std::is_same_v<T, float>, "CUDA attention: T must be float");
  namespace ac = detail::attn_cuda;
  ac::check<HeadDim>(s, m, "attention_flash_forward_cuda");
  ac::dispatch_hd(s.head_dim, "attention_flash_forward_cuda", [&](auto hdmax) {
    ac::flash_forward_launch<decltype(hdmax)::value, float, float>(s, m, q, k, v, out, lse, stream);
  });
}

// scratch: attention_flash_cuda_scratch_size(s) elements (D). dq is accumulated atomically.
template <class T, int HeadDim = 0>
void attention_flash_backward_cuda(const attention_shape& s, const attention_mask& m, const T* q, const T* k,
                                   const T* v, const T* out, const T* dout, const T* lse, T* dq, T* dk, T* dv,
                                   T* scratch, cudaStream_t stream) {
  static_assert(std::is_same_v<T, float>, "CUDA attention: T must be float");
  namespace ac = detail::attn_cuda;
  ac::check<HeadDim>(s, m, "attention_flash_backward_cuda");
  ac::dispatch_hd(s.head_dim, "attention_flash_backward_cuda", [&](auto hdmax) {
    ac::flash_backward_launch<decltype(hdmax)::value, float, float>(s, m, q, k, v, out, dout, lse, scratch, dq,
                                                                    s.ld_q, dk, dv, stream);
  });
}

// bf16 inputs and outputs, fp32 lse [B][H][T]; scratch: attention_flash_bf16_scratch_floats(s).
// attention_flash_forward_bf16 runs the tensor-core (MMA) forward for hd 64 and 128 unless the
// environment variable TFM_FLASH_MMA is "0" (read once), else the CUDA-core (SIMT) forward;
// _simt and _mma pick one. The MMA path rounds P to bf16 before P·V (as FlashAttention does), so
// its output differs from the fp32-math SIMT kernel by about bf16 rounding (the lse and the row
// sums stay fp32).
inline void attention_flash_forward_bf16_simt(const attention_shape& s, const attention_mask& m,
                                              const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                                              __nv_bfloat16* out, float* lse, cudaStream_t stream) {
  namespace ac = detail::attn_cuda;
  ac::check<0>(s, m, "attention_flash_forward_bf16_simt");
  ac::dispatch_hd(s.head_dim, "attention_flash_forward_bf16_simt", [&](auto hdmax) {
    ac::flash_forward_launch<decltype(hdmax)::value, __nv_bfloat16, __nv_bfloat16>(s, m, q, k, v, out, lse, stream);
  });
}
// hd 64 or 128 only (invalid_argument otherwise).
inline void attention_flash_forward_bf16_mma(const attention_shape& s, const attention_mask& m,
                                             const __nv_bfloat16* q, const __nv_bfloat16* k, const __nv_bfloat16* v,
                                             __nv_bfloat16* out, float* lse, cudaStream_t stream) {
  namespace ac = detail::attn_cuda;
  ac::check<0>(s, m, "attention_flash_forward_bf16_mma");
  if (s.head_dim == 64)
    ac::flash_forward_mma_launch<64>(s, m, q, k, v, out, lse, stream);
  else if (s.head_dim == 128)
    ac::flash_forward_mma_launch<128>(s, m, q, k, v, out, lse, stream);
  else
    throw invalid_argument(::tfm::detail::concat("attention_flash_forward_bf16_mma: head size ", s.head_dim,
                                                 " is not supported (the MMA kernel takes 64 or 128)"));
}
inline void attention_flash_forward_bf16(const attention_shape& s, const attention_mask& m, const __nv_bfloat16* q,
                                         const __nv_bfloat16* k, const __nv_bfloat16* v, __nv_bfloat16* out,
                                         float* lse, cudaStream_t stream) {
  if ((s.head_dim == 64 || s.head_dim == 128) && detail::attn_cuda::flash_mma_enabled())
    attention_flash_forward_bf16_mma(s, m, q, k, v, out, lse, stream);
  else
    attention_flash_forward_bf16_simt(s, m, q, k, v, out, lse, stream);
}
// The backward: the tensor-core (MMA) kernel for hd 64 and 128 unless TFM_FLASH_MMA is "0", else
// the CUDA-core one; _simt and _mma pick one. Both accumulate in fp32; the MMA kernel rounds P
// and dS to bf16 before its products (as FlashAttention-2 does).
inline void attention_flash_backward_bf16_simt(const attention_shape& s, const attention_mask& m,
                                               const __nv_bfloat16* q, const __nv_bfloat16* k,
                                               const __nv_bfloat16* v, const __nv_bfloat16* out,
                                               const __nv_bfloat16* dout, const float* lse, __nv_bfloat16* dq,
                                               __nv_bfloat16* dk, __nv_bfloat16* dv, float* scratch,
                                               cudaStream_t stream) {
  namespace ac = detail::attn_cuda;
  ac::check<0>(s, m, "attention_flash_backward_bf16_simt");
  if (s.batch == 0 || s.seq == 0) return;
  float* D = scratch;
  float* dq_acc = scratch + std::size_t(s.batch) * s.heads * s.seq;
  const std::int64_t width = std::int64_t(s.heads) * s.head_dim;
  ac::dispatch_hd(s.head_dim, "attention_flash_backward_bf16_simt", [&](auto hdmax) {
    ac::flash_backward_launch<decltype(hdmax)::value, __nv_bfloat16, __nv_bfloat16>(s, m, q, k, v, out, dout, lse, D,
                                                                                    dq_acc, width, dk, dv, stream);
  });
  const std::int64_t rows = std::int64_t(s.batch) * s.seq;
  ac::convert_heads_kernel<<<ac::grid_for(rows * width, 256), 256, 0, stream>>>(rows, int(width), dq_acc, s.ld_q, dq);
  TFM_CUDA_CHECK(cudaGetLastError());
}
// hd 64 or 128 only (invalid_argument otherwise).
inline void attention_flash_backward_bf16_mma(const attention_shape& s, const attention_mask& m,
                                              const __nv_bfloat16* q, const __nv_bfloat16* k,
                                              const __nv_bfloat16* v, const __nv_bfloat16* out,
                                              const __nv_bfloat16* dout, const float* lse, __nv_bfloat16* dq,
                                              __nv_bfloat16* dk, __nv_bfloat16* dv, float* scratch,
                                              cudaStream_t stream) {
  namespace ac = detail::attn_cuda;
  ac::check<0>(s, m, "attention_flash_backward_bf16_mma");
  if (s.head_dim != 64 && s.head_dim != 128)
    throw invalid_argument(::tfm::detail::concat("attention_flash_backward_bf16_mma: head size ", s.head_dim,
                                                 " is not supported (the MMA kernel takes 64 or 128)"));
  if (s.batch == 0 || s.seq == 0) return;
  float* D = scratch;
  float* dq_acc = scratch + std::size_t(s.batch) * s.heads * s.seq;
  const std::int64_t width = std::int64_t(s.heads) * s.head_dim;
  if (s.head_dim == 64)
    ac::flash_backward_mma_launch<64>(s, m, q, k, v, out, dout, lse, D, dq_acc, width, dk, dv, stream);
  else
    ac::flash_backward_mma_launch<128>(s, m, q, k, v, out, dout, lse, D, dq_acc, width, dk, dv, stream);
  const std::int64_t rows = std::int64_t(s.batch) * s.seq;
  ac::convert_heads_kernel<<<ac::grid_for(rows * width, 256), 256, 0, stream>>>(rows, int(width), dq_acc, s.ld_q, dq);
  TFM_CUDA_CHECK(cudaGetLastError());
}
inline void attention_flash_backward_bf16(const attention_shape& s, const attention_mask& m, const __nv_bfloat16* q,
                                          const __nv_bfloat16* k, const __nv_bfloat16* v,
                                          const __nv_bfloat16* out, const __nv_bfloat16* dout, const float* lse,
                                          __nv_bfloat16* dq, __nv_bfloat16* dk, __nv_bfloat16* dv, float* scratch,
                                          cudaStream_t stream) {
  if ((s.head_dim == 64 || s.head_dim == 128) && detail::attn_cuda::flash_mma_enabled())
    attention_flash_backward_bf16_mma(s, m, q, k, v, out, dout, lse, dq, dk, dv, scratch, stream);
  else
    attention_flash_backward_bf16_simt(s, m, q, k, v, out, dout, lse, dq, dk, dv, scratch, stream);
}

}  // namespace tfm::nn
