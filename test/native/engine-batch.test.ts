// Batching must not change results: 8 different prompts stepped together (mixed prefill chunks
// and decode tokens, prompts crossing block boundaries, up to the 512-token context) give exactly
// the tokens each gives alone.
import t from 'tap';

import { loadModelSpec } from '../../src/model/load.js';
import { runOffline, type OfflineRequest } from '../../src/offline.js';
import { TextTokenizer } from '../../src/tokenizer.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { MODEL_DIR } from '../fixtures/paths.js';

const TEXTS = [
  'Once upon a time',
  'The cat sat on the mat and looked at the little bird.',
  'Lily',
  'One day, a big dog ran to the park. He saw a ball. The ball was red. He wanted to play.',
  'Tom and Sam were friends. They liked to play with toys. ',
  'Mom said',
  'The sun was hot. The boy went to the sea to swim with his dad. They had fun all day long. ',
  'She',
];

async function requests(): Promise<OfflineRequest[]> {
  const spec = await loadModelSpec(MODEL_DIR);
  const tok = new TextTokenizer(spec);
  const out: OfflineRequest[] = [];
  for (let i = 0; i < TEXTS.length; i++) {
    let ids = await tok.encode(TEXTS[i]);
    if (i === 4) while (ids.length < 300) ids = ids.concat(ids.slice(1)); // long prompt
    if (i === 6) while (ids.length < 150) ids = ids.concat(ids.slice(1));
    if (i === 4) ids = ids.slice(0, 300);
    const maxTokens = i === 4 ? 512 - ids.length : 20 + 9 * i; // sequence 4 fills the whole 512 context
    out.push({ promptIds: ids, maxTokens, ignoreEos: true, startStep: (i * 3) % 7 });
  }
  return out;
}

for (const dtype of ['f32', 'int8'] as const) {
  t.test(`8 sequences batched give the same tokens as alone (${dtype})`, async (t) => {
    const reqs = await requests();
    const e = await EngineInstance.open({ modelPath: MODEL_DIR, dtype, numThreads: 2, numKvBlocks: 160, blockSize: 16 });
    const alone = reqs.map((r) => runOffline(e, [{ ...r, startStep: 0 }])[0].outputIds);
    let mixedSteps = 0;
    const batched = runOffline(e, reqs, {
      chunkSize: 13,
      onStep: (s) => {
        if (s.numTokens > s.numSeqs && s.numSeqs > 1) mixedSteps++;
      },
    }).map((r) => r.outputIds);
    t.ok(mixedSteps > 5, `steps mixing prefill chunks with other sequences: ${mixedSteps}`);
    t.equal(reqs[4].promptIds.length + batched[4].length, 512, 'one sequence reaches the 512-token context');
    for (let i = 0; i < reqs.length; i++) t.same(batched[i], alone[i], `sequence ${i} (prompt ${reqs[i].promptIds.length} tokens)`);
    e.close();
  });
}

// The agreement benchmark compares next-token choices on a context given from outside.
t.test('forcedIds: each output is the greedy choice after the prompt and the forced tokens before it', async (t) => {
  const [req] = await requests();
  const e = await EngineInstance.open({ modelPath: MODEL_DIR, dtype: 'f32', numThreads: 2, numKvBlocks: 32, blockSize: 16 });
  const free = runOffline(e, [{ promptIds: req.promptIds, maxTokens: 6, ignoreEos: true }])[0].outputIds;
  t.same(runOffline(e, [{ promptIds: req.promptIds, maxTokens: 6, ignoreEos: true, forcedIds: free }])[0].outputIds, free, 'forcing its own choices');
  const forced = [free[0] === 13 ? 14 : 13, 300, 45]; // a context greedy would not take
  const out = runOffline(e, [{ promptIds: req.promptIds, maxTokens: 5, ignoreEos: true, forcedIds: forced }])[0].outputIds;
  t.equal(out.length, 5);
  for (let k = 1; k <= forced.length; k++) {
    const ctx = req.promptIds.concat(forced.slice(0, k));
    t.equal(out[k], runOffline(e, [{ promptIds: ctx, maxTokens: 1 }])[0].outputIds[0], `output ${k} = greedy after ${k} forced tokens`);
  }
  const after = runOffline(e, [{ promptIds: req.promptIds.concat(forced), maxTokens: 2, ignoreEos: true }])[0].outputIds;
  t.same(out.slice(3), after, 'past the forced tokens it goes on greedily from their context');
  e.close();
});
