import t, { type Test } from 'tap';

import { WeftError } from '../../src/errors.js';
import { orderRunning, pickVictim } from '../../src/scheduler/policy.js';
import { SCHEDULER_DEFAULTS, Scheduler, type SchedulerOptions, type SchedulerOutput } from '../../src/scheduler/scheduler.js';
import type { SequenceInit } from '../../src/scheduler/sequence.js';
import { EOS, FakeWorker, expectedOutput, makeSeq, range, runUntilIdle } from './scheduler-harness.js';

function setup(o: Partial<SchedulerOptions>) {
  const sched = new Scheduler(o);
  return { sched, worker: new FakeWorker(sched.options.numBlocks, sched.options.blockSize) };
}

function assertAllFree(t: Test, sched: Scheduler) {
  const bm = sched.blockManager;
  t.equal(bm.numFreeBlocks, bm.numBlocks, 'every block is free');
  t.ok(
    range(0, bm.numBlocks).every((b) => bm.refCount(b) === 0),
    'every refcount is zero',
  );
}

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof WeftError ? `${e.code} ${e.status}` : String(e);
  }
  return undefined;
}

// one step driven by hand: the sampled tokens are given, in batch order
function stepWith(sched: Scheduler, tokens: number[], now = 0): ReturnType<Scheduler['postprocess']> {
  const out = sched.schedule(now);
  const sampled = new Int32Array(out.scheduled.length).fill(-1);
  let k = 0;
  out.scheduled.forEach((s, i) => {
    if (s.doSample) sampled[i] = tokens[k++] ?? 1;
  });
  return sched.postprocess(out, sampled, now);
}

t.test('options: defaults, validation, frozen', async (t) => {
  const s = new Scheduler();
  t.same(s.options, SCHEDULER_DEFAULTS);
  t.ok(Object.isFrozen(s.options));
  t.equal(new Scheduler({ maxNumSeqs: undefined }).options.maxNumSeqs, SCHEDULER_DEFAULTS.maxNumSeqs);
  t.equal(
    codeOf(() => new Scheduler({ maxNumSeqs: 0 })),
    'WEFT_ERR_CONFIG_INVALID 500',
  );
  t.equal(
    codeOf(() => new Scheduler({ blockSize: 1.5 })),
    'WEFT_ERR_CONFIG_INVALID 500',
  );
  t.equal(
    codeOf(() => new Scheduler({ enablePrefixCaching: 'yes' as unknown as boolean })),
    'WEFT_ERR_CONFIG_INVALID 500',
  );
  t.equal(
    codeOf(() => new Scheduler({ maxNumSeq: 3 } as unknown as SchedulerOptions)),
    'WEFT_ERR_CONFIG_INVALID 500',
  );
  t.equal(
    codeOf(() => new Scheduler({ maxNumBatchedTokens: 8, maxNumSeqs: 9 })),
    'WEFT_ERR_CONFIG_INVALID 500',
    'every running sequence can decode each step',
  );
});

t.test('admission: a burst is refused only beyond the free running slots plus maxNumWaiting', async (t) => {
  // issue 14: arrivals join the batch between steps; a cap that counted them refused a burst while the batch had room
  const sched = new Scheduler({ maxNumSeqs: 16, maxNumWaiting: 2, maxModelLen: 64, numBlocks: 64, blockSize: 4 });
  const burst = range(0, 20).map((i) => codeOf(() => sched.add(makeSeq(`r${i}`, [1, 2, 3], { maxTokens: 4 }))));
  t.same(burst.slice(0, 18), Array(18).fill(undefined), '16 free slots + 2 waiting: 18 admitted');
  t.same(burst.slice(18), ['WEFT_ERR_SCHED_QUEUE_FULL 429', 'WEFT_ERR_SCHED_QUEUE_FULL 429']);
  const out = sched.schedule(0);
  t.equal(out.scheduled.length, 16, 'the next step runs all 16 slots');
  sched.postprocess(out, new Int32Array(16).fill(5), 0);
  t.equal(sched.numRunning, 16);
  t.equal(sched.numWaiting, 2);
});

