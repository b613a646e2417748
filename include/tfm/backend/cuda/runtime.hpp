// tfm/backend/cuda/runtime.hpp — the CUDA runtime as tfm uses it: error checks that throw,
// device queries, raw device memory, streams and events. Plain host C++ (no kernels, no <<<>>>):
// any translation unit that sees the CUDA include directory and links cudart may include it.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <utility>

#include "tfm/core/config.hpp"
#include "tfm/core/error.hpp"

namespace tfm::cuda {

namespace detail {
[[noreturn]] inline void throw_cuda_error(cudaError_t status, const char* call, const char* file,
                                          int line) {
  // Clear the runtime's "last error" so that a caller who catches can go on (sticky errors, such
  // as an illegal address, stay regardless: the context is lost then).
  (void)cudaGetLastError();
  throw cuda_error(::tfm::detail::concat(call, " failed at ", file, ':', line, ": ",
                                         cudaGetErrorName(status), " (", cudaGetErrorString(status),
                                         ')'));
}
}  // namespace detail

// Evaluates a CUDA runtime call once; throws tfm::cuda_error naming the call, file:line and the
// runtime's own message unless it returned cudaSuccess.
#define TFM_CUDA_CHECK(expr)                                                              \
  do {                                                                                    \
    const cudaError_t tfm_cuda_status_ = (expr);                                          \
    if (TFM_UNLIKELY(tfm_cuda_status_ != cudaSuccess))                                    \
      ::tfm::cuda::detail::throw_cuda_error(tfm_cuda_status_, #expr, __FILE__, __LINE__); \
  } while (0)

// ---------------------------------------------------------------------------- devices

// Empty when a CUDA device can be used from this process; otherwise why not, e.g.
// "cudaGetDeviceCount: CUDA driver version is insufficient for CUDA runtime version
// (cudaErrorInsufficientDriver)". Never throws: it is what tests ask before they skip, also on
// machines that have no driver at all.
inline std::string why_no_device() noexcept {
  try {
    int count = 0;
    cudaError_t st = cudaGetDeviceCount(&count);
    if (st != cudaSuccess) {
      (void)cudaGetLastError();
      return ::tfm::detail::concat("cudaGetDeviceCount: ", cudaGetErrorString(st), " (",
                                   cudaGetErrorName(st), ')');
    }
    if (count <= 0) return "cudaGetDeviceCount: no CUDA-capable device is detected";
    // Creating the primary context catches a device that is listed but unusable (busy in
    // exclusive mode, driver/runtime mismatch found late).
    st = cudaFree(nullptr);
    if (st != cudaSuccess) {
      (void)cudaGetLastError();
      return ::tfm::detail::concat("cudaFree(nullptr) (context creation): ", cudaGetErrorString(st),
                                   " (", cudaGetErrorName(st), ')');
    }
    return {};
  } catch (...) {  // only std::bad_alloc from the strings could get here
    return "why_no_device: out of host memory";
  }
}

inline bool device_available() noexcept { return why_no_device().empty(); }

// Number of CUDA devices; throws cuda_error when the runtime cannot answer (no driver).
inline int device_count() {
  int count = 0;
  TFM_CUDA_CHECK(cudaGetDeviceCount(&count));
  return count;
}

inline int current_device() {
  int d = 0;
  TFM_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

inline void set_device(int device) { TFM_CUDA_CHECK(cudaSetDevice(device)); }

inline cudaDeviceProp device_properties(int device) {
  cudaDeviceProp p{};
  TFM_CUDA_CHECK(cudaGetDeviceProperties(&p, device));
  return p;
}
inline cudaDeviceProp device_properties() { return device_properties(current_device()); }

// Compute capability as 10*major + minor (90 for H100/H200).
inline int compute_capability(int device) {
  int major = 0, minor = 0;
  TFM_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  TFM_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  return 10 * major + minor;
}

// One line for logs: "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs, 79.1 GiB)".
inline std::string device_summary(int device) {
  const cudaDeviceProp p = device_properties(device);
  const double gib = static_cast<double>(p.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0);
  std::ostringstream os;
  os.precision(3);
  os << p.name << " (sm_" << p.major << p.minor << ", " << p.multiProcessorCount << " SMs, " << gib
     << " GiB)";
  return os.str();
}

struct memory_info {
  std::size_t free_bytes;
  std::size_t total_bytes;
};

// Free and total memory of the current device.
inline memory_info device_memory_info() {
  memory_info m{0, 0};
  TFM_CUDA_CHECK(cudaMemGetInfo(&m.free_bytes, &m.total_bytes));
  return m;
}

// Waits for all work on the current device.
inline void device_synchronize() { TFM_CUDA_CHECK(cudaDeviceSynchronize()); }

// ---------------------------------------------------------------------------- streams

// A non-owning stream handle; the default-constructed one is the legacy default stream.
class stream_view {
 public:
  constexpr stream_view() noexcept = default;
  constexpr stream_view(cudaStream_t s) noexcept : stream_(s) {}  // NOLINT: implicit on purpose

  static constexpr stream_view default_stream() noexcept { return {}; }
  static stream_view per_thread() noexcept { return stream_view(cudaStreamPerThread); }

  constexpr cudaStream_t get() const noexcept { return stream_; }
  constexpr operator cudaStream_t() const noexcept { return stream_; }  // NOLINT

  void synchronize() const { TFM_CUDA_CHECK(cudaStreamSynchronize(stream_)); }
  // True when all work queued so far has finished.
  bool ready() const {
    const cudaError_t st = cudaStreamQuery(stream_);
    if (st == cudaErrorNotReady) {
      (void)cudaGetLastError();
      return false;
    }
    TFM_CUDA_CHECK(st);
    return true;
  }

  friend constexpr bool operator==(stream_view a, stream_view b) noexcept {
    return a.stream_ == b.stream_;
  }

 private:
  cudaStream_t stream_ = nullptr;
};

// An owning stream (created non-blocking: it does not synchronise with the legacy default
// stream). Movable, not copyable; destroying it does not wait for queued work to finish
// (cudaStreamDestroy lets that work complete in the background).
class stream {
 public:
  explicit stream(unsigned flags = cudaStreamNonBlocking) {
    TFM_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, flags));
  }
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;
  stream(stream&& o) noexcept : stream_(std::exchange(o.stream_, nullptr)) {}
  stream& operator=(stream&& o) noexcept {
    if (this != &o) {
      reset();
      stream_ = std::exchange(o.stream_, nullptr);
    }
    return *this;
  }
  ~stream() { reset(); }

  stream_view view() const noexcept { return stream_view(stream_); }
  operator stream_view() const noexcept { return view(); }  // NOLINT: a stream is usable as a view
  cudaStream_t get() const noexcept { return stream_; }
  void synchronize() const { view().synchronize(); }

 private:
  void reset() noexcept {
    if (stream_) (void)cudaStreamDestroy(stream_);
    stream_ = nullptr;
  }
  cudaStream_t stream_ = nullptr;
};

// ---------------------------------------------------------------------------- events

// An owning CUDA event (with timing by default). elapsed_ms(start, stop) gives the time between
// two recorded events in milliseconds (resolution about 0.5 µs).
class event {
 public:
  explicit event(bool timing = true) {
    TFM_CUDA_CHECK(
        cudaEventCreateWithFlags(&event_, timing ? cudaEventDefault : cudaEventDisableTiming));
  }
  event(const event&) = delete;
  event& operator=(const event&) = delete;
  event(event&& o) noexcept : event_(std::exchange(o.event_, nullptr)) {}
  event& operator=(event&& o) noexcept {
    if (this != &o) {
      reset();
      event_ = std::exchange(o.event_, nullptr);
    }
    return *this;
  }
  ~event() { reset(); }

