// Writing a GGUF file tensor by tensor: the header first (every tensor's type and offset is known
// from its shape), then each tensor's rows as its producer streams them, encoded on the way, so a
// model never has to be held in f32 at once. synth and quantize both write through here.
import { open } from 'node:fs/promises';

import { alignUp, encodeGgufHeader, GGML_TYPES, type GgufEntry, type GgufTensorInfo } from './gguf.js';
import { QUANT_BLOCK, quantizedBytes, type QuantType } from './ggml-dequant.js';
import { quantize } from './ggml-quants.js';
import type { TensorType } from './quant-mix.js';
import { f32ToF16 } from './safetensors.js';

const ALIGNMENT = 32; // GGUF's default; the writer sets no general.alignment

// ggml type ids (ggml.h's enum ggml_type) by name, from the one GGML type table (gguf.ts)
const GGML_WRITE_ID = Object.fromEntries(Object.entries(GGML_TYPES).map(([id, [d]]) => [d, Number(id)])) as Record<TensorType, number>;

export function tensorTypeBytes(type: TensorType, numValues: number): number {
  return type === 'F32' ? numValues * 4 : type === 'F16' ? numValues * 2 : quantizedBytes(type, numValues);
}

// Rows (a whole number of them, row-major) encoded as `type`.
export function encodeRows(type: TensorType, rows: Float32Array): Uint8Array {
  if (type === 'F32') return new Uint8Array(rows.buffer, rows.byteOffset, rows.byteLength);
  if (type === 'F16') {
    const h = new Uint16Array(rows.length);
    for (let i = 0; i < rows.length; i++) h[i] = f32ToF16(rows[i]);
    return new Uint8Array(h.buffer);
  }
  return quantize(type, rows);
}

export interface GgufTensorSource {
  name: string; // GGUF name
  dims: number[]; // GGUF order: dims[0] is the row length
  type: TensorType;
  // Calls `emit` with consecutive whole rows (as f32) until all rows are emitted.
  produce(emit: (rows: Float32Array) => Promise<void>): Promise<void>;
}

// onProgress: tensors written so far, of all.
export async function writeGgufFile(
  path: string,
  entries: GgufEntry[],
  tensors: GgufTensorSource[],
  onProgress?: (done: number, total: number) => void,
): Promise<void> {
  const infos: (GgufTensorInfo & { bytes: number })[] = [];
  let at = 0;
  for (const t of tensors) {
    const n = t.dims.reduce((a, b) => a * b, 1);
    if (t.type !== 'F32' && t.type !== 'F16' && t.dims[0] % QUANT_BLOCK[t.type as QuantType][0] !== 0)
      throw new Error(`GGUF writer: ${t.name} rows of ${t.dims[0]} cannot be ${t.type}`); // quant-mix falls back before this
    infos.push({ name: t.name, dims: t.dims, type: GGML_WRITE_ID[t.type], offset: at, bytes: tensorTypeBytes(t.type, n) });
    at = alignUp(at + infos[infos.length - 1].bytes, ALIGNMENT);
  }
  const fh = await open(path, 'w');
  try {
    await fh.write(encodeGgufHeader(entries, infos));
    for (const [i, t] of tensors.entries()) {
      onProgress?.(i, tensors.length);
      let written = 0;
      await t.produce(async (rows) => {
        const b = encodeRows(t.type, rows);
        written += b.length;
        await fh.write(b);
      });
      if (written !== infos[i].bytes) throw new Error(`GGUF writer: ${t.name} produced ${written} bytes, expected ${infos[i].bytes}`);
      const pad = alignUp(written, ALIGNMENT) - written;
      if (pad) await fh.write(new Uint8Array(pad));
    }
    onProgress?.(tensors.length, tensors.length);
  } finally {
    await fh.close();
  }
}
