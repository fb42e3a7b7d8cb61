// AVX2+FMA kernels on the shared packed layouts (see matmul_internal.h). A ymm covers half a
// panel: 8 rows (x 4 k-bytes for int8). Tiles are one panel (2 halves) x T tokens, sized to
// the 16 ymm registers.
//
// int8 without VNNI: vpmaddubsw multiplies u8 by s8 into saturating int16 pairs, so the
// offset activations (up to 255) cannot be used directly (255*127*2 overflows). Instead
// |w| is the unsigned operand (|-128| = 128 is still exact as u8) and the sign of w moves
// onto the signed activation (|x| <= 127, so negating never overflows): pairs are at most
// 2*128*127 = 32512, exact. vpmaddwd with ones then widens to int32 lanes of 4 k each,
// giving exactly sum x*w, the same int32 dot as the VNNI kernels.
// With AVX-VNNI (256-bit vpdpbusd), the offset scheme of the AVX-512 kernels is used.
#include <cpuid.h>
#include <immintrin.h>

#include <array>
#include <cstring>
#include <utility>

#include "cpu/matmul_internal.h"

// The AVX-VNNI instruction is emitted by inline asm, so every function here needs only
// avx2+fma and the VNNI variant is simply never called on CPUs without AVX-VNNI.
#define WEFT_AVX2 __attribute__((target("avx2,fma")))

namespace weft {
namespace detail {
namespace {

constexpr int kHalf = kPackRows / 2;  // rows per ymm

// Lane mask for the real rows of a half panel (valid may be <= 0 or >= 8).
WEFT_AVX2 inline __m256i half_mask(int valid) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

WEFT_AVX2 inline void store_rows(float* y, int valid, __m256 v) {
  if (valid >= kHalf) _mm256_storeu_ps(y, v);
  else if (valid > 0) _mm256_maskstore_ps(y, half_mask(valid), v);
}

WEFT_AVX2 inline __m256i bcast4(const uint8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// ---- int8 ----

struct I8Args {
  const uint8_t* x;  // k-quads of the tile's first token (QuantAct layout)
  size_t xstride;  // 4 * m
  const float* xs;  // activation scales of the tile's tokens, `groups` a token
  const int8_t* w;  // the panel's data
  const float* ws;  // the panel's scales [g][16]
  const int32_t* rs;  // the panel's row sums [g][16] (VNNI only)
  int groups;  // scale groups (1: per-row scales over all k-quads)
  int glen;  // k-quads per group
  float* y;
  int ldy, valid;
  Prefetch pf;
};

// acc[h][t] += dot of one k-quad for half h, token t.
template <int T, bool VNNI> struct QuadStep;

template <int T> struct QuadStep<T, false> {
  WEFT_AVX2 static inline void run(__m256i (&acc)[2][T], const uint8_t* xj, const int8_t* wj) {
    const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8(char(0x80));
    __m256i wv[2], aw[2];
    for (int h = 0; h < 2; ++h) {
      wv[h] = _mm256_load_si256(reinterpret_cast<const __m256i*>(wj + h * 32));
      aw[h] = _mm256_abs_epi8(wv[h]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256i xb = _mm256_xor_si256(bcast4(xj + 4 * t), flip);  // u8 x+128 -> s8 x
      for (int h = 0; h < 2; ++h) {
        const __m256i p = _mm256_maddubs_epi16(aw[h], _mm256_sign_epi8(xb, wv[h]));
        acc[h][t] = _mm256_add_epi32(acc[h][t], _mm256_madd_epi16(p, ones));
      }
    }
  }
};

template <int T> struct QuadStep<T, true> {
  WEFT_AVX2 static inline void run(__m256i (&acc)[2][T], const uint8_t* xj, const int8_t* wj) {
    __m256i wv[2];
    for (int h = 0; h < 2; ++h) wv[h] = _mm256_load_si256(reinterpret_cast<const __m256i*>(wj + h * 32));
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256i xb = bcast4(xj + 4 * t);
      // Inline asm: GCC 12 copies the tied accumulator of the intrinsic on every use.
      for (int h = 0; h < 2; ++h) __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc[h][t]) : "x"(xb), "x"(wv[h]));
    }
  }
};

// One panel x T tokens, per-row (groups == 1) or group-32 scales.
template <int T, bool G, bool VNNI> WEFT_AVX2 void i8_tile(const I8Args& a) {
  __m256 facc[2][T];
  __m256i acc[2][T];
#pragma GCC unroll 8
  for (int h = 0; h < 2; ++h)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) facc[h][t] = _mm256_setzero_ps();
  const uint8_t* xj = a.x;
  const int8_t* wj = a.w;
  Prefetch pf = a.pf;
  for (int g = 0; g < a.groups; ++g) {
#pragma GCC unroll 8
    for (int h = 0; h < 2; ++h) {
      // VNNI: start from -128 * sum(w) to cancel the +128 offset of the activations.
      const __m256i init = VNNI ? _mm256_load_si256(reinterpret_cast<const __m256i*>(a.rs + g * kPackRows + h * kHalf)) : _mm256_setzero_si256();
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) acc[h][t] = init;
    }
    for (int j = 0; j < a.glen; ++j, xj += a.xstride, wj += 64) {
      pf.step();
      QuadStep<T, VNNI>::run(acc, xj, wj);
    }
#pragma GCC unroll 8
    for (int h = 0; h < 2; ++h) {
      const __m256 ws = _mm256_load_ps(a.ws + g * kPackRows + h * kHalf);
#pragma GCC unroll 8
      for (int t = 0; t < T; ++t) {
        // weight x activation scale (the token's, or its group's); the scalar and AVX-512 kernels' float ops
        const __m256 dot = _mm256_cvtepi32_ps(acc[h][t]), sc = _mm256_mul_ps(ws, _mm256_set1_ps(a.xs[size_t(t) * a.groups + g]));
        facc[h][t] = G ? _mm256_fmadd_ps(dot, sc, facc[h][t]) : _mm256_mul_ps(dot, sc);
      }
    }
  }
#pragma GCC unroll 8
  for (int h = 0; h < 2; ++h)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) store_rows(a.y + size_t(t) * a.ldy + h * kHalf, a.valid - h * kHalf, facc[h][t]);
}

