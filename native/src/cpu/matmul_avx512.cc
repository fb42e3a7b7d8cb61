// AVX-512 (F+BW+VL+VNNI) kernels. Register-blocked outer products with no horizontal sums:
// one zmm of packed weights covers 16 output rows (x 4 k for int8), each token's activation is
// broadcast and multiplied into a [panels x tokens] tile of accumulators.
//
// GCC 12's AVX-512 headers build "undefined" vectors by self-initialization, which -Wall
// reports as -Wuninitialized once inlined into a target("avx512f") function.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "cpu/matmul_internal.h"

#define WEFT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))

namespace weft {
namespace detail {
namespace {

// Lanes of a panel that are real rows: all 16 except in the last panel when n % 16 != 0.
WEFT_AVX512 inline __mmask16 row_mask(int valid) {
  return valid >= kPackRows ? __mmask16(0xFFFF) : __mmask16((1u << (valid > 0 ? valid : 0)) - 1);
}

WEFT_AVX512 inline __m512i bcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

// ---- int8 ----

// acc += dot(x u8 quads, w s8 quads). Inline asm because GCC 12 copies the tied accumulator
// of the vpdpbusd intrinsic to a fresh register every use (2 moves per multiply in a tile).
WEFT_AVX512 inline void dpbusd(__m512i& acc, __m512i x, __m512i w) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(x), "v"(w));
}

// Shared arguments of one [NP panels x T tokens] int8 tile.
struct I8Tile {
  const uint8_t* x;  // activation quads of the tile's first token (QuantAct layout)
  size_t xstride;  // bytes between consecutive k-quads (4 * m)
  const float* xs;  // activation scales of the tile's tokens, `groups` a token
  const int8_t* w;  // first panel's packed data
  size_t wstride;  // bytes between panels
  int kq;  // k-quads (padded k / 4)
  const float* ws;  // first panel's scales ([p][g][16])
  const int32_t* rs;  // first panel's row sums, same layout
  int groups;  // scale groups per row (1 for per-row scales)
  float* y;  // output of the first token at the first panel's first row
  int ldy;
  int valid;  // real rows from the first panel on (for masking the last panel)
  Prefetch pf;  // this tile's share of the next panel group
};

// The tiles' inner loop: acc[i][t] += the dots of k-quads of NP panels with T tokens, advancing
// xj and wj past them. Q > 0: exactly Q quads, a constant the loop is fully unrolled over (a
// scale group: unrolling it is worth ~40% at m = 64); Q == 0: num_quads, not unrolled.
// Always inlined, so each tile compiles as if the loop were written in place.
template <int NP, int T, int Q> WEFT_AVX512 __attribute__((always_inline)) inline void i8_quads(__m512i (&acc)[NP][T], const uint8_t*& xj,
                                                                                                const int8_t*& wj, int num_quads, size_t xstride,
                                                                                                size_t wstride, Prefetch& pf) {
  const int n = Q > 0 ? Q : num_quads;
#pragma GCC unroll 8
  for (int j = 0; j < n; ++j, xj += xstride, wj += 64) {
    pf.step();
    __m512i wv[NP];
#pragma GCC unroll 16
    for (int i = 0; i < NP; ++i) wv[i] = _mm512_load_si512(wj + i * wstride);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const __m512i xb = bcast4(xj + 4 * t);
#pragma GCC unroll 16
      for (int i = 0; i < NP; ++i) dpbusd(acc[i][t], xb, wv[i]);
    }
  }
}

