// Q2_K and Q3_K through the whole path a downloaded file takes: a GGUF whose matrices hold such
// blocks is read by the model loader, kept in its block types by --dtype auto, and runs like the
// same file dequantized to f32 (which only adds weft's int8 activations). The kernels themselves
// are checked bit for bit against the reference formulas by native/test/test_quant.cc; no encoder
// is needed here: the blocks are random, with scales of a sane size.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { resolveDtype } from '../../src/config.js';
import { alignUp, encodeGgufHeader, readGguf, type GgufTensorInfo } from '../../src/model/gguf.js';
import { loadModelSpec } from '../../src/model/load.js';
import { f32ToF16 } from '../../src/model/safetensors.js';
import { synthesizeModel } from '../../src/model/synth.js';
import { checkpointKind } from '../../src/model/types.js';
import { runOffline } from '../../src/offline.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { SMALL } from '../model/configs.js';

const Q2_K = 10,
  Q3_K = 11;
// [bytes per 256 values, where its fp16 fields sit, their magnitude]
const BLOCKS: Record<number, { bytes: number; halves: [number, number][] }> = {
  [Q2_K]: {
    bytes: 84,
    halves: [
      [80, 2e-3],
      [82, 2e-3],
    ],
  }, // d, dmin: scales 0..15 on 2-bit values
  [Q3_K]: { bytes: 110, halves: [[108, 1.5e-3]] }, // d: scales -32..31 on values -4..3
};

function randomBlocks(type: number, numValues: number, seed: number): Uint8Array {
  const { bytes, halves } = BLOCKS[type];
  const out = new Uint8Array((numValues / 256) * bytes);
  let s = seed >>> 0;
  const next = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0);
  for (let i = 0; i < out.length; i++) out[i] = next() >>> 24;
  for (let b = 0; b < out.length; b += bytes)
    for (const [at, size] of halves) {
      const h = f32ToF16(size * (0.5 + (next() >>> 8) / 2 ** 24));
      out[b + at] = h & 255;
      out[b + at + 1] = h >>> 8;
    }
  return out;
}

t.test('a GGUF with Q2_K and Q3_K matrices loads, keeps its blocks and runs like its f32 dequantization', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-q2k-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const base = join(dir, 'f32.gguf');
  await synthesizeModel({ config: SMALL, out: base, format: 'gguf', type: 'f32', seed: 3 });
  // SMALL has rows of 256: v (layer 0) and the output in Q2_K, up (layer 1) in Q3_K; the rest stays f32
  const swap: Record<string, number> = { 'blk.0.attn_v.weight': Q2_K, 'blk.1.ffn_up.weight': Q3_K, 'output.weight': Q3_K };
  const g = readGguf(base);
  const src = readFileSync(base);
  const entries = [...g.metadata].map(([key, value]) => ({ key, value, ...g.metadataTypes.get(key)! }));
  const tensors: GgufTensorInfo[] = [];
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [i, x] of g.tensors.entries()) {
    const n = x.dims.reduce((a, b) => a * b, 1);
    const type = swap[x.name] ?? x.type;
    const data = swap[x.name] ? randomBlocks(type, n, i + 1) : src.subarray(g.dataOffset + x.offset, g.dataOffset + x.offset + 4 * n);
    tensors.push({ ...x, type, offset });
    const end = alignUp(offset + data.length, g.alignment);
    parts.push(data, new Uint8Array(end - offset - data.length));
    offset = end;
  }
  t.equal(Object.keys(swap).filter((n) => g.tensors.some((x) => x.name === n)).length, 3, 'the three matrices exist');
  const file = join(dir, 'q2k-q3k.gguf');
  writeFileSync(file, Buffer.concat([encodeGgufHeader(entries, tensors), ...parts]));

  const spec = await loadModelSpec(file);
  t.equal(spec.tensors['model.layers.0.self_attn.v_proj.weight'].dtype, 'Q2_K');
  t.equal(spec.tensors['model.layers.1.mlp.up_proj.weight'].dtype, 'Q3_K');
  t.equal(spec.tensors['lm_head.weight'].dtype, 'Q3_K');
  const dtype = resolveDtype('auto', 'cpu', checkpointKind(spec));
  t.equal(dtype, 'quant', '--dtype auto keeps the blocks');
  const open = (d: 'quant' | 'f32') => EngineInstance.open({ modelPath: file, dtype: d, numThreads: 1, numKvBlocks: 8, blockSize: 16 }, spec);
  const q = await open('quant'),
    f = await open('f32');
  t.ok(q.weightBytes < f.weightBytes, `blocks held (${q.weightBytes} bytes) below the f32 expansion (${f.weightBytes})`);
  const prompt = [1, 17, 99, 42, 250, 3, 77, 128, 9];
  const run = (e: EngineInstance) => runOffline(e, [{ promptIds: prompt, maxTokens: 6, ignoreEos: true }], { returnLogits: true })[0];
  const a = run(q),
    b = run(f);
  q.close();
  f.close();
  // the first position: same context for both; int8 activations through 2 layers move the logits
  // by a few % of their range (the native test's bound for every block type)
  let worst = 0,
    range = 0;
  for (let i = 0; i < b.logits[0].length; i++) {
    worst = Math.max(worst, Math.abs(a.logits[0][i] - b.logits[0][i]));
    range = Math.max(range, Math.abs(b.logits[0][i]));
  }
  t.ok(range > 0.1 && worst < 0.05 * range, `first-position logits: worst difference ${worst.toFixed(4)} of range ${range.toFixed(3)}`);
  t.ok(worst > 0, 'the blocks ran on the block kernels (int8 activations), not on an f32 copy');
});