using I8Fn = void (*)(const I8Args&);
constexpr int kMaxT = 6;
template <bool G, bool VNNI, size_t... T> constexpr std::array<I8Fn, sizeof...(T)> i8_table(std::index_sequence<T...>) {
  return {{&i8_tile<int(T) + 1, G, VNNI>...}};
}

template <bool VNNI> void i8_run(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1) {
  static constexpr auto row = i8_table<false, VNNI>(std::make_index_sequence<kMaxT>());
  static constexpr auto grp = i8_table<true, VNNI>(std::make_index_sequence<kMaxT>());
  const bool grouped = w.group != 0;
  const int m = x.m, kp = i8_kpad(w.k), kq = kp / kQuad, groups = grouped ? kp / kQ8Group : 1;
  // Largest tile that fits 16 ymm: accumulators (x2 with group float sums) + weights + temps
  // (the plain path also keeps |w| and two constants).
  const int tm = VNNI ? (grouped ? 3 : 6) : (grouped ? 2 : 3);
  const int tiles = (m + tm - 1) / tm, p1 = panels_of(n1);
  I8Args a;
  a.xstride = size_t(kQuad) * m;
  a.groups = groups;
  a.glen = kq / groups;
  a.ldy = ldy;
  for (int p = n0 / kPackRows; p < p1; ++p) {
    a.w = w.data.as<int8_t>() + size_t(p) * kq * 64;
    a.ws = w.scales.as<float>() + size_t(p) * groups * kPackRows;
    a.rs = w.row_sums.as<int32_t>() + size_t(p) * groups * kPackRows;
    a.valid = n1 - p * kPackRows;
    for (int tile = 0; tile < tiles; ++tile) {
      const int t0 = int(int64_t(m) * tile / tiles), t1 = int(int64_t(m) * (tile + 1) / tiles);
      a.x = x.data.as<uint8_t>() + size_t(kQuad) * t0;
      a.xs = x.scales.as<float>() + size_t(t0) * groups;
      a.y = y + size_t(t0) * ldy + p * kPackRows;
      a.pf = Prefetch(a.w + size_t(kq) * 64, grouped ? a.ws + groups * kPackRows : nullptr, grouped && VNNI ? a.rs + groups * kPackRows : nullptr,
                      p + 1 < p1 ? kq : 0, tile, tiles, kq);
      (grouped ? grp : row)[t1 - t0 - 1](a);
    }
  }
}

// ---- f32 ----

template <int T> WEFT_AVX2 void f32_tile(const float* x, int k, const float* w, float* y, int ldy, int valid, Prefetch pf) {
  __m256 acc[2][T];
#pragma GCC unroll 8
  for (int h = 0; h < 2; ++h)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) acc[h][t] = _mm256_setzero_ps();
  for (int c = 0; c < k; ++c) {
    pf.step();
    const __m256 w0 = _mm256_load_ps(w + size_t(c) * kPackRows), w1 = _mm256_load_ps(w + size_t(c) * kPackRows + kHalf);
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) {
      const __m256 xb = _mm256_broadcast_ss(x + size_t(t) * k + c);
      acc[0][t] = _mm256_fmadd_ps(w0, xb, acc[0][t]);
      acc[1][t] = _mm256_fmadd_ps(w1, xb, acc[1][t]);
    }
  }