// Per-row scales: one int32 accumulator per (panel, token) over all of k, scaled at the end.
template <int NP, int T> WEFT_AVX512 void i8_tile_row(const I8Tile& a) {
  __m512i acc[NP][T];
#pragma GCC unroll 16
  for (int i = 0; i < NP; ++i)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[i][t] = _mm512_setzero_si512();
  const uint8_t* xj = a.x;
  const int8_t* wj = a.w;
  Prefetch pf = a.pf;
  i8_quads<NP, T, 0>(acc, xj, wj, a.kq, a.xstride, a.wstride, pf);
#pragma GCC unroll 16
  for (int i = 0; i < NP; ++i) {
    const __m512i rs = _mm512_load_si512(a.rs + i * kPackRows);  // -128 * row sum
    const __m512 ws = _mm512_load_ps(a.ws + i * kPackRows);
    const __mmask16 mask = row_mask(a.valid - i * kPackRows);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const __m512 s = _mm512_mul_ps(ws, _mm512_set1_ps(a.xs[t]));
      const __m512i dot = _mm512_add_epi32(acc[i][t], rs);
      _mm512_mask_storeu_ps(a.y + size_t(t) * a.ldy + i * kPackRows, mask, _mm512_mul_ps(_mm512_cvtepi32_ps(dot), s));
    }
  }
}

// Group-32 scales: int32 accumulators per group (8 k-quads), folded into float ones.
template <int NP, int T> WEFT_AVX512 void i8_tile_group(const I8Tile& a) {
  __m512 facc[NP][T];
#pragma GCC unroll 16
  for (int i = 0; i < NP; ++i)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) facc[i][t] = _mm512_setzero_ps();
  const size_t gstride = size_t(a.groups) * kPackRows;  // scales/sums between panels
  const uint8_t* xj = a.x;
  const int8_t* wj = a.w;
  Prefetch pf = a.pf;
  for (int g = 0; g < a.groups; ++g) {
    __m512i acc[NP][T];
#pragma GCC unroll 16
    for (int i = 0; i < NP; ++i) {
      const __m512i r = _mm512_load_si512(a.rs + i * gstride + g * kPackRows);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) acc[i][t] = r;
    }
    i8_quads<NP, T, kQ8Group / kQuad>(acc, xj, wj, 0, a.xstride, a.wstride, pf);
#pragma GCC unroll 16
    for (int i = 0; i < NP; ++i) {
      const __m512 ws = _mm512_load_ps(a.ws + i * gstride + g * kPackRows);
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) {
        const __m512 s = _mm512_mul_ps(ws, _mm512_set1_ps(a.xs[size_t(t) * a.groups + g]));  // weight x activation scale
        facc[i][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[i][t]), s, facc[i][t]);
      }
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NP; ++i) {
    const __mmask16 mask = row_mask(a.valid - i * kPackRows);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(a.y + size_t(t) * a.ldy + i * kPackRows, mask, facc[i][t]);
  }
}

