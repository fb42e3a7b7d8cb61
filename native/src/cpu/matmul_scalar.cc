// Portable reference kernels on the packed layouts (see matmul_internal.h). They define the
// arithmetic the vector kernels reproduce: the same int32 dot products and the same float
// operations for the final scaling, so int8 results agree bit for bit in practice.
#include <algorithm>
#include <cmath>

#include "cpu/matmul_internal.h"

namespace weft {
namespace detail {

void matmul_f32_scalar(const float* x, int m, const PackedF32& w, float* y, int ldy, int n0, int n1) {
  const int k = w.k;
  for (int r = n0; r < n1; ++r) {
    const float* wp = w.data.as<float>() + size_t(r / kPackRows) * k * kPackRows + r % kPackRows;
    for (int t = 0; t < m; ++t) {
      const float* xr = x + size_t(t) * k;
      float s = 0.0f;
      for (int c = 0; c < k; ++c) s += xr[c] * wp[size_t(c) * kPackRows];
      y[size_t(t) * ldy + r] = s;
    }
  }
}

void quantize_act_scalar(const float* x, int k, int t0, int t1, QuantAct* out) {
  const int m = out->m, kp = i8_kpad(k), groups = out->groups(), span = kp / groups;
  uint8_t* d = out->data.as<uint8_t>();
  float* scales = out->scales.as<float>();
  for (int t = t0; t < t1; ++t) {
    const float* xr = x + size_t(t) * k;
    for (int g = 0; g < groups; ++g) {
      const int c0 = g * span, c1 = c0 + span;
      float amax = 0.0f;
      for (int c = c0; c < std::min(c1, k); ++c) amax = std::max(amax, std::fabs(xr[c]));
      const float scale = amax / 127.0f, inv = scale > 0.0f ? 1.0f / scale : 0.0f;
      scales[size_t(t) * groups + g] = scale;
      for (int c = c0; c < c1; ++c) {
        // nearbyint: round half to even, like cvtps2dq in the vector versions.
        const int q = c < k ? std::clamp(int(std::nearbyint(xr[c] * inv)), -127, 127) : 0;
        d[size_t(c / kQuad) * kQuad * m + size_t(t) * kQuad + c % kQuad] = uint8_t(q + 128);
      }
    }
  }
}

void matmul_i8_scalar(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1) {
  const int m = x.m, kp = i8_kpad(w.k), kq = kp / kQuad;
  const int groups = w.group == 0 ? 1 : kp / kQ8Group, glen = w.group == 0 ? kp : kQ8Group;
  const uint8_t* xd = x.data.as<uint8_t>();
  for (int r = n0; r < n1; ++r) {
    const int p = r / kPackRows, lane = r % kPackRows;
    const int8_t* wp = w.data.as<int8_t>() + size_t(p) * kq * 64 + lane * kQuad;
    const float* ws = w.scales.as<float>() + size_t(p) * groups * kPackRows + lane;
    for (int t = 0; t < m; ++t) {
      const float* xs = x.scales.as<float>() + size_t(t) * groups;  // one per group of the weights
      float acc = 0.0f;
      for (int g = 0; g < groups; ++g) {
        int32_t dot = 0;
        for (int c = g * glen; c < (g + 1) * glen; ++c)
          dot += (int(xd[size_t(c / kQuad) * kQuad * m + size_t(t) * kQuad + c % kQuad]) - 128) * wp[size_t(c / kQuad) * 64 + c % kQuad];
        if (w.group == 0) acc = float(dot) * (ws[0] * xs[0]);
        else acc = std::fma(float(dot), ws[size_t(g) * kPackRows] * xs[g], acc);
      }
      y[size_t(t) * ldy + r] = acc;
    }
  }
}

}  // namespace detail
}  // namespace weft
