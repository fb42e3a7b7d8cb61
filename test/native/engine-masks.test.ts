// Token masks in the native step (structured output's engine half): a mask applies before every
// sampling rule, greedy included, and to the log-probs; sequences without one are untouched. On
// the CPU backend, and on the GPU (f16) where one is visible.
import t from 'tap';

import { runOffline, type OfflineRequest } from '../../src/offline.js';
import { packStep } from '../../src/workers/step-pack.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { loadNative } from '../../src/workers/binding.js';
import { GREEDY } from '../../src/sampling.js';
import { GOLDEN_IDS, MODEL_DIR } from '../fixtures/paths.js';

const golden = GOLDEN_IDS.slice(1, 21);
const backends = loadNative().cudaDeviceCount() > 0 ? (['cpu', 'gpu'] as const) : (['cpu'] as const);
const opener = (backend: 'cpu' | 'gpu') => () =>
  EngineInstance.open({
    modelPath: MODEL_DIR,
    dtype: backend === 'cpu' ? 'f32' : 'f16',
    numThreads: 1,
    numKvBlocks: 128,
    blockSize: 16,
    backend,
    ...(backend === 'gpu' ? { maxNumTokens: 512, maxNumSeqs: 64 } : {}),
  });

function maskOf(vocab: number, ids: Iterable<number>): Uint32Array {
  const m = new Uint32Array(Math.ceil(vocab / 32));
  for (const id of ids) m[id >>> 5] |= 1 << (id & 31);
  return m;
}
const allows = (m: Uint32Array, id: number) => ((m[id >>> 5] >>> (id & 31)) & 1) === 1;

