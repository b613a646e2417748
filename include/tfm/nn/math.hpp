// tfm/nn/math.hpp — element math of the layers, shared by the host loops (ops_host.hpp) and the
// CUDA kernels (ops_cuda.cuh): activations and their derivatives, RoPE angles, sinusoidal
// positions, ALiBi slopes. Templated on the arithmetic type (float or double).
#pragma once
#include <cmath>

#include "tfm/core/config.hpp"

namespace tfm::nn::math {

template <class T>
TFM_HOST_DEVICE T tanh_(T x) {
  using std::tanh;
  return tanh(x);
}
template <class T>
TFM_HOST_DEVICE T exp_(T x) {
  using std::exp;
  return exp(x);
}

// GELU, tanh approximation (GPT-2): 0.5·u·(1 + tanh(√(2/π)·(u + 0.044715·u³))).
template <class T>
TFM_HOST_DEVICE T gelu_tanh(T u) {
  const T c = T(0.7978845608028654);  // sqrt(2/pi)
  const T inner = c * (u + T(0.044715) * u * u * u);
  return T(0.5) * u * (T(1) + tanh_(inner));
}
template <class T>
TFM_HOST_DEVICE T gelu_tanh_grad(T u) {
  const T c = T(0.7978845608028654);
  const T u2 = u * u;
  const T inner = c * (u + T(0.044715) * u2 * u);
  const T th = tanh_(inner);
  const T sech2 = T(1) - th * th;
  return T(0.5) * (T(1) + th) + T(0.5) * u * sech2 * c * (T(1) + T(3 * 0.044715) * u2);
}

template <class T>
TFM_HOST_DEVICE T sigmoid(T x) {
  return T(1) / (T(1) + exp_(-x));
}
// SiLU g·σ(g) and its derivative σ(g)·(1 + g·(1 − σ(g))).
template <class T>
TFM_HOST_DEVICE T silu(T g) {
  return g * sigmoid(g);
}
template <class T>
TFM_HOST_DEVICE T silu_grad(T g) {
  const T s = sigmoid(g);
  return s * (T(1) + g * (T(1) - s));
}

// RoPE: rotated dims r = 2·floor(fraction·hd/2); pair j (< r/2) at position t turns by
// t·theta^(−2j/r).
inline int rope_dims(int head_dim, double fraction) {
  return 2 * static_cast<int>(std::floor(fraction * head_dim / 2.0 + 1e-9));
}
inline double rope_angle(int t, int j, int rot, double theta) {
  return static_cast<double>(t) * std::pow(theta, -2.0 * j / rot);
}

// Sinusoidal table entry (t, c) for width D.
inline double sinusoidal(int t, int c, int d_model) {
  const int i = c / 2;
  const double a = static_cast<double>(t) * std::pow(10000.0, -2.0 * i / d_model);
  return (c % 2 == 0) ? std::sin(a) : std::cos(a);
}

// ALiBi slope of head h of H (docs/model.md).
inline double alibi_slope(int h, int heads) {
  int n = 1;
  while (n * 2 <= heads) n *= 2;
  if (h < n) return std::pow(2.0, -8.0 * (h + 1) / n);
  const int k = h - n;  // every other slope of the 2n sequence
  return std::pow(2.0, -8.0 * (2 * k + 1) / (2.0 * n));
}

}  // namespace tfm::nn::math
