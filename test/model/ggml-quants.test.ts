// The GGML block encoders and decoders: every decoder equals a scalar reference of the format's
// formulas (written here, element by element, from ggml-common.h's block definitions) on random
// blocks, and every encoder's output decodes to within its type's error of the input, on random
// data and on the edge cases (zeros, constants, huge and tiny magnitudes, one sign only, spikes).
import t from 'tap';

import { dequantize, halfToFloat, QUANT_BLOCK, quantizedBytes, type QuantType } from '../../src/model/ggml-dequant.js';
import { quantize } from '../../src/model/ggml-quants.js';
import { f32ToF16 } from '../../src/model/safetensors.js';

const TYPES: QuantType[] = ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q8_0', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K'];

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
const gauss = (r: () => number) => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());

// ---- the reference: one element at a time, straight from the block layouts ----
const f16 = (b: Uint8Array, at: number) => halfToFloat(b[at] | (b[at + 1] << 8));
const i8 = (v: number) => (v << 24) >> 24;
const bit = (b: Uint8Array, at: number, k: number) => (b[at + (k >> 3)] >> (k & 7)) & 1;
const f = Math.fround;

// value i of the block starting at b[o]
function refValue(type: QuantType, b: Uint8Array, o: number, i: number): number {
  const nib = (at: number, j: number) => (j < 16 ? b[at + j] & 15 : b[at + j - 16] >> 4); // legacy: j and j+16 share a byte
  switch (type) {
    case 'Q8_0':
      return f16(b, o) * i8(b[o + 2 + i]);
    case 'Q4_0':
      return f(f16(b, o) * (nib(o + 2, i) - 8));
    case 'Q4_1':
      return f(f16(b, o) * nib(o + 4, i)) + f16(b, o + 2);
    case 'Q5_0':
      return f(f16(b, o) * ((nib(o + 6, i) | (bit(b, o + 2, i) << 4)) - 16));
    case 'Q5_1':
      return f(f16(b, o) * (nib(o + 8, i) | (bit(b, o + 4, i) << 4))) + f16(b, o + 2);
    case 'Q4_K':
    case 'Q5_K': {
      const sub = i >> 5,
        s = o + 4; // 8 sub-blocks of 32; 6-bit scale/min codes packed in 12 bytes
      const sc = sub < 4 ? b[s + sub] & 63 : (b[s + sub + 4] & 15) | ((b[s + sub - 4] >> 6) << 4);
      const mn = sub < 4 ? b[s + sub + 4] & 63 : (b[s + sub + 4] >> 4) | ((b[s + sub] >> 6) << 4);
      const qs = o + (type === 'Q4_K' ? 16 : 48),
        chunk = i >> 6,
        l = i & 31,
        high = (i >> 5) & 1;
      let q = high ? b[qs + 32 * chunk + l] >> 4 : b[qs + 32 * chunk + l] & 15;
      if (type === 'Q5_K') q |= ((b[o + 16 + l] >> (2 * chunk + high)) & 1) << 4;
      return f(f(f16(b, o) * sc) * q) - f(f16(b, o + 2) * mn);
    }
    case 'Q2_K': {
      // ggml's loop: per 128 values, 4 shifts of 2 bits over the same 32 bytes; one scales byte per 16
      const half = i >> 7,
        shift = 2 * ((i >> 5) & 3),
        l = i & 31,
        sc = b[o + (i >> 4)];
      const q = (b[o + 16 + 32 * half + l] >> shift) & 3;
      return f(f(f16(b, o + 80) * (sc & 15)) * q) - f(f16(b, o + 82) * (sc >> 4));
    }
    case 'Q3_K': {
      // the 12 scale bytes read as three little-endian words and re-spread to 16 six-bit codes, as ggml does
      const word = (k: number) => (b[o + 96 + 4 * k] | (b[o + 97 + 4 * k] << 8) | (b[o + 98 + 4 * k] << 16) | (b[o + 99 + 4 * k] << 24)) >>> 0;
      const [a0, a1, tmp] = [word(0), word(1), word(2)];
      const aux = [
        (a0 & 0x0f0f0f0f) | (((tmp >>> 0) & 0x03030303) << 4),
        (a1 & 0x0f0f0f0f) | (((tmp >>> 2) & 0x03030303) << 4),
        ((a0 >>> 4) & 0x0f0f0f0f) | (((tmp >>> 4) & 0x03030303) << 4),
        ((a1 >>> 4) & 0x0f0f0f0f) | (((tmp >>> 6) & 0x03030303) << 4),
      ];
      const s = i >> 4,
        code = (aux[s >> 2] >>> (8 * (s & 3))) & 0xff;
      const half = i >> 7,
        j = (i >> 5) & 3,
        l = i & 31;
      const low = (b[o + 32 + 32 * half + l] >> (2 * j)) & 3,
        hi = (b[o + l] >> (4 * half + j)) & 1;
      return f(f16(b, o + 108) * (code - 32)) * (low - (hi ? 0 : 4));
    }
    case 'Q6_K': {
      const half = i >> 7,
        g = (i >> 5) & 3,
        l = i & 31; // per 128 values: 4 groups of 32
      const lowByte = b[o + 64 * half + (g & 1 ? 32 : 0) + l],
        low = g < 2 ? lowByte & 15 : lowByte >> 4;
      const high = (b[o + 128 + 32 * half + l] >> (2 * g)) & 3;
      return f(f16(b, o + 208) * i8(b[o + 192 + (i >> 4)])) * ((low | (high << 4)) - 32);
    }
  }
}

