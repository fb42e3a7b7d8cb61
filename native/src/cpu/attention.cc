#include "cpu/attention.h"
#include "half.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace weft {

namespace {
// n values as int8 with one scale: absmax / 127, rounded to nearest (ties to even); an all-zero
// row gets scale 0. Returns the scale.
float quantize_row_i8(const float* x, int n, int8_t* q, size_t stride) {
  float amax = 0;
  for (int i = 0; i < n; ++i) amax = std::max(amax, std::fabs(x[i]));
  const float inv = amax > 0 ? 127.0f / amax : 0.0f;
  for (int i = 0; i < n; ++i) q[i * stride] = int8_t(std::clamp(std::nearbyint(x[i] * inv), -127.0f, 127.0f));
  return amax / 127.0f;
}
}  // namespace

void kv_write_ref(const PagedKv& kv, int slot, const float* k, const float* v) {
  const int hd = kv.head_dim;
  for (int g = 0; g < kv.num_kv_heads; ++g) {
    const size_t o = kv_offset(kv, slot, g);
    if (kv.i8) {
      const size_t k_step = kv.k_by_dim ? kv.block_size : 1;
      const int kg = kv_k_group(hd);
      for (int d0 = 0; d0 < hd; d0 += kg)
        kv.k_scale[kv_k_scale_index(kv, slot, g, d0 / kg)] =
            quantize_row_i8(k + g * hd + d0, kg, static_cast<int8_t*>(kv.k) + kv_k_index(kv, slot, g, d0), k_step);
      kv.v_scale[kv_v_scale_index(kv, slot, g)] = quantize_row_i8(v + g * hd, hd, static_cast<int8_t*>(kv.v) + o, 1);
      continue;
    }
    for (int i = 0; i < hd; ++i) {
      const size_t ki = kv_k_index(kv, slot, g, i);
      if (kv.f16) static_cast<uint16_t*>(kv.k)[ki] = f32_to_f16(k[g * hd + i]), static_cast<uint16_t*>(kv.v)[o + i] = f32_to_f16(v[g * hd + i]);
      else static_cast<float*>(kv.k)[ki] = k[g * hd + i], static_cast<float*>(kv.v)[o + i] = v[g * hd + i];
    }
  }
}

namespace {
// Element `index` of a cache part (k or v) as a float; `scale`: the int8 scale that covers it.
inline float kv_at(const PagedKv& kv, const void* base, size_t index, float scale) {
  if (kv.i8) return static_cast<const int8_t*>(base)[index] * scale;
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
      const int slot = block_table[p / kv.block_size] * kv.block_size + p % kv.block_size;
      float dot = 0;
      for (int i = 0; i < hd; ++i) {
        const float ks = kv.i8 ? kv.k_scale[kv_k_scale_index(kv, slot, kv_head, i / kv_k_group(hd))] : 1.0f;
        dot += qh[i] * kv_at(kv, kv.k, kv_k_index(kv, slot, kv_head, i), ks);
      }
      scores[p] = dot * scale;
      if (scores[p] > max_score) max_score = scores[p];
    }
    float sum = 0;
    for (int p = 0; p < ctx_len; ++p) sum += (scores[p] = std::exp(scores[p] - max_score));
    const float inv = 1.0f / sum;
    float* oh = out + h * hd;
    for (int i = 0; i < hd; ++i) oh[i] = 0;
    for (int p = 0; p < ctx_len; ++p) {
      const int slot = block_table[p / kv.block_size] * kv.block_size + p % kv.block_size;
      const size_t base = kv_offset(kv, slot, kv_head);
      const float vs = kv.i8 ? kv.v_scale[kv_v_scale_index(kv, slot, kv_head)] : 1.0f;
      const float w = scores[p] * inv;
      for (int i = 0; i < hd; ++i) oh[i] += w * kv_at(kv, kv.v, base + i, vs);
    }
  }
}

void attention_tile_ref(const PagedKv& kv, const AttentionTile& t, int heads_per_group, float scale) {
  thread_local std::vector<float> scores;
  if (scores.size() < size_t(t.pos0 + t.nq)) scores.resize(t.pos0 + t.nq);
  for (int i = 0; i < t.nq; ++i)
    attention_token_group_ref(kv, t.block_table, t.pos0 + i + 1, t.kv_head, t.q + i * t.q_stride, heads_per_group, scale, scores.data(),
                              t.out + i * t.out_stride);
}

}  // namespace weft
