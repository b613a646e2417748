// tfm/train/optim_cuda.cuh — the optimizers of train/optim.hpp for models in the cuda space.
//
// Multi-tensor kernels: the parameter groups are cut once, at construction, into chunks of at
// most `chunk` elements (a chunk never spans two tensors); the chunk table lives on the device
// and one launch updates every tensor. The global gradient norm is two kernels: per-chunk sums
// of squares (fp32 accumulation in a block, stored as double), then one block that adds the
// partial sums in chunk order — the same bits every run — and writes the norm and a finite flag.
// grad_norm() reads those 16 bytes back (one synchronisation per optimizer step, none per layer).
//
// The interface is the host optimizers': groups(), trainable(), steps_taken(), grad_norm(),
// step(), state_to_host(), state_from_host(); state lives in device memory.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/core/error.hpp"
#include "tfm/core/memory.hpp"
#include "tfm/train/optim.hpp"

namespace tfm::train {

namespace cuda_detail {

struct chunk {
  unsigned long long off;   // first parameter of the chunk
  unsigned long long soff;  // its optimizer-state offset
  unsigned int len;
  float weight_decay;
};

inline constexpr unsigned int chunk_elems = 1u << 15;
inline constexpr int threads = 256;

inline std::vector<chunk> make_chunks(const std::vector<param_group>& groups) {
  std::vector<chunk> v;
  for (auto const& r : detail::flatten(groups))
    for (std::size_t b = 0; b < r.len; b += chunk_elems)
      v.push_back({r.off + b, r.soff + b, unsigned(std::min<std::size_t>(chunk_elems, r.len - b)), float(r.weight_decay)});
  return v;
}

// Sum of v over the block (blockDim.x == threads) by a fixed tree: the same order every run.
// The result is valid in thread 0.
template <class A>
__device__ A block_sum(A v, A* red) {
  red[threadIdx.x] = v;
  __syncthreads();
  for (int w = threads / 2; w > 0; w >>= 1) {
    if (int(threadIdx.x) < w) red[threadIdx.x] += red[threadIdx.x + w];
    __syncthreads();
  }
  return red[0];
}

template <class T>
__global__ void sumsq_kernel(const chunk* chunks, const T* g, double* partial) {
  const chunk c = chunks[blockIdx.x];
  float s = 0.f;
  for (unsigned i = threadIdx.x; i < c.len; i += blockDim.x) {
    const float x = float(g[c.off + i]);
    s = fmaf(x, x, s);
  }
  __shared__ float red[threads];
  const float total = block_sum(s, red);
  if (threadIdx.x == 0) partial[blockIdx.x] = double(total);
}

// One block: out[0] = Σ partial (fixed order per thread, fixed tree), out[1] = finite ? 1 : 0.
__global__ inline void sumsq_final_kernel(const double* partial, int n, double* out) {
  double s = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += partial[i];
  __shared__ double red[threads];
  const double total = block_sum(s, red);
  if (threadIdx.x == 0) {
    out[0] = total;
    out[1] = ::isfinite(total) ? 1.0 : 0.0;
  }
}

struct adamw_scalars {
  float b1, b2, c1, c2, step_size, inv_bc2_sqrt, eps, gs, lr;
};

template <class T>
__global__ void adamw_kernel(const chunk* chunks, adamw_scalars a, T* p, const T* g, float* m, float* v) {
  const chunk c = chunks[blockIdx.x];
  const float decay = 1.f - a.lr * c.weight_decay;
  for (unsigned i = threadIdx.x; i < c.len; i += blockDim.x) {
    const unsigned long long k = c.off + i, s = c.soff + i;
    const float gi = float(g[k]) * a.gs;
    const float mi = a.b1 * m[s] + a.c1 * gi;
    const float vi = a.b2 * v[s] + a.c2 * gi * gi;
    m[s] = mi;
    v[s] = vi;
    p[k] = T(float(p[k]) * decay - a.step_size * mi / (sqrtf(vi) * a.inv_bc2_sqrt + a.eps));
  }
}

template <class T>
__global__ void sgd_kernel(const chunk* chunks, float lr, float mu, float gs, bool nesterov, T* p, const T* g,
                           float* buf) {
  const chunk c = chunks[blockIdx.x];
  for (unsigned i = threadIdx.x; i < c.len; i += blockDim.x) {
    const unsigned long long k = c.off + i;
    float d = float(g[k]) * gs + c.weight_decay * float(p[k]);
    if (buf) {
      const float bi = mu * buf[c.soff + i] + d;
      buf[c.soff + i] = bi;
      d = nesterov ? d + mu * bi : bi;
    }
    p[k] = T(float(p[k]) - lr * d);
  }
}

// What both CUDA optimizers share: groups, chunk table, norm buffers, the stream.
class cuda_optimizer_base {
 public:
  cuda_optimizer_base(std::size_t n, std::vector<param_group> groups, const char* who, cudaStream_t stream)
      : n_(n), groups_(std::move(groups)), stream_(stream) {
    k_ = detail::assign_state(groups_, n, who);
    const auto ch = make_chunks(groups_);
    nchunks_ = int(ch.size());
    chunks_ = buffer<chunk, space::cuda>(std::max<std::size_t>(ch.size(), 1));
    if (!ch.empty())
      tfm::cuda::copy_async(chunks_.data(), ch.data(), ch.size() * sizeof(chunk), tfm::cuda::copy_kind::host_to_device,
                            stream_);
    partial_ = buffer<double, space::cuda>(std::max<std::size_t>(ch.size(), 1));
    result_ = buffer<double, space::cuda>(2);
    TFM_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the chunk table is a stack vector
  }
  const std::vector<param_group>& groups() const { return groups_; }
  std::size_t trainable() const { return k_; }
  std::int64_t steps_taken() const { return t_; }
  void set_steps_taken(std::int64_t t) { t_ = t; }
  cudaStream_t stream() const { return stream_; }
  // Runs every later kernel and copy on s. The model computes on its backend's non-blocking
  // stream, which the legacy default stream does not wait for: the optimizer must share that
  // stream (train::trainer binds it) or the caller synchronises between backward and step.
  void set_stream(cudaStream_t s) {
    if (s == stream_) return;
    TFM_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the constructor's fills, the last step
    stream_ = s;
  }