// Random bytes with every fp16 field set to a finite value of moderate size.
function randomBlocks(type: QuantType, numBlocks: number, r: () => number): Uint8Array {
  const [, bytes] = QUANT_BLOCK[type];
  const b = new Uint8Array(numBlocks * bytes);
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(r() * 256);
  const halves: Record<QuantType, number[]> = {
    Q8_0: [0],
    Q4_0: [0],
    Q5_0: [0],
    Q4_1: [0, 2],
    Q5_1: [0, 2],
    Q2_K: [80, 82],
    Q3_K: [108],
    Q4_K: [0, 2],
    Q5_K: [0, 2],
    Q6_K: [208],
  };
  for (let k = 0; k < numBlocks; k++)
    for (const at of halves[type]) {
      const h = f32ToF16((r() - 0.5) * 0.2);
      b[k * bytes + at] = h & 0xff;
      b[k * bytes + at + 1] = h >> 8;
    }
  return b;
}

t.test('each decoder equals the reference formulas on random blocks, exactly', async (t) => {
  const r = rng(1);
  for (const type of TYPES) {
    const [n, bytes] = QUANT_BLOCK[type],
      numBlocks = 64;
    const b = randomBlocks(type, numBlocks, r);
    const y = dequantize(type, b, numBlocks * n);
    let mismatches = 0;
    for (let k = 0; k < numBlocks; k++) for (let i = 0; i < n; i++) if (y[k * n + i] !== f(refValue(type, b, k * bytes, i))) mismatches++;
    t.equal(mismatches, 0, `${type}: ${numBlocks * n} values`);
  }
});

t.test('hand-built blocks decode to the values the formulas give', async (t) => {
  // Q4_0 with d = 0.5: nibble q decodes to 0.5·(q − 8); byte j holds values j (low) and j+16 (high)
  const q40 = new Uint8Array(18);
  q40.set([0x00, 0x38], 0); // 0x3800 = 0.5 in fp16
  q40[2] = 0xf0; // value 0: q 0 → −4; value 16: q 15 → 3.5
  q40[3] = 0x98; // value 1: q 8 → 0; value 17: q 9 → 0.5
  const y40 = dequantize('Q4_0', q40, 32);
  t.same([y40[0], y40[16], y40[1], y40[17], y40[2]], [-4, 3.5, 0, 0.5, -4]);
  // Q8_0 with d = 2: −128…127 times 2
  const q80 = new Uint8Array(34);
  q80.set([0x00, 0x40], 0); // 2.0
  q80[2] = 0x80;
  q80[3] = 0x7f;
  q80[4] = 1;
  t.same(Array.from(dequantize('Q8_0', q80, 32).subarray(0, 3)), [-256, 254, 2]);
  // Q4_K: d = 1, dmin = 0.5; sub-block 0 scale 3, min 2; sub-block 5 scale 33 (0b100001), min 17 (0b010001)
  const q4k = new Uint8Array(144);
  q4k.set([0x00, 0x3c, 0x00, 0x38], 0);
  q4k[4] = 3;
  q4k[8] = 2; // sub-block 0: scale byte 0, min byte 4
  q4k[4 + 9] = (33 & 15) | ((17 & 15) << 4); // sub-block 5: low nibbles in byte 9
  q4k[4 + 1] |= (33 >> 4) << 6; // its scale's top bits on byte 1
  q4k[4 + 5] |= (17 >> 4) << 6; // its min's top bits on byte 5
  q4k[16] = 0x07; // value 0 (sub 0): q 7 → 3·7 − 0.5·2 = 20
  q4k[16 + 64 + 1] = 0xa0; // value 161 (sub 5, high nibble of chunk 2): q 10 → 33·10 − 0.5·17 = 321.5
  const y4k = dequantize('Q4_K', q4k, 256);
  t.same([y4k[0], y4k[161]], [20, 321.5]);
  // Q6_K: d = 0.25, scale of values 128…143 (scales[8]) = −4; value 130 = group 0 of the second half, l = 2
  const q6k = new Uint8Array(210);
  q6k.set([0x00, 0x34], 208); // 0.25
  q6k[192 + 8] = 0xfc; // −4
  q6k[64 + 2] = 0x05; // low nibble 5
  q6k[128 + 32 + 2] = 0x02; // top bits 2 → q = 5 | 32 = 37 → 37 − 32 = 5
  t.equal(dequantize('Q6_K', q6k, 256)[130], 0.25 * -4 * 5);
});

