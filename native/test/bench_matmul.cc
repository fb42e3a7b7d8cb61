// Kernel benchmarks at the shapes of a 110M Llama (dim 768, FFN 2048, vocab 32000).
// Single-threaded, whole [0, n) per call. Each figure is the median of `runs` timed runs;
// a run repeats the call until it lasts >= 20 ms. Weights rotate over enough copies to
// exceed the last-level cache (as in a real decode step, where every layer's weights stream
// from DRAM), so m = 1 shows memory bandwidth rather than L3 bandwidth. GB/s counts the
// packed weight bytes per call: n*k*4 for f32, int8 data + float scales for int8.
//   bench_matmul [--scalar] [--runs N] [--warm] [--blocks]   (--warm: no rotation, one cached copy;
//                                                   --blocks: only the GGML block kernels)
// The GGML block rows (Q4_0, Q4_K, Q6_K: matmul_q) count PackedQ bytes, beside group-32 int8 (Q8_0).
// "avx2(vnni)" is what Isa::avx2 runs on a CPU with AVX-VNNI; "avx2(plain)" forces the
// vpmaddubsw int8 path of AVX2-only CPUs (f32 is the same code in both rows).
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/matmul.h"
#include "cpu/matmul_internal.h"
#include "half.h"
#include "quant_blocks.h"

using namespace weft;
using Clock = std::chrono::steady_clock;

static int g_runs = 9;
static size_t g_rotate_bytes = size_t(192) << 20;

// Median seconds per call of fn(i), i = call counter (for rotating copies).
template <class F> static double time_call(F fn) {
  fn(0);  // warm up (page faults, code)
  std::vector<double> per_call;
  int reps = 1;
  long counter = 1;
  for (int r = 0; r < g_runs; ++r) {
    for (;;) {
      const auto t0 = Clock::now();
      for (int i = 0; i < reps; ++i) fn(counter++);
      const double s = std::chrono::duration<double>(Clock::now() - t0).count();
      if (s >= 0.02 || reps >= (1 << 20)) {
        per_call.push_back(s / reps);
        break;
      }
      reps = std::max(reps * 2, int(reps * 0.025 / std::max(s, 1e-6)));
    }
  }
  std::sort(per_call.begin(), per_call.end());
  return per_call[per_call.size() / 2];
}

static AlignedBuffer clone(const AlignedBuffer& b) {
  AlignedBuffer c(b.bytes);
  if (b.bytes) std::memcpy(c.ptr, b.ptr, b.bytes);
  return c;
}

static int copies_for(size_t bytes) {
  return int(std::min<size_t>(512, std::max<size_t>(1, g_rotate_bytes / std::max<size_t>(bytes, 1) + 1)));
}

struct Shape {
  const char* name;
  int n, k;
};

// An ISA as the engine runs it, or the AVX2 int8 path without AVX-VNNI (forced).
struct Variant {
  const char* name;
  Isa isa;
  bool avx2_plain;
};

static void bench_shape(const Variant& v, const Shape& s, const std::vector<int>& ms) {
  const Isa isa = v.isa;
  auto i8 = [&](const QuantAct& qa, const PackedI8& w, float* y) {
    if (v.avx2_plain) detail::matmul_i8_avx2_plain(qa, w, y, s.n, 0, s.n);
    else matmul_i8(isa, qa, w, y, s.n, 0, s.n);
  };
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> w(size_t(s.n) * s.k), x(size_t(64) * s.k), y(size_t(64) * s.n);
  for (auto& v : w) v = nd(rng) * 0.05f;
  for (auto& v : x) v = nd(rng);

  // f32 and int8 (per-row and group-32) copies of the same weight.
  PackedF32 f0;
  pack_f32(w.data(), s.n, s.k, &f0);
  PackedI8 r0, g0;
  quantize_pack_i8(w.data(), s.n, s.k, 0, &r0);
  quantize_pack_i8(w.data(), s.n, s.k, kQ8Group, &g0);
  const size_t f_bytes = size_t(s.n) * s.k * 4;
  const size_t r_bytes = r0.data.bytes + r0.scales.bytes, g_bytes = g0.data.bytes + g0.scales.bytes;
  std::vector<PackedF32> fc(copies_for(f_bytes));
  std::vector<PackedI8> rc(copies_for(r_bytes)), gc(copies_for(g_bytes));
  for (auto& c : fc) c.n = s.n, c.k = s.k, c.data = clone(f0.data);
  for (auto* v : {&rc, &gc})
    for (auto& c : *v) {
      const PackedI8& src = v == &rc ? r0 : g0;
      c.n = src.n, c.k = src.k, c.group = src.group;
      c.data = clone(src.data), c.scales = clone(src.scales), c.row_sums = clone(src.row_sums);
    }

  QuantAct qa;
  for (int m : ms) {
    const double macs = double(m) * s.n * s.k;
    const double tf = time_call([&](long i) { matmul_f32(isa, x.data(), m, fc[i % fc.size()], y.data(), s.n, 0, s.n); });
    quantize_act(isa, x.data(), m, s.k, 0, &qa);
    const double tr = time_call([&](long i) { i8(qa, rc[i % rc.size()], y.data()); });
    quantize_act(isa, x.data(), m, s.k, kQ8Group, &qa);
    const double tg = time_call([&](long i) { i8(qa, gc[i % gc.size()], y.data()); });
    std::printf("%-11s %-8s %5d %5d %3d | %7.1f %6.1f | %7.1f %6.1f | %7.1f %6.1f\n", v.name, s.name, s.n, s.k, m, macs / tf * 1e-9,
                f_bytes / tf * 1e-9, macs / tr * 1e-9, r_bytes / tr * 1e-9, macs / tg * 1e-9, g_bytes / tg * 1e-9);
    std::fflush(stdout);
  }
}

