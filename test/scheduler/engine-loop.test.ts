// The engine loop through real Piscina workers on stories260K: concurrent requests give exactly
// the tokens each gives alone, also under preemption; prefix-cache hits; worker death.
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

import t from 'tap';

import { EngineLoop, MAX_QUEUED_EVENTS, type InstanceFailure, type RequestHandle, type StepTiming } from '../../src/scheduler/engine.js';
import { runOffline } from '../../src/offline.js';
import { loadModelSpec } from '../../src/model/load.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { EngineWorker } from '../../src/workers/pool.js';
import { MODEL_DIR } from '../fixtures/paths.js';

const EOS = [2];
const opts = (numKvBlocks: number) => ({ modelPath: MODEL_DIR, dtype: 'f32' as const, numThreads: 1, numKvBlocks, blockSize: 16 });

function prompts(n: number): { promptIds: number[]; maxTokens: number }[] {
  let x = 7;
  const rnd = () => (x = (x * 1103515245 + 12345) % 2147483648) / 2147483648;
  return Array.from({ length: n }, (_, i) => ({
    promptIds: [1, ...Array.from({ length: 1 + Math.floor(rnd() * 60) }, () => 3 + Math.floor(rnd() * 500))],
    maxTokens: 4 + Math.floor(rnd() * 40) + (i % 7 === 0 ? 60 : 0),
  }));
}

async function alone(reqs: { promptIds: number[]; maxTokens: number }[]): Promise<number[][]> {
  const e = await EngineInstance.open(opts(64));
  const out = reqs.map((r) => runOffline(e, [{ ...r, stopTokenIds: [] }], { eosTokenIds: EOS })[0].outputIds);
  e.close();
  return out;
}

async function collect(h: RequestHandle, onToken?: () => void): Promise<{ ids: number[]; reason?: string; code?: string }> {
  const ids: number[] = [];
  for await (const ev of h.events) {
    if (ev.tokenId !== null) {
      ids.push(ev.tokenId);
      onToken?.();
    }
    if (ev.finishReason) return { ids, reason: ev.finishReason, code: ev.error?.code };
  }
  return { ids };
}

// Resolves once `steps` holds at least k entries (k = 0: at once).
function stepCounter() {
  const steps: StepTiming[] = [];
  const waiters: { k: number; resolve: () => void }[] = [];
  return {
    steps,
    onStep(st: StepTiming) {
      steps.push(st);
      for (const w of waiters.filter((x) => x.k <= steps.length)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    },
    after: (k: number) => (k <= steps.length ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ k, resolve }))),
  };
}

async function runConcurrent(numKvBlocks: number, reqs: { promptIds: number[]; maxTokens: number }[], schedulerOpts = {}) {
  const worker = await EngineWorker.start(0, opts(numKvBlocks));
  const { steps, onStep, after } = stepCounter();
  const scheduler = { maxNumBatchedTokens: 64, maxNumSeqs: 64, maxModelLen: 512, ...schedulerOpts };
  const loop = new EngineLoop([worker], { scheduler, eosTokenIds: EOS, onStep });
  const results = await Promise.all(
    reqs.map(async (r, i) => {
      await after(i % 16); // staggered arrivals: request i joins after step i mod 16
      return collect(loop.submit({ promptTokenIds: r.promptIds, maxTokens: r.maxTokens }));
    }),
  );
  const stats = loop.stats()[0];
  await loop.close();
  await worker.close();
  return { results, stats, steps };
}

t.test('64 concurrent greedy requests equal each request alone', async (t) => {
  const reqs = prompts(64);
  const expected = await alone(reqs);
  const { results, stats, steps } = await runConcurrent(256, reqs);
  results.forEach((r, i) => t.same(r.ids, expected[i], `request ${i}`));
  t.equal(stats.numUsedBlocks, 0, 'every block is free at the end');
  t.ok(
    steps.some((s) => s.numSeqs > 16),
    `batches reached ${Math.max(...steps.map((s) => s.numSeqs))} sequences`,
  );
  t.ok(
    steps.every((s) => s.numTokens <= 64),
    'the token budget holds',
  );
});

t.test('a KV cache too small for all of them: preemptions happen, outputs unchanged', async (t) => {
  const reqs = prompts(64);
  const expected = await alone(reqs);
  const { results, stats } = await runConcurrent(24, reqs);
  t.ok(stats.numPreemptions > 0, `preemptions: ${stats.numPreemptions}`);
  results.forEach((r, i) => t.same(r.ids, expected[i], `request ${i}`));
  t.equal(stats.numUsedBlocks, 0);
});

