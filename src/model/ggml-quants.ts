// Encoding f32 into GGML blocks in TypeScript, written from the format definitions (ggml-common.h's
// block structs and the dequantization formulas), for the files weft writes (synth, quantize); the
// decoders are in ggml-dequant.ts. Each encoder works on whole blocks (32 values for the legacy
// types, 256 for the K-quants) and writes into a caller's buffer; scratch arrays live at module
// level so the hot loops allocate nothing per block.
//
// Legacy types (Q4_0 … Q8_0) round to nearest against one scale per 32 values, as llama.cpp's
// reference quantizers do, in float32 arithmetic step by step (Math.fround), so their blocks come
// out byte-equal to llama-quantize's. The K-quants search each sub-block's scale (and min) on a
// small grid and keep the weighted least-squares fit with the lowest error, then quantize the
// sub-block scales to 4 (Q2_K), 6 or 8 bits against one fp16 super-block scale and requantize the
// values with the scales as the decoder will see them.
//
// fp16 scales saturate at 65504: a block whose values exceed about 5·10⁵ (Q4_0) to 8·10⁶ (Q8_0)
// cannot be stored faithfully, and is clamped rather than written as infinity.
import { F16_TABLE, QUANT_BLOCK, quantizedBytes, type QuantType } from './ggml-dequant.js';
import { f32ToF16 } from './safetensors.js';

const F16_MAX = 65504;

// Stores v as fp16 at out[at], clamped to the finite range; returns the value stored.
function putHalf(out: Uint8Array, at: number, v: number): number {
  const h = f32ToF16(Math.max(-F16_MAX, Math.min(F16_MAX, v)));
  out[at] = h & 0xff;
  out[at + 1] = h >>> 8;
  return F16_TABLE[h];
}

const clamp = (v: number, lo: number, hi: number) => (v < lo ? lo : v > hi ? hi : v);

// ---- legacy types: one scale (and for _1 a min) per 32 values ----

// Q8_0: d = absmax/127, q = round(x/d) half away from zero in float32 (gguf-py's formula; files
// written before the other types existed keep their bytes).
function encodeBlockQ8_0(x: Float32Array, xi: number, out: Uint8Array, o: number): void {
  let amax = 0;
  for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(x[xi + i]));
  const d = Math.min(Math.fround(amax / 127), F16_MAX),
    id = d === 0 ? 0 : Math.fround(1 / d);
  putHalf(out, o, d);
  for (let i = 0; i < 32; i++) {
    const v = Math.fround(x[xi + i] * id);
    out[o + 2 + i] = clamp(v < 0 ? -Math.round(-v) : Math.round(v), -127, 127) & 0xff;
  }
}

// The signed value of largest magnitude: Q4_0/Q5_0 map it to the lowest level (−8 / −16), which
// the asymmetric range −8…7 reaches and +8 would not.
function signedMax(x: Float32Array, xi: number, n: number): number {
  let amax = 0,
    max = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xi + i];
    if (Math.abs(v) > amax) {
      amax = Math.abs(v);
      max = v;
    }
  }
  return max;
}

// Q4_0 (bits 4, offset 8) and Q5_0 (bits 5, offset 16): x = d·(q − offset).
function encodeBlockSym(bits: 4 | 5, x: Float32Array, xi: number, out: Uint8Array, o: number): void {
  const half = 1 << (bits - 1),
    top = (1 << bits) - 1;
  const d = clamp(Math.fround(signedMax(x, xi, 32) / -half), -F16_MAX, F16_MAX),
    id = d === 0 ? 0 : Math.fround(1 / d);
  putHalf(out, o, d);
  const qs = o + (bits === 4 ? 2 : 6);
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const a = Math.min(top, Math.floor(Math.fround(Math.fround(x[xi + j] * id) + half + 0.5)));
    const b = Math.min(top, Math.floor(Math.fround(Math.fround(x[xi + j + 16] * id) + half + 0.5)));
    out[qs + j] = (a & 15) | ((b & 15) << 4);
    qh |= ((a >> 4) << j) | ((b >> 4) << (j + 16));
  }
  if (bits === 5) for (let k = 0; k < 4; k++) out[o + 2 + k] = (qh >>> (8 * k)) & 0xff;
}