  template <class T>
  grad_stats grad_norm_impl(std::span<const T> g, double scale) {
    expects(g.size() == n_, "cuda optimizer: ", g.size(), " gradients for ", n_, " parameters");
    if (nchunks_ == 0) return {0.0, true};
    sumsq_kernel<T><<<nchunks_, threads, 0, stream_>>>(chunks_.data(), g.data(), partial_.data());
    sumsq_final_kernel<<<1, threads, 0, stream_>>>(partial_.data(), nchunks_, result_.data());
    TFM_CUDA_CHECK(cudaGetLastError());
    double r[2];
    tfm::cuda::copy_async(r, result_.data(), sizeof r, tfm::cuda::copy_kind::device_to_host, stream_);
    TFM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return {std::sqrt(r[0]) * std::abs(scale), r[1] != 0.0};
  }

 protected:
  std::vector<float> download(const buffer<float, space::cuda>& b) const {
    std::vector<float> h(b.size());
    if (!h.empty())
      tfm::cuda::copy_async(h.data(), b.data(), h.size() * sizeof(float), tfm::cuda::copy_kind::device_to_host, stream_);
    TFM_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return h;
  }
  void upload(buffer<float, space::cuda>& b, const std::vector<float>& h, const std::string& name) {
    expects(h.size() == b.size(), "cuda optimizer: state '", name, "' has ", h.size(), " values, expected ", b.size());
    if (!h.empty())
      tfm::cuda::copy_async(b.data(), h.data(), h.size() * sizeof(float), tfm::cuda::copy_kind::host_to_device, stream_);
    TFM_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  std::size_t n_, k_ = 0;
  std::vector<param_group> groups_;
  cudaStream_t stream_;
  int nchunks_ = 0;
  buffer<chunk, space::cuda> chunks_;
  buffer<double, space::cuda> partial_, result_;
  std::int64_t t_ = 0;
};

}  // namespace cuda_detail

// AdamW on device memory (fp32 state), the update of train::adamw.
template <class T>
class cuda_adamw : public cuda_detail::cuda_optimizer_base {
 public:
  using options = typename adamw<T>::options;
  cuda_adamw(std::size_t n, std::vector<param_group> groups, options o = {}, cudaStream_t stream = nullptr)
      : cuda_optimizer_base(n, std::move(groups), "cuda_adamw", stream), o_(o) {
    m_ = buffer<float, space::cuda>(std::max<std::size_t>(k_, 1));
    v_ = buffer<float, space::cuda>(std::max<std::size_t>(k_, 1));
    tfm::cuda::fill_async(m_.data(), 0, m_.size() * sizeof(float), stream_);
    tfm::cuda::fill_async(v_.data(), 0, v_.size() * sizeof(float), stream_);
  }
  std::size_t state_bytes() const { return 2 * k_ * sizeof(float); }
  grad_stats grad_norm(std::span<const T> g, double scale = 1.0) { return grad_norm_impl<T>(g, scale); }

