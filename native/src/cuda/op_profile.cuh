// WEFT_CUDA_PROFILE=1: the time of each op of the eager (not graph-captured) forward pass, from
// CUDA events recorded around it, summed per op name and printed to stderr when the engine
// closes. Events between kernels serialize them (no programmatic dependent launch overlap), so
// each share is an upper bound; graph replays are not timed. A diagnostic for bench:engine
// --no-graphs, off (and free) otherwise.
#pragma once
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "cuda/common.cuh"

namespace weft {
namespace cuda {

class OpProfile {
 public:
  OpProfile() {
    const char* v = std::getenv("WEFT_CUDA_PROFILE");
    on_ = v != nullptr && std::strcmp(v, "1") == 0;
  }
  ~OpProfile() {
    print();
    for (cudaEvent_t e : pool_) cudaEventDestroy(e);
  }

  // Around each op of an eager forward pass (capturing: skip, a graph cannot hold these events).
  void begin(cudaStream_t s, bool capturing) {
    if (!on_ || capturing) return;
    cudaEventRecord(event(), s);
  }
  // decode: a step of one token per sequence (its ops are summed apart from prefill steps').
  void end(cudaStream_t s, const char* what, bool capturing, bool decode) {
    if (!on_ || capturing) return;
    cudaEvent_t e = event();
    cudaEventRecord(e, s);
    ops_.push_back({std::string(decode ? "decode  " : "prefill ") + what, used_ - 2});
  }
  // After the step's stream synchronization: add the elapsed times and reuse the events.
  void collect() {
    for (const auto& [what, i] : ops_) {
      float ms = 0;
      if (cudaEventElapsedTime(&ms, pool_[i], pool_[i + 1]) == cudaSuccess) {
        auto& t = totals_[what];
        t.first += ms * 1e3, t.second += 1;
      }
    }
    ops_.clear();
    used_ = 0;
  }

 private:
  cudaEvent_t event() {
    if (used_ == pool_.size()) {
      cudaEvent_t e = nullptr;
      cudaEventCreate(&e);
      pool_.push_back(e);
    }
    return pool_[used_++];
  }
  void print() const {
    if (!on_ || totals_.empty()) return;
    double all = 0;
    for (const auto& [name, t] : totals_) all += t.first;
    std::vector<std::pair<std::string, std::pair<double, long>>> rows(totals_.begin(), totals_.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
    std::fprintf(stderr, "weft: CUDA op profile (eager steps, events around each op; us)\n%-42s %10s %8s %10s %7s\n", "op", "total", "calls", "mean",
                 "share");
    for (const auto& [name, t] : rows)
      std::fprintf(stderr, "%-42s %10.0f %8ld %10.2f %6.1f%%\n", name.c_str(), t.first, t.second, t.first / t.second, 100 * t.first / all);
  }

  bool on_ = false;
  std::vector<cudaEvent_t> pool_;
  size_t used_ = 0;
  std::vector<std::pair<std::string, size_t>> ops_;
  std::map<std::string, std::pair<double, long>> totals_;  // name -> (us, calls)
};

}  // namespace cuda
}  // namespace weft