// Q4_1 / Q5_1: x = d·q + m with m the block minimum and d spanning max − min.
function encodeBlockAffine(bits: 4 | 5, x: Float32Array, xi: number, out: Uint8Array, o: number): void {
  const top = (1 << bits) - 1;
  let min = Infinity,
    max = -Infinity;
  for (let i = 0; i < 32; i++) {
    const v = x[xi + i];
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const d = Math.min(Math.fround(Math.fround(max - min) / top), F16_MAX),
    id = d === 0 ? 0 : Math.fround(1 / d);
  putHalf(out, o, d);
  putHalf(out, o + 2, min);
  const qs = o + (bits === 4 ? 4 : 8);
  let qh = 0;
  for (let j = 0; j < 16; j++) {
    const a = clamp(Math.floor(Math.fround(Math.fround(Math.fround(x[xi + j] - min) * id) + 0.5)), 0, top);
    const b = clamp(Math.floor(Math.fround(Math.fround(Math.fround(x[xi + j + 16] - min) * id) + 0.5)), 0, top);
    out[qs + j] = (a & 15) | ((b & 15) << 4);
    qh |= ((a >> 4) << j) | ((b >> 4) << (j + 16));
  }
  if (bits === 5) for (let k = 0; k < 4; k++) out[o + 4 + k] = (qh >>> (8 * k)) & 0xff;
}

// ---- K-quants: 256-value super-blocks of 8 (Q4_K, Q5_K) or 16 (Q2_K, Q3_K, Q6_K) sub-blocks ----

const L = new Uint8Array(256);
const lTry = new Uint8Array(32);
const w = new Float64Array(32);
const subScale = new Float64Array(16);
const subMin = new Float64Array(16);
let fitMin = 0; // second result of fitAffine

// Σ w·(s·l + m − x)² expanded into the sums a pass collects.
const affineError = (s: number, m: number, sw: number, swx: number, swxx: number, sl: number, sl2: number, sxl: number) =>
  s * s * sl2 + m * m * sw + swxx + 2 * s * m * sl - 2 * s * sxl - 2 * m * swx;

let sumL = 0, // the weighted sums of roundLevels' last pass: Σ w·l, Σ w·l², Σ w·l·x
  sumL2 = 0,
  sumXL = 0;

// Rounds n values x[xi…] to levels round(is·(x − min)) clamped to 0…nmax, into dst[d…].
function roundLevels(x: Float32Array, xi: number, n: number, nmax: number, min: number, is: number, dst: Uint8Array, d: number): void {
  let sl = 0,
    sl2 = 0,
    sxl = 0;
  for (let i = 0; i < n; i++) {
    let l = Math.floor(is * (x[xi + i] - min) + 0.5);
    l = l < 0 ? 0 : l > nmax ? nmax : l;
    dst[d + i] = l;
    const wl = w[i] * l;
    sl += wl;
    sl2 += wl * l;
    sxl += wl * x[xi + i];
  }
  sumL = sl;
  sumL2 = sl2;
  sumXL = sxl;
}

// Fits n values x[xi…] to x ≈ s·l − m with l in 0…nmax, s > 0 and m ≥ 0 (the block is shifted so
// its minimum, or 0, is level 0), minimizing Σ w·(s·l − m − x)². Starts from the plain range
// split, then tries inverse scales (nmax + rmin + k·rstep)/(max − min) for k = 0…nstep; for each
// rounding it solves the 2×2 least-squares for (s, m) and keeps the lowest error, computed in
// closed form from the sums so each try is one pass. Writes levels to L[lo…], m to fitMin.
function fitAffine(x: Float32Array, xi: number, n: number, nmax: number, lo: number, rmin: number, rstep: number, nstep: number): number {
  let min = x[xi],
    max = x[xi],
    sw = 0,
    swx = 0,
    swxx = 0;
  for (let i = 0; i < n; i++) {
    const v = x[xi + i];
    if (v < min) min = v;
    if (v > max) max = v;
    sw += w[i];
    swx += w[i] * v;
    swxx += w[i] * v * v;
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, lo, lo + n);
    fitMin = -min;
    return 0;
  }
  // the range split itself: s = (max − min)/nmax, offset = min
  let bestS = (max - min) / nmax,
    bestM = min;
  roundLevels(x, xi, n, nmax, min, nmax / (max - min), L, lo);
  let best = affineError(bestS, bestM, sw, swx, swxx, sumL, sumL2, sumXL);
  for (let k = 0; k <= nstep; k++) {
    roundLevels(x, xi, n, nmax, min, (nmax + rmin + rstep * k) / (max - min), lTry, 0);
    const sl = sumL,
      sl2 = sumL2,
      sxl = sumXL;
    const det = sw * sl2 - sl * sl;
    if (det <= 0) continue;
    let s = (sw * sxl - swx * sl) / det,
      m = (sl2 * swx - sl * sxl) / det;
    if (m > 0) {
      m = 0;
      s = sxl / sl2;
    } // the offset must not be positive: it is stored as a subtracted min ≥ 0
    const e = affineError(s, m, sw, swx, swxx, sl, sl2, sxl);
    if (e < best) {
      best = e;
      bestS = s;
      bestM = m;
      for (let i = 0; i < n; i++) L[lo + i] = lTry[i];
    }
  }
  fitMin = -bestM;
  return bestS;
}

