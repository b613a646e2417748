// tfm/nn/ops_cuda.cuh — the CUDA backend of model<Config, space::cuda>: the members of
// host_backend (nn/ops_host.hpp) with the same semantics, on device pointers. Every call is
// queued on the backend's own stream (a non-blocking tfm::cuda::stream); GEMMs go through
// cuBLASLt (fp32 math) with the backend's handle. Only download() and xent_forward() (which
// returns the loss sum to the host) wait for the stream.
//
// Reductions over rows (bias, norm weight/bias gradients) are deterministic: fixed row chunks
// summed per column into scratch, then the chunks summed in order. embedding_backward uses
// atomicAdd (repeated tokens), and so does the flash attention dQ: those two are not bitwise
// reproducible. LoRA adapter dropout draws host::dropout_keep's mask (tfm::rng is the same on
// host and device), so a CUDA run drops exactly the elements the host run drops.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string_view>
#include <type_traits>

#include "tfm/backend/cuda/cublas.hpp"
#include "tfm/backend/cuda/profile.hpp"
#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/core/error.hpp"
#include "tfm/core/memory.hpp"
#include "tfm/core/rng.hpp"
#include "tfm/nn/attention_cuda.cuh"
#include "tfm/nn/config.hpp"  // first: see attention_cuda.cuh
#include "tfm/nn/math.hpp"
#include "tfm/nn/ops_host.hpp"
#include "tfm/ops/detail/gemm_cuda.cuh"
#include "tfm/ops/detail/matrix.hpp"

namespace tfm::nn {

namespace detail::ops_cuda {

inline constexpr int norm_blocks = 256;   // row blocks of norm_backward (partial sums in scratch)
inline constexpr int bias_chunks = 64;    // row chunks of the bias gradient
inline constexpr int threads = 256;

inline unsigned grid_for(std::int64_t n, int block = threads) {
  const std::int64_t b = (n + block - 1) / block;
  return unsigned(b < 65536 * 8 ? (b > 0 ? b : 1) : 65536 * 8);
}
// Blocks for kernels that take one row (or one group of rows) per block and stride over the rest.
inline unsigned row_grid(std::int64_t rows) { return grid_for(rows, 1); }

#define TFM_OPS_CUDA_LOOP(i, n)                                                          \
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += std::int64_t(gridDim.x) * blockDim.x)

// Block sum in double over blockDim.x (multiple of 32, <= 1024) threads; `red` 32 doubles.
TFM_DEVICE double block_sum_d(double v, double* red) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();
  if (lane == 0) red[w] = v;
  __syncthreads();
  double r = lane < nw ? red[lane] : 0.0;
  for (int o = 16; o > 0; o >>= 1) r += __shfl_xor_sync(0xffffffffu, r, o);
  return r;
}

// a·b rounded on its own: never contracted with a following addition into a fused multiply-add.
TFM_DEVICE float mul_rn(float a, float b) { return __fmul_rn(a, b); }
TFM_DEVICE double mul_rn(double a, double b) { return __dmul_rn(a, b); }

template <class T>
__global__ void embedding_fwd_kernel(std::int64_t N, int T_, int D, const std::int32_t* tok, const T* wte,
                                     const T* pos, T* out) {
  TFM_OPS_CUDA_LOOP(idx, N * D) {
    const std::int64_t n = idx / D;
    const int c = int(idx % D);
    T v = wte[std::int64_t(tok[n]) * D + c];
    if (pos) v += pos[(n % T_) * D + c];
    out[idx] = v;
  }
}
template <class T>
__global__ void embedding_bwd_kernel(std::int64_t N, int T_, int D, const std::int32_t* tok, const T* dout, T* dwte,
                                     T* dpos) {
  TFM_OPS_CUDA_LOOP(idx, N * D) {
    const std::int64_t n = idx / D;
    const int c = int(idx % D);
    const T g = dout[idx];
    if (dwte) atomicAdd(dwte + std::int64_t(tok[n]) * D + c, g);
    if (dpos) atomicAdd(dpos + (n % T_) * D + c, g);
  }
}

// One block per row (grid-stride over rows): statistics in double, as the host.
// y may be a compute type Y (mixed precision): computed in T, rounded once.
template <bool Rms, class T, class Y = T>
__global__ void norm_fwd_kernel(std::int64_t N, int D, const T* x, const T* w, const T* b, Y* y, T* mean, T* rstd,
                                double eps) {
  __shared__ double red[32];
  for (std::int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* xr = x + n * D;
    double m = 0;
    if constexpr (!Rms) {
      double s = 0;
      for (int c = threadIdx.x; c < D; c += blockDim.x) s += double(xr[c]);
      m = block_sum_d(s, red) / D;
    }
    double v = 0;
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
      const double d = double(xr[c]) - m;
      v += d * d;
    }
    v = block_sum_d(v, red) / D;
    const double r = 1.0 / sqrt(v + eps);
    const T mt = T(m), rt = T(r);
    Y* yr = y + n * D;
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
      const T h = (xr[c] - mt) * rt;
      yr[c] = static_cast<Y>(b ? h * w[c] + b[c] : h * w[c]);
    }
    if (threadIdx.x == 0) {
      if constexpr (!Rms) mean[n] = mt;
      rstd[n] = rt;
    }
  }
}

// Block k takes rows k, k + gridDim.x, …; its column partial sums of dy·x̂ and dy go to
// part[k][0..D) and part[k][D..2D) (each column owned by one thread: no races, fixed order).
// dy may be a compute type G (mixed precision), read as T.
template <bool Rms, class T, class G = T>
__global__ void norm_bwd_kernel(std::int64_t N, int D, const G* dy, const T* x, const T* w, const T* mean,
                                const T* rstd, T* dx, bool accumulate, T* part) {
  __shared__ double red[32];
  T* pdw = part + std::size_t(2) * D * blockIdx.x;
  T* pdb = pdw + D;
  for (int c = threadIdx.x; c < D; c += blockDim.x) pdw[c] = pdb[c] = T(0);
  for (std::int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T* xr = x + n * D;
    const G* g = dy + n * D;
    const T m = Rms ? T(0) : mean[n];
    const T r = rstd[n];
    double s1 = 0, s2 = 0;
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
      const T h = (xr[c] - m) * r;
      const T gc = static_cast<T>(g[c]);
      const T dh = gc * w[c];
      s1 += dh;
      s2 += double(dh) * h;
      pdw[c] += gc * h;
      pdb[c] += gc;
    }
    s1 = block_sum_d(s1, red);
    s2 = block_sum_d(s2, red);
    const T a1 = Rms ? T(0) : T(s1 / D), a2 = T(s2 / D);
    T* o = dx + n * D;
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
      const T h = (xr[c] - m) * r;
      // dy·w rounded as dh above (not fused with − a1): LayerNorm over D = 1 gives dx = 0 exactly
      const T v = r * (mul_rn(static_cast<T>(g[c]), w[c]) - a1 - h * a2);
      o[c] = accumulate ? o[c] + v : v;
    }
  }
}
// dw[c] += Σ_k part[k][c], db[c] += Σ_k part[k][D + c] (k in order).
template <class T>
__global__ void norm_param_grad_kernel(int D, int blocks, const T* part, T* dw, T* db) {
  TFM_OPS_CUDA_LOOP(c, D) {
    T sw = 0, sb = 0;
    for (int k = 0; k < blocks; ++k) {
      sw += part[std::size_t(2) * D * k + c];
      sb += part[std::size_t(2) * D * k + D + c];
    }
    dw[c] += sw;
    if (db) db[c] += sb;
  }
}

// Warp-per-row norms for rows of D <= 32·CPL: lane l holds columns l, l + 32, … of its row in
// registers (read once), the statistics are warp sums in double (shuffles, no block barriers),
// and many rows are in flight per SM. One block is norm_warps warps; warp g of the grid takes
// rows g, g + (all warps), … (a fixed assignment: results do not depend on timing).
inline constexpr int norm_warps = 8;

