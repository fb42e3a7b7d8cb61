// A step that needs only a few LM-head rows (a reranker's yes and no): the CPU engine evaluates
// just those, and their logits equal the whole row's; every other logit is -inf.
import t from 'tap';

import { GREEDY } from '../../src/sampling.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { packStep, type SeqStep } from '../../src/workers/step-pack.js';
import { MODEL_DIR } from '../fixtures/paths.js';

const PROMPTS = [
  [1, 365, 403, 280, 261],
  [1, 2, 3],
];

for (const dtype of ['f32', 'int8'] as const) {
  t.test(`cpu ${dtype}: logit rows give the whole row's values at those ids, -inf elsewhere`, async (t) => {
    const e = await EngineInstance.open({ modelPath: MODEL_DIR, dtype, numThreads: 2, numKvBlocks: 32, blockSize: 16 });
    t.teardown(() => e.close());
    const V = e.spec.config.vocabSize;
    // ids in one panel of 16 and in others, unsorted, the first and the last rows included
    const rows = [V - 1, 17, 0, 16, 300];
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
    const part = e.step(packStep(steps(2), e.blockSize, { returnLogits: true, logitRows: rows }));
    t.equal(part.logits!.length, PROMPTS.length * V);
    for (let r = 0; r < PROMPTS.length; r++) {
      const want = rows.map((id) => full.logits![r * V + id]);
      const got = rows.map((id) => part.logits![r * V + id]);
      t.same(got, want, `prompt ${r}: the asked rows, bit for bit`);
      let others = 0;
      for (let id = 0; id < V; id++) if (!rows.includes(id) && part.logits![r * V + id] === -Infinity) others++;
      t.equal(others, V - rows.length, `prompt ${r}: every other logit is -inf (not evaluated)`);
      const best = rows.reduce((a, b) => (want[rows.indexOf(b)] > want[rows.indexOf(a)] ? b : a));
      t.equal(part.sampled[r], best, 'greedy picks among the asked rows');
    }
  });
}
