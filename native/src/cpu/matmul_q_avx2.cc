// AVX2 kernel for PackedQ weights (with AVX-VNNI when the CPU has it). A panel's 16 rows are
// two halves of 8: 32 bytes of a nibble chunk are [8 rows][4 k], masked and shifted into two
// unsigned weight vectors (of a 2-bit chunk, into four); the high-bit planes' 32-bit masks are
// spread to bytes by a shuffle and a compare. Without VNNI, vpmaddubsw + vpmaddwd form the int32 dots: u <= 63 and |x| <= 127 keep
// each pair sum below 2^15, so the 16-bit step never saturates.
#include <immintrin.h>

#include <cstring>

#include "cpu/matmul_internal.h"

// AVX-VNNI's vpdpbusd is emitted by inline asm (as in matmul_avx2.cc), so every function needs
// only avx2+fma+f16c and the VNNI variant is never called on CPUs without it.
#define WEFT_AVX2 __attribute__((target("avx2,fma,f16c")))

namespace weft {
namespace detail {
namespace {

template <bool VNNI> struct Dot;

template <> struct Dot<false> {
  WEFT_AVX2 static inline __m256i add(__m256i acc, __m256i w, __m256i x) {
    const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
    return _mm256_add_epi32(acc, p);
  }
};

template <> struct Dot<true> {
  WEFT_AVX2 static inline __m256i add(__m256i acc, __m256i w, __m256i x) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(w), "x"(x));
    return acc;
  }
};

WEFT_AVX2 inline __m256i bcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

// 32 mask bits -> 32 bytes, 0xFF where the bit is set.
WEFT_AVX2 inline __m256i spread_bits(uint32_t m) {
  const __m256i rep = _mm256_shuffle_epi8(
      _mm256_set1_epi32(int(m)), _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
  const __m256i bit = _mm256_set1_epi64x(int64_t(0x8040201008040201ull));
  return _mm256_cmpeq_epi8(_mm256_and_si256(rep, bit), bit);
}

// Sets `bit` in the weight bytes whose bit is set in a plane of 8 uint64 masks (one a k-quad, bit
// 4*lane + b; this half's 32 rows-bits of each): Q3_K's third bit, Q5's fifth.
WEFT_AVX2 inline void or_mask_plane(__m256i wv[8], const uint8_t* plane, int half, char bit) {
  const __m256i b = _mm256_set1_epi8(bit);
  for (int q = 0; q < 8; ++q) {
    uint32_t m;
    std::memcpy(&m, plane + 8 * q + 4 * half, 4);
    wv[q] = _mm256_or_si256(wv[q], _mm256_and_si256(spread_bits(m), b));
  }
}

struct QArgs2 {
  const uint8_t* pd;
  const uint16_t* dm;
  const int8_t* sm;
  const int8_t* xq;
  const float* sx;
  const float* fs;
  int groups, kp, super, half, valid;
  float* y;
  int ldy;
  PanelPrefetch pf;  // as in matmul_q_avx512.cc
};

WEFT_AVX2 inline __m256i load_i8_epi32(const int8_t* p) {
  return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
}

template <int BITS, int SUB, bool HS, bool MNSC, int T, bool VNNI> WEFT_AVX2 void q_tile2(const QArgs2& a) {
  constexpr int kSubs = 32 / SUB, kQuads = SUB / 4;
  const int gb = q_group_bytes(BITS), nfs = 32 / SUB * (a.kp / 32), off = 32 * a.half, gps = a.super / 32;
  const __m256i low = _mm256_set1_epi8(15);
  __m256 acc[T];
  for (int i = 0; i < T; ++i) acc[i] = _mm256_setzero_ps();
  for (int sb = 0; sb < a.groups / gps; ++sb) {
    __m256i isum[T];  // matmul_q_scalar's arithmetic: integer over the super-block
    __m256 ms[T];
    for (int i = 0; i < T; ++i) isum[i] = _mm256_setzero_si256(), ms[i] = _mm256_setzero_ps();
    for (int g = sb * gps; g < (sb + 1) * gps; ++g) {
      a.pf.group(g);
      const uint8_t* gd = a.pd + size_t(g) * gb;
      __m256i wv[8];
      if (BITS <= 3) {  // as in matmul_q_avx512.cc
        const __m256i two = _mm256_set1_epi8(3);
        for (int h = 0; h < 2; ++h) {
          const __m256i f = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gd + 64 * h + off));
          for (int j = 0; j < 4; ++j) wv[4 * h + j] = _mm256_and_si256(_mm256_srli_epi16(f, 2 * j), two);
        }
        if (BITS == 3) or_mask_plane(wv, gd + 128, a.half, 4);
      } else {
        for (int c = 0; c < 4; ++c) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gd + 64 * c + off));
          wv[2 * c] = _mm256_and_si256(v, low);
          wv[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
        }
      }
      if (BITS == 5) or_mask_plane(wv, gd + 256, a.half, 16);
      if (BITS == 6) {  // as in matmul_q_avx512.cc
        const __m256i b45 = _mm256_set1_epi8(0x30);
        for (int h = 0; h < 2; ++h) {
          const __m256i f = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(gd + 256 + 64 * h + off));
          const __m256i sh[4] = {_mm256_slli_epi16(f, 4), _mm256_slli_epi16(f, 2), f, _mm256_srli_epi16(f, 2)};
          for (int j = 0; j < 4; ++j) wv[4 * h + j] = _mm256_or_si256(wv[4 * h + j], _mm256_and_si256(sh[j], b45));
        }
      }
      for (int h = 0; h < kSubs; ++h) {
        const int s = g * kSubs + h;
        __m256i sc;
        __m256 mn;
        if (HS) {
          // Q6_K and Q3_K (MNSC) store sc alone: their mn equals sc
          sc = load_i8_epi32(a.sm + (MNSC ? 1 : 2) * s * kPackRows + 8 * a.half);
          mn = _mm256_cvtepi32_ps(MNSC ? sc : load_i8_epi32(a.sm + (2 * s + 1) * kPackRows + 8 * a.half));
        }
        for (int i = 0; i < T; ++i) {
          const int8_t* xg = a.xq + size_t(i) * a.kp + g * 32 + h * SUB;
          __m256i dot = _mm256_setzero_si256();
          for (int q = 0; q < kQuads; ++q) dot = Dot<VNNI>::add(dot, wv[h * kQuads + q], bcast4(xg + 4 * q));
          isum[i] = _mm256_add_epi32(isum[i], HS ? _mm256_mullo_epi32(dot, sc) : dot);
          const __m256 f = _mm256_set1_ps(a.fs[size_t(i) * nfs + s]);
          ms[i] = HS ? _mm256_fmadd_ps(mn, f, ms[i]) : _mm256_add_ps(ms[i], f);
        }
      }
    }
    const __m256 D = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.dm + 2 * sb * kPackRows + 8 * a.half)));
    const __m256 M = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(a.dm + (2 * sb + 1) * kPackRows + 8 * a.half)));
    for (int i = 0; i < T; ++i) {
      const __m256 ys = _mm256_mul_ps(_mm256_cvtepi32_ps(isum[i]), _mm256_set1_ps(a.sx[size_t(i) * (a.kp / 32) + sb * gps]));
      acc[i] = _mm256_fmadd_ps(M, ms[i], _mm256_fmadd_ps(D, ys, acc[i]));
    }
  }
  for (int i = 0; i < T; ++i) {
    float out[8];
    _mm256_storeu_ps(out, acc[i]);
    std::memcpy(a.y + size_t(i) * a.ldy, out, sizeof(float) * (a.valid < 8 ? a.valid : 8));
  }
}