  void record(stream_view s = {}) { TFM_CUDA_CHECK(cudaEventRecord(event_, s.get())); }
  void synchronize() const { TFM_CUDA_CHECK(cudaEventSynchronize(event_)); }
  // Makes `s` wait for this event (no host blocking).
  void wait_on(stream_view s) const { TFM_CUDA_CHECK(cudaStreamWaitEvent(s.get(), event_, 0)); }
  bool ready() const {
    const cudaError_t st = cudaEventQuery(event_);
    if (st == cudaErrorNotReady) {
      (void)cudaGetLastError();
      return false;
    }
    TFM_CUDA_CHECK(st);
    return true;
  }
  cudaEvent_t get() const noexcept { return event_; }

  // Milliseconds from `start` to `stop`; both must have been recorded, and `stop` must have
  // completed (call stop.synchronize() first).
  static float elapsed_ms(const event& start, const event& stop) {
    float ms = 0.0f;
    TFM_CUDA_CHECK(cudaEventElapsedTime(&ms, start.event_, stop.event_));
    return ms;
  }

 private:
  void reset() noexcept {
    if (event_) (void)cudaEventDestroy(event_);
    event_ = nullptr;
  }
  cudaEvent_t event_ = nullptr;
};

// ---------------------------------------------------------------------------- raw memory

// Device memory of the current device, aligned to at least 256 bytes (cudaMalloc's guarantee).
// A zero-byte request returns nullptr. Throws tfm::out_of_memory (naming the request and the
// device's free/total memory) when the device is full, tfm::cuda_error for other failures.
inline void* allocate(std::size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = nullptr;
  const cudaError_t st = cudaMalloc(&p, bytes);
  if (st == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    std::size_t free_b = 0, total_b = 0;
    const bool known = cudaMemGetInfo(&free_b, &total_b) == cudaSuccess;
    (void)cudaGetLastError();
    constexpr double mib = 1024.0 * 1024.0;
    if (known) {
      throw out_of_memory(::tfm::detail::concat(
          "tfm::cuda::allocate: cudaMalloc of ", bytes, " bytes (", bytes / mib,
          " MiB) failed: device has ", free_b / mib, " MiB free of ", total_b / mib, " MiB"));
    }
    throw out_of_memory(::tfm::detail::concat("tfm::cuda::allocate: cudaMalloc of ", bytes,
                                              " bytes failed (device memory info unavailable)"));
  }
  if (st != cudaSuccess) detail::throw_cuda_error(st, "cudaMalloc (tfm::cuda::allocate)", __FILE__, __LINE__);
  return p;
}

// Frees memory from allocate(); nullptr is a no-op. Never throws: errors (e.g. a context torn down
// at exit) are dropped.
inline void deallocate(void* p) noexcept {
  if (!p) return;
  if (cudaFree(p) != cudaSuccess) (void)cudaGetLastError();
}

// Which way a copy goes. `inferred` lets the runtime tell from the pointers (unified addressing,
// every 64-bit platform CUDA supports).
enum class copy_kind { host_to_device, device_to_host, device_to_device, host_to_host, inferred };

constexpr cudaMemcpyKind to_cuda(copy_kind k) noexcept {
  switch (k) {
    case copy_kind::host_to_device: return cudaMemcpyHostToDevice;
    case copy_kind::device_to_host: return cudaMemcpyDeviceToHost;
    case copy_kind::device_to_device: return cudaMemcpyDeviceToDevice;
    case copy_kind::host_to_host: return cudaMemcpyHostToHost;
    case copy_kind::inferred: break;
  }
  return cudaMemcpyDefault;
}

// Queues the copy on `s`. With pageable host memory the runtime may stage it synchronously.
inline void copy_async(void* dst, const void* src, std::size_t bytes, copy_kind kind,
                       stream_view s) {
  if (bytes == 0) return;
  TFM_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, to_cuda(kind), s.get()));
}

