// Test harness for the scheduler: a fake worker that keeps a real paged "KV cache" of token ids,
// and a step loop. The fake worker samples a token that is a hash of the sequence's history as
// read back from its KV blocks, so any scheduling bug that corrupts KV (a wrong prefix hit, a
// shared block written without copy-on-write, a stale block table) changes the outputs; and
// since outputs depend on the history only, runs with different caches must agree.
import { Scheduler, type SchedulerOutput, type StepEvent } from '../../src/scheduler/scheduler.js';
import { Sequence, type SequenceInit } from '../../src/scheduler/sequence.js';

export const EOS = 0;
export const VOCAB = 64;

export function tokenFor(history: ArrayLike<number>, length: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < length; i++) h = Math.imul(h ^ history[i], 0x01000193);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  return (h >>> 0) % VOCAB;
}

export class FakeWorker {
  readonly kv: Int32Array;
  readonly tables = new Map<number, number[]>(); // what the worker knows, per seqId
  readonly blockSize: number;
  numSteps = 0;

  constructor(numBlocks: number, blockSize: number) {
    this.blockSize = blockSize;
    this.kv = new Int32Array(numBlocks * blockSize).fill(-1);
  }

  step(out: SchedulerOutput): Int32Array {
    this.numSteps++;
    for (const s of [...out.finished.map((f) => f.seq), ...out.preempted]) this.tables.delete(s.seqId);
    const bs = this.blockSize;
    for (const [src, dst] of out.blockCopies) this.kv.copyWithin(dst * bs, src * bs, (src + 1) * bs);
    const sampled = new Int32Array(out.scheduled.length).fill(-1);
    out.scheduled.forEach((s, i) => {
      let table = this.tables.get(s.seqId);
      if (s.isNew !== (table === undefined)) throw new Error(`seq ${s.seqId}: isNew=${s.isNew} but worker ${table ? 'has' : 'lacks'} it`);
      table ??= [];
      for (const [index, block] of s.blockUpdates) table[index] = block;
      this.tables.set(s.seqId, table);
      if (table.length !== s.blockTable.length || table.some((b, j) => b !== s.blockTable[j])) {
        throw new Error(`seq ${s.seqId}: block updates do not rebuild the table`);
      }
      for (let j = 0; j < s.numNewTokens; j++) {
        const pos = s.startPos + j;
        if (Math.floor(pos / bs) >= table.length) throw new Error(`seq ${s.seqId}: no block for position ${pos}`);
        this.kv[table[Math.floor(pos / bs)] * bs + (pos % bs)] = s.tokenIds[j];
      }
      if (!s.doSample) return;
      const end = s.startPos + s.numNewTokens;
      const history = new Int32Array(end);
      for (let pos = 0; pos < end; pos++) history[pos] = this.kv[table[Math.floor(pos / bs)] * bs + (pos % bs)];
      sampled[i] = tokenFor(history, end);
    });
    return sampled;
  }
}

// What a request must output when nothing goes wrong: the same stop rules, on the same hash.
export function expectedOutput(init: SequenceInit & { maxTokens: number }): { tokens: number[]; reason: 'stop' | 'length' } {
  const all = Array.from(init.promptTokenIds);
  const tokens: number[] = [];
  for (;;) {
    const t = tokenFor(all, all.length);
    all.push(t);
    tokens.push(t);
    const canStop = tokens.length >= (init.minTokens ?? 0);
    if (canStop && !init.ignoreEos && (init.eosTokenIds ?? []).includes(t)) return { tokens, reason: 'stop' };
    if (canStop && (init.stopTokenIds ?? []).includes(t)) return { tokens, reason: 'stop' };
    if (tokens.length >= init.maxTokens) return { tokens, reason: 'length' };
  }
}

export interface RunResult {
  outputs: Map<string, number[]>;
  reasons: Map<string, string>;
  numSteps: number;
  maxStepTokens: number;
}

// Steps until the scheduler is idle; `onStep` may add or abort between steps.
export function runUntilIdle(
  sched: Scheduler,
  worker: FakeWorker,
  onStep?: (stepNo: number, out: SchedulerOutput, events: StepEvent[]) => void,
  maxSteps = 100_000,
): RunResult {
  const outputs = new Map<string, number[]>();
  const reasons = new Map<string, string>();
  let maxStepTokens = 0;
  let stepNo = 0;
  for (; !sched.isIdle && stepNo < maxSteps; stepNo++) {
    const out = sched.schedule(stepNo);
    for (const f of out.finished) {
      if (reasons.has(f.seq.requestId)) throw new Error(`${f.seq.requestId} reported finished twice`);
      reasons.set(f.seq.requestId, f.reason);
    }
    maxStepTokens = Math.max(maxStepTokens, out.numScheduledTokens);
    const events = sched.postprocess(out, worker.step(out), stepNo);
    for (const e of events) {
      if (e.newTokenId === null) continue;
      const list = outputs.get(e.seq.requestId) ?? [];
      list.push(e.newTokenId);
      outputs.set(e.seq.requestId, list);
    }
    onStep?.(stepNo, out, events);
  }
  if (!sched.isIdle) throw new Error(`not idle after ${maxSteps} steps`);
  return { outputs, reasons, numSteps: stepNo, maxStepTokens };
}

export function makeSeq(requestId: string, prompt: ArrayLike<number>, extra: Partial<SequenceInit> = {}): Sequence {
  return new Sequence({ requestId, promptTokenIds: prompt, eosTokenIds: [EOS], ...extra });
}

export function range(start: number, length: number): number[] {
  return Array.from({ length }, (_, i) => start + i);
}

// mulberry32: a small seeded PRNG, so that the randomized workload is reproducible
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
