// Correctness of the CPU matrix kernels (cpu/matmul.h) for every ISA this CPU supports,
// against plain double-precision references. Ends with "N passed, N failed"; exit 1 on failure.
//
// Tolerances follow from the arithmetic (u = 2^-24, float unit roundoff):
//  f32:   any summation order of k products obeys |y - ref| <= k*u*sum|x*w| (+ tiny).
//  int8:  the reference uses the same quantized integers (computed here by the documented
//         rules), so the integer dots are exact and only the final float scaling rounds:
//         per-row  y = float(dot) * (ws * xs): 3 roundings -> 4u|y|;
//         group-32 G sequential fmas of exact float(dot_g)*ws_g, then * xs -> (G+2)u sum|..|.
//  Error against the unquantized float product is reported (and only sanity-checked).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "check.h"
#include "cpu/matmul.h"
#include "cpu/matmul_internal.h"

using namespace weft;

using weft_test::check;
static const double kU = std::ldexp(1.0, -24);

// The documented weight rule (also implemented by the TypeScript quantize tool).
static void ref_quantize(const float* w, int len, int8_t* q, float* s) {
  float amax = 0;
  for (int i = 0; i < len; ++i) amax = std::max(amax, std::fabs(w[i]));
  *s = amax > 0 ? amax / 127.0f : 1.0f;
  for (int i = 0; i < len; ++i) q[i] = int8_t(std::clamp<long>(std::lround(w[i] / *s), -127, 127));
}
// The documented activation rule: scale = absmax/127, round to nearest (even), clamp; over the
// whole row for per-row weights, over each 32 values (s[g]) for group-32 weights.
static void ref_quantize_act(const float* x, int k, int group, int8_t* q, float* s) {
  const int span = group ? group : k;
  for (int g = 0; g * span < k; ++g) {
    const int i0 = g * span, i1 = std::min(k, i0 + span);
    float amax = 0;
    for (int i = i0; i < i1; ++i) amax = std::max(amax, std::fabs(x[i]));
    s[g] = amax / 127.0f;
    const float inv = s[g] > 0 ? 1.0f / s[g] : 0.0f;
    for (int i = i0; i < i1; ++i) q[i] = int8_t(std::clamp(int(std::nearbyint(x[i] * inv)), -127, 127));
  }
}

// float -> IEEE half bits, for values exactly representable as normal halves (test data only).
static uint16_t to_half(float f) {
  uint32_t b;
  std::memcpy(&b, &f, 4);
  if ((b & 0x7fffffff) == 0) return uint16_t(b >> 16);
  const int e = int((b >> 23) & 255) - 127 + 15;
  return uint16_t(((b >> 16) & 0x8000) | (e << 10) | ((b >> 13) & 1023));
}

// Integer weights with scales: q [n][k], scale [n][groups] (groups == 1: per row).
struct IntW {
  int n, k, group, groups;
  std::vector<int8_t> q;
  std::vector<float> s;
};

struct Case {
  int n, k;
  std::vector<float> w, x;  // w [n][k], x [mmax][k]
};

using I8Kernel = void (*)(const QuantAct&, const PackedI8&, float*, int, int, int);
struct I8Impl {
  const char* name;
  Isa isa;  // for quantize_act
  I8Kernel kernel;
};

// Runs `fn(y, n0, n1)` on the full range and on partial ranges; checks the partial results are
// bit-identical to the full one inside the range and leave other columns untouched.
template <class F> static std::vector<float> run_ranges(int m, int n, int ldy, F fn, const std::string& tag) {
  std::vector<float> full(size_t(m) * ldy, NAN);
  fn(full.data(), 0, n);
  bool ok = true;
  for (int c = 0; c < n; ++c) ok &= !std::isnan(full[c]) && !std::isnan(full[size_t(m - 1) * ldy + c]);
  check(ok, tag + " full range wrote every column");
  // Split into 16-multiples (like the engine's threads), incl. an odd split and the tail.
  std::vector<std::pair<int, int>> splits = {{0, std::min(n, 16)}};
  if (n > 32) splits.push_back({16, std::min(n, 48)});
  if (n > 16) splits.push_back({(n / 2) / 16 * 16, n});
  for (auto [n0, n1] : splits) {
    std::vector<float> part(size_t(m) * ldy, -12345.0f);
    fn(part.data(), n0, n1);
    bool same = true;
    for (int t = 0; t < m; ++t)
      for (int c = 0; c < ldy; ++c) {
        const float v = part[size_t(t) * ldy + c];
        same &= (c >= n0 && c < n1) ? std::memcmp(&v, &full[size_t(t) * ldy + c], 4) == 0 : v == -12345.0f;
      }
    check(same, tag + " range [" + std::to_string(n0) + "," + std::to_string(n1) + ")");
  }
  return full;
}

