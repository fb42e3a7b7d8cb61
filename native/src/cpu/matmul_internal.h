// Private declarations shared by the matmul kernel files (matmul_*.cc). Not part of the
// engine API: see matmul.h for the contract.
//
// Packed layouts (identical for every ISA, so one packed weight serves them all):
//
//  PackedF32.data   float, panel p (rows 16p..16p+15) is contiguous: [p][k][16].
//                   Rows past n are zero.
//  PackedI8.data    int8, k padded to kp = i8_kpad(k) (zeros), panel p contiguous:
//                   [p][kp/4][16 rows][4 consecutive k]  (one 64-byte zmm per k-quad).
//  PackedI8.scales  float. group 0: [npad] (one per row); group 32: [p][kp/32][16].
//  PackedI8.row_sums int32, same shape as scales: -128 * sum of the row's (group's) int8
//                   values. The VNNI kernels add it to their accumulators so that
//                   sum (x+128)*w + row_sum == sum x*w exactly. (The non-VNNI AVX2 path works
//                   on signed x and needs none; the AVX-512 group GEMV recomputes it.)
//  QuantAct.data    uint8 x+128, k-quad major: the 4 bytes of token t, k-quad j are at
//                   byte 4*(j*m + t), so a token tile's broadcasts are contiguous. Padded
//                   k-quads hold 128 (x = 0).
//  QuantAct.scales  float [m]: absmax/127 of each token (0 for an all-zero token); for group-32
//                   weights [m][kp/32], of each 32 values of a token (QuantAct::group).
//
//  PackedQ.mem      panel p is one span of panel_bytes: its dm at dm_offset, its sm at sm_offset,
//                   its groups (data below) at data_offset (one sequential stream per panel).
//  PackedQ data     panel p: [k/32 groups][group bytes = 64 * bits]. bits 4-6:
//                   4 nibble chunks of 64 bytes, then (bits - 4) planes of 64 bytes.
//                   Nibble chunk c (k 8c..8c+7 of the group), byte 4*lane + b: low nibble
//                   u[k = 8c + b], high nibble u[k = 8c + 4 + b] (lane = row in the panel).
//                   So chunk c's low nibbles are k-quad 2c and its high nibbles k-quad 2c+1, in
//                   the same [16 rows][4 k] shape as an int8 panel's zmm. bits 5: one plane of
//                   8 little-endian uint64 masks, mask q = k-quad q, bit 4*lane + b = bit 4 of
//                   u[k = 4q + b]. bits 6: two 64-byte chunks of 2-bit fields, chunk h, byte
//                   4*lane + b, bits 2j..2j+1 = bits 4..5 of u[k = 4(4h + j) + b] (shifted into
//                   place per k-quad: no mask registers, one shift and one merge per quad).
//                   bits 2 (Q2_K) and 3 (Q3_K): two 64-byte chunks of 2-bit fields, chunk h, byte
//                   4*lane + b, bits 2j..2j+1 = bits 0..1 of u[k = 4(4h + j) + b]; bits 3 adds
//                   one plane of 8 uint64 masks as bits 5 does, each bit being bit 2 of u.
//  PackedQ dm       fp16, panel p: [k/super][2][16]: D of the 16 rows, then M.
//  PackedQ sm       int8, panel p: [k/sub][sm_per_sub()][16]: sc of the 16 rows, then mn (has_sub
//                   only; Q6_K and Q3_K store sc alone: their mn equals sc, M being -32 D, -4 D).
//  Every kernel computes, per row and token, in this order: for each super-block, from zero,
//    for each sub-block s:  isum += dot_s * sc_s                  (int32, |isum| < 2^29)
//                           ms = fma(float(mn_s), fs_s, ms)       (fs16 / fs32)
//    then ys = float(isum) * sx (the super-block's first group: x is in w.act's format, which
//    keeps sx constant over a super-block), y = fma(D, ys, y), y = fma(M, ms, y)
//    (sc = mn = 1 without has_sub).
//  which keeps the sub-scale work to integer and one fma per sub-block and the fp16 D, M to one
//  fma each per super-block,
//  so every ISA's result is the scalar kernel's, bit for bit.
#pragma once
#include <xmmintrin.h>  // _mm_prefetch (baseline x86-64)

