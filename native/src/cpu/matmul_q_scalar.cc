// Portable reference kernel for PackedQ weights: the arithmetic (matmul_internal.h) that the
// vector kernels reproduce bit for bit.
#include <cmath>

#include "cpu/matmul_internal.h"
#include "half.h"

namespace weft {
namespace detail {

namespace {

// u of row `lane` at k-offset j (0..31) of a group.
int group_u(const uint8_t* gd, int bits, int lane, int j) {
  const int c = j / 8, b = j % 4, hi = (j / 4) % 2, bit = 4 * lane + b;
  int v = (gd[64 * c + 4 * lane + b] >> (4 * hi)) & 15;
  for (int pl = 0; pl < bits - 4; ++pl) v |= ((gd[256 + 64 * pl + 8 * (j / 4) + bit / 8] >> (bit % 8)) & 1) << (4 + pl);
  return v;
}

}  // namespace

void matmul_q_scalar(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1) {
  const int groups = w.k / 32, gb = q_group_bytes(w.bits), kp = w.k, subs_per_group = 32 / w.sub;
  for (int r = n0; r < n1; ++r) {
    const int p = r / kPackRows, lane = r % kPackRows;
    const uint8_t* pd = w.data.as<uint8_t>() + size_t(p) * groups * gb;
    const uint16_t* dm = w.dm.as<uint16_t>() + size_t(p) * (w.k / w.super) * 2 * kPackRows + lane;
    const int8_t* sm = w.has_sub ? w.sm.as<int8_t>() + size_t(p) * (w.k / w.sub) * 2 * kPackRows + lane : nullptr;
    for (int t = 0; t < x.m; ++t) {
      const int8_t* xq = x.q.as<int8_t>() + size_t(t) * kp;
      const float* sx = x.sx.as<float>() + size_t(t) * (kp / 32);
      const float* fs = w.sub == 16 ? x.fs16.as<float>() + size_t(t) * (kp / 16) : x.fs32.as<float>() + size_t(t) * (kp / 32);
      float acc = 0.f;
      for (int g = 0; g < groups; ++g) {
        const int sb = g * 32 / w.super;
        const float D = f16_to_f32(dm[2 * sb * kPackRows]), M = f16_to_f32(dm[(2 * sb + 1) * kPackRows]);
        for (int h = 0; h < subs_per_group; ++h) {
          const int s = g * subs_per_group + h;
          const float a = sm ? D * float(sm[2 * s * kPackRows]) : D, b = sm ? M * float(sm[(2 * s + 1) * kPackRows]) : M;
          int32_t dot = 0;
          for (int j = h * w.sub; j < (h + 1) * w.sub; ++j) dot += group_u(pd + size_t(g) * gb, w.bits, lane, j) * xq[g * 32 + j];
          acc = std::fma(a, float(dot) * sx[g], acc);
          acc = std::fma(b, fs[s], acc);
        }
      }
      y[size_t(t) * ldy + r] = acc;
    }
  }
}

}  // namespace detail
}  // namespace weft
