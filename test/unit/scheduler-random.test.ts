// A seeded random workload on a small cache: thousands of arrivals with random lengths, shared
// prefixes, priorities, aborts in every state (some while their step is in flight), stop strings
// "matched above", rejections. Afterwards every block must be free and every request finished
// exactly once; along the way no step may exceed its limits and every output must be right.
import t, { type Test } from 'tap';

import { WeftError } from '../../src/errors.js';
import { Scheduler, type SchedulerOptions } from '../../src/scheduler/scheduler.js';
import type { SequenceInit } from '../../src/scheduler/sequence.js';
import { EOS, FakeWorker, expectedOutput, makeSeq, prng, range } from './scheduler-harness.js';

const NUM_ARRIVALS = 3000;

interface Tally {
  numSteps: number;
  numRejectedFull: number;
  numRejectedLong: number;
  numAborted: number;
  numStopped: number;
  numInFlightAborts: number;
  numChecked: number;
}

function runWorkload(t: Test, seed: number, o: Partial<SchedulerOptions>, arrivalRate: number, isCacheSmall = true): Tally {
  const rand = prng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const sched = new Scheduler(o);
  const { maxNumBatchedTokens, maxNumSeqs, numBlocks, blockSize } = sched.options;
  const worker = new FakeWorker(numBlocks, blockSize);
  const systemPrompts = range(0, 4).map((i) => range(1000 * (i + 1), 8 * i + 13));

  const inits = new Map<string, SequenceInit & { maxTokens: number }>();
  const outputs = new Map<string, number[]>();
  const finishedBy = new Map<string, string>(); // requestId → reason, from SchedulerOutput.finished
  const endedAbove = new Set<string>(); // aborted or finished by the layer above
  const tally: Tally = { numSteps: 0, numRejectedFull: 0, numRejectedLong: 0, numAborted: 0, numStopped: 0, numInFlightAborts: 0, numChecked: 0 };
  let numArrivals = 0;
  let numViolations = 0;
  const violation = (msg: string) => {
    if (numViolations++ < 5) t.fail(msg);
  };

  const arrive = () => {
    const id = `r${numArrivals++}`;
    const system = rand() < 0.6 ? systemPrompts[int(0, 3)] : [];
    const prompt = [...system, ...range(int(1, 5000), int(1, rand() < 0.1 ? 250 : 90))];
    const init = {
      requestId: id,
      promptTokenIds: prompt,
      maxTokens: int(1, rand() < 0.05 ? 300 : 80),
      eosTokenIds: [EOS],
      minTokens: rand() < 0.2 ? int(0, 5) : 0,
      ignoreEos: rand() < 0.3,
      stopTokenIds: rand() < 0.2 ? [int(1, 63)] : [],
      priority: rand() < 0.2 ? int(0, 2) : 1,
    };
    init.minTokens = Math.min(init.minTokens, init.maxTokens);
    try {
      sched.add(makeSeq(id, prompt, init));
      inits.set(id, init);
    } catch (e) {
      if (!(e instanceof WeftError)) throw e;
      if (e.code === 'WEFT_ERR_SCHED_QUEUE_FULL') tally.numRejectedFull++;
      else if (e.code === 'WEFT_ERR_SCHED_TOO_LONG') tally.numRejectedLong++;
      else throw e;
    }
  };
  const endRandomOne = () => {
    const pool = rand() < 0.5 ? sched.running : sched.waiting;
    if (pool.length === 0) return;
    const seq = pool[int(0, pool.length - 1)];
    const isAbort = rand() < 0.7;
    if (!sched.finish(seq.requestId, isAbort ? 'abort' : 'stop')) violation(`finish(${seq.requestId}) refused`);
    endedAbove.add(seq.requestId);
    if (isAbort) tally.numAborted++;
    else tally.numStopped++;
  };

  for (let step = 0; numArrivals < NUM_ARRIVALS || !sched.isIdle; step++) {
    if (step > 200_000) throw new Error('no progress');
    const numNew = rand() < 0.005 ? int(10, 50) : rand() < arrivalRate ? 1 : 0; // bursts fill the queue
    for (let k = 0; k < numNew && numArrivals < NUM_ARRIVALS; k++) arrive();
    if (rand() < 0.04) endRandomOne();

    const out = sched.schedule(step);
    tally.numSteps++;
    for (const f of out.finished) {
      if (finishedBy.has(f.seq.requestId)) violation(`${f.seq.requestId} finished twice`);
      finishedBy.set(f.seq.requestId, f.reason);
    }
    const ids = new Set(out.scheduled.map((s) => s.seq.requestId));
    const sum = out.scheduled.reduce((a, s) => a + s.numNewTokens, 0);
    if (out.numScheduledTokens > maxNumBatchedTokens || sum !== out.numScheduledTokens) violation(`step ${step}: ${sum} tokens`);
    if (out.scheduled.length > maxNumSeqs || sched.numRunning > maxNumSeqs) violation(`step ${step}: ${sched.numRunning} running`);
    if (ids.size !== out.scheduled.length) violation(`step ${step}: a sequence scheduled twice`);
    if (out.scheduled.some((s) => s.numNewTokens < 1)) violation(`step ${step}: an empty chunk`);
    if (sched.blockManager.numFreeBlocks < 0) violation('negative free blocks');
    if (out.scheduled.length === 0 && sched.numWaiting > 0 && sched.numRunning === 0) violation(`step ${step}: stalled`);

    const sampled = worker.step(out);
    if (out.scheduled.length > 0 && rand() < 0.03) {
      // an abort while the step runs
      const s = out.scheduled[int(0, out.scheduled.length - 1)].seq;
      if (sched.abort(s.requestId, step)) {
        endedAbove.add(s.requestId);
        tally.numAborted++;
        tally.numInFlightAborts++;
      }
    }
    for (const e of sched.postprocess(out, sampled, step)) {
      if (finishedBy.has(e.seq.requestId) || endedAbove.has(e.seq.requestId)) violation(`event after ${e.seq.requestId} ended`);
      if (e.newTokenId === null) continue;
      const list = outputs.get(e.seq.requestId) ?? [];
      list.push(e.newTokenId);
      outputs.set(e.seq.requestId, list);
    }
  }

  t.equal(numViolations, 0, 'no step broke a limit');
  const bm = sched.blockManager;
  t.equal(bm.numFreeBlocks, bm.numBlocks, 'every block is free');
  t.ok(
    range(0, bm.numBlocks).every((b) => bm.refCount(b) === 0),
    'every refcount is zero',
  );
  t.equal(sched.numRunning + sched.numWaiting, 0);
  t.equal(finishedBy.size, inits.size, 'every admitted request finished exactly once');
  let numWrong = 0;
  for (const [id, init] of inits) {
    const exp = expectedOutput(init);
    const got = outputs.get(id) ?? [];
    const reason = finishedBy.get(id);
    const isRight = endedAbove.has(id)
      ? got.length <= exp.tokens.length && got.every((tok, i) => tok === exp.tokens[i]) && (reason === 'abort' || reason === 'stop')
      : reason === exp.reason && got.length === exp.tokens.length && got.every((tok, i) => tok === exp.tokens[i]);
    if (!isRight && numWrong++ < 3) t.fail(`${id}: got ${got.length} tokens (${reason}), expected ${exp.tokens.length} (${exp.reason})`);
    tally.numChecked++;
  }
  t.equal(numWrong, 0, 'every output is the one a lone run gives');
  if (isCacheSmall) t.ok(sched.numPreemptions > 0, `${sched.numPreemptions} preemptions`);
  t.ok(tally.numRejectedLong > 0, 'some requests were too long');
  if (isCacheSmall) t.ok(tally.numRejectedFull > 0, 'the queue was full at times');
  if (bm.enablePrefixCaching) t.ok(bm.numPrefixCacheHits > 0, `${bm.numPrefixCacheHits} of ${bm.numPrefixCacheQueries} prompt tokens hit`);
  t.comment(
    JSON.stringify({
      ...tally,
      numPreemptions: sched.numPreemptions,
      hits: bm.numPrefixCacheHits,
      queries: bm.numPrefixCacheQueries,
      evictions: bm.numEvictions,
    }),
  );
  return tally;
}

const BASE: Partial<SchedulerOptions> = {
  maxNumBatchedTokens: 96,
  maxNumSeqs: 12,
  maxNumWaiting: 40,
  blockSize: 8,
  numBlocks: 48,
  maxModelLen: 512,
};

t.test('random workload, prefix caching on', async (t) => {
  runWorkload(t, 12345, { ...BASE, enablePrefixCaching: true }, 0.07);
});

t.test('random workload, prefix caching off', async (t) => {
  runWorkload(t, 777, { ...BASE, enablePrefixCaching: false }, 0.07);
});

t.test('random workload, roomy cache and a large budget', async (t) => {
  runWorkload(t, 4242, { ...BASE, numBlocks: 400, maxNumBatchedTokens: 512, maxNumSeqs: 32, maxNumWaiting: 300, maxModelLen: 400 }, 0.8, false);
});
