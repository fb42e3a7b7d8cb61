// quantizeModel: a HF directory (F32/F16/BF16) → a HF directory whose projection matrices are
// per-row symmetric int8 (I8 [out, in] + F32 `<name>_scale` [out]). Streams row blocks, so a
// model never has to fit in memory; norms, biases and the embedding stay float.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

import { WeftError } from '../errors.js';
import { loadModelSpec } from './load.js';
import { readTensorBytes, SafetensorsWriter, toFloat32, type TensorEntry } from './safetensors.js';
import type { TensorRef } from './types.js';

const CHUNK_BYTES = 8 << 20;
const PROJECTION = /\.(q|k|v|o|gate|up|down)_proj\.weight$/;
const COPIED_FILES = ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json', 'special_tokens_map.json', 'chat_template.jinja'];

// One row: scale = absmax/127 (1 when the row is all zeros), q = round half away from zero of
// w/scale in float32, clamped to ±127. The engine and the tests dequantize as q·scale.
export function quantizeRow(w: Float32Array, out: Int8Array): number {
  let amax = 0;
  for (let i = 0; i < w.length; i++) amax = Math.max(amax, Math.abs(w[i]));
  const scale = amax === 0 ? 1 : Math.fround(amax / 127);
  for (let i = 0; i < w.length; i++) {
    const x = Math.fround(w[i] / scale);
    out[i] = Math.max(-127, Math.min(127, x < 0 ? -Math.round(-x) : Math.round(x)));
  }
  return scale;
}

// Reads a tensor in blocks of whole rows (a 1B model's embedding is 1 GB in F32).
function* rowBlocks(ref: TensorRef): Generator<Uint8Array> {
  const rowBytes = ref.byteLength / ref.shape[0];
  const rowsPer = Math.max(1, Math.floor(CHUNK_BYTES / rowBytes));
  for (let r = 0; r < ref.shape[0]; r += rowsPer) yield readTensorBytes(ref, r * rowBytes, Math.min(rowsPer, ref.shape[0] - r) * rowBytes);
}

// onProgress: tensors written so far, of all.
export async function quantizeModel(inDir: string, outDir: string, onProgress?: (done: number, total: number) => void): Promise<void> {
  if (resolve(inDir) === resolve(outDir)) throw new WeftError('WEFT_ERR_CONFIG_INVALID', `quantize: the output directory must differ from ${inDir}`);
  const spec = await loadModelSpec(inDir);
  if (spec.format !== 'hf') throw new WeftError('WEFT_ERR_CONFIG_INVALID', `quantize: ${inDir} is not a HF model directory`);
  // What to write: every tensor; projections (and lm_head, a copy of the embedding when tied) as I8
  const jobs: { name: string; src: TensorRef; quantize: boolean }[] = [];
  for (const [name, src] of Object.entries(spec.tensors)) {
    const quantize = PROJECTION.test(name) || name === 'lm_head.weight';
    if (quantize && src.dtype === 'I8')
      throw new WeftError('WEFT_ERR_MODEL_UNSUPPORTED_DTYPE', `${src.file}: ${name} is already int8; quantize reads F32, F16 or BF16 models`);
    jobs.push({ name, src, quantize });
  }
  if (!spec.tensors['lm_head.weight']) jobs.push({ name: 'lm_head.weight', src: spec.tensors['model.embed_tokens.weight'], quantize: true });

  const entries: TensorEntry[] = jobs.flatMap(({ name, src, quantize }) =>
    quantize
      ? [
          { name, dtype: 'I8' as const, shape: src.shape },
          { name: `${name}_scale`, dtype: 'F32' as const, shape: [src.shape[0]] },
        ]
      : [{ name, dtype: src.dtype, shape: src.shape }],
  );
  mkdirSync(outDir, { recursive: true });
  const w = await SafetensorsWriter.create(join(outDir, 'model.safetensors'), entries);
  for (const [i, { src, quantize }] of jobs.entries()) {
    onProgress?.(i, jobs.length);
    if (!quantize) {
      for (const block of rowBlocks(src)) await w.write(block);
      continue;
    }
    const [rows, cols] = src.shape;
    const scales = new Float32Array(rows);
    let row = 0;
    for (const block of rowBlocks(src)) {
      const f = toFloat32(block, src.dtype);
      const q = new Int8Array(f.length);
      for (let i = 0; i < f.length / cols; i++, row++)
        scales[row] = quantizeRow(f.subarray(i * cols, (i + 1) * cols), q.subarray(i * cols, (i + 1) * cols));
      await w.write(new Uint8Array(q.buffer));
    }
    await w.write(new Uint8Array(scales.buffer));
  }
  onProgress?.(jobs.length, jobs.length);
  await w.close();

  const config = JSON.parse(readFileSync(join(inDir, 'config.json'), 'utf8')) as Record<string, unknown>;
  config.quantization_config = { quant_method: 'weft_int8', group_size: -1 };
  writeFileSync(join(outDir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  for (const f of COPIED_FILES) if (existsSync(join(inDir, f))) copyFileSync(join(inDir, f), join(outDir, f));
}