// One token (decode at batch 1): DRAM-bound, so keep few streams (NP panels) but split each
// panel's k-quads over two accumulators (even/odd) so the vpdpbusd latency chain does not
// limit cache-resident matrices. For group-32 weights the +128 offset is cancelled with an
// extra vpdpbusd of 128 x w instead of reading the row sums (1/8 of the weight traffic);
// compute is idle here anyway. Same integer dots and float ops as the tiles above.
template <bool G, int NP> WEFT_AVX512 void i8_gemv(const I8Tile& a) {
  const int glen = G ? kQ8Group / kQuad : a.kq;  // k-quads per scale group
  const size_t gstride = size_t(a.groups) * kPackRows;
  const __m512i c128 = _mm512_set1_epi8(char(0x80));
  const uint8_t* xj = a.x;
  const int8_t* wj = a.w;
  Prefetch pf = a.pf;
  __m512 facc[NP];
#pragma GCC unroll 16
  for (int i = 0; i < NP; ++i) facc[i] = _mm512_setzero_ps();
  for (int g = 0; g < a.groups; ++g) {
    __m512i acc0[NP], acc1[NP], off0[NP], off1[NP];
#pragma GCC unroll 16
    for (int i = 0; i < NP; ++i) {
      acc0[i] = G ? _mm512_setzero_si512() : _mm512_load_si512(a.rs + i * gstride);
      acc1[i] = off0[i] = off1[i] = _mm512_setzero_si512();
    }
#pragma GCC unroll 8
    for (int j = 0; j < glen; j += 2, xj += 8, wj += 128) {  // xstride is 4 for one token
      pf.step();
      pf.step();
      const __m512i x0 = bcast4(xj), x1 = bcast4(xj + 4);
#pragma GCC unroll 16
      for (int i = 0; i < NP; ++i) {
        const __m512i w0 = _mm512_load_si512(wj + i * a.wstride), w1 = _mm512_load_si512(wj + i * a.wstride + 64);
        dpbusd(acc0[i], x0, w0);
        dpbusd(acc1[i], x1, w1);
        if (G) {
          dpbusd(off0[i], c128, w0);
          dpbusd(off1[i], c128, w1);
        }
      }
    }
#pragma GCC unroll 16
    for (int i = 0; i < NP; ++i) {
      const __m512 ws = _mm512_load_ps(a.ws + i * gstride + g * kPackRows);
      __m512i idot = _mm512_add_epi32(acc0[i], acc1[i]);
      if (G) idot = _mm512_sub_epi32(idot, _mm512_add_epi32(off0[i], off1[i]));
      const __m512 dot = _mm512_cvtepi32_ps(idot), s = _mm512_mul_ps(ws, _mm512_set1_ps(a.xs[g]));  // weight x activation scale
      facc[i] = G ? _mm512_fmadd_ps(dot, s, facc[i]) : _mm512_mul_ps(dot, s);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NP; ++i) _mm512_mask_storeu_ps(a.y + i * kPackRows, row_mask(a.valid - i * kPackRows), facc[i]);
}

// Tile shapes [panels x tokens]. Per k-quad a tile issues NP weight loads, T broadcasts and
// NP*T vpdpbusd. 2 x 8 (16 accumulators) reaches ~95% of the vpdpbusd peak from cache; the
// group kernel also keeps NP*T float sums, so 2 x 7 (28 of the 32 zmm). Measured on Zen 5:
// 3 x 8 is no faster, and 1 x 14 / 3 x 4 / 4 x 3 are slower. m == 1 uses the GEMV kernel on
// one panel at a time: a single sequential stream gets ~20% more DRAM bandwidth than two.
constexpr int kRowNP = 2, kRowT = 8, kGrpNP = 2, kGrpT = 7, kGemvNP = 1;

// Kernel tables [NP - 1][T - 1], so tails of panels and tokens use smaller tiles.
using I8Fn = void (*)(const I8Tile&);
template <bool G, int NP, size_t... T> constexpr std::array<I8Fn, sizeof...(T)> i8_tiles(std::index_sequence<T...>) {
  // A single-token table (m == 1) uses the GEMV kernel.
  return {{(sizeof...(T) == 1 ? &i8_gemv<G, NP> : G ? &i8_tile_group<NP, int(T) + 1> : &i8_tile_row<NP, int(T) + 1>)...}};
}
template <bool G, int TM, size_t... P> constexpr std::array<std::array<I8Fn, TM>, sizeof...(P)> i8_table(std::index_sequence<P...>) {
  return {{i8_tiles<G, int(P) + 1>(std::make_index_sequence<TM>())...}};
}

template <bool G, int NPM, int TM> void i8_run(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1) {
  static constexpr auto table = i8_table<G, TM>(std::make_index_sequence<NPM>());
  const int m = x.m, kp = i8_kpad(w.k), groups = G ? kp / kQ8Group : 1;
  I8Tile a;
  a.xstride = size_t(kQuad) * m;
  a.wstride = size_t(kp) * kPackRows;
  a.kq = kp / kQuad;
  a.groups = groups;
  a.ldy = ldy;
  // Spread the tokens evenly over the fewest tiles (e.g. 64 = 6 x 6 + 4 x 7, not 9 x 7 + 1).
  const int tiles = (m + TM - 1) / TM;
  const int p1 = panels_of(n1);
  for (int p = n0 / kPackRows; p < p1; p += NPM) {
    const int np = p1 - p < NPM ? p1 - p : NPM;
    a.w = w.data.as<int8_t>() + size_t(p) * a.wstride;
    a.ws = w.scales.as<float>() + size_t(p) * groups * kPackRows;
    a.rs = w.row_sums.as<int32_t>() + size_t(p) * groups * kPackRows;
    a.valid = n1 - p * kPackRows;
    const int next = p1 - (p + np) < NPM ? p1 - (p + np) : NPM;  // panels of the next group
    for (int tile = 0; tile < tiles; ++tile) {
      // Grouped weights: prefetch scales too, and row sums unless the GEMV (TM == 1) skips them.
      a.pf = Prefetch(a.w + size_t(np) * a.wstride, G ? a.ws + size_t(np) * groups * kPackRows : nullptr,
                      G && TM > 1 ? a.rs + size_t(np) * groups * kPackRows : nullptr, next * a.kq, tile, tiles, a.kq);
      const int t0 = int(int64_t(m) * tile / tiles), t1 = int(int64_t(m) * (tile + 1) / tiles);
      a.x = x.data.as<uint8_t>() + size_t(kQuad) * t0;
      a.xs = x.scales.as<float>() + size_t(t0) * groups;
      a.y = y + size_t(t0) * ldy + p * kPackRows;
      table[np - 1][t1 - t0 - 1](a);
    }
  }
}

}  // namespace

