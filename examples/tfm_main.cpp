// tfm_main — the main job. Today it is a tour of tfm's foundation on this machine: what the
// host offers, the number formats, a layout, the counter-based RNG, and every host GEMM variant
// checked against the reference and timed on GPT-2-small shapes. Later parts of tfm grow this
// program into the whole pipeline (data → tokenizer → pretraining → evaluation → export).
#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "cli.hpp"
#include "tfm/tfm.hpp"

namespace {

struct options {
  int threads = 0;      // 0: OMP_NUM_THREADS / all cores
  int repeats = 5;
  std::uint64_t seed = 1234;
  std::vector<std::array<int, 3>> shapes = {{256, 768, 768}, {256, 2304, 768}, {256, 3072, 768},
                                            {256, 768, 3072}, {1024, 1024, 1024}};
};

void usage() {
  std::puts(
      "usage: tfm_main [--threads N] [--repeats N] [--seed S] [--shape M,N,K ...]\n"
      "  Checks every host GEMM variant against the reference on the given shapes (default: the\n"
      "  GEMMs of GPT-2 small at 256 tokens, and 1024^3) and reports GFLOP/s.\n"
      "  --threads N   host threads (default: OMP_NUM_THREADS or all cores)\n"
      "  --repeats N   timed repetitions per shape, best is reported (default 5)\n"
      "  --seed S      seed of the random operands (default 1234)\n"
      "  --shape M,N,K replaces the default shapes (may be given several times)");
}

// "M,N,K": three positive integers, each matrix of the product at most 2^30 elements.
bool parse_shape(std::string_view v, std::array<int, 3>& mnk) {
  const char* p = v.data();
  const char* const end = v.data() + v.size();
  for (int d = 0; d < 3; ++d) {
    if (d > 0) {
      if (p == end || *p != ',') return false;
      ++p;
    }
    const auto r = std::from_chars(p, end, mnk[std::size_t(d)]);
    if (r.ec != std::errc{} || mnk[std::size_t(d)] <= 0) return false;
    p = r.ptr;
  }
  const std::int64_t m = mnk[0], n = mnk[1], k = mnk[2], cap = std::int64_t(1) << 30;
  return p == end && m * k <= cap && k * n <= cap && m * n <= cap;
}

options parse(int argc, char** argv) {
  options o;
  bool custom_shapes = false;
  tfm::examples::cli c(argc, argv, "tfm_main", usage);
  while (c.next()) {
    if (c.is("--threads")) {
      c.non_negative(o.threads);
    } else if (c.is("--repeats")) {
      c.number(o.repeats);
      if (o.repeats < 1) c.fail("--repeats must be at least 1");
    } else if (c.is("--seed")) {
      c.number(o.seed);
    } else if (c.is("--shape")) {
      const std::string v = c.value();
      std::array<int, 3> mnk{};
      if (!parse_shape(v, mnk))
        c.fail("--shape wants M,N,K with positive integers and matrices of at most 2^30 elements, got '%s'",
               v.c_str());
      if (!custom_shapes) o.shapes.clear();
      custom_shapes = true;
      o.shapes.push_back(mnk);
    } else {
      c.unknown();
    }
  }
  return o;
}

template <class F>
double best_seconds(int repeats, F&& f) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

void tour_formats() {
  std::puts("\n== number formats (round to nearest even, as CUDA converts)");
  const float xs[] = {3.14159265f, 1e-6f, 70000.0f, -0.1f};
  std::printf("  %12s %14s %14s %14s %14s\n", "float", "half", "bfloat16", "fp8 e4m3", "fp8 e5m2");
  for (float x : xs)
    std::printf("  %12.7g %14.7g %14.7g %14.7g %14.7g\n", x, float(tfm::half(x)), float(tfm::bfloat16(x)),
                float(tfm::float8_e4m3(x)), float(tfm::float8_e5m2(x)));
}

void tour_layout() {
  std::puts("\n== layouts (shape:stride)");
  auto rm = tfm::make_row_major(tfm::_4, tfm::_8);
  auto padded = tfm::make_padded_row_major(4, 6, 8);
  auto tiled = tfm::make_tiled_row_major(tfm::make_shape(8, 8), tfm::make_shape(tfm::_4, tfm::_4));
  std::printf("  row major 4x8 (static, %zu bytes): %s, (2,3) -> %lld\n", sizeof(rm), tfm::to_string(rm).c_str(),
              static_cast<long long>(rm(2, 3)));
  std::printf("  padded 4x6, ld 8: %s, (2,3) -> %lld\n", tfm::to_string(padded).c_str(),
              static_cast<long long>(padded(2, 3)));
  std::printf("  8x8 in 4x4 tiles: %s, (5,6) -> %lld\n", tfm::to_string(tiled).c_str(),
              static_cast<long long>(tiled(5, 6)));
}

void tour_rng(std::uint64_t seed) {
  std::puts("\n== counter-based RNG (Philox4x32-10; identical on host and device)");
  double s = 0, s2 = 0;
  const int n = 1 << 20;
  for (int i = 0; i < n; ++i) {
    const double z = tfm::rng::normal(seed, 0, i);
    s += z;
    s2 += z * z;
  }
  std::printf("  N(0,1) x %d: mean %+.4f, variance %.4f; first three: %.6f %.6f %.6f\n", n, s / n,
              s2 / n - (s / n) * (s / n), tfm::rng::normal(seed, 0, 0), tfm::rng::normal(seed, 0, 1),
              tfm::rng::normal(seed, 0, 2));
}

int tour_gemm(const options& o) {
  std::printf("\n== host GEMM, fp32 and bf16 inputs, fp32 accumulation (%d threads, kernels for %s)\n",
              tfm::host::num_threads(), std::string(tfm::host::isa_name(tfm::host::native_isa)).c_str());
  std::printf("  %-18s %-10s %12s %12s %12s\n", "M,N,K", "variant", "GFLOP/s", "max |err|", "budget");
  int failures = 0;
  for (auto [M, N, K] : o.shapes) {
    auto a = tfm::make_owning_tensor<float>(tfm::make_row_major(M, K));  // (M, K)
    auto b = tfm::make_owning_tensor<float>(tfm::make_row_major(K, N));  // (K, N)
    auto ab = tfm::make_owning_tensor<tfm::bfloat16>(tfm::make_row_major(M, K));
    auto bb = tfm::make_owning_tensor<tfm::bfloat16>(tfm::make_row_major(K, N));
    auto ref = tfm::make_owning_tensor<float>(tfm::make_row_major(M, N));  // (M, N)
    auto out = tfm::make_owning_tensor<float>(tfm::make_row_major(M, N));
    for (std::int64_t i = 0; i < a.size(); ++i) a.data()[i] = tfm::rng::normal(o.seed, 1, i);
    for (std::int64_t i = 0; i < b.size(); ++i) b.data()[i] = tfm::rng::normal(o.seed, 2, i);
    for (std::int64_t i = 0; i < a.size(); ++i) ab.data()[i] = tfm::bfloat16(a.data()[i]);
    for (std::int64_t i = 0; i < b.size(); ++i) bb.data()[i] = tfm::bfloat16(b.data()[i]);
    const double flops = 2.0 * M * N * K;
    char shape[32];
    std::snprintf(shape, sizeof shape, "%d,%d,%d", M, N, K);

    const double t_ref = best_seconds(1, [&] { tfm::gemm(tfm::gemm_ref{}, 1.0f, a.view(), b.view(), 0.0f, ref.view()); });
    std::printf("  %-18s %-10s %12.2f %12s %12s\n", shape, "ref", flops / t_ref * 1e-9, "-", "-");
    // error budget: the classical bound K·u·sum|a||b| for a length-K fp32 dot product, with
    // u = 2^-24 and E|a||b| = 2/pi for standard normal operands
    const double budget_f32 = K * 0x1p-24 * K * (2 / M_PI);
    auto worst = [&] {
      double w = 0;
      for (std::int64_t i = 0; i < out.size(); ++i) w = std::max(w, double(std::abs(out.data()[i] - ref.data()[i])));
      return w;
    };
    const double t_blk = best_seconds(o.repeats, [&] { tfm::gemm(tfm::gemm_blocked{}, 1.0f, a.view(), b.view(), 0.0f, out.view()); });
    const double e_blk = worst();
    failures += !(e_blk <= budget_f32);
    std::printf("  %-18s %-10s %12.2f %12.3g %12.3g\n", shape, "blocked", flops / t_blk * 1e-9, e_blk, budget_f32);
    const double t_bf = best_seconds(o.repeats, [&] { tfm::gemm(tfm::gemm_blocked{}, 1.0f, ab.view(), bb.view(), 0.0f, out.view()); });
    // bf16 inputs are checked against the reference on the same (rounded) inputs: products of
    // bf16 values are exact in fp32, so the fp32 budget applies
    tfm::gemm(tfm::gemm_ref{}, 1.0f, ab.view(), bb.view(), 0.0f, ref.view());
    const double e_bf = worst();
    failures += !(e_bf <= budget_f32);
    std::printf("  %-18s %-10s %12.2f %12.3g %12.3g\n", shape, "bf16", flops / t_bf * 1e-9, e_bf, budget_f32);
  }
  return failures;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  if (o.threads > 0) tfm::host::set_num_threads(o.threads);
  std::printf(
      "tfm %d.%d.%d — host kernels for %s (this CPU runs: avx2 %s, avx512 %s, avx512_bf16 %s, "
      "amx_bf16 %s)\n",
              tfm::version.major, tfm::version.minor, tfm::version.patch,
              std::string(tfm::host::isa_name(tfm::host::native_isa)).c_str(),
              tfm::host::cpu_supports(tfm::host::isa::avx2) ? "yes" : "no",
              tfm::host::cpu_supports(tfm::host::isa::avx512) ? "yes" : "no",
              tfm::host::cpu_supports(tfm::host::isa::avx512_bf16) ? "yes" : "no",
              tfm::host::cpu_supports(tfm::host::isa::amx_bf16) ? "yes" : "no");
  try {
    tour_formats();
    tour_layout();
    tour_rng(o.seed);
    const int failures = tour_gemm(o);
    if (failures) {
      std::fprintf(stderr, "tfm_main: %d GEMM result(s) outside their error budget\n", failures);
      return 1;
    }
    std::puts("\nall GEMM variants agree with the reference");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tfm_main: %s\n", e.what());
    return 1;
  }
  return 0;
}