// Random blocks of `type` with small fp16 scales, packed.
static PackedQ random_packed_q(TensorDType type, int n, int k, std::mt19937& rng) {
  const BlockFormat& f = *block_format(type);
  std::vector<uint8_t> b(size_t(n) * k / f.values * f.bytes);
  for (auto& v : b) v = uint8_t(rng());
  const int d_at = type == TensorDType::q6_k ? 208 : 0;
  for (size_t o = 0; o < b.size(); o += f.bytes) {
    const uint16_t h = f32_to_f16(1e-3f);
    std::memcpy(&b[o + d_at], &h, 2);
    if (f.has_sub && type != TensorDType::q6_k) std::memcpy(&b[o + 2], &h, 2);
  }
  std::vector<const uint8_t*> rows(n);
  for (int r = 0; r < n; ++r) rows[r] = b.data() + size_t(r) * k / f.values * f.bytes;
  PackedQ q;
  pack_q(int(type), rows.data(), n, k, &q);
  return q;
}

static void bench_blocks(Isa isa, const Shape& s, const std::vector<int>& ms) {
  std::mt19937 rng(42);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> x(size_t(64) * s.k), y(size_t(64) * s.n);
  for (auto& v : x) v = nd(rng);
  for (auto [name, type] : {std::pair{"q4_0", TensorDType::q4_0}, {"q4_k", TensorDType::q4_k}, {"q6_k", TensorDType::q6_k}}) {
    const PackedQ q0 = random_packed_q(type, s.n, s.k, rng);
    std::vector<PackedQ> qc(copies_for(q0.bytes()));
    for (auto& c : qc) {
      c.n = q0.n, c.k = q0.k, c.bits = q0.bits, c.sub = q0.sub, c.super = q0.super, c.has_sub = q0.has_sub, c.act = q0.act, c.mn_is_sc = q0.mn_is_sc;
      c.mem = clone(q0.mem), c.panel_bytes = q0.panel_bytes, c.dm_offset = q0.dm_offset, c.sm_offset = q0.sm_offset, c.data_offset = q0.data_offset;
    }
    QuantBlocks qb;
    for (int m : ms) {
      qb.reserve(m, s.k);
      quantize_blocks(isa, x.data(), s.k, 0, m, q0.act, &qb);
      const double t = time_call([&](long i) { matmul_q(isa, qb, qc[i % qc.size()], y.data(), s.n, 0, s.n); });
      const double tq = time_call([&](long) { quantize_blocks(isa, x.data(), s.k, 0, m, q0.act, &qb); });
      std::printf("%-11s %-8s %5d %5d %3d | %-5s %7.1f GMAC/s %6.1f GB/s (%.2f bits/weight) | quantize_blocks %.2f us\n", isa_name(isa), s.name, s.n,
                  s.k, m, name, double(m) * s.n * s.k / t * 1e-9, q0.bytes() / t * 1e-9, 8.0 * q0.bytes() / (double(s.n) * s.k), tq * 1e6);
      std::fflush(stdout);
    }
  }
}

