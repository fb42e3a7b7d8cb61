// Test helper: a GGUF tensor's values as f32, whatever type weft writes or llama.cpp writes it in.
import { closeSync, openSync, readSync } from 'node:fs';

import { dequantize, QUANT_BLOCK, type QuantType } from '../../src/model/ggml-dequant.js';
import { ggmlTypeName, readGguf, type GgufFile } from '../../src/model/gguf.js';
import { f16ToF32 } from '../../src/model/safetensors.js';

// A tensor's stored bytes, its type name and value count.
export function tensorBytes(g: GgufFile, name: string): { type: string; n: number; buf: Uint8Array } {
  const info = g.tensors.find((x) => x.name === name);
  if (!info) throw new Error(`${g.path}: no tensor ${name}`);
  const n = info.dims.reduce((a, b) => a * b, 1),
    type = ggmlTypeName(info.type);
  const bytes = type === 'F32' ? n * 4 : type === 'F16' ? n * 2 : (n / QUANT_BLOCK[type as QuantType][0]) * QUANT_BLOCK[type as QuantType][1];
  const buf = new Uint8Array(bytes),
    fd = openSync(g.path, 'r');
  try {
    readSync(fd, buf, 0, bytes, g.dataOffset + info.offset);
  } finally {
    closeSync(fd);
  }
  return { type, n, buf };
}

export function tensorValues(g: GgufFile, name: string): { type: string; values: Float32Array } {
  const { type, n, buf } = tensorBytes(g, name);
  if (type === 'F32') return { type, values: new Float32Array(buf.buffer) };
  if (type === 'F16') return { type, values: Float32Array.from(new Uint16Array(buf.buffer), f16ToF32) };
  return { type, values: dequantize(type as QuantType, buf, n) };
}

// Σ (a − src)² over every tensor of two files holding the same tensors (their errors against one source).
export function squaredErrors(srcPath: string, paths: string[]): number[] {
  const src = readGguf(srcPath),
    files = paths.map((p) => readGguf(p));
  const sums = paths.map(() => 0);
  for (const info of src.tensors) {
    const x = tensorValues(src, info.name).values;
    files.forEach((f, k) => {
      const y = tensorValues(f, info.name).values;
      for (let i = 0; i < x.length; i++) sums[k] += (y[i] - x[i]) ** 2;
    });
  }
  return sums;
}