void matmul_i8_avx512(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1) {
  if (x.m == 1 && w.group != 0) return i8_run<true, kGemvNP, 1>(x, w, y, ldy, n0, n1);
  if (x.m == 1) return i8_run<false, kGemvNP, 1>(x, w, y, ldy, n0, n1);
  if (w.group != 0) i8_run<true, kGrpNP, kGrpT>(x, w, y, ldy, n0, n1);
  else i8_run<false, kRowNP, kRowT>(x, w, y, ldy, n0, n1);
}

namespace {

// ---- f32 ----

// [NP panels x T tokens] of float accumulators; x rows are read in place (stride k).
// One k step of a panel is one cache line, so the next group's prefetch runs per k step.
template <int NP, int T> WEFT_AVX512 void f32_tile(const float* x, int k, const float* w, size_t wstride, float* y, int ldy, int valid, Prefetch pf) {
  __m512 acc[NP][T];
#pragma GCC unroll 16
  for (int i = 0; i < NP; ++i)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[i][t] = _mm512_setzero_ps();
  for (int c = 0; c < k; ++c) {
    pf.step();
    __m512 wv[NP];
#pragma GCC unroll 16
    for (int i = 0; i < NP; ++i) wv[i] = _mm512_load_ps(w + i * wstride + size_t(c) * kPackRows);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const __m512 xb = _mm512_set1_ps(x[size_t(t) * k + c]);
#pragma GCC unroll 16
      for (int i = 0; i < NP; ++i) acc[i][t] = _mm512_fmadd_ps(wv[i], xb, acc[i][t]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < NP; ++i) {
    const __mmask16 mask = row_mask(valid - i * kPackRows);
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) _mm512_mask_storeu_ps(y + size_t(t) * ldy + i * kPackRows, mask, acc[i][t]);
  }
}

// 2 panels x 12 tokens: 24 accumulators, 2 weight loads and 12 broadcasts per 24 FMAs.
constexpr int kF32NP = 2, kF32T = 12;
using F32Fn = void (*)(const float*, int, const float*, size_t, float*, int, int, Prefetch);
template <int NP, size_t... T> constexpr std::array<F32Fn, sizeof...(T)> f32_tiles(std::index_sequence<T...>) {
  return {{&f32_tile<NP, int(T) + 1>...}};
}
template <size_t... P> constexpr std::array<std::array<F32Fn, kF32T>, sizeof...(P)> f32_table(std::index_sequence<P...>) {
  return {{f32_tiles<int(P) + 1>(std::make_index_sequence<kF32T>())...}};
}

}  // namespace

