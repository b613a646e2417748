// tfm/backend/cuda/profile.hpp — GPU time per named operation on a stream, for finding where a
// step's time goes without a profiler (Nsight may be absent on the machine, or unable to read
// counters under its sandbox).
//
//   tfm::cuda::op_profiler prof;                    // or: the CUDA backend's, when TFM_CUDA_PROFILE=1
//   { tfm::cuda::op_scope s(&prof, "gelu", stream); launch(...); }
//   for (auto& e : prof.collect()) printf("%s %d calls %.3f ms\n", e.name, e.calls, e.ms);
//
// begin()/end() record a CUDA event pair around the work queued in between on that stream, so
// the time is the span from the first kernel's start to the last one's end on the GPU (host gaps
// inside a scope count). Scopes may nest; each reports its inclusive time. Events come from a
// pool and are reused after collect(). Not thread-safe: one profiler per stream.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "tfm/backend/cuda/runtime.hpp"

namespace tfm::cuda {

class op_profiler {
 public:
  struct entry {
    std::string name;
    int calls = 0;
    double ms = 0;
  };

  op_profiler() = default;
  op_profiler(const op_profiler&) = delete;
  op_profiler& operator=(const op_profiler&) = delete;
  ~op_profiler() {
    for (cudaEvent_t e : pool_) (void)cudaEventDestroy(e);
  }

  // True when the environment variable TFM_CUDA_PROFILE is "1" (read at each call).
  static bool requested_by_environment() {
    const char* v = std::getenv("TFM_CUDA_PROFILE");
    return v != nullptr && std::string_view(v) == "1";
  }

  void begin(const char* name, cudaStream_t s) {
    // One event for this start, and one spare for the end of every open scope including this
    // one, so that end() never allocates.
    while (pool_.size() < used_ + open_.size() + 2) {
      cudaEvent_t e = nullptr;
      TFM_CUDA_CHECK(cudaEventCreate(&e));
      pool_.push_back(e);
    }
    const cudaEvent_t e = pool_[used_++];
    TFM_CUDA_CHECK(cudaEventRecord(e, s));
    open_.push_back(records_.size());
    records_.push_back({name, e, nullptr});
  }
  // No exception (it runs in op_scope's destructor): a failed record leaves the scope open, and
  // collect() skips it.
  void end(cudaStream_t s) noexcept {
    if (open_.empty()) return;
    const cudaEvent_t e = pool_[used_++];
    if (cudaEventRecord(e, s) != cudaSuccess) {
      open_.pop_back();
      return;
    }
    records_[open_.back()].stop = e;
    open_.pop_back();
  }

  // Waits for the recorded work, sums the time per name (most time first) and starts afresh.
  std::vector<entry> collect() {
    std::map<std::string, entry> by_name;
    for (const record& r : records_) {
      if (r.stop == nullptr) continue;  // still open
      TFM_CUDA_CHECK(cudaEventSynchronize(r.stop));
      float ms = 0;
      TFM_CUDA_CHECK(cudaEventElapsedTime(&ms, r.start, r.stop));
      entry& e = by_name[r.name];
      e.name = r.name;
      ++e.calls;
      e.ms += double(ms);
    }
    records_.clear();
    open_.clear();
    used_ = 0;
    std::vector<entry> out;
    for (auto& [name, e] : by_name) out.push_back(e);
    std::sort(out.begin(), out.end(), [](const entry& a, const entry& b) { return a.ms > b.ms; });
    return out;
  }

 private:
  struct record {
    const char* name;
    cudaEvent_t start, stop;
  };
  std::vector<cudaEvent_t> pool_;
  std::size_t used_ = 0;
  std::vector<record> records_;
  std::vector<std::size_t> open_;
};

// begin() on construction, end() on destruction; does nothing with a null profiler.
class op_scope {
 public:
  op_scope(op_profiler* p, const char* name, cudaStream_t s) : p_(p), s_(s) {
    if (p_) p_->begin(name, s_);
  }
  op_scope(const op_scope&) = delete;
  op_scope& operator=(const op_scope&) = delete;
  ~op_scope() {
    if (p_) p_->end(s_);
  }

 private:
  op_profiler* p_;
  cudaStream_t s_;
};

}  // namespace tfm::cuda