t.test('add: queue full, too long, invalid', async (t) => {
  // one running slot: the first arrival will take it at the next step; two more may wait
  const sched = new Scheduler({ maxNumSeqs: 1, maxNumWaiting: 2, maxModelLen: 64, numBlocks: 4, blockSize: 4 });
  for (const id of ['a', 'b', 'c']) sched.add(makeSeq(id, [1, 2], { maxTokens: 4 }));
  let err: unknown;
  try {
    sched.add(makeSeq('x', [1, 2], { maxTokens: 4 }));
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof WeftError);
  t.match(err, { code: 'WEFT_ERR_SCHED_QUEUE_FULL', status: 429, type: 'overloaded_error' });
  t.equal(sched.numWaiting, 3, 'the rejected one is not queued');
  sched.postprocess(sched.schedule(0), new Int32Array([5]), 0);
  t.equal(sched.numRunning, 1);
  t.equal(sched.numWaiting, 2, 'the batch is full: two wait');
  t.equal(
    codeOf(() => sched.add(makeSeq('x', [1, 2], { maxTokens: 4 }))),
    'WEFT_ERR_SCHED_QUEUE_FULL 429',
    'still full',
  );
  t.ok(sched.finish('a', 'abort'));
  t.doesNotThrow(() => sched.add(makeSeq('x', [1, 2], { maxTokens: 4 })), 'room again once a running one ends');
  for (const id of ['b', 'c', 'x']) sched.finish(id, 'abort');

  t.equal(
    codeOf(() => sched.add(makeSeq('d', range(1, 64)))),
    'WEFT_ERR_SCHED_TOO_LONG 400',
    'prompt ≥ maxModelLen',
  );
  t.equal(
    codeOf(() => sched.add(makeSeq('d', range(1, 60), { maxTokens: 5 }))),
    'WEFT_ERR_SCHED_TOO_LONG 400',
    'prompt + maxTokens > maxModelLen',
  );
  // the cache holds 16 tokens; the last sampled token is never stored
  t.equal(
    codeOf(() => sched.add(makeSeq('d', range(1, 10), { maxTokens: 8 }))),
    'WEFT_ERR_SCHED_TOO_LONG 400',
    'can never fit the cache',
  );
  t.equal(
    codeOf(() => sched.add(makeSeq('d', range(1, 10), { maxTokens: 7 }))),
    undefined,
    'fits exactly',
  );
  t.equal(
    codeOf(() => sched.add(makeSeq('d', [1]))),
    'WEFT_ERR_SCHED_DUPLICATE_ID 400',
  );
  t.equal(
    codeOf(() => sched.add(makeSeq('e', []))),
    'WEFT_ERR_SCHED_INVALID_PARAMS 400',
  );
  t.equal(
    codeOf(() => sched.add(makeSeq('e', [1], { maxTokens: 0 }))),
    'WEFT_ERR_SCHED_INVALID_PARAMS 400',
  );
  t.equal(
    codeOf(() => sched.add(makeSeq('e', [1], { maxTokens: 3, minTokens: 4 }))),
    'WEFT_ERR_SCHED_INVALID_PARAMS 400',
  );
  const dflt = makeSeq('f', range(1, 10));
  new Scheduler({ maxModelLen: 64 }).add(dflt);
  t.equal(dflt.maxTokens, 54, 'maxTokens defaults to what maxModelLen leaves');
});

t.test('the budget and maxNumSeqs hold in every step; outputs are right', async (t) => {
  const { sched, worker } = setup({ maxNumBatchedTokens: 64, maxNumSeqs: 8, blockSize: 4, numBlocks: 256 });
  const inits: (SequenceInit & { maxTokens: number })[] = range(0, 40).map((i) => ({
    requestId: `r${i}`,
    promptTokenIds: range(i + 1, 5 + ((i * 37) % 90)),
    maxTokens: 1 + ((i * 13) % 30),
    eosTokenIds: [EOS],
  }));
  for (const init of inits) sched.add(makeSeq(init.requestId, init.promptTokenIds, init));
  let violations = 0;
  const res = runUntilIdle(sched, worker, (_, out) => {
    if (out.numScheduledTokens > 64 || out.scheduled.length > 8 || sched.numRunning > 8) violations++;
    const sum = out.scheduled.reduce((a, s) => a + s.numNewTokens, 0);
    if (sum !== out.numScheduledTokens || sched.lastStepNumTokens !== sum || sched.lastStepNumSeqs !== out.scheduled.length) violations++;
  });
  t.equal(violations, 0);
  t.equal(res.maxStepTokens, 64, 'the budget is used fully at peak');
  for (const init of inits) {
    const exp = expectedOutput(init);
    t.same(res.outputs.get(init.requestId), exp.tokens, `${init.requestId} output`);
    t.equal(res.reasons.get(init.requestId), exp.reason);
  }
  assertAllFree(t, sched);
});

