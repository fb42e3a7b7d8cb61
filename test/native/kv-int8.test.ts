// The CPU engine's int8 KV cache (--kv-dtype int8): it stays close to the f32 cache on a trained
// model, and a copy-on-write block copy carries the scales with the values (a fork must continue
// exactly like its parent). Every ISA against the scalar path: engine-isa-parity.test.ts; the
// kernels and the rounding rule: native/test/test_attention.cc.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { synthesizeModel } from '../../src/model/synth.js';
import { runOffline, type OfflineRequest, type OfflineResult } from '../../src/offline.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { GREEDY, packStep } from '../../src/workers/step-pack.js';
import { MODEL_DIR } from '../fixtures/paths.js';
import { SMALL_LLAMA } from '../fixtures/small-llama.js';

async function run(model: string, kvDtype: 'f32' | 'f16' | 'int8', reqs: OfflineRequest[]): Promise<OfflineResult[]> {
  const e = await EngineInstance.open({ modelPath: model, dtype: 'f32', numThreads: 1, numKvBlocks: 64, blockSize: 16, kvDtype });
  if (e.kvDtype !== kvDtype) throw new Error(`asked for a ${kvDtype} cache, got ${e.kvDtype}`);
  const r = runOffline(e, reqs, { returnLogits: true, chunkSize: 9 });
  e.close();
  return r;
}

// RMS of the log-prob difference over a's 10 likeliest tokens, over every position.
function rmsTop10(a: OfflineResult[], b: OfflineResult[]): number {
  const logSoftmax = (l: Float32Array) => {
    const m = l.reduce((x, v) => Math.max(x, v), -Infinity);
    const lse = Math.log(l.reduce((s, v) => s + Math.exp(v - m), 0)) + m;
    return Array.from(l, (v) => v - lse);
  };
  let sq = 0;
  let n = 0;
  a.forEach((ra, i) =>
    ra.logits.forEach((l, p) => {
      const la = logSoftmax(l);
      const lb = logSoftmax(b[i].logits[p]);
      const top = la.map((v, j) => [v, j]).sort((x, y) => y[0] - x[0]);
      for (const [, j] of top.slice(0, 10)) (sq += (la[j] - lb[j]) ** 2), n++;
    }),
  );
  return Math.sqrt(sq / n);
}

t.test('int8 KV on a trained model (stories260K): greedy and logits close to the f32 cache', async (t) => {
  const reqs: OfflineRequest[] = [
    { promptIds: [1], maxTokens: 64, ignoreEos: true },
    { promptIds: [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267], maxTokens: 64, ignoreEos: true },
  ];
  const f32 = await run(MODEL_DIR, 'f32', reqs);
  const f16 = await run(MODEL_DIR, 'f16', reqs);
  const i8 = await run(MODEL_DIR, 'int8', reqs);
  const agree = (a: OfflineResult[], i: number) => a[i].outputIds.filter((id, p) => id === f32[i].outputIds[p]).length;
  // teacher-forced logits: the f32 run's context for both, so one early flip does not decide it all
  const forced = reqs.map((r, i) => ({ ...r, forcedIds: f32[i].outputIds }));
  const f32Forced = await run(MODEL_DIR, 'f32', forced);
  const i8Forced = await run(MODEL_DIR, 'int8', forced);
  const f16Forced = await run(MODEL_DIR, 'f16', forced);
  const d8 = rmsTop10(f32Forced, i8Forced);
  const d16 = rmsTop10(f32Forced, f16Forced);
  t.comment(`free-running greedy ids equal to f32 KV's: f16 ${reqs.map((_, i) => agree(f16, i))}, int8 ${reqs.map((_, i) => agree(i8, i))} of 64`);
  t.comment(`teacher-forced RMS log-prob difference over the top 10 against f32 KV: f16 ${d16.toFixed(4)}, int8 ${d8.toFixed(4)}`);
  reqs.forEach((_, i) => t.ok(agree(i8, i) >= 58, `request ${i}: int8 KV's greedy ids equal f32 KV's on ${agree(i8, i)} >= 58 of 64`));
  // head_dim 8 leaves a scale 8 values; on this model that costs about what Q8_0 weights cost
  // (~0.09, bench/RESULTS.md), where the K values carry most of it (a few large dimensions set the
  // scale of the rest), V values ~0.007
  t.ok(d8 > d16 && d8 < 0.15, `teacher-forced log-probs: RMS difference ${d8.toFixed(4)} < 0.15`);
});

// head_dim 8 (stories260K: K one scale per head) and 64 (two 32-value K groups, so K's scales
// take twice V's room)
const HEAD_DIM_64 = { ...SMALL_LLAMA, num_attention_heads: 2, num_key_value_heads: 1 };
for (const headDim of [8, 64])
  t.test(`int8 KV, head_dim ${headDim}: a block copy carries the scales, so a fork continues exactly like the original`, async (t) => {
    let model = MODEL_DIR;
    if (headDim === 64) {
      const dir = mkdtempSync(join(tmpdir(), 'weft-kv8-'));
      t.teardown(() => rmSync(dir, { recursive: true, force: true }));
      model = join(dir, 'm.gguf');
      await synthesizeModel({ config: HEAD_DIM_64, out: model, format: 'gguf', dtype: 'f32', seed: 3 });
    }
    const e = await EngineInstance.open({ modelPath: model, dtype: 'f32', numThreads: 1, numKvBlocks: 8, blockSize: 16, kvDtype: 'int8' });
    t.equal(e.spec.config.headDim, headDim);
    const prompt = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267]; // 2 blocks
    const a = e.step(packStep([{ seqId: 1, tokens: prompt, startPos: 0, promptLen: 20, blockTable: [0, 1], doSample: true, sampling: GREEDY }], 16));
    let next = [a.sampled[0], a.sampled[0]];
    // seq 2 shares block 0 and gets a copy of the partly filled block 1; both go on for 14 tokens,
    // past the copied block's end
    for (let pos = 20; pos < 34; pos++) {
      const out = e.step(
        packStep(
          [
            { seqId: 1, tokens: [next[0]], startPos: pos, promptLen: 20, blockTable: [0, 1, 3], doSample: true, sampling: GREEDY },
            { seqId: 2, tokens: [next[1]], startPos: pos, promptLen: 20, blockTable: [0, 2, 4], doSample: true, sampling: GREEDY },
          ],
          16,
          pos === 20 ? { blockCopies: [1, 2], forks: [1, 2], returnLogits: true } : { returnLogits: true },
        ),
      );
      const V = out.logits!.length / 2;
      const same = out.logits!.subarray(0, V).every((v, j) => v === out.logits![V + j]);
      t.ok(same, `position ${pos}: the fork's logits equal the original's bit for bit`);
      next = [out.sampled[0], out.sampled[1]];
    }
    e.close();
  });
