// safetensors: read a header (single file or sharded index) into TensorRefs without touching the
// data, write a file from streamed tensor data, and the float conversions both sides need.
import { closeSync, existsSync, fstatSync, openSync, readFileSync, readSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

import { WeftError } from '../errors.js';
import { describeValue } from './describe.js';
import type { TensorDType, TensorRef } from './types.js';

// Element sizes of every safetensors dtype, so a bad one can be named before its size is needed.
const ELEMENT_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E5M2: 1,
  F8_E4M3: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};
const ACCEPTED: ReadonlySet<string> = new Set<TensorDType>(['F32', 'F16', 'BF16', 'I8']);
const MAX_HEADER_BYTES = 100_000_000; // the format's own limit

const corrupt = (path: string, what: string): never => {
  throw new WeftError('WEFT_ERR_MODEL_CORRUPT', `${path}: ${what}`);
};

export function dtypeBytes(dtype: string): number {
  return ELEMENT_BYTES[dtype] ?? 0;
}

function readHeader(path: string): { header: Record<string, unknown>; dataStart: number; fileSize: number } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new WeftError('WEFT_ERR_MODEL_NOT_FOUND', `${path}: cannot open safetensors file: ${(e as Error).message}`);
  }
  try {
    const st = fstatSync(fd);
    // a directory opens for reading too ("" or "." as a shard name in an index), and then fails
    // every read with EISDIR
    if (!st.isFile()) corrupt(path, 'not a regular file');
    const fileSize = st.size;
    if (fileSize < 8) corrupt(path, `file too small for a safetensors header (${fileSize} bytes)`);
    const lenBuf = new Uint8Array(8);
    readSync(fd, lenBuf, 0, 8, 0);
    const len = new DataView(lenBuf.buffer).getBigUint64(0, true);
    if (len < 2n || len > BigInt(Math.min(MAX_HEADER_BYTES, fileSize - 8)))
      corrupt(path, `header length ${len} is impossible for a ${fileSize}-byte file`);
    const buf = new Uint8Array(Number(len));
    if (readSync(fd, buf, 0, buf.length, 8) !== buf.length) corrupt(path, 'short read of the header');
    let header: unknown;
    try {
      header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(buf));
    } catch (e) {
      corrupt(path, `header is not valid JSON: ${(e as Error).message}`);
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) corrupt(path, 'header is not a JSON object');
    return { header: header as Record<string, unknown>, dataStart: 8 + Number(len), fileSize };
  } finally {
    closeSync(fd);
  }
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

// TensorRefs of one .safetensors file, with absolute offsets; __metadata__ is ignored.
export function readSafetensors(path: string): Record<string, TensorRef> {
  const file = resolve(path);
  const { header, dataStart, fileSize } = readHeader(file);
  const out: Record<string, TensorRef> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null || typeof e.dtype !== 'string' || !Array.isArray(e.shape) || !Array.isArray(e.data_offsets))
      corrupt(file, `tensor ${name}: entry needs dtype, shape and data_offsets`);
    const dtype = e.dtype as string,
      shape = e.shape as unknown[],
      offsets = e.data_offsets as unknown[];
    if (!ACCEPTED.has(dtype)) {
      throw new WeftError('WEFT_ERR_MODEL_UNSUPPORTED_DTYPE', `${file}: tensor ${name} has dtype ${dtype}; weft reads F32, F16, BF16 and I8`);
    }
    if (!shape.every(isCount)) corrupt(file, `tensor ${name}: bad shape ${describeValue(shape)}`);
    if (offsets.length !== 2 || !offsets.every(isCount)) corrupt(file, `tensor ${name}: bad data_offsets ${describeValue(offsets)}`);
    const [begin, end] = offsets as number[];
    const byteLength = (shape as number[]).reduce((a, b) => a * b, 1) * dtypeBytes(dtype);
    if (end - begin !== byteLength)
      corrupt(
        file,
        `tensor ${name}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes, ` + `shape ${describeValue(shape)} ${dtype} needs ${byteLength}`,
      );
    if (dataStart + end > fileSize)
      corrupt(file, `tensor ${name}: data ends at byte ${dataStart + end}, past the end of the file (${fileSize} bytes): truncated?`);
    out[name] = { file, offset: dataStart + begin, byteLength, dtype: dtype as TensorDType, shape: shape as number[] };
  }
  return out;
}

