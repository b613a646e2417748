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
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "tfm/backend/host/threading.hpp"
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
template <class Pred = bool (*)(const nn::param_info&)>
std::vector<param_group> decay_groups(const std::vector<nn::param_info>& table, const decay_policy& pol,
                                      Pred trainable = [](const nn::param_info&) { return true; }) {
  param_group decay{"decay", {}, pol.weight_decay}, plain{"no_decay", {}, 0.0};
  for (auto const& p : table) {
    if (!trainable(p)) continue;
    (pol.applies(classify(p)) ? decay : plain).ranges.emplace_back(p.offset, p.size);
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
  for (auto const& g : groups)
    for (auto const& r : g.ranges) {
      expects(r.first <= n && r.second <= n - r.first, who, ": group '", g.name, "' range [", r.first, ", ",
              r.first + r.second, ") is outside the ", n, " parameters");
      all.push_back(r);
    }
  std::sort(all.begin(), all.end());
  for (std::size_t i = 1; i < all.size(); ++i)
    expects(all[i - 1].first + all[i - 1].second <= all[i].first, who, ": parameter ranges overlap at offset ",
            all[i].first);
}

namespace detail {
// Checks the groups and gives every range its offset in a compact state array (state exists
// only for parameters in some group: frozen ones cost no optimizer memory). Returns its length.
inline std::size_t assign_state(const std::vector<param_group>& groups, std::size_t n, const char* who,
                                std::vector<std::size_t>& offsets) {
  check_groups(groups, n, who);
  std::size_t k = 0;
  offsets.clear();
  for (auto const& g : groups)
    for (auto const& r : g.ranges) offsets.push_back(k), k += r.second;
  return k;
}

// Calls f(begin, end) on a static partition of [0, n) into per-thread chunks.
template <class F>
void parallel_ranges(std::size_t n, F&& f) {
  const int want = n < (std::size_t{1} << 15) ? 1 : tfm::host::num_threads();
  tfm::host::parallel(want, [&](int t, int nt) {
    const std::size_t chunk = (n + std::size_t(nt) - 1) / std::size_t(nt);
    const std::size_t b = std::min(n, chunk * std::size_t(t)), e = std::min(n, b + chunk);
    if (b < e) f(b, e);
  });
}
}  // namespace detail

// Sum of squares of `g` (times scale²) over the ranges of `groups` in double, and whether every
// element is finite. Partial sums are combined in thread order: deterministic for a thread count.
struct grad_stats {
  double norm = 0;  // sqrt of the sum of squares
  bool finite = true;
};

template <class T>
grad_stats global_grad_norm(std::span<const T> g, const std::vector<param_group>& groups, double scale = 1.0) {
  double total = 0;
  bool finite = true;
  for (auto const& grp : groups)
    for (auto const& [off, len] : grp.ranges) {
      const T* p = g.data() + off;
      const int nt = std::max(1, tfm::host::num_threads());
      std::vector<double> part(std::size_t(nt) * 8, 0.0);  // 8 doubles apart: no false sharing
      std::vector<char> ok(std::size_t(nt) * 64, 1);
      const int want = len < (std::size_t{1} << 15) ? 1 : nt;
      tfm::host::parallel(want, [&](int t, int team) {
        const std::size_t chunk = (len + std::size_t(team) - 1) / std::size_t(team);
        const std::size_t b = std::min(len, chunk * std::size_t(t)), e = std::min(len, b + chunk);
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        std::size_t i = b;
        for (; i + 4 <= e; i += 4) {
          const double a0 = double(p[i]), a1 = double(p[i + 1]), a2 = double(p[i + 2]), a3 = double(p[i + 3]);
          s0 += a0 * a0, s1 += a1 * a1, s2 += a2 * a2, s3 += a3 * a3;
        }
        for (; i < e; ++i) s0 += double(p[i]) * double(p[i]);
        const double s = (s0 + s1) + (s2 + s3);
        part[std::size_t(t) * 8] = s;
        ok[std::size_t(t) * 64] = std::isfinite(s);  // an Inf or NaN element makes the sum non-finite
      });
      for (int t = 0; t < nt; ++t) {
        total += part[std::size_t(t) * 8];
        finite = finite && ok[std::size_t(t) * 64];
      }
    }
  return {std::sqrt(total) * std::abs(scale), finite && std::isfinite(total)};
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

// AdamW: m ← β1·m + (1−β1)·g; v ← β2·v + (1−β2)·g²; p ← p·(1 − lr·wd) − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε).
// Parameters of type T; state in S (float by default, also for a reduced-precision T later).
template <class T, class S = float>
class adamw {
 public:
  struct options {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  };
  adamw(std::size_t n, std::vector<param_group> groups, options o = {})
      : n_(n), groups_(std::move(groups)), o_(o), k_(detail::assign_state(groups_, n, "adamw", soff_)), m_(k_, S(0)), v_(k_, S(0)) {
    expects(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1 && o.eps > 0,
            "adamw: need 0 <= beta1, beta2 < 1 and eps > 0, got beta1=", o.beta1, " beta2=", o.beta2, " eps=", o.eps);
  }

  const std::vector<param_group>& groups() const { return groups_; }
  std::int64_t steps_taken() const { return t_; }
  void set_steps_taken(std::int64_t t) { t_ = t; }
  // Elements that get a state (the trainable ones); parameters in no group have none.
  std::size_t trainable() const { return k_; }
  std::size_t state_bytes() const { return (m_.size() + v_.size()) * sizeof(S); }
  std::vector<state_tensor<S>> state() { return {{"exp_avg", {m_.data(), m_.size()}}, {"exp_avg_sq", {v_.data(), v_.size()}}}; }

  void step(std::span<T> params, std::span<const T> grads, double lr, double grad_scale = 1.0) {
    expects(params.size() == n_ && grads.size() == n_, "adamw::step: ", params.size(), " parameters and ",
            grads.size(), " gradients for an optimizer of ", n_);
    ++t_;
    const double bc1 = 1.0 - std::pow(o_.beta1, double(t_));
    const double bc2 = 1.0 - std::pow(o_.beta2, double(t_));
    const S b1 = S(o_.beta1), b2 = S(o_.beta2), c1 = S(1 - o_.beta1), c2 = S(1 - o_.beta2);
    const S step_size = S(lr / bc1), bc2_sqrt = S(std::sqrt(bc2)), eps = S(o_.eps), gs = S(grad_scale);
    std::size_t r = 0;
    for (auto const& grp : groups_) {
      const S decay = S(1.0 - lr * grp.weight_decay);
      for (auto const& [off, len] : grp.ranges) {
        T* p = params.data() + off;
        const T* g = grads.data() + off;
        S* m = m_.data() + soff_[r];
        S* v = v_.data() + soff_[r++];
        detail::parallel_ranges(len, [&](std::size_t b, std::size_t e) {
#pragma omp simd
          for (std::size_t i = b; i < e; ++i) {
            const S gi = S(g[i]) * gs;
            const S mi = b1 * m[i] + c1 * gi;
            const S vi = b2 * v[i] + c2 * gi * gi;
            m[i] = mi;
            v[i] = vi;
            const S pi = S(p[i]) * decay;
            p[i] = T(pi - step_size * mi / (std::sqrt(vi) / bc2_sqrt + eps));
          }
        });
      }
    }
  }

 private:
  std::size_t n_;
  std::vector<param_group> groups_;
  options o_;
  std::vector<std::size_t> soff_;
  std::size_t k_;
  std::vector<S> m_, v_;
  std::int64_t t_ = 0;
};

// SGD with momentum (PyTorch's rule: weight decay as L2 added to the gradient, buf ← μ·buf + g,
// Nesterov optional, p ← p − lr·update).
template <class T, class S = float>
class sgd {
 public:
  struct options {
    double momentum = 0.9;
    bool nesterov = false;
  };
  sgd(std::size_t n, std::vector<param_group> groups, options o = {})
      : n_(n), groups_(std::move(groups)), o_(o), k_(detail::assign_state(groups_, n, "sgd", soff_)),
        buf_(o.momentum > 0 ? k_ : 0, S(0)) {
    expects(o.momentum >= 0 && o.momentum < 1, "sgd: momentum must be in [0, 1), got ", o.momentum);
  }
  const std::vector<param_group>& groups() const { return groups_; }
  std::int64_t steps_taken() const { return t_; }
  void set_steps_taken(std::int64_t t) { t_ = t; }
  std::size_t trainable() const { return k_; }
  std::size_t state_bytes() const { return buf_.size() * sizeof(S); }
  std::vector<state_tensor<S>> state() {
    if (buf_.empty()) return {};
    return {{"momentum_buffer", {buf_.data(), buf_.size()}}};
  }

  void step(std::span<T> params, std::span<const T> grads, double lr, double grad_scale = 1.0) {
    expects(params.size() == n_ && grads.size() == n_, "sgd::step: ", params.size(), " parameters and ",
            grads.size(), " gradients for an optimizer of ", n_);
    ++t_;
    const S mu = S(o_.momentum), lr_ = S(lr), gs = S(grad_scale);
    const bool nest = o_.nesterov, mom = o_.momentum > 0;
    std::size_t r = 0;
    for (auto const& grp : groups_) {
      const S wd = S(grp.weight_decay);
      for (auto const& [off, len] : grp.ranges) {
        T* p = params.data() + off;
        const T* g = grads.data() + off;
        S* bf = mom ? buf_.data() + soff_[r] : nullptr;
        ++r;
        detail::parallel_ranges(len, [&](std::size_t b, std::size_t e) {
          for (std::size_t i = b; i < e; ++i) {
            S d = S(g[i]) * gs + wd * S(p[i]);
            if (mom) {
              const S bi = mu * bf[i] + d;
              bf[i] = bi;
              d = nest ? d + mu * bi : bi;
            }
            p[i] = T(S(p[i]) - lr_ * d);
          }
        });
      }
    }
  }

 private:
  std::size_t n_;
  std::vector<param_group> groups_;
  options o_;
  std::vector<std::size_t> soff_;
  std::size_t k_;
  std::vector<S> buf_;
  std::int64_t t_ = 0;
};

}  // namespace tfm::train
