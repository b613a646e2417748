// tfm/train/optim.hpp — optimizers over a model's flat parameter array: AdamW (decoupled weight
// decay, the update PyTorch's torch.optim.AdamW computes) and SGD with momentum (PyTorch's
// torch.optim.SGD), with parameter groups, and the global gradient norm used for clipping.
//
// An optimizer sees three flat arrays of the same length — parameters, gradients and its own
// state — and a list of groups, each a set of [offset, offset + size) ranges with its own weight
// decay. Building the groups from a model's parameter table lets norms, biases and embeddings be
// excluded from decay (decay_groups below).
//
// step(params, grads, lr, grad_scale) applies grad_scale to every gradient as it reads it, so
// gradient accumulation (1/steps) and clipping (max_norm/‖g‖) cost no separate pass. Every loop
// is elementwise with a static partition over threads: the result does not depend on timing.
//
// step(params, grads, lr, grad_scale, copy) also calls copy(off, n) for each block of
// copy_block_elements parameters right after updating it: with nn::model::update_parameters this
// writes a mixed-precision model's compute copy while the block is still in cache, instead of the
// next forward narrowing every parameter again. Where the writer hands out the block's copy
// (contiguous(off, n), a bfloat16 copy) and the CPU has AVX512_BF16, AdamW's vector loop writes
// it as it stores each updated vector.
#pragma once
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tfm/backend/host/cpu.hpp"
#include "tfm/backend/host/threading.hpp"
#include "tfm/backend/host/zero.hpp"
#include "tfm/core/dtype.hpp"
#include "tfm/core/memory.hpp"
#if TFM_HOST_X86_SIMD || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#include "tfm/core/error.hpp"
#include "tfm/nn/model.hpp"

