// tfm/backend/cuda/cublas.hpp — cuBLAS and cuBLASLt for tfm: status checks that throw, an owning
// cuBLASLt handle with its workspace and a cache of matmul plans (descriptors + heuristic pick),
// and an owning plain cuBLAS handle (benchmarks compare against it). Host-only C++.
#pragma once
#include <cublasLt.h>
#include <cublas_v2.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>

#include "tfm/backend/cuda/runtime.hpp"
#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"

namespace tfm::cuda {

namespace detail {
[[noreturn]] inline void throw_cublas_error(cublasStatus_t status, const char* call,
                                            const char* file, int line) {
  throw cuda_error(::tfm::detail::concat(call, " failed at ", file, ':', line, ": ",
                                         cublasGetStatusName(status), " (",
                                         cublasGetStatusString(status), ')'));
}
}  // namespace detail

// Evaluates a cuBLAS or cuBLASLt call (both return cublasStatus_t); throws tfm::cuda_error naming
// the call, file:line and the status name unless it returned CUBLAS_STATUS_SUCCESS.
#define TFM_CUBLAS_CHECK(expr)                                                              \
  do {                                                                                      \
    const cublasStatus_t tfm_cublas_status_ = (expr);                                       \
    if (TFM_UNLIKELY(tfm_cublas_status_ != CUBLAS_STATUS_SUCCESS))                          \
      ::tfm::cuda::detail::throw_cublas_error(tfm_cublas_status_, #expr, __FILE__, __LINE__); \
  } while (0)

// The largest power of two (at most 256) that divides the address: what cuBLASLt's heuristic must
// be told (CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_*_BYTES assumes 256 otherwise, and an algorithm
// picked for 256-byte alignment may fault on a sub-view that starts mid-row).
inline std::uint32_t pointer_alignment(const void* p) noexcept {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  if (a == 0) return 256;
  const std::uintptr_t low = a & (~a + 1);  // lowest set bit
  return low >= 256 ? 256u : static_cast<std::uint32_t>(low);
}

// Everything that decides a cuBLASLt matmul's descriptors and algorithm, column-major BLAS form:
// D = C (m×n, ldc) = alpha·op(A)·op(B) + beta·C, scale type fp32, alpha/beta on the host.
struct matmul_key {
  cudaDataType_t ab_type;        // A and B element type
  cudaDataType_t c_type;         // C (= D) element type
  cublasComputeType_t compute;   // CUBLAS_COMPUTE_32F or CUBLAS_COMPUTE_32F_FAST_TF32
  cublasOperation_t transa, transb;
  std::int64_t m, n, k;
  std::int64_t lda, ldb, ldc;
  std::uint32_t align_a, align_b, align_c;  // bytes, see pointer_alignment()
  // CUBLASLT_EPILOGUE_DEFAULT, or CUBLASLT_EPILOGUE_BIAS: D = alpha·op(A)·op(B) + beta·C + bias,
  // bias a vector of m elements of bias_type (added to every column, before D's one rounding),
  // its pointer given per call; align_bias is its pointer_alignment().
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  cudaDataType_t bias_type = CUDA_R_32F;
  std::uint32_t align_bias = 0;
  friend bool operator==(const matmul_key&, const matmul_key&) = default;
};

struct matmul_key_hash {
  std::size_t operator()(const matmul_key& k) const noexcept {
    std::size_t h = 0xcbf29ce484222325ull;
    auto mix = [&h](std::uint64_t v) {
      h ^= std::hash<std::uint64_t>{}(v) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
    };
    mix(static_cast<std::uint64_t>(k.ab_type));
    mix(static_cast<std::uint64_t>(k.c_type));
    mix(static_cast<std::uint64_t>(k.compute));
    mix(static_cast<std::uint64_t>(k.transa) * 2 + static_cast<std::uint64_t>(k.transb));
    mix(static_cast<std::uint64_t>(k.m));
    mix(static_cast<std::uint64_t>(k.n));
    mix(static_cast<std::uint64_t>(k.k));
    mix(static_cast<std::uint64_t>(k.lda));
    mix(static_cast<std::uint64_t>(k.ldb));
    mix(static_cast<std::uint64_t>(k.ldc));
    mix((std::uint64_t{k.align_a} << 32) ^ (std::uint64_t{k.align_b} << 16) ^ k.align_c);
    mix((static_cast<std::uint64_t>(k.epilogue) << 40) ^ (static_cast<std::uint64_t>(k.bias_type) << 20) ^
        k.align_bias);
    return h;
  }
};

inline std::string describe(const matmul_key& k) {
  return ::tfm::detail::concat(
      "cuBLASLt matmul m=", k.m, " n=", k.n, " k=", k.k, " op(A)=", k.transa == CUBLAS_OP_N ? 'N' : 'T',
      " op(B)=", k.transb == CUBLAS_OP_N ? 'N' : 'T', " lda=", k.lda, " ldb=", k.ldb, " ldc=", k.ldc,
      " A/B type=", static_cast<int>(k.ab_type), " C type=", static_cast<int>(k.c_type),
      " compute=", static_cast<int>(k.compute), " alignment A/B/C=", k.align_a, '/', k.align_b,
      '/', k.align_c, " bytes",
      k.epilogue == CUBLASLT_EPILOGUE_DEFAULT
          ? std::string()
          : ::tfm::detail::concat(" epilogue=", static_cast<int>(k.epilogue), " bias type=",
                                  static_cast<int>(k.bias_type), " bias alignment=", k.align_bias));
}

namespace detail {
struct lt_deleter {
  void operator()(cublasLtMatmulDesc_t p) const noexcept { (void)cublasLtMatmulDescDestroy(p); }
  void operator()(cublasLtMatrixLayout_t p) const noexcept { (void)cublasLtMatrixLayoutDestroy(p); }
  void operator()(cublasLtMatmulPreference_t p) const noexcept {
    (void)cublasLtMatmulPreferenceDestroy(p);
  }
};
template <class Handle>
using lt_unique = std::unique_ptr<std::remove_pointer_t<Handle>, lt_deleter>;

template <class Handle, class Create, class... Args>
lt_unique<Handle> lt_make(Create create, const char* what, Args... args) {
  Handle h = nullptr;
  const cublasStatus_t st = create(&h, args...);
  if (st != CUBLAS_STATUS_SUCCESS) throw_cublas_error(st, what, __FILE__, __LINE__);
  return lt_unique<Handle>(h);
}
}  // namespace detail

// The descriptors and the algorithm for one matmul_key, made once and reused.
class matmul_plan {
 public:
  matmul_plan(cublasLtHandle_t lt, const matmul_key& key, std::size_t workspace_bytes) {
    desc_ = detail::lt_make<cublasLtMatmulDesc_t>(cublasLtMatmulDescCreate, "cublasLtMatmulDescCreate",
                                                  key.compute, CUDA_R_32F);
    const std::int32_t ta = key.transa, tb = key.transb;
    TFM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_.get(), CUBLASLT_MATMUL_DESC_TRANSA, &ta,
                                                    sizeof(ta)));
    TFM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_.get(), CUBLASLT_MATMUL_DESC_TRANSB, &tb,
                                                    sizeof(tb)));
    if (key.epilogue != CUBLASLT_EPILOGUE_DEFAULT) {
      const cublasLtEpilogue_t ep = key.epilogue;
      const cudaDataType_t bt = key.bias_type;
      TFM_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc_.get(), CUBLASLT_MATMUL_DESC_EPILOGUE, &ep, sizeof(ep)));
      TFM_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(desc_.get(), CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
    }
    // Stored (pre-op) extents, column-major (the layouts' default order): op(A) is m×k, op(B) k×n.
    const bool na = key.transa == CUBLAS_OP_N, nb = key.transb == CUBLAS_OP_N;
    const auto u64 = [](std::int64_t v) { return static_cast<std::uint64_t>(v); };
    a_ = detail::lt_make<cublasLtMatrixLayout_t>(cublasLtMatrixLayoutCreate,
                                                 "cublasLtMatrixLayoutCreate(A)", key.ab_type,
                                                 u64(na ? key.m : key.k), u64(na ? key.k : key.m),
                                                 key.lda);
    b_ = detail::lt_make<cublasLtMatrixLayout_t>(cublasLtMatrixLayoutCreate,
                                                 "cublasLtMatrixLayoutCreate(B)", key.ab_type,
                                                 u64(nb ? key.k : key.n), u64(nb ? key.n : key.k),
                                                 key.ldb);
    c_ = detail::lt_make<cublasLtMatrixLayout_t>(cublasLtMatrixLayoutCreate,
                                                 "cublasLtMatrixLayoutCreate(C)", key.c_type,
                                                 u64(key.m), u64(key.n), key.ldc);

    const auto pref = detail::lt_make<cublasLtMatmulPreference_t>(
        cublasLtMatmulPreferenceCreate, "cublasLtMatmulPreferenceCreate");
    const std::uint64_t ws = workspace_bytes;
    TFM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref.get(), CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    const std::uint32_t al[4] = {key.align_a, key.align_b, key.align_c, key.align_c};
    TFM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al[0], sizeof(al[0])));
    TFM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al[1], sizeof(al[1])));
    TFM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al[2], sizeof(al[2])));
    TFM_CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref.get(), CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al[3], sizeof(al[3])));

    cublasLtMatmulHeuristicResult_t result{};
    int found = 0;
    // C and D share one layout (in place), so the same descriptor is passed for both.
    // NOT_SUPPORTED means no algorithm fits (e.g. an alignment no kernel takes): the plan then
    // records that instead of failing, and callers decide (gemm_cuda falls back to its kernel).
    const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(
        lt, desc_.get(), a_.get(), b_.get(), c_.get(), c_.get(), pref.get(), 1, &result, &found);
    if (st != CUBLAS_STATUS_SUCCESS && st != CUBLAS_STATUS_NOT_SUPPORTED)
      detail::throw_cublas_error(st, "cublasLtMatmulAlgoGetHeuristic", __FILE__, __LINE__);
    has_algo_ = st == CUBLAS_STATUS_SUCCESS && found >= 1 && result.state == CUBLAS_STATUS_SUCCESS;
    if (has_algo_) {
      algo_ = result.algo;
      workspace_bytes_ = result.workspaceSize;
    }
  }

  // False when cuBLASLt has no algorithm for this problem.
  bool has_algo() const noexcept { return has_algo_; }
  // True once cublasLtMatmul refused the algorithm (INVALID_VALUE / NOT_SUPPORTED at run time).
  bool rejected() const noexcept { return rejected_.load(std::memory_order_relaxed); }
  void reject() const noexcept { rejected_.store(true, std::memory_order_relaxed); }

  cublasLtMatmulDesc_t desc() const noexcept { return desc_.get(); }
  cublasLtMatrixLayout_t a() const noexcept { return a_.get(); }
  cublasLtMatrixLayout_t b() const noexcept { return b_.get(); }
  cublasLtMatrixLayout_t c() const noexcept { return c_.get(); }
  const cublasLtMatmulAlgo_t& algo() const noexcept { return algo_; }
  // Workspace the chosen algorithm needs (at most the handle's).
  std::size_t workspace_bytes() const noexcept { return workspace_bytes_; }

 private:
  detail::lt_unique<cublasLtMatmulDesc_t> desc_;
  detail::lt_unique<cublasLtMatrixLayout_t> a_, b_, c_;
  cublasLtMatmulAlgo_t algo_{};
  std::size_t workspace_bytes_ = 0;
  bool has_algo_ = false;
  mutable std::atomic<bool> rejected_{false};
};

