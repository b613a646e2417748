// tfm/core/error.hpp — the exceptions tfm throws and the helpers that build their messages.
// Every error names the operation and the values that were wrong, so a user can act on it.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#include "tfm/core/config.hpp"

namespace tfm {

// Base class of every tfm error.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Wrong shapes, strides or sizes passed to an op.
class shape_error : public error {
 public:
  using error::error;
};

// An allocation that could not be satisfied (host or device).
class out_of_memory : public error {
 public:
  using error::error;
};

// A CUDA runtime / cuBLAS / cuBLASLt call that failed.
class cuda_error : public error {
 public:
  using error::error;
};

// Invalid arguments that are not shapes (a bad enum value, a negative size, NaN where not allowed).
class invalid_argument : public error {
 public:
  using error::error;
};

namespace detail {
template <class... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

// Throws E with the concatenation of `args` unless `cond` holds.
template <class E = invalid_argument, class... Args>
inline void expects(bool cond, Args&&... args) {
  if (TFM_UNLIKELY(!cond)) throw E(detail::concat(std::forward<Args>(args)...));
}

}  // namespace tfm