t.test('chunked prefill: a long prompt advances by chunks while decoders keep going', async (t) => {
  const { sched, worker } = setup({ maxNumBatchedTokens: 256, maxNumSeqs: 16, blockSize: 16, numBlocks: 256 });
  // alone: 256 tokens per step, sampled once at the end
  sched.add(makeSeq('solo', range(1, 1000), { maxTokens: 1, ignoreEos: true }));
  const chunks: [number, number, boolean][] = [];
  runUntilIdle(sched, worker, (_, out) => {
    for (const s of out.scheduled) chunks.push([s.startPos, s.numNewTokens, s.doSample]);
  });
  t.same(chunks, [
    [0, 256, false],
    [256, 256, false],
    [512, 256, false],
    [768, 232, true],
  ]);

  // with 5 decoders running, the prompt gets what the decoders leave of the same budget
  for (let i = 0; i < 5; i++) sched.add(makeSeq(`d${i}`, [i + 1, 2, 3, 4], { maxTokens: 40, ignoreEos: true }));
  let out = sched.schedule(0);
  sched.postprocess(out, worker.step(out), 0);
  sched.add(makeSeq('long', range(5000, 1000), { maxTokens: 1, ignoreEos: true })); // not cached
  const longChunks: number[] = [];
  for (let step = 0; sched.getSequence('long'); step++) {
    out = sched.schedule(step);
    const events = sched.postprocess(out, worker.step(out), step);
    const decoders = out.scheduled.filter((s) => s.seq.requestId.startsWith('d'));
    t.equal(decoders.length, 5, `step ${step}: every decoder is scheduled`);
    t.ok(decoders.every((s) => s.numNewTokens === 1 && !s.isPrefill && s.doSample));
    t.equal(events.filter((e) => e.seq.requestId.startsWith('d') && e.newTokenId !== null).length, 5, 'and gets a token');
    t.ok(out.numScheduledTokens <= 256);
    longChunks.push(...out.scheduled.filter((s) => s.seq.requestId === 'long').map((s) => s.numNewTokens));
  }
  t.same(longChunks, [251, 251, 251, 247]);
  runUntilIdle(sched, worker);
  assertAllFree(t, sched);
});

t.test('preemption by recompute: a tiny cache gives the same outputs as a big one', async (t) => {
  const inits = range(0, 12).map((i) => ({
    requestId: `r${i}`,
    promptTokenIds: range(10 * i + 1, 20 + ((i * 7) % 21)),
    maxTokens: 40,
    ignoreEos: i % 2 === 0,
    eosTokenIds: [EOS],
  }));
  const run = (numBlocks: number) => {
    const { sched, worker } = setup({ maxNumBatchedTokens: 32, blockSize: 4, numBlocks, maxNumSeqs: 16 });
    for (const init of inits) sched.add(makeSeq(init.requestId, init.promptTokenIds, init));
    const victims: string[] = [];
    let isVictimLastAdmitted = true;
    const res = runUntilIdle(sched, worker, (_, out) => {
      for (const v of out.preempted) {
        victims.push(v.requestId);
        t.equal(v.status, 'preempted');
        t.equal(v.numComputedTokens, 0);
        t.same(v.blockTable, []);
        if (!sched.waiting.includes(v)) isVictimLastAdmitted = false;
      }
    });
    t.ok(isVictimLastAdmitted, 'preempted sequences wait again');
    assertAllFree(t, sched);
    return { res, victims, numPreemptions: sched.numPreemptions };
  };
  const big = run(1024);
  const tiny = run(24); // 96 tokens: about two sequences at a time
  t.equal(big.numPreemptions, 0);
  t.ok(tiny.numPreemptions > 5, `preempted ${tiny.numPreemptions} times`);
  t.equal(tiny.victims.length, tiny.numPreemptions);
  for (const init of inits) {
    t.same(tiny.res.outputs.get(init.requestId), big.res.outputs.get(init.requestId), `${init.requestId} same output`);
    t.same(big.res.outputs.get(init.requestId), expectedOutput(init).tokens);
  }
});