static void test_f32(const Case& c, int m, const std::vector<Isa>& isas) {
  const int n = c.n, k = c.k, ldy = n + 3;
  PackedF32 pw;
  pack_f32(c.w.data(), n, k, &pw);
  for (Isa isa : isas) {
    const std::string tag = std::string("f32 ") + isa_name(isa) + " n=" + std::to_string(n) + " k=" + std::to_string(k) + " m=" + std::to_string(m);
    auto y = run_ranges(
        m, n, ldy, [&](float* out, int n0, int n1) { matmul_f32(isa, c.x.data(), m, pw, out, ldy, n0, n1); }, tag);
    double worst = 0;
    for (int t = 0; t < m; ++t)
      for (int r = 0; r < n; ++r) {
        double ref = 0, mag = 0;
        for (int i = 0; i < k; ++i) {
          ref += double(c.x[size_t(t) * k + i]) * c.w[size_t(r) * k + i];
          mag += std::fabs(double(c.x[size_t(t) * k + i]) * c.w[size_t(r) * k + i]);
        }
        worst = std::max(worst, std::fabs(y[size_t(t) * ldy + r] - ref) / (1.01 * k * kU * mag + 1e-30));
      }
    check(worst <= 1.0, tag + " vs double reference (error/bound " + std::to_string(worst) + ")");
  }
}

// Checks one packed int8 matrix (built from `iw`) for every implementation at m tokens.
static void test_i8(const char* kind, const IntW& iw, const PackedI8& pw, const Case& c, int m, const std::vector<I8Impl>& impls, bool report_float) {
  const int n = iw.n, k = iw.k, ldy = n + 1, glen = iw.group ? iw.group : k;
  // Reference from the documented rules, in exact integers then double.
  // activation scales: one a token (per-row weights) or one a token and group (group-32 weights)
  const int xg = iw.group ? iw.groups : 1;
  std::vector<int8_t> xq(size_t(m) * k);
  std::vector<float> xs(size_t(m) * xg);
  for (int t = 0; t < m; ++t) ref_quantize_act(&c.x[size_t(t) * k], k, iw.group, &xq[size_t(t) * k], &xs[size_t(t) * xg]);
  std::vector<double> ref(size_t(m) * n), bound(size_t(m) * n);
  for (int t = 0; t < m; ++t)
    for (int r = 0; r < n; ++r) {
      double y = 0, mag = 0;
      for (int g = 0; g < iw.groups; ++g) {
        int64_t dot = 0;
        for (int i = g * glen; i < std::min(k, (g + 1) * glen); ++i) dot += int(xq[size_t(t) * k + i]) * iw.q[size_t(r) * k + i];
        const double s = double(iw.s[size_t(r) * iw.groups + g]) * (iw.group ? xs[size_t(t) * xg + g] : 1.0);
        y += s * dot;
        mag += std::fabs(s * dot);
      }
      const double sx = iw.group ? 1.0 : xs[t];
      ref[size_t(t) * n + r] = y * sx;
      // group-32: each term's two roundings (ws * xs, then the fma) and the sum's, over |terms|
      bound[size_t(t) * n + r] = (iw.group ? (iw.groups + 2) * kU * mag : 4 * kU * std::fabs(y * sx)) + 1e-30;
    }
  std::vector<float> first;
  for (const I8Impl& im : impls) {
    const std::string tag = std::string(kind) + " " + im.name + " n=" + std::to_string(n) + " k=" + std::to_string(k) + " m=" + std::to_string(m);
    QuantAct qa;
    quantize_act(im.isa, c.x.data(), m, k, iw.group, &qa);
    check(std::memcmp(qa.scales.ptr, xs.data(), xs.size() * 4) == 0, tag + " activation scales");
    QuantAct scalar;  // every ISA writes the scalar rule's bytes, in the k-quad-major layout
    quantize_act(Isa::scalar, c.x.data(), m, k, iw.group, &scalar);
    check(std::memcmp(qa.data.ptr, scalar.data.ptr, size_t(m) * detail::i8_kpad(k)) == 0, tag + " activation bytes equal the scalar rule's");
    if (m > 1) {  // rows quantized in two calls (as the engine's threads split them) give the same bytes
      QuantAct parts;
      parts.reserve(m, k, iw.group);
      quantize_act_rows(im.isa, c.x.data(), k, m / 2, m, &parts);
      quantize_act_rows(im.isa, c.x.data(), k, 0, m / 2, &parts);
      check(std::memcmp(parts.data.ptr, qa.data.ptr, qa.data.bytes) == 0 && std::memcmp(parts.scales.ptr, qa.scales.ptr, qa.scales.bytes) == 0,
            tag + " rows quantized in two parts");
    }
    auto y = run_ranges(
        m, n, ldy, [&](float* out, int n0, int n1) { im.kernel(qa, pw, out, ldy, n0, n1); }, tag);
    double worst = 0, diff_isa = 0;
    for (int t = 0; t < m; ++t)
      for (int r = 0; r < n; ++r) {
        worst = std::max(worst, std::fabs(y[size_t(t) * ldy + r] - ref[size_t(t) * n + r]) / bound[size_t(t) * n + r]);
        if (!first.empty())
          diff_isa = std::max(diff_isa, double(std::fabs(y[size_t(t) * ldy + r] - first[size_t(t) * ldy + r])) / bound[size_t(t) * n + r]);
      }
    check(worst <= 1.0, tag + " vs exact-integer reference (error/bound " + std::to_string(worst) + ")");
    check(diff_isa <= 2.0, tag + " agrees with " + impls[0].name + " (diff/bound " + std::to_string(diff_isa) + ")");
    if (first.empty()) first = y;
  }
  if (report_float && !c.w.empty()) {  // quantization error vs the unquantized float product
    double se = 0, sr = 0;
    for (int t = 0; t < m; ++t)
      for (int r = 0; r < n; ++r) {
        double f = 0;
        for (int i = 0; i < k; ++i) f += double(c.x[size_t(t) * k + i]) * c.w[size_t(r) * k + i];
        se += (first[size_t(t) * ldy + r] - f) * (first[size_t(t) * ldy + r] - f);
        sr += f * f;
      }
    const double rel = std::sqrt(se / std::max(sr, 1e-300));
    std::printf("  %-10s n=%5d k=%5d m=%2d: rms error vs float product %.4f of rms output\n", kind, n, k, m, rel);
    check(rel < 0.05, std::string(kind) + " quantization error sane");
  }
}