// Sub-block weights: larger values count more, but no value counts for nothing.
function setWeights(x: Float32Array, xi: number, n: number): void {
  let s2 = 0;
  for (let i = 0; i < n; i++) s2 += x[xi + i] * x[xi + i];
  const rms = Math.sqrt(s2 / n);
  for (let i = 0; i < n; i++) w[i] = rms + Math.abs(x[xi + i]);
}

// Q4_K / Q5_K: 8 sub-blocks of 32 with 6-bit scale and min against fp16 d and dmin; x = d·sc·q − dmin·m.
// scales[12]: for j < 4, sc_j and m_j are the low 6 bits of bytes j and j+4; for j ≥ 4 their low
// nibbles are in byte j+4 and their top two bits in the top bits of bytes j−4 and j.
function encodeBlockK(bits: 4 | 5, x: Float32Array, xi: number, out: Uint8Array, o: number): void {
  const nmax = (1 << bits) - 1;
  let maxScale = 0,
    maxMin = 0;
  for (let j = 0; j < 8; j++) {
    setWeights(x, xi + 32 * j, 32);
    const s = bits === 4 ? fitAffine(x, xi + 32 * j, 32, nmax, 32 * j, -1, 0.1, 20) : fitAffine(x, xi + 32 * j, 32, nmax, 32 * j, -0.5, 0.1, 15);
    subScale[j] = s;
    subMin[j] = fitMin;
    maxScale = Math.max(maxScale, s);
    maxMin = Math.max(maxMin, fitMin);
  }
  const d = putHalf(out, o, maxScale / 63),
    dmin = putHalf(out, o + 2, maxMin / 63);
  const sc = o + 4;
  out.fill(0, sc, sc + 12);
  for (let j = 0; j < 8; j++) {
    // the 6-bit codes against the stored d/dmin (not the unrounded ones), so they round to what decodes
    const ls = d > 0 ? clamp(Math.round(subScale[j] / d), 0, 63) : 0,
      lm = dmin > 0 ? clamp(Math.round(subMin[j] / dmin), 0, 63) : 0;
    if (j < 4) {
      out[sc + j] = ls;
      out[sc + j + 4] = lm;
    } else {
      out[sc + j + 4] = (ls & 15) | ((lm & 15) << 4);
      out[sc + j - 4] |= (ls >> 4) << 6;
      out[sc + j] |= (lm >> 4) << 6;
    }
    const ds = d * ls,
      dm = dmin * lm;
    if (ds === 0) continue; // the sub-block decodes to −dm whatever its levels
    for (let i = 0; i < 32; i++) L[32 * j + i] = clamp(Math.round((x[xi + 32 * j + i] + dm) / ds), 0, nmax);
  }
  const qs = o + (bits === 4 ? 16 : 48);
  if (bits === 5) out.fill(0, o + 16, o + 48);
  for (let c = 0; c < 4; c++) {
    for (let i = 0; i < 32; i++) {
      const a = L[64 * c + i],
        b = L[64 * c + 32 + i];
      out[qs + 32 * c + i] = (a & 15) | ((b & 15) << 4);
      if (bits === 5) out[o + 16 + i] |= ((a >> 4) << (2 * c)) | ((b >> 4) << (2 * c + 1));
    }
  }
}

const sL = new Int8Array(256);
const sTry = new Int8Array(16);

