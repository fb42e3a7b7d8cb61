// Seeded mutations of model files for the TypeScript fuzzer: byte-level (bit flips, boundary
// integers of 1/2/4/8 bytes, truncation, length-field inflation, chunk duplication, deletion and
// insertion) and structure-aware (GGUF metadata values and tensor infos, re-encoded; any JSON
// document: a value replaced by a boundary value, deleted, duplicated or nested very deep).
import { encodeGgufHeader, GGUF_TYPE, type GgufEntry, type GgufFile, type GgufTensorInfo, type GgufValue } from '../../src/model/gguf.js';
import type { Rng } from '../serve/rng.js';

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[rng.int(0, xs.length - 1)];

// ---- bytes ----

const BOUNDARY_U64 = [
  0n,
  1n,
  2n,
  0x7fn,
  0x80n,
  0xffn,
  0x7fffn,
  0x8000n,
  0xffffn,
  0x7fffffffn,
  0x80000000n,
  0xffffffffn,
  0x100000000n,
  (1n << 53n) - 1n,
  1n << 53n,
  (1n << 53n) + 1n,
  (1n << 63n) - 1n,
  1n << 63n,
  (1n << 64n) - 1n,
];

function boundary(rng: Rng, fileSize: number): bigint {
  const r = rng.int(0, 5);
  if (r === 0) return BigInt(fileSize + rng.int(-2, 2) > 0 ? fileSize + rng.int(-2, 2) : 0);
  if (r === 1) return BigInt(rng.int(0, 64)) << BigInt(rng.int(0, 40));
  return pick(rng, BOUNDARY_U64);
}

function writeUint(b: Uint8Array, at: number, width: number, v: bigint): void {
  for (let i = 0; i < width && at + i < b.length; i++) b[at + i] = Number((v >> BigInt(8 * i)) & 0xffn);
}

function readU64(b: Uint8Array, at: number): bigint {
  let v = 0n;
  for (let i = 7; i >= 0; i--) v = (v << 8n) | BigInt(b[at + i]);
  return v;
}