t.test('a shared prompt prefix hits the prefix cache and gives the same tokens', async (t) => {
  const prefix = [1, ...Array.from({ length: 50 }, (_, i) => 3 + ((i * 37) % 500))];
  const a = { promptIds: [...prefix, 100, 101], maxTokens: 10 };
  const b = { promptIds: [...prefix, 200, 201, 202], maxTokens: 10 };
  const expected = await alone([a, b]);
  const worker = await EngineWorker.start(0, opts(64));
  const loop = new EngineLoop([worker], { scheduler: { maxModelLen: 512 }, eosTokenIds: EOS });
  const ra = await collect(loop.submit({ promptTokenIds: a.promptIds, maxTokens: a.maxTokens }));
  const before = loop.stats()[0].numPrefixCacheHits;
  const rb = await collect(loop.submit({ promptTokenIds: b.promptIds, maxTokens: b.maxTokens }));
  const hits = loop.stats()[0].numPrefixCacheHits - before;
  t.equal(hits, 48, 'three full 16-token blocks of the shared prefix came from the cache');
  t.same(ra.ids, expected[0]);
  t.same(rb.ids, expected[1]);
  await loop.close();
  await worker.close();
});

t.test('penalties see the whole prompt when its prefix came from the cache', async (t) => {
  const prefix = [1, ...Array.from({ length: 40 }, (_, i) => 3 + ((i * 13) % 60))];
  const sampling = { repetitionPenalty: 1.5, presencePenalty: 0.5 };
  const b = { promptIds: [...prefix, 7, 8], maxTokens: 24 };
  const e = await EngineInstance.open(opts(16));
  const expected = runOffline(e, [{ ...b, sampling }], { eosTokenIds: EOS })[0].outputIds;
  e.close();
  const worker = await EngineWorker.start(0, opts(64));
  const loop = new EngineLoop([worker], { scheduler: { maxModelLen: 512 }, eosTokenIds: EOS });
  await collect(loop.submit({ promptTokenIds: [...prefix, 5], maxTokens: 4 })); // fills the prefix cache
  const before = loop.stats()[0].numPrefixCacheHits;
  const r = await collect(loop.submit({ promptTokenIds: b.promptIds, maxTokens: b.maxTokens, sampling }));
  t.ok(loop.stats()[0].numPrefixCacheHits - before >= 32, 'the prefix came from the cache');
  t.same(r.ids, expected);
  await loop.close();
  await worker.close();
});

