// tfm/nn/storage_cuda.cuh — storage_ops<fp8<…>, space::cuda>: the device form of
// nn/storage_host.hpp's fp8 packing and unpacking (nn/storage.hpp describes the interface,
// docs/model.md "Weight storage" the math). All pointers are device pointers; every kernel and
// memset is queued on the backend's stream (nn/ops_cuda.cuh), nothing waits for it.
//
// The element math is nn::fp8_math's, shared with the host, and tfm's float8 / bfloat16 / half
// conversions are bit-exact between host and device, so packed bytes, scales and unpacked values
// equal the host ops' bit for bit. The amax is a max over uint32 bit patterns (order-independent),
// so atomics do not make it nondeterministic.
#pragma once
#include "tfm/nn/storage_host.hpp"  // the primary storage_ops template and the host specialisation

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/core/error.hpp"
#include "tfm/nn/storage.hpp"

namespace tfm::nn {

namespace detail::storage_cuda {

inline constexpr int threads = 256;  // multiple of 32, <= 1024 (block_max)

inline unsigned blocks_for(std::int64_t n, std::int64_t cap = 65536 * 8) {
  const std::int64_t b = (n + threads - 1) / threads;
  return unsigned(b < 1 ? 1 : b < cap ? b : cap);
}

#define TFM_STORAGE_CUDA_LOOP(i, n)                                                      \
  for (std::int64_t i = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x; i < (n); \
       i += std::int64_t(gridDim.x) * blockDim.x)

TFM_DEVICE std::uint32_t umax(std::uint32_t a, std::uint32_t b) { return a < b ? b : a; }

// Max over the block (blockDim.x a multiple of 32); every thread gets the result. `red` 32 slots.
TFM_DEVICE std::uint32_t block_max(std::uint32_t v, std::uint32_t* red) {
  const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
  for (int o = 16; o > 0; o >>= 1) v = umax(v, __shfl_xor_sync(0xffffffffu, v, o));
  __syncthreads();  // red may still be read by a previous call
  if (lane == 0) red[w] = v;
  __syncthreads();
  std::uint32_t r = lane < nw ? red[lane] : 0u;
  for (int o = 16; o > 0; o >>= 1) r = umax(r, __shfl_xor_sync(0xffffffffu, r, o));
  return r;
}

// Per tensor: amax[0] (zeroed before) = max |w| bits over n elements.
template <class W>
__global__ void amax_tensor_kernel(std::int64_t n, const W* w, std::uint32_t* amax) {
  __shared__ std::uint32_t red[32];
  std::uint32_t top = 0;
  TFM_STORAGE_CUDA_LOOP(i, n) top = umax(top, fp8_math::abs_bits(float(w[i])));
  top = block_max(top, red);
  if (threadIdx.x == 0 && top != 0u) atomicMax(amax, top);
}

// Per channel, [rows, cols] (out_in): one block per row (grid-stride over rows) writes amax[r].
template <class W>
__global__ void amax_rows_kernel(std::int64_t rows, std::int64_t cols, const W* w, std::uint32_t* amax) {
  __shared__ std::uint32_t red[32];
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const W* line = w + r * cols;
    std::uint32_t top = 0;
    for (std::int64_t c = threadIdx.x; c < cols; c += blockDim.x) top = umax(top, fp8_math::abs_bits(float(line[c])));
    top = block_max(top, red);
    if (threadIdx.x == 0) amax[r] = top;
  }
}

// Per channel, [cols, rows] (io): thread x of block (bx, by) takes channel r = bx·blockDim + x
// over lines c ≡ by (mod gridDim.y) (coalesced along r), then atomicMax into amax[r] (zeroed).
template <class W>
__global__ void amax_io_kernel(std::int64_t rows, std::int64_t cols, const W* w, std::uint32_t* amax) {
  const std::int64_t r = blockIdx.x * std::int64_t(blockDim.x) + threadIdx.x;
  if (r >= rows) return;
  std::uint32_t top = 0;
  for (std::int64_t c = blockIdx.y; c < cols; c += gridDim.y)
    top = umax(top, fp8_math::abs_bits(float(w[c * rows + r])));
  if (top != 0u) atomicMax(amax + r, top);
}

// In place: amax bit patterns → float scales (stored as their bits).
template <class F8>
__global__ void scales_kernel(std::int64_t ns, std::uint32_t* slots) {
  TFM_STORAGE_CUDA_LOOP(s, ns) {
    const float sc = fp8_math::scale<F8>(fp8_math::from_bits(slots[s]));
    slots[s] = tfm::detail::bit_cast<std::uint32_t>(sc);
  }
}

// q[idx] = the fp8 bits of w[idx] / its scale; channel = io ? idx % rows : idx / cols.
template <class F8, bool PerChannel, class W>
__global__ void quantize_kernel(std::int64_t rows, std::int64_t cols, bool io, const W* w,
                                const std::uint32_t* slots, std::uint8_t* q) {
  TFM_STORAGE_CUDA_LOOP(idx, rows * cols) {
    const std::int64_t ch = !PerChannel ? 0 : io ? idx % rows : idx / cols;
    const float s = fp8_math::from_bits(slots[ch]);
    q[idx] = fp8_math::quantize<F8>(float(w[idx]), s).bits();
  }
}

// out[idx] = C(float(q[idx]) · its scale), computed in float and rounded once.
template <class F8, bool PerChannel, class C>
__global__ void unpack_kernel(std::int64_t rows, std::int64_t cols, bool io, const std::uint8_t* q,
                              const float* scales, C* out) {
  TFM_STORAGE_CUDA_LOOP(idx, rows * cols) {
    const std::int64_t ch = !PerChannel ? 0 : io ? idx % rows : idx / cols;
    const float v = fp8_math::dequantize(float(F8::from_bits(q[idx])), scales[ch]);
    out[idx] = static_cast<C>(v);
  }
}

#undef TFM_STORAGE_CUDA_LOOP

}  // namespace detail::storage_cuda