static void bench_quantize(Isa isa) {
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  QuantAct qa;
  for (int k : {768, 2048})
    for (int m : {1, 16, 64}) {
      std::vector<float> x(size_t(m) * k);
      for (auto& v : x) v = nd(rng);
      const double t = time_call([&](long) { quantize_act(isa, x.data(), m, k, 0, &qa); });
      std::printf("%-11s quantize_act k=%4d m=%2d: %8.2f us  %6.1f GB/s of float input\n", isa_name(isa), k, m, t * 1e6, x.size() * 4 / t * 1e-9);
    }
}

// Compute peak of the int8 instruction each ISA's kernel is built on (independent chains).
__attribute__((target("avx512f,avx512bw,avx512vnni"), noinline)) static double peak_vnni512(long iters) {
  __m512i acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_epi32(i);
  __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(5);
  const auto t0 = Clock::now();
  for (long it = 0; it < iters; ++it) {
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
    __asm__ volatile("" : "+v"(a), "+v"(b));
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  alignas(64) int32_t out[16];
  for (int i = 1; i < 16; ++i) acc[0] = _mm512_add_epi32(acc[0], acc[i]);
  _mm512_store_si512(out, acc[0]);
  volatile int sink = out[0];
  (void)sink;
  return iters * 16.0 * 64 / s * 1e-9;
}
__attribute__((target("avx512f"), noinline)) static double peak_fma512(long iters) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(float(i));
  __m512 a = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(0.5f);
  const auto t0 = Clock::now();
  for (long it = 0; it < iters; ++it) {
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(a, b, acc[i]);
    __asm__ volatile("" : "+v"(a), "+v"(b));
  }
  const double s = std::chrono::duration<double>(Clock::now() - t0).count();
  alignas(64) float out[16];
  for (int i = 1; i < 16; ++i) acc[0] = _mm512_add_ps(acc[0], acc[i]);
  _mm512_store_ps(out, acc[0]);
  volatile float sink = out[0];
  (void)sink;
  return iters * 16.0 * 16 / s * 1e-9;
}

int main(int argc, char** argv) {
  bool scalar = false, blocks_only = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--scalar")) scalar = true;
    if (!std::strcmp(argv[i], "--blocks")) blocks_only = true;
    if (!std::strcmp(argv[i], "--warm")) g_rotate_bytes = 0;
    if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) g_runs = std::max(7, std::atoi(argv[++i]));
  }
  const Shape shapes[] = {{"qkv/o", 768, 768}, {"gate/up", 2048, 768}, {"down", 768, 2048}, {"lm_head", 32000, 768}};
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::scalar})
    if (isa_supported(isa) && (isa != Isa::scalar || scalar))
      for (const Shape& s : shapes) bench_blocks(isa, s, {1, 16, 64});
  if (blocks_only) return 0;
  if (isa_supported(Isa::avx512)) {
    std::vector<double> p, f;
    for (int r = 0; r < 7; ++r) p.push_back(peak_vnni512(20000000)), f.push_back(peak_fma512(20000000));
    std::sort(p.begin(), p.end());
    std::sort(f.begin(), f.end());
    std::printf("peak (1 core, median of 7): vpdpbusd zmm %.1f GMAC/s, vfmadd zmm %.1f GMAC/s\n", p[3], f[3]);
  }
  std::printf("single thread, median of %d runs; GMAC/s and GB/s of weight bytes read per call%s\n", g_runs,
              g_rotate_bytes ? " (weights rotated past the LLC)" : " (weights cached)");
  std::printf("%-11s %-8s %5s %5s %3s | %14s | %14s | %14s\n", "isa", "matrix", "n", "k", "m", "f32 GMAC  GB/s", "i8row GMAC GB/s",
              "i8g32 GMAC GB/s");
  std::vector<Variant> variants;
  if (isa_supported(Isa::avx512)) variants.push_back({"avx512", Isa::avx512, false});
  if (isa_supported(Isa::avx2)) {
    variants.push_back({detail::avx_vnni_supported() ? "avx2(vnni)" : "avx2", Isa::avx2, false});
    if (detail::avx_vnni_supported()) variants.push_back({"avx2(plain)", Isa::avx2, true});
  }
  if (scalar) variants.push_back({"scalar", Isa::scalar, false});
  for (const Variant& v : variants)
    for (const Shape& s : shapes) bench_shape(v, s, {1, 16, 64});
  for (Isa isa : {Isa::avx512, Isa::avx2, Isa::scalar})
    if (isa_supported(isa) && (isa != Isa::scalar || scalar)) bench_quantize(isa);
  return 0;
}
