// AVX-512 VNNI kernel for PackedQ weights. One zmm of nibbles is 16 rows x 8 k: masking and
// shifting give two [16 rows][4 k] unsigned weight vectors, the shape vpdpbusd multiplies with a
// broadcast k-quad of signed int8 activations, so no horizontal sums are needed (one zmm of 2-bit
// fields, 16 rows x 16 k, gives four); Q3_K's third bit and Q5's fifth come from 64-bit masks (one
// bit per weight byte) as masked byte adds, Q6's fifth and sixth from planes of 2-bit fields. A group of
// 32 k is unpacked once and then used for a tile of up to 6 tokens (prefill reuses it; decode
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

// Tokens per tile: 3 accumulators each (y, the super-block's ys and ms) beside 8 unpacked weight
// vectors fit the 32 zmm registers up to 6 (8 spilled and ran slower in bench_matmul).
constexpr int kTile = 6;

// acc += dot(w u8 quads, the s8 k-quad at x broadcast): the broadcast folds into the instruction
// (inline asm, see matmul_avx512.cc for why not the intrinsic).
WEFT_AVX512 inline void dpbusd_bcast(__m512i& acc, __m512i w, const int8_t* x) {
  __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(w), "m"(*reinterpret_cast<const int32_t*>(x)));
}