for (const backend of backends) {
  const open = opener(backend);
  t.test(`${backend}: a mask allowing every token changes nothing; one allowing a single token forces it`, async (t) => {
    const e = await open();
    t.teardown(() => e.close());
    const V = e.spec.config.vocabSize;
    const all = maskOf(
      V,
      Array.from({ length: V }, (_, i) => i),
    );
    const req = (mask?: Uint32Array, sampling: OfflineRequest['sampling'] = { numLogprobs: 2 }): OfflineRequest => ({
      promptIds: [1],
      maxTokens: 20,
      ignoreEos: true,
      sampling,
      ...(mask ? { mask } : {}),
    });
    const [free, open_] = runOffline(e, [req(), req(all)]);
    t.same(free.outputIds, golden, 'unmasked greedy = golden');
    t.same(open_.outputIds, golden, 'allow-everything greedy = golden, batched beside an unmasked sequence');
    t.same(open_.logprobs, free.logprobs, 'and the same log-probs');
    const forced = golden[3] === 400 ? 401 : 400;
    const [one] = runOffline(e, [req(maskOf(V, [forced]), { temperature: 1.5, seed: 3, numLogprobs: 3 })]);
    t.same(one.outputIds, Array(20).fill(forced), 'temperature sampling under a one-token mask gives that token every time');
    t.ok(
      one.logprobs.every((l) => l === 0),
      'its log-prob is 0: the distribution is over the allowed tokens',
    );
    t.ok(
      one.topLogprobs.every((top) => top[0].id === forced && top.slice(1).every((x) => x.logprob === -Infinity)),
      'the other top candidates are disallowed (-inf)',
    );
  });

  t.test(`${backend}: sampled tokens stay inside a random mask; log-probs are renormalized over it`, async (t) => {
    const e = await open();
    t.teardown(() => e.close());
    const V = e.spec.config.vocabSize;
    const ids = Array.from({ length: V }, (_, i) => i).filter((i) => i % 7 === 3 || i === 2);
    const mask = maskOf(V, ids);
    const reqs: OfflineRequest[] = Array.from({ length: 8 }, (_, i) => ({
      promptIds: [1],
      maxTokens: 12,
      ignoreEos: true,
      mask,
      sampling: { temperature: 1, seed: 100 + i, numLogprobs: 5 },
    }));
    reqs.push({ promptIds: [1], maxTokens: 12, ignoreEos: true, sampling: { numLogprobs: 0 } });
    const res = runOffline(e, reqs, { returnLogits: true });
    t.ok(
      res.slice(0, 8).every((r) => r.outputIds.every((id) => allows(mask, id))),
      'every draw is an allowed token',
    );
    t.same(res[8].outputIds, GOLDEN_IDS.slice(1, 13), 'the unmasked neighbour is greedy as ever');
    // the chosen token's log-prob = its logit minus the log-sum-exp of the allowed logits alone
    const r = res[0],
      logits = r.logits[0],
      tok = r.outputIds[0];
    const lse = Math.log(ids.reduce((a, id) => a + Math.exp(logits[id]), 0));
    t.ok(Math.abs(r.logprobs[0] - (logits[tok] - lse)) < 1e-4, `log-prob ${r.logprobs[0]} over the allowed tokens`);
    t.ok(
      r.topLogprobs[0].every((x) => allows(mask, x.id)),
      'the top candidates are allowed tokens',
    );
  });

  t.test(`${backend}: bad masks are refused before any work`, async (t) => {
    const e = await open();
    t.teardown(() => e.close());
    const V = e.spec.config.vocabSize;
    const seq = (mask: Uint32Array) => ({
      seqId: 0,
      tokens: [1],
      startPos: 0,
      promptLen: 1,
      blockTable: [0],
      doSample: true,
      sampling: GREEDY,
      mask,
    });
    t.throws(
      () => e.step(packStep([seq(new Uint32Array(Math.ceil(V / 32)))], e.blockSize)),
      { code: 'WEFT_ERR_ENGINE_BAD_INPUT' },
      'a mask that allows no token',
    );
    t.throws(
      () => e.step(packStep([seq(new Uint32Array(3).fill(~0))], e.blockSize)),
      { code: 'WEFT_ERR_ENGINE_BAD_INPUT' },
      'a mask of the wrong length',
    );
  });

  t.test(`${backend}: logit biases shift the logits before everything; masks still win`, async (t) => {
    const e = await open();
    t.teardown(() => e.close());
    const V = e.spec.config.vocabSize;
    const base: OfflineRequest = { promptIds: [1], maxTokens: 6, ignoreEos: true, sampling: { numLogprobs: 1 } };
    const [raw] = runOffline(e, [base], { returnLogits: true });
    const [forced] = runOffline(e, [{ ...base, logitBias: [[413, 100]] }]);
    t.same(forced.outputIds, Array(6).fill(413), '+100 forces a token');
    const [banned] = runOffline(e, [{ ...base, maxTokens: 1, logitBias: [[raw.outputIds[0], -100]] }]);
    const logits = [...raw.logits[0]];
    logits[raw.outputIds[0]] -= 100;
    const argmax = logits.indexOf(Math.max(...logits));
    t.equal(banned.outputIds[0], argmax, '-100 on the greedy token gives the next best');
    const lse = Math.log(logits.reduce((a, x) => a + Math.exp(x), 0));
    t.ok(Math.abs(banned.logprobs[0] - (logits[argmax] - lse)) < 2e-3, 'log-probs of the biased logits');
    const [masked] = runOffline(e, [
      {
        ...base,
        mask: maskOf(V, [400, 401]),
        logitBias: [
          [413, 100],
          [401, 0.5],
        ],
      },
    ]);
    t.ok(
      masked.outputIds.every((id) => id === 400 || id === 401),
      'a bias cannot bring back a masked token',
    );
    const mixed = runOffline(e, [base, { ...base, logitBias: [[413, 100]] }]);
    t.same(mixed[0].outputIds, raw.outputIds, 'an unbiased neighbour is untouched');
    t.same(mixed[1].outputIds, Array(6).fill(413));
  });
}
