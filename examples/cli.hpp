// examples/cli.hpp — what the examples share: reading the command line (walk the arguments, take an
// option's value as text or as a number, stop with a message naming the program and the
// problem, exit status 2, on a missing value, a malformed number or an unknown option) and the
// SIGINT flag that makes the trainer checkpoint and stop.
//
//   tfm::examples::cli args(argc, argv, "tfm_pretrain", usage);
//   while (args.next()) {
//     if (args.is("--lr")) args.number(o.lr);
//     else if (args.is("--out")) o.out = args.value();
//     else args.unknown();
//   }
#pragma once
#include <atomic>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>

namespace tfm::examples {

class cli {
 public:
  cli(int argc, char** argv, const char* program, void (*usage)()) : argc_(argc), argv_(argv), prog_(program), usage_(usage) {}

  // Moves to the next argument; --help / -h print the usage and exit 0.
  bool next() {
    if (++i_ >= argc_) return false;
    if (is("--help") || is("-h")) {
      usage_();
      std::exit(0);
    }
    return true;
  }
  bool is(std::string_view name) const { return name == argv_[i_]; }

  std::string value() {
    if (i_ + 1 >= argc_) fail("%s needs a value (see --help)", argv_[i_]);
    return argv_[++i_];
  }
  template <class N>
  void number(N& x) {
    const char* opt = argv_[i_];
    const std::string v = value();
    if constexpr (std::is_integral_v<N>) {  // a plain integer exactly (a seed beyond 2^53 too)
      N n{};
      const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
      if (end == v.data() + v.size() && !v.empty()) {
        if (ec == std::errc{}) {
          x = n;
          return;
        }
        if (ec == std::errc::result_out_of_range) out_of_range<N>(opt, v);
      }
    }
    // otherwise as a double: 1e3 steps, a learning rate
    char* end = nullptr;
    errno = 0;
    const double d = std::strtod(v.c_str(), &end);
    if (end == v.c_str() || *end != '\0') fail("%s: '%s' is not a number", opt, v.c_str());
    if (errno == ERANGE) fail("%s: '%s' is out of range of a double", opt, v.c_str());
    if (!std::isfinite(d)) fail("%s: '%s' is not a finite number", opt, v.c_str());
    if constexpr (std::is_integral_v<N>) {
      if (std::is_unsigned_v<N> && d < 0) fail("%s: '%s' is negative", opt, v.c_str());
      // the range first: converting a double outside N's range is undefined
      if (!(d >= double(std::numeric_limits<N>::min()) && d < double(std::numeric_limits<N>::max()) + 1.0))
        out_of_range<N>(opt, v);
      if (d != std::trunc(d)) fail("%s: '%s' is not a whole number", opt, v.c_str());
    }
    x = static_cast<N>(d);
  }
  // A number that must not be negative (a thread count or a length, where 0 is the default).
  template <class N>
  void non_negative(N& x) {
    const char* opt = argv_[i_];
    number(x);  // (an unsigned N refuses a negative value there)
    if constexpr (!std::is_unsigned_v<N>)
      if (x < N(0)) fail("%s: '%s' is negative", opt, argv_[i_]);
  }
  // Whether the current argument is an operand rather than an option (it does not start with '-').
  bool operand() const { return argv_[i_][0] != '-'; }
  const char* current() const { return argv_[i_]; }
  template <class N>
  [[noreturn]] void out_of_range(const char* opt, const std::string& v) const {
    fail("%s: '%s' is out of range [%s, %s]", opt, v.c_str(), std::to_string(std::numeric_limits<N>::min()).c_str(),
         std::to_string(std::numeric_limits<N>::max()).c_str());
  }
  [[noreturn]] void unknown() const { fail("unknown argument '%s' (see --help)", argv_[i_]); }

  template <class... A>
  [[noreturn]] void fail(const char* fmt, A... a) const {
    std::fprintf(stderr, "%s: ", prog_);
    std::fprintf(stderr, fmt, a...);
    std::fputc('\n', stderr);
    std::exit(2);
  }

 private:
  int argc_;
  char** argv_;
  const char* prog_;
  void (*usage_)();
  int i_ = 0;
};

namespace detail {
inline std::atomic<bool> interrupted{false};
extern "C" inline void on_sigint(int) { interrupted.store(true); }
}  // namespace detail

// Installs a SIGINT handler that only sets a flag, and returns the flag: the trainer checks it
// after each step (train_options::interrupt), saves a checkpoint and stops.
inline const std::atomic<bool>* interrupt_on_sigint() {
  std::signal(SIGINT, detail::on_sigint);
  return &detail::interrupted;
}

}  // namespace tfm::examples
