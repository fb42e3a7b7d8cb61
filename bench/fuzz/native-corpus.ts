// Seeds for the native libFuzzer target (native/fuzz/fuzz_model_load.cc): each seed model, read
// by the TypeScript loader, becomes the ModelSpec the server would hand to native code for each
// weight dtype and target, packed with the one file its tensors point into, in the layout the
// target reads (documented at the top of fuzz_model_load.cc). BF16 and F16 copies of the float
// models cover the dtypes no seed file has.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { loadModelSpec } from '../../src/model/load.js';
import { checkpointKind } from '../../src/model/types.js';
import { f32ToF16 } from '../../src/model/safetensors.js';
import { toNativeModelSpec, type NativeModelSpec, type WeightDtype } from '../../src/workers/binding.js';
import { LeBytes } from './bytes.js';

const WEIGHT_DTYPES: WeightDtype[] = ['f32', 'int8', 'f16', 'bf16']; // quant: its own flag bit
// native TensorDType's order (weft_engine.h)
export const TENSOR_DTYPES = ['F32', 'F16', 'BF16', 'Q8_0', 'I8', 'Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q4_K', 'Q5_K', 'Q6_K', 'Q2_K', 'Q3_K'];
const ROPE_SCALING = { none: 0, linear: 1, llama3: 2 } as const;
const BIG_SEED_BYTES = 256 << 10;

export function encodeNativeInput(spec: NativeModelSpec, file: Uint8Array): Uint8Array {
  const c = spec.config,
    w = new LeBytes();
  w.u8(
    (spec.weightDtype === 'quant' ? 128 : WEIGHT_DTYPES.indexOf(spec.weightDtype)) |
      (spec.target === 'cuda' ? 4 : 0) |
      (spec.ropeInterleaved ? 8 : 0) |
      (c.tieEmbeddings ? 16 : 0) |
      (c.qkvBias ? 32 : 0) |
      (c.qkNorm ? 64 : 0),
  );
  for (const v of [c.dim, c.numLayers, c.numHeads, c.numKvHeads, c.headDim, c.ffnDim, c.vocabSize, c.maxPositions]) w.i32(v);
  const rs = c.ropeScaling;
  w.u8(ROPE_SCALING[rs?.type ?? 'none'])
    .f32(c.rmsEps)
    .f32(c.ropeTheta)
    .f32(rs?.factor ?? 1);
  w.f32(rs?.type === 'llama3' ? rs.lowFreqFactor : 1).f32(rs?.type === 'llama3' ? rs.highFreqFactor : 4);
  w.i32(rs?.type === 'llama3' ? rs.originalMaxPositions : 8192);
  w.u16(spec.tensors.length);
  for (const t of spec.tensors) {
    if (t.file !== spec.tensors[0].file) throw new Error(`native corpus: ${t.name} is in a second file (${t.file})`);
    const name = new TextEncoder().encode(t.name);
    w.u8(name.length).bytes(name).u8(TENSOR_DTYPES.indexOf(t.dtype)).u8(t.shape.length);
    for (const d of t.shape) w.i64(BigInt(d));
    w.u64(BigInt(t.offset)).u64(BigInt(t.byteLength));
  }
  return w.bytes(file).finish();
}

// The same spec with every F32 tensor rewritten as `dtype` into a new file (other tensors copied).
function retyped(spec: NativeModelSpec, file: Uint8Array, dtype: 'F16' | 'BF16'): [NativeModelSpec, Uint8Array] {
  const w = new LeBytes();
  const tensors = spec.tensors.map((t) => {
    const offset = w.length;
    const data = file.subarray(t.offset, t.offset + t.byteLength);
    if (t.dtype !== 'F32' || t.name.endsWith('_scale')) {
      w.bytes(data);
      return { ...t, offset };
    }
    const floats = new Float32Array(data.slice().buffer);
    for (const f of floats) w.u16(dtype === 'F16' ? f32ToF16(f) : bf16Bits(f));
    return { ...t, offset, byteLength: floats.length * 2, dtype };
  });
  return [{ ...spec, tensors }, w.finish()];
}

const f32 = new Float32Array(1),
  u32 = new Uint32Array(f32.buffer);
const bf16Bits = (v: number): number => {
  // truncated: close enough for a seed
  f32[0] = v;
  return u32[0] >>> 16;
};

// Writes the native seeds of every model under dir; returns how many.
export async function writeNativeSeeds(models: string[], dir: string): Promise<number> {
  let n = 0;
  const emit = (name: string, spec: NativeModelSpec, file: Uint8Array) => {
    writeFileSync(join(dir, `${name}.bin`), encodeNativeInput(spec, file));
    n++;
  };
  for (const path of models) {
    const spec = await loadModelSpec(path);
    const base = path.split('/').filter(Boolean).slice(-1)[0];
    const hasI8 = Object.values(spec.tensors).some((t) => t.dtype === 'I8');
    const hasBlocks = checkpointKind(spec) === 'blocks';
    const file = new Uint8Array(readFileSync(Object.values(spec.tensors)[0].file));
    // big (real) models are slow inputs: two seeds each, the small synthetic ones cover the rest
    const big = file.length > BIG_SEED_BYTES;
    for (const [wd, target] of [
      ['f32', 'cpu'],
      ['int8', 'cpu'],
      ['quant', 'cpu'],
      ['int8', 'cuda'],
      ['f16', 'cuda'],
      ['bf16', 'cuda'],
    ] as const) {
      if (wd === 'quant' && !hasBlocks) continue; // the server asks for quant only for files with GGML blocks
      if ((hasI8 && wd !== 'int8' && target === 'cuda') || (big && wd !== (hasI8 ? 'int8' : hasBlocks ? 'quant' : 'f32'))) continue;
      const native = toNativeModelSpec(spec, wd, base, target);
      emit(`${base}-${wd}-${target}`, native, file);
      if (big || hasI8) continue;
      if (wd === 'f32') for (const dt of ['F16', 'BF16'] as const) emit(`${base}-${dt}-${wd}-${target}`, ...retyped(native, file, dt));
      if (wd === 'bf16') emit(`${base}-BF16-${wd}-${target}`, ...retyped(native, file, 'BF16'));
    }
  }
  return n;
}