TFM_DEVICE double warp_sum_d(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

template <bool Rms, int CPL, class T, class Y>
__global__ void __launch_bounds__(norm_warps * 32)
    norm_fwd_warp_kernel(std::int64_t N, int D, const T* x, const T* w, const T* b, Y* y, T* mean, T* rstd,
                         double eps) {
  const int lane = threadIdx.x & 31;
  const std::int64_t stride = std::int64_t(gridDim.x) * norm_warps;
  for (std::int64_t n = std::int64_t(blockIdx.x) * norm_warps + (threadIdx.x >> 5); n < N; n += stride) {
    const T* xr = x + n * D;
    T v[CPL];
    double s = 0;
#pragma unroll
    for (int k = 0; k < CPL; ++k) {
      const int c = lane + 32 * k;
      v[k] = c < D ? xr[c] : T(0);
      s += double(v[k]);
    }
    const double m = Rms ? 0.0 : warp_sum_d(s) / D;
    double q = 0;
#pragma unroll
    for (int k = 0; k < CPL; ++k) {
      if (lane + 32 * k < D) {
        const double d = double(v[k]) - m;
        q += d * d;
      }
    }
    q = warp_sum_d(q) / D;
    const T mt = T(m), rt = T(1.0 / sqrt(q + eps));
    Y* yr = y + n * D;
#pragma unroll
    for (int k = 0; k < CPL; ++k) {
      const int c = lane + 32 * k;
      if (c < D) {
        const T h = (v[k] - mt) * rt;
        yr[c] = static_cast<Y>(b ? h * w[c] + b[c] : h * w[c]);
      }
    }
    if (lane == 0) {
      if constexpr (!Rms) mean[n] = mt;
      rstd[n] = rt;
    }
  }
}

// The backward of the same rows: dx as norm_bwd_kernel; each lane sums dy·x̂ and dy of its
// columns over its warp's rows in registers, then the block adds its warps in warp order in
// shared memory and writes part[blockIdx.x][0..2D) as norm_bwd_kernel does (same reduction after).
template <bool Rms, int CPL, class T, class G>
__global__ void __launch_bounds__(norm_warps * 32, 2)
    norm_bwd_warp_kernel(std::int64_t N, int D, const G* dy, const T* x, const T* w, const T* mean, const T* rstd,
                         T* dx, bool accumulate, T* part) {
  __shared__ T sums[2 * 32 * CPL];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  T pw[CPL], pb[CPL];
#pragma unroll
  for (int k = 0; k < CPL; ++k) pw[k] = pb[k] = T(0);
  const std::int64_t stride = std::int64_t(gridDim.x) * norm_warps;
  for (std::int64_t n = std::int64_t(blockIdx.x) * norm_warps + warp; n < N; n += stride) {
    const T* xr = x + n * D;
    const G* gr = dy + n * D;
    const T m = Rms ? T(0) : mean[n];
    const T r = rstd[n];
    T g[CPL];  // x̂ is recomputed below (the row is in L1): fewer registers, two blocks per SM
    double s1 = 0, s2 = 0;
#pragma unroll
    for (int k = 0; k < CPL; ++k) {
      const int c = lane + 32 * k;
      if (c < D) {
        const T h = (xr[c] - m) * r;
        g[k] = static_cast<T>(gr[c]);
        const T dh = g[k] * w[c];
        s1 += dh;
        s2 += double(dh) * h;
        pw[k] += g[k] * h;
        pb[k] += g[k];
      } else {
        g[k] = T(0);
      }
    }
    s1 = warp_sum_d(s1);
    s2 = warp_sum_d(s2);
    const T a1 = Rms ? T(0) : T(s1 / D), a2 = T(s2 / D);
    T* o = dx + n * D;
#pragma unroll
    for (int k = 0; k < CPL; ++k) {
      const int c = lane + 32 * k;
      if (c < D) {
        const T h = (xr[c] - m) * r;
        const T v = r * (mul_rn(g[k], w[c]) - a1 - h * a2);  // dy·w rounded as dh (norm_bwd_kernel)
        o[c] = accumulate ? o[c] + v : v;
      }
    }
  }
  for (int i = 0; i < norm_warps; ++i) {
    if (warp == i) {
#pragma unroll
      for (int k = 0; k < CPL; ++k) {
        const int c = lane + 32 * k;
        if (c < D) {
          sums[c] = i == 0 ? pw[k] : sums[c] + pw[k];
          sums[D + c] = i == 0 ? pb[k] : sums[D + c] + pb[k];
        }
      }
    }
    __syncthreads();
  }
  T* out = part + std::size_t(2) * D * blockIdx.x;
  for (int c = threadIdx.x; c < 2 * D; c += blockDim.x) out[c] = sums[c];
}

// Calls f(std::integral_constant<int, CPL>{}) with the columns per lane of the warp-per-row
// kernels for width D; false (f not called) when D is too wide for them (> 1024).
template <class F>
bool with_norm_cols_per_lane(int D, F&& f) {
  if (D <= 256)
    f(std::integral_constant<int, 8>{});
  else if (D <= 512)
    f(std::integral_constant<int, 16>{});
  else if (D <= 768)
    f(std::integral_constant<int, 24>{});
  else if (D <= 1024)
    f(std::integral_constant<int, 32>{});
  else
    return false;
  return true;
}

template <class T>
__global__ void add_bias_kernel(std::int64_t N, int out, const T* b, T* y) {
  TFM_OPS_CUDA_LOOP(idx, N * out) y[idx] += b[idx % out];
}
// Block (bx, by), threads (32, 8): columns 32·bx + tx, rows of chunk by (rows ≡ ty mod 8),
// summed in shared memory over ty; part[by][j] = the chunk's column sum.
template <class T, class G = T>
__global__ void bias_partial_kernel(std::int64_t N, int out, std::int64_t chunk, const G* dy, T* part) {
  __shared__ T red[8][33];
  const int j = blockIdx.x * 32 + threadIdx.x;
  const std::int64_t r0 = std::int64_t(blockIdx.y) * chunk;
  const std::int64_t r1 = r0 + chunk < N ? r0 + chunk : N;
  T s = 0;
  if (j < out)
    for (std::int64_t n = r0 + threadIdx.y; n < r1; n += 8) s += static_cast<T>(dy[n * out + j]);
  red[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && j < out) {
    T t = 0;
    for (int k = 0; k < 8; ++k) t += red[k][threadIdx.x];
    part[std::int64_t(blockIdx.y) * out + j] = t;
  }
}
template <class T>
__global__ void bias_final_kernel(int out, int chunks, const T* part, T* db) {
  TFM_OPS_CUDA_LOOP(j, out) {
    T s = 0;
    for (int k = 0; k < chunks; ++k) s += part[std::int64_t(k) * out + j];
    db[j] += s;
  }
}

// Element-wise kernels compute in T; S is the storage type of their activations (T, or a
// compute type such as bfloat16 under mixed precision: read as T, each result rounded once).
template <class T, class S = T>
__global__ void gelu_fwd_kernel(std::int64_t n, const S* x, S* y) {
  TFM_OPS_CUDA_LOOP(i, n) y[i] = static_cast<S>(math::gelu_tanh(static_cast<T>(x[i])));
}
template <class T, class S = T>
__global__ void gelu_bwd_kernel(std::int64_t n, const S* x, const S* dy, S* dx) {
  TFM_OPS_CUDA_LOOP(i, n)
  dx[i] = static_cast<S>(static_cast<T>(dy[i]) * math::gelu_tanh_grad(static_cast<T>(x[i])));
}
template <class T, class S = T>
__global__ void swiglu_fwd_kernel(std::int64_t N, int F, const S* x, S* y) {
  TFM_OPS_CUDA_LOOP(idx, N * F) {
    const std::int64_t n = idx / F;
    const int j = int(idx % F);
    const S* g = x + n * 2 * F;
    y[idx] = static_cast<S>(math::silu(static_cast<T>(g[j])) * static_cast<T>(g[F + j]));
  }
}
template <class T, class S = T>
__global__ void swiglu_bwd_kernel(std::int64_t N, int F, const S* x, const S* dy, S* dx) {
  TFM_OPS_CUDA_LOOP(idx, N * F) {
    const std::int64_t n = idx / F;
    const int j = int(idx % F);
    const S* g = x + n * 2 * F;
    const T gj = static_cast<T>(g[j]), uj = static_cast<T>(g[F + j]), d = static_cast<T>(dy[idx]);
    dx[n * 2 * F + j] = static_cast<S>(d * uj * math::silu_grad(gj));
    dx[n * 2 * F + F + j] = static_cast<S>(d * math::silu(gj));
  }
}
// One thread per (row n, head h, pair j < rot/2).
template <class T, class S = T>
__global__ void rope_kernel(std::int64_t N, int T_, int heads, int hd, int rot, std::int64_t ld, S* qkv,
                            const T* cos_sin, bool inverse) {
  const int half = rot / 2;
  TFM_OPS_CUDA_LOOP(idx, N * heads * half) {
    const int j = int(idx % half);
    const int h = int((idx / half) % heads);
    const std::int64_t n = idx / (std::int64_t(half) * heads);
    const T* cs = cos_sin + (n % T_) * rot;
    S* v = qkv + n * ld + std::int64_t(h) * hd;
    const T c = cs[2 * j], s = inverse ? -cs[2 * j + 1] : cs[2 * j + 1];
    const T a = static_cast<T>(v[j]), b = static_cast<T>(v[j + half]);
    v[j] = static_cast<S>(a * c - b * s);
    v[j + half] = static_cast<S>(b * c + a * s);
  }
}
// y = a + b with b stored as S (a block's output under mixed precision).
template <class T, class S = T>
__global__ void add_kernel(std::int64_t n, const T* a, const S* b, T* y) {
  TFM_OPS_CUDA_LOOP(i, n) y[i] = a[i] + static_cast<T>(b[i]);
}

// One row's lse (max, then Σ exp in double as the host) on a whole block, returned to every
// thread; thread 0 writes lse and the loss (read before any thread may overwrite the row).
template <class T, class Z>
__device__ T xent_row_lse(const Z* r, int V, std::int32_t y, int ignore, T* lse, T* loss, double* red) {
  double mx = -INFINITY;
  for (int j = threadIdx.x; j < V; j += blockDim.x) mx = fmax(mx, double(r[j]));
  // block max through the sum helper's layout: reduce with max by hand
  for (int o = 16; o > 0; o >>= 1) mx = fmax(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  __syncthreads();
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = mx;
  __syncthreads();
  mx = (threadIdx.x & 31) < (blockDim.x >> 5) ? red[threadIdx.x & 31] : -INFINITY;
  for (int o = 16; o > 0; o >>= 1) mx = fmax(mx, __shfl_xor_sync(0xffffffffu, mx, o));
  const T m = T(mx);
  double s = 0;
  for (int j = threadIdx.x; j < V; j += blockDim.x) s += double(exp(static_cast<T>(r[j]) - m));
  s = block_sum_d(s, red);  // every thread gets the block's sum
  const double l = double(m) + log(s);
  if (threadIdx.x == 0) {
    *lse = T(l);
    *loss = y == ignore ? T(0) : T(l - double(r[y]));
  }
  __syncthreads();  // the loss's r[y] is read before the row is overwritten
  return T(l);
}
// One row of dz = scale·(softmax(z) − onehot(y)) on a block, computed in T and stored as Z (the
// target's element corrected before its one rounding); padding columns V … ld−1 get 0.
template <class T, class Z>
__device__ void xent_row_grad(const Z* r, Z* d, int V, std::int64_t ld, std::int32_t y, int ignore, T l, T scale) {
  const bool off = y == ignore || scale == T(0);
  const int target = off ? -1 : y;
  for (std::int64_t j = threadIdx.x; j < ld; j += blockDim.x) {
    T v = off || j >= V ? T(0) : scale * T(exp(static_cast<T>(r[j]) - l));
    if (j == target) v -= scale;
    d[j] = static_cast<Z>(v);
  }
}

// One block per row: lse and loss. Logits z may be a compute type Z (mixed precision), read as
// T; rows are ld ≥ V apart.
template <class T, class Z = T>
__global__ void xent_fwd_kernel(std::int64_t N, int V, std::int64_t ld, const Z* z, const std::int32_t* y, int ignore,
                                T* lse, T* losses) {
  __shared__ double red[32];
  for (std::int64_t n = blockIdx.x; n < N; n += gridDim.x)
    xent_row_lse<T, Z>(z + n * ld, V, y[n], ignore, lse + n, losses + n, red);
}
// Forward and backward of a row while it is in cache; in place over z allowed. The gradient
// uses the lse rounded to T, as xent_bwd_kernel reads it: the same dz bit for bit.
template <class T, class Z = T>
__global__ void xent_fwd_bwd_kernel(std::int64_t N, int V, std::int64_t ld, const Z* z, const std::int32_t* y,
                                    int ignore, T* lse, T* losses, T scale, Z* dz) {
  __shared__ double red[32];
  for (std::int64_t n = blockIdx.x; n < N; n += gridDim.x) {
    const T l = xent_row_lse<T, Z>(z + n * ld, V, y[n], ignore, lse + n, losses + n, red);
    xent_row_grad<T, Z>(z + n * ld, dz + n * ld, V, ld, y[n], ignore, l, scale);
    __syncthreads();  // red is reused by the next row
  }
}
// Σ losses and the number of counted rows, one block, fixed order: res[0], res[1].
template <class T>
__global__ void xent_total_kernel(std::int64_t N, const T* losses, const std::int32_t* y, int ignore, double* res) {
  __shared__ double red[32];
  double s = 0, c = 0;
  for (std::int64_t n = threadIdx.x; n < N; n += blockDim.x)
    if (y[n] != ignore) {
      s += double(losses[n]);
      c += 1;
    }
  s = block_sum_d(s, red);
  c = block_sum_d(c, red);
  if (threadIdx.x == 0) {
    res[0] = s;
    res[1] = c;
  }
}
// One block per row: dz = scale·(softmax(z) − onehot(y)) from the saved lse; padding columns
// V … ld−1 get 0; in place over z allowed.
template <class T, class Z = T>
__global__ void xent_bwd_kernel(std::int64_t N, int V, std::int64_t ld, const Z* z, const std::int32_t* y, int ignore,
                                const T* lse, T scale, Z* dz) {
  for (std::int64_t n = blockIdx.x; n < N; n += gridDim.x)
    xent_row_grad<T, Z>(z + n * ld, dz + n * ld, V, ld, y[n], ignore, lse[n], scale);
}

// ---- mixed precision (float math on compute-type C data) ----
// y[i] = To(x[i]): narrowing float to C, widening C to float.
template <class From, class To>
__global__ void convert_kernel(std::int64_t n, const From* x, To* y) {
  TFM_OPS_CUDA_LOOP(i, n) y[i] = static_cast<To>(x[i]);
}

// ---- element-wise kernels on words of V consecutive elements ----
// The kernels above move one element per thread and step (2 or 4 bytes); these move V at a
// time as one 16-byte (or, for the narrower side of a conversion, 8-byte) word per array, with
// the same arithmetic per element. Word i covers elements V·i … V·i + V − 1; the caller runs
// the scalar kernel on the tail and whenever a pointer is not aligned to its word
// (launch_elementwise below).
template <class S, int V>
struct alignas(sizeof(S) * V) vec_word {
  S v[V];
};
template <class T, class S, int V>
__global__ void gelu_fwd_vec_kernel(std::int64_t words, const S* x, S* y) {
  using W = vec_word<S, V>;
  TFM_OPS_CUDA_LOOP(i, words) {
    const W a = reinterpret_cast<const W*>(x)[i];
    W r;
#pragma unroll
    for (int k = 0; k < V; ++k) r.v[k] = static_cast<S>(math::gelu_tanh(static_cast<T>(a.v[k])));
    reinterpret_cast<W*>(y)[i] = r;
  }
}
template <class T, class S, int V>
__global__ void gelu_bwd_vec_kernel(std::int64_t words, const S* x, const S* dy, S* dx) {
  using W = vec_word<S, V>;
  TFM_OPS_CUDA_LOOP(i, words) {
    const W a = reinterpret_cast<const W*>(x)[i], g = reinterpret_cast<const W*>(dy)[i];
    W r;
#pragma unroll
    for (int k = 0; k < V; ++k)
      r.v[k] = static_cast<S>(static_cast<T>(g.v[k]) * math::gelu_tanh_grad(static_cast<T>(a.v[k])));
    reinterpret_cast<W*>(dx)[i] = r;
  }
}
template <class T, class S, int V>
__global__ void add_vec_kernel(std::int64_t words, const T* a, const S* b, T* y) {
  using WT = vec_word<T, V>;
  using WS = vec_word<S, V>;
  TFM_OPS_CUDA_LOOP(i, words) {
    const WT u = reinterpret_cast<const WT*>(a)[i];
    const WS w = reinterpret_cast<const WS*>(b)[i];
    WT r;
#pragma unroll
    for (int k = 0; k < V; ++k) r.v[k] = u.v[k] + static_cast<T>(w.v[k]);
    reinterpret_cast<WT*>(y)[i] = r;
  }
}
template <class From, class To, int V>
__global__ void convert_vec_kernel(std::int64_t words, const From* x, To* y) {
  using WF = vec_word<From, V>;
  using WT = vec_word<To, V>;
  TFM_OPS_CUDA_LOOP(i, words) {
    const WF a = reinterpret_cast<const WF*>(x)[i];
    WT r;
#pragma unroll
    for (int k = 0; k < V; ++k) r.v[k] = static_cast<To>(a.v[k]);
    reinterpret_cast<WT*>(y)[i] = r;
  }
}

// Whether p is aligned for words of V elements of its type.
template <int V, class U>
bool word_aligned(const U* p) {
  return reinterpret_cast<std::uintptr_t>(p) % (sizeof(U) * V) == 0;
}
// n elements: words(w) on the first w = n / V words when `aligned`, then scalar(offset, count)
// on the elements left (all of them when not aligned).
template <int V, class Words, class Scalar>
void launch_elementwise(std::int64_t n, bool aligned, Words&& words, Scalar&& scalar) {
  const std::int64_t w = aligned ? n / V : 0;
  if (w > 0) words(w);
  if (n > w * V) scalar(w * V, n - w * V);
}
// out[i, j] (row stride ld) = rnd(tile[i, j] + bias[j] + beta·out[i, j]); bias may be null.
template <class Y, class C>
__global__ void round_tile_kernel(std::int64_t rows, std::int64_t cols, const float* tile, const C* bias, float beta,
                                  Y* out, std::int64_t ld) {
  TFM_OPS_CUDA_LOOP(idx, rows * cols) {
    const std::int64_t i = idx / cols, j = idx % cols;
    float v = tile[idx];
    if (bias) v += static_cast<float>(bias[j]);
    if (beta != 0.0f) v += beta * static_cast<float>(out[i * ld + j]);
    out[i * ld + j] = static_cast<Y>(v);
  }
}
template <class C>
__global__ void add_bias_float_kernel(std::int64_t N, int out, const C* b, float* y) {
  TFM_OPS_CUDA_LOOP(idx, N * out) y[idx] += static_cast<float>(b[idx % out]);
}
// ---- low-rank adapters (LoRA): inverted dropout of the adapter input ----
// host::dropout_keep's mask: element e = n·in + c is kept when uniform(seed, stream, e) >= p.
TFM_DEVICE bool lora_keep(std::uint64_t seed, std::uint64_t stream, std::uint64_t e, double p) {
  return double(tfm::rng::uniform(seed, stream, e)) >= p;
}
// y [N, in] = drop(x [N, in], row stride ldx), computed in T (the scale s = T(1/(1−p))) and
// stored as S (T, or the compute type: rounded once).
template <class T, class S>
__global__ void lora_dropout_kernel(std::int64_t N, int in, const S* x, std::int64_t ldx, S* y, std::uint64_t seed,
                                    std::uint64_t rng_stream, double p, T s) {
  TFM_OPS_CUDA_LOOP(idx, N * in) {
    const std::int64_t n = idx / in, c = idx % in;
    const bool keep = lora_keep(seed, rng_stream, std::uint64_t(idx), p);
    y[idx] = keep ? static_cast<S>(mul_rn(static_cast<T>(x[n * ldx + c]), s)) : static_cast<S>(T(0));
  }
}
// dx [N, in] (row stride lddx) = dx + drop'(g [N, in]) on the kept elements, in T, rounded once to DX.
template <class T, class G, class DX>
__global__ void lora_dropout_bwd_kernel(std::int64_t N, int in, const G* g, DX* dx, std::int64_t lddx,
                                        std::uint64_t seed, std::uint64_t rng_stream, double p, T s) {
  TFM_OPS_CUDA_LOOP(idx, N * in) {
    const std::int64_t n = idx / in, c = idx % in;
    if (lora_keep(seed, rng_stream, std::uint64_t(idx), p)) {
      DX* o = dx + n * lddx + c;
      *o = static_cast<DX>(static_cast<T>(*o) + mul_rn(static_cast<T>(g[idx]), s));
    }
  }
}
#undef TFM_OPS_CUDA_LOOP

// The stream, the cuBLASLt handle and a small result buffer, behind a pointer (the handle is
// not movable; the backend is).
struct cuda_state {
  tfm::cuda::stream stream;
  tfm::cuda::cublaslt_handle lt;
  // GPU time per backend operation, when TFM_CUDA_PROFILE=1 at construction (cuda_backend::profile()).
  std::unique_ptr<tfm::cuda::op_profiler> prof =
      tfm::cuda::op_profiler::requested_by_environment() ? std::make_unique<tfm::cuda::op_profiler>() : nullptr;
  tfm::cuda::device_buffer<double> result{2};
  // The warp-per-row norm kernels (D <= 1024); TFM_CUDA_WARP_NORMS=0 at construction, or
  // cuda_backend::set_warp_norms(false), selects the block-per-row ones for every width.
  bool warp_norms = [] {
    const char* e = std::getenv("TFM_CUDA_WARP_NORMS");
    return !(e != nullptr && std::string_view(e) == "0");
  }();
};

}  // namespace detail::ops_cuda

template <class T>
struct cuda_backend {
  static_assert(std::is_same_v<T, float>,
                "cuda_backend: only float parameters are supported on CUDA (cuBLASLt fp32 GEMMs and fp32 "
                "attention kernels); use the host backend for double");
  using space = tfm::space::cuda;
  template <class U>
  using buffer_t = tfm::buffer<U, space>;

  cuda_backend() : st_(std::make_unique<detail::ops_cuda::cuda_state>()) {}
  cuda_backend(cuda_backend&&) noexcept = default;
  cuda_backend& operator=(cuda_backend&&) noexcept = default;

  cudaStream_t stream() const { return st_->stream.get(); }
  tfm::cuda::cublaslt_handle& lt() { return st_->lt; }
  // Per-operation GPU time since the last call (waits for the stream), most time first; empty
  // unless the environment had TFM_CUDA_PROFILE=1 when the backend was made. Nested operations
  // (linear_forward_mixed inside lora_forward_mixed, say) count in both.
  std::vector<tfm::cuda::op_profiler::entry> profile() { return st_->prof ? st_->prof->collect() : decltype(profile()){}; }
  tfm::cuda::op_scope prof(const char* name) const { return tfm::cuda::op_scope(st_->prof.get(), name, stream()); }
  // Which norm kernels run for widths up to 1024 (see cuda_state::warp_norms): for comparing
  // the two in tests and benchmarks.
  void set_warp_norms(bool on) { st_->warp_norms = on; }
  bool warp_norms() const { return st_->warp_norms; }

  // memory
  void zero(T* p, std::size_t n) { tfm::cuda::fill_async(p, 0, n * sizeof(T), stream()); }
  void copy(T* dst, const T* src, std::size_t n) {
    const auto prof_scope = prof("copy");
    tfm::cuda::copy_async(dst, src, n * sizeof(T), tfm::cuda::copy_kind::device_to_device, stream());
  }
  // From host memory. Pageable sources are staged by the runtime before the call returns, so the
  // caller may free or reuse host_src right away.
  template <class U>
  void upload(U* dst, const U* host_src, std::size_t n) {
    tfm::cuda::copy_async(dst, host_src, n * sizeof(U), tfm::cuda::copy_kind::host_to_device, stream());
  }
  template <class U>
  void download(U* host_dst, const U* src, std::size_t n) {
    tfm::cuda::copy_async(host_dst, src, n * sizeof(U), tfm::cuda::copy_kind::device_to_host, stream());
    synchronize();
  }
  void synchronize() { TFM_CUDA_CHECK(cudaStreamSynchronize(stream())); }

  // layers
  void embedding_forward(int B, int T_, int D, const std::int32_t* tok, const T* wte, int /*V*/, const T* pos,
                         T* out) {
    const auto prof_scope = prof("embedding_forward");
    const std::int64_t N = std::int64_t(B) * T_;
    namespace oc = detail::ops_cuda;
    oc::embedding_fwd_kernel<T><<<oc::grid_for(N * D), oc::threads, 0, stream()>>>(N, T_, D, tok, wte, pos, out);
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  // dwte, dpos: null for frozen parameters (LoRA), as on the host.
  void embedding_backward(int B, int T_, int D, const std::int32_t* tok, const T* dout, T* dwte, T* dpos) {
    const auto prof_scope = prof("embedding_backward");
    if (!dwte && !dpos) return;
    const std::int64_t N = std::int64_t(B) * T_;
    namespace oc = detail::ops_cuda;
    oc::embedding_bwd_kernel<T><<<oc::grid_for(N * D), oc::threads, 0, stream()>>>(N, T_, D, tok, dout, dwte, dpos);
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  // y (forward) and dy (backward) may be compute-type (mixed precision); the rest is T.
  template <bool Rms, class Y = T>
  void norm_forward(std::int64_t N, int D, const T* x, const T* w, const T* b, Y* y, T* mean, T* rstd, double eps) {
    const auto prof_scope = prof("norm_forward");
    if (N == 0) return;
    namespace oc = detail::ops_cuda;
    const auto warp_rows = [&](auto cpl) {
      const std::int64_t rows_of_blocks = (N + oc::norm_warps - 1) / oc::norm_warps;
      const unsigned blocks = oc::row_grid(rows_of_blocks);
      oc::norm_fwd_warp_kernel<Rms, decltype(cpl)::value, T, Y>
          <<<blocks, oc::norm_warps * 32, 0, stream()>>>(N, D, x, w, b, y, mean, rstd, eps);
    };
    if (!st_->warp_norms || !oc::with_norm_cols_per_lane(D, warp_rows)) {
      const unsigned blocks = oc::row_grid(N);
      oc::norm_fwd_kernel<Rms, T, Y><<<blocks, oc::threads, 0, stream()>>>(N, D, x, w, b, y, mean, rstd, eps);
    }
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  // scratch: norm_scratch_size(D) elements.
  template <bool Rms, class G = T>
  void norm_backward(std::int64_t N, int D, const G* dy, const T* x, const T* w, const T* mean, const T* rstd, T* dx,
                     bool acc, T* dw, T* db, T* scratch) {
    const auto prof_scope = prof("norm_backward");
    if (N == 0) return;
    namespace oc = detail::ops_cuda;
    const std::int64_t warp_blocks = (N + oc::norm_warps - 1) / oc::norm_warps;
    int blocks = int(warp_blocks < oc::norm_blocks ? warp_blocks : oc::norm_blocks);
    const auto warp_rows = [&](auto cpl) {
      oc::norm_bwd_warp_kernel<Rms, decltype(cpl)::value, T, G>
          <<<blocks, oc::norm_warps * 32, 0, stream()>>>(N, D, dy, x, w, mean, rstd, dx, acc, scratch);
    };
    if (!st_->warp_norms || !oc::with_norm_cols_per_lane(D, warp_rows)) {
      blocks = int(N < oc::norm_blocks ? N : oc::norm_blocks);
      oc::norm_bwd_kernel<Rms, T, G>
          <<<blocks, oc::threads, 0, stream()>>>(N, D, dy, x, w, mean, rstd, dx, acc, scratch);
    }
    TFM_CUDA_CHECK(cudaGetLastError());
    if (!dw) return;  // frozen norm weights (LoRA): dx only, as on the host
    oc::norm_param_grad_kernel<T><<<oc::grid_for(D), oc::threads, 0, stream()>>>(D, blocks, scratch, dw, db);
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  std::size_t norm_scratch_size(int D) const { return std::size_t(2) * D * detail::ops_cuda::norm_blocks; }

  void linear_forward(std::int64_t N, int in, int out, const T* x, const T* W, bool in_out, const T* b, T* y) {
    const auto prof_scope = prof("linear_forward");
    using host::mat;
    const auto A = mat(x, N, in, in);
    const auto Wm = in_out ? mat(W, in, out, out) : mat(W, out, in, in).transposed();
    gemm(1.0f, A, Wm, 0.0f, host::mat_mut(y, N, out, out));
    if (b) {
      namespace oc = detail::ops_cuda;
      oc::add_bias_kernel<T><<<oc::grid_for(N * out), oc::threads, 0, stream()>>>(N, out, b, y);
      TFM_CUDA_CHECK(cudaGetLastError());
    }
  }
  std::size_t linear_scratch_size(int out) const { return std::size_t(out) * detail::ops_cuda::bias_chunks; }
  // dx = beta·dx + dy·W (dx may be null); dW += dyᵀ·x (or xᵀ·dy); db += Σ dy. overwrite: dW = …
  // (GEMM beta 0: the old contents are never read), db cleared first.
  void linear_backward(std::int64_t N, int in, int out, const T* x, const T* W, bool in_out, const T* dy, T* dx,
                       double beta, T* dW, T* db, T* scratch, bool overwrite = false) {
    const float wbeta = overwrite ? 0.0f : 1.0f;
    const auto prof_scope = prof("linear_backward");
    using host::mat;
    using host::mat_mut;
    if (dx) {
      const auto Wm = in_out ? mat(W, in, out, out).transposed() : mat(W, out, in, in);
      gemm(1.0f, mat(dy, N, out, out), Wm, float(beta), mat_mut(dx, N, in, in));
    }
    if (!dW) {  // a frozen weight (LoRA): no gradient buffer
    } else if (in_out) {
      gemm(1.0f, mat(x, N, in, in).transposed(), mat(dy, N, out, out), wbeta, mat_mut(dW, in, out, out));
    } else {
      gemm(1.0f, mat(dy, N, out, out).transposed(), mat(x, N, in, in), wbeta, mat_mut(dW, out, in, in));
    }
    if (db && overwrite) zero(db, std::size_t(out));
    if (db) bias_grad(N, out, dy, db, scratch);
  }

  void gelu_forward(std::int64_t n, const T* x, T* y) {
    const auto prof_scope = prof("gelu_forward");
    gelu_fwd(n, x, y);
  }
  void gelu_backward(std::int64_t n, const T* x, const T* dy, T* dx) {
    const auto prof_scope = prof("gelu_backward");
    gelu_bwd(n, x, dy, dx);
  }
  void swiglu_forward(std::int64_t N, int F, const T* x, T* y) {
    const auto prof_scope = prof("swiglu_forward");
    namespace oc = detail::ops_cuda;
    oc::swiglu_fwd_kernel<T><<<oc::grid_for(N * F), oc::threads, 0, stream()>>>(N, F, x, y);
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  void swiglu_backward(std::int64_t N, int F, const T* x, const T* dy, T* dx) {
    const auto prof_scope = prof("swiglu_backward");
    namespace oc = detail::ops_cuda;
    oc::swiglu_bwd_kernel<T><<<oc::grid_for(N * F), oc::threads, 0, stream()>>>(N, F, x, dy, dx);
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  void rope_apply(std::int64_t N, int T_, int heads, int hd, int rot, std::int64_t ld, T* qkv, const T* table,
                  bool inverse) {
    const auto prof_scope = prof("rope_apply");
    if (rot < 2) return;
    namespace oc = detail::ops_cuda;
    oc::rope_kernel<T><<<oc::grid_for(N * heads * (rot / 2)), oc::threads, 0, stream()>>>(N, T_, heads, hd, rot, ld,
                                                                                          qkv, table, inverse);
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  void add(std::int64_t n, const T* a, const T* b, T* y) {
    const auto prof_scope = prof("add");
    add_any(n, a, b, y);
  }
  // ---- low-rank adapters (LoRA; host::lora_* for the semantics): dx may alias x in backward ----
  void lora_forward(std::int64_t N, int in, int rows, int r, const T* x, std::int64_t ldx, const T* A, const T* B,
                    double scale, T* t, T* y, std::int64_t ldy) {
    const auto prof_scope = prof("lora_forward");
    using host::mat;
    using host::mat_mut;
    gemm(1.0f, mat(x, N, in, ldx), mat(A, r, in, in).transposed(), 0.0f, mat_mut(t, N, r, r));
    gemm(float(scale), mat<T>(t, N, r, r), mat(B, rows, r, r).transposed(), 1.0f, mat_mut(y, N, rows, ldy));
  }
  void lora_backward(std::int64_t N, int in, int rows, int r, const T* x, std::int64_t ldx, const T* A, const T* B,
                     const T* t, const T* dy, std::int64_t ldy, double scale, T* dA, T* dB, T* dt, T* dx,
                     std::int64_t lddx, double dx_beta) {
    const auto prof_scope = prof("lora_backward");
    using host::mat;
    using host::mat_mut;
    const auto dym = mat(dy, N, rows, ldy);
    gemm(float(scale), dym.transposed(), mat(t, N, r, r), 1.0f, mat_mut(dB, rows, r, r));
    gemm(float(scale), dym, mat(B, rows, r, r), 0.0f, mat_mut(dt, N, r, r));
    // dA reads x before dx (which may alias it) is written: the stream orders the two
    gemm(1.0f, mat<T>(dt, N, r, r).transposed(), mat(x, N, in, ldx), 1.0f, mat_mut(dA, r, in, in));
    gemm(1.0f, mat<T>(dt, N, r, r), mat(A, r, in, in), float(dx_beta), mat_mut(dx, N, in, lddx));
  }
  void lora_dropout(std::int64_t N, int in, const T* x, std::int64_t ldx, T* y, std::uint64_t seed,
                    std::uint64_t rng_stream, double p) {
    const auto prof_scope = prof("lora_dropout");
    lora_dropout_mixed<T>(N, in, x, ldx, y, seed, rng_stream, p);
  }
  void lora_dropout_backward(std::int64_t N, int in, const T* g, T* dx, std::int64_t lddx, std::uint64_t seed,
                             std::uint64_t rng_stream, double p) {
    const auto prof_scope = prof("lora_dropout_backward");
    lora_dropout_backward_mixed<T, T>(N, in, g, dx, lddx, seed, rng_stream, p);
  }
  // Σ losses and the counted rows (waits for the stream). Targets are validated by the model.
  // The logits may be compute-type (Z, mixed precision).
  template <class Z = T>
  double xent_forward(std::int64_t N, int V, std::int64_t ld, const Z* z, const std::int32_t* y, int ignore, T* lse,
                      T* losses, std::int64_t& count) {
    const auto prof_scope = prof("xent_forward");
    expects<invalid_argument>(ld >= V, "xent_forward: row stride ", ld, " is below the vocabulary ", V);
    count = 0;
    if (N == 0) return 0.0;
    namespace oc = detail::ops_cuda;
    const unsigned blocks = oc::row_grid(N);
    oc::xent_fwd_kernel<T, Z><<<blocks, 512, 0, stream()>>>(N, V, ld, z, y, ignore, lse, losses);
    TFM_CUDA_CHECK(cudaGetLastError());
    return xent_total(N, losses, y, ignore, count);
  }
  // Σ losses over the counted rows and their number, in a fixed order (waits for the stream).
  double xent_total(std::int64_t N, const T* losses, const std::int32_t* y, int ignore, std::int64_t& count) {
    namespace oc = detail::ops_cuda;
    oc::xent_total_kernel<T><<<1, 1024, 0, stream()>>>(N, losses, y, ignore, st_->result.data());
    TFM_CUDA_CHECK(cudaGetLastError());
    double res[2] = {0, 0};
    download(res, st_->result.data(), 2);
    count = std::int64_t(res[1]);
    return res[0];
  }
  // Both in one pass over the logits (one kernel; then the loss total as xent_forward): the
  // same lse, losses, total and dz as the two calls, bit for bit.
  template <class Z = T>
  double xent_forward_backward(std::int64_t N, int V, std::int64_t ld, const Z* z, const std::int32_t* y, int ignore,
                               T* lse, T* losses, std::int64_t& count, double scale, Z* dz) {
    const auto prof_scope = prof("xent_forward_backward");
    expects<invalid_argument>(ld >= V, "xent_forward_backward: row stride ", ld, " is below the vocabulary ", V);
    count = 0;
    if (N == 0) return 0.0;
    namespace oc = detail::ops_cuda;
    const unsigned blocks = oc::row_grid(N);
    oc::xent_fwd_bwd_kernel<T, Z><<<blocks, 512, 0, stream()>>>(N, V, ld, z, y, ignore, lse, losses, T(scale), dz);
    TFM_CUDA_CHECK(cudaGetLastError());
    return xent_total(N, losses, y, ignore, count);
  }
  template <class Z = T>
  void xent_backward(std::int64_t N, int V, std::int64_t ld, const Z* z, const std::int32_t* y, int ignore,
                     const T* lse, double scale, Z* dz) {
    const auto prof_scope = prof("xent_backward");
    expects<invalid_argument>(ld >= V, "xent_backward: row stride ", ld, " is below the vocabulary ", V);
    if (N == 0) return;
    namespace oc = detail::ops_cuda;
    const unsigned blocks = oc::row_grid(N);
    oc::xent_bwd_kernel<T, Z><<<blocks, 512, 0, stream()>>>(N, V, ld, z, y, ignore, lse, T(scale), dz);
    TFM_CUDA_CHECK(cudaGetLastError());
  }

  // ---- mixed precision (C = bfloat16 or half over float; the host's semantics, ops_host_mixed.hpp) ----
  template <class C>
  void narrow(std::int64_t n, const T* x, C* y) {
    const auto prof_scope = prof("narrow");
    convert(n, x, y);
  }
  template <class C>
  void widen(std::int64_t n, const C* x, T* y) {
    const auto prof_scope = prof("widen");
    convert(n, x, y);
  }
  template <class C>
  void zero_compute(C* p, std::size_t n) { tfm::cuda::fill_async(p, 0, n * sizeof(C), stream()); }
  std::size_t mixed_tile_floats(std::int64_t N, std::int64_t width) const {
    return host::mixed::linear_scratch_floats(N, width);
  }
  std::size_t attention_wide_floats(const attention_shape& s) const { return host::mixed::attention_wide_floats(s); }

  template <class C, class Y>
  void linear_forward_mixed(std::int64_t N, int in, int out, const C* x, const C* W, bool in_out, const C* b, Y* y,
                            T* tile) {
    const auto prof_scope = prof("linear_forward_mixed");
    using host::mat;
    if constexpr (std::is_same_v<Y, T>) {
      const auto Wm = in_out ? mat(W, in, out, out) : mat(W, out, in, in).transposed();
      gemm_c(1.0f, mat(x, N, in, in), Wm, 0.0f, host::mat_mut(y, N, out, out));
      if (b) {
        namespace oc = detail::ops_cuda;
        oc::add_bias_float_kernel<C><<<oc::grid_for(N * out), oc::threads, 0, stream()>>>(N, out, b, y);
        TFM_CUDA_CHECK(cudaGetLastError());
      }
    } else {
      const auto Wm = in_out ? mat(W, in, out, out) : mat(W, out, in, in).transposed();
      gemm_rounded(1.0f, mat(x, N, in, in), Wm, 0.0, b, y, out, tile);
    }
  }
  template <class C, class DX>
  void linear_backward_mixed(std::int64_t N, int in, int out, const C* x, const C* W, bool in_out, const C* dy, DX* dx,
                             double beta, T* dW, T* db, T* tile, T* scratch, bool overwrite = false) {
    const float wbeta = overwrite ? 0.0f : 1.0f;
    const auto prof_scope = prof("linear_backward_mixed");
    using host::mat;
    using host::mat_mut;
    if (dx) {
      if constexpr (std::is_same_v<DX, T>) {
        const auto Wm = in_out ? mat(W, in, out, out).transposed() : mat(W, out, in, in);
        gemm_c(1.0f, mat(dy, N, out, out), Wm, float(beta), mat_mut(dx, N, in, in));
      } else {
        const auto Wm = in_out ? mat(W, in, out, out).transposed() : mat(W, out, in, in);
        gemm_rounded(1.0f, mat(dy, N, out, out), Wm, beta, static_cast<const C*>(nullptr), dx, in, tile);
      }
    }
    if (dW) {
      if (in_out)
        gemm_c(1.0f, mat(x, N, in, in).transposed(), mat(dy, N, out, out), wbeta, mat_mut(dW, in, out, out));
      else
        gemm_c(1.0f, mat(dy, N, out, out).transposed(), mat(x, N, in, in), wbeta, mat_mut(dW, out, in, in));
    }
    if (db && overwrite) zero(db, std::size_t(out));
    if (db) bias_grad(N, out, dy, db, scratch);
  }
  template <class C>
  void lora_forward_mixed(std::int64_t N, int in, int rows, int r, const C* x, std::int64_t ldx, const C* A,
                          const C* B, double scale, C* t, C* y, std::int64_t ldy, T* tile) {
    const auto prof_scope = prof("lora_forward_mixed");
    using host::mat;
    using host::mat_mut;
    const C* none = nullptr;
    // t = rnd(x·Aᵀ); y = rnd(y + scale·t·Bᵀ)
    gemm_rounded(1.0f, mat(x, N, in, ldx), mat(A, r, in, in).transposed(), 0.0, none, t, r, tile);
    gemm_rounded(float(scale), mat<C>(t, N, r, r), mat(B, rows, r, r).transposed(), 1.0, none, y, ldy, tile);
  }
  template <class C, class DX>
  void lora_backward_mixed(std::int64_t N, int in, int rows, int r, const C* x, std::int64_t ldx, const C* A,
                           const C* B, const C* t, const C* dy, std::int64_t ldy, double scale, T* dA, T* dB, C* dt,
                           DX* dx, std::int64_t lddx, double dx_beta, T* tile) {
    const auto prof_scope = prof("lora_backward_mixed");
    using host::mat;
    using host::mat_mut;
    const C* none = nullptr;
    // dB += scale·dyᵀ·t; dt = rnd(scale·dy·B); dA += dtᵀ·x; dx = dx_beta·dx + dt·A (float, or C rounded once)
    gemm_c(float(scale), mat(dy, N, rows, ldy).transposed(), mat(t, N, r, r), 1.0f, mat_mut(dB, rows, r, r));
    gemm_rounded(float(scale), mat(dy, N, rows, ldy), mat(B, rows, r, r), 0.0, none, dt, r, tile);
    gemm_c(1.0f, mat<C>(dt, N, r, r).transposed(), mat(x, N, in, ldx), 1.0f, mat_mut(dA, r, in, in));
    if constexpr (std::is_same_v<DX, T>) {
      gemm_c(1.0f, mat<C>(dt, N, r, r), mat(A, r, in, in), float(dx_beta), mat_mut(dx, N, in, lddx));
    } else {
      gemm_rounded(1.0f, mat<C>(dt, N, r, r), mat(A, r, in, in), dx_beta, none, dx, lddx, tile);
    }
  }
  // Inverted dropout with host::dropout_keep's mask: in T (float), each result rounded once to C.
  template <class C>
  void lora_dropout_mixed(std::int64_t N, int in, const C* x, std::int64_t ldx, C* y, std::uint64_t seed,
                          std::uint64_t rng_stream, double p) {
    const auto prof_scope = prof("lora_dropout_mixed");
    if (N * in == 0) return;
    namespace oc = detail::ops_cuda;
    oc::lora_dropout_kernel<T, C><<<oc::grid_for(N * in), oc::threads, 0, stream()>>>(
        N, in, x, ldx, y, seed, rng_stream, p, T(1.0 / (1.0 - p)));
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  template <class C, class DX>
  void lora_dropout_backward_mixed(std::int64_t N, int in, const C* g, DX* dx, std::int64_t lddx, std::uint64_t seed,
                                   std::uint64_t rng_stream, double p) {
    const auto prof_scope = prof("lora_dropout_backward_mixed");
    if (N * in == 0) return;
    namespace oc = detail::ops_cuda;
    oc::lora_dropout_bwd_kernel<T, C, DX><<<oc::grid_for(N * in), oc::threads, 0, stream()>>>(
        N, in, g, dx, lddx, seed, rng_stream, p, T(1.0 / (1.0 - p)));
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  template <class C>
  void gelu_forward_mixed(std::int64_t n, const C* x, C* y) {
    const auto prof_scope = prof("gelu_forward_mixed");
    gelu_fwd(n, x, y);
  }
  template <class C>
  void gelu_backward_mixed(std::int64_t n, const C* x, const C* dy, C* dx) {
    const auto prof_scope = prof("gelu_backward_mixed");
    gelu_bwd(n, x, dy, dx);
  }
  template <class C>
  void swiglu_forward_mixed(std::int64_t N, int F, const C* x, C* y) {
    const auto prof_scope = prof("swiglu_forward_mixed");
    namespace oc = detail::ops_cuda;
    oc::swiglu_fwd_kernel<T, C><<<oc::grid_for(N * F), oc::threads, 0, stream()>>>(N, F, x, y);
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  template <class C>
  void swiglu_backward_mixed(std::int64_t N, int F, const C* x, const C* dy, C* dx) {
    const auto prof_scope = prof("swiglu_backward_mixed");
    namespace oc = detail::ops_cuda;
    oc::swiglu_bwd_kernel<T, C><<<oc::grid_for(N * F), oc::threads, 0, stream()>>>(N, F, x, dy, dx);
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  template <class C>
  void rope_apply_mixed(std::int64_t N, int T_, int heads, int hd, int rot, std::int64_t ld, C* qkv, const T* table,
                        bool inverse) {
    const auto prof_scope = prof("rope_apply_mixed");
    if (rot < 2) return;
    namespace oc = detail::ops_cuda;
    oc::rope_kernel<T, C><<<oc::grid_for(N * heads * (rot / 2)), oc::threads, 0, stream()>>>(N, T_, heads, hd, rot,
                                                                                               ld, qkv, table, inverse);
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  template <class C>
  void add_mixed(std::int64_t n, const T* a, const C* b, T* y) {
    const auto prof_scope = prof("add_mixed");
    add_any(n, a, b, y);
  }
  template <class C>
  double xent_forward_mixed(std::int64_t N, int V, std::int64_t ld, const C* z, const std::int32_t* y, int ignore,
                            T* lse, T* losses, std::int64_t& count) {
    return xent_forward<C>(N, V, ld, z, y, ignore, lse, losses, count);
  }
  template <class C>
  void xent_backward_mixed(std::int64_t N, int V, std::int64_t ld, const C* z, const std::int32_t* y, int ignore,
                           const T* lse, double scale, C* dz) {
    const auto prof_scope = prof("xent_backward_mixed");
    xent_backward<C>(N, V, ld, z, y, ignore, lse, scale, dz);
  }
  template <class C>
  double xent_forward_backward_mixed(std::int64_t N, int V, std::int64_t ld, const C* z, const std::int32_t* y,
                                     int ignore, T* lse, T* losses, std::int64_t& count, double scale, C* dz) {
    return xent_forward_backward<C>(N, V, ld, z, y, ignore, lse, losses, count, scale, dz);
  }
  // Attention with float math from compute-type operands. Flash with bf16 operands: the bf16
  // flash kernels read and write bf16 directly (their backward keeps dQ in float in `wide`);
  // otherwise the float kernels run on float copies (`wide`: attention_wide_floats(s)).
  template <bool Flash, class C>
  static constexpr bool bf16_flash = Flash && std::is_same_v<C, tfm::bfloat16> && std::is_same_v<T, float>;
  template <class C>
  static auto nv(C* p) {
    using nvb = std::conditional_t<std::is_const_v<C>, const __nv_bfloat16, __nv_bfloat16>;
    static_assert(sizeof(C) == sizeof(__nv_bfloat16));
    return reinterpret_cast<nvb*>(p);
  }
  template <bool Flash, int HD, class C>
  void attention_forward_mixed(const attention_shape& s, const attention_mask& m, const C* q, const C* k, const C* v,
                               C* o, T* stats, T* wide) {
    const auto prof_scope = prof("attention_forward_mixed");
    if constexpr (bf16_flash<Flash, C>) {
      attention_flash_forward_bf16(s, m, nv(q), nv(k), nv(v), nv(o), stats, stream());
      return;
    }
    const std::int64_t N = std::int64_t(s.batch) * s.seq, HDim = std::int64_t(s.heads) * s.head_dim;
    const host::mixed::attention_wide w(s, wide);
    T* qf = w.qkv;
    T* of = w.out;
    widen(N * s.ld_q, q, qf);
    attention_forward<Flash, HD>(s, m, qf, qf + (k - q), qf + (v - q), of, stats);
    narrow(N * HDim, of, o);
  }
  template <bool Flash, int HD, class C>
  void attention_backward_mixed(const attention_shape& s, const attention_mask& m, const C* q, const C* k, const C* v,
                                const C* o, const C* dout, const T* stats, C* dq, C* dk, C* dv, T* scratch, T* wide) {
    const auto prof_scope = prof("attention_backward_mixed");
    if constexpr (bf16_flash<Flash, C>) {
      // the float copies' room (attention_wide_floats ≥ 2·N·ld_q) holds D and the float dQ
      attention_flash_backward_bf16(s, m, nv(q), nv(k), nv(v), nv(o), nv(dout), stats, nv(dq), nv(dk), nv(dv), wide,
                                    stream());
      return;
    }
    const std::int64_t N = std::int64_t(s.batch) * s.seq, HDim = std::int64_t(s.heads) * s.head_dim;
    const host::mixed::attention_wide w(s, wide);
    T *qf = w.qkv, *dqf = w.dqkv, *of = w.out, *dof = w.dout;
    widen(N * s.ld_q, q, qf);
    if constexpr (Flash) widen(N * HDim, o, of);  // the naive backward reads the probabilities, not o
    widen(N * HDim, dout, dof);
    attention_backward<Flash, HD>(s, m, qf, qf + (k - q), qf + (v - q), of, dof, stats, dqf, dqf + (dk - dq),
                                  dqf + (dv - dq), scratch);
    narrow(N * s.ld_q, dqf, dq);
  }

  // attention; Flash selects the kernel, stats are probabilities (naive) or logsumexp (flash)
  template <bool Flash>
  std::size_t attention_stats_size(const attention_shape& s) const {
    return Flash ? std::size_t(s.batch) * s.heads * s.seq : naive_probs_size(s);
  }
  template <bool Flash>
  std::size_t attention_scratch_size(const attention_shape& s) const {
    return Flash ? attention_flash_cuda_scratch_size(s) : attention_naive_cuda_scratch_size(s);
  }
  template <bool Flash, int HD>
  void attention_forward(const attention_shape& s, const attention_mask& m, const T* q, const T* k, const T* v, T* o,
                         T* stats) {
    const auto prof_scope = prof("attention_forward");
    if constexpr (Flash)
      attention_flash_forward_cuda<T, HD>(s, m, q, k, v, o, stats, stream());
    else
      attention_naive_forward_cuda<T, HD>(s, m, q, k, v, o, stats, stream());
  }
  template <bool Flash, int HD>
  void attention_backward(const attention_shape& s, const attention_mask& m, const T* q, const T* k, const T* v,
                          const T* o, const T* dout, const T* stats, T* dq, T* dk, T* dv, T* scratch) {
    const auto prof_scope = prof("attention_backward");
    if constexpr (Flash)
      attention_flash_backward_cuda<T, HD>(s, m, q, k, v, o, dout, stats, dq, dk, dv, scratch, stream());
    else
      attention_naive_backward_cuda<T, HD>(s, m, q, k, v, stats, dout, dq, dk, dv, scratch, stream());
  }

 private:
  // GELU and residual adds over contiguous arrays, as 16-byte words of S (or of T, for add) where
  // the pointers allow (ops_cuda's launch_elementwise); S is T or a compute type.
  template <class S>
  void gelu_fwd(std::int64_t n, const S* x, S* y) {
    namespace oc = detail::ops_cuda;
    constexpr int V = int(16 / sizeof(S));
    oc::launch_elementwise<V>(
        n, oc::word_aligned<V>(x) && oc::word_aligned<V>(y),
        [&](std::int64_t w) {
          oc::gelu_fwd_vec_kernel<T, S, V><<<oc::grid_for(w), oc::threads, 0, stream()>>>(w, x, y);
        },
        [&](std::int64_t o, std::int64_t m) {
          oc::gelu_fwd_kernel<T, S><<<oc::grid_for(m), oc::threads, 0, stream()>>>(m, x + o, y + o);
        });
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  template <class S>
  void gelu_bwd(std::int64_t n, const S* x, const S* dy, S* dx) {
    namespace oc = detail::ops_cuda;
    constexpr int V = int(16 / sizeof(S));
    oc::launch_elementwise<V>(
        n, oc::word_aligned<V>(x) && oc::word_aligned<V>(dy) && oc::word_aligned<V>(dx),
        [&](std::int64_t w) {
          oc::gelu_bwd_vec_kernel<T, S, V><<<oc::grid_for(w), oc::threads, 0, stream()>>>(w, x, dy, dx);
        },
        [&](std::int64_t o, std::int64_t m) {
          oc::gelu_bwd_kernel<T, S><<<oc::grid_for(m), oc::threads, 0, stream()>>>(m, x + o, dy + o, dx + o);
        });
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  // y = To(x) over n elements (narrow, widen): 4 per word (16 bytes of float, 8 of C).
  template <class From, class To>
  void convert(std::int64_t n, const From* x, To* y) {
    if (n == 0) return;
    namespace oc = detail::ops_cuda;
    constexpr int V = 4;
    oc::launch_elementwise<V>(
        n, oc::word_aligned<V>(x) && oc::word_aligned<V>(y),
        [&](std::int64_t w) {
          oc::convert_vec_kernel<From, To, V><<<oc::grid_for(w), oc::threads, 0, stream()>>>(w, x, y);
        },
        [&](std::int64_t o, std::int64_t m) {
          oc::convert_kernel<From, To><<<oc::grid_for(m), oc::threads, 0, stream()>>>(m, x + o, y + o);
        });
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  template <class S>
  void add_any(std::int64_t n, const T* a, const S* b, T* y) {
    namespace oc = detail::ops_cuda;
    constexpr int V = int(16 / sizeof(T));
    oc::launch_elementwise<V>(
        n, oc::word_aligned<V>(a) && oc::word_aligned<V>(b) && oc::word_aligned<V>(y),
        [&](std::int64_t w) { oc::add_vec_kernel<T, S, V><<<oc::grid_for(w), oc::threads, 0, stream()>>>(w, a, b, y); },
        [&](std::int64_t o, std::int64_t m) {
          oc::add_kernel<T, S><<<oc::grid_for(m), oc::threads, 0, stream()>>>(m, a + o, b + o, y + o);
        });
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  // db += Σ_rows dy (dy stored as G), deterministic: row chunks into scratch, then summed in order.
  template <class G>
  void bias_grad(std::int64_t N, int out, const G* dy, T* db, T* scratch) {
    const auto prof_scope = prof("bias_grad");
    if (N == 0) return;
    namespace oc = detail::ops_cuda;
    const std::int64_t chunk = (N + oc::bias_chunks - 1) / oc::bias_chunks;
    const int chunks = int((N + chunk - 1) / chunk);
    const dim3 grid(unsigned((out + 31) / 32), unsigned(chunks));
    oc::bias_partial_kernel<T, G><<<grid, dim3(32, 8), 0, stream()>>>(N, out, chunk, dy, scratch);
    TFM_CUDA_CHECK(cudaGetLastError());
    oc::bias_final_kernel<T><<<oc::grid_for(out), oc::threads, 0, stream()>>>(out, chunks, scratch, db);
    TFM_CUDA_CHECK(cudaGetLastError());
  }
  void gemm(float alpha, tfm::detail::strided_matrix<const T> a, tfm::detail::strided_matrix<const T> b, float beta,
            tfm::detail::strided_matrix<T> c) {
    tfm::detail::gemm_cuda(tfm::gemm_cublaslt<tfm::gemm_math::fp32>{}, alpha, a, b, beta, c,
                           tfm::cuda::stream_view(stream()), st_->lt, "nn::cuda_backend");
  }
  // The tensor-core math of compute type C (bf16 or fp16).
  template <class C>
  using mixed_math = std::conditional_t<std::is_same_v<C, tfm::bfloat16>, tfm::gemm_math::bf16, tfm::gemm_math::fp16>;
  // Compute-type operands on tensor cores (bf16 / fp16 math), float C.
  template <class C>
  void gemm_c(float alpha, tfm::detail::strided_matrix<const C> a, tfm::detail::strided_matrix<const C> b, float beta,
              tfm::detail::strided_matrix<T> c) {
    tfm::detail::gemm_cuda(tfm::gemm_cublaslt<mixed_math<C>>{}, alpha, a, b, beta, c, tfm::cuda::stream_view(stream()),
                           st_->lt, "nn::cuda_backend (mixed)");
  }
  // out [a.rows, b.cols] (row stride ld, type Y) = rnd(alpha·A·B + bias + beta·out): one cuBLASLt
  // call with a Y-typed D (fp32 accumulation, bias through the BIAS epilogue, one rounding: the
  // host's semantics without a float round trip). Where cuBLASLt cannot (no algorithm for the
  // alignment, the algorithm refused, K = 0), tiled_rounded computes the same through float tiles,
  // and the handle counts a fallback.
  template <class Y, class C>
  void gemm_rounded(float alpha, tfm::detail::strided_matrix<const C> a, tfm::detail::strided_matrix<const C> b,
                    double beta, const C* bias, Y* out, std::int64_t ld, T* tile) {
    const std::int64_t N = a.rows, M = b.cols;
    if (N == 0 || M == 0) return;
    if (a.cols > 0) {
      const tfm::detail::strided_matrix<Y> o{out, N, M, ld, 1};
      const auto sv = tfm::cuda::stream_view(stream());
      const bool done = bias ? tfm::detail::try_cublaslt_gemm_bias<mixed_math<C>>(st_->lt, alpha, a, b, float(beta), o,
                                                                                  bias, sv, "nn::cuda_backend (mixed, bias)")
                             : tfm::detail::try_cublaslt_gemm<mixed_math<C>>(st_->lt, alpha, a, b, float(beta), o, sv,
                                                                             "nn::cuda_backend (mixed)");
      if (done) return;
      st_->lt.count_fallback();
    }
    const auto prof_scope = prof("gemm_rounded fallback (float tiles)");
    tiled_rounded(alpha, a, b, beta, bias, out, ld, tile);
  }
  // gemm_rounded's float-tile path: tiles of alpha·A·B (the host's tile sizes) through gemm_c,
  // each rounded once to Y with the bias and beta·out.
  template <class Y, class C>
  void tiled_rounded(float alpha, tfm::detail::strided_matrix<const C> a, tfm::detail::strided_matrix<const C> b,
                     double beta, const C* bias, Y* out, std::int64_t ld, T* tile) {
    namespace oc = detail::ops_cuda;
    const std::int64_t N = a.rows, M = b.cols;
    const std::int64_t R = std::min(N, host::mixed::tile_rows);
    const std::int64_t CW = host::mixed::tile_cols(R, M);
    for (std::int64_t r0 = 0; r0 < N; r0 += R) {
      const std::int64_t rows = std::min(R, N - r0);
      const tfm::detail::strided_matrix<const C> ar{a.data + r0 * a.row_stride, rows, a.cols, a.row_stride,
                                                    a.col_stride};
      for (std::int64_t c0 = 0; c0 < M; c0 += CW) {
        const std::int64_t cols = std::min(CW, M - c0);
        const tfm::detail::strided_matrix<const C> bc{b.data + c0 * b.col_stride, b.rows, cols, b.row_stride,
                                                      b.col_stride};
        gemm_c(alpha, ar, bc, 0.0f, host::mat_mut(tile, rows, cols, cols));
        oc::round_tile_kernel<Y, C><<<oc::grid_for(rows * cols), oc::threads, 0, stream()>>>(
            rows, cols, tile, bias ? bias + c0 : nullptr, float(beta), out + r0 * ld + c0, ld);
        TFM_CUDA_CHECK(cudaGetLastError());
      }
    }
  }

  std::unique_ptr<detail::ops_cuda::cuda_state> st_;
};

template <class T>
struct backend_for<tfm::space::cuda, T> {
  using type = cuda_backend<T>;
};

}  // namespace tfm::nn