#pragma GCC unroll 8
  for (int h = 0; h < 2; ++h)
#pragma GCC unroll 8
    for (int t = 0; t < T; ++t) store_rows(y + size_t(t) * ldy + h * kHalf, valid - h * kHalf, acc[h][t]);
}

using F32Fn = void (*)(const float*, int, const float*, float*, int, int, Prefetch);
constexpr int kF32T = 6;  // 12 accumulators + 2 weights + 1 broadcast
template <size_t... T> constexpr std::array<F32Fn, sizeof...(T)> f32_table(std::index_sequence<T...>) {
  return {{&f32_tile<int(T) + 1>...}};
}

}  // namespace

void matmul_f32_avx2(const float* x, int m, const PackedF32& w, float* y, int ldy, int n0, int n1) {
  static constexpr auto table = f32_table(std::make_index_sequence<kF32T>());
  const int k = w.k, p1 = panels_of(n1), tiles = (m + kF32T - 1) / kF32T;
  for (int p = n0 / kPackRows; p < p1; ++p) {
    const float* wp = w.data.as<float>() + size_t(p) * k * kPackRows;
    for (int tile = 0; tile < tiles; ++tile) {
      const int t0 = int(int64_t(m) * tile / tiles), t1 = int(int64_t(m) * (tile + 1) / tiles);
      table[t1 - t0 - 1](x + size_t(t0) * k, k, wp, y + size_t(t0) * ldy + p * kPackRows, ldy, n1 - p * kPackRows,
                         Prefetch(wp + size_t(k) * kPackRows, nullptr, nullptr, p + 1 < p1 ? k : 0, tile, tiles, k));
    }
  }
}

void matmul_i8_avx2_plain(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1) {
  i8_run<false>(x, w, y, ldy, n0, n1);
}
void matmul_i8_avx2_vnni(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1) {
  i8_run<true>(x, w, y, ldy, n0, n1);
}
// AVX-VNNI is CPUID leaf 7, subleaf 1, EAX bit 4, read directly: clang before 16 (the fuzzing
// build's compiler) does not know __builtin_cpu_supports("avxvnni").
bool avx_vnni_supported() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  return __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1u);
}

void matmul_i8_avx2(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1) {
  static const bool vnni = avx_vnni_supported();
  (vnni ? matmul_i8_avx2_vnni : matmul_i8_avx2_plain)(x, w, y, ldy, n0, n1);
}

// 8 floats -> 8 bytes of x+128 = two k-quads, stored at their QuantAct positions.
WEFT_AVX2 void quantize_act_avx2(const float* x, int k, int t0, int t1, QuantAct* out) {
  const int m = out->m, kp = i8_kpad(k);
  uint8_t* d = out->data.as<uint8_t>();
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127), off = _mm256_set1_epi32(128);
  // Low byte of each int32 to the first 4 bytes of its 128-bit lane.
  const __m256i pick = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,  //
                                        0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1);
  const size_t s = size_t(kQuad) * m;
  const int groups = out->groups(), span = kp / groups;
  for (int t = t0; t < t1; ++t) {
    const float* xr = x + size_t(t) * k;
    uint8_t* dst = d + size_t(t) * kQuad;
    for (int g = 0; g < groups; ++g) {
      const int c0 = g * span, c1 = c0 + span;
      __m256 vmax = _mm256_setzero_ps();
      for (int c = c0; c < c1 && c < k; c += kHalf) vmax = _mm256_max_ps(vmax, _mm256_andnot_ps(sign, _mm256_maskload_ps(xr + c, half_mask(k - c))));
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, vmax);
      float amax = 0.0f;
      for (float v : lanes) amax = v > amax ? v : amax;
      const float scale = amax / 127.0f, inv = scale > 0.0f ? 1.0f / scale : 0.0f;
      out->scales.as<float>()[size_t(t) * groups + g] = scale;
      const __m256 vinv = _mm256_set1_ps(inv);
      for (int c = c0; c < c1; c += kHalf, dst += 2 * s) {
        const __m256 v = _mm256_maskload_ps(xr + c, half_mask(k - c));
        __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(v, vinv));  // round half to even
        q = _mm256_add_epi32(_mm256_min_epi32(_mm256_max_epi32(q, lo), hi), off);
        q = _mm256_shuffle_epi8(q, pick);
        const int32_t q0 = _mm256_extract_epi32(q, 0), q1 = _mm256_extract_epi32(q, 4);
        std::memcpy(dst, &q0, 4);
        std::memcpy(dst + s, &q1, 4);
      }
    }
  }
}

}  // namespace detail
}  // namespace weft