void matmul_f32_avx512(const float* x, int m, const PackedF32& w, float* y, int ldy, int n0, int n1) {
  static constexpr auto table = f32_table(std::make_index_sequence<kF32NP>());
  const int k = w.k, p1 = panels_of(n1), tiles = (m + kF32T - 1) / kF32T;
  const int npm = m == 1 ? 1 : kF32NP;  // one token: one sequential weight stream (see kGemvNP)
  const size_t wstride = size_t(k) * kPackRows;
  for (int p = n0 / kPackRows; p < p1; p += npm) {
    const int np = p1 - p < npm ? p1 - p : npm, next = p1 - (p + np) < npm ? p1 - (p + np) : npm;
    const float* wp = w.data.as<float>() + p * wstride;
    for (int tile = 0; tile < tiles; ++tile) {
      const int t0 = int(int64_t(m) * tile / tiles), t1 = int(int64_t(m) * (tile + 1) / tiles);
      table[np - 1][t1 - t0 - 1](x + size_t(t0) * k, k, wp, wstride, y + size_t(t0) * ldy + p * kPackRows, ldy, n1 - p * kPackRows,
                                 Prefetch(wp + np * wstride, nullptr, nullptr, next * k, tile, tiles, k));
    }
  }
}

namespace {

// out[j] = column j of the 16 x 16 dwords in r (r[i] holds row i), by 32- and 64-bit unpacks
// within 128-bit lanes (a 4 x 4 transpose per lane and group of 4 rows), then two rounds of lane
// shuffles (the 4 x 4 transpose of those blocks).
WEFT_AVX512 inline void transpose16_epi32(const __m512i r[16], __m512i out[16]) {
  __m512i u[4][4];  // u[c][g], lane L: column 4L + c of rows 4g .. 4g + 3
  for (int g = 0; g < 4; ++g) {
    const __m512i t0 = _mm512_unpacklo_epi32(r[4 * g], r[4 * g + 1]), t1 = _mm512_unpackhi_epi32(r[4 * g], r[4 * g + 1]);
    const __m512i t2 = _mm512_unpacklo_epi32(r[4 * g + 2], r[4 * g + 3]), t3 = _mm512_unpackhi_epi32(r[4 * g + 2], r[4 * g + 3]);
    u[0][g] = _mm512_unpacklo_epi64(t0, t2);
    u[1][g] = _mm512_unpackhi_epi64(t0, t2);
    u[2][g] = _mm512_unpacklo_epi64(t1, t3);
    u[3][g] = _mm512_unpackhi_epi64(t1, t3);
  }
  for (int c = 0; c < 4; ++c) {
    const __m512i v0 = _mm512_shuffle_i32x4(u[c][0], u[c][1], 0x44), v1 = _mm512_shuffle_i32x4(u[c][0], u[c][1], 0xEE);
    const __m512i v2 = _mm512_shuffle_i32x4(u[c][2], u[c][3], 0x44), v3 = _mm512_shuffle_i32x4(u[c][2], u[c][3], 0xEE);
    out[c] = _mm512_shuffle_i32x4(v0, v2, 0x88);
    out[4 + c] = _mm512_shuffle_i32x4(v0, v2, 0xDD);
    out[8 + c] = _mm512_shuffle_i32x4(v1, v3, 0x88);
    out[12 + c] = _mm512_shuffle_i32x4(v1, v3, 0xDD);
  }
}

// 16 floats of row xr from c (zeros past k) -> 16 bytes of x * inv + 128, rounded half to even.
WEFT_AVX512 inline __m128i quantize16(const float* xr, int k, int c, __m512 vinv) {
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127), off = _mm512_set1_epi32(128);
  __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(row_mask(k - c), xr + c), vinv));
  return _mm512_cvtepi32_epi8(_mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(q, lo), hi), off));
}