  void step(std::span<T> params, std::span<const T> grads, double lr, double grad_scale = 1.0) {
    expects(params.size() == n_ && grads.size() == n_, "cuda_adamw::step: ", params.size(), " parameters and ",
            grads.size(), " gradients for ", n_);
    check_step_args("cuda_adamw::step", lr, grad_scale);
    ++t_;
    const double bc1 = 1.0 - std::pow(o_.beta1, double(t_)), bc2 = 1.0 - std::pow(o_.beta2, double(t_));
    const cuda_detail::adamw_scalars a{float(o_.beta1),  float(o_.beta2),  float(1 - o_.beta1),
                                       float(1 - o_.beta2), float(lr / bc1), float(1.0 / std::sqrt(bc2)),
                                       float(o_.eps),    float(grad_scale), float(lr)};
    if (nchunks_ == 0) return;
    cuda_detail::adamw_kernel<T><<<nchunks_, cuda_detail::threads, 0, stream_>>>(chunks_.data(), a, params.data(),
                                                                                 grads.data(), m_.data(), v_.data());
    TFM_CUDA_CHECK(cudaGetLastError());
  }

  std::map<std::string, std::size_t> state_sizes() const { return {{"exp_avg", k_}, {"exp_avg_sq", k_}}; }
  std::map<std::string, std::vector<float>> state_to_host() const {
    auto m = download(m_), v = download(v_);
    m.resize(k_);
    v.resize(k_);
    return {{"exp_avg", std::move(m)}, {"exp_avg_sq", std::move(v)}};
  }
  void state_from_host(const std::map<std::string, std::vector<float>>& s) {
    for (const char* k : {"exp_avg", "exp_avg_sq"})
      expects(s.count(k) == 1, "cuda_adamw: the saved state has no '", k, "'");
    auto pad = [&](std::vector<float> v) {
      v.resize(std::max<std::size_t>(k_, 1));
      return v;
    };
    expects(s.at("exp_avg").size() == k_ && s.at("exp_avg_sq").size() == k_, "cuda_adamw: saved state holds ",
            s.at("exp_avg").size(), " values, this optimizer has ", k_);
    upload(m_, pad(s.at("exp_avg")), "exp_avg");
    upload(v_, pad(s.at("exp_avg_sq")), "exp_avg_sq");
  }

 private:
  options o_;
  buffer<float, space::cuda> m_, v_;
};

// SGD with momentum on device memory, the update of train::sgd.
template <class T>
class cuda_sgd : public cuda_detail::cuda_optimizer_base {
 public:
  using options = typename sgd<T>::options;
  cuda_sgd(std::size_t n, std::vector<param_group> groups, options o = {}, cudaStream_t stream = nullptr)
      : cuda_optimizer_base(n, std::move(groups), "cuda_sgd", stream), o_(o) {
    if (o.momentum > 0) {
      buf_ = buffer<float, space::cuda>(std::max<std::size_t>(k_, 1));
      tfm::cuda::fill_async(buf_.data(), 0, buf_.size() * sizeof(float), stream_);
    }
  }
  std::size_t state_bytes() const { return o_.momentum > 0 ? k_ * sizeof(float) : 0; }
  grad_stats grad_norm(std::span<const T> g, double scale = 1.0) { return grad_norm_impl<T>(g, scale); }

  void step(std::span<T> params, std::span<const T> grads, double lr, double grad_scale = 1.0) {
    expects(params.size() == n_ && grads.size() == n_, "cuda_sgd::step: ", params.size(), " parameters and ",
            grads.size(), " gradients for ", n_);
    check_step_args("cuda_sgd::step", lr, grad_scale);
    ++t_;
    if (nchunks_ == 0) return;
    cuda_detail::sgd_kernel<T><<<nchunks_, cuda_detail::threads, 0, stream_>>>(
        chunks_.data(), float(lr), float(o_.momentum), float(grad_scale), o_.nesterov, params.data(), grads.data(),
        o_.momentum > 0 ? buf_.data() : nullptr);
    TFM_CUDA_CHECK(cudaGetLastError());
  }

  std::map<std::string, std::size_t> state_sizes() const {
    if (o_.momentum <= 0) return {};
    return {{"momentum_buffer", k_}};
  }
  std::map<std::string, std::vector<float>> state_to_host() const {
    if (o_.momentum <= 0) return {};
    auto b = download(buf_);
    b.resize(k_);
    return {{"momentum_buffer", std::move(b)}};
  }
  void state_from_host(const std::map<std::string, std::vector<float>>& s) {
    if (o_.momentum <= 0) return;
    expects(s.count("momentum_buffer") == 1 && s.at("momentum_buffer").size() == k_,
            "cuda_sgd: the saved state has no momentum_buffer of ", k_, " values");
    auto b = s.at("momentum_buffer");
    b.resize(std::max<std::size_t>(k_, 1));
    upload(buf_, b, "momentum_buffer");
  }

 private:
  options o_;
  buffer<float, space::cuda> buf_;
};

}  // namespace tfm::train
