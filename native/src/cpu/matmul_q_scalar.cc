// Portable reference kernel for PackedQ weights: the arithmetic (matmul_internal.h) that the
// vector kernels reproduce bit for bit.
#include <cmath>

#include "cpu/matmul_internal.h"
#include "half.h"

namespace weft {
namespace detail {

void matmul_q_scalar(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1) {
  const int gb = q_group_bytes(w.bits), kp = w.k, subs_per_group = 32 / w.sub;
  const int groups_per_super = w.super / 32;
  for (int r = n0; r < n1; ++r) {
    const int p = r / kPackRows, lane = r % kPackRows;
    const uint8_t* pd = w.panel(p);
    const uint16_t* dm = w.panel_dm(p) + lane;
    const int sps = w.sm_per_sub();
    const int8_t* sm = w.has_sub ? w.panel_sm(p) + lane : nullptr;
    for (int t = 0; t < x.m; ++t) {
      const int8_t* xq = x.q.as<int8_t>() + size_t(t) * kp;
      const float* sx = x.sx.as<float>() + size_t(t) * (kp / 32);
      const float* fs = w.sub == 16 ? x.fs16.as<float>() + size_t(t) * (kp / 16) : x.fs32.as<float>() + size_t(t) * (kp / 32);
      float acc = 0.f;
      for (int sb = 0; sb < w.k / w.super; ++sb) {
        // As llama.cpp: the scaled integer dot of a whole super-block, then one float product with
        // the activation scale, which x's format (w.act) keeps constant over a super-block.
        int32_t isum = 0;  // |isum| < 2^29 for every type
        float ms = 0.f;
        for (int g = sb * groups_per_super; g < (sb + 1) * groups_per_super; ++g)
          for (int h = 0; h < subs_per_group; ++h) {
            const int s = g * subs_per_group + h;
            int32_t dot = 0;
            for (int j = h * w.sub; j < (h + 1) * w.sub; ++j) dot += q_group_u(pd + size_t(g) * gb, w.bits, lane, j) * xq[g * 32 + j];
            const int32_t sc = sm ? sm[sps * s * kPackRows] : 1, mn = sm ? sm[(sps * s + sps - 1) * kPackRows] : 1;
            isum += dot * sc;
            ms = std::fma(float(mn), fs[s], ms);
          }
        const float ys = float(isum) * sx[sb * groups_per_super];
        acc = std::fma(f16_to_f32(dm[2 * sb * kPackRows]), ys, acc);
        acc = std::fma(f16_to_f32(dm[(2 * sb + 1) * kPackRows]), ms, acc);
      }
      y[size_t(t) * ldy + r] = acc;
    }
  }
}

}  // namespace detail
}  // namespace weft
