#include "cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace weft {

void rmsnorm_f32(const float* x, const float* w, float eps, int dim, float* out) {
  double ss = 0;
  for (int i = 0; i < dim; ++i) ss += double(x[i]) * x[i];
  const float inv = 1.0f / std::sqrt(float(ss / dim) + eps);
  for (int i = 0; i < dim; ++i) out[i] = x[i] * inv * w[i];
}

void rope_inv_freq(const ModelConfig& c, float* inv_freq) {
  const int half = c.head_dim / 2;
  for (int i = 0; i < half; ++i) {
    double f = 1.0 / std::pow(double(c.rope_theta), double(2 * i) / c.head_dim);
    if (c.rope_scaling == RopeScalingType::linear) {
      f /= c.rope_factor;
    } else if (c.rope_scaling == RopeScalingType::llama3) {
      // Llama 3.1: long wavelengths are scaled by factor, short ones kept, smooth in between.
      const double low_wavelen = c.rope_original_max_positions / c.rope_low_freq_factor;
      const double high_wavelen = c.rope_original_max_positions / c.rope_high_freq_factor;
      const double wavelen = 2 * M_PI / f;
      if (wavelen > low_wavelen) {
        f /= c.rope_factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (c.rope_original_max_positions / wavelen - c.rope_low_freq_factor) / (c.rope_high_freq_factor - c.rope_low_freq_factor);
        f = (1 - smooth) * f / c.rope_factor + smooth * f;
      }
    }
    inv_freq[i] = float(f);
  }
}

void rope_angles(int pos, int head_dim, const float* inv_freq, float* cs) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float angle = float(pos) * inv_freq[i];
    cs[i] = std::cos(angle);
    cs[half + i] = std::sin(angle);
  }
}

void rope_apply_cs(float* x, int num_heads, int head_dim, const float* cs) {
  const int half = head_dim / 2;
  for (int h = 0; h < num_heads; ++h) {
    float* v = x + h * head_dim;
    for (int i = 0; i < half; ++i) {
      const float a = v[i], b = v[i + half], c = cs[i], s = cs[half + i];
      v[i] = a * c - b * s;
      v[i + half] = b * c + a * s;
    }
  }
}

void rope_apply_f32(float* x, int num_heads, int head_dim, int pos, const float* inv_freq) {
  std::vector<float> cs(head_dim);
  rope_angles(pos, head_dim, inv_freq, cs.data());
  rope_apply_cs(x, num_heads, head_dim, cs.data());
}

void silu_mul_f32(const float* gate, const float* up, int n, float* out) {
  for (int i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace weft

// ---- ISA dispatch of the vectorized versions (simd_ops_*.cc) ----
#include "cpu/simd_ops.h"

namespace weft {

void rmsnorm_isa(Isa isa, const float* x, const float* w, float eps, int dim, float* out) {
  if (isa == Isa::avx512) return avx512::rmsnorm(x, w, eps, dim, out);
  if (isa == Isa::avx2) return avx2::rmsnorm(x, w, eps, dim, out);
  rmsnorm_f32(x, w, eps, dim, out);
}

void silu_mul_isa(Isa isa, const float* gate, const float* up, int n, float* out) {
  if (isa == Isa::avx512) return avx512::silu_mul(gate, up, n, out);
  if (isa == Isa::avx2) return avx2::silu_mul(gate, up, n, out);
  silu_mul_f32(gate, up, n, out);
}

void add_inplace_isa(Isa isa, float* x, const float* y, size_t n) {
  if (isa == Isa::avx512) return avx512::add_inplace(x, y, n);
  if (isa == Isa::avx2) return avx2::add_inplace(x, y, n);
  for (size_t i = 0; i < n; ++i) x[i] += y[i];
}

void kv_write_isa(Isa isa, const PagedKv& kv, int slot, const float* k, const float* v) {
  if (isa == Isa::avx512) return avx512::kv_write(kv, slot, k, v);
  if (isa == Isa::avx2) return avx2::kv_write(kv, slot, k, v);
  kv_write_ref(kv, slot, k, v);
}

float log_sum_exp_isa(Isa isa, const float* x, int n) {
  float mx = -INFINITY;
  double sum = 0;
  if (isa == Isa::avx512) {
    mx = avx512::max_of(x, n);
    sum = avx512::sum_exp(x, n, mx);
  } else if (isa == Isa::avx2) {
    mx = avx2::max_of(x, n);
    sum = avx2::sum_exp(x, n, mx);
  } else {
    for (int i = 0; i < n; ++i) mx = std::max(mx, x[i]);
    for (int i = 0; i < n; ++i) sum += std::exp(double(x[i] - mx));
  }
  return mx + float(std::log(sum));
}

void attention_tile_isa(Isa isa, const PagedKv& kv, const AttentionTile& t, int heads_per_group, float scale, float* scratch) {
  // wide paths need whole vectors per head and at most 16 of them (the accumulator array)
  if (kv.k_by_dim && isa == Isa::avx512 && kv.head_dim % 16 == 0 && kv.head_dim <= 256)
    return avx512::attention_tile(kv, t, heads_per_group, scale, scratch);
  if (kv.k_by_dim && isa != Isa::scalar && kv.head_dim % 8 == 0 && kv.head_dim <= 128)
    return avx2::attention_tile(kv, t, heads_per_group, scale, scratch);
  attention_tile_ref(kv, t, heads_per_group, scale);
}

}  // namespace weft
