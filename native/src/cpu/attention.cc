#include "cpu/attention.h"

#include <cmath>
#include <cstring>

namespace weft {

void kv_write_f32(const PagedKv& kv, int slot, const float* k, const float* v) {
  const size_t row = size_t(kv.num_kv_heads) * kv.head_dim;
  std::memcpy(kv.k + size_t(slot) * row, k, row * sizeof(float));
  std::memcpy(kv.v + size_t(slot) * row, v, row * sizeof(float));
}

void attention_token_group_f32(const PagedKv& kv, const int32_t* block_table, int ctx_len, int kv_head,
                               const float* q, int heads_per_group, float scale, float* scores, float* out) {
  const int hd = kv.head_dim, bs = kv.block_size;
  const size_t row = size_t(kv.num_kv_heads) * hd;
  for (int h = 0; h < heads_per_group; ++h) {
    const float* qh = q + h * hd;
    float max_score = -INFINITY;
    for (int p = 0; p < ctx_len; ++p) {
      const float* kp = kv.k + (size_t(block_table[p / bs]) * bs + p % bs) * row + size_t(kv_head) * hd;
      float dot = 0;
      for (int i = 0; i < hd; ++i) dot += qh[i] * kp[i];
      scores[p] = dot * scale;
      if (scores[p] > max_score) max_score = scores[p];
    }
    float sum = 0;
    for (int p = 0; p < ctx_len; ++p) sum += (scores[p] = std::exp(scores[p] - max_score));
    const float inv = 1.0f / sum;
    float* oh = out + h * hd;
    for (int i = 0; i < hd; ++i) oh[i] = 0;
    for (int p = 0; p < ctx_len; ++p) {
      const float* vp = kv.v + (size_t(block_table[p / bs]) * bs + p % bs) * row + size_t(kv_head) * hd;
      const float w = scores[p] * inv;
      for (int i = 0; i < hd; ++i) oh[i] += w * vp[i];
    }
  }
}

}  // namespace weft
