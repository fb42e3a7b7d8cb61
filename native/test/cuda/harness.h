// The CUDA test driver's harness: a registry of named tests, checks that count failures and
// report the worst error, RAII device buffers and host-side dtype conversions. Each test file
// in native/test/cuda compares CUDA ops with the CPU reference on seeded random inputs.
#pragma once
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cuda/common.cuh"
#include "half.h"

namespace weft_test {

struct Harness {
  int passed = 0, failed = 0;
  std::string current;
  void check(bool ok, const std::string& what) {
    if (ok) ++passed;
    else {
      ++failed;
      std::printf("  FAIL [%s] %s\n", current.c_str(), what.c_str());
    }
  }
  // |a - b| <= atol + rtol * |b| elementwise; prints the worst element either way (as "info").
  void check_close(const float* got, const float* want, size_t n, float atol, float rtol, const std::string& what) {
    double worst = 0;
    size_t worst_i = 0, bad = 0;
    for (size_t i = 0; i < n; ++i) {
      const double d = std::fabs(double(got[i]) - want[i]);
      const bool nan = std::isnan(got[i]) != std::isnan(want[i]);
      if (nan || d > atol + rtol * std::fabs(want[i])) ++bad;
      if (nan || d > worst) worst = nan ? INFINITY : d, worst_i = i;
    }
    std::printf("  %-5s [%s] %s: n=%zu max|err|=%.3g at %zu (got %.6g want %.6g), tol %.2g+%.2g*|ref|\n", bad ? "FAIL" : "ok", current.c_str(),
                what.c_str(), n, worst, worst_i, n ? got[worst_i] : 0.f, n ? want[worst_i] : 0.f, atol, rtol);
    if (bad) ++failed;
    else ++passed;
  }
  template <class T> void check_equal(const std::vector<T>& got, const std::vector<T>& want, const std::string& what) {
    size_t first = got.size() == want.size() ? got.size() : 0;
    for (size_t i = 0; i < got.size() && i < want.size(); ++i)
      if (got[i] != want[i]) {
        first = i;
        break;
      }
    const bool ok = got.size() == want.size() && first == got.size();
    if (!ok)
      std::printf("  FAIL [%s] %s: first difference at %zu (sizes %zu vs %zu)\n", current.c_str(), what.c_str(), first, got.size(), want.size());
    else std::printf("  ok    [%s] %s: %zu equal\n", current.c_str(), what.c_str(), got.size());
    ok ? ++passed : ++failed;
  }
};

using TestFn = std::function<void(Harness&)>;
struct TestEntry {
  std::string name;
  TestFn fn;
};
inline std::vector<TestEntry>& registry() {
  static std::vector<TestEntry> r;
  return r;
}
struct Registrar {
  Registrar(const char* name, TestFn fn) {
    registry().push_back({name, std::move(fn)});
  }
};
#define WEFT_CUDA_TEST(name)                                   \
  static void name(::weft_test::Harness& h);                   \
  static ::weft_test::Registrar name##_registrar(#name, name); \
  static void name(::weft_test::Harness& h)

// Aborts the current test (not the process) on a CUDA error.
struct CudaFailure {
  std::string what;
};
inline void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw CudaFailure{std::string(what) + ": " + cudaGetErrorString(e)};
}

template <class T> struct DeviceBuf {
  T* ptr = nullptr;
  size_t n = 0;
  DeviceBuf() = default;
  explicit DeviceBuf(size_t count) : n(count) {
    cuda_ok(cudaMalloc(&ptr, std::max<size_t>(count, 1) * sizeof(T)), "cudaMalloc");
    cuda_ok(cudaMemset(ptr, 0, std::max<size_t>(count, 1) * sizeof(T)), "cudaMemset");
  }
  explicit DeviceBuf(const std::vector<T>& host) : DeviceBuf(host.size()) {
    upload(host);
  }
  ~DeviceBuf() {
    if (ptr) cudaFree(ptr);
  }
  DeviceBuf(const DeviceBuf&) = delete;
  DeviceBuf& operator=(const DeviceBuf&) = delete;
  void upload(const std::vector<T>& host) {
    cuda_ok(cudaMemcpy(ptr, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice), "upload");
  }
  std::vector<T> download() const {
    std::vector<T> out(n);
    cuda_ok(cudaMemcpy(out.data(), ptr, n * sizeof(T), cudaMemcpyDeviceToHost), "download");
    return out;
  }
};

inline void sync(const char* what) {
  cuda_ok(cudaDeviceSynchronize(), what);
}

// ---- host dtype conversions (round to nearest even) ----
using weft::bf16_to_f32;
using weft::f32_to_bf16;
// dtype: 0 = f16, 1 = bf16 (weft::cuda::DType values)
inline uint16_t to_half_bits(float f, weft::cuda::DType t) {
  return t == weft::cuda::DType::f16 ? weft::f32_to_f16(f) : f32_to_bf16(f);
}
inline float from_half_bits(uint16_t h, weft::cuda::DType t) {
  return t == weft::cuda::DType::f16 ? weft::f16_to_f32(h) : bf16_to_f32(h);
}
// Rounds through the dtype: what the device sees after conversion.
inline float round_to(float f, weft::cuda::DType t) {
  return from_half_bits(to_half_bits(f, t), t);
}
inline std::vector<uint16_t> to_half_vec(const std::vector<float>& v, weft::cuda::DType t) {
  std::vector<uint16_t> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = to_half_bits(v[i], t);
  return o;
}
inline std::vector<float> from_half_vec(const std::vector<uint16_t>& v, weft::cuda::DType t) {
  std::vector<float> o(v.size());
  for (size_t i = 0; i < v.size(); ++i) o[i] = from_half_bits(v[i], t);
  return o;
}

inline std::vector<float> random_vec(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

}  // namespace weft_test
