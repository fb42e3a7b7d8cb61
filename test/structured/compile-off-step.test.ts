// A constraint compiles off the step path: its request waits (status `waiting`, never in a step)
// until StepRunner.prepare resolves, while the other sequences keep stepping. Checked by state on
// a fake runner whose compile finishes only when the test says so; a failed compile and an abort
// during the compile end the request without it ever being scheduled.
import t from 'tap';

import { WeftError } from '../../src/errors.js';
import { EngineLoop, type RequestHandle, type StepRunner } from '../../src/scheduler/engine.js';
import type { StepMessage, StepReply } from '../../src/scheduler/protocol.js';
import type { ConstraintSpec } from '../../src/structured/types.js';

const SPEC: ConstraintSpec = { type: 'regex', pattern: '[a-z]+' };

class FakeRunner implements StepRunner {
  readonly info = { numKvBlocks: 256, blockSize: 16 };
  readonly stepsOf = new Map<number, number>(); // steps each seqId took part in
  readonly compiles: { spec: ConstraintSpec; finish: (error?: WeftError) => void }[] = [];
  #onCompile: (() => void) | null = null;

  async step(msg: StepMessage): Promise<StepReply> {
    for (const id of msg.seqIds) this.stepsOf.set(id, (this.stepsOf.get(id) ?? 0) + 1);
    const n = msg.seqIds.length;
    const sampled = Int32Array.from(msg.doSample, (d) => (d ? 5 : -1));
    return {
      ok: true,
      sampled,
      logprobs: new Float32Array(n).fill(NaN),
      topN: 0,
      topIds: new Int32Array(0),
      topLogprobs: new Float32Array(0),
      forwardUs: 0,
      sampleUs: 0,
      packUs: 0,
    };
  }

  prepare(spec: ConstraintSpec): Promise<void> {
    return new Promise((resolve, reject) => {
      this.compiles.push({ spec, finish: (e) => (e ? reject(e) : resolve()) });
      this.#onCompile?.();
    });
  }

  // Resolves once a compile has been asked for.
  compileAsked(): Promise<void> {
    return this.compiles.length > 0
      ? Promise.resolve()
      : new Promise((r) => {
          this.#onCompile = r;
        });
  }

  async restart(): Promise<void> {}
}

async function takeTokens(h: RequestHandle, k: number): Promise<number> {
  let n = 0;
  for await (const ev of h.events) if (ev.tokenId !== null && ++n === k) return n;
  return n;
}

async function drain(h: RequestHandle): Promise<{ n: number; reason?: string; code?: string }> {
  let n = 0;
  for await (const ev of h.events) {
    if (ev.tokenId !== null) n++;
    if (ev.finishReason) return { n, reason: ev.finishReason, code: ev.error?.code };
  }
  return { n };
}

function newLoop(runner: FakeRunner): EngineLoop {
  return new EngineLoop([runner], { scheduler: { maxNumSeqs: 8, maxNumBatchedTokens: 64, maxModelLen: 256 }, eosTokenIds: [2] });
}

t.test('an unconstrained sequence keeps stepping while a constraint compiles', async (t) => {
  const runner = new FakeRunner();
  const loop = newLoop(runner);
  t.teardown(() => loop.close());
  const free = loop.submit({ promptTokenIds: [1, 3, 4], maxTokens: 200, ignoreEos: true });
  const constrained = loop.submit({ promptTokenIds: [1, 3, 4], maxTokens: 4, ignoreEos: true, constraint: SPEC });
  await runner.compileAsked();
  t.equal(await takeTokens(free, 50), 50, 'the unconstrained sequence took 50 steps during the compile');
  t.ok(runner.stepsOf.get(free.sequence.seqId)! >= 50, 'in as many steps at least (the loop may run ahead of the reader)');
  t.equal(runner.stepsOf.get(constrained.sequence.seqId), undefined, 'the constrained one was in none of them');
  t.equal(constrained.sequence.status, 'waiting');
  t.same(
    runner.compiles.map((c) => c.spec),
    [SPEC],
    'one compile, of its constraint',
  );
  runner.compiles[0].finish();
  t.same(await drain(constrained), { n: 4, reason: 'length', code: undefined }, 'once compiled, it runs to the end');
  loop.finish(free.requestId);
});

