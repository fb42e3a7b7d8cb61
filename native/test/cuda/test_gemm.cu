// gemm (native/src/cuda/gemm.cu) against a double-precision CPU reference computed from the same
// rounded inputs: X rounded through the activation dtype, W through its dtype (f16/bf16) or, for
// int8, the exact value float(q) * scale. Every weight kind x activation dtype x epilogue x path
// (the automatic choice and each kernel path forced) on shapes with n, m tails, plus invalid
// arguments, and two timing reports (decode bandwidth, prefill throughput) that check nothing.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda/gemm.cuh"
#include "cuda/gemm_kernels.cuh"
#include "harness.h"

namespace {

using weft::cuda::DType;
using weft::cuda::Epilogue;
using weft::cuda::GemmPath;
using weft::cuda::GemmWeight;
using weft::cuda::WeightKind;
using weft_test::DeviceBuf;
using weft_test::Harness;

struct Combo {
  WeightKind kind;
  int group;  // i8 only
  DType act;
};

std::string combo_name(const Combo& c) {
  std::string s = c.kind == WeightKind::f16 ? "w=f16" : c.kind == WeightKind::bf16 ? "w=bf16" : "w=i8";
  if (c.kind == WeightKind::i8) s += c.group == 0 ? "/row" : "/g32";
  return s + " act=" + weft::cuda::dtype_name(c.act);
}
const char* path_name(GemmPath p) {
  switch (p) {
    case GemmPath::automatic:
      return "auto";
    case GemmPath::gemv:
      return "gemv";
    case GemmPath::tc_large:
      return "tc_large";
    case GemmPath::tc_medium:
      return "tc_medium";
    case GemmPath::tc_skinny:
      return "tc_skinny";
  }
  return "?";
}
const char* ep_name(Epilogue e) {
  return e == Epilogue::store_f32 ? "store_f32" : e == Epilogue::store_act ? "store_act" : e == Epilogue::add_f32 ? "add_f32" : "swiglu";
}

// A weight matrix as uploaded, and the exact values the reference multiplies by.
struct HostWeight {
  int n = 0, k = 0;
  Combo c{};
  std::vector<uint16_t> bits;  // f16/bf16 [n][k]
  std::vector<int8_t> q;  // i8 [n][k]
  std::vector<float> scales;  // i8: [n] or [n][k/32]
  std::vector<double> value;  // [n][k]: the weight (group 0: q alone, its scale applies after the sum)
};

HostWeight make_weight(const Combo& c, int n, int k, uint32_t seed) {
  HostWeight w;
  w.n = n, w.k = k, w.c = c;
  w.value.resize(size_t(n) * k);
  if (c.kind != WeightKind::i8) {
    const DType wt = c.kind == WeightKind::f16 ? DType::f16 : DType::bf16;
    w.bits = weft_test::to_half_vec(weft_test::random_vec(size_t(n) * k, seed), wt);
    for (size_t i = 0; i < w.bits.size(); ++i) w.value[i] = weft_test::from_half_bits(w.bits[i], wt);
    return w;
  }
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> qd(-127, 127);
  std::uniform_real_distribution<float> sd(0.5f / 127, 1.5f / 127);
  w.q.resize(size_t(n) * k);
  for (auto& v : w.q) v = int8_t(qd(rng));
  w.scales.resize(c.group == 0 ? size_t(n) : size_t(n) * (k / 32));
  for (auto& s : w.scales) s = sd(rng);
  for (int j = 0; j < n; ++j)
    for (int kk = 0; kk < k; ++kk) {
      const size_t i = size_t(j) * k + kk;
      w.value[i] = c.group == 0 ? double(w.q[i]) : double(w.q[i]) * double(w.scales[size_t(j) * (k / 32) + kk / 32]);
    }
  return w;
}

// A HostWeight uploaded, and the GemmWeight that describes it.
struct DeviceWeight {
  DeviceBuf<uint16_t> w16;
  DeviceBuf<int8_t> w8;
  DeviceBuf<float> scales;
  GemmWeight gw;
  explicit DeviceWeight(const HostWeight& w)
      : w16(w.c.kind == WeightKind::i8 ? std::vector<uint16_t>{} : w.bits),
        w8(w.c.kind == WeightKind::i8 ? w.q : std::vector<int8_t>{}),
        scales(w.scales) {
    const bool i8 = w.c.kind == WeightKind::i8;
    gw.data = i8 ? static_cast<const void*>(w8.ptr) : static_cast<const void*>(w16.ptr);
    gw.scales = i8 ? scales.ptr : nullptr;
    gw.kind = w.c.kind, gw.group = w.c.group, gw.n = w.n, gw.k = w.k;
  }
};

// ref[i][j] = sum_kk x[i][kk] * w[j][kk] (times scales[j] for row-scaled int8), in double.
std::vector<double> reference(const std::vector<float>& x, int m, const HostWeight& w) {
  const int n = w.n, k = w.k;
  std::vector<double> ref(size_t(m) * n);
  std::vector<double> xd(k);
  for (int i = 0; i < m; ++i) {
    for (int kk = 0; kk < k; ++kk) xd[kk] = x[size_t(i) * k + kk];
    for (int j = 0; j < n; ++j) {
      const double* wr = &w.value[size_t(j) * k];
      double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (int kk = 0; kk < k; kk += 4) {
        s0 += xd[kk] * wr[kk];
        s1 += xd[kk + 1] * wr[kk + 1];
        s2 += xd[kk + 2] * wr[kk + 2];
        s3 += xd[kk + 3] * wr[kk + 3];
      }
      double s = (s0 + s1) + (s2 + s3);
      if (w.c.kind == WeightKind::i8 && w.c.group == 0) s *= double(w.scales[j]);
      ref[size_t(i) * n + j] = s;
    }
  }
  return ref;
}

// Tolerances. Products of two 16-bit floats are exact in fp32 and accumulate in fp32: with
// inputs in [-1, 1] a dot product of length k has magnitude ~sqrt(k)/3 and an fp32 accumulation
// error orders of magnitude below 1e-2·sqrt(k/64), which is the absolute bound used (it also
// absorbs the tensor cores' accumulation order), plus 1e-2 relative. Group-32 int8 rounds each
// dequantized weight q·s to T (relative error <= 2^-9 for bf16, 2^-12 for f16, random in sign):
// the error of the sum is a random walk of rms ~ sqrt(k/3)·|w|rms·2^-9/sqrt(3); ~6 sigma of it is
// about 4e-3·sqrt(k) for bf16 (5e-4·sqrt(k) for f16), added to the absolute bound. store_act
// also rounds the output to T (<= 2^-9 relative for bf16): relative bound 2e-2.
float atol_for(const Combo& c, int k) {
  double a = 1e-2 * std::sqrt(k / 64.0);
  if (c.kind == WeightKind::i8 && c.group == 32) a += (c.act == DType::bf16 ? 4e-3 : 5e-4) * std::sqrt(double(k));
  return float(a);
}

const std::vector<int> kMs = {1, 2, 3, 5, 8, 9, 16, 17, 64, 127, 256};
const Epilogue kEps[] = {Epilogue::store_f32, Epilogue::store_act, Epilogue::add_f32};
const GemmPath kPaths[] = {GemmPath::automatic, GemmPath::gemv, GemmPath::tc_large, GemmPath::tc_medium, GemmPath::tc_skinny};

void check_shape(Harness& h, const Combo& c, int n, int k, uint32_t seed) {
  const int mmax = *std::max_element(kMs.begin(), kMs.end());
  const std::string tag = combo_name(c) + " n=" + std::to_string(n) + " k=" + std::to_string(k);

  // Inputs, rounded through their dtypes; the reference for all mmax rows (smaller m use a prefix).
  const std::vector<uint16_t> xbits = weft_test::to_half_vec(weft_test::random_vec(size_t(mmax) * k, seed), c.act);
  const std::vector<float> x = weft_test::from_half_vec(xbits, c.act);
  const HostWeight w = make_weight(c, n, k, seed * 7 + 1);
  const std::vector<double> ref = reference(x, mmax, w);

  DeviceBuf<uint16_t> dx(xbits);
  const DeviceWeight dev(w);
  const GemmWeight& gw = dev.gw;

  // y has one row more than m and ldy = n + 3: everything outside [m][n] must keep its sentinel.
  const int ldy = n + 3;
  const size_t ycount = size_t(mmax + 1) * ldy;
  const std::vector<float> y_add0 = weft_test::random_vec(ycount, seed + 11);
  const std::vector<float> y_f32_0(ycount, 12345.f);
  const std::vector<uint16_t> y_act0(ycount, uint16_t(0x5A5A));
  const std::vector<float> y_act0_f = weft_test::from_half_vec(y_act0, c.act);
  DeviceBuf<float> dyf(ycount);
  DeviceBuf<uint16_t> dyh(ycount);

  const float atol = atol_for(c, k);
  for (const GemmPath path : kPaths) {
    for (const Epilogue ep : kEps) {
      const bool act_out = ep == Epilogue::store_act;
      const std::vector<float>& y0 = ep == Epilogue::add_f32 ? y_add0 : act_out ? y_act0_f : y_f32_0;
      std::vector<float> got_all, want_all;
      std::vector<int> m_of;  // m of each compared element, for the diagnostics
      bool outside_ok = true, launched_ok = true;
      for (const int m : kMs) {
        if (path == GemmPath::gemv && m > weft::cuda::kGemvMaxM) continue;
        void* y;
        if (act_out) dyh.upload(y_act0), y = dyh.ptr;
        else dyf.upload(ep == Epilogue::add_f32 ? y_add0 : y_f32_0), y = dyf.ptr;
        const cudaError_t e = weft::cuda::gemm_with_path(path, c.act, dx.ptr, m, gw, y, ldy, ep, nullptr);
        weft_test::cuda_ok(cudaGetLastError(), "gemm launch");
        weft_test::sync("gemm");
        if (e != cudaSuccess) {
          launched_ok = false;
          std::printf("  gemm returned %s for m=%d\n", cudaGetErrorName(e), m);
          continue;
        }
        std::vector<float> got = act_out ? weft_test::from_half_vec(dyh.download(), c.act) : dyf.download();
        for (int i = 0; i <= mmax; ++i)
          for (int j = 0; j < ldy; ++j) {
            const size_t o = size_t(i) * ldy + j;
            if (i < m && j < n) {
              const double r = ref[size_t(i) * n + j];
              got_all.push_back(got[o]);
              want_all.push_back(float(ep == Epilogue::add_f32 ? double(y0[o]) + r : r));
              m_of.push_back(m);
            } else if (std::memcmp(&got[o], &y0[o], sizeof(float)) != 0) {
              if (outside_ok) std::printf("  m=%d: y[%d][%d] outside the output was changed (%g -> %g)\n", m, i, j, y0[o], got[o]);
              outside_ok = false;
            }
          }
      }
      if (path == GemmPath::gemv && got_all.empty() && launched_ok) continue;
      const std::string what = tag + " " + path_name(path) + " " + ep_name(ep);
      const float rtol = act_out ? 2e-2f : 1e-2f;
      const int failed_before = h.failed;
      h.check(launched_ok, what + ": gemm returned cudaSuccess");
      h.check(outside_ok, what + ": nothing written outside y[m][n]");
      h.check_close(got_all.data(), want_all.data(), got_all.size(), atol, rtol, what);
      if (h.failed != failed_before) {  // which m fail, for the log
        for (const int m : kMs) {
          double worst = 0;
          size_t bad = 0;
          for (size_t i = 0; i < got_all.size(); ++i)
            if (m_of[i] == m) {
              const double d = std::fabs(double(got_all[i]) - want_all[i]);
              if (!(d <= atol + rtol * std::fabs(want_all[i]))) ++bad;
              worst = std::max(worst, std::isnan(d) ? INFINITY : d);
            }
          if (bad) std::printf("    m=%d: %zu bad, max|err| %.3g\n", m, bad, worst);
        }
      }
    }
  }
}

const int kShapes[][2] = {{1, 64}, {7, 64}, {64, 64}, {100, 192}, {257, 512}, {2048, 2048}, {4099, 256}};

void check_combo(Harness& h, const Combo& c, uint32_t seed) {
  for (const auto& s : kShapes) check_shape(h, c, s[0], s[1], seed++);
}

}  // namespace