t.test('the preemption victim is the most recently admitted; it goes back to the head', async (t) => {
  const { sched, worker } = setup({ maxNumBatchedTokens: 64, maxNumSeqs: 8, blockSize: 4, numBlocks: 8 });
  for (const id of ['a', 'b', 'c']) sched.add(makeSeq(id, range(1, 8), { maxTokens: 20, ignoreEos: true }));
  sched.add(makeSeq('late', range(1, 3), { maxTokens: 2, ignoreEos: true }));
  let out: SchedulerOutput;
  let step = 0;
  do {
    out = sched.schedule(step);
    sched.postprocess(out, worker.step(out), step++);
  } while (out.preempted.length === 0);
  // a and b each open a third block: late (admitted last) makes room for b; c then finds
  // itself the last admitted and steps back
  t.same(
    out.preempted.map((s) => s.requestId),
    ['late', 'c'],
  );
  t.same(
    sched.running.map((s) => s.requestId),
    ['a', 'b'],
  );
  t.same(
    sched.waiting.map((s) => s.requestId),
    ['c', 'late'],
    'back at the head, in arrival order',
  );
  t.same(
    out.scheduled.map((s) => s.seq.requestId),
    ['a', 'b'],
    'nothing admitted in a step that preempted',
  );
  runUntilIdle(sched, worker);
  assertAllFree(t, sched);
  t.equal(sched.numRunning + sched.numWaiting, 0);
});

t.test('pickVictim: a held sequence, then worst priority, then most recently admitted', async (t) => {
  const s = (id: string, priority: number, isHeld = false) => Object.assign(makeSeq(id, [1], { priority }), { isHeld });
  t.equal(pickVictim([s('a', 0), s('b', 1), s('c', 0)])?.requestId, 'b');
  t.equal(pickVictim([s('a', 0), s('b', 0), s('c', 0)])?.requestId, 'c');
  t.equal(pickVictim([s('a', 0, true), s('b', 1), s('c', 0)])?.requestId, 'a', 'held first: it makes no progress anyway');
  t.equal(pickVictim([]), undefined);
});

t.test('hold: a held sequence is not computed; it keeps its place until a waiting request needs it; release lets it run on', async (t) => {
  const { sched, worker } = setup({ maxNumBatchedTokens: 64, maxNumSeqs: 2, blockSize: 4, numBlocks: 32 });
  for (const id of ['a', 'b']) sched.add(makeSeq(id, range(1, 6), { maxTokens: 6, ignoreEos: true }));
  const step = (now: number) => {
    const out = sched.schedule(now);
    sched.postprocess(out, worker.step(out), now);
    return { ran: out.scheduled.map((s) => s.seq.requestId), preempted: out.preempted.map((s) => s.requestId) };
  };
  t.same(step(0).ran, ['a', 'b']);
  const [a, b] = sched.running;
  sched.hold(a);
  t.same(step(1), { ran: ['b'], preempted: [] }, 'a is held: only b steps');
  t.equal(a.status, 'running', 'with nobody waiting, a keeps its slot and its blocks');
  t.ok(a.blockTable.length > 0);
  sched.add(makeSeq('c', range(1, 6), { maxTokens: 6, ignoreEos: true }));
  t.same(step(2), { ran: ['b', 'c'], preempted: ['a'] }, 'c waits and the slots are full: held a gives its slot (it would block c)');
  t.equal(a.status, 'preempted');
  sched.hold(b);
  t.same(step(3), { ran: ['c'], preempted: [] }, 'held b is skipped; nobody waits but held a');
  sched.release(a);
  sched.release(b);
  t.same(step(4).ran, ['b', 'c'], 'released: b runs on beside c; a waits for a slot');
  runUntilIdle(sched, worker);
  assertAllFree(t, sched);
  const beam = makeSeq('beam', [1, 2], { isBeam: true });
  sched.hold(beam);
  t.notOk(beam.isHeld, 'a beam is never held: its search steps whole');
});

