#include "cpu/attention.h"

#include <cmath>
#include <cstring>

namespace weft {

uint16_t f32_to_f16(float f) {  // round to nearest even, with overflow to inf and subnormals
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u;
  x &= 0x7fffffffu;
  if (x >= 0x7f800000u) return uint16_t(sign | 0x7c00u | (x > 0x7f800000u ? 0x200u : 0));
  if (x >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // rounds beyond 65504
  if (x < 0x38800000u) {  // subnormal half (or zero)
    if (x < 0x33000000u) return uint16_t(sign);
    const uint32_t mant = (x & 0x7fffffu) | 0x800000u;
    const int shift = 113 - int(x >> 23) + 13;
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return uint16_t(sign | h);
  }
  uint32_t h = ((x - 0x38000000u) >> 13);
  const uint32_t rem = x & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
  return uint16_t(sign | h);
}

float f16_to_f32_value(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ffu, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {
      exp = 127 - 15 + 1;
      while (!(mant & 0x400u)) { mant <<= 1; --exp; }
      bits = sign | (exp << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void kv_write_ref(const PagedKv& kv, int slot, const float* k, const float* v) {
  const int hd = kv.head_dim;
  for (int g = 0; g < kv.num_kv_heads; ++g) {
    const size_t o = kv_offset(kv, slot, g);
    if (!kv.f16) {
      std::memcpy(static_cast<float*>(kv.k) + o, k + g * hd, hd * sizeof(float));
      std::memcpy(static_cast<float*>(kv.v) + o, v + g * hd, hd * sizeof(float));
      continue;
    }
    uint16_t* kd = static_cast<uint16_t*>(kv.k) + o;
    uint16_t* vd = static_cast<uint16_t*>(kv.v) + o;
    for (int i = 0; i < hd; ++i) kd[i] = f32_to_f16(k[g * hd + i]), vd[i] = f32_to_f16(v[g * hd + i]);
  }
}

namespace {
inline float kv_at(const PagedKv& kv, const void* base, size_t index) {
  return kv.f16 ? f16_to_f32_value(static_cast<const uint16_t*>(base)[index]) : static_cast<const float*>(base)[index];
}
}  // namespace

void attention_token_group_ref(const PagedKv& kv, const int32_t* block_table, int ctx_len, int kv_head,
                               const float* q, int heads_per_group, float scale, float* scores, float* out) {
  const int hd = kv.head_dim;
  for (int h = 0; h < heads_per_group; ++h) {
    const float* qh = q + h * hd;
    float max_score = -INFINITY;
    for (int p = 0; p < ctx_len; ++p) {
      const size_t base = kv_pos_offset(kv, block_table, p, kv_head);
      float dot = 0;
      for (int i = 0; i < hd; ++i) dot += qh[i] * kv_at(kv, kv.k, base + i);
      scores[p] = dot * scale;
      if (scores[p] > max_score) max_score = scores[p];
    }
    float sum = 0;
    for (int p = 0; p < ctx_len; ++p) sum += (scores[p] = std::exp(scores[p] - max_score));
    const float inv = 1.0f / sum;
    float* oh = out + h * hd;
    for (int i = 0; i < hd; ++i) oh[i] = 0;
    for (int p = 0; p < ctx_len; ++p) {
      const size_t base = kv_pos_offset(kv, block_table, p, kv_head);
      const float w = scores[p] * inv;
      for (int i = 0; i < hd; ++i) oh[i] += w * kv_at(kv, kv.v, base + i);
    }
  }
}

}  // namespace weft