t.test('a worker given the spec the main thread read loads the model from it, not from the path again', async (t) => {
  const spec = await loadModelSpec(MODEL_DIR);
  const plain = await EngineWorker.start(0, opts(16));
  const full = plain.info.weightBytes;
  await plain.close();
  // A spec the path does not give (one layer fewer), under a path of its own: the process-wide
  // model cache is keyed by the path's real location, and another engine of this process may
  // still hold MODEL_DIR's model.
  const dir = mkdtempSync(join(tmpdir(), 'weft-spec-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const copy = join(dir, basename(MODEL_DIR));
  cpSync(MODEL_DIR, copy, { recursive: true });
  const fewer = { ...spec, config: { ...spec.config, numLayers: spec.config.numLayers - 1 } };
  const given = await EngineWorker.start(0, { ...opts(16), modelPath: copy, spec: fewer });
  t.ok(given.info.weightBytes < full, `${given.info.weightBytes} < ${full} bytes: the worker used the spec it was given`);
  await given.close();
});

t.test('a worker whose thread ended while idle fails the next request with a typed error (no hang) and serves again', async (t) => {
  const worker = await EngineWorker.start(0, opts(64));
  const loop = new EngineLoop([worker], { scheduler: { maxModelLen: 512 }, eosTokenIds: EOS });
  t.teardown(async () => {
    await loop.close();
    await worker.close();
  });
  const prompt = [1, 365, 403, 280];
  const before = await collect(loop.submit({ promptTokenIds: prompt, maxTokens: 8 }));
  await worker.killForTest();
  const failed = await collect(loop.submit({ promptTokenIds: prompt, maxTokens: 8 }));
  t.equal(failed.reason, 'error');
  t.equal(failed.code, 'WEFT_ERR_ENGINE_WORKER_DIED');
  const again = await collect(loop.submit({ promptTokenIds: prompt, maxTokens: 8 }));
  t.same(again.ids, before.ids, 'the recreated worker gives the same tokens');
});

t.test('a worker killed mid-step fails its sequences with a typed error; the others carry on', async (t) => {
  const w0 = await EngineWorker.start(0, opts(64));
  const w1 = await EngineWorker.start(1, opts(64));
  const failures: InstanceFailure[] = [];
  const loop = new EngineLoop([w0, w1], { scheduler: { maxModelLen: 512 }, eosTokenIds: EOS, onInstanceFailure: (f) => failures.push(f) });
  const reqs = prompts(6).map((r) => ({ ...r, maxTokens: 200 }));
  const expected = await alone(reqs);
  const handles = reqs.map((r) => loop.submit({ promptTokenIds: r.promptIds, maxTokens: r.maxTokens }));
  t.ok(handles.some((h) => h.instance === 0) && handles.some((h) => h.instance === 1), 'placed on both instances');
  // killed once every request has a token: all are mid-generation (200 tokens each)
  let numStarted = 0;
  let allStarted!: () => void;
  const started = new Promise<void>((resolve) => {
    allStarted = resolve;
  });
  const pending = handles.map((h) => {
    let isFirst = true;
    return collect(h, () => {
      if (isFirst && ++numStarted === handles.length) allStarted();
      isFirst = false;
    });
  });
  await started;
  await w0.killForTest();
  const results = await Promise.all(pending);
  handles.forEach((h, i) => {
    if (h.instance === 0) {
      t.equal(results[i].reason, 'error', `request ${i} on the dead worker ends with an error`);
      t.equal(results[i].code, 'WEFT_ERR_ENGINE_WORKER_DIED');
    } else t.same(results[i].ids, expected[i], `request ${i} on the healthy worker is unaffected`);
  });
  // the instance was recreated and serves again
  const again = await Promise.all([0, 1, 2, 3].map(() => collect(loop.submit({ promptTokenIds: reqs[0].promptIds, maxTokens: 20 }))));
  for (const r of again) t.same(r.ids, expected[0].slice(0, 20));
  // reported (for the server's log) once the restart is done, which serving again implies
  t.equal(failures.length, 1, 'the failure is reported once');
  t.match(failures[0], { instance: 0, restarted: true, error: { code: 'WEFT_ERR_ENGINE_WORKER_DIED' } });
  t.equal(failures[0]?.numFailedRequests, handles.filter((h) => h.instance === 0).length, 'with the requests it ended');
  await loop.close();
  await w0.close();
  await w1.close();
});

t.test('backpressure: a consumer that stops reading holds its sequence; reading again resumes it, same tokens', async (t) => {
  const worker = await EngineWorker.start(0, opts(64));
  const { onStep, steps } = stepCounter();
  let heldAt = -1;
  let h: RequestHandle | null = null;
  let isHeld!: () => void;
  const held = new Promise<void>((resolve) => {
    isHeld = resolve;
  });
  const loop = new EngineLoop([worker], {
    scheduler: { maxModelLen: 512 },
    eosTokenIds: EOS,
    onStep: (st) => {
      onStep(st);
      if (heldAt < 0 && h?.sequence.isHeld) {
        heldAt = steps.length;
        isHeld();
      }
    },
  });
  t.teardown(async () => {
    await loop.close();
    await worker.close();
  });
  const req = { promptTokenIds: [1, 403, 407], maxTokens: 200, ignoreEos: true };
  const expected = (await collect(loop.submit(req))).ids;
  h = loop.submit(req); // nobody reads its events yet
  await held;
  t.equal(h!.sequence.numOutputTokens, MAX_QUEUED_EVENTS, `held once ${MAX_QUEUED_EVENTS} events wait unread`);
  const other = await collect(loop.submit({ ...req, maxTokens: 20 }));
  t.same(other.ids, expected.slice(0, 20), 'others run meanwhile');
  t.equal(h!.sequence.numOutputTokens, MAX_QUEUED_EVENTS, 'and the held one did not move');
  const r = await collect(h!);
  t.same(r.ids, expected, 'read again: it resumes and ends as if never held');
  t.equal(loop.stats()[0].numUsedBlocks, 0);
});

t.test('abort in every state frees the blocks and ends the stream', async (t) => {
  const worker = await EngineWorker.start(0, opts(64));
  // different prompts: none comes from another's prefix cache
  const long = (k: number) => ({ promptTokenIds: [1, ...Array.from({ length: 200 }, (_, i) => 3 + ((i + 97 * k) % 500))], maxTokens: 100 });
  const hs: RequestHandle[] = [];
  const states: string[] = [];
  // aborted between two steps, once the second is mid-prefill: the first decodes, the third waits (maxNumSeqs 2)
  const onStep = () => {
    const [a, b] = hs.map((h) => h.sequence);
    if (states.length > 0 || b.status !== 'running' || b.numComputedTokens >= b.numPromptTokens) return;
    states.push(...hs.map((h) => `${h.sequence.status}${h.sequence.numOutputTokens > 0 ? ' decoding' : ''}`));
    t.ok(a.numOutputTokens > 0, 'the first is decoding');
    for (const h of hs) t.ok(loop.abort(h.requestId));
  };
  const loop = new EngineLoop([worker], { scheduler: { maxModelLen: 512, maxNumSeqs: 2, maxNumBatchedTokens: 32 }, eosTokenIds: EOS, onStep });
  hs.push(loop.submit(long(0)), loop.submit(long(1)), loop.submit(long(2)));
  const pending = hs.map((h) => collect(h));
  const results = await Promise.all(pending);
  t.same(states, ['running decoding', 'running', 'waiting'], 'aborted while decoding, mid-prefill and waiting');
  for (const r of results) t.equal(r.reason, 'abort');
  t.equal(loop.stats()[0].numUsedBlocks, 0);
  t.notOk(loop.abort(hs[0].requestId), 'a second abort is a no-op');
  await loop.close();
  await worker.close();
});

t.test('n samples of one prompt: prefilled once, the others fork; the same tokens as n separate requests', async (t) => {
  const worker = await EngineWorker.start(0, opts(256));
  const used: number[] = [];
  const loop = new EngineLoop([worker], {
    scheduler: { maxModelLen: 512 },
    eosTokenIds: EOS,
    onStep: () => used.push(loop.stats()[0].numUsedBlocks),
  });
  t.teardown(async () => {
    await loop.close();
    await worker.close();
  });
  const prompt = [1, ...Array.from({ length: 199 }, (_, i) => 3 + ((i * 41) % 400))]; // 200 tokens: 13 blocks
  const init = (seed: number) => ({ promptTokenIds: prompt, maxTokens: 12, ignoreEos: true, sampling: { temperature: 0.9, topK: 40, seed } });
  const separate = [];
  for (const seed of [5, 6, 7, 8]) separate.push((await collect(loop.submit(init(seed)))).ids);
  used.length = 0;
  const grouped = await Promise.all(loop.submitN([5, 6, 7, 8].map(init)).map((h) => collect(h)));
  t.same(
    grouped.map((r) => r.ids),
    separate,
    'each sample as if alone (counter-based sampling, seeds s..s+3)',
  );
  t.ok(new Set(grouped.map((r) => r.ids.join())).size > 1, 'the samples differ');
  const one = Math.ceil((prompt.length + 12) / 16);
  t.ok(Math.max(...used) < 2 * one, `4 samples held at most ${Math.max(...used)} blocks; one sequence needs ${one}`);
  t.equal(loop.stats()[0].numUsedBlocks, 0);
});

t.test('n samples: a sibling aborted before the fork ends at once; the first ending early still lets the others run', async (t) => {
  const worker = await EngineWorker.start(0, opts(64));
  const loop = new EngineLoop([worker], { scheduler: { maxModelLen: 512 }, eosTokenIds: EOS });
  t.teardown(async () => {
    await loop.close();
    await worker.close();
  });
  const hs = loop.submitN(
    [1, 2, 3].map((seed) => ({ promptTokenIds: [1, 403, 407], maxTokens: 6, ignoreEos: true, sampling: { temperature: 1, seed } })),
  );
  t.ok(loop.abort(hs[2].requestId), 'a sibling not yet forked can be aborted');
  loop.abort(hs[0].requestId); // the first, aborted before its first token: the second runs on its own
  const [a, b, c] = await Promise.all(hs.map((h) => collect(h)));
  t.equal(a.reason, 'abort');
  t.equal(c.reason, 'abort');
  t.equal(b.reason, 'length');
  t.equal(b.ids.length, 6);
  t.equal(loop.stats()[0].numUsedBlocks, 0);
});