// Largest error allowed per block: the type's step at the block's amplitude (with the rounding of
// its fp16 scales), for the value ranges each format can represent.
function maxErrorBound(type: QuantType, x: Float32Array): number {
  let amax = 0,
    min = Infinity,
    max = -Infinity;
  for (const v of x) {
    amax = Math.max(amax, Math.abs(v));
    min = Math.min(min, v);
    max = Math.max(max, v);
  }
  const range = max - Math.min(min, 0) + Math.max(0, -Math.max(max, 0)),
    fp16 = 2 ** -10,
    floor = 1e-6 * amax + 2 ** -24 * 64;
  const bounds: Record<QuantType, number> = {
    Q8_0: amax / 254 + amax * fp16,
    Q4_0: amax / 8 + amax * fp16, // one step: the far side's top level is 7, not 8
    Q5_0: amax / 16 + amax * fp16,
    Q4_1: (max - min) / 30 + (amax + max - min) * fp16,
    Q5_1: (max - min) / 62 + (amax + max - min) * fp16,
    // half a step (range/6), the 4-bit scale and min codes' rounding (up to range/30 a level, 3 levels)
    Q2_K: 0.3 * range + amax * 2 * fp16,
    // the far side's top level is 3, not 4, and the grid search may widen the step to amax/3.1
    Q3_K: amax / 3 + amax * 2 * fp16,
    Q4_K: range / 15 + amax * 2 * fp16, // a sub-block may sit at a coarser step than its own best fit
    Q5_K: range / 31 + amax * 2 * fp16,
    Q6_K: amax / 32 + amax * 2 * fp16,
  };
  return bounds[type] * 1.001 + floor;
}

// Relative RMS error on Gaussian data: about one step over √12 of each type (measured: Q8_0 0.0053,
// Q4_0 0.085, Q4_1 0.078, Q5_0 0.042, Q5_1 0.038, Q2_K 0.275, Q3_K 0.153, Q4_K 0.071, Q5_K 0.036,
// Q6_K 0.017).
const RMS_BOUND: Record<QuantType, number> = {
  Q8_0: 0.006,
  Q4_0: 0.09,
  Q4_1: 0.083,
  Q5_0: 0.045,
  Q5_1: 0.041,
  Q2_K: 0.29,
  Q3_K: 0.16,
  Q4_K: 0.075,
  Q5_K: 0.039,
  Q6_K: 0.019,
};

function edgeCases(n: number, r: () => number): [string, Float32Array][] {
  const make = (fn: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => fn(i));
  return [
    ['all zero', make(() => 0)],
    ['constant positive', make(() => 0.37)],
    ['constant negative', make(() => -1.25)],
    ['huge magnitudes', make(() => gauss(r) * 2e4)],
    ['tiny magnitudes', make(() => gauss(r) * 1e-3)],
    ['below fp16 resolution', make(() => gauss(r) * 1e-9)],
    ['negative only', make(() => -Math.abs(gauss(r)) - 0.5)],
    ['positive only', make(() => r() + 2)],
    ['one spike among small values', make((i) => (i === 7 ? 50 : gauss(r) * 0.01))],
    ['mixed block scales', make((i) => gauss(r) * (i < n / 2 ? 1e-3 : 1))],
  ];
}

t.test('each encoder decodes to within its type’s error of the input', async (t) => {
  const r = rng(2);
  for (const type of TYPES) {
    const [n] = QUANT_BLOCK[type];
    // random data: RMS error against the bound, max error per block
    const x = Float32Array.from({ length: n * 512 }, () => gauss(r) * 0.02);
    const q = quantize(type, x);
    t.equal(q.length, quantizedBytes(type, x.length), `${type}: size`);
    const y = dequantize(type, q, x.length);
    let se = 0,
      sx = 0,
      worst = 0;
    for (let k = 0; k < x.length / n; k++) {
      const xs = x.subarray(k * n, (k + 1) * n),
        bound = maxErrorBound(type, xs);
      for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(y[k * n + i] - xs[i]) / bound);
    }
    for (let i = 0; i < x.length; i++) {
      se += (y[i] - x[i]) ** 2;
      sx += x[i] ** 2;
    }
    t.ok(Math.sqrt(se / sx) < RMS_BOUND[type], `${type}: relative RMS error ${Math.sqrt(se / sx).toFixed(4)} < ${RMS_BOUND[type]}`);
    t.ok(worst <= 1, `${type}: random data, worst error ${worst.toFixed(3)} of the per-block bound`);
    for (const [what, xs] of edgeCases(n, r)) {
      const ys = dequantize(type, quantize(type, xs), n),
        bound = maxErrorBound(type, xs);
      let e = 0;
      for (let i = 0; i < n; i++) e = Math.max(e, Math.abs(ys[i] - xs[i]));
      t.ok(ys.every(Number.isFinite) && e <= bound, `${type}, ${what}: max error ${e.toExponential(2)} <= ${bound.toExponential(2)}`);
    }
    t.same(Array.from(dequantize(type, quantize(type, new Float32Array(n)), n)), Array.from(new Float32Array(n)), `${type}: zeros stay zeros`);
  }
});

t.test('an input that is not a whole number of blocks is refused', async (t) => {
  t.throws(() => quantize('Q4_K', new Float32Array(255)), RangeError);
  t.throws(() => quantize('Q8_0', new Float32Array(33)), RangeError);
});