// Quantize-on-load == pack_i8 of the documented rule; unpack round trip.
static void test_pack_equivalence(const Case& c, int group, IntW* iw, PackedI8* pq) {
  const int n = c.n, k = c.k, glen = group ? group : k;
  iw->n = n, iw->k = k, iw->group = group, iw->groups = group ? (k + group - 1) / group : 1;
  iw->q.assign(size_t(n) * k, 0);
  iw->s.assign(size_t(n) * iw->groups, 0);
  for (int r = 0; r < n; ++r)
    for (int g = 0; g < iw->groups; ++g) {
      const size_t o = size_t(r) * k + size_t(g) * glen;
      ref_quantize(&c.w[o], std::min(glen, k - g * glen), &iw->q[o], &iw->s[size_t(r) * iw->groups + g]);
    }
  quantize_pack_i8(c.w.data(), n, k, group, pq);
  // Round trip: unpacked values are exactly q * s; recover q and repack through pack_i8.
  std::vector<float> v(k);
  std::vector<int8_t> q2(size_t(n) * k);
  bool exact = true;
  for (int r = 0; r < n; ++r) {
    unpack_i8_row(*pq, r, v.data());
    for (int i = 0; i < k; ++i) {
      const float s = iw->s[size_t(r) * iw->groups + i / glen];
      exact &= v[i] == float(iw->q[size_t(r) * k + i]) * s;
      q2[size_t(r) * k + i] = int8_t(std::lround(v[i] / s));
    }
  }
  const std::string tag = "pack group=" + std::to_string(group) + " n=" + std::to_string(n) + " k=" + std::to_string(k);
  check(exact, tag + " unpack_i8_row == q * scale (documented rule)");
  PackedI8 pp;
  pack_i8(q2.data(), iw->s.data(), n, k, group, &pp);
  auto same = [](const AlignedBuffer& a, const AlignedBuffer& b) { return a.bytes == b.bytes && std::memcmp(a.ptr, b.ptr, a.bytes) == 0; };
  check(same(pq->data, pp.data) && same(pq->scales, pp.scales) && same(pq->row_sums, pp.row_sums),
        tag + " quantize_pack_i8 == pack_i8(unpacked values, scales), bit for bit");
}