t.test('hold: held sequences give their KV blocks to a waiting request that cannot fit otherwise', async (t) => {
  const { sched, worker } = setup({ maxNumBatchedTokens: 64, maxNumSeqs: 8, blockSize: 4, numBlocks: 6 });
  sched.add(makeSeq('big', range(1, 16), { maxTokens: 8, ignoreEos: true })); // 4 of the 6 blocks
  let out = sched.schedule(0);
  sched.postprocess(out, worker.step(out), 0);
  const big = sched.running[0];
  sched.hold(big);
  sched.add(makeSeq('next', range(100, 11), { maxTokens: 2, ignoreEos: true })); // needs 3 blocks: 2 are free
  out = sched.schedule(1);
  t.same(
    out.scheduled.map((s) => s.seq.requestId),
    ['next'],
    "admitted with the held one's blocks",
  );
  t.same(
    out.preempted.map((s) => s.requestId),
    ['big'],
  );
  sched.postprocess(out, worker.step(out), 1);
  sched.release(big);
  runUntilIdle(sched, worker);
  assertAllFree(t, sched);
});

t.test('hold: a held sequence waiting (preempted) is not readmitted; the next one is', async (t) => {
  const sched = new Scheduler({ maxNumBatchedTokens: 64, maxNumSeqs: 4, blockSize: 4, numBlocks: 32 });
  const [x, y] = [makeSeq('x', range(1, 6), { maxTokens: 4 }), makeSeq('y', range(1, 6), { maxTokens: 4 })];
  sched.add(x);
  sched.add(y);
  sched.hold(x); // a waiting sequence held (as one preempted while held would be)
  const out = sched.schedule(0);
  t.same(
    out.scheduled.map((s) => s.seq.requestId),
    ['y'],
    'y overtakes the held head',
  );
  t.same(
    sched.waiting.map((s) => s.requestId),
    ['x'],
  );
});

t.test('orderRunning: decodes first, then prefill chunks, each in admission order', async (t) => {
  const s = (id: string, numTokens: number, numComputed: number) => {
    const seq = makeSeq(id, range(1, numTokens));
    seq.numComputedTokens = numComputed;
    return seq;
  };
  const order = orderRunning([s('chunk1', 100, 10), s('dec1', 5, 4), s('chunk2', 50, 0), s('dec2', 9, 8)]);
  t.same(
    order.map((x) => x.requestId),
    ['dec1', 'dec2', 'chunk1', 'chunk2'],
  );
});

t.test('abort in every state frees every block and is reported once', async (t) => {
  const { sched, worker } = setup({ maxNumBatchedTokens: 8, maxNumSeqs: 4, blockSize: 4, numBlocks: 8 });
  const finishedIds: string[] = [];
  const step = (tokens?: number[]) => {
    const out = sched.schedule(0);
    finishedIds.push(...out.finished.map((f) => `${f.seq.requestId}:${f.reason}`));
    return sched.postprocess(out, tokens ? new Int32Array(tokens) : worker.step(out), 0);
  };

  // waiting
  const w = makeSeq('waiting', [1, 2, 3], { maxTokens: 5 });
  sched.add(w);
  t.ok(sched.abort('waiting', 7));
  t.notOk(sched.abort('waiting'), 'only once');
  t.equal(w.status, 'finished');
  t.equal(w.finishReason, 'abort');
  t.equal(w.finishedTime, 7);
  step();
  t.same(finishedIds, ['waiting:abort']);

  // mid-prefill
  sched.add(makeSeq('prefill', range(1, 20), { maxTokens: 5 }));
  step();
  t.equal(sched.getSequence('prefill')?.numComputedTokens, 8);
  t.equal(sched.blockManager.numUsedBlocks, 2);
  t.ok(sched.abort('prefill'));
  t.equal(sched.blockManager.numUsedBlocks, 0, 'blocks freed at once');
  step();
  step();
  t.same(finishedIds, ['waiting:abort', 'prefill:abort']);

  // decoding
  sched.add(makeSeq('decode', [1, 2, 3], { maxTokens: 20, ignoreEos: true }));
  step();
  step();
  t.equal(sched.getSequence('decode')?.numOutputTokens, 2);
  t.ok(sched.abort('decode'));
  assertAllFree(t, sched);
  step();

  // preempted
  sched.add(makeSeq('p1', range(1, 12), { maxTokens: 20, ignoreEos: true }));
  sched.add(makeSeq('p2', range(2, 12), { maxTokens: 20, ignoreEos: true }));
  const p2 = sched.getSequence('p2')!;
  for (let i = 0; i < 100 && p2.status !== 'preempted'; i++) step();
  t.equal(p2.status, 'preempted');
  t.ok(sched.abort('p2'));
  t.notOk(sched.waiting.includes(p2));

  // while its step is in flight: no event, no token, reported at the next schedule
  const out = sched.schedule(0);
  finishedIds.push(...out.finished.map((f) => `${f.seq.requestId}:${f.reason}`));
  t.ok(out.scheduled.some((s) => s.seq.requestId === 'p1'));
  t.ok(sched.abort('p1'));
  const events = sched.postprocess(out, worker.step(out), 0);
  t.same(events, [], 'no event for a sequence aborted during its step');
  step();
  t.same(finishedIds, ['waiting:abort', 'prefill:abort', 'decode:abort', 'p2:abort', 'p1:abort']);
  t.ok(sched.isIdle);
  assertAllFree(t, sched);
});

