// AVX-512 VNNI kernel for PackedQ weights. One zmm of nibbles is 16 rows x 8 k: masking and
// shifting give two [16 rows][4 k] unsigned weight vectors, the shape vpdpbusd multiplies with a
// broadcast k-quad of signed int8 activations, so no horizontal sums are needed; the fifth and
// sixth bits come from 64-bit masks (one bit per weight byte) as masked byte adds. A group of
// 32 k is unpacked once and then used for a tile of up to 4 tokens (prefill reuses it; decode
// has one token and is limited by reading the weights).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <cstring>

#include "cpu/matmul_internal.h"

#define WEFT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,f16c")))

namespace weft {
namespace detail {
namespace {

// acc += dot(w u8 quads, x s8 quads) (inline asm: see matmul_avx512.cc).
WEFT_AVX512 inline void dpbusd(__m512i& acc, __m512i w, __m512i x) {
  __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(w), "v"(x));
}

WEFT_AVX512 inline __m512i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

WEFT_AVX512 inline __m512 load_i8_ps(const int8_t* p) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
}

WEFT_AVX512 inline __m512 load_f16_ps(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// The 8 k-quads of a group as unsigned weights, BITS bits each.
template <int BITS>
WEFT_AVX512 inline void unpack_group(const uint8_t* gd, __m512i wv[8]) {
  const __m512i low = _mm512_set1_epi8(15);
  for (int c = 0; c < 4; ++c) {
    const __m512i v = _mm512_loadu_si512(gd + 64 * c);
    wv[2 * c] = _mm512_and_si512(v, low);
    wv[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
  }
  for (int pl = 0; pl < BITS - 4; ++pl) {
    const __m512i bit = _mm512_set1_epi8(char(16 << pl));
    for (int q = 0; q < 8; ++q) {
      uint64_t m;
      std::memcpy(&m, gd + 256 + 64 * pl + 8 * q, 8);
      wv[q] = _mm512_mask_add_epi8(wv[q], _cvtu64_mask64(m), wv[q], bit);
    }
  }
}

struct QArgs {
  const uint8_t* pd;   // the panel's groups
  const uint16_t* dm;  // the panel's D/M
  const int8_t* sm;    // the panel's sc/mn (HS)
  const int8_t* xq;    // first token's int8 activations
  const float* sx;     // first token's block scales
  const float* fs;     // first token's block sums (fs16 for SUB 16, else fs32)
  int groups, kp, super;
  float* y;            // first token's output at the panel's first row
  int ldy;
  __mmask16 rows;      // real rows of the panel
};

template <int BITS, int SUB, bool HS, int T>
WEFT_AVX512 void q_tile(const QArgs& a) {
  constexpr int kSubs = 32 / SUB, kQuads = SUB / 4;
  const int gb = q_group_bytes(BITS), nfs = 32 / SUB * (a.kp / 32);
  __m512 acc[T];
  for (int i = 0; i < T; ++i) acc[i] = _mm512_setzero_ps();
  for (int g = 0; g < a.groups; ++g) {
    __m512i wv[8];
    unpack_group<BITS>(a.pd + size_t(g) * gb, wv);
    const int sb = g * 32 / a.super;
    const __m512 D = load_f16_ps(a.dm + 2 * sb * kPackRows), M = load_f16_ps(a.dm + (2 * sb + 1) * kPackRows);
    for (int h = 0; h < kSubs; ++h) {
      const int s = g * kSubs + h;
      __m512 sa = D, sbv = M;
      if (HS) {
        sa = _mm512_mul_ps(D, load_i8_ps(a.sm + 2 * s * kPackRows));
        sbv = _mm512_mul_ps(M, load_i8_ps(a.sm + (2 * s + 1) * kPackRows));
      }
      for (int i = 0; i < T; ++i) {
        const int8_t* xg = a.xq + size_t(i) * a.kp + g * 32 + h * SUB;
        __m512i dot = _mm512_setzero_si512();
        for (int q = 0; q < kQuads; ++q) dpbusd(dot, wv[h * kQuads + q], bcast4(xg + 4 * q));
        const __m512 f = _mm512_mul_ps(_mm512_cvtepi32_ps(dot), _mm512_set1_ps(a.sx[size_t(i) * (a.kp / 32) + g]));
        acc[i] = _mm512_fmadd_ps(sa, f, acc[i]);
        acc[i] = _mm512_fmadd_ps(sbv, _mm512_set1_ps(a.fs[size_t(i) * nfs + s]), acc[i]);
      }
    }
  }
  for (int i = 0; i < T; ++i) _mm512_mask_storeu_ps(a.y + size_t(i) * a.ldy, a.rows, acc[i]);
}

template <int BITS, int SUB, bool HS>
WEFT_AVX512 void q_kernel(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1) {
  const int groups = w.k / 32, gb = q_group_bytes(BITS), kp = w.k;
  const int nfs = 32 / SUB * (kp / 32);
  for (int r = n0; r < n1; r += kPackRows) {
    const int p = r / kPackRows, valid = n1 - r;
    QArgs a;
    a.pd = w.data.as<uint8_t>() + size_t(p) * groups * gb;
    a.dm = w.dm.as<uint16_t>() + size_t(p) * (w.k / w.super) * 2 * kPackRows;
    a.sm = HS ? w.sm.as<int8_t>() + size_t(p) * (w.k / SUB) * 2 * kPackRows : nullptr;
    a.groups = groups;
    a.kp = kp;
    a.super = w.super;
    a.ldy = ldy;
    a.rows = valid >= kPackRows ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1);
    int t = 0;
    auto at = [&](int t0) {
      a.xq = x.q.as<int8_t>() + size_t(t0) * kp;
      a.sx = x.sx.as<float>() + size_t(t0) * (kp / 32);
      a.fs = (SUB == 16 ? x.fs16.as<float>() : x.fs32.as<float>()) + size_t(t0) * nfs;
      a.y = y + size_t(t0) * ldy + r;
    };
    for (; t + 4 <= x.m; t += 4) {
      at(t);
      q_tile<BITS, SUB, HS, 4>(a);
    }
    for (; t < x.m; ++t) {
      at(t);
      q_tile<BITS, SUB, HS, 1>(a);
    }
  }
}

}  // namespace

void matmul_q_avx512(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1) {
  if (w.bits == 6) return q_kernel<6, 16, true>(x, w, y, ldy, n0, n1);
  if (w.has_sub) return w.bits == 5 ? q_kernel<5, 32, true>(x, w, y, ldy, n0, n1) : q_kernel<4, 32, true>(x, w, y, ldy, n0, n1);
  return w.bits == 5 ? q_kernel<5, 32, false>(x, w, y, ldy, n0, n1) : q_kernel<4, 32, false>(x, w, y, ldy, n0, n1);
}

}  // namespace detail
}  // namespace weft