// Hand-built GGUF Q8_0 blocks (fp16 scales incl. subnormal and zero; q incl. -128).
static void make_q8_0(int n, int k, std::mt19937& rng, IntW* iw, std::vector<uint8_t>* blocks) {
  const int nb = k / 32;
  iw->n = n, iw->k = k, iw->group = 32, iw->groups = nb;
  iw->q.resize(size_t(n) * k);
  iw->s.resize(size_t(n) * nb);
  blocks->resize(size_t(n) * nb * 34);
  std::uniform_int_distribution<int> qd(-128, 127), md(0, 1023), ed(-14, -4);
  for (size_t b = 0; b < size_t(n) * nb; ++b) {
    float d = std::ldexp(1.0f + md(rng) / 1024.0f, ed(rng)) * (b % 3 ? 1.0f : -1.0f);
    uint16_t h = to_half(d);
    if (b % 97 == 5) d = 0.0f, h = 0;  // zero scale
    if (b % 89 == 7) h = uint16_t(md(rng) | 1), d = std::ldexp(float(h), -24);  // subnormal
    iw->s[b] = d;
    uint8_t* blk = &(*blocks)[b * 34];
    blk[0] = uint8_t(h & 255), blk[1] = uint8_t(h >> 8);
    for (int i = 0; i < 32; ++i) {
      const int8_t q = int8_t(i == 0 ? -128 : qd(rng));
      iw->q[b * 32 + i] = q;
      blk[2 + i] = uint8_t(q);
    }
  }
}

// A model's packed weights come from a WeightArena: pieces aligned, zeroed, apart, not freed one by
// one (ASan would report a free of arena memory), scopes nesting, and a matrix packed in an arena
// computing the same products as one packed on the heap.
static void test_weight_arena(const std::vector<Isa>& isas) {
  AlignedBuffer heap(100);
  check(heap.owned && heap.ptr && reinterpret_cast<uintptr_t>(heap.ptr) % 64 == 0, "a buffer outside an arena scope is owned");
  WeightArena arena, inner;
  std::vector<AlignedBuffer> pieces;
  const size_t sizes[] = {1, 64, 65, 1000, size_t(3) << 20, size_t(40) << 20, 7};  // 40 MiB: more than a mapping
  {
    WeightArenaScope scope(&arena);
    for (size_t n : sizes) pieces.emplace_back(n);
    {
      WeightArenaScope nested(&inner);
      AlignedBuffer b(128);
      check(!b.owned, "a nested scope's buffers come from its arena");
    }
    AlignedBuffer after(32);
    check(!after.owned, "the outer scope holds again after a nested one");
    pieces.push_back(std::move(after));
  }
  check(AlignedBuffer(16).owned, "no arena once the scopes end");
  bool aligned = true, zero = true;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const auto* p = static_cast<const uint8_t*>(pieces[i].ptr);
    aligned &= !pieces[i].owned && reinterpret_cast<uintptr_t>(p) % 64 == 0;
    for (size_t j = 0; j < pieces[i].bytes; j += 4093) zero &= p[j] == 0;
    zero &= p[pieces[i].bytes - 1] == 0;
  }
  check(aligned, "arena pieces are 64-byte aligned and not owned");
  check(zero, "arena pieces are zeroed");
  for (size_t i = 0; i < pieces.size(); ++i) std::memset(pieces[i].ptr, int(i + 1), pieces[i].bytes);
  bool apart = true;
  for (size_t i = 0; i < pieces.size(); ++i) {
    const auto* p = static_cast<const uint8_t*>(pieces[i].ptr);
    apart &= p[0] == uint8_t(i + 1) && p[pieces[i].bytes - 1] == uint8_t(i + 1);
  }
  check(apart, "arena pieces do not overlap");
  // The same matrix packed on the heap and in an arena: the same products on every ISA.
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int n = 100, k = 96, m = 3;
  std::vector<float> w(size_t(n) * k), x(size_t(m) * k);
  for (auto& v : w) v = nd(rng);
  for (auto& v : x) v = nd(rng);
  PackedI8 on_heap, in_arena;
  quantize_pack_i8(w.data(), n, k, kQ8Group, &on_heap);
  {
    WeightArenaScope scope(&arena);
    quantize_pack_i8(w.data(), n, k, kQ8Group, &in_arena);
  }
  check(!in_arena.data.owned && on_heap.data.owned, "packing inside a scope takes arena memory");
  QuantAct act;
  for (Isa isa : isas) {
    quantize_act(isa, x.data(), m, k, kQ8Group, &act);
    std::vector<float> y0(size_t(m) * n), y1(size_t(m) * n);
    matmul_i8(isa, act, on_heap, y0.data(), n, 0, n);
    matmul_i8(isa, act, in_arena, y1.data(), n, 0, n);
    check(y0 == y1, std::string("arena-packed weights, same products: ") + isa_name(isa));
  }
}