t.test('prefix cache: a shared 3-block prefix is computed once', async (t) => {
  for (const enablePrefixCaching of [true, false]) {
    const { sched, worker } = setup({ blockSize: 16, numBlocks: 64, enablePrefixCaching });
    const shared = range(100, 48);
    const a = { requestId: 'a', promptTokenIds: [...shared, ...range(1, 10)], maxTokens: 3, ignoreEos: true };
    const b = { requestId: 'b', promptTokenIds: [...shared, ...range(50, 7)], maxTokens: 3, ignoreEos: true };
    sched.add(makeSeq('a', a.promptTokenIds, a));
    runUntilIdle(sched, worker);
    sched.add(makeSeq('b', b.promptTokenIds, b));
    const seqB = sched.getSequence('b')!;
    const first: [number, number][] = [];
    const res = runUntilIdle(sched, worker, (_, out) => {
      for (const s of out.scheduled) if (s.isNew) first.push([s.startPos, s.numNewTokens]);
    });
    t.same(res.outputs.get('b'), expectedOutput(b).tokens, 'the cached KV is the right KV');
    const bm = sched.blockManager;
    if (enablePrefixCaching) {
      t.same(first, [[48, 7]], 'b computes only its own tail');
      t.equal(seqB.numCachedPromptTokens, 48);
      t.equal(bm.numPrefixCacheQueries, 58 + 55, 'queries in tokens');
      t.equal(bm.numPrefixCacheHits, 48, 'hits in tokens');
      t.equal(sched.stats().numPrefixCacheHits, 48);
    } else {
      t.same(first, [[0, 55]]);
      t.equal(bm.numPrefixCacheQueries, 0);
      t.equal(bm.numPrefixCacheHits, 0);
    }
    assertAllFree(t, sched);
  }
});

t.test('waiting order: priority, then arrival', async (t) => {
  const { sched, worker } = setup({ maxNumSeqs: 1 });
  const order: string[] = [];
  for (const [id, priority] of [
    ['low', 5],
    ['high', 0],
    ['mid', 1],
    ['high2', 0],
  ] as const) {
    sched.add(makeSeq(id, [1, 2], { maxTokens: 2, priority, ignoreEos: true }));
  }
  t.same(
    sched.waiting.map((s) => s.requestId),
    ['high', 'high2', 'mid', 'low'],
  );
  runUntilIdle(sched, worker, (_, out) => {
    t.ok(out.scheduled.length <= 1);
    for (const s of out.newSeqs) order.push(s.requestId);
  });
  t.same(order, ['high', 'high2', 'mid', 'low']);
});