template <int BITS, int SUB, bool HS, bool MNSC, bool VNNI>
void q_kernel2(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1) {
  const int groups = w.k / 32, kp = w.k, nfs = 32 / SUB * (kp / 32);
  for (int r = n0; r < n1; r += kPackRows) {
    const int p = r / kPackRows;
    for (int half = 0; half < 2 && r + 8 * half < n1; ++half) {
      QArgs2 a;
      a.pd = w.panel(p);
      a.dm = w.panel_dm(p);
      a.sm = w.panel_sm(p);
      a.groups = groups;
      a.kp = kp;
      a.super = w.super;
      a.half = half;
      a.valid = n1 - r - 8 * half;
      a.ldy = ldy;
      // half 0's first tile prefetches the next panel; half 1 finds this one in cache
      a.pf = half == 0 && r + kPackRows < n1 ? PanelPrefetch(w, p + 1) : PanelPrefetch();
      int t = 0;
      auto at = [&](int t0) {
        a.xq = x.q.as<int8_t>() + size_t(t0) * kp;
        a.sx = x.sx.as<float>() + size_t(t0) * (kp / 32);
        a.fs = (SUB == 16 ? x.fs16.as<float>() : x.fs32.as<float>()) + size_t(t0) * nfs;
        a.y = y + size_t(t0) * ldy + r + 8 * half;
      };
      for (; t + 4 <= x.m; t += 4) {
        at(t);
        q_tile2<BITS, SUB, HS, MNSC, 4, VNNI>(a);
        a.pf = PanelPrefetch();
      }
      for (; t < x.m; ++t) {
        at(t);
        q_tile2<BITS, SUB, HS, MNSC, 1, VNNI>(a);
        a.pf = PanelPrefetch();
      }
    }
  }
}

template <bool VNNI> void q_dispatch2(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1) {
  if (w.bits == 6) return q_kernel2<6, 16, true, true, VNNI>(x, w, y, ldy, n0, n1);
  if (w.bits == 3) return q_kernel2<3, 16, true, true, VNNI>(x, w, y, ldy, n0, n1);  // Q3_K: mn = sc
  if (w.bits == 2) return q_kernel2<2, 16, true, false, VNNI>(x, w, y, ldy, n0, n1);  // Q2_K
  if (w.has_sub)
    return w.bits == 5 ? q_kernel2<5, 32, true, false, VNNI>(x, w, y, ldy, n0, n1) : q_kernel2<4, 32, true, false, VNNI>(x, w, y, ldy, n0, n1);
  return w.bits == 5 ? q_kernel2<5, 32, false, false, VNNI>(x, w, y, ldy, n0, n1) : q_kernel2<4, 32, false, false, VNNI>(x, w, y, ldy, n0, n1);
}

}  // namespace

void matmul_q_avx2_plain(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1) {
  q_dispatch2<false>(x, w, y, ldy, n0, n1);
}
void matmul_q_avx2_vnni(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1) {
  q_dispatch2<true>(x, w, y, ldy, n0, n1);
}
void matmul_q_avx2(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1) {
  static const bool vnni = avx_vnni_supported();
  (vnni ? matmul_q_avx2_vnni : matmul_q_avx2_plain)(x, w, y, ldy, n0, n1);
}

}  // namespace detail
}  // namespace weft