int main() {
  std::vector<Isa> isas;
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (isa_supported(isa)) isas.push_back(isa);
  std::vector<I8Impl> impls = {{"scalar", Isa::scalar, detail::matmul_i8_scalar}};
  if (isa_supported(Isa::avx2)) {
    impls.push_back({"avx2", Isa::avx2, detail::matmul_i8_avx2_plain});
    if (detail::avx_vnni_supported()) impls.push_back({"avx2-vnni", Isa::avx2, detail::matmul_i8_avx2_vnni});
  }
  if (isa_supported(Isa::avx512)) impls.push_back({"avx512", Isa::avx512, detail::matmul_i8_avx512});
  std::printf("ISAs tested:");
  for (auto& im : impls) std::printf(" %s", im.name);
  std::printf(" (detected: %s)\n", isa_name(isa_detect()));

  std::mt19937 rng(1234);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int ms[] = {1, 2, 3, 7, 16, 64, 65};
  const std::pair<int, int> shapes[] = {{16, 16},    {64, 64},    {172, 172}, {100, 33},  {33, 100}, {288, 768}, {768, 768},
                                        {2048, 768}, {768, 2048}, {17, 2048}, {2048, 64}, {47, 96},  {40, 32},   {25, 64}};  // n % 16 = 15, 8, 9
  for (auto [n, k] : shapes) {
    Case c{n, k, std::vector<float>(size_t(n) * k), std::vector<float>(size_t(65) * k)};
    for (auto& v : c.w) v = nd(rng) * 0.05f;
    for (auto& v : c.x) v = nd(rng);
    for (int i = 0; i < k; ++i) c.w[i] = 0.0f;  // an all-zero weight row
    for (int i = 0; i < k; ++i) c.x[size_t(1) * k + i] = 0.0f;  // an all-zero token
    c.w[size_t(n - 1) * k + k / 2] = 3.0f;  // an outlier
    for (int i = 0; i < k; ++i) c.x[size_t(2) * k + i] = float(i % 9) - 4.0f;  // ties at .5
    const bool big = size_t(n) * k > 600000;
    for (int m : ms) {
      if (big && m != 1 && m != 7 && m != 64 && m != 65) continue;
      test_f32(c, m, isas);
    }
    for (int group : {0, 32}) {
      IntW iw;
      PackedI8 pq;
      test_pack_equivalence(c, group, &iw, &pq);
      for (int m : ms) {
        if (big && m != 1 && m != 7 && m != 64 && m != 65) continue;
        test_i8(group ? "i8-g32" : "i8-row", iw, pq, c, m, impls, m == 7 || m == 64);
      }
    }
    if (k % 32 == 0) {  // GGUF Q8_0
      IntW iw;
      std::vector<uint8_t> blocks;
      make_q8_0(n, k, rng, &iw, &blocks);
      PackedI8 pq;
      pack_q8_0(blocks.data(), n, k, &pq);
      std::vector<float> v(k);
      bool exact = true;
      for (int r = 0; r < n; ++r) {
        unpack_i8_row(pq, r, v.data());
        for (int i = 0; i < k; ++i) exact &= v[i] == iw.s[size_t(r) * iw.groups + i / 32] * float(iw.q[size_t(r) * k + i]);
      }
      check(exact, "q8_0 n=" + std::to_string(n) + " k=" + std::to_string(k) + " unpack == d * q");
      Case cq{n, k, {}, c.x};
      for (int m : ms) {
        if (big && m != 1 && m != 64 && m != 65) continue;
        test_i8("q8_0", iw, pq, cq, m, impls, false);
      }
    }
  }
  test_weight_arena(isas);
  // Rounding of the weight rule: half away from zero (amax 127 -> scale exactly 1).
  {
    const float w[6] = {127.0f, 2.5f, -2.5f, 0.49999997f, -126.5f, 0.5f};
    PackedI8 p;
    quantize_pack_i8(w, 1, 6, 0, &p);
    float v[6];
    unpack_i8_row(p, 0, v);
    check(v[0] == 127 && v[1] == 3 && v[2] == -3 && v[3] == 0 && v[4] == -127 && v[5] == 1, "weight rounding half away from zero");
  }
  return weft_test::finish();
}