WEFT_CUDA_TEST(gemm_f16) {
  check_combo(h, {WeightKind::f16, 0, DType::f16}, 100);
}
WEFT_CUDA_TEST(gemm_bf16) {
  check_combo(h, {WeightKind::bf16, 0, DType::bf16}, 200);
}
WEFT_CUDA_TEST(gemm_i8_row_f16) {
  check_combo(h, {WeightKind::i8, 0, DType::f16}, 300);
}
WEFT_CUDA_TEST(gemm_i8_row_bf16) {
  check_combo(h, {WeightKind::i8, 0, DType::bf16}, 400);
}
WEFT_CUDA_TEST(gemm_i8_g32_f16) {
  check_combo(h, {WeightKind::i8, 32, DType::f16}, 500);
}
WEFT_CUDA_TEST(gemm_i8_g32_bf16) {
  check_combo(h, {WeightKind::i8, 32, DType::bf16}, 600);
}

// The swiglu epilogue (decode gemv, interleaved gate/up rows) equals store_act through the same
// path followed by SwiGLU on the host: the same sums, rounded to T, then silu(g) * u rounded to T
// (device expf against std::exp: at most one rounding step of T apart). Columns past n/2 of y
// keep their sentinel; m > kGemvMaxM, a forced tensor-core path and an odd n are refused.
WEFT_CUDA_TEST(gemm_swiglu_epilogue) {
  const Combo combos[] = {
      {WeightKind::bf16, 0, DType::bf16}, {WeightKind::f16, 0, DType::f16}, {WeightKind::i8, 0, DType::f16}, {WeightKind::i8, 32, DType::bf16}};
  const int shapes[][2] = {{2, 64}, {34, 192}, {1024, 512}, {4098, 256}};
  uint32_t seed = 900;
  for (const Combo& c : combos)
    for (const auto& sh : shapes) {
      const int n = sh[0], k = sh[1], f = n / 2, ldy = f + 5, mmax = weft::cuda::kGemvMaxM;
      const std::vector<uint16_t> xbits = weft_test::to_half_vec(weft_test::random_vec(size_t(mmax) * k, seed), c.act);
      const HostWeight w = make_weight(c, n, k, seed++ * 3 + 1);
      DeviceBuf<uint16_t> dx(xbits);
      const DeviceWeight dev(w);
      const GemmWeight& gw = dev.gw;
      const std::vector<uint16_t> sentinel(size_t(mmax) * ldy, uint16_t(0x5A5A));
      DeviceBuf<uint16_t> dfull(size_t(mmax) * n), dy(sentinel);
      const std::string tag = combo_name(c) + " n=" + std::to_string(n) + " k=" + std::to_string(k);
      for (const int m : {1, 3, 9, 16}) {
        dy.upload(sentinel);
        weft_test::cuda_ok(weft::cuda::gemm_with_path(GemmPath::gemv, c.act, dx.ptr, m, gw, dfull.ptr, n, Epilogue::store_act, nullptr), "store_act");
        weft_test::cuda_ok(weft::cuda::gemm(c.act, dx.ptr, m, gw, dy.ptr, ldy, Epilogue::swiglu, nullptr), "swiglu");
        weft_test::sync("swiglu");
        const std::vector<float> full = weft_test::from_half_vec(dfull.download(), c.act);
        const std::vector<float> got = weft_test::from_half_vec(dy.download(), c.act);
        const std::vector<float> sent = weft_test::from_half_vec(sentinel, c.act);
        std::vector<float> g, want;
        bool outside_ok = true;
        for (int i = 0; i < mmax; ++i)
          for (int j = 0; j < ldy; ++j) {
            const size_t o = size_t(i) * ldy + j;
            if (i < m && j < f) {
              const float gate = full[size_t(i) * n + 2 * j], up = full[size_t(i) * n + 2 * j + 1];
              g.push_back(got[o]);
              want.push_back(weft_test::round_to(gate / (1.f + std::exp(-gate)) * up, c.act));
            } else if (std::memcmp(&got[o], &sent[o], sizeof(float)) != 0) {
              outside_ok = false;
            }
          }
        const std::string what = tag + " m=" + std::to_string(m);
        h.check(outside_ok, what + ": nothing written outside y[m][n/2]");
        h.check_close(g.data(), want.data(), g.size(), 1e-6f, c.act == DType::f16 ? 1.f / 1024 : 1.f / 128, what);
      }
      h.check(weft::cuda::gemm(c.act, dx.ptr, mmax + 1, gw, dy.ptr, ldy, Epilogue::swiglu, nullptr) == cudaErrorInvalidValue,
              tag + ": m > kGemvMaxM refused");
      h.check(weft::cuda::gemm_with_path(GemmPath::tc_medium, c.act, dx.ptr, 1, gw, dy.ptr, ldy, Epilogue::swiglu, nullptr) == cudaErrorInvalidValue,
              tag + ": a tensor-core path refused");
      GemmWeight odd = gw;
      odd.n = n - 1;
      h.check(weft::cuda::gemm(c.act, dx.ptr, 1, odd, dy.ptr, ldy, Epilogue::swiglu, nullptr) == cudaErrorInvalidValue, tag + ": odd n refused");
    }
}