WEFT_AVX512 inline __m512i load_i8_epi32(const int8_t* p) {
  return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

WEFT_AVX512 inline __m512 load_f16_ps(const uint16_t* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// Adds `bit` to the weight bytes whose bit is set in a plane of 8 uint64 masks (one a k-quad, bit
// 4*lane + b): Q3_K's third bit, Q5's fifth.
WEFT_AVX512 inline void add_mask_plane(__m512i wv[8], const uint8_t* plane, char bit) {
  const __m512i b = _mm512_set1_epi8(bit);
  for (int q = 0; q < 8; ++q) {
    uint64_t m;
    std::memcpy(&m, plane + 8 * q, 8);
    wv[q] = _mm512_mask_add_epi8(wv[q], _cvtu64_mask64(m), wv[q], b);
  }
}

// The 8 k-quads of a group as unsigned weights, BITS bits each.
template <int BITS> WEFT_AVX512 inline void unpack_group(const uint8_t* gd, __m512i wv[8]) {
  if (BITS <= 3) {
    // 2-bit fields j of chunk h are k-quad 4h + j (16-bit shifts: the mask drops what crosses a byte)
    const __m512i two = _mm512_set1_epi8(3);
    for (int h = 0; h < 2; ++h) {
      const __m512i f = _mm512_loadu_si512(gd + 64 * h);
      wv[4 * h] = _mm512_and_si512(f, two);
      wv[4 * h + 1] = _mm512_and_si512(_mm512_srli_epi16(f, 2), two);
      wv[4 * h + 2] = _mm512_and_si512(_mm512_srli_epi16(f, 4), two);
      wv[4 * h + 3] = _mm512_and_si512(_mm512_srli_epi16(f, 6), two);
    }
    if (BITS == 3) add_mask_plane(wv, gd + 128, 4);
    return;
  }
  const __m512i low = _mm512_set1_epi8(15);
  for (int c = 0; c < 4; ++c) {
    const __m512i v = _mm512_loadu_si512(gd + 64 * c);
    wv[2 * c] = _mm512_and_si512(v, low);
    wv[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
  }
  if (BITS == 5) add_mask_plane(wv, gd + 256, 16);
  if (BITS == 6) {
    // bits 2j..2j+1 of a byte to bits 4..5 (16-bit shifts: what crosses a byte lands outside 0x30)
    const __m512i b45 = _mm512_set1_epi8(0x30);
    for (int h = 0; h < 2; ++h) {
      const __m512i f = _mm512_loadu_si512(gd + 256 + 64 * h);
      const __m512i sh[4] = {_mm512_slli_epi16(f, 4), _mm512_slli_epi16(f, 2), f, _mm512_srli_epi16(f, 2)};
      for (int j = 0; j < 4; ++j) wv[4 * h + j] = _mm512_ternarylogic_epi32(wv[4 * h + j], sh[j], b45, 0xF8);  // a | (b & c)
    }
  }
}

struct QArgs {
  const uint8_t* pd;  // the panel's groups
  const uint16_t* dm;  // the panel's D/M
  const int8_t* sm;  // the panel's sc/mn (HS)
  const int8_t* xq;  // first token's int8 activations
  const float* sx;  // first token's block scales
  const float* fs;  // first token's block sums (fs16 for SUB 16, else fs32)
  int groups, kp, super;
  float* y;  // first token's output at the panel's first row
  int ldy;
  __mmask16 rows;  // real rows of the panel
  // The next panel, prefetched while this one computes. As for the int8 kernels, one core's hardware
  // prefetch alone falls short of its DRAM bandwidth at a token's decode, where every weight byte
  // is read once.
  PanelPrefetch pf;
};

// Inlined into q_kernel: GCC left some instances as calls that re-read QArgs in the inner loop
// (prefill of Q4_0 and Q4_K ran 10-25% slower in bench_matmul).
template <int BITS, int SUB, bool HS, bool MNSC, int T> WEFT_AVX512 inline __attribute__((always_inline)) void q_tile(const QArgs& a) {
  constexpr int kSubs = 32 / SUB, kQuads = SUB / 4;
  const int gb = q_group_bytes(BITS), nfs = 32 / SUB * (a.kp / 32), gps = a.super / 32;
  __m512 acc[T];
  for (int i = 0; i < T; ++i) acc[i] = _mm512_setzero_ps();
  for (int sb = 0; sb < a.groups / gps; ++sb) {
    __m512i isum[T];  // matmul_q_scalar's arithmetic: integer over the super-block
    __m512 ms[T];
    for (int i = 0; i < T; ++i) isum[i] = _mm512_setzero_si512(), ms[i] = _mm512_setzero_ps();
    for (int g = sb * gps; g < (sb + 1) * gps; ++g) {
      a.pf.group(g);
      __m512i wv[8];
      unpack_group<BITS>(a.pd + size_t(g) * gb, wv);
      for (int h = 0; h < kSubs; ++h) {
        const int s = g * kSubs + h;
        __m512i sc;
        __m512 mn;
        if (HS) {
          // Q6_K and Q3_K (MNSC) store sc alone: their min is a multiple of D * sc, so mn equals sc
          sc = load_i8_epi32(a.sm + (MNSC ? 1 : 2) * s * kPackRows);
          mn = _mm512_cvtepi32_ps(MNSC ? sc : load_i8_epi32(a.sm + (2 * s + 1) * kPackRows));
        }
        for (int i = 0; i < T; ++i) {
          const int8_t* xg = a.xq + size_t(i) * a.kp + g * 32 + h * SUB;
          // Decode (T <= 2) is latency-bound: one accumulator makes a chain of kQuads dependent
          // vpdpbusd per block, so it takes four and adds them (integer sums: the same result).
          constexpr int kChains = T <= 2 ? 4 : 1;
          __m512i d[kChains];
          for (int c = 0; c < kChains; ++c) d[c] = _mm512_setzero_si512();
          for (int q = 0; q < kQuads; ++q) dpbusd_bcast(d[q % kChains], wv[h * kQuads + q], xg + 4 * q);
          const __m512i dot = kChains == 4 ? _mm512_add_epi32(_mm512_add_epi32(d[0], d[1]), _mm512_add_epi32(d[2], d[3])) : d[0];
          isum[i] = _mm512_add_epi32(isum[i], HS ? _mm512_mullo_epi32(dot, sc) : dot);
          const __m512 f = _mm512_set1_ps(a.fs[size_t(i) * nfs + s]);
          ms[i] = HS ? _mm512_fmadd_ps(mn, f, ms[i]) : _mm512_add_ps(ms[i], f);
        }
      }
    }
    const __m512 D = load_f16_ps(a.dm + 2 * sb * kPackRows), M = load_f16_ps(a.dm + (2 * sb + 1) * kPackRows);
    for (int i = 0; i < T; ++i) {
      const __m512 ys = _mm512_mul_ps(_mm512_cvtepi32_ps(isum[i]), _mm512_set1_ps(a.sx[size_t(i) * (a.kp / 32) + sb * gps]));
      acc[i] = _mm512_fmadd_ps(M, ms[i], _mm512_fmadd_ps(D, ys, acc[i]));
    }
  }
  for (int i = 0; i < T; ++i) _mm512_mask_storeu_ps(a.y + size_t(i) * a.ldy, a.rows, acc[i]);
}

template <int BITS, int SUB, bool HS, bool MNSC>
WEFT_AVX512 void q_kernel(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1) {
  const int groups = w.k / 32, kp = w.k;
  const int nfs = 32 / SUB * (kp / 32);
  for (int r = n0; r < n1; r += kPackRows) {
    const int p = r / kPackRows, valid = n1 - r;
    QArgs a;
    a.pd = w.panel(p);
    a.dm = w.panel_dm(p);
    a.sm = w.panel_sm(p);
    a.groups = groups;
    a.kp = kp;
    a.super = w.super;
    a.ldy = ldy;
    a.rows = valid >= kPackRows ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1);
    a.pf = r + kPackRows < n1 ? PanelPrefetch(w, p + 1) : PanelPrefetch();
    int t = 0;
    auto at = [&](int t0) {
      a.xq = x.q.as<int8_t>() + size_t(t0) * kp;
      a.sx = x.sx.as<float>() + size_t(t0) * (kp / 32);
      a.fs = (SUB == 16 ? x.fs16.as<float>() : x.fs32.as<float>()) + size_t(t0) * nfs;
      a.y = y + size_t(t0) * ldy + r;
    };
    for (; t + kTile <= x.m; t += kTile) {
      at(t);
      q_tile<BITS, SUB, HS, MNSC, kTile>(a);
      a.pf = PanelPrefetch();  // the first tile prefetched the next panel
    }
    for (; t + 2 <= x.m; t += 2) {
      at(t);
      q_tile<BITS, SUB, HS, MNSC, 2>(a);
      a.pf = PanelPrefetch();
    }
    for (; t < x.m; ++t) {
      at(t);
      q_tile<BITS, SUB, HS, MNSC, 1>(a);
    }
  }
}

}  // namespace

// quantize_blocks' rule (matmul_q_pack.cc) 16 lanes at a time: the same float operations, and
// roundscale's round-half-even equals the scalar version's 1.5 * 2^23 trick.
WEFT_AVX512 void quantize_blocks_avx512(const float* x, int k, int t0, int t1, BlockAct fmt, QuantBlocks* out) {
  const int kp = (k + 31) / 32 * 32, groups = kp / 32, per = block_act_span(fmt) / 32;
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  auto masks = [k](int g, __mmask16* m0, __mmask16* m1) {
    const int left = k - g * 32;
    *m0 = left >= 16 ? 0xFFFF : left <= 0 ? 0 : __mmask16((1u << left) - 1);
    *m1 = left >= 32 ? 0xFFFF : left <= 16 ? 0 : __mmask16((1u << (left - 16)) - 1);
  };
  for (int t = t0; t < t1; ++t) {
    const float* xr = x + size_t(t) * k;
    int8_t* q = out->q.as<int8_t>() + size_t(t) * kp;
    for (int g0 = 0; g0 < groups; g0 += per) {
      const int g1 = std::min(groups, g0 + per);
      __m512 vmax = _mm512_setzero_ps();
      for (int g = g0; g < g1; ++g) {
        __mmask16 m0, m1;
        masks(g, &m0, &m1);
        vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_maskz_loadu_ps(m0, xr + g * 32)));
        vmax = _mm512_max_ps(vmax, _mm512_abs_ps(_mm512_maskz_loadu_ps(m1, xr + g * 32 + 16)));
      }
      const float amax = _mm512_reduce_max_ps(vmax);
      const float inv = amax > 0.f ? 127.f / amax : 0.f, scale = block_act_scale(amax, fmt);
      const __m512 vinv = _mm512_set1_ps(inv);
      for (int g = g0; g < g1; ++g) {
        __mmask16 m[2];
        masks(g, &m[0], &m[1]);
        int32_t sum[2];
        for (int h = 0; h < 2; ++h) {
          const __m512 v = _mm512_maskz_loadu_ps(m[h], xr + g * 32 + 16 * h);
          const __m512 r = _mm512_roundscale_ps(_mm512_mul_ps(v, vinv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
          const __m512i qi = _mm512_min_epi32(_mm512_max_epi32(_mm512_cvtps_epi32(r), lo), hi);
          _mm_storeu_si128(reinterpret_cast<__m128i*>(q + g * 32 + 16 * h), _mm512_cvtepi32_epi8(qi));
          sum[h] = _mm512_reduce_add_epi32(qi);
        }
        out->sx.as<float>()[size_t(t) * groups + g] = scale;
        out->fs16.as<float>()[size_t(t) * 2 * groups + 2 * g] = scale * float(sum[0]);
        out->fs16.as<float>()[size_t(t) * 2 * groups + 2 * g + 1] = scale * float(sum[1]);
        out->fs32.as<float>()[size_t(t) * groups + g] = block_act_sum(scale, sum[0] + sum[1], fmt);
      }
    }
  }
}

void matmul_q_avx512(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1) {
  if (w.bits == 6) return q_kernel<6, 16, true, true>(x, w, y, ldy, n0, n1);
  if (w.bits == 3) return q_kernel<3, 16, true, true>(x, w, y, ldy, n0, n1);  // Q3_K: mn = sc
  if (w.bits == 2) return q_kernel<2, 16, true, false>(x, w, y, ldy, n0, n1);  // Q2_K
  if (w.has_sub) return w.bits == 5 ? q_kernel<5, 32, true, false>(x, w, y, ldy, n0, n1) : q_kernel<4, 32, true, false>(x, w, y, ldy, n0, n1);
  return w.bits == 5 ? q_kernel<5, 32, false, false>(x, w, y, ldy, n0, n1) : q_kernel<4, 32, false, false>(x, w, y, ldy, n0, n1);
}

}  // namespace detail
}  // namespace weft
