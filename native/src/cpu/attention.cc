#include "cpu/attention.h"
#include "half.h"

#include <cmath>
#include <cstring>

namespace weft {

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
  return kv.f16 ? f16_to_f32(static_cast<const uint16_t*>(base)[index]) : static_cast<const float*>(base)[index];
}
}  // namespace

void attention_token_group_ref(const PagedKv& kv, const int32_t* block_table, int ctx_len, int kv_head, const float* q, int heads_per_group,
                               float scale, float* scores, float* out) {
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
