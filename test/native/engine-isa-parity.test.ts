// Every ISA path (scalar reference, AVX2, AVX-512) and every KV cache type agree on a synthetic
// model whose head_dim (32) takes the wide attention paths that stories260K (head_dim 8) cannot.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { synthesizeModel } from '../../src/model/synth.js';
import { runOffline, type OfflineRequest } from '../../src/offline.js';
import { loadNative } from '../../src/workers/binding.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { SMALL_LLAMA } from '../fixtures/small-llama.js';

t.test('scalar, AVX2 and AVX-512 agree; f16 and int8 KV stay close to f32 KV', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-isa-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'm.gguf');
  await synthesizeModel({ config: SMALL_LLAMA, out: path, format: 'gguf', dtype: 'f32', seed: 11 });
  // prompts long enough to span several blocks and the 4-position attention groups, with tails
  const reqs: OfflineRequest[] = [37, 5, 70].map((n, i) => ({
    promptIds: [1, ...Array.from({ length: n }, (_, j) => 3 + ((i * 53 + j * 29) % 500))],
    maxTokens: 6,
    ignoreEos: true,
  }));
  const q8Path = join(dir, 'm-q8_0.gguf');
  await synthesizeModel({ config: SMALL_LLAMA, out: q8Path, format: 'gguf', dtype: 'q8_0', seed: 11 });
  const run = async (dtype: 'f32' | 'int8', isa: 'scalar' | 'avx2' | 'avx512', kvDtype: 'f32' | 'f16' | 'int8', model = path) => {
    const e = await EngineInstance.open({ modelPath: model, dtype, numThreads: 1, numKvBlocks: 32, blockSize: 16, isa, kvDtype });
    const r = runOffline(e, reqs, { returnLogits: true, chunkSize: 9 });
    e.close();
    return r;
  };
  const maxDiff = (a: Awaited<ReturnType<typeof run>>, b: Awaited<ReturnType<typeof run>>) => {
    let m = 0;
    a.forEach((ra, i) =>
      ra.logits.forEach((l, p) =>
        l.forEach((v, j) => {
          m = Math.max(m, Math.abs(v - b[i].logits[p][j]));
        }),
      ),
    );
    return m;
  };
  for (const dtype of ['f32', 'int8'] as const) {
    const ref = await run(dtype, 'scalar', 'f32');
    // an int8 cache against its own scalar path: every ISA writes the same int8 values and scales
    const ref8 = await run(dtype, 'scalar', 'int8');
    const d8 = maxDiff(ref, ref8);
    t.ok(d8 > 0 && d8 < 0.05, `${dtype} weights: int8 KV moves the logits a little from f32 KV's (${d8.toExponential(2)})`);
    for (const isa of loadNative().cpuInfo().supported) {
      for (const kv of ['f32', 'f16', 'int8'] as const) {
        const r = await run(dtype, isa, kv);
        const d = maxDiff(kv === 'int8' ? ref8 : ref, r);
        // f32 KV: only summation order differs. f16 KV: K/V rounded to 11 bits (~5e-4 relative);
        // int8 KV: attention sums in another order, and a later layer's K or V may round a value
        // a step the other way. With int8 weights such a perturbation can flip an activation's
        // int8 rounding by one step (1/127 of the row's absmax), so the bound is looser there
        // (logits here are |x| < 3).
        const tol = kv === 'f32' ? 2e-4 : dtype === 'f32' ? 2e-3 : 5e-2;
        t.ok(d < tol, `${dtype} weights, ${isa}, ${kv} KV: max |logit diff| vs scalar ${d.toExponential(2)} < ${tol}`);
        if (kv === 'f32' || (kv === 'int8' && dtype === 'f32'))
          r.forEach((x, i) => t.same(x.outputIds, (kv === 'int8' ? ref8 : ref)[i].outputIds, `${dtype} ${isa} ${kv} KV request ${i} tokens`));
      }
    }
  }
  // Q8_0 weights keep their group-32 scales in the int8 kernels, and their activations get one
  // scale per 32 values: the kernels are bit-identical (test_matmul), and a one-token prompt gives
  // equal logits, but attention's summation order differs by ISA at the ulp level, and with 32-value
  // steps that is enough to flip one activation's rounding somewhere in these prompts: the f16
  // KV bound, not the summation-order one.
  const q8ref = await run('int8', 'scalar', 'f32', q8Path);
  const oneToken = async (isa: 'scalar' | 'avx2' | 'avx512') => {
    const e = await EngineInstance.open({ modelPath: q8Path, dtype: 'int8', numThreads: 1, numKvBlocks: 32, blockSize: 16, isa });
    const logits = runOffline(e, [{ promptIds: [1], maxTokens: 1, ignoreEos: true }], { returnLogits: true })[0].logits[0];
    e.close();
    return logits;
  };
  const a = await oneToken('scalar');
  for (const isa of loadNative().cpuInfo().supported) {
    const r = await run('int8', isa, 'f32', q8Path);
    const d = maxDiff(q8ref, r);
    t.ok(d < 5e-2, `Q8_0 (group-32) int8, ${isa}: max |logit diff| vs scalar ${d.toExponential(2)}`);
    const b = await oneToken(isa);
    t.ok(a.length > 0 && a.every((v, j) => v === b[j]), `Q8_0 (group-32) int8, ${isa}: a one-token prompt's logits equal scalar's bit for bit`);
    r.forEach((x, i) => t.same(x.outputIds, q8ref[i].outputIds, `Q8_0 ${isa} request ${i} tokens`));
  }
});