// Invalid arguments are rejected with cudaErrorInvalidValue before anything is launched.
WEFT_CUDA_TEST(gemm_invalid_inputs) {
  const int n = 64, k = 128, m = 4;
  DeviceBuf<uint16_t> dx(size_t(m) * k + 8), dw(size_t(n) * k);
  DeviceBuf<int8_t> dq(size_t(n) * k);
  DeviceBuf<float> ds(size_t(n) * (k / 32));
  const std::vector<float> sentinel(size_t(m) * n, 4242.f);
  DeviceBuf<float> dy(sentinel);
  weft_test::sync("setup");
  auto dense = [&](WeightKind kind, int kk) {
    GemmWeight w;
    w.data = dw.ptr, w.kind = kind, w.n = n, w.k = kk;
    return w;
  };
  auto int8 = [&](int group, const float* scales) {
    GemmWeight w;
    w.data = dq.ptr, w.scales = scales, w.kind = WeightKind::i8, w.group = group, w.n = n, w.k = k;
    return w;
  };
  struct Case {
    const char* what;
    GemmPath path;
    DType act;
    const void* x;
    int m;
    GemmWeight w;
    int ldy;
  };
  const Case cases[] = {
      {"k=100 (not a multiple of 64)", GemmPath::automatic, DType::f16, dx.ptr, m, dense(WeightKind::f16, 100), n},
      {"k=32", GemmPath::automatic, DType::f16, dx.ptr, m, dense(WeightKind::f16, 32), n},
      {"k=0", GemmPath::automatic, DType::f16, dx.ptr, m, dense(WeightKind::f16, 0), n},
      {"bf16 weights, f16 activations", GemmPath::automatic, DType::f16, dx.ptr, m, dense(WeightKind::bf16, k), n},
      {"f16 weights, bf16 activations", GemmPath::automatic, DType::bf16, dx.ptr, m, dense(WeightKind::f16, k), n},
      {"f16 weights, bf16 activations, tc path", GemmPath::tc_large, DType::bf16, dx.ptr, 64, dense(WeightKind::f16, k), n},
      {"i8 group 16", GemmPath::automatic, DType::f16, dx.ptr, m, int8(16, ds.ptr), n},
      {"i8 without scales", GemmPath::automatic, DType::bf16, dx.ptr, m, int8(0, nullptr), n},
      {"ldy < n", GemmPath::automatic, DType::f16, dx.ptr, m, dense(WeightKind::f16, k), n - 1},
      {"x null", GemmPath::automatic, DType::f16, nullptr, m, dense(WeightKind::f16, k), n},
      {"x not 16-byte aligned", GemmPath::automatic, DType::f16, dx.ptr + 1, m, dense(WeightKind::f16, k), n},
      {"forced gemv with m > kGemvMaxM", GemmPath::gemv, DType::f16, dx.ptr, weft::cuda::kGemvMaxM + 1, dense(WeightKind::f16, k), n},
      {"negative m", GemmPath::automatic, DType::f16, dx.ptr, -1, dense(WeightKind::f16, k), n},
  };
  for (const Case& cs : cases) {
    const cudaError_t e = weft::cuda::gemm_with_path(cs.path, cs.act, cs.x, cs.m, cs.w, dy.ptr, cs.ldy, Epilogue::store_f32, nullptr);
    h.check(e == cudaErrorInvalidValue, std::string(cs.what) + ": cudaErrorInvalidValue (got " + cudaGetErrorName(e) + ")");
    h.check(cudaGetLastError() == cudaSuccess, std::string(cs.what) + ": no launch error recorded");
  }
  // the public entry point validates the same way
  h.check(weft::cuda::gemm(DType::f16, dx.ptr, m, dense(WeightKind::f16, 100), dy.ptr, n, Epilogue::add_f32, nullptr) == cudaErrorInvalidValue,
          "gemm(): k=100 rejected");
  h.check(weft::cuda::gemm(DType::bf16, dx.ptr, m, dense(WeightKind::f16, k), dy.ptr, n, Epilogue::add_f32, nullptr) == cudaErrorInvalidValue,
          "gemm(): kind/act mismatch rejected");
  // m = 0 is an empty product: success, nothing written
  h.check(weft::cuda::gemm(DType::f16, dx.ptr, 0, dense(WeightKind::f16, k), dy.ptr, n, Epilogue::store_f32, nullptr) == cudaSuccess,
          "m=0 is a no-op");
  weft_test::sync("invalid inputs");
  h.check_equal(dy.download(), sentinel, "y untouched by rejected calls");
}

