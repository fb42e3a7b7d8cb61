// The CPU engine on the real stories260K model against the golden values in SOURCE.md.
import t from 'tap';

import { runOffline } from '../../src/offline.js';
import { loadNative } from '../../src/workers/binding.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { GOLDEN_IDS, GOLDEN_TOP5_POS0, MODEL_DIR, MODEL_GGUF } from '../fixtures/paths.js';

const BOS = 1;
const golden = GOLDEN_IDS.slice(1);

async function open(
  path: string,
  dtype: 'f32' | 'int8',
  extra: Partial<{ isa: 'scalar' | 'avx2' | 'avx512'; numThreads: number; numKvBlocks: number }> = {},
) {
  return EngineInstance.open({
    modelPath: path,
    dtype,
    numThreads: extra.numThreads ?? 1,
    numKvBlocks: extra.numKvBlocks ?? 64,
    blockSize: 16,
    isa: extra.isa,
  });
}

for (const [name, path] of [
  ['HF directory', MODEL_DIR],
  ['GGUF', MODEL_GGUF],
] as const) {
  t.test(`greedy from BOS equals the golden ids (${name}, f32)`, async (t) => {
    const e = await open(path, 'f32');
    const [r] = runOffline(e, [{ promptIds: [BOS], maxTokens: golden.length, ignoreEos: true }], { returnLogits: true });
    t.same(r.outputIds, golden);
    const top = [...r.logits[0]]
      .map((v, i) => [i, v] as [number, number])
      .sort((a, b) => b[1] - a[1])
      .slice(0, 5);
    t.same(
      top.map((x) => x[0]),
      GOLDEN_TOP5_POS0.map((x) => x[0]),
      'top-5 ids at position 0',
    );
    for (let i = 0; i < 5; i++)
      t.ok(Math.abs(top[i][1] - GOLDEN_TOP5_POS0[i][1]) < 1e-4, `logit ${top[i][0]}: ${top[i][1]} vs ${GOLDEN_TOP5_POS0[i][1]}`);
    e.close();
  });
}

t.test('every ISA this CPU supports gives the golden ids, with 1 and 2 threads', async (t) => {
  for (const isa of loadNative().cpuInfo().supported) {
    for (const numThreads of [1, 2]) {
      const e = await open(MODEL_DIR, 'f32', { isa, numThreads });
      const [r] = runOffline(e, [{ promptIds: [BOS], maxTokens: golden.length, ignoreEos: true }]);
      t.same(r.outputIds, golden, `${isa}, ${numThreads} thread(s)`);
      e.close();
    }
  }
});