#include <cstdint>

#include "cpu/matmul.h"

namespace weft {
namespace detail {

constexpr int kQuad = 4;  // k values per int32 lane of a packed int8 panel

inline int round_up(int a, int b) {
  return (a + b - 1) / b * b;
}
inline int i8_kpad(int k) {
  return round_up(k, kQ8Group);
}
inline int panels_of(int n) {
  return (n + kPackRows - 1) / kPackRows;
}

// Software prefetch of the next panel group, shared by the vector kernels. Weights stream
// from DRAM (a model is far larger than the LLC), and the first token tile of a panel group
// would need ~16 B/cycle, more than one core's DRAM bandwidth. So the tiles of a group
// prefetch the next group's lines, spread evenly over the whole group's run time: tile `tile`
// of `tiles` takes lines [tile, tile + 1) * total / tiles, over its `iters` iterations (calls
// of step()). For group-32 int8 weights, 8 data lines (one group of one panel) go with one
// line of scales and one of row sums, so every 8th data line also prefetches those.
struct Prefetch {
  const char* data = nullptr;
  const char* scales = nullptr;  // optional (grouped int8 only)
  const char* sums = nullptr;  // optional, with scales
  unsigned line = 0;  // next data line to prefetch
  int err = 0, num = 0, den = 1;  // Bresenham: num lines over den calls of step()

  Prefetch() = default;
  Prefetch(const void* d, const void* sc, const void* su, int total, int tile, int tiles, int iters)
      : data(static_cast<const char*>(d)), scales(static_cast<const char*>(sc)), sums(static_cast<const char*>(su)) {
    line = unsigned(int64_t(total) * tile / tiles);
    num = int(int64_t(total) * (tile + 1) / tiles) - int(line);
    den = iters > 0 ? iters : 1;
  }
  // Called exactly `iters` times; prefetches exactly `num` lines in all.
  inline void step() {
    for (err += num; err >= den; err -= den, ++line) {
      _mm_prefetch(data + size_t(line) * 64, _MM_HINT_T0);
      if (scales && (line & 7) == 0) {
        _mm_prefetch(scales + size_t(line >> 3) * 64, _MM_HINT_T0);
        if (sums) _mm_prefetch(sums + size_t(line >> 3) * 64, _MM_HINT_T0);
      }
    }
  }
};

// The same for PackedQ weights, whose panels are each one contiguous span (matmul.h): while a
// panel's first tile runs, the next panel's lines are prefetched, a few per group of 32 k.
struct PanelPrefetch {
  const char* next = nullptr;  // nullptr: nothing to prefetch
  int lines = 0, per_group = 0;

