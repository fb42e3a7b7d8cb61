// A step that needs only a few LM-head rows (a reranker's yes and no): the engine evaluates just
// those, and their logits equal the whole row's; every other logit is -inf. On the CPU bit for
// bit; on a GPU (where one is visible) within f16 rounding, the rows going through a gemm of
// their own.
import t from 'tap';

import { GREEDY } from '../../src/sampling.js';
import { loadNative } from '../../src/workers/binding.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { packStep, type SeqStep } from '../../src/workers/step-pack.js';
import { MODEL_DIR } from '../fixtures/paths.js';

const PROMPTS = [
  [1, 365, 403, 280, 261],
  [1, 2, 3],
];
const NO_GPU = loadNative().cudaDeviceCount() === 0 ? 'no CUDA device visible' : false;

const CASES = [
  { backend: 'cpu', dtype: 'f32' },
  { backend: 'cpu', dtype: 'int8' },
  { backend: 'gpu', dtype: 'f16' },
  { backend: 'gpu', dtype: 'int8' },
] as const;

for (const { backend, dtype } of CASES) {
  t.test(
    `${backend} ${dtype}: logit rows give the whole row's values at those ids, -inf elsewhere`,
    { skip: backend === 'gpu' && NO_GPU },
    async (t) => {
      const e = await EngineInstance.open({
        modelPath: MODEL_DIR,
        dtype,
        numThreads: 2,
        numKvBlocks: 32,
        blockSize: 16,
        backend,
        ...(backend === 'gpu' ? { maxNumTokens: 512, maxNumSeqs: 64 } : {}),
      });
      t.teardown(() => e.close());
      const V = e.spec.config.vocabSize;
      const steps = (base: number): SeqStep[] =>
        PROMPTS.map((p, i) => ({
          seqId: base + i,
          tokens: p,
          startPos: 0,
          promptLen: p.length,
          blockTable: [base + i],
          doSample: true,
          sampling: GREEDY,
        }));
      const full = e.step(packStep(steps(0), e.blockSize, { returnLogits: true }));
      // ids in one panel of 16 and in others, unsorted, the first and the last rows included; then
      // other sets, so a GPU's gathered rows are replaced
      const trials = [
        [V - 1, 17, 0, 16, 300],
        [5, 9],
        [9, 5],
      ];
      for (const [k, rows] of trials.entries()) {
        const base = 2 + 2 * k;
        const part = e.step(packStep(steps(base), e.blockSize, { returnLogits: true, logitRows: rows }));
        e.step(packStep([], e.blockSize, { release: [base, base + 1] }));
        t.equal(part.logits!.length, PROMPTS.length * V);
        for (let r = 0; r < PROMPTS.length; r++) {
          const want = rows.map((id) => full.logits![r * V + id]);
          const got = rows.map((id) => part.logits![r * V + id]);
          if (backend === 'cpu') t.same(got, want, `rows ${rows}, prompt ${r}: the asked rows, bit for bit`);
          else
            t.ok(
              got.every((g, j) => Math.abs(g - want[j]) <= 1e-3 * Math.max(1, Math.abs(want[j]))),
              `rows ${rows}, prompt ${r}: ${got} ≈ ${want}`,
            );
          let others = 0;
          for (let id = 0; id < V; id++) if (!rows.includes(id) && part.logits![r * V + id] === -Infinity) others++;
          t.equal(others, V - rows.length, `prompt ${r}: every other logit is -inf (not evaluated)`);
          const best = rows.reduce((a, b) => (want[rows.indexOf(b)] > want[rows.indexOf(a)] ? b : a));
          if (backend === 'cpu') t.equal(part.sampled[r], best, 'greedy picks the best of the asked rows');
          else t.ok(rows.includes(part.sampled[r]), 'greedy picks among the asked rows');
        }
      }
    },
  );
}