namespace tfm::train {

// A set of parameter ranges that share optimizer settings.
struct param_group {
  std::string name;
  std::vector<std::pair<std::size_t, std::size_t>> ranges;  // (offset, size) in elements
  double weight_decay = 0;
  std::size_t numel() const {
    std::size_t n = 0;
    for (auto const& r : ranges) n += r.second;
    return n;
  }
};

// What kind of tensor a parameter is, from its name and role in the table (docs/model.md).
enum class param_kind { matrix, embedding, norm, bias };

inline param_kind classify(const nn::param_info& p) {
  const std::string& n = p.name;
  auto ends = [&](std::string_view s) { return n.size() >= s.size() && n.compare(n.size() - s.size(), s.size(), s) == 0; };
  if (n == "wte" || n == "wpe" || n == "lm_head.weight") return param_kind::embedding;
  if (ends(".bias")) return param_kind::bias;
  if (n.find("ln_") != std::string::npos || n.find("norm") != std::string::npos) return param_kind::norm;
  if (p.matrix || p.shape.size() >= 2) return param_kind::matrix;
  return param_kind::bias;
}

// Which kinds of parameter weight decay applies to. The default is nanoGPT's rule (every tensor
// of two or more dimensions decays: block matrices and embeddings; norms and biases do not).
struct decay_policy {
  double weight_decay = 0.1;
  bool matrices = true, embeddings = true, norms = false, biases = false;
  bool applies(param_kind k) const {
    switch (k) {
      case param_kind::matrix: return matrices;
      case param_kind::embedding: return embeddings;
      case param_kind::norm: return norms;
      case param_kind::bias: return biases;
    }
    return false;
  }
};

// Two groups ("decay", "no_decay") from a parameter table; `trainable` (optional) filters names.
// Ranges are in gradient space (param_info::grad_offset): frozen tensors (a LoRA model's base)
// are left out, and the groups index model.trainable_parameters() and model.gradients().
template <class Pred = bool (*)(const nn::param_info&)>
std::vector<param_group> decay_groups(const std::vector<nn::param_info>& table, const decay_policy& pol,
                                      Pred trainable = [](const nn::param_info&) { return true; }) {
  param_group decay{"decay", {}, pol.weight_decay}, plain{"no_decay", {}, 0.0};
  for (auto const& p : table) {
    if (!p.trainable || p.grad_offset < 0 || !trainable(p)) continue;
    (pol.applies(classify(p)) ? decay : plain).ranges.emplace_back(std::size_t(p.grad_offset), p.size);
  }
  std::vector<param_group> g;
  if (!decay.ranges.empty()) g.push_back(std::move(decay));
  if (!plain.ranges.empty()) g.push_back(std::move(plain));
  return g;
}

// Checks that groups are inside [0, n) and do not overlap (a parameter updated twice per step
// would be a silent bug).
inline void check_groups(const std::vector<param_group>& groups, std::size_t n, const char* who) {
  std::vector<std::pair<std::size_t, std::size_t>> all;
  for (auto const& g : groups) {
    expects(std::isfinite(g.weight_decay) && g.weight_decay >= 0, who, ": group '", g.name, "' has weight decay ",
            g.weight_decay, "; it must be finite and not negative");
    for (auto const& r : g.ranges) {
      expects(r.first <= n && r.second <= n - r.first, who, ": group '", g.name, "' range [", r.first, ", ",
              r.first + r.second, ") is outside the ", n, " parameters");
      all.push_back(r);
    }
  }
  std::sort(all.begin(), all.end());
  for (std::size_t i = 1; i < all.size(); ++i)
    expects(all[i - 1].first + all[i - 1].second <= all[i].first, who, ": parameter ranges overlap at offset ",
            all[i].first);
}

// Checks the arguments every optimizer step takes: a NaN or negative learning rate would train
// every weight into garbage (or uphill) without any error.
inline void check_step_args(const char* who, double lr, double grad_scale) {
  expects(std::isfinite(lr) && lr >= 0, who, ": the learning rate must be finite and not negative, got ", lr);
  expects(std::isfinite(grad_scale) && grad_scale >= 0, who,
          ": the gradient scale must be finite and not negative, got ", grad_scale);
}

namespace detail {
// Checks the groups and returns how many elements they hold: the length of the compact state
// array (state exists only for parameters in some group: frozen ones cost no optimizer memory).
inline std::size_t assign_state(const std::vector<param_group>& groups, std::size_t n, const char* who) {
  check_groups(groups, n, who);
  std::size_t k = 0;
  for (auto const& g : groups) k += g.numel();
  return k;
}

// One contiguous piece of parameters with what the update needs to know about it.
struct flat_range {
  std::size_t off, len, soff;  // parameter offset, elements, offset in the optimizer state
  double weight_decay;
};

inline std::vector<flat_range> flatten(const std::vector<param_group>& groups) {
  std::vector<flat_range> v;
  std::size_t k = 0;
  for (auto const& g : groups)
    for (auto const& r : g.ranges) v.push_back({r.first, r.second, k, g.weight_decay}), k += r.second;
  return v;
}

// Calls f(thread, range, begin, end) over a static partition of the concatenated ranges: one
// contiguous share per thread and a single fork-join per call, however many tensors there are
// (a fork-join per tensor costs more than the update itself for small models). A share starts at
// a parameter offset that is a multiple of 16 (64 bytes of fp32), unless it starts a range.
template <class F>
void parallel_over(const std::vector<flat_range>& rs, F&& f) {
  std::size_t total = 0;
  for (auto const& r : rs) total += r.len;
  const int want = total < (std::size_t{1} << 15) ? 1 : tfm::host::num_threads();
  // concatenated index x moved down to the nearest multiple-of-16 parameter offset in its range
  const auto snap = [&](std::size_t x) {
    std::size_t base = 0;
    for (auto const& r : rs) {
      if (x < base + r.len) {
        const std::size_t local = x - base;
        return base + local - std::min(local, (r.off + local) % 16);
      }
      base += r.len;
    }
    return total;
  };
  tfm::host::parallel(want, [&](int t, int nt) {
    const std::size_t chunk = (total + std::size_t(nt) - 1) / std::size_t(nt);
    std::size_t b = snap(std::min(total, chunk * std::size_t(t)));
    const std::size_t e = snap(std::min(total, chunk * std::size_t(t + 1)));
    std::size_t base = 0;  // concatenated index of the start of range i
    for (std::size_t i = 0; i < rs.size() && b < e; base += rs[i].len, ++i) {
      if (b >= base + rs[i].len) continue;
      const std::size_t lo = b - base, hi = std::min(rs[i].len, e - base);
      f(t, rs[i], lo, hi);
      b = base + hi;
    }
  });
}
}  // namespace detail

// Sum of squares of `g` (times scale²) over the ranges of `groups` in double, and whether every
// element is finite. Partial sums are combined in thread order: deterministic for a thread count.
struct grad_stats {
  double norm = 0;  // sqrt of the sum of squares
  bool finite = true;
};

namespace detail {
#if TFM_HOST_X86_SIMD
// Σ x² over x[0, n) in double, n a multiple of 128, read as 8 interleaved sub-streams (one per
// eighth of the array). One sequential stream per thread keeps too few cache misses in flight:
// on the 2-core Xeon a 124M-float sum took 28 ms as one stream per thread and 14 ms as eight.
TFM_TARGET_AVX512 inline double sum_squares_avx512(const float* x, std::size_t n) {
  constexpr std::size_t S = 8;
  const std::size_t len = n / S;
  __m512d acc[2 * S];
  for (auto& a : acc) a = _mm512_setzero_pd();
  for (std::size_t i = 0; i < len; i += 16) {
#pragma GCC unroll 8
    for (std::size_t k = 0; k < S; ++k) {
      const __m512 v = _mm512_loadu_ps(x + k * len + i);
      // the maskz forms: GCC 12 warns that the unmasked ones read an uninitialised register
      const __m512d lo = _mm512_maskz_cvtps_pd(0xFF, _mm512_maskz_extractf32x8_ps(0xFF, v, 0));
      const __m512d hi = _mm512_maskz_cvtps_pd(0xFF, _mm512_maskz_extractf32x8_ps(0xFF, v, 1));
      acc[2 * k] = _mm512_fmadd_pd(lo, lo, acc[2 * k]);
      acc[2 * k + 1] = _mm512_fmadd_pd(hi, hi, acc[2 * k + 1]);
    }
  }
  for (std::size_t w = S; w > 0; w /= 2)  // pairwise, in a fixed order
    for (std::size_t k = 0; k < w; ++k) acc[k] = _mm512_add_pd(acc[k], acc[k + w]);
  alignas(64) double t[8];
  _mm512_store_pd(t, acc[0]);
  return ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
}
#endif

// Σ x² over x[0, n) in double: a fixed order of operations for a given build and CPU.
template <class T>
double sum_squares(const T* x, std::size_t n) {
  double s = 0;
  std::size_t i = 0;
#if TFM_HOST_X86_SIMD
  if constexpr (std::is_same_v<T, float>) {
    if (n >= 4096 && tfm::host::cpu_runs<tfm::host::isa::avx512>()) {
      i = n / 128 * 128;
      s = sum_squares_avx512(x, i);
    }
  }
#endif
  double t = 0;  // simd lanes of double partial sums
#pragma omp simd reduction(+ : t)
  for (std::size_t j = i; j < n; ++j) t += double(x[j]) * double(x[j]);
  return s + t;
}
}  // namespace detail

template <class T>
grad_stats global_grad_norm(std::span<const T> g, const std::vector<param_group>& groups, double scale = 1.0) {
  const auto rs = detail::flatten(groups);
  const int nt = std::max(1, tfm::host::num_threads());
  std::vector<double> part(std::size_t(nt) * 8, 0.0);  // 64 bytes apart: no false sharing
  detail::parallel_over(rs, [&](int t, const detail::flat_range& r, std::size_t b, std::size_t e) {
    part[std::size_t(t) * 8] += detail::sum_squares(g.data() + r.off + b, e - b);
  });
  double total = 0;
  for (int t = 0; t < nt; ++t) total += part[std::size_t(t) * 8];  // thread order: deterministic
  // an Inf or NaN element makes its partial sum, and so the total, non-finite
  return {std::sqrt(total) * std::abs(scale), std::isfinite(total)};
}

// PyTorch's clip_grad_norm_ factor: max_norm / (norm + 1e-6), at most 1; max_norm <= 0 = no clipping.
inline double clip_factor(double norm, double max_norm) {
  if (max_norm <= 0) return 1.0;
  return std::min(1.0, max_norm / (norm + 1e-6));
}

// One named state array of an optimizer (for checkpoints).
template <class S>
struct state_tensor {
  std::string name;
  std::span<S> data;
};

// What step() does after updating a block when there is no copy to write.
struct no_copy {
  void operator()(std::size_t, std::size_t) const noexcept {}
};
// Parameters per block between an update and its copy (64 KiB of fp32: in L2 on every x86).
inline constexpr std::size_t copy_block_elements = std::size_t(1) << 14;

namespace detail {
// n zeroed state values in a host buffer: 2 MiB aligned and offered to huge pages from 4 MiB on,
// like the model's parameters and gradients (core/memory.hpp), so every array an update streams
// is placed alike.
template <class S>
tfm::buffer<S> zeroed_state(std::size_t n) {
  tfm::buffer<S> b(n);
  tfm::host::zero_fill(b.data(), n);
  return b;
}
// Where a Copy writer lets step() write the copy itself: its compute_type when it has
// contiguous(off, n) (the copy of [off, off + n) as one array, or null) and streaming(); else void.
template <class Copy>
struct copy_target {
  using type = void;
};
template <class Copy>
requires requires(const Copy& c) {
  { c.contiguous(std::size_t{}, std::size_t{}) } -> std::same_as<typename Copy::compute_type*>;
  { c.streaming() } -> std::convertible_to<bool>;
}
struct copy_target<Copy> {
  using type = typename Copy::compute_type;
};

// update(r, b, e, dst, stream) over elements [b, e) of range r. With a copy to write: in blocks
// of copy_block_elements; dst is the block's copy when the writer hands it out (else null), and
// update returns how many leading elements of the block it wrote there itself; copy(offset,
// length) writes the rest of the block, right after the update.
template <class Copy, class Update>
void blockwise(const flat_range& r, std::size_t b, std::size_t e, Update& update, const Copy& copy) {
  using target = typename copy_target<Copy>::type;
  if constexpr (std::is_same_v<Copy, no_copy>) {
    update(r, b, e, static_cast<target*>(nullptr), false);
  } else {
    for (std::size_t i = b; i < e; i += copy_block_elements) {
      const std::size_t j = std::min(e, i + copy_block_elements);
      target* dst = nullptr;
      bool stream = false;
      if constexpr (!std::is_void_v<target>) {
        dst = copy.contiguous(r.off + i, j - i);
        stream = copy.streaming();
      }
      const std::size_t done = update(r, i, j, dst, stream);
      if (done < j - i) copy(r.off + i + done, j - i - done);
    }
  }
}
// The constants of one fp32 AdamW update (see adamw::step).
struct adamw_consts {
  float b1, b2, c1, c2, grad_scale, decay, step_size, inv_bc2_sqrt, eps;
};
#if TFM_HOST_X86_SIMD
struct adamw_lanes {
  __m512 b1, b2, c1, c2, gs, dec, step, inv, eps;
};
TFM_TARGET_AVX512 inline adamw_lanes adamw_broadcast(const adamw_consts& k) {
  return {_mm512_set1_ps(k.b1),        _mm512_set1_ps(k.b2),           _mm512_set1_ps(k.c1),
          _mm512_set1_ps(k.c2),        _mm512_set1_ps(k.grad_scale),   _mm512_set1_ps(k.decay),
          _mm512_set1_ps(k.step_size), _mm512_set1_ps(k.inv_bc2_sqrt), _mm512_set1_ps(k.eps)};
}
// AdamW on the 16 elements at i: stores m and v, returns the new p (the caller stores it). The
// arithmetic of adamw::step's AVX2 loop and scalar tail (vector sqrt and division are correctly
// rounded, as std::sqrt and /).
TFM_TARGET_AVX512 __attribute__((always_inline)) inline __m512 adamw_16(const float* p, const float* g, float* m,
                                                                        float* v, const adamw_lanes& k) {
  const __m512 gi = _mm512_mul_ps(_mm512_loadu_ps(g), k.gs);
  const __m512 mi = _mm512_add_ps(_mm512_mul_ps(k.b1, _mm512_loadu_ps(m)), _mm512_mul_ps(k.c1, gi));
  const __m512 vi = _mm512_add_ps(_mm512_mul_ps(k.b2, _mm512_loadu_ps(v)), _mm512_mul_ps(_mm512_mul_ps(k.c2, gi), gi));
  _mm512_storeu_ps(m, mi);
  _mm512_storeu_ps(v, vi);
  const __m512 den = _mm512_add_ps(_mm512_mul_ps(_mm512_maskz_sqrt_ps(0xFFFF, vi), k.inv), k.eps);
  const __m512 upd = _mm512_div_ps(_mm512_mul_ps(k.step, mi), den);
  return _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(p), k.dec), upd);
}
// AdamW over n elements (a multiple of 16), 16 lanes at a time.
TFM_TARGET_AVX512 inline void adamw_avx512(float* p, const float* g, float* m, float* v, std::size_t n,
                                           const adamw_consts& k) {
  const adamw_lanes kl = adamw_broadcast(k);
  for (std::size_t i = 0; i < n; i += 16) _mm512_storeu_ps(p + i, adamw_16(p + i, g + i, m + i, v + i, kl));
}
// The same, also writing each new p rounded to bfloat16 into c (a mixed-precision model's
// compute copy): to nearest even as the host narrow does, NaN as bfloat16's NaN; with streaming
// stores when `stream` and c is 32-byte aligned. Writing the copy this way instead of narrowing
// each block after its update took GPT-2 small's bf16 step from 1% to 3% faster than the path that
// narrows every parameter in the next forward (bench_trainer BM_step_copy_interleaved, 2-core Zen 5:
// the optimizer 6-7 ms slower, forward+backward 16-18 ms faster).
TFM_TARGET_AVX512_BF16 inline void adamw_avx512_bf16_copy(float* p, const float* g, float* m, float* v, std::size_t n,
                                                          const adamw_consts& k, bfloat16* c, bool stream) {
  const adamw_lanes kl = adamw_broadcast(k);
  const __m256i qnan = _mm256_set1_epi16(static_cast<short>(bfloat16(std::numeric_limits<float>::quiet_NaN()).bits()));
  const bool nt = stream && reinterpret_cast<std::uintptr_t>(c) % 32 == 0;
  for (std::size_t i = 0; i < n; i += 16) {
    const __m512 pn = adamw_16(p + i, g + i, m + i, v + i, kl);
    _mm512_storeu_ps(p + i, pn);
    __m256i h = reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(pn));
    h = _mm256_mask_mov_epi16(h, _mm512_cmp_ps_mask(pn, pn, _CMP_UNORD_Q), qnan);
    if (nt)
      _mm256_stream_si256(reinterpret_cast<__m256i*>(c + i), h);
    else
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(c + i), h);
  }
  if (nt) _mm_sfence();  // weakly ordered: visible before the join
}
#endif