// Copies `bytes` and returns when the copy has landed. It is ordered after earlier work on the
// default stream (and so on blocking streams), not after work on non-blocking streams such as
// tfm::cuda::stream: synchronise those first. (Plain cudaMemcpy may return before a pageable
// host-to-device copy reaches the device, which a kernel on a non-blocking stream could then
// overtake; waiting for the default stream closes that gap.)
inline void copy(void* dst, const void* src, std::size_t bytes, copy_kind kind = copy_kind::inferred) {
  if (bytes == 0) return;
  copy_async(dst, src, bytes, kind, stream_view{});
  stream_view{}.synchronize();
}

// Queues setting `bytes` bytes of device memory to `byte_value` on `s`.
inline void fill_async(void* dst, int byte_value, std::size_t bytes, stream_view s) {
  if (bytes == 0) return;
  TFM_CUDA_CHECK(cudaMemsetAsync(dst, byte_value, bytes, s.get()));
}

// Sets `bytes` bytes of device memory to `byte_value` and returns when done (ordering as copy()).
inline void fill(void* dst, int byte_value, std::size_t bytes) {
  if (bytes == 0) return;
  fill_async(dst, byte_value, bytes, stream_view{});
  stream_view{}.synchronize();
}

// Typed owning device array for tests, benchmarks and workspaces: `n` elements of trivially
// copyable T, uninitialised. Not a tensor (the library's tensors build on allocate/deallocate).
template <class T>
class device_buffer {
 public:
  device_buffer() noexcept = default;
  explicit device_buffer(std::size_t n) : data_(static_cast<T*>(allocate(n * sizeof(T)))), size_(n) {}
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
  device_buffer(device_buffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  device_buffer& operator=(device_buffer&& o) noexcept {
    if (this != &o) {
      deallocate(data_);
      data_ = std::exchange(o.data_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~device_buffer() { deallocate(data_); }

  T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::size_t bytes() const noexcept { return size_ * sizeof(T); }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace tfm::cuda