t.test('a failed compile ends the request with its error; an abort during the compile ends it too', async (t) => {
  const runner = new FakeRunner();
  const loop = newLoop(runner);
  t.teardown(() => loop.close());
  const failing = loop.submit({ promptTokenIds: [1, 3], maxTokens: 4, constraint: SPEC });
  const aborted = loop.submit({ promptTokenIds: [1, 3], maxTokens: 4, constraint: { type: 'choice', choices: ['x'] } });
  await runner.compileAsked();
  while (runner.compiles.length < 2) await new Promise((r) => setImmediate(r));
  runner.compiles[0].finish(new WeftError('WEFT_ERR_ENGINE_INTERNAL', 'grammar engine: cannot compile'));
  t.same(await drain(failing), { n: 0, reason: 'error', code: 'WEFT_ERR_ENGINE_INTERNAL' });
  t.ok(loop.abort(aborted.requestId), 'abort finds the request while its grammar compiles');
  t.same(await drain(aborted), { n: 0, reason: 'abort', code: undefined });
  runner.compiles[1].finish(); // too late: the request is gone and is never scheduled
  const after = loop.submit({ promptTokenIds: [1, 3], maxTokens: 2 });
  t.same(await drain(after), { n: 2, reason: 'length', code: undefined });
  t.equal(runner.stepsOf.get(aborted.sequence.seqId), undefined, 'the aborted request never ran');
  t.equal(runner.stepsOf.get(failing.sequence.seqId), undefined, 'nor the failed one');
});

t.test('refusals still come at once for a constrained request', async (t) => {
  const runner = new FakeRunner();
  const loop = newLoop(runner);
  t.teardown(() => loop.close());
  t.throws(() => loop.submit({ promptTokenIds: Array(300).fill(3), maxTokens: 4, constraint: SPEC }), { code: 'WEFT_ERR_SCHED_TOO_LONG' });
  t.equal(runner.compiles.length, 0, 'nothing compiled for it');
});

t.test('requests whose grammars compile count as waiting: in the stats, and against --max-num-waiting', async (t) => {
  const runner = new FakeRunner();
  // 1 running slot, 2 waiting beyond it: a third compiling request finds the queue full
  const loop = new EngineLoop([runner], {
    scheduler: { maxNumSeqs: 1, maxNumWaiting: 2, maxNumBatchedTokens: 64, maxModelLen: 256 },
    eosTokenIds: [2],
  });
  t.teardown(() => loop.close());
  const pending = [0, 1, 2].map(() => loop.submit({ promptTokenIds: [1, 3], maxTokens: 2, constraint: SPEC }));
  await runner.compileAsked();
  t.equal(loop.stats()[0].numWaiting, 3, 'three waiting, none yet in the scheduler');
  t.throws(
    () => loop.submit({ requestId: pending[0].requestId, promptTokenIds: [1, 3], maxTokens: 2 }),
    { code: 'WEFT_ERR_SCHED_DUPLICATE_ID' },
    'the id of a request whose grammar compiles is in use',
  );
  t.throws(() => loop.submit({ promptTokenIds: [1, 3], maxTokens: 2, constraint: SPEC }), { code: 'WEFT_ERR_SCHED_QUEUE_FULL' });
  t.throws(() => loop.submit({ promptTokenIds: [1, 3], maxTokens: 2 }), { code: 'WEFT_ERR_SCHED_QUEUE_FULL' }, 'unconstrained too');
  while (runner.compiles.length < 3) await new Promise((r) => setImmediate(r));
  for (const c of runner.compiles) c.finish();
  for (const h of pending) t.same(await drain(h), { n: 2, reason: 'length', code: undefined });
  t.equal(loop.stats()[0].numWaiting, 0);
});