// What the host optimizers share: the groups and their flattened ranges, the step count, the
// gradient norm over the groups, and the state as named fp32 arrays (Derived::state()).
template <class Derived, class T>
class host_optimizer {
 public:
  const std::vector<param_group>& groups() const { return groups_; }
  std::int64_t steps_taken() const { return t_; }
  void set_steps_taken(std::int64_t t) { t_ = t; }
  // Elements that get a state (the trainable ones); parameters in no group have none.
  std::size_t trainable() const { return k_; }

  // The global gradient norm over this optimizer's groups (how the trainer clips and skips).
  grad_stats grad_norm(std::span<const T> g, double scale = 1.0) const { return global_grad_norm<T>(g, groups_, scale); }

  // Names and lengths of the state arrays (what a checkpoint must hold for this optimizer).
  std::map<std::string, std::size_t> state_sizes() {
    std::map<std::string, std::size_t> m;
    for (auto& st : static_cast<Derived*>(this)->state()) m[st.name] = st.data.size();
    return m;
  }
  // The state as fp32 host arrays by name (checkpoints), and back.
  std::map<std::string, std::vector<float>> state_to_host() {
    std::map<std::string, std::vector<float>> m;
    for (auto& st : static_cast<Derived*>(this)->state()) m[st.name].assign(st.data.begin(), st.data.end());
    return m;
  }
  void state_from_host(const std::map<std::string, std::vector<float>>& saved) {
    for (auto& st : static_cast<Derived*>(this)->state()) {
      auto it = saved.find(st.name);
      expects(it != saved.end(), "optimizer: the saved state has no '", st.name, "'");
      expects(it->second.size() == st.data.size(), "optimizer: saved state '", st.name, "' has ", it->second.size(),
              " values, this optimizer has ", st.data.size());
      std::copy(it->second.begin(), it->second.end(), st.data.begin());
    }
  }

