// GGUF v2/v3 container: the reader (header, metadata, tensor infos — never tensor data) and the
// matching header writer used by synth. Every count read from the file is checked against the
// bytes left before it is trusted, so a garbage file fails fast as WEFT_ERR_MODEL_CORRUPT.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

import { WeftError } from '../errors.js';
import type { TensorDType, TensorRef } from './types.js';

export type GgufValue = number | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string; // as stored (GGUF naming, e.g. blk.0.attn_q.weight)
  dims: number[]; // GGUF order: dims[0] is the innermost (in_features)
  type: number; // ggml type id
  offset: number; // relative to the data section
}

export interface GgufFile {
  path: string;
  version: number;
  metadata: Map<string, GgufValue>;
  metadataTypes: Map<string, { type: number; elemType?: number }>; // as stored (GGUF_TYPE), to write them again
  tensors: GgufTensorInfo[];
  alignment: number;
  dataOffset: number; // absolute offset of the data section
  fileSize: number;
}

// Metadata value types (gguf.h)
export const GGUF_TYPE = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 } as const;
const SCALAR_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

// ggml tensor types weft reads: [dtype, values per block, bytes per block]
export const GGML_TYPES: Record<number, [TensorDType, number, number]> = {
  0: ['F32', 1, 4],
  1: ['F16', 1, 2],
  2: ['Q4_0', 32, 18],
  3: ['Q4_1', 32, 20],
  6: ['Q5_0', 32, 22],
  7: ['Q5_1', 32, 24],
  8: ['Q8_0', 32, 34],
  10: ['Q2_K', 256, 84],
  11: ['Q3_K', 256, 110],
  12: ['Q4_K', 256, 144],
  13: ['Q5_K', 256, 176],
  14: ['Q6_K', 256, 210],
  30: ['BF16', 1, 2],
};
export const GGML_TYPE_ID = { F32: 0, F16: 1, Q8_0: 8 } as const;
// "F32, F16, …, Q6_K and BF16", from the table, for the error that refuses any other type
const READ_TYPE_NAMES = Object.values(GGML_TYPES)
  .map(([d]) => d)
  .join(', ')
  .replace(/, ([^,]*)$/, ' and $1');
const GGML_TYPE_NAMES = [
  'F32',
  'F16',
  'Q4_0',
  'Q4_1',
  'Q4_2',
  'Q4_3',
  'Q5_0',
  'Q5_1',
  'Q8_0',
  'Q8_1',
  'Q2_K',
  'Q3_K',
  'Q4_K',
  'Q5_K',
  'Q6_K',
  'Q8_K',
  'IQ2_XXS',
  'IQ2_XS',
  'IQ3_XXS',
  'IQ1_S',
  'IQ4_NL',
  'IQ3_S',
  'IQ2_S',
  'IQ4_XS',
  'I8',
  'I16',
  'I32',
  'I64',
  'F64',
  'IQ1_M',
  'BF16',
];
export const ggmlTypeName = (t: number): string => GGML_TYPE_NAMES[t] ?? `type ${t}`;

const GGUF_MAGIC = 0x46554747; // "GGUF" little-endian
const MAX_DIMS = 4;
const CHUNK = 1 << 20;
const UTF8 = new TextDecoder('utf-8');