// An owning cuBLASLt handle for the device that is current when it is made, with
//  - a device workspace of `workspace_bytes` (default 32 MiB: the size cuBLAS's documentation of
//    cublasSetWorkspace recommends for Hopper, 4 MiB being enough before it) that every matmul run
//    through this handle may use, and
//  - a cache of matmul plans keyed by matmul_key, so that repeated shapes pay the descriptor and
//    heuristic cost (tens of µs) once.
// One handle serves one stream at a time: two matmuls through the same handle on different
// streams that overlap would share the workspace. The cache itself is guarded by a mutex.
class cublaslt_handle {
 public:
  static constexpr std::size_t default_workspace_bytes = std::size_t{32} << 20;
  // Beyond this many plans the cache is cleared rather than grown (shapes that change every call).
  static constexpr std::size_t max_cached_plans = 4096;

  explicit cublaslt_handle(std::size_t workspace_bytes = default_workspace_bytes) {
    TFM_CUBLAS_CHECK(cublasLtCreate(&handle_));
    try {
      workspace_ = allocate(workspace_bytes);
      workspace_bytes_ = workspace_bytes;
    } catch (...) {
      (void)cublasLtDestroy(handle_);
      throw;
    }
  }
  cublaslt_handle(const cublaslt_handle&) = delete;
  cublaslt_handle& operator=(const cublaslt_handle&) = delete;
  ~cublaslt_handle() {
    plans_.clear();
    deallocate(workspace_);
    if (handle_) (void)cublasLtDestroy(handle_);
  }