 protected:
  host_optimizer(std::size_t n, std::vector<param_group> groups, const char* who)
      : n_(n), groups_(std::move(groups)), k_(assign_state(groups_, n, who)), ranges_(flatten(groups_)) {}

  std::size_t n_;
  std::vector<param_group> groups_;
  std::size_t k_;
  std::vector<flat_range> ranges_;
  std::int64_t t_ = 0;
};
}  // namespace detail

// AdamW: m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p·(1 − lr·wd) − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
// Parameters of type T; state in S (float by default, also for a reduced-precision T later).
template <class T, class S = float>
class adamw : public detail::host_optimizer<adamw<T, S>, T> {
  using base = detail::host_optimizer<adamw<T, S>, T>;
  using base::k_, base::n_, base::ranges_, base::t_;

 public:
  struct options {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  };
  adamw(std::size_t n, std::vector<param_group> groups, options o = {})
      : base(n, std::move(groups), "adamw"), o_(o), m_(detail::zeroed_state<S>(k_)), v_(detail::zeroed_state<S>(k_)) {
    expects(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1 && o.eps > 0,
            "adamw: need 0 <= beta1, beta2 < 1 and eps > 0, got beta1=", o.beta1, " beta2=", o.beta2, " eps=", o.eps);
  }

  std::size_t state_bytes() const { return (m_.size() + v_.size()) * sizeof(S); }
  std::vector<state_tensor<S>> state() { return {{"exp_avg", {m_.data(), m_.size()}}, {"exp_avg_sq", {v_.data(), v_.size()}}}; }

