// AVX2 + FMA instances of the vectorized step ops (simd_ops.inc).
#pragma GCC target("avx2,fma,f16c")
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "cpu/attention.h"

namespace weft {
namespace avx2 {

struct V {
  using T = __m256;
  static constexpr int W = 8;
  static T load(const float* p) {
    return _mm256_loadu_ps(p);
  }
  static void store(float* p, T v) {
    _mm256_storeu_ps(p, v);
  }
  static T loadk(const float* p) {
    return _mm256_loadu_ps(p);
  }
  static T loadk(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static T loadk(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  }
  static void store_f16(uint16_t* p, T v) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // int8 of each lane rounded to nearest (ties to even), clamped to [-127, 127]
  static void store_i8(int8_t* p, T v) {
    __m256i i = _mm256_cvtps_epi32(v);
    i = _mm256_min_epi32(_mm256_max_epi32(i, _mm256_set1_epi32(-127)), _mm256_set1_epi32(127));
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(p), _mm_packs_epi16(w, w));
  }
  static T abs(T a) {
    return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), a);
  }
  static T set1(float f) {
    return _mm256_set1_ps(f);
  }
  static T add(T a, T b) {
    return _mm256_add_ps(a, b);
  }
  static T sub(T a, T b) {
    return _mm256_sub_ps(a, b);
  }
  static T mul(T a, T b) {
    return _mm256_mul_ps(a, b);
  }
  static T div(T a, T b) {
    return _mm256_div_ps(a, b);
  }
  static T min(T a, T b) {
    return _mm256_min_ps(a, b);
  }
  static T max(T a, T b) {
    return _mm256_max_ps(a, b);
  }
  static T fmadd(T a, T b, T c) {
    return _mm256_fmadd_ps(a, b, c);
  }
  static T round(T a) {
    return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  // p * 2^n for integral n in [-127, 127]: add n to the exponent bits
  static T scale2(T p, T n) {
    const __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
  }
  static void reduce4(T a, T b, T c, T d, float* out) {
    const __m256 ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d);
    const __m256 abcd = _mm256_hadd_ps(ab, cd);
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
  }
  static float reduce_max(T a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  static float reduce_add(T a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
};

#include "cpu/simd_ops.inc"

}  // namespace avx2
}  // namespace weft
