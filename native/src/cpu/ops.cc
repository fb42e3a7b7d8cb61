#include "cpu/ops.h"

#include <cmath>

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
        const double smooth = (c.rope_original_max_positions / wavelen - c.rope_low_freq_factor) /
                              (c.rope_high_freq_factor - c.rope_low_freq_factor);
        f = (1 - smooth) * f / c.rope_factor + smooth * f;
      }
    }
    inv_freq[i] = float(f);
  }
}

void rope_apply_f32(float* x, int num_heads, int head_dim, int pos, const float* inv_freq) {
  const int half = head_dim / 2;
  for (int i = 0; i < half; ++i) {
    const float angle = float(pos) * inv_freq[i];
    const float c = std::cos(angle), s = std::sin(angle);
    for (int h = 0; h < num_heads; ++h) {
      float* v = x + h * head_dim;
      const float a = v[i], b = v[i + half];
      v[i] = a * c - b * s;
      v[i + half] = b * c + a * s;
    }
  }
}

void silu_mul_f32(const float* gate, const float* up, int n, float* out) {
  for (int i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

}  // namespace weft
