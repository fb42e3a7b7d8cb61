// AVX2 + FMA kernels on the shared packed layouts (matmul_internal.h), for x86-64 CPUs without
// AVX-512 VNNI. int8: vpmaddubsw would saturate on the unsigned (x+128) activations, so both
// operands are widened to int16 and multiplied with vpmaddwd, which is exact; the int32 dot
// products and the final float operations are those of the scalar reference.
#pragma GCC target("avx2,fma")
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "cpu/matmul_internal.h"

namespace weft {
namespace detail {
namespace {

constexpr int kF32Tile = 4;  // tokens per f32 tile: 8 accumulators + 2 weights + 1 broadcast
constexpr int kI8Tile = 2;   // tokens per int8 tile: 8 accumulators + 4 widened weights + 2 x

// Rows [0, 16) of one output panel for tokens t0..t0+nt-1, written to y (lanes < valid only).
inline void store_panel(float* y, int ldy, int t, int r0, int valid, __m256 lo, __m256 hi) {
  float* dst = y + size_t(t) * ldy + r0;
  if (valid == kPackRows) {
    _mm256_storeu_ps(dst, lo);
    _mm256_storeu_ps(dst + 8, hi);
    return;
  }
  alignas(32) float tmp[kPackRows];
  _mm256_store_ps(tmp, lo);
  _mm256_store_ps(tmp + 8, hi);
  std::memcpy(dst, tmp, valid * sizeof(float));
}

// int32 pair sums of 4 rows each (a: rows 0-3, b: rows 4-7) → one int32 per row 0..7.
inline __m256i fold_pairs(__m256i a, __m256i b) {
  const __m256i h = _mm256_hadd_epi32(a, b);  // [r0 r1 r4 r5 | r2 r3 r6 r7]
  return _mm256_permutevar8x32_epi32(h, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
}

}  // namespace

void matmul_f32_avx2(const float* x, int m, const PackedF32& w, float* y, int ldy, int n0, int n1) {
  const int k = w.k;
  for (int r0 = n0; r0 < n1; r0 += kPackRows) {
    const float* wp = w.data.as<float>() + size_t(r0 / kPackRows) * k * kPackRows;
    const int valid = std::min(kPackRows, n1 - r0);
    for (int t0 = 0; t0 < m; t0 += kF32Tile) {
      const int nt = std::min(kF32Tile, m - t0);
      __m256 acc[kF32Tile][2];
      for (int t = 0; t < kF32Tile; ++t) acc[t][0] = acc[t][1] = _mm256_setzero_ps();
      for (int c = 0; c < k; ++c) {
        const __m256 lo = _mm256_loadu_ps(wp + size_t(c) * kPackRows), hi = _mm256_loadu_ps(wp + size_t(c) * kPackRows + 8);
        for (int t = 0; t < nt; ++t) {
          const __m256 xb = _mm256_broadcast_ss(x + size_t(t0 + t) * k + c);
          acc[t][0] = _mm256_fmadd_ps(lo, xb, acc[t][0]);
          acc[t][1] = _mm256_fmadd_ps(hi, xb, acc[t][1]);
        }
      }
      for (int t = 0; t < nt; ++t) store_panel(y, ldy, t0 + t, r0, valid, acc[t][0], acc[t][1]);
    }
  }
}

void quantize_act_avx2(const float* x, int m, int k, QuantAct* out) { quantize_act_scalar(x, m, k, out); }

void matmul_i8_avx2(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1) {
  const int m = x.m, kp = i8_kpad(w.k), kq = kp / kQuad;
  const bool grouped = w.group != 0;
  const int groups = grouped ? kp / kQ8Group : 1, quads_per_group = grouped ? kQ8Group / kQuad : kq;
  const uint8_t* xd = x.data.as<uint8_t>();
  const float* xs = x.scales.as<float>();
  const __m128i offset = _mm_set1_epi16(128);
  for (int r0 = n0; r0 < n1; r0 += kPackRows) {
    const int p = r0 / kPackRows, valid = std::min(kPackRows, n1 - r0);
    const int8_t* wp = w.data.as<int8_t>() + size_t(p) * kq * 64;
    const float* ws = w.scales.as<float>() + size_t(p) * groups * kPackRows;
    for (int t0 = 0; t0 < m; t0 += kI8Tile) {
      const int nt = std::min(kI8Tile, m - t0);
      __m256 facc[kI8Tile][2];
      for (int t = 0; t < kI8Tile; ++t) facc[t][0] = facc[t][1] = _mm256_setzero_ps();
      for (int g = 0; g < groups; ++g) {
        __m256i acc[kI8Tile][4];
        for (int t = 0; t < kI8Tile; ++t)
          for (int a = 0; a < 4; ++a) acc[t][a] = _mm256_setzero_si256();
        for (int j = g * quads_per_group; j < (g + 1) * quads_per_group; ++j) {
          const int8_t* wq = wp + size_t(j) * 64;  // 16 rows x 4 k
          __m256i w16[4];
          for (int a = 0; a < 4; ++a) w16[a] = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wq + 16 * a)));
          for (int t = 0; t < nt; ++t) {
            int32_t quad;
            std::memcpy(&quad, xd + size_t(kQuad) * (size_t(j) * m + t0 + t), 4);
            const __m128i x16 = _mm_sub_epi16(_mm_cvtepu8_epi16(_mm_cvtsi32_si128(quad)), offset);
            const __m256i xb = _mm256_broadcastq_epi64(x16);  // the 4 k values, for each row
            for (int a = 0; a < 4; ++a) acc[t][a] = _mm256_add_epi32(acc[t][a], _mm256_madd_epi16(w16[a], xb));
          }
        }
        for (int t = 0; t < nt; ++t) {
          const __m256 lo = _mm256_cvtepi32_ps(fold_pairs(acc[t][0], acc[t][1]));
          const __m256 hi = _mm256_cvtepi32_ps(fold_pairs(acc[t][2], acc[t][3]));
          if (!grouped) {
            const __m256 s = _mm256_set1_ps(xs[t0 + t]);
            facc[t][0] = _mm256_mul_ps(lo, _mm256_mul_ps(_mm256_loadu_ps(ws), s));
            facc[t][1] = _mm256_mul_ps(hi, _mm256_mul_ps(_mm256_loadu_ps(ws + 8), s));
          } else {
            facc[t][0] = _mm256_fmadd_ps(lo, _mm256_loadu_ps(ws + size_t(g) * kPackRows), facc[t][0]);
            facc[t][1] = _mm256_fmadd_ps(hi, _mm256_loadu_ps(ws + size_t(g) * kPackRows + 8), facc[t][1]);
          }
        }
      }
      for (int t = 0; t < nt; ++t) {
        if (grouped) {
          const __m256 s = _mm256_set1_ps(xs[t0 + t]);
          facc[t][0] = _mm256_mul_ps(facc[t][0], s);
          facc[t][1] = _mm256_mul_ps(facc[t][1], s);
        }
        store_panel(y, ldy, t0 + t, r0, valid, facc[t][0], facc[t][1]);
      }
    }
  }
}

}  // namespace detail
}  // namespace weft
