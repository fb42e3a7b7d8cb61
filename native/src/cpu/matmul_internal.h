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
//                   values. The VNNI kernels start each accumulator at this value so that
//                   sum (x+128)*w + row_sum == sum x*w exactly.
//  QuantAct.data    uint8 x+128, k-quad major: the 4 bytes of token t, k-quad j are at
//                   byte 4*(j*m + t), so a token tile's broadcasts are contiguous. Padded
//                   k-quads hold 128 (x = 0).
//  QuantAct.scales  float [m]: absmax/127 of each token (0 for an all-zero token).
#pragma once
#include <cstdint>

#include "cpu/matmul.h"

namespace weft {
namespace detail {

constexpr int kQuad = 4;  // k values per int32 lane of a packed int8 panel

inline int round_up(int a, int b) { return (a + b - 1) / b * b; }
inline int i8_kpad(int k) { return round_up(k, kQ8Group); }
inline int panels_of(int n) { return (n + kPackRows - 1) / kPackRows; }

// Kernels. Each computes y[i][n0..n1) for all m rows; n0 a multiple of kPackRows.
void matmul_f32_scalar(const float* x, int m, const PackedF32& w, float* y, int ldy, int n0, int n1);
void matmul_f32_avx2(const float* x, int m, const PackedF32& w, float* y, int ldy, int n0, int n1);
void matmul_f32_avx512(const float* x, int m, const PackedF32& w, float* y, int ldy, int n0, int n1);

// Activation quantization; `out` is already reserved for (m, k). All ISAs produce identical
// bytes and scales (round-half-even via the default rounding mode, same float ops).
void quantize_act_scalar(const float* x, int m, int k, QuantAct* out);
void quantize_act_avx2(const float* x, int m, int k, QuantAct* out);
void quantize_act_avx512(const float* x, int m, int k, QuantAct* out);

void matmul_i8_scalar(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1);
void matmul_i8_avx2(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1);
void matmul_i8_avx512(const QuantAct& x, const PackedI8& w, float* y, int ldy, int n0, int n1);

}  // namespace detail
}  // namespace weft
