// Decoding of the GGML block formats into the common form of quant_blocks.h. The layouts are
// those of ggml's reference dequantizers; each decoder below states its block.
#include "quant_blocks.h"

#include <cstring>

#include "half.h"

namespace weft {
namespace {

constexpr BlockFormat kQ4_0{32, 18, 4, 32, 32, false};
constexpr BlockFormat kQ4_1{32, 20, 4, 32, 32, false};
constexpr BlockFormat kQ5_0{32, 22, 5, 32, 32, false};
constexpr BlockFormat kQ5_1{32, 24, 5, 32, 32, false};
constexpr BlockFormat kQ4_K{256, 144, 4, 32, 256, true};
constexpr BlockFormat kQ5_K{256, 176, 5, 32, 256, true};
constexpr BlockFormat kQ6_K{256, 210, 6, 16, 256, true};
constexpr BlockFormat kQ2_K{256, 84, 2, 16, 256, true};
constexpr BlockFormat kQ3_K{256, 110, 3, 16, 256, true};

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

// Legacy 32-blocks: [d f16][m f16 if has_min][qh u32 if 5-bit][16 bytes of nibbles]; value j
// takes the low nibble of byte j (j < 16) or the high nibble of byte j - 16, plus bit j of qh as
// its fifth bit. Without a stored min the values are centred: w = d * (u - 2^(bits-1)).
void decode_legacy(const uint8_t* b, bool has_min, bool five, uint8_t* u, float* D, float* M) {
  const float d = half_at(b);
  *D = d;
  *M = has_min ? half_at(b + 2) : -d * (five ? 16.f : 8.f);
  const uint8_t* p = b + (has_min ? 4 : 2);
  uint32_t qh = 0;
  if (five) {
    std::memcpy(&qh, p, 4);
    p += 4;
  }
  for (int j = 0; j < 16; ++j) {
    u[j] = uint8_t((p[j] & 15) | (((qh >> j) & 1) << 4));
    u[j + 16] = uint8_t((p[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
  }
}

// The 6-bit scale and min of sub-block j of a Q4_K/Q5_K block, packed in 12 bytes.
void scale_min_k4(int j, const uint8_t* q, int8_t* sc, int8_t* mn) {
  if (j < 4) {
    *sc = int8_t(q[j] & 63);
    *mn = int8_t(q[j + 4] & 63);
  } else {
    *sc = int8_t((q[j + 4] & 15) | ((q[j - 4] >> 6) << 4));
    *mn = int8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// Q4_K (144 bytes): d, dmin f16; 12 bytes of scales/mins; 128 bytes of nibbles. Q5_K (176) adds
// qh[32] before the nibbles. 64-value chunk i: sub-block 2i from the low nibbles of bytes
// 32i..32i+31, sub-block 2i+1 from their high nibbles; the fifth bits are bits 2i and 2i+1 of qh.
// w = d * sc * u - dmin * m.
void decode_k45(const uint8_t* b, bool five, uint8_t* u, float* D, float* M, int8_t* sc, int8_t* mn) {
  *D = half_at(b);
  *M = -half_at(b + 2);
  for (int j = 0; j < 8; ++j) scale_min_k4(j, b + 4, sc + j, mn + j);
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + (five ? 48 : 16);
  for (int i = 0; i < 4; ++i)
    for (int l = 0; l < 32; ++l) {
      const uint8_t q = qs[32 * i + l];
      const int h = five ? qh[l] : 0;
      u[64 * i + l] = uint8_t((q & 15) | (((h >> (2 * i)) & 1) << 4));
      u[64 * i + 32 + l] = uint8_t((q >> 4) | (((h >> (2 * i + 1)) & 1) << 4));
    }
}

// Q6_K (210 bytes): ql[128] low nibbles, qh[64] 2-bit highs, int8 scales[16], d f16 last.
// Each 128-value half n uses ql[64n..], qh[32n..]: value 128n + 32j + l (j = 0..3) takes nibble
// j/2 of ql[64n + 32(j%2) + l] and bits 2j..2j+1 of qh[32n + l]; sub-block of 16 values
// s = 8n + 2j + l/16 has scale sc[s]. w = d * sc * (u - 32).
void decode_q6k(const uint8_t* b, uint8_t* u, float* D, float* M, int8_t* sc, int8_t* mn) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192);
  const float d = half_at(b + 208);
  *D = d;
  *M = -32.f * d;
  for (int s = 0; s < 16; ++s) sc[s] = mn[s] = scales[s];
  for (int n = 0; n < 2; ++n)
    for (int j = 0; j < 4; ++j)
      for (int l = 0; l < 32; ++l) {
        const uint8_t lo = ql[64 * n + 32 * (j % 2) + l];
        const int nib = j < 2 ? lo & 15 : lo >> 4;
        const int hi = (qh[32 * n + l] >> (2 * j)) & 3;
        u[128 * n + 32 * j + l] = uint8_t(nib | (hi << 4));
      }
}

// Q2_K (84 bytes): scales[16] (low nibble the scale, high nibble the min of a 16-value sub-block),
// qs[64] of 2-bit fields, d and dmin f16. Each 128-value half n uses qs[32n..]: value
// 128n + 32j + 16h + l takes bits 2j..2j+1 of qs[32n + 16h + l], sub-block 8n + 2j + h.
// w = d * sc * u - dmin * m.
void decode_q2k(const uint8_t* b, uint8_t* u, float* D, float* M, int8_t* sc, int8_t* mn) {
  const uint8_t* qs = b + 16;
  *D = half_at(b + 80);
  *M = -half_at(b + 82);
  for (int s = 0; s < 16; ++s) {
    sc[s] = int8_t(b[s] & 15);
    mn[s] = int8_t(b[s] >> 4);
  }
  for (int i = 0; i < 256; ++i) {
    const int n = i / 128, j = (i % 128) / 32, hl = i % 32;
    u[i] = uint8_t((qs[32 * n + hl] >> (2 * j)) & 3);
  }
}

// Q3_K (110 bytes): hmask[32] (third bits), qs[64] (2-bit fields), 12 bytes of 6-bit scales, d
// f16. Value 128n + 32j + 16h + l takes bits 2j..2j+1 of qs[32n + 16h + l] and bit 4n + j of
// hmask[16h + l] as its third bit; sub-block s = 8n + 2j + h has the 6-bit scale whose low four
// bits are the low (s < 8) or high nibble of byte s % 8 and whose top two are bits
// 2(s / 4)..2(s / 4)+1 of byte 8 + s % 4. w = d * (scale - 32) * (u - 4).
void decode_q3k(const uint8_t* b, uint8_t* u, float* D, float* M, int8_t* sc, int8_t* mn) {
  const uint8_t* hm = b;
  const uint8_t* qs = b + 32;
  const uint8_t* packed = b + 96;
  const float d = half_at(b + 108);
  *D = d;
  *M = -4.f * d;
  for (int s = 0; s < 16; ++s) {
    const int low = s < 8 ? packed[s] & 15 : packed[s - 8] >> 4, top = (packed[8 + s % 4] >> (2 * (s / 4))) & 3;
    sc[s] = mn[s] = int8_t((low | (top << 4)) - 32);
  }
  for (int i = 0; i < 256; ++i) {
    const int n = i / 128, j = (i % 128) / 32, hl = i % 32;
    const int q2 = (qs[32 * n + hl] >> (2 * j)) & 3, h3 = (hm[hl] >> (4 * n + j)) & 1;
    u[i] = uint8_t(q2 | (h3 << 2));
  }
}

}  // namespace

const BlockFormat* block_format(TensorDType d) {
  switch (d) {
    case TensorDType::q4_0:
      return &kQ4_0;
    case TensorDType::q4_1:
      return &kQ4_1;
    case TensorDType::q5_0:
      return &kQ5_0;
    case TensorDType::q5_1:
      return &kQ5_1;
    case TensorDType::q4_k:
      return &kQ4_K;
    case TensorDType::q5_k:
      return &kQ5_K;
    case TensorDType::q6_k:
      return &kQ6_K;
    case TensorDType::q2_k:
      return &kQ2_K;
    case TensorDType::q3_k:
      return &kQ3_K;
    default:
      return nullptr;
  }
}

int block_values(TensorDType d) {
  if (const BlockFormat* f = block_format(d)) return f->values;
  return d == TensorDType::q8_0 ? 32 : 1;
}

uint64_t tensor_bytes(TensorDType d, uint64_t count) {
  if (const BlockFormat* f = block_format(d)) return count / f->values * f->bytes;
  switch (d) {
    case TensorDType::f32:
      return count * 4;
    case TensorDType::f16:
    case TensorDType::bf16:
      return count * 2;
    case TensorDType::q8_0:
      return count / 32 * 34;
    default:
      return count;  // i8
  }
}

void block_row_decode(TensorDType d, const uint8_t* row, int k, uint8_t* u, float* D, float* M, int8_t* sc, int8_t* mn) {
  const BlockFormat& f = *block_format(d);
  for (int b = 0; b < k / f.values; ++b, row += f.bytes) {
    uint8_t* ub = u + b * f.values;
    const int s0 = b * f.values / f.sub;
    switch (d) {
      case TensorDType::q4_0:
        decode_legacy(row, false, false, ub, D + b, M + b);
        break;
      case TensorDType::q4_1:
        decode_legacy(row, true, false, ub, D + b, M + b);
        break;
      case TensorDType::q5_0:
        decode_legacy(row, false, true, ub, D + b, M + b);
        break;
      case TensorDType::q5_1:
        decode_legacy(row, true, true, ub, D + b, M + b);
        break;
      case TensorDType::q4_k:
        decode_k45(row, false, ub, D + b, M + b, sc + s0, mn + s0);
        break;
      case TensorDType::q5_k:
        decode_k45(row, true, ub, D + b, M + b, sc + s0, mn + s0);
        break;
      case TensorDType::q6_k:
        decode_q6k(row, ub, D + b, M + b, sc + s0, mn + s0);
        break;
      case TensorDType::q2_k:
        decode_q2k(row, ub, D + b, M + b, sc + s0, mn + s0);
        break;
      case TensorDType::q3_k:
        decode_q3k(row, ub, D + b, M + b, sc + s0, mn + s0);
        break;
      default:
        break;
    }
    if (!f.has_sub) sc[s0] = mn[s0] = 1;
  }
}

}  // namespace weft