WEFT_CUDA_TEST(gemm_path_choice) {
  using weft::cuda::gemm_choose_path;
  h.check(gemm_choose_path(1, 128256, 132) == GemmPath::gemv, "m=1 -> gemv");
  h.check(gemm_choose_path(16, 2048, 132) == GemmPath::gemv, "m=16 -> gemv");
  h.check(gemm_choose_path(17, 2048, 132) == GemmPath::tc_skinny, "m=17, n=2048 -> tc_skinny");
  h.check(gemm_choose_path(64, 16384, 132) == GemmPath::tc_large, "m=64, n=16384 -> tc_large");
  h.check(gemm_choose_path(256, 2048, 132) == GemmPath::tc_medium, "m=256, n=2048 -> tc_medium");
  h.check(gemm_choose_path(4096, 4096, 132) == GemmPath::tc_large, "m=4096 -> tc_large");
}

namespace {
// Average milliseconds of one call, rotating over `copies` weight buffers so that repeated
// calls stream from HBM rather than L2.
template <class F> float time_ms(F&& call, int copies, int iters) {
  for (int i = 0; i < copies; ++i) call(i);
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  cudaEventRecord(a);
  for (int i = 0; i < iters; ++i) call(i % copies);
  cudaEventRecord(b);
  cudaEventSynchronize(b);
  float ms = 0;
  cudaEventElapsedTime(&ms, a, b);
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / iters;
}
}  // namespace

