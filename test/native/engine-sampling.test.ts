// Native sampling: seeded reproducibility (batched or not), the filters, penalties, logprobs,
// and that temperature sampling follows the model's distribution.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { synthesizeModel } from '../../src/model/synth.js';
import { runOffline, type OfflineRequest } from '../../src/offline.js';
import { loadNative } from '../../src/workers/binding.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { GOLDEN_IDS, MODEL_DIR } from '../fixtures/paths.js';
import { SMALL_LLAMA } from '../fixtures/small-llama.js';

const golden = GOLDEN_IDS.slice(1, 41);
const open = (numKvBlocks = 64) => EngineInstance.open({ modelPath: MODEL_DIR, dtype: 'f32', numThreads: 1, numKvBlocks, blockSize: 16 });
const req = (sampling: OfflineRequest['sampling'], maxTokens = 40, promptIds = [1]): OfflineRequest => ({
  promptIds,
  maxTokens,
  ignoreEos: true,
  sampling,
});

t.test('same seed gives the same tokens alone and batched with others; other seeds differ', async (t) => {
  const e = await open();
  const s = { temperature: 1.0, seed: 1234 };
  const alone = runOffline(e, [req(s)])[0].outputIds;
  const batched = runOffline(e, [req({ temperature: 0.8, seed: 7 }), req(s, 40, [1]), req({ temperature: 1.2, seed: 99 }, 25, [1, 403, 407])], {
    chunkSize: 2,
  });
  t.same(batched[1].outputIds, alone);
  const other = runOffline(e, [req({ temperature: 1.0, seed: 1235 })])[0].outputIds;
  t.not(other.join(','), alone.join(','), 'a different seed gives a different sample');
  t.not(alone.join(','), golden.join(','), 'temperature 1 does not reduce to greedy');
  e.close();
});

t.test('filters that leave one candidate reduce to greedy', async (t) => {
  const e = await open();
  for (const s of [
    { temperature: 0 },
    { temperature: 1, topK: 1, seed: 5 },
    { temperature: 1, minP: 1, seed: 5 },
    { temperature: 1, topP: 1e-6, seed: 5 },
  ]) {
    t.same(runOffline(e, [req(s)])[0].outputIds, golden, JSON.stringify(s));
  }
  e.close();
});

t.test('top-k restricts draws to the k most likely tokens', async (t) => {
  const e = await open(300);
  const reqs = Array.from({ length: 256 }, (_, i) => req({ temperature: 5, topK: 3, seed: i, numLogprobs: 3 }, 1));
  const res = runOffline(e, reqs);
  const allowed = new Set(res[0].topLogprobs[0].map((x) => x.id));
  t.equal(allowed.size, 3);
  t.ok(
    res.every((r) => allowed.has(r.outputIds[0])),
    'every draw is in the top 3',
  );
  t.equal(new Set(res.map((r) => r.outputIds[0])).size, 3, 'a high temperature reaches all 3');
  e.close();
});

t.test('temperature sampling follows softmax(logits / T)', async (t) => {
  const e = await open(1100);
  const n = 1000;
  const res = runOffline(
    e,
    Array.from({ length: n }, (_, i) => req({ temperature: 1.5, seed: 1000 + i }, 1)),
    { returnLogits: true },
  );
  const z = [...res[0].logits[0]].map((v) => v / 1.5);
  const mx = Math.max(...z);
  const sum = z.reduce((a, v) => a + Math.exp(v - mx), 0);
  const counts = new Map<number, number>();
  for (const r of res) counts.set(r.outputIds[0], (counts.get(r.outputIds[0]) ?? 0) + 1);
  for (const id of [403, 385]) {
    const p = Math.exp(z[id] - mx) / sum;
    const sd = Math.sqrt((p * (1 - p)) / n);
    const freq = (counts.get(id) ?? 0) / n;
    t.ok(Math.abs(freq - p) < 4 * sd + 1e-3, `token ${id}: frequency ${freq.toFixed(3)} vs probability ${p.toFixed(3)}`);
  }
  e.close();
});

t.test('penalties: presence and repetition penalties stop repeats', async (t) => {
  const e = await open();
  const pres = runOffline(e, [req({ temperature: 0, presencePenalty: 100 })])[0].outputIds;
  t.equal(new Set(pres).size, pres.length, 'a huge presence penalty never repeats an output token');
  const freq = runOffline(e, [req({ temperature: 0, frequencyPenalty: 100 })])[0].outputIds;
  t.equal(new Set(freq).size, freq.length, 'a huge frequency penalty never repeats an output token');
  const rep = runOffline(e, [req({ temperature: 0, repetitionPenalty: 1e6 }, 40, [1, 403, 407])])[0].outputIds;
  t.notOk(
    rep.some((id) => id === 403 || id === 407),
    'a huge repetition penalty avoids prompt tokens too',
  );
  t.equal(new Set(rep).size, rep.length);
  const mild = runOffline(e, [req({ temperature: 0, repetitionPenalty: 1.3 })])[0].outputIds;
  t.not(mild.join(','), golden.join(','), 'a mild repetition penalty changes greedy output');
  e.close();
});

// The log-softmax runs in each ISA's vectors (its sum in double every 1024 values) and keeps the
// top in one pass: against a double reference and a full sort (ties to the lower id) here, on
// stories260K (512 tokens) and a synthetic vocabulary of 2063 (two 1024-value runs and a tail no
// vector width divides).
t.test('logprobs: chosen token and top-N are log-softmax of the raw logits, in every ISA', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-logprobs-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const odd = join(dir, 'odd-vocab.gguf');
  await synthesizeModel({ config: { ...SMALL_LLAMA, vocab_size: 2063 }, out: odd, format: 'gguf', dtype: 'f32', seed: 3 });
  for (const [model, isa] of [MODEL_DIR, odd].flatMap((m) =>
    loadNative()
      .cpuInfo()
      .supported.map((isa) => [m, isa] as const),
  )) {
    const e = await EngineInstance.open({ modelPath: model, dtype: 'f32', numThreads: 1, numKvBlocks: 64, blockSize: 16, isa });
    const [r] = runOffline(e, [req({ temperature: 0, numLogprobs: 5 }, 8)], { returnLogits: true });
    let worst = 0;
    for (let i = 0; i < 8; i++) {
      const l = r.logits[i];
      const mx = Math.max(...l);
      const lse = mx + Math.log(l.reduce((a, v) => a + Math.exp(v - mx), 0));
      const order = [...l.keys()].sort((a, b) => l[b] - l[a] || a - b).slice(0, 5);
      t.same(
        r.topLogprobs[i].map((x) => x.id),
        order,
        `${isa}, vocabulary ${l.length}, position ${i}: the 5 likeliest, best first`,
      );
      t.equal(r.topLogprobs[i][0].id, r.outputIds[i], 'greedy token is the top-1');
      worst = Math.max(
        worst,
        Math.abs(r.logprobs[i] - (l[r.outputIds[i]] - lse)),
        ...r.topLogprobs[i].map((x, k) => Math.abs(x.logprob - (l[order[k]] - lse))),
      );
    }
    t.ok(worst < 1e-5, `${isa}, vocabulary ${r.logits[0].length}: log-probs within 1e-5 of a double log-softmax (largest difference ${worst})`);
    const [none] = runOffline(e, [req({ temperature: 0 }, 2)]);
    t.ok(Number.isNaN(none.logprobs[0]), 'no logprobs unless asked');
    e.close();
  }
});
