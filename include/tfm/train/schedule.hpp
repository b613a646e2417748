// tfm/train/schedule.hpp — learning-rate schedules: callables lr(step) for steps 0, 1, 2, ...
//
//   constant_lr{3e-4}
//   warmup_cosine{.max_lr = 1e-3, .min_lr = 1e-4, .warmup = 100, .decay_end = 2000}
//   warmup_stable_decay{.max_lr = 1e-3, .min_lr = 0, .warmup = 100, .stable = 1500, .decay = 400}
//
// Warm-up is nanoGPT's: lr = max_lr·(step + 1)/(warmup + 1), so step 0 already moves the weights.
// A schedule is a pure function of the step: resuming at step s gives the same rates as never
// stopping, with nothing to save but s.
#pragma once
#include <cmath>
#include <cstdint>
#include <numbers>

#include "tfm/core/error.hpp"

namespace tfm::train {

namespace detail {
// Learning rates must be finite and not negative (min_lr above max_lr is allowed: a warm-up
// to a low rate, then a rise, is unusual but well defined).
inline void check_lr_range(const char* who, double max_lr, double min_lr) {
  expects(std::isfinite(max_lr) && max_lr >= 0 && std::isfinite(min_lr) && min_lr >= 0, who,
          ": learning rates must be finite and not negative, got max_lr=", max_lr, " min_lr=", min_lr);
}
}  // namespace detail

struct constant_lr {
  double lr = 1e-3;
  double operator()(std::int64_t) const {
    expects(std::isfinite(lr) && lr >= 0, "constant_lr: the learning rate must be finite and not negative, got ", lr);
    return lr;
  }
};

// Linear warm-up to max_lr, cosine decay to min_lr at step decay_end, then min_lr.
struct warmup_cosine {
  double max_lr = 1e-3, min_lr = 1e-4;
  std::int64_t warmup = 0, decay_end = 1000;
  double operator()(std::int64_t step) const {
    expects(decay_end >= warmup && warmup >= 0, "warmup_cosine: need 0 <= warmup <= decay_end, got warmup=", warmup,
            " decay_end=", decay_end);
    detail::check_lr_range("warmup_cosine", max_lr, min_lr);
    if (step < warmup) return max_lr * double(step + 1) / double(warmup + 1);
    if (step >= decay_end) return min_lr;
    const double r = double(step - warmup) / double(decay_end - warmup);
    return min_lr + 0.5 * (1.0 + std::cos(std::numbers::pi * r)) * (max_lr - min_lr);
  }
};

// Warm-up, a constant stretch at max_lr, then a decay to min_lr over `decay` steps (linear,
// cosine or 1−√ shape), then min_lr. The stable stretch lets a run be extended or branched.
struct warmup_stable_decay {
  enum class shape { linear, cosine, one_minus_sqrt };
  double max_lr = 1e-3, min_lr = 0;
  std::int64_t warmup = 0, stable = 1000, decay = 100;
  shape decay_shape = shape::linear;
  double operator()(std::int64_t step) const {
    expects(warmup >= 0 && stable >= 0 && decay >= 0, "warmup_stable_decay: negative phase length (warmup=", warmup,
            " stable=", stable, " decay=", decay, ")");
    detail::check_lr_range("warmup_stable_decay", max_lr, min_lr);
    if (step < warmup) return max_lr * double(step + 1) / double(warmup + 1);
    if (step < warmup + stable) return max_lr;
    if (decay == 0 || step >= warmup + stable + decay) return min_lr;
    const double r = double(step - warmup - stable) / double(decay);
    double f = 1.0 - r;  // linear: 1 → 0
    if (decay_shape == shape::cosine) f = 0.5 * (1.0 + std::cos(std::numbers::pi * r));
    if (decay_shape == shape::one_minus_sqrt) f = 1.0 - std::sqrt(r);
    return min_lr + f * (max_lr - min_lr);
  }
};

}  // namespace tfm::train