// Symmetric fit of 16 values to x ≈ s·l with l in −half…half−1 (32 for Q6_K, 4 for Q3_K), weights
// x² (big values matter most). The value of largest magnitude sits at level −half (the range's long
// end) in the first try; then a few slightly wider and narrower grids, each with its least-squares
// s, keeping the best.
function fitSymmetric(x: Float32Array, xi: number, lo: number, half: number): number {
  const max = signedMax(x, xi, 16);
  if (Math.abs(max) < 1e-30) {
    sL.fill(0, lo, lo + 16);
    return 0;
  }
  let bestS = 0,
    bestScore = -1;
  for (let k = 0; k <= 18; k++) {
    const step = k === 0 ? 0 : k <= 9 ? k - 10 : k - 9; // 0, then −9…−1, 1…9 tenths of a level
    const is = -(half + 0.1 * step) / max;
    let sxl = 0,
      sl2 = 0;
    for (let i = 0; i < 16; i++) {
      const v = x[xi + i],
        wt = v * v;
      let l = Math.floor(is * v + 0.5);
      l = l < -half ? -half : l > half - 1 ? half - 1 : l;
      sTry[i] = l;
      sxl += wt * v * l;
      sl2 += wt * l * l;
    }
    // the error of the least-squares s is Σwx² − sxl²/sl2: the larger sxl²/sl2, the better
    const score = sl2 > 0 ? (sxl * sxl) / sl2 : -1;
    if (score > bestScore) {
      bestScore = score;
      bestS = sxl / sl2;
      for (let i = 0; i < 16; i++) sL[lo + i] = sTry[i];
    }
  }
  return bestS;
}

// Fits the 16 sub-blocks (levels −levelHalf…levelHalf−1) and codes their scales as signed
// integers −codeHalf…codeHalf−1 against one fp16 d stored at out[at]: the scale of largest
// magnitude becomes −codeHalf (the codes' long end). Then each sub-block's levels are rounded
// again against its scale as decoded, into sL. Returns d (0: the block decodes to zeros); the
// codes go to `code`.
function symmetricScales(x: Float32Array, xi: number, out: Uint8Array, at: number, codeHalf: number, levelHalf: number, code: Int8Array): number {
  let maxAbs = 0,
    maxScale = 0;
  for (let j = 0; j < 16; j++) {
    const s = fitSymmetric(x, xi + 16 * j, 16 * j, levelHalf);
    subScale[j] = s;
    if (Math.abs(s) > maxAbs) {
      maxAbs = Math.abs(s);
      maxScale = s;
    }
  }
  if (maxAbs < 1e-30) return putHalf(out, at, 0); // callers stop at d = 0: codes and levels unused
  const d = putHalf(out, at, maxScale / -codeHalf);
  for (let j = 0; j < 16; j++) {
    const ls = d === 0 ? 0 : clamp(Math.round(subScale[j] / d), -codeHalf, codeHalf - 1);
    code[j] = ls;
    const ds = d * ls;
    if (ds === 0) sL.fill(0, 16 * j, 16 * j + 16);
    else for (let i = 0; i < 16; i++) sL[16 * j + i] = clamp(Math.round(x[xi + 16 * j + i] / ds), -levelHalf, levelHalf - 1);
  }
  return d;
}
const codes = new Int8Array(16);

// Q6_K: 16 sub-blocks of 16 with int8 scales against fp16 d; x = d·sc·(q − 32).
// ql[128]: low nibbles; qh[64]: top two bits; per 128 values (n = 0, 1), value 32·g + i (g = 0…3,
// i < 32) has its low nibble in ql[64n + 32·(g & 1) + i] (high half when g ≥ 2) and its top bits at
// qh[32n + i] >> 2g; the scale of value v is scales[v / 16].
function encodeBlockQ6_K(x: Float32Array, xi: number, out: Uint8Array, o: number): void {
  out.fill(0, o, o + 210);
  if (symmetricScales(x, xi, out, o + 208, 128, 32, codes) === 0) return; // all zero decodes to zeros
  for (let j = 0; j < 16; j++) out[o + 192 + j] = codes[j] & 0xff;
  for (let n = 0; n < 2; n++) {
    for (let i = 0; i < 32; i++) {
      const v = 128 * n + i,
        q0 = sL[v] + 32,
        q1 = sL[v + 32] + 32,
        q2 = sL[v + 64] + 32,
        q3 = sL[v + 96] + 32;
      out[o + 64 * n + i] = (q0 & 15) | ((q2 & 15) << 4);
      out[o + 64 * n + 32 + i] = (q1 & 15) | ((q3 & 15) << 4);
      out[o + 128 + 32 * n + i] = (q0 >> 4) | ((q1 >> 4) << 2) | ((q2 >> 4) << 4) | ((q3 >> 4) << 6);
    }
  }
}

