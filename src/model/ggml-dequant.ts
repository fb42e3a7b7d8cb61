// Decoding GGML blocks to f32, from the format definitions (ggml-common.h's block structs and
// dequantization formulas), with the same float32 rounding as ggml's reference: the tests check
// weft's and llama.cpp's files with it. Also the block sizes and the fp16 table the encoders share.

import { GGML_TYPES } from './gguf.js';

const QUANT_TYPES = ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K'] as const;
export type QuantType = (typeof QUANT_TYPES)[number];

// [values per block, bytes per block], from the one GGML type table (gguf.ts)
export const QUANT_BLOCK = {} as Record<QuantType, readonly [number, number]>;
for (const [d, n, b] of Object.values(GGML_TYPES)) if ((QUANT_TYPES as readonly string[]).includes(d)) QUANT_BLOCK[d as QuantType] = [n, b];

export const quantizedBytes = (type: QuantType, numValues: number): number => (numValues / QUANT_BLOCK[type][0]) * QUANT_BLOCK[type][1];

// f16 bits → f32 for every bit pattern: a decoder, or an encoder that needs the stored scale, pays a lookup.
export const F16_TABLE = (() => {
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1,
      exp = (h >>> 10) & 0x1f,
      mant = h & 0x3ff;
    t[h] = exp === 0 ? sign * mant * 2 ** -24 : exp === 31 ? (mant ? NaN : sign * Infinity) : sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return t;
})();
export const halfToFloat = (h: number): number => F16_TABLE[h];

const getHalf = (b: Uint8Array, at: number): number => F16_TABLE[b[at] | (b[at + 1] << 8)];

function decodeBlock(type: QuantType, q: Uint8Array, o: number, y: Float32Array, yi: number): void {
  switch (type) {
    case 'Q8_0': {
      const d = getHalf(q, o);
      for (let i = 0; i < 32; i++) y[yi + i] = d * ((q[o + 2 + i] << 24) >> 24);
      return;
    }
    case 'Q4_0':
    case 'Q5_0':
    case 'Q4_1':
    case 'Q5_1': {
      const affine = type === 'Q4_1' || type === 'Q5_1',
        five = type === 'Q5_0' || type === 'Q5_1';
      const d = getHalf(q, o),
        m = affine ? getHalf(q, o + 2) : 0,
        at = o + (affine ? 4 : 2);
      const qh = five ? (q[at] | (q[at + 1] << 8) | (q[at + 2] << 16) | (q[at + 3] << 24)) >>> 0 : 0,
        qs = at + (five ? 4 : 0);
      const offset = affine ? 0 : five ? 16 : 8;
      for (let j = 0; j < 16; j++) {
        const a = (q[qs + j] & 15) | (((qh >>> j) & 1) << 4),
          b = (q[qs + j] >> 4) | (((qh >>> (j + 16)) & 1) << 4);
        y[yi + j] = Math.fround(d * (a - offset)) + m;
        y[yi + j + 16] = Math.fround(d * (b - offset)) + m;
      }
      return;
    }
    case 'Q4_K':
    case 'Q5_K': {
      const five = type === 'Q5_K',
        d = getHalf(q, o),
        dmin = getHalf(q, o + 2),
        sc = o + 4,
        qs = o + (five ? 48 : 16);
      for (let j = 0; j < 8; j++) {
        const ls = j < 4 ? q[sc + j] & 63 : (q[sc + j + 4] & 15) | ((q[sc + j - 4] >> 6) << 4);
        const lm = j < 4 ? q[sc + j + 4] & 63 : (q[sc + j + 4] >> 4) | ((q[sc + j] >> 6) << 4);
        const c = j >> 1,
          high = j & 1,
          dj = Math.fround(d * ls),
          mj = Math.fround(dmin * lm);
        for (let i = 0; i < 32; i++) {
          const nib = high ? q[qs + 32 * c + i] >> 4 : q[qs + 32 * c + i] & 15;
          const hb = five ? ((q[o + 16 + i] >> (2 * c + high)) & 1) << 4 : 0;
          y[yi + 32 * j + i] = Math.fround(dj * (nib | hb)) - mj;
        }
      }
      return;
    }
    case 'Q2_K': {
      // scales[16] (low nibble scale, high nibble min, per 16 values), qs[64], d, dmin; value
      // v = 128n + 32j + l has its 2 bits at qs[32n + l] >> 2j
      const d = getHalf(q, o + 80),
        dmin = getHalf(q, o + 82);
      for (let v = 0; v < 256; v++) {
        const sc = q[o + (v >> 4)],
          u = (q[o + 16 + 32 * (v >> 7) + (v & 31)] >> (2 * ((v >> 5) & 3))) & 3;
        y[yi + v] = Math.fround(Math.fround(d * (sc & 15)) * u) - Math.fround(dmin * (sc >> 4));
      }
      return;
    }
    case 'Q3_K': {
      // hmask[32], qs[64], scales[12] (16 six-bit codes, centred by 32), d; value v = 128n + 32j + l:
      // low 2 bits at qs[32n + l] >> 2j, high bit at hmask[l] bit 4n + j; the level is u − 4
      const d = getHalf(q, o + 108);
      for (let s = 0; s < 16; s++) {
        const k = s & 3,
          g = s >> 2;
        const code = ((q[o + 96 + (g & 1 ? 4 : 0) + k] >> (g >= 2 ? 4 : 0)) & 15) | (((q[o + 104 + k] >> (2 * g)) & 3) << 4);
        const dl = Math.fround(d * (code - 32));
        for (let v = 16 * s; v < 16 * s + 16; v++) {
          const n = v >> 7,
            j = (v >> 5) & 3,
            l = v & 31;
          const u = ((q[o + 32 + 32 * n + l] >> (2 * j)) & 3) | (((q[o + l] >> (4 * n + j)) & 1) << 2);
          y[yi + v] = dl * (u - 4);
        }
      }
      return;
    }
    case 'Q6_K': {
      const d = getHalf(q, o + 208);
      for (let v = 0; v < 256; v++) {
        const n = v >> 7,
          g = (v >> 5) & 3,
          i = v & 31;
        const byte = q[o + 64 * n + 32 * (g & 1) + i],
          nib = g >= 2 ? byte >> 4 : byte & 15;
        const hb = (q[o + 128 + 32 * n + i] >> (2 * g)) & 3;
        y[yi + v] = Math.fround(d * ((q[o + 192 + (v >> 4)] << 24) >> 24)) * ((nib | (hb << 4)) - 32);
      }
    }
  }
}

export function dequantize(type: QuantType, q: Uint8Array, numValues: number): Float32Array {
  const [n, bytes] = QUANT_BLOCK[type];
  const y = new Float32Array(numValues);
  for (let b = 0; b < numValues / n; b++) decodeBlock(type, q, b * bytes, y, b * n);
  return y;
}