// Timing report, checks nothing but launch success: batch-1 decode on Llama-3.2-1B shapes
// (GB/s of weights, inputs and outputs; compare with the device's HBM bandwidth).
WEFT_CUDA_TEST(gemm_perf_decode) {
  const int shapes[][2] = {{3072, 2048}, {2048, 2048}, {16384, 2048}, {2048, 8192}, {128256, 2048}};
  for (const int m : {1, 8}) {
    for (const auto& s : shapes) {
      for (const int kind : {0, 1}) {  // bf16, i8 group 32
        const int n = s[0], k = s[1];
        const size_t wbytes = size_t(n) * k * (kind == 0 ? 2 : 1) + (kind == 0 ? 0 : size_t(n) * (k / 32) * 4);
        const int copies = int(std::min<size_t>(64, 1 + (size_t(256) << 20) / wbytes));
        std::vector<DeviceBuf<uint8_t>*> ws;
        std::vector<DeviceBuf<float>*> ss;
        for (int i = 0; i < copies; ++i) {
          ws.push_back(new DeviceBuf<uint8_t>(size_t(n) * k * (kind == 0 ? 2 : 1)));
          ss.push_back(new DeviceBuf<float>(kind == 0 ? 1 : size_t(n) * (k / 32)));
        }
        DeviceBuf<uint16_t> dx(size_t(m) * k);
        DeviceBuf<float> dy(size_t(m) * n);
        cudaError_t err = cudaSuccess;
        auto call = [&](int i) {
          GemmWeight w;
          w.data = ws[i]->ptr, w.n = n, w.k = k;
          if (kind == 0) w.kind = WeightKind::bf16;
          else w.kind = WeightKind::i8, w.group = 32, w.scales = ss[i]->ptr;
          const cudaError_t e = weft::cuda::gemm(DType::bf16, dx.ptr, m, w, dy.ptr, n, Epilogue::add_f32, nullptr);
          if (e != cudaSuccess) err = e;
        };
        const float ms = time_ms(call, copies, 50);
        weft_test::sync("perf decode");
        for (auto* p : ws) delete p;
        for (auto* p : ss) delete p;
        const double gbs = (wbytes + size_t(m) * k * 2 + size_t(m) * n * 8) / (ms * 1e6);
        std::printf("  info  m=%d n=%6d k=%5d %-8s %8.2f us  %7.1f GB/s\n", m, n, k, kind == 0 ? "bf16" : "i8/g32", ms * 1e3, gbs);
        h.check(err == cudaSuccess, "decode gemm launched");
      }
    }
  }
}

