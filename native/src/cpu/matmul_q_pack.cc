// Load-time packing of GGML block weights into PackedQ panels (layout in matmul_internal.h), the
// per-block activation quantization, and the per-ISA dispatch of the block kernels.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/matmul.h"
#include "cpu/matmul_internal.h"
#include "half.h"
#include "quant_blocks.h"

namespace weft {

using detail::panels_of;
using detail::q_group_bytes;
using detail::q_high_field;
using detail::q_low_field;
using detail::QField;
using detail::round_up;

void pack_q(int type, const uint8_t* const* rows, int n, int k, PackedQ* out) {
  const BlockFormat& f = *block_format(static_cast<TensorDType>(type));
  const int np = panels_of(n), groups = k / 32, gb = q_group_bytes(f.bits);
  const int supers = k / f.super, subs = k / f.sub;
  out->n = n;
  out->k = k;
  out->bits = f.bits;
  out->sub = f.sub;
  out->super = f.super;
  out->has_sub = f.has_sub;
  const TensorDType t = static_cast<TensorDType>(type);
  out->act = f.super == 256 ? BlockAct::q8_k : t == TensorDType::q4_1 || t == TensorDType::q5_1 ? BlockAct::q8_1 : BlockAct::q8_0;
  out->mn_is_sc = t == TensorDType::q6_k || t == TensorDType::q3_k;
  const int sps = out->sm_per_sub();
  out->dm_offset = 0;
  out->sm_offset = out->dm_offset + size_t(supers) * 2 * kPackRows * sizeof(uint16_t);
  out->data_offset = round_up(out->sm_offset + (f.has_sub ? size_t(subs) * sps * kPackRows : 0), 64);
  out->panel_bytes = out->data_offset + size_t(groups) * gb;
  out->mem = AlignedBuffer(size_t(np) * out->panel_bytes);
  std::vector<uint8_t> u(k);
  std::vector<float> D(supers), M(supers);
  std::vector<int8_t> sc(subs), mn(subs);
  for (int r = 0; r < n; ++r) {
    block_row_decode(static_cast<TensorDType>(type), rows[r], k, u.data(), D.data(), M.data(), sc.data(), mn.data());
    const int p = r / kPackRows, lane = r % kPackRows;
    uint8_t* pd = const_cast<uint8_t*>(out->panel(p));
    for (int g = 0; g < groups; ++g) {
      uint8_t* gd = pd + size_t(g) * gb;
      for (int j = 0; j < 32; ++j) {
        const int v = u[g * 32 + j];
        const QField lo = q_low_field(f.bits, lane, j);
        gd[lo.byte] |= uint8_t((v & ((1 << lo.width) - 1)) << lo.shift);
        QField hi;
        if (q_high_field(f.bits, lane, j, &hi)) gd[hi.byte] |= uint8_t(((v >> lo.width) & ((1 << hi.width) - 1)) << hi.shift);
      }
    }
    uint16_t* dm = const_cast<uint16_t*>(out->panel_dm(p)) + lane;
    for (int s = 0; s < supers; ++s) {
      dm[(2 * s) * kPackRows] = f32_to_f16(D[s]);
      dm[(2 * s + 1) * kPackRows] = f32_to_f16(M[s]);
    }
    if (!f.has_sub) continue;
    int8_t* sm = const_cast<int8_t*>(out->panel_sm(p)) + lane;
    for (int s = 0; s < subs; ++s) {
      sm[(sps * s) * kPackRows] = sc[s];
      if (sps == 2) sm[(2 * s + 1) * kPackRows] = mn[s];
    }
  }
}

void unpack_q_row(const PackedQ& w, int r, float* out) {
  const int p = r / kPackRows, lane = r % kPackRows, gb = q_group_bytes(w.bits);
  const uint8_t* pd = w.panel(p);
  const uint16_t* dm = w.panel_dm(p) + lane;
  const int sps = w.sm_per_sub();
  const int8_t* sm = w.has_sub ? w.panel_sm(p) + lane : nullptr;
  for (int i = 0; i < w.k; ++i) {
    const int v = detail::q_group_u(pd + size_t(i / 32) * gb, w.bits, lane, i % 32);
    const int s = i / w.super, q = i / w.sub;
    const float D = f16_to_f32(dm[2 * s * kPackRows]), M = f16_to_f32(dm[(2 * s + 1) * kPackRows]);
    const float sc = sm ? float(sm[sps * q * kPackRows]) : 1.f, mn = sm ? float(sm[(sps * q + sps - 1) * kPackRows]) : 1.f;
    out[i] = D * sc * float(v) + M * mn;
  }
}

void QuantBlocks::reserve(int m_, int k_) {
  m = m_;
  k = k_;
  const size_t kp = round_up(k_, 32), rows = size_t(std::max(m_, 1));
  if (q.bytes < rows * kp) q = AlignedBuffer(rows * kp);
  if (sx.bytes < rows * kp / 32 * 4) sx = AlignedBuffer(rows * kp / 32 * 4);
  if (fs16.bytes < rows * kp / 16 * 4) fs16 = AlignedBuffer(rows * kp / 16 * 4);
  if (fs32.bytes < rows * kp / 32 * 4) fs32 = AlignedBuffer(rows * kp / 32 * 4);
}

namespace {

// One block of 32: int8 = round half to even of x * inv (straight-line on a zero-padded copy, no
// libm call, so the compiler vectorizes it), the given scale and its block sums.
void quantize_group(const float* xr, int k, int g, float inv, float scale, BlockAct fmt, int8_t* q, float* sx, float* fs16, float* fs32) {
  float v[32] = {};
  std::memcpy(v, xr + g * 32, sizeof(float) * std::max(0, std::min(32, k - g * 32)));
  int sum[2] = {0, 0};
  for (int h = 0; h < 2; ++h)
    for (int j = 16 * h; j < 16 * h + 16; ++j) {
      // adding 1.5 * 2^23 leaves the integer in the low mantissa bits (|v * inv| <= 127.x, far below 2^22)
      const int r = std::clamp(int((v[j] * inv + 12582912.f) - 12582912.f), -127, 127);
      q[g * 32 + j] = int8_t(r);
      sum[h] += r;
    }
  sx[g] = scale;
  fs16[2 * g] = scale * float(sum[0]);
  fs16[2 * g + 1] = scale * float(sum[1]);
  fs32[g] = detail::block_act_sum(scale, sum[0] + sum[1], fmt);
}

}  // namespace

namespace detail {
float block_act_sum(float scale, int sum, BlockAct fmt) {
  return fmt == BlockAct::q8_1 ? f16_to_f32(f32_to_f16(scale * float(sum))) : scale * float(sum);
}
}  // namespace detail

void quantize_blocks(const float* x, int k, int t0, int t1, BlockAct fmt, QuantBlocks* out) {
  const int kp = round_up(k, 32), groups = kp / 32, per = detail::block_act_span(fmt) / 32;
  for (int t = t0; t < t1; ++t) {
    const float* xr = x + size_t(t) * k;
    int8_t* q = out->q.as<int8_t>() + size_t(t) * kp;
    float* sx = out->sx.as<float>() + size_t(t) * groups;
    float* fs16 = out->fs16.as<float>() + size_t(t) * 2 * groups;
    float* fs32 = out->fs32.as<float>() + size_t(t) * groups;
    for (int g0 = 0; g0 < groups; g0 += per) {
      const int g1 = std::min(groups, g0 + per);
      float amax = 0.f;
      for (int i = g0 * 32; i < std::min(k, g1 * 32); ++i) amax = std::max(amax, std::fabs(xr[i]));
      const float inv = amax > 0.f ? 127.f / amax : 0.f, scale = detail::block_act_scale(amax, fmt);
      for (int g = g0; g < g1; ++g) quantize_group(xr, k, g, inv, scale, fmt, q, sx, fs16, fs32);
    }
  }
}

void quantize_blocks(Isa isa, const float* x, int k, int t0, int t1, BlockAct fmt, QuantBlocks* out) {
  if (isa == Isa::avx512) return detail::quantize_blocks_avx512(x, k, t0, t1, fmt, out);
  quantize_blocks(x, k, t0, t1, fmt, out);
}

void matmul_q(Isa isa, const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1) {
  if (x.m <= 0 || n1 <= n0) return;
  switch (isa) {
    case Isa::avx512:
      return detail::matmul_q_avx512(x, w, y, ldy, n0, n1);
    case Isa::avx2:
      return detail::matmul_q_avx2(x, w, y, ldy, n0, n1);
    default:
      return detail::matmul_q_scalar(x, w, y, ldy, n0, n1);
  }
}

}  // namespace weft