WEFT_AVX512 inline float act_inv(float scale) {
  return scale > 0.0f ? 1.0f / scale : 0.0f;
}

// The scales of token t: absmax / 127 of each group (of the whole row for per-row weights).
WEFT_AVX512 void act_scales(const float* xr, int k, int groups, int span, float* scales) {
  for (int g = 0; g < groups; ++g) {
    __m512 vmax = _mm512_setzero_ps();
    for (int c = g * span; c < (g + 1) * span && c < k; c += 16)
      vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_maskz_loadu_ps(row_mask(k - c), xr + c)));
    scales[g] = _mm512_reduce_max_ps(vmax) / 127.0f;
  }
}

}  // namespace

// Rows one at a time, each 16 values' 4 k-quads scattered to their rows of the k-quad-major
// layout; a run of 16 tokens (m > 1) instead quantizes 64 values of each token, transposes the
// 16 x 16 k-quads in registers and stores each k-quad's 16 tokens as one 64-byte line.
WEFT_AVX512 void quantize_act_avx512(const float* x, int k, int t0, int t1, QuantAct* out) {
  const int m = out->m, kp = i8_kpad(k), kq = kp / kQuad;
  uint8_t* d = out->data.as<uint8_t>();
  const int groups = out->groups(), span = kp / groups;
  float* scales = out->scales.as<float>();
  const size_t s = size_t(kQuad) * m;
  int t = t0;
  for (; m > 1 && t + 16 <= t1; t += 16) {
    for (int i = 0; i < 16; ++i) act_scales(x + size_t(t + i) * k, k, groups, span, scales + size_t(t + i) * groups);
    for (int c = 0; c < kp; c += 64) {
      __m512i r[16], col[16];
      for (int i = 0; i < 16; ++i) {
        const float* xr = x + size_t(t + i) * k;
        const float* sc = scales + size_t(t + i) * groups;
        // span is a multiple of 32: the two halves of 32 values each have one scale
        const __m512 vinv[2] = {_mm512_set1_ps(act_inv(sc[c / span])), _mm512_set1_ps(act_inv(sc[std::min(c + 32, kp - 1) / span]))};
        __m128i b[4];
        for (int h = 0; h < 4; ++h) b[h] = c + 16 * h < kp ? quantize16(xr, k, c + 16 * h, vinv[h / 2]) : _mm_setzero_si128();
        r[i] = _mm512_inserti32x4(_mm512_inserti32x4(_mm512_inserti32x4(_mm512_castsi128_si512(b[0]), b[1], 1), b[2], 2), b[3], 3);
      }
      transpose16_epi32(r, col);
      for (int j = 0; j < 16 && c / kQuad + j < kq; ++j) _mm512_storeu_si512(d + size_t(c / kQuad + j) * s + size_t(t) * kQuad, col[j]);
    }
  }
  for (; t < t1; ++t) {
    const float* xr = x + size_t(t) * k;
    float* sc = scales + size_t(t) * groups;
    act_scales(xr, k, groups, span, sc);
    for (int g = 0; g < groups; ++g) {
      const __m512 vinv = _mm512_set1_ps(act_inv(sc[g]));
      for (int c = g * span; c < (g + 1) * span; c += 16) {
        const __m128i b = quantize16(xr, k, c, vinv);
        uint8_t* dst = d + size_t(c / kQuad) * s + size_t(t) * kQuad;
        if (m == 1) {
          _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), b);
        } else {
          const int32_t q0 = _mm_extract_epi32(b, 0), q1 = _mm_extract_epi32(b, 1);
          const int32_t q2 = _mm_extract_epi32(b, 2), q3 = _mm_extract_epi32(b, 3);
          std::memcpy(dst, &q0, 4);
          std::memcpy(dst + s, &q1, 4);
          std::memcpy(dst + 2 * s, &q2, 4);
          std::memcpy(dst + 3 * s, &q3, 4);
        }
      }
    }
  }
}

}  // namespace detail
}  // namespace weft