const splice = (b: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array => {
  const out = new Uint8Array(b.length - remove + insert.length);
  out.set(b.subarray(0, at));
  out.set(insert, at);
  out.set(b.subarray(at + remove), at + insert.length);
  return out;
};

// One byte-level mutation; `hot` is where the parsed structure lives (headers), hit 9 times in 10.
function mutateBytesOnce(rng: Rng, b: Uint8Array, hot: number): Uint8Array {
  if (b.length === 0) return new Uint8Array([rng.int(0, 255)]);
  const end = rng.next() < 0.9 ? Math.max(1, Math.min(hot, b.length)) : b.length;
  const at = rng.int(0, end - 1);
  const out = b.slice();
  switch (rng.int(0, 8)) {
    case 0:
      out[at] ^= 1 << rng.int(0, 7);
      return out;
    case 1:
      out[at] = pick(rng, [0, 1, 0x7f, 0x80, 0xff, rng.int(0, 255)]);
      return out;
    case 2:
      writeUint(out, at, pick(rng, [2, 4, 8]), boundary(rng, b.length));
      return out;
    case 3:
      return b.slice(0, at); // truncation
    case 4: {
      // a plausible length or count (0 < v < file size) made larger
      for (let tries = 0; tries < 64; tries++) {
        const p = rng.int(0, Math.max(0, Math.min(end, b.length - 8)));
        const v = readU64(b, p);
        if (v === 0n || v >= BigInt(b.length)) continue;
        writeUint(out, p, 8, pick(rng, [v * 2n, v << BigInt(rng.int(8, 40)), BigInt(b.length - p), BigInt(b.length), v + 1n]));
        return out;
      }
      return out;
    }
    case 5: {
      // chunk duplication
      const len = rng.int(1, Math.min(4096, b.length - at));
      return splice(b, rng.int(0, b.length), 0, b.slice(at, at + len));
    }
    case 6:
      return splice(b, at, rng.int(1, Math.min(256, b.length - at)), new Uint8Array(0));
    case 7:
      return splice(
        b,
        at,
        0,
        Uint8Array.from({ length: rng.int(1, 32) }, () => rng.int(0, 255)),
      );
    default: {
      // overwrite with another chunk of the file
      const len = rng.int(1, Math.min(64, b.length - at)),
        from = rng.int(0, b.length - len);
      out.set(b.subarray(from, from + len), at);
      return out;
    }
  }
}

export function mutateBytes(rng: Rng, b: Uint8Array, hot: number): Uint8Array {
  for (let i = rng.int(1, 4); i > 0; i--) b = mutateBytesOnce(rng, b, hot);
  return b;
}

// ---- JSON ----

const BOUNDARY_JSON: unknown[] = [
  0,
  -1,
  1,
  2,
  3,
  0.5,
  -0.5,
  31,
  32,
  33,
  2 ** 31 - 1,
  2 ** 31,
  2 ** 32,
  2 ** 53,
  2 ** 53 + 2,
  2 ** 63,
  1e308,
  -1e308,
  5e-324,
  null,
  true,
  false,
  '',
  '0',
  '32',
  'F32',
  'Q8_0',
  'I8',
  'llama',
  'constructor',
  '__proto__',
  'toString',
  [],
  [0],
  [1, 1],
  {},
  { type: 'llama3' },
];

// Arrays nested n deep, as a marker that jsonText() expands (JSON.stringify itself would recurse).
const deep = (n: number): string => `@@deep${n}@@`;

export function jsonText(v: unknown): string {
  return JSON.stringify(v).replace(/"@@deep(\d+)@@"/g, (_, n: string) => '['.repeat(Number(n)) + ']'.repeat(Number(n)));
}

// A mutated copy of a JSON value: one node somewhere in it replaced, deleted, duplicated or nested.
export function mutateJson(rng: Rng, v: unknown, depth = 0): unknown {
  const isObj = typeof v === 'object' && v !== null;
  if (!isObj || (depth > 0 && rng.next() < 0.25)) {
    switch (rng.int(0, 5)) {
      case 0:
        return deep(rng.int(1000, 100_000));
      case 1:
        return 'x'.repeat(rng.int(1, 1 << 17));
      case 2:
        return Array.from({ length: rng.int(0, 20000) }, () => 0);
      case 3:
        return typeof v === 'number' ? v * pick(rng, [-1, 2, 1e9, 0.5]) : pick(rng, BOUNDARY_JSON);
      default:
        return pick(rng, BOUNDARY_JSON);
    }
  }
  if (Array.isArray(v)) {
    const out = [...v];
    if (out.length === 0 || rng.next() < 0.15) {
      out.push(pick(rng, BOUNDARY_JSON));
      return out;
    }
    const i = rng.int(0, out.length - 1);
    const r = rng.next();
    if (r < 0.1) out.splice(i, 1);
    else if (r < 0.2) out.splice(i, 0, out[i]);
    else out[i] = mutateJson(rng, out[i], depth + 1);
    return out;
  }
  const out: Record<string, unknown> = { ...(v as Record<string, unknown>) };
  const keys = Object.keys(out);
  if (keys.length === 0 || rng.next() < 0.1) {
    Object.defineProperty(out, pick(rng, ['__metadata__', '__proto__', 'constructor', 'vocab', 'shape', ...keys]), {
      value: pick(rng, BOUNDARY_JSON),
      enumerable: true,
      writable: true,
      configurable: true,
    });
    return out;
  }
  const k = pick(rng, keys);
  if (rng.next() < 0.1) delete out[k];
  else out[k] = mutateJson(rng, out[k], depth + 1);
  return out;
}

// ---- GGUF ----

// Metadata back to typed entries (types chosen by value, as llama.cpp's writers would).
function entryOf(key: string, v: GgufValue): GgufEntry {
  const typeOf = (x: GgufValue): number =>
    typeof x === 'string'
      ? GGUF_TYPE.STRING
      : typeof x === 'boolean'
        ? GGUF_TYPE.BOOL
        : Array.isArray(x)
          ? GGUF_TYPE.ARRAY
          : !Number.isInteger(x)
            ? GGUF_TYPE.F32
            : x < 0
              ? GGUF_TYPE.I32
              : x > 0xffffffff
                ? GGUF_TYPE.U64
                : GGUF_TYPE.U32;
  if (!Array.isArray(v)) return { key, type: typeOf(v), value: v };
  const elem = v.length ? typeOf(v[0]) : GGUF_TYPE.U8;
  return { key, type: GGUF_TYPE.ARRAY, elemType: elem === GGUF_TYPE.ARRAY ? GGUF_TYPE.U8 : elem, value: v };
}

const GGUF_NUMBERS = [0, 1, 2, 3, 7, 31, 32, 33, 64, 4095, 65535, 2 ** 31 - 1, 2 ** 32 - 1, 2 ** 40, 2 ** 53 - 1, -1, 0.5, NaN, Infinity];

function mutateValue(rng: Rng, v: GgufValue): GgufValue {
  if (Array.isArray(v)) {
    const out = [...v];
    const r = rng.int(0, 5);
    if (r === 0) return [];
    if (r === 1 && out.length) {
      const i = rng.int(0, out.length - 1);
      out[i] = mutateValue(rng, out[i]);
      return out;
    }
    if (r === 2 && out.length) return out.concat(out.slice(0, rng.int(1, out.length))); // duplicates
    if (r === 3 && out.length) return out.slice(0, rng.int(0, out.length - 1));
    if (r === 4 && out.length && typeof out[0] === 'string') {
      // one very long token / merge
      out[rng.int(0, out.length - 1)] = pick(rng, ['a', '▁', 'ab ', '<0x41>', '\ud800']).repeat(rng.int(100, 1 << 17));
      return out;
    }
    return out.map((x) => (typeof x === 'number' && rng.next() < 0.05 ? pick(rng, GGUF_NUMBERS) : x));
  }
  if (typeof v === 'number') return rng.next() < 0.7 ? pick(rng, GGUF_NUMBERS) : 'x';
  if (typeof v === 'string')
    return pick(rng, ['', 'llama', 'gpt2', 'qwen2', 'qwen3', 'linear', 'llama3', 'default', 'constructor', 'x'.repeat(rng.int(1, 5000)), 7]);
  return !v;
}

function mutateTensor(rng: Rng, t: GgufTensorInfo, all: GgufTensorInfo[]): GgufTensorInfo {
  const dims = [...t.dims];
  switch (rng.int(0, 5)) {
    case 0:
      dims[rng.int(0, dims.length - 1)] = pick(rng, [0, 1, 31, 33, 2 ** 31, 2 ** 32 + 32, 2 ** 40, 2 ** 53 - 1]);
      break;
    case 1:
      dims.reverse();
      break;
    case 2:
      dims.push(pick(rng, [1, 2, 0]));
      break;
    case 3:
      return { ...t, type: rng.int(0, 40) };
    case 4:
      return { ...t, offset: pick(rng, [t.offset + 1, t.offset + 32, 2 ** 40, 2 ** 53 - 32, 0, ...all.map((x) => x.offset)]) };
    default: {
      const names = ['rope_freqs.weight', 'blk.99999.attn_q.weight', 'blk.0.constructor.weight', 'constructor', ''];
      return { ...t, name: pick(rng, [...all.map((x) => x.name), ...names]) };
    }
  }
  return { ...t, dims };
}

// A GGUF file with its metadata or tensor infos edited, followed by the seed's data section; null
// when the header writer cannot express the edit.
export function mutateGguf(rng: Rng, g: GgufFile, data: Uint8Array): Uint8Array | null {
  const meta = new Map(g.metadata);
  let tensors = g.tensors.map((t) => ({ ...t, dims: [...t.dims] }));
  for (let n = rng.int(1, 3); n > 0; n--) {
    const r = rng.next();
    if (r < 0.55) {
      const keys = [...meta.keys()];
      const k = pick(rng, keys);
      if (rng.next() < 0.1) meta.delete(k);
      else meta.set(k, mutateValue(rng, meta.get(k)!));
    } else if (r < 0.65) {
      meta.set('general.alignment', pick(rng, [0, 1, 3, 8, 64, 4096]));
    } else if (r < 0.9 && tensors.length) {
      const i = rng.int(0, tensors.length - 1);
      tensors[i] = mutateTensor(rng, tensors[i], tensors);
    } else if (tensors.length) {
      tensors = rng.next() < 0.5 ? tensors.filter((_, i) => i !== rng.int(0, tensors.length - 1)) : [...tensors, pick(rng, tensors)];
    }
  }
  // the writer pads the header to general.alignment: no huge values (byte mutations reach those)
  const alignment = meta.get('general.alignment');
  if (typeof alignment === 'number' && !(alignment <= 4096)) meta.set('general.alignment', 64);
  let header: Uint8Array;
  try {
    header = encodeGgufHeader(
      [...meta].map(([k, v]) => entryOf(k, v)),
      tensors,
    );
  } catch {
    return null;
  }
  const out = new Uint8Array(header.length + data.length);
  out.set(header);
  out.set(data, header.length);
  return out;
}