  template <class Copy = no_copy>
  void step(std::span<T> params, std::span<const T> grads, double lr, double grad_scale = 1.0, const Copy& copy = {}) {
    expects(params.size() == n_ && grads.size() == n_, "adamw::step: ", params.size(), " parameters and ",
            grads.size(), " gradients for an optimizer of ", n_);
    check_step_args("adamw::step", lr, grad_scale);
    ++t_;
    const double bc1 = 1.0 - std::pow(o_.beta1, double(t_));
    const double bc2 = 1.0 - std::pow(o_.beta2, double(t_));
    const S b1 = S(o_.beta1), b2 = S(o_.beta2), c1 = S(1 - o_.beta1), c2 = S(1 - o_.beta2);
    const S step_size = S(lr / bc1), eps = S(o_.eps), gs = S(grad_scale);
    const S inv_bc2_sqrt = S(1.0 / std::sqrt(bc2));
    // returns how many leading elements of [b, e) it also wrote to dst (the block's copy)
    const auto update = [&](const detail::flat_range& r, std::size_t b, std::size_t e, [[maybe_unused]] auto* dst,
                            [[maybe_unused]] bool stream) -> std::size_t {
      const S decay = S(1.0 - lr * r.weight_decay);
      T* p = params.data() + r.off;
      const T* g = grads.data() + r.off;
      S* m = m_.data() + r.soff;
      S* v = v_.data() + r.soff;
      std::size_t i = b, copied = 0;
#if TFM_HOST_X86_SIMD
      if constexpr (std::is_same_v<T, float> && std::is_same_v<S, float>) {
        if (tfm::host::cpu_runs<tfm::host::isa::avx512>()) {
          const std::size_t n16 = (e - b) / 16 * 16;
          const detail::adamw_consts k{b1, b2, c1, c2, gs, decay, step_size, inv_bc2_sqrt, eps};
          if constexpr (std::is_same_v<std::remove_cv_t<std::remove_pointer_t<decltype(dst)>>, bfloat16>) {
            if (dst != nullptr && tfm::host::cpu_runs<tfm::host::isa::avx512_bf16>()) {
              detail::adamw_avx512_bf16_copy(p + b, g + b, m + b, v + b, n16, k, dst, stream);
              copied = n16;
            }
          }
          if (copied == 0) detail::adamw_avx512(p + b, g + b, m + b, v + b, n16, k);
          i += n16;
        }
      }
#endif
#if defined(__AVX2__) && defined(__FMA__)
      // std::sqrt keeps the loop scalar (errno handling); v >= 0 here, so the vector sqrt is exact
      if constexpr (std::is_same_v<T, float> && std::is_same_v<S, float>) {
        const __m256 vb1 = _mm256_set1_ps(b1), vb2 = _mm256_set1_ps(b2), vc1 = _mm256_set1_ps(c1),
                     vc2 = _mm256_set1_ps(c2), vgs = _mm256_set1_ps(gs), vdec = _mm256_set1_ps(decay),
                     vstep = _mm256_set1_ps(step_size), vinv = _mm256_set1_ps(inv_bc2_sqrt), veps = _mm256_set1_ps(eps);
        for (; i + 8 <= e; i += 8) {
          const __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), vgs);
          const __m256 mi = _mm256_add_ps(_mm256_mul_ps(vb1, _mm256_loadu_ps(m + i)), _mm256_mul_ps(vc1, gi));
          const __m256 vi =
              _mm256_add_ps(_mm256_mul_ps(vb2, _mm256_loadu_ps(v + i)), _mm256_mul_ps(_mm256_mul_ps(vc2, gi), gi));
          _mm256_storeu_ps(m + i, mi);
          _mm256_storeu_ps(v + i, vi);
          const __m256 den = _mm256_add_ps(_mm256_mul_ps(_mm256_sqrt_ps(vi), vinv), veps);
          const __m256 upd = _mm256_div_ps(_mm256_mul_ps(vstep, mi), den);
          _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(p + i), vdec), upd));
        }
      }