t.test('stop conditions: EOS, minTokens, stop tokens, maxTokens, finish()', async (t) => {
  const sched = new Scheduler({ blockSize: 4, numBlocks: 64 });
  const run = (init: Partial<SequenceInit>, tokens: number[]) => {
    const seq = makeSeq(`s${Math.random()}`, [1, 2, 3], { maxTokens: 10, ...init });
    sched.add(seq);
    const events = tokens.flatMap((tok) => stepWith(sched, [tok]));
    return { seq, events };
  };
  let r = run({}, [5, EOS]);
  t.equal(r.seq.finishReason, 'stop');
  t.same(r.seq.outputTokenIds, [5, EOS]);
  t.same(
    r.events.map((e) => [e.newTokenId, e.finished]),
    [
      [5, undefined],
      [EOS, 'stop'],
    ],
  );
  r = run({ ignoreEos: true, maxTokens: 3 }, [EOS, EOS, EOS]);
  t.equal(r.seq.finishReason, 'length');
  r = run({ minTokens: 2 }, [EOS, EOS]);
  t.same(
    r.events.map((e) => e.finished),
    [undefined, 'stop'],
    'no EOS stop before minTokens',
  );
  r = run({ stopTokenIds: [7], minTokens: 2 }, [7, 7]);
  t.same(
    r.events.map((e) => e.finished),
    [undefined, 'stop'],
  );
  r = run({ maxTokens: 2 }, [4, EOS]);
  t.equal(r.seq.finishReason, 'stop', 'EOS is checked before maxTokens');
  r = run({}, [4, -1]);
  t.equal(r.seq.finishReason, 'error', 'a sample missing where one was due');
  r = run({}, [4]);
  t.ok(sched.finish(r.seq.requestId, 'stop', 9), 'a stop string matched above');
  const out = sched.schedule(10);
  t.same(
    out.finished.map((f) => [f.seq.requestId, f.reason]),
    [[r.seq.requestId, 'stop']],
  );
  t.equal(r.seq.finishedTime, 9);
  t.ok(sched.isIdle);
});

t.test('protocol: full data once, then only changed block-table entries', async (t) => {
  const sched = new Scheduler({ blockSize: 4, numBlocks: 64, maxNumBatchedTokens: 64, maxNumSeqs: 8 });
  const seq = makeSeq('p', [1, 2, 3, 4, 5], { maxTokens: 6, ignoreEos: true });
  sched.add(seq);
  const outs: SchedulerOutput[] = [];
  for (let i = 0; i < 5; i++) {
    const out = sched.schedule(i);
    outs.push(out);
    sched.postprocess(out, new Int32Array(out.scheduled.map(() => 9)), i);
  }
  const [s0, s1, s2, s3, s4] = outs.map((o) => o.scheduled[0]);
  t.same(
    outs.map((o) => o.newSeqs.length),
    [1, 0, 0, 0, 0],
  );
  t.same([s0.isNew, s0.isPrefill, s0.doSample, s0.startPos, s0.numNewTokens], [true, true, true, 0, 5]);
  t.same(s0.tokenIds, [1, 2, 3, 4, 5]);
  t.same(s0.blockUpdates, [
    [0, seq.blockTable[0]],
    [1, seq.blockTable[1]],
  ]);
  t.same([s1.isNew, s1.isPrefill, s1.startPos, s1.numNewTokens, s1.tokenIds], [false, false, 5, 1, [9]]);
  t.same(s1.blockUpdates, []);
  t.same(s2.blockUpdates, []);
  t.same(s3.blockUpdates, []);
  t.same([s4.startPos, s4.blockUpdates], [8, [[2, seq.blockTable[2]]]], 'position 8 opens block 2');
  t.equal(seq.firstScheduledTime, 0);
  t.equal(seq.firstTokenTime, 0);
  t.equal(seq.lastTokenTime, 4);
  t.throws(() => {
    sched.schedule(6);
    sched.schedule(7);
  }, /before postprocess/);
});

t.test('stats for metrics', async (t) => {
  const { sched, worker } = setup({ maxNumBatchedTokens: 16, maxNumSeqs: 2, blockSize: 4, numBlocks: 32 });
  for (let i = 0; i < 4; i++) sched.add(makeSeq(`s${i}`, range(1, 10), { maxTokens: 3, ignoreEos: true }));
  const out = sched.schedule(0);
  sched.postprocess(out, worker.step(out), 0);
  const st = sched.stats();
  t.match(st, { numWaiting: 2, numRunning: 2, numPreemptions: 0, lastStepNumSeqs: 2, lastStepNumTokens: 16 });
  t.equal(st.numUsedBlocks + st.numFreeBlocks, 32);
  t.equal(st.kvCacheUsage, st.numUsedBlocks / 32);
});