template <class F8, fp8_scaling Sc>
struct storage_ops<fp8<F8, Sc>, tfm::space::cuda> {
  using traits = storage_traits<fp8<F8, Sc>>;
  static constexpr bool per_channel = Sc == fp8_scaling::per_channel;

  // dst (traits::bytes(m) bytes, device) = the fp8 form of the master weights w (device, float
  // or double). The scale area holds the amax bit patterns until the scales replace them.
  template <class Backend, class W>
  static void pack(Backend& be, matrix_shape m, const W* w, std::uint8_t* dst) {
    namespace sc = detail::storage_cuda;
    const cudaStream_t st = be.stream();
    auto* slots = reinterpret_cast<std::uint32_t*>(dst + traits::scale_offset(m));
    const std::int64_t ns = std::int64_t(traits::scales(m));
    if (ns == 0) return;  // no channels: no elements either
    if constexpr (!per_channel) {
      TFM_CUDA_CHECK(cudaMemsetAsync(slots, 0, sizeof(std::uint32_t), st));
      sc::amax_tensor_kernel<W><<<sc::blocks_for(m.size(), 1024), sc::threads, 0, st>>>(m.size(), w, slots);
      TFM_CUDA_CHECK(cudaGetLastError());
    } else if (!m.io) {
      const unsigned blocks = unsigned(m.rows < 65536 ? m.rows : 65536);
      sc::amax_rows_kernel<W><<<blocks, sc::threads, 0, st>>>(m.rows, m.cols, w, slots);
      TFM_CUDA_CHECK(cudaGetLastError());
    } else {
      TFM_CUDA_CHECK(cudaMemsetAsync(slots, 0, std::size_t(ns) * sizeof(std::uint32_t), st));
      const unsigned gx = sc::blocks_for(m.rows, 65536 * 8);
      // enough blocks to fill the device (about 1024), each line range at least one line
      const std::int64_t want_y = 1024 / std::int64_t(gx) > 1 ? 1024 / std::int64_t(gx) : 1;
      const unsigned gy = unsigned(m.cols < want_y ? (m.cols > 0 ? m.cols : 1) : want_y);
      sc::amax_io_kernel<W><<<dim3(gx, gy), sc::threads, 0, st>>>(m.rows, m.cols, w, slots);
      TFM_CUDA_CHECK(cudaGetLastError());
    }
    sc::scales_kernel<F8><<<sc::blocks_for(ns), sc::threads, 0, st>>>(ns, slots);
    TFM_CUDA_CHECK(cudaGetLastError());
    if (m.size() == 0) return;
    sc::quantize_kernel<F8, per_channel, W>
        <<<sc::blocks_for(m.size()), sc::threads, 0, st>>>(m.rows, m.cols, m.io, w, slots, dst);
    TFM_CUDA_CHECK(cudaGetLastError());
  }

  // out (device) [the matrix in the model's layout] = the widened fp8 values times their scales,
  // rounded once to C.
  template <class Backend, class C>
  static void unpack(Backend& be, matrix_shape m, const std::uint8_t* src, C* out) {
    namespace sc = detail::storage_cuda;
    if (m.size() == 0) return;
    const float* scales = reinterpret_cast<const float*>(src + traits::scale_offset(m));
    sc::unpack_kernel<F8, per_channel, C>
        <<<sc::blocks_for(m.size()), sc::threads, 0, be.stream()>>>(m.rows, m.cols, m.io, src, scales, out);
    TFM_CUDA_CHECK(cudaGetLastError());
  }
};

}  // namespace tfm::nn