#endif
      for (; i < e; ++i) {
        const S gi = S(g[i]) * gs;
        const S mi = b1 * m[i] + c1 * gi;
        const S vi = b2 * v[i] + c2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] = T(S(p[i]) * decay - step_size * mi / (std::sqrt(vi) * inv_bc2_sqrt + eps));
      }
      return copied;
    };
    detail::parallel_over(ranges_, [&](int, const detail::flat_range& r, std::size_t b, std::size_t e) {
      detail::blockwise<Copy>(r, b, e, update, copy);
    });
  }

 private:
  options o_;
  tfm::buffer<S> m_, v_;  // host buffers: huge pages at GPT-2 sizes (core/memory.hpp)
};

// SGD with momentum (PyTorch's rule: weight decay as L2 added to the gradient, buf ← μ·buf + g,
// Nesterov optional, p ← p − lr·update).
template <class T, class S = float>
class sgd : public detail::host_optimizer<sgd<T, S>, T> {
  using base = detail::host_optimizer<sgd<T, S>, T>;
  using base::k_, base::n_, base::ranges_, base::t_;

 public:
  struct options {
    double momentum = 0.9;
    bool nesterov = false;
  };
  sgd(std::size_t n, std::vector<param_group> groups, options o = {})
      : base(n, std::move(groups), "sgd"), o_(o), buf_(detail::zeroed_state<S>(o.momentum > 0 ? k_ : 0)) {
    expects(o.momentum >= 0 && o.momentum < 1, "sgd: momentum must be in [0, 1), got ", o.momentum);
  }
  std::size_t state_bytes() const { return buf_.size() * sizeof(S); }
  std::vector<state_tensor<S>> state() {
    if (buf_.empty()) return {};
    return {{"momentum_buffer", {buf_.data(), buf_.size()}}};
  }