// Timing report, checks nothing but launch success: larger m (batched decode, prefill).
WEFT_CUDA_TEST(gemm_perf_prefill) {
  const int cases[][3] = {{64, 2048, 2048},   {128, 2048, 2048},  {256, 2048, 2048},  {256, 16384, 2048},
                          {1024, 2048, 2048}, {2048, 8192, 2048}, {4096, 4096, 4096}, {4096, 2048, 8192}};
  int sms = 0;
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
  for (const auto& c : cases) {
    for (const int kind : {0, 1}) {  // bf16, i8 group 32
      const int m = c[0], n = c[1], k = c[2];
      DeviceBuf<uint8_t> dw(size_t(n) * k * (kind == 0 ? 2 : 1));
      DeviceBuf<float> ds(size_t(n) * (k / 32));
      DeviceBuf<uint16_t> dx(size_t(m) * k);
      DeviceBuf<uint16_t> dy(size_t(m) * n);
      GemmWeight w;
      w.data = dw.ptr, w.n = n, w.k = k;
      if (kind == 0) w.kind = WeightKind::bf16;
      else w.kind = WeightKind::i8, w.group = 32, w.scales = ds.ptr;
      cudaError_t err = cudaSuccess;
      auto call = [&](int) {
        const cudaError_t e = weft::cuda::gemm(DType::bf16, dx.ptr, m, w, dy.ptr, n, Epilogue::store_act, nullptr);
        if (e != cudaSuccess) err = e;
      };
      const float ms = time_ms(call, 1, 20);
      weft_test::sync("perf prefill");
      const double tflops = 2.0 * m * n * k / (ms * 1e9);
      std::printf("  info  m=%5d n=%5d k=%5d %-8s %-9s %9.2f us  %6.1f TFLOP/s\n", m, n, k, kind == 0 ? "bf16" : "i8/g32",
                  path_name(weft::cuda::gemm_choose_path(m, n, sms)), ms * 1e3, tflops);
      h.check(err == cudaSuccess, "prefill gemm launched");
    }
  }
}
