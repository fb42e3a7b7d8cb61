// --kv-dtype int8 through the server: the option reaches the engine (the served log-probs are the
// int8 cache's, not the f32 cache's), a prefix-cache hit on int8 blocks continues exactly like a
// cold prompt, and forks (n > 1, beam search) on int8 blocks finish and free every block. The
// cache's accuracy and its block copies at the engine: test/native/kv-int8.test.ts.
import t from 'tap';

import { runOffline, type OfflineResult } from '../../src/offline.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { MODEL_DIR } from '../fixtures/paths.js';
import { MODEL_ID, metricValue, startTestApp } from './helpers.js';

// Two full 16-token blocks and a partial one, so that a second request finds cached blocks.
const PROMPT = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267];
const PROMPT_IDS = [...PROMPT, ...PROMPT.slice(1, 18)];
const MAX_TOKENS = 24;

async function offline(kvDtype: 'f32' | 'int8'): Promise<OfflineResult> {
  const e = await EngineInstance.open({ modelPath: MODEL_DIR, dtype: 'f32', numThreads: 1, numKvBlocks: 16, blockSize: 16, kvDtype });
  const [r] = runOffline(e, [{ promptIds: PROMPT_IDS, maxTokens: MAX_TOKENS, ignoreEos: true, sampling: { numLogprobs: 0 } }]);
  e.close();
  return r;
}

const s = await startTestApp({ dtype: 'f32', kvDtype: 'int8' });
await s.app.listen({ port: 0, host: '127.0.0.1' });
const base = `http://127.0.0.1:${(s.app.server.address() as { port: number }).port}`;
t.teardown(() => s.close());

// eslint-disable-next-line @typescript-eslint/no-explicit-any
const post = async (path: string, body: unknown): Promise<any> => {
  const r = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (r.status !== 200) throw new Error(`${path}: ${r.status} ${await r.text()}`);
  return r.json();
};
const metrics = async () => (await fetch(base + '/metrics')).text();
const greedy = (prompt = PROMPT_IDS) =>
  post('/v1/completions', { model: MODEL_ID, prompt, max_tokens: MAX_TOKENS, temperature: 0, ignore_eos: true, logprobs: 0 });
const maxDiff = (a: number[], b: number[]) => Math.max(...a.map((v, i) => Math.abs(v - b[i])));

t.test("the served log-probs are the int8 cache's", async (t) => {
  const [i8, f32] = [await offline('int8'), await offline('f32')];
  const served: number[] = (await greedy()).choices[0].logprobs.token_logprobs;
  t.equal(served.length, MAX_TOKENS);
  // the same arithmetic up to the order of float sums (the server's steps cut the prompt differently)
  t.ok(maxDiff(served, i8.logprobs) < 1e-3, `served vs an int8-cache engine: max difference ${maxDiff(served, i8.logprobs).toExponential(2)}`);
  // ... and measurably not the f32 cache's (int8 moves this model's log-probs by ~0.09 RMS, and
  // where the greedy paths part, by far more)
  t.ok(maxDiff(i8.logprobs, f32.logprobs) > 1e-2, `int8 vs f32 cache: max difference ${maxDiff(i8.logprobs, f32.logprobs).toFixed(3)}`);
});

t.test('a prompt found in the prefix cache (int8 blocks) continues like the cold one', async (t) => {
  const prompt = [1, ...PROMPT.slice(1).reverse(), ...PROMPT.slice(2, 19)]; // not sent before
  const hits = async () => metricValue(await metrics(), 'weft_prefix_cache_hits_total');
  const h0 = await hits();
  const cold = (await greedy(prompt)).choices[0].logprobs;
  const h1 = await hits();
  const warm = (await greedy(prompt)).choices[0].logprobs;
  t.equal(h1 - h0, 0, 'the first request found nothing cached');
  t.ok((await hits()) - h1 >= 32, 'the second reused two full blocks');
  t.same(warm.tokens, cold.tokens, 'the same greedy tokens');
  t.ok(maxDiff(warm.token_logprobs, cold.token_logprobs) < 1e-3, 'and the same log-probs');
});

t.test('forks on int8 blocks (n = 3, a width-4 beam search) finish and free every block', async (t) => {
  const [sampled, beam] = await Promise.all([
    post('/v1/completions', { model: MODEL_ID, prompt: PROMPT_IDS, max_tokens: 16, n: 3, temperature: 1, seed: 11, ignore_eos: true }),
    post('/rerank_scores', { messages: ['Hello', 'Tell me a story.'], beam_width: 4, max_tokens: 16 }),
  ]);
  t.equal(sampled.choices.length, 3);
  for (const c of sampled.choices) t.equal(c.finish_reason, 'length', `choice ${c.index} ran its 16 tokens`);
  t.ok(beam.hypotheses.length >= 1, `${beam.hypotheses.length} hypotheses`);
  const again = await post('/rerank_scores', { messages: ['Hello', 'Tell me a story.'], beam_width: 4, max_tokens: 16 });
  t.same(
    again.hypotheses.map((h: { output_ids: number[] }) => h.output_ids),
    beam.hypotheses.map((h: { output_ids: number[] }) => h.output_ids),
    'the search is deterministic',
  );
  t.equal(metricValue(await metrics(), 'weft_kv_cache_usage_perc'), 0, 'no block held after');
});