  PanelPrefetch() = default;
  PanelPrefetch(const PackedQ& w, int next_panel) : next(reinterpret_cast<const char*>(w.panel_base(next_panel))) {
    lines = int(w.panel_bytes / 64);
    per_group = (lines + w.k / 32 - 1) / (w.k / 32);
  }
  inline void group(int g) const {
    if (!next) return;
    const int l1 = (g + 1) * per_group < lines ? (g + 1) * per_group : lines;
    for (int l = g * per_group; l < l1; ++l) _mm_prefetch(next + size_t(l) * 64, _MM_HINT_T0);
  }
};

// Kernels. Each computes y[i][n0..n1) for all m rows; n0 a multiple of kPackRows.
void matmul_f32_scalar(const float* x, int m, const PackedF32& w, float* y, int ldy, int n0, int n1);
void matmul_f32_avx2(const float* x, int m, const PackedF32& w, float* y, int ldy, int n0, int n1);
void matmul_f32_avx512(const float* x, int m, const PackedF32& w, float* y, int ldy, int n0, int n1);

// Activation quantization of rows [t0, t1); `out` is already reserved for (m, k). All ISAs produce
// identical bytes and scales (round-half-even via the default rounding mode, same float ops).
void quantize_act_scalar(const float* x, int k, int t0, int t1, QuantAct* out);
void quantize_act_avx2(const float* x, int k, int t0, int t1, QuantAct* out);
void quantize_act_avx512(const float* x, int k, int t0, int t1, QuantAct* out);

void matmul_i8_scalar(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1);
void matmul_i8_avx2(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1);
void matmul_i8_avx512(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1);
// matmul_i8_avx2 uses the AVX-VNNI variant when the CPU has it; both exposed for the tests.
bool avx_vnni_supported();
void matmul_i8_avx2_plain(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1);
void matmul_i8_avx2_vnni(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1);

inline int q_group_bytes(int bits) {
  return 64 * bits;  // 16 rows x 32 k x bits / 8
}
// Where a PackedQ group keeps the bits of u for row `lane`, k-offset j (0..31), as the layout above
// says: the low field (two bits for bits <= 3, a nibble otherwise) and, for bits 3, 5 and 6, one
// more field holding u's next bits (a mask bit, or Q6's 2-bit field). The packing writes through
// it and the portable code reads through it, so the two cannot disagree.
struct QField {
  int byte, shift, width;
};
inline QField q_low_field(int bits, int lane, int j) {
  const int q = j / 4, b = j % 4;
  if (bits <= 3) return {64 * (q / 4) + 4 * lane + b, 2 * (q % 4), 2};
  return {64 * (j / 8) + 4 * lane + b, 4 * (q % 2), 4};
}
inline bool q_high_field(int bits, int lane, int j, QField* f) {
  const int q = j / 4, b = j % 4, bit = 4 * lane + b, planes = bits <= 3 ? 128 : 256;
  if (bits == 3 || bits == 5) *f = {planes + 8 * q + bit / 8, bit % 8, 1};  // uint64 mask of k-quad q
  else if (bits == 6) *f = {planes + 64 * (q / 4) + 4 * lane + b, 2 * (q % 4), 2};
  else return false;
  return true;
}
// u of row `lane` at k-offset j (0..31) of a PackedQ group (portable code: packing tests, scalar kernel).
inline int q_group_u(const uint8_t* gd, int bits, int lane, int j) {
  const QField lo = q_low_field(bits, lane, j);
  int v = (gd[lo.byte] >> lo.shift) & ((1 << lo.width) - 1);
  QField hi;
  if (q_high_field(bits, lane, j, &hi)) v |= ((gd[hi.byte] >> hi.shift) & ((1 << hi.width) - 1)) << lo.width;
  return v;
}
void quantize_blocks_avx512(const float* x, int k, int t0, int t1, BlockAct fmt, QuantBlocks* out);
// BlockAct's rules, shared by every ISA's quantize_blocks: values per absmax, the scale of an
// absmax (0 for an all-zero span), and a block sum as the min term takes it.
inline int block_act_span(BlockAct fmt) {
  return fmt == BlockAct::q8_k ? 256 : 32;
}
inline float block_act_scale(float amax, BlockAct fmt) {
  if (!(amax > 0.f)) return 0.f;
  return fmt == BlockAct::q8_k ? 1.f / (127.f / amax) : amax / 127.f;
}
float block_act_sum(float scale, int sum, BlockAct fmt);
void matmul_q_scalar(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1);
void matmul_q_avx2(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1);
void matmul_q_avx512(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1);
// matmul_q_avx2 uses the AVX-VNNI variant when the CPU has it; both exposed for the tests.
void matmul_q_avx2_plain(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1);
void matmul_q_avx2_vnni(const QuantBlocks& x, const PackedQ& w, float* y, int ldy, int n0, int n1);

}  // namespace detail
}  // namespace weft
