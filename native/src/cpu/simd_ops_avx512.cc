// AVX-512 instances of the vectorized step ops (simd_ops.inc).
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "cpu/attention.h"

namespace weft {
namespace avx512 {

struct V {
  using T = __m512;
  static constexpr int W = 16;
  static T load(const float* p) {
    return _mm512_loadu_ps(p);
  }
  static void store(float* p, T v) {
    _mm512_storeu_ps(p, v);
  }
  static T loadk(const float* p) {
    return _mm512_loadu_ps(p);
  }
  static T loadk(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
  static T loadk(const int8_t* p) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  }
  static void store_f16(uint16_t* p, T v) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  }
  // int8 of each lane rounded to nearest (ties to even), clamped to [-127, 127]
  static void store_i8(int8_t* p, T v) {
    __m512i i = _mm512_cvtps_epi32(v);
    i = _mm512_min_epi32(_mm512_max_epi32(i, _mm512_set1_epi32(-127)), _mm512_set1_epi32(127));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm512_cvtepi32_epi8(i));
  }
  static T abs(T a) {
    return _mm512_abs_ps(a);
  }
  static T set1(float f) {
    return _mm512_set1_ps(f);
  }
  static T add(T a, T b) {
    return _mm512_add_ps(a, b);
  }
  static T sub(T a, T b) {
    return _mm512_sub_ps(a, b);
  }
  static T mul(T a, T b) {
    return _mm512_mul_ps(a, b);
  }
  static T div(T a, T b) {
    return _mm512_div_ps(a, b);
  }
  static T min(T a, T b) {
    return _mm512_min_ps(a, b);
  }
  static T max(T a, T b) {
    return _mm512_max_ps(a, b);
  }
  static T fmadd(T a, T b, T c) {
    return _mm512_fmadd_ps(a, b, c);
  }
  static T round(T a) {
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  }
  static T scale2(T p, T n) {
    return _mm512_scalef_ps(p, n);
  }
  static float reduce_max(T a) {
    return _mm512_reduce_max_ps(a);
  }
  static float reduce_add(T a) {
    return _mm512_reduce_add_ps(a);
  }
  // The four horizontal sums of a..d.
  static void reduce4(T a, T b, T c, T d, float* out) {
    const __m256 a8 = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    const __m256 b8 = _mm256_add_ps(_mm512_castps512_ps256(b), _mm512_extractf32x8_ps(b, 1));
    const __m256 c8 = _mm256_add_ps(_mm512_castps512_ps256(c), _mm512_extractf32x8_ps(c, 1));
    const __m256 d8 = _mm256_add_ps(_mm512_castps512_ps256(d), _mm512_extractf32x8_ps(d, 1));
    const __m256 ab = _mm256_hadd_ps(a8, b8), cd = _mm256_hadd_ps(c8, d8);
    const __m256 abcd = _mm256_hadd_ps(ab, cd);
    _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(abcd), _mm256_extractf128_ps(abcd, 1)));
  }
};

#include "cpu/simd_ops.inc"

}  // namespace avx512
}  // namespace weft
