import { join } from 'node:path';

import t from 'tap';

import { buildDataset, lengthBounds, type DatasetOptions } from '../../bench/serve/datasets.js';
import { REPO_ROOT } from '../fixtures/paths.js';

const BASE: DatasetOptions = {
  name: 'random',
  numPrompts: 200,
  seed: 3,
  vocabSize: 512,
  randomInputLen: 100,
  randomOutputLen: 20,
  randomRangeRatio: 0.25,
  randomPrefixLen: 0,
  prefixLen: 8,
  suffixLen: 4,
  numPrefixes: 3,
  prefixOutputLen: 5,
};

t.test('random: lengths within the range-ratio bounds, ids in [10, vocab)', async (t) => {
  t.same(lengthBounds(100, 0.25, 0), [75, 125]);
  t.same(lengthBounds(20, 0.25, 1), [15, 25]);
  t.same(lengthBounds(1, 0.9, 1), [1, 2]);
  t.throws(() => lengthBounds(10, 1, 0));
  const reqs = buildDataset(BASE);
  t.equal(reqs.length, 200);
  for (const r of reqs) {
    const ids = r.prompt as number[];
    t.equal(ids.length, r.promptLen);
    if (r.promptLen < 75 || r.promptLen > 125 || r.maxTokens < 15 || r.maxTokens > 25 || ids.some((x) => x < 10 || x >= 512))
      t.fail(`out of bounds: ${r.promptLen}/${r.maxTokens}`);
  }
  t.ok(new Set(reqs.map((r) => r.promptLen)).size > 10, 'lengths vary');
  t.same(buildDataset(BASE), reqs, 'seeded');
});

t.test('random: ratio 0 gives exact lengths; a random prefix is shared', async (t) => {
  const reqs = buildDataset({ ...BASE, randomRangeRatio: 0, randomPrefixLen: 6, numPrompts: 5 });
  t.ok(reqs.every((r) => r.promptLen === 106 && r.maxTokens === 20));
  const prefix = (reqs[0].prompt as number[]).slice(0, 6);
  t.ok(reqs.every((r) => (r.prompt as number[]).slice(0, 6).join() === prefix.join()));
});

t.test('prefix-repetition: each prefix is shared by its share of the requests', async (t) => {
  const reqs = buildDataset({ ...BASE, name: 'prefix-repetition', numPrompts: 9 });
  t.ok(reqs.every((r) => r.promptLen === 12 && r.maxTokens === 5));
  const prefixes = new Map<string, number>();
  for (const r of reqs) {
    const k = (r.prompt as number[]).slice(0, 8).join();
    prefixes.set(k, (prefixes.get(k) ?? 0) + 1);
  }
  t.same([...prefixes.values()].sort(), [3, 3, 3]);
});

t.test('sharegpt: the first human turn, the answer sets max_tokens', async (t) => {
  const datasetPath = join(REPO_ROOT, 'test', 'fixtures', 'sharegpt-small.json');
  const reqs = buildDataset({ ...BASE, name: 'sharegpt', numPrompts: 3, datasetPath });
  const prompts = reqs.map((r) => r.prompt as string).sort();
  t.same(prompts, ['Name three colours.', 'What is the capital of France?', 'Write a short line about the sea.']);
  const colours = reqs.find((r) => r.prompt === 'Name three colours.')!;
  t.equal(colours.maxTokens, Math.ceil('Red, green and blue.'.length / 4));
  const fixed = buildDataset({ ...BASE, name: 'sharegpt', numPrompts: 5, datasetPath, sharegptOutputLen: 7 });
  t.equal(fixed.length, 5, 'cycles past the file');
  t.ok(fixed.every((r) => r.maxTokens === 7));
  t.throws(() => buildDataset({ ...BASE, name: 'sharegpt' }), /dataset-path/);
});