// Q3_K: 16 sub-blocks of 16 with 6-bit scale codes centred by 32 against fp16 d; x = d·(c − 32)·(u − 4)
// with u in 0…7. Value v = 128n + 32j + l keeps u's low 2 bits at qs[32n + l] >> 2j and its top
// bit at hmask[l] bit 4n + j; code i (of values 16i…16i+15) has its low nibble in byte
// (i & 4 ? 4 : 0) + (i & 3) of scales, high half when i ≥ 8, and its top 2 bits in byte 8 + (i & 3)
// at bit 2·(i >> 2).
function encodeBlockQ3_K(x: Float32Array, xi: number, out: Uint8Array, o: number): void {
  out.fill(0, o, o + 110);
  if (symmetricScales(x, xi, out, o + 108, 32, 4, codes) === 0) return;
  for (let i = 0; i < 16; i++) {
    const c = codes[i] + 32,
      g = i >> 2,
      k = i & 3;
    out[o + 96 + (g & 1 ? 4 : 0) + k] |= (c & 15) << (g >= 2 ? 4 : 0);
    out[o + 104 + k] |= (c >> 4) << (2 * g);
  }
  for (let v = 0; v < 256; v++) {
    const u = sL[v] + 4,
      n = v >> 7,
      j = (v >> 5) & 3,
      l = v & 31;
    out[o + 32 + 32 * n + l] |= (u & 3) << (2 * j);
    out[o + l] |= (u >> 2) << (4 * n + j);
  }
}

// Q2_K: 16 sub-blocks of 16 with a 4-bit scale and a 4-bit min against fp16 d and dmin;
// x = d·sc·u − dmin·m with u in 0…3 at qs[32n + l] >> 2j (value v = 128n + 32j + l), and
// scales[i] = sc | m << 4 for values 16i…16i+15.
function encodeBlockQ2_K(x: Float32Array, xi: number, out: Uint8Array, o: number): void {
  let maxScale = 0,
    maxMin = 0;
  for (let j = 0; j < 16; j++) {
    setWeights(x, xi + 16 * j, 16);
    const s = fitAffine(x, xi + 16 * j, 16, 3, 16 * j, -0.5, 0.1, 15);
    subScale[j] = s;
    subMin[j] = fitMin;
    maxScale = Math.max(maxScale, s);
    maxMin = Math.max(maxMin, fitMin);
  }
  out.fill(0, o, o + 84);
  const d = putHalf(out, o + 80, maxScale / 15),
    dmin = putHalf(out, o + 82, maxMin / 15);
  for (let j = 0; j < 16; j++) {
    // the 4-bit codes against the stored d/dmin, then the levels against the scale and min as decoded
    const ls = d > 0 ? clamp(Math.round(subScale[j] / d), 0, 15) : 0,
      lm = dmin > 0 ? clamp(Math.round(subMin[j] / dmin), 0, 15) : 0;
    out[o + j] = ls | (lm << 4);
    const ds = d * ls,
      dm = dmin * lm;
    for (let i = 0; i < 16; i++) L[16 * j + i] = ds === 0 ? 0 : clamp(Math.round((x[xi + 16 * j + i] + dm) / ds), 0, 3);
  }
  for (let v = 0; v < 256; v++) out[o + 16 + 32 * (v >> 7) + (v & 31)] |= L[v] << (2 * ((v >> 5) & 3));
}

// ---- entry points ----

type BlockEncoder = (x: Float32Array, xi: number, out: Uint8Array, o: number) => void;
const ENCODERS: Record<QuantType, BlockEncoder> = {
  Q8_0: encodeBlockQ8_0,
  Q4_0: (x, xi, out, o) => encodeBlockSym(4, x, xi, out, o),
  Q5_0: (x, xi, out, o) => encodeBlockSym(5, x, xi, out, o),
  Q4_1: (x, xi, out, o) => encodeBlockAffine(4, x, xi, out, o),
  Q5_1: (x, xi, out, o) => encodeBlockAffine(5, x, xi, out, o),
  Q2_K: encodeBlockQ2_K,
  Q3_K: encodeBlockQ3_K,
  Q4_K: (x, xi, out, o) => encodeBlockK(4, x, xi, out, o),
  Q5_K: (x, xi, out, o) => encodeBlockK(5, x, xi, out, o),
  Q6_K: encodeBlockQ6_K,
};

// Encodes x (a whole number of blocks; rows of a matrix simply follow one another) as `type`.
export function quantize(type: QuantType, x: Float32Array, out = new Uint8Array(quantizedBytes(type, x.length))): Uint8Array {
  const [n, bytes] = QUANT_BLOCK[type];
  if (x.length % n !== 0) throw new RangeError(`${type}: ${x.length} values are not a whole number of ${n}-value blocks`);
  const encode = ENCODERS[type];
  for (let b = 0; b < x.length / n; b++) encode(x, b * n, out, b * bytes);
  return out;
}