// A sharded checkpoint: model.safetensors.index.json's weight_map names the shard of each tensor.
export function readSafetensorsIndex(indexPath: string): Record<string, TensorRef> {
  const file = resolve(indexPath);
  let index: { weight_map?: unknown };
  try {
    index = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return corrupt(file, `not a readable JSON index: ${(e as Error).message}`);
  }
  const map = index?.weight_map;
  if (typeof map !== 'object' || map === null) return corrupt(file, 'no weight_map object');
  const shards = new Map<string, Record<string, TensorRef>>();
  const out: Record<string, TensorRef> = {};
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.includes('..')) corrupt(file, `weight_map entry ${name} has a bad shard name`);
    const shardPath = join(dirname(file), shard as string);
    if (!shards.has(shardPath)) {
      if (!existsSync(shardPath)) throw new WeftError('WEFT_ERR_MODEL_NOT_FOUND', `${file}: shard ${shard} (for ${name}) does not exist`);
      shards.set(shardPath, readSafetensors(shardPath));
    }
    const ref = shards.get(shardPath)![name];
    if (!ref) corrupt(file, `weight_map puts ${name} in ${shard}, which has no such tensor`);
    out[name] = ref;
  }
  return out;
}

// ---- writing ----

export interface TensorEntry {
  name: string;
  dtype: TensorDType;
  shape: number[];
}

// Writes the header at once, then takes the tensors' bytes in entry order, in any chunking.
export class SafetensorsWriter {
  #written = 0;
  private constructor(
    private readonly fh: FileHandle,
    private readonly path: string,
    private readonly dataBytes: number,
  ) {}

  static async create(path: string, entries: TensorEntry[], metadata: Record<string, string> = { format: 'pt' }): Promise<SafetensorsWriter> {
    const header: Record<string, unknown> = { __metadata__: metadata };
    let at = 0;
    for (const e of entries) {
      const n = e.shape.reduce((a, b) => a * b, 1) * dtypeBytes(e.dtype);
      header[e.name] = { dtype: e.dtype, shape: e.shape, data_offsets: [at, at + n] };
      at += n;
    }
    const json = new TextEncoder().encode(JSON.stringify(header));
    const padded = new Uint8Array(8 + json.length + ((8 - (json.length % 8)) % 8)).fill(0x20); // keeps the data 8-byte aligned
    new DataView(padded.buffer).setBigUint64(0, BigInt(padded.length - 8), true);
    padded.set(json, 8);
    const fh = await open(path, 'w');
    await fh.write(padded);
    return new SafetensorsWriter(fh, path, at);
  }

  async write(data: Uint8Array): Promise<void> {
    this.#written += data.byteLength;
    await this.fh.write(data);
  }

  async close(): Promise<void> {
    await this.fh.close();
    if (this.#written !== this.dataBytes) throw new Error(`${this.path}: wrote ${this.#written} data bytes, header says ${this.dataBytes}`);
  }
}

// ---- float conversions (Node 20 has no Math.f16round) ----

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

// IEEE half from a float, round to nearest even (what numpy / F16C do).
export function f32ToF16(v: number): number {
  f32[0] = v;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const e = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  const exp = e - 127 + 15;
  if (exp >= 0x1f) return sign | 0x7c00;
  if (exp <= 0) {
    if (exp < -10) return sign;
    const full = mant | 0x800000,
      shift = 14 - exp;
    let h = full >>> shift;
    const rem = full & ((1 << shift) - 1),
      half = 1 << (shift - 1);
    if (rem > half || (rem === half && h & 1)) h++;
    return sign | h;
  }
  let h = (exp << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && h & 1)) h++; // a carry into the exponent is still right
  return sign | h;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1,
    exp = (h >>> 10) & 0x1f,
    mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

// A tensor's raw bytes as floats (F32/F16/BF16; the host is little-endian like the files).
export function toFloat32(data: Uint8Array, dtype: TensorDType): Float32Array {
  if (dtype === 'F32') return new Float32Array(data.slice().buffer);
  if (dtype !== 'F16' && dtype !== 'BF16') throw new Error(`toFloat32: ${dtype} is not a float dtype`);
  const halves = new Uint16Array(data.slice().buffer);
  const out = new Float32Array(halves.length);
  const conv = dtype === 'F16' ? f16ToF32 : bf16ToF32;
  for (let i = 0; i < out.length; i++) out[i] = conv(halves[i]);
  return out;
}

// Reads (part of) one tensor's bytes, for quantize and the tests; the engine mmaps instead.
export function readTensorBytes(ref: TensorRef, start = 0, length = ref.byteLength - start): Uint8Array {
  const fd = openSync(ref.file, 'r');
  try {
    const buf = new Uint8Array(length);
    if (readSync(fd, buf, 0, length, ref.offset + start) !== length) corrupt(ref.file, `short read at ${ref.offset + start}`);
    return buf;
  } finally {
    closeSync(fd);
  }
}