  cublasLtHandle_t get() const noexcept { return handle_; }
  void* workspace() const noexcept { return workspace_; }
  std::size_t workspace_bytes() const noexcept { return workspace_bytes_; }

  // The plan for `key`, made on first use (shared: it outlives clear_plans() while held).
  std::shared_ptr<const matmul_plan> plan(const matmul_key& key) {
    const std::lock_guard<std::mutex> lock(mutex_);
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    auto p = std::make_shared<const matmul_plan>(handle_, key, workspace_bytes_);
    if (plans_.size() >= max_cached_plans) plans_.clear();
    plans_.emplace(key, p);
    return p;
  }
  std::size_t cached_plans() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return plans_.size();
  }
  void clear_plans() {
    const std::lock_guard<std::mutex> lock(mutex_);
    plans_.clear();
  }

  // C = alpha·op(A)·op(B) + beta·C on `s`, in place (D = C), as described by `key`; A, B, C are
  // device pointers matching the key's types and layouts. Returns false, doing nothing, when
  // cuBLASLt has no algorithm for the key.
  // With an epilogue that adds a bias, `bias` points to it (device memory); else it is ignored.
  [[nodiscard]] bool try_matmul(const matmul_key& key, float alpha, const void* a, const void* b,
                                float beta, void* c, stream_view s, const void* bias = nullptr) {
    if (a == nullptr || b == nullptr || c == nullptr)
      throw cuda_error("cublaslt_handle::try_matmul: a null operand pointer for " + describe(key));
    const bool with_bias = key.epilogue != CUBLASLT_EPILOGUE_DEFAULT;
    if (with_bias && bias == nullptr)
      throw cuda_error("cublaslt_handle::try_matmul: a bias epilogue without a bias pointer for " + describe(key));
    const std::shared_ptr<const matmul_plan> p = plan(key);
    if (!p->has_algo() || p->rejected()) return false;
    // The bias pointer lives in the plan's descriptor: set per call (one stream per handle).
    if (with_bias)
      TFM_CUBLAS_CHECK(
          cublasLtMatmulDescSetAttribute(p->desc(), CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    const cublasStatus_t st = cublasLtMatmul(handle_, p->desc(), &alpha, a, p->a(), b, p->b(), &beta, c, p->c(), c,
                                             p->c(), &p->algo(), workspace_, workspace_bytes_, s.get());
    if (st == CUBLAS_STATUS_INVALID_VALUE || st == CUBLAS_STATUS_NOT_SUPPORTED) {
      // The heuristic's algorithm refused at run time (seen on an H200 with cuBLAS 13 for some
      // rank-4 LoRA products): nothing ran; the plan is marked so that later calls go straight to
      // the caller's fallback, and the reason is kept for last_rejection().
      p->reject();
      const std::lock_guard<std::mutex> lock(mutex_);
      last_rejection_ = ::tfm::detail::concat(describe(key), ": cublasLtMatmul returned ", static_cast<int>(st));
      return false;
    }
    if (st != CUBLAS_STATUS_SUCCESS)
      detail::throw_cublas_error(st, ("cublasLtMatmul (" + describe(key) + ")").c_str(), __FILE__, __LINE__);
    return true;
  }
  // The last problem whose algorithm cublasLtMatmul refused (empty if none).
  std::string last_rejection() const {
    const std::lock_guard<std::mutex> lock(mutex_);
    return last_rejection_;
  }
  // As try_matmul, but throws cuda_error when cuBLASLt has no algorithm.
  void matmul(const matmul_key& key, float alpha, const void* a, const void* b, float beta, void* c,
              stream_view s) {
    if (!try_matmul(key, alpha, a, b, beta, c, s))
      throw cuda_error("cublasLtMatmulAlgoGetHeuristic found no algorithm for " + describe(key));
  }

  // How many GEMMs ran on a fallback because cuBLASLt had no algorithm or refused the one its
  // heuristic gave (gemm_cuda counts them).
  std::size_t fallbacks() const noexcept { return fallbacks_.load(std::memory_order_relaxed); }
  void count_fallback() noexcept { fallbacks_.fetch_add(1, std::memory_order_relaxed); }

 private:
  cublasLtHandle_t handle_ = nullptr;
  void* workspace_ = nullptr;
  std::size_t workspace_bytes_ = 0;
  mutable std::mutex mutex_;
  std::atomic<std::size_t> fallbacks_{0};
  std::string last_rejection_;
  std::unordered_map<matmul_key, std::shared_ptr<const matmul_plan>, matmul_key_hash> plans_;
};

// An owning plain cuBLAS handle (cublasCreate). cuBLAS keeps its own default workspace; the
// stream is set per call with set_stream().
class cublas_handle {
 public:
  cublas_handle() { TFM_CUBLAS_CHECK(cublasCreate(&handle_)); }
  cublas_handle(const cublas_handle&) = delete;
  cublas_handle& operator=(const cublas_handle&) = delete;
  cublas_handle(cublas_handle&& o) noexcept : handle_(std::exchange(o.handle_, nullptr)) {}
  cublas_handle& operator=(cublas_handle&& o) noexcept {
    if (this != &o) {
      if (handle_) (void)cublasDestroy(handle_);
      handle_ = std::exchange(o.handle_, nullptr);
    }
    return *this;
  }
  ~cublas_handle() {
    if (handle_) (void)cublasDestroy(handle_);
  }

  cublasHandle_t get() const noexcept { return handle_; }
  void set_stream(stream_view s) { TFM_CUBLAS_CHECK(cublasSetStream(handle_, s.get())); }

 private:
  cublasHandle_t handle_ = nullptr;
};

}  // namespace tfm::cuda