  template <class Copy = no_copy>
  void step(std::span<T> params, std::span<const T> grads, double lr, double grad_scale = 1.0, const Copy& copy = {}) {
    expects(params.size() == n_ && grads.size() == n_, "sgd::step: ", params.size(), " parameters and ",
            grads.size(), " gradients for an optimizer of ", n_);
    check_step_args("sgd::step", lr, grad_scale);
    ++t_;
    const S mu = S(o_.momentum), lr_ = S(lr), gs = S(grad_scale);
    const bool nest = o_.nesterov, mom = o_.momentum > 0;
    const auto update = [&](const detail::flat_range& r, std::size_t b, std::size_t e, auto*, bool) -> std::size_t {
      const S wd = S(r.weight_decay);
      T* p = params.data() + r.off;
      const T* g = grads.data() + r.off;
      S* bf = mom ? buf_.data() + r.soff : nullptr;
      for (std::size_t i = b; i < e; ++i) {
        S d = S(g[i]) * gs + wd * S(p[i]);
        if (mom) {
          const S bi = mu * bf[i] + d;
          bf[i] = bi;
          d = nest ? d + mu * bi : bi;
        }
        p[i] = T(S(p[i]) - lr_ * d);
      }
      return 0;  // the copy of the block is left to copy()
    };
    detail::parallel_over(ranges_, [&](int, const detail::flat_range& r, std::size_t b, std::size_t e) {
      detail::blockwise<Copy>(r, b, e, update, copy);
    });
  }

 private:
  options o_;
  tfm::buffer<S> buf_;
};

}  // namespace tfm::train