// Sequential reads over a window of the file, refilled on demand: the metadata of a big-vocab
// model is several MB, so it is read in chunks rather than whole or byte by byte from disk.
class ChunkReader {
  pos = 0;
  #buf = new Uint8Array(0);
  #view = new DataView(this.#buf.buffer);
  #bufStart = 0;
  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly path: string,
  ) {}

  corrupt(what: string): never {
    throw new WeftError('WEFT_ERR_MODEL_CORRUPT', `${this.path}: ${what} (GGUF offset ${this.pos})`);
  }

  remaining(): number {
    return this.size - this.pos;
  }

  // Index into the window of the next n bytes, refilling it when they are not all inside.
  #take(n: number): number {
    if (n > this.remaining()) this.corrupt(`truncated: need ${n} bytes, ${this.remaining()} left`);
    if (this.pos + n > this.#bufStart + this.#buf.length) {
      const len = Math.min(Math.max(CHUNK, n), this.size - this.pos);
      this.#buf = new Uint8Array(len);
      this.#view = new DataView(this.#buf.buffer);
      if (readSync(this.fd, this.#buf, 0, len, this.pos) !== len) this.corrupt('short read');
      this.#bufStart = this.pos;
    }
    const at = this.pos - this.#bufStart;
    this.pos += n;
    return at;
  }

  u32(): number {
    const at = this.#take(4);
    return this.#view.getUint32(at, true);
  } // take first: it may swap the view
  u64(): number {
    const at = this.#take(8);
    const v = this.#view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) this.corrupt(`implausible 64-bit count ${v}`);
    return Number(v);
  }
  string(): string {
    const n = this.u64();
    if (n > this.remaining()) this.corrupt(`string length ${n} runs past the end of the file`);
    const at = this.#take(n);
    return UTF8.decode(this.#buf.subarray(at, at + n));
  }

  scalar(type: number): number | boolean | string {
    if (type === GGUF_TYPE.STRING) return this.string();
    const size = SCALAR_SIZE[type];
    if (size === undefined) this.corrupt(`unknown metadata value type ${type}`);
    const at = this.#take(size),
      v = this.#view;
    switch (type) {
      case GGUF_TYPE.U8:
        return v.getUint8(at);
      case GGUF_TYPE.I8:
        return v.getInt8(at);
      case GGUF_TYPE.U16:
        return v.getUint16(at, true);
      case GGUF_TYPE.I16:
        return v.getInt16(at, true);
      case GGUF_TYPE.U32:
        return v.getUint32(at, true);
      case GGUF_TYPE.I32:
        return v.getInt32(at, true);
      case GGUF_TYPE.F32:
        return v.getFloat32(at, true);
      case GGUF_TYPE.BOOL:
        return v.getUint8(at) !== 0;
      case GGUF_TYPE.U64:
        return Number(v.getBigUint64(at, true));
      case GGUF_TYPE.I64:
        return Number(v.getBigInt64(at, true));
      default:
        return v.getFloat64(at, true);
    }
  }

  value(type: number, depth = 0): GgufValue {
    return type === GGUF_TYPE.ARRAY ? this.array(this.u32(), depth) : this.scalar(type);
  }

  // an array's elements, its element type already read
  array(elemType: number, depth = 0): GgufValue[] {
    if (depth > 2) this.corrupt('arrays nested too deep');
    const count = this.u64();
    // the smallest element is 1 byte (8 for a string's length), so a count beyond that is bogus
    const minSize = elemType === GGUF_TYPE.STRING || elemType === GGUF_TYPE.ARRAY ? 8 : (SCALAR_SIZE[elemType] ?? 1);
    if (count * minSize > this.remaining()) this.corrupt(`array of ${count} elements runs past the end of the file`);
    const out: GgufValue[] = new Array(count);
    for (let i = 0; i < count; i++) out[i] = this.value(elemType, depth + 1);
    return out;
  }
}

export function readGguf(path: string): GgufFile {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new WeftError('WEFT_ERR_MODEL_NOT_FOUND', `${path}: cannot open GGUF file: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new WeftError('WEFT_ERR_MODEL_CORRUPT', `${path}: not a regular file`);
    const r: ChunkReader = new ChunkReader(fd, st.size, path);
    if (r.size < 24) r.corrupt(`file too small for a GGUF header (${r.size} bytes)`);
    if (r.u32() !== GGUF_MAGIC) r.corrupt('bad magic, not a GGUF file');
    const version = r.u32();
    if (version !== 2 && version !== 3) r.corrupt(`GGUF version ${version} is not supported (2 or 3; big-endian files are not)`);
    const numTensors = r.u64();
    const numKv = r.u64();
    // a key/value takes at least 13 bytes and a tensor info at least 32
    if (numKv * 13 + numTensors * 32 > r.remaining()) r.corrupt(`${numKv} metadata keys / ${numTensors} tensors cannot fit in the file`);
    const metadata = new Map<string, GgufValue>();
    const metadataTypes = new Map<string, { type: number; elemType?: number }>();
    for (let i = 0; i < numKv; i++) {
      const key = r.string(),
        type = r.u32();
      if (type !== GGUF_TYPE.ARRAY) {
        metadataTypes.set(key, { type });
        metadata.set(key, r.scalar(type));
        continue;
      }
      const elemType = r.u32();
      metadataTypes.set(key, { type, elemType });
      metadata.set(key, r.array(elemType));
    }
    const tensors: GgufTensorInfo[] = [];
    for (let i = 0; i < numTensors; i++) {
      const name = r.string();
      const numDims = r.u32();
      if (numDims < 1 || numDims > MAX_DIMS) r.corrupt(`tensor ${name} has ${numDims} dimensions`);
      const dims: number[] = [];
      for (let d = 0; d < numDims; d++) dims.push(r.u64());
      tensors.push({ name, dims, type: r.u32(), offset: r.u64() });
    }
    const alignment = metadata.get('general.alignment') ?? 32;
    if (typeof alignment !== 'number' || !Number.isInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0)
      r.corrupt(`general.alignment ${String(alignment)} is not a power of two`);
    const dataOffset = alignUp(r.pos, alignment);
    return { path, version, metadata, metadataTypes, tensors, alignment, dataOffset, fileSize: r.size };
  } catch (e) {
    if (e instanceof WeftError) throw e;
    throw new WeftError('WEFT_ERR_MODEL_CORRUPT', `${path}: unreadable GGUF: ${(e as Error).message}`, { cause: e });
  } finally {
    closeSync(fd);
  }
}

export const alignUp = (n: number, a: number): number => Math.ceil(n / a) * a;

// GGUF tensor names → canonical HF names (llama.cpp's tensor map for llama/qwen2/qwen3).
const LAYER_NAMES: Record<string, string> = {
  attn_q: 'self_attn.q_proj',
  attn_k: 'self_attn.k_proj',
  attn_v: 'self_attn.v_proj',
  attn_output: 'self_attn.o_proj',
  ffn_gate: 'mlp.gate_proj',
  ffn_up: 'mlp.up_proj',
  ffn_down: 'mlp.down_proj',
  attn_norm: 'input_layernorm',
  ffn_norm: 'post_attention_layernorm',
  attn_q_norm: 'self_attn.q_norm',
  attn_k_norm: 'self_attn.k_norm',
};
const GLOBAL_NAMES: Record<string, string> = {
  'token_embd.weight': 'model.embed_tokens.weight',
  'output_norm.weight': 'model.norm.weight',
  'output.weight': 'lm_head.weight',
};

export function hfTensorName(ggufName: string): string | null {
  if (Object.hasOwn(GLOBAL_NAMES, ggufName)) return GLOBAL_NAMES[ggufName]; // own keys: not "constructor"
  const m = /^blk\.(\d+)\.([a-z_]+)\.(weight|bias)$/.exec(ggufName);
  if (!m || !Object.hasOwn(LAYER_NAMES, m[2])) return null;
  return `model.layers.${m[1]}.${LAYER_NAMES[m[2]]}.${m[3]}`;
}

export function ggufTensorName(hfName: string): string | null {
  for (const [g, h] of Object.entries(GLOBAL_NAMES)) if (h === hfName) return g;
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(hfName);
  const short = m && Object.entries(LAYER_NAMES).find(([, h]) => h === m[2]);
  return short ? `blk.${m[1]}.${short[0]}.${m[3]}` : null;
}

export function ggufTensorBytes(info: GgufTensorInfo, path: string): number {
  const t = GGML_TYPES[info.type];
  if (!t)
    throw new WeftError(
      'WEFT_ERR_MODEL_UNSUPPORTED_DTYPE',
      `${path}: tensor ${info.name} has type ${ggmlTypeName(info.type)}; weft reads ${READ_TYPE_NAMES}`,
    );
  const [, blockValues, blockBytes] = t;
  if (info.dims.some((d) => !Number.isInteger(d) || d < 1))
    throw new WeftError('WEFT_ERR_MODEL_CORRUPT', `${path}: tensor ${info.name} has dimensions [${info.dims.join(', ')}]`);
  if (info.dims[0] % blockValues !== 0)
    throw new WeftError('WEFT_ERR_MODEL_CORRUPT', `${path}: tensor ${info.name}: row length ${info.dims[0]} is not a multiple of ${blockValues}`);
  const count = info.dims.reduce((a, b) => a * b, 1);
  return (count / blockValues) * blockBytes;
}

// TensorRefs under canonical HF names, shapes in HF orientation ([out, in]). Tensors weft
// does not use (e.g. rope_freqs.weight) are returned separately under their GGUF names.
export function ggufTensorRefs(g: GgufFile): { tensors: Record<string, TensorRef>; other: Record<string, TensorRef> } {
  const tensors: Record<string, TensorRef> = {};
  const other: Record<string, TensorRef> = {};
  for (const info of g.tensors) {
    const byteLength = ggufTensorBytes(info, g.path);
    const offset = g.dataOffset + info.offset;
    if (info.offset % g.alignment !== 0)
      throw new WeftError('WEFT_ERR_MODEL_CORRUPT', `${g.path}: tensor ${info.name} offset ${info.offset} is not aligned to ${g.alignment}`);
    if (offset + byteLength > g.fileSize)
      throw new WeftError(
        'WEFT_ERR_MODEL_CORRUPT',
        `${g.path}: tensor ${info.name} data (${byteLength} bytes at ${offset}) runs past the end of the file (${g.fileSize} bytes): truncated?`,
      );
    const ref: TensorRef = { file: g.path, offset, byteLength, dtype: GGML_TYPES[info.type][0], shape: [...info.dims].reverse() };
    const hf = hfTensorName(info.name);
    if (hf) tensors[hf] = ref;
    else other[info.name] = ref;
  }
  return { tensors, other };
}

// ---- writing (synth) ----

export interface GgufEntry {
  key: string;
  type: number; // GGUF_TYPE
  elemType?: number; // for arrays
  value: GgufValue;
}

// The header up to (and including the padding before) the data section. Tensor offsets in
// `tensors` are relative to the data section and must already be aligned (general.alignment, 32
// when the entries do not set it).
export function encodeGgufHeader(entries: GgufEntry[], tensors: GgufTensorInfo[]): Uint8Array {
  const alignment = Number(entries.find((e) => e.key === 'general.alignment')?.value ?? 32);
  const w = new ByteWriter();
  const str = (s: string) => {
    const b = UTF8_ENC.encode(s);
    w.u64(b.length);
    w.bytes(b);
  };
  const scalar = (type: number, v: GgufValue) => {
    if (type === GGUF_TYPE.STRING) return str(v as string);
    const n = v as number,
      d = w.reserve(SCALAR_SIZE[type]),
      at = 0;
    switch (type) {
      case GGUF_TYPE.U8:
        d.setUint8(at, n);
        break;
      case GGUF_TYPE.I8:
        d.setInt8(at, n);
        break;
      case GGUF_TYPE.U16:
        d.setUint16(at, n, true);
        break;
      case GGUF_TYPE.I16:
        d.setInt16(at, n, true);
        break;
      case GGUF_TYPE.U32:
        d.setUint32(at, n, true);
        break;
      case GGUF_TYPE.I32:
        d.setInt32(at, n, true);
        break;
      case GGUF_TYPE.F32:
        d.setFloat32(at, n, true);
        break;
      case GGUF_TYPE.BOOL:
        d.setUint8(at, v ? 1 : 0);
        break;
      case GGUF_TYPE.U64:
        d.setBigUint64(at, BigInt(n), true);
        break;
      case GGUF_TYPE.I64:
        d.setBigInt64(at, BigInt(n), true);
        break;
      case GGUF_TYPE.F64:
        d.setFloat64(at, n, true);
        break;
      default:
        throw new Error(`GGUF writer: bad value type ${type}`);
    }
  };
  w.u32(GGUF_MAGIC);
  w.u32(3);
  w.u64(tensors.length);
  w.u64(entries.length);
  for (const e of entries) {
    str(e.key);
    w.u32(e.type);
    if (e.type !== GGUF_TYPE.ARRAY) {
      scalar(e.type, e.value);
      continue;
    }
    const arr = e.value as GgufValue[];
    w.u32(e.elemType!);
    w.u64(arr.length);
    for (const v of arr) scalar(e.elemType!, v);
  }
  for (const t of tensors) {
    str(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(t.type);
    w.u64(t.offset);
  }
  w.reserve(alignUp(w.length, alignment) - w.length);
  return w.finish();
}

const UTF8_ENC = new TextEncoder();

// A growable little-endian byte buffer.
class ByteWriter {
  #buf = new Uint8Array(1 << 16);
  length = 0;
  reserve(n: number): DataView {
    if (this.length + n > this.#buf.length) {
      const next = new Uint8Array(Math.max(this.#buf.length * 2, this.length + n));
      next.set(this.#buf.subarray(0, this.length));
      this.#buf = next;
    }
    const view = new DataView(this.#buf.buffer, this.length, n);
    this.length += n;
    return view;
  }
  u32(v: number): void {
    this.reserve(4).setUint32(0, v, true);
  }
  u64(v: number): void {
    this.reserve(8).setBigUint64(0, BigInt(v), true);
  }
  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    this.#buf.set(b, this.length - b.length);
  }
  finish(): Uint8Array {
    return this.#buf.slice(0, this.length);
  }
}
