// Decides what one engine instance computes in each step: pure, synchronous, deterministic.
// vLLM v1 style: one token budget per step, running sequences first (a decode token each, or
// their next prefill chunk), then waiting ones; any prompt is chunked to the budget that is left.
// KV blocks are allocated on demand; when they run out the scheduler preempts by recompute.
//
// The engine loop calls, per step: schedule(now) → run the batch → postprocess(output, sampled, now).
import { WeftError } from '../errors.js';
import { BlockManager, type BlockCopy } from './block-manager.js';
import { insertWaiting, orderRunning, pickVictim } from './policy.js';
import { resolveOptions, type SchedulerOptions } from './scheduler-options.js';
import { checkStop, type FinishReason, type Sequence } from './sequence.js';

export { SCHEDULER_DEFAULTS, type SchedulerOptions } from './scheduler-options.js';

export interface ScheduledSeq {
  readonly seq: Sequence;
  readonly seqId: number;
  readonly startPos: number; // numComputedTokens before the step
  readonly numNewTokens: number;
  readonly tokenIds: number[]; // tokenIds[startPos, startPos + numNewTokens)
  readonly blockTable: number[]; // the whole table, a copy
  readonly blockUpdates: [index: number, blockId: number][]; // entries the worker lacks
  readonly isNew: boolean; // first step on the worker (or first after a preemption)
  readonly isPrefill: boolean; // computes more than the last sampled token
  readonly doSample: boolean; // the chunk reaches the last known token: sample one
}

export interface FinishedSeq {
  readonly seq: Sequence;
  readonly reason: FinishReason;
}

export interface SchedulerOutput {
  readonly scheduled: ScheduledSeq[]; // batch order
  readonly newSeqs: Sequence[]; // scheduled ones whose full data the worker needs once
  readonly numScheduledTokens: number;
  readonly blockCopies: BlockCopy[]; // run before the forward pass
  readonly finished: FinishedSeq[]; // since the last step, each once: release native state
  readonly preempted: Sequence[]; // release native state; they come back as new
  readonly forks: [parentSeqId: number, childSeqId: number][]; // since the last step; applied first
}

export interface StepEvent {
  readonly seq: Sequence;
  readonly newTokenId: number | null;
  readonly finished?: FinishReason;
}

export interface SchedulerStats {
  numWaiting: number;
  numRunning: number;
  numPreemptions: number;
  numUsedBlocks: number;
  numFreeBlocks: number;
  kvCacheUsage: number;
  numPrefixCacheQueries: number; // tokens
  numPrefixCacheHits: number; // tokens
  numBlocks: number; // KV blocks of the instance
  blockSize: number; // tokens per block
  lastStepNumSeqs: number;
  lastStepNumTokens: number;
}

export class Scheduler {
  readonly options: Readonly<SchedulerOptions>;
  readonly blockManager: BlockManager;
  numPreemptions = 0;
  lastStepNumSeqs = 0;
  lastStepNumTokens = 0;

  #waiting: Sequence[] = []; // sorted by policy.compareWaiting
  #running: Sequence[] = []; // admission order
  readonly #byId = new Map<string, Sequence>();
  #finishedSinceLastStep: FinishedSeq[] = [];
  #forksSinceLastStep: [number, number][] = [];
  #numArrivals = 0;
  #isStepInFlight = false;

  constructor(options: Partial<SchedulerOptions> = {}) {
    this.options = resolveOptions(options);
    const { numBlocks, blockSize, enablePrefixCaching } = this.options;
    this.blockManager = new BlockManager({ numBlocks, blockSize, enablePrefixCaching });
  }

  // read-only views, in queue order (admin endpoints, tests)
  get waiting(): readonly Sequence[] {
    return this.#waiting;
  }

  get running(): readonly Sequence[] {
    return this.#running;
  }

  get numWaiting(): number {
    return this.#waiting.length;
  }

  get numRunning(): number {
    return this.#running.length;
  }

  // Waiting sequences beyond the free running slots: what maxNumWaiting caps. Arrivals join the
  // running batch only between steps; counting those the free slots will take at the next step
  // would refuse requests while the batch has room.
  get numQueued(): number {
    return this.#queued(0);
  }

  #queued(numPending: number): number {
    return Math.max(0, this.#waiting.length + numPending - Math.max(0, this.options.maxNumSeqs - this.#running.length));
  }

  // nothing queued, running, or left to report
  get isIdle(): boolean {
    return this.#byId.size === 0 && this.#finishedSinceLastStep.length === 0;
  }

  getSequence(requestId: string): Sequence | undefined {
    return this.#byId.get(requestId);
  }

  stats(): SchedulerStats {
    const bm = this.blockManager;
    return {
      numWaiting: this.numWaiting,
      numRunning: this.numRunning,
      numPreemptions: this.numPreemptions,
      numUsedBlocks: bm.numUsedBlocks,
      numFreeBlocks: bm.numFreeBlocks,
      kvCacheUsage: bm.usage,
      numPrefixCacheQueries: bm.numPrefixCacheQueries,
      numPrefixCacheHits: bm.numPrefixCacheHits,
      numBlocks: bm.numBlocks,
      blockSize: bm.blockSize,
      lastStepNumSeqs: this.lastStepNumSeqs,
      lastStepNumTokens: this.lastStepNumTokens,
    };
  }

  // Queues a new sequence. Throws WEFT_ERR_SCHED_* for a request that can never run or when
  // the waiting queue is full (counting `numPending` admitted requests not yet added); fills in maxTokens when the request left it out.
  add(seq: Sequence, numPending = 0): void {
    this.check(seq, numPending);
    seq.arrivalOrder = this.#numArrivals++;
    insertWaiting(this.#waiting, seq);
    this.#byId.set(seq.requestId, seq);
  }

  // What add() would throw, without queueing: a request whose constraint compiles first is
  // refused at once, not after its grammar is ready. `numPending`: requests admitted but not yet
  // added (their grammars compiling), which count as waiting.
  check(seq: Sequence, numPending = 0): void {
    this.#validateNew(seq);
    if (this.#queued(numPending) >= this.options.maxNumWaiting) {
      throw new WeftError('WEFT_ERR_SCHED_QUEUE_FULL', `server overloaded: ${this.#waiting.length + numPending} requests already waiting`);
    }
  }

  // Backpressure: a held sequence keeps its state and place but is not computed (and is the first
  // preempted when blocks run short) until release(). Beams are never held: a search steps whole.
  hold(seq: Sequence): void {
    if (!seq.isBeam && !seq.isFinished) seq.isHeld = true;
  }

  release(seq: Sequence): void {
    seq.isHeld = false;
  }

  abort(requestId: string, now?: number): boolean {
    return this.finish(requestId, 'abort', now);
  }

  // Ends a sequence in any state (e.g. a stop string matched above). Its blocks are freed now;
  // it is reported in the next output's `finished`. False when unknown or already finished.
  finish(requestId: string, reason: FinishReason, now?: number): boolean {
    const seq = this.#byId.get(requestId);
    if (seq === undefined) return false;
    this.#finish(seq, reason, now ?? null);
    return true;
  }

  schedule(now: number): SchedulerOutput {
    if (this.#isStepInFlight) throw new Error('schedule() called before postprocess() of the previous step');
    const finished = this.#finishedSinceLastStep;
    this.#finishedSinceLastStep = [];
    const step = new Map<Sequence, number>(); // scheduled sequence → its new tokens, batch order
    const preempted: Sequence[] = [];
    let budget = this.options.maxNumBatchedTokens;

    // 1. Running sequences: a decode token each, then their next prefill chunks.
    for (const seq of orderRunning(this.#running)) {
      if (budget === 0) break;
      if (seq.status !== 'running' || seq.isHeld) continue; // preempted for an earlier one in this loop, or held
      const numNewTokens = Math.min(seq.numTokens - seq.numComputedTokens, budget);
      if (numNewTokens === 0) continue; // a beam waiting for the rest of its group's step
      while (!this.blockManager.appendSlots(seq, numNewTokens)) {
        // the victim, with every beam of its search: a search is preempted as a whole
        const victim = pickVictim(this.#running)!; // seq itself is running, so there is one
        for (const v of victim.isBeam ? this.#running.filter((r) => r.beamGroup === victim.beamGroup) : [victim]) {
          budget += step.get(v) ?? 0;
          step.delete(v);
          this.#preempt(v);
          preempted.push(v);
        }
        if (seq.status !== 'running') break; // alone and still no room: it waits
      }
      if (seq.status !== 'running') continue;
      step.set(seq, numNewTokens);
      budget -= numNewTokens;
    }

    // 2. Waiting sequences by priority and arrival, unless this step had to preempt (they would
    //    take the blocks just freed). The head waits for room rather than being overtaken.
    //    A preempted beam search comes back whole or not at all: beams that ran without their
    //    siblings would hold blocks while waiting for them.
    const blocked = preempted.length > 0;
    while (!blocked && budget > 0) {
      const head = this.#waiting.find((w) => !w.isHeld); // a held one would only sit in the batch
      if (head === undefined) break;
      const members = head.isBeam ? this.#waiting.filter((w) => w.beamGroup === head.beamGroup) : [head];
      // held sequences (their clients lag) give up their slots to a waiting request: kept running,
      // they would block it until their clients read; preempted, they recompute once released
      while (this.#running.length + members.length > this.options.maxNumSeqs) {
        const held = this.#running.find((r) => r.isHeld && !step.has(r));
        if (held === undefined) break;
        this.#preempt(held);
        preempted.push(held);
      }
      if (this.#running.length + members.length > this.options.maxNumSeqs) break;
      const admitted: [Sequence, number][] = [];
      for (const seq of members) {
        const prefix = this.blockManager.getCachedPrefix(seq);
        const numNewTokens = Math.min(seq.numTokens - prefix.numTokens, budget);
        if (numNewTokens <= 0 || !this.blockManager.allocate(seq, prefix, numNewTokens)) break;
        admitted.push([seq, numNewTokens]);
        budget -= numNewTokens;
      }
      if (admitted.length < members.length) {
        // no room for all: undo, and the head waits
        for (const [seq, n] of admitted) {
          this.blockManager.free(seq);
          seq.numComputedTokens = 0;
          budget += n;
        }
        // ... unless held sequences keep the blocks: those go to the head (they recompute once released)
        const held = this.#running.find((r) => r.isHeld && !step.has(r));
        if (held === undefined) break;
        this.#preempt(held);
        preempted.push(held);
        continue;
      }
      for (const [seq, n] of admitted) {
        this.#waiting.splice(this.#waiting.indexOf(seq), 1);
        seq.status = 'running';
        this.#running.push(seq);
        step.set(seq, n);
      }
    }

    this.lastStepNumSeqs = step.size;
    this.lastStepNumTokens = this.options.maxNumBatchedTokens - budget;
    this.#isStepInFlight = step.size > 0;
    const scheduled = [...step].map(([seq, n]) => describeStep(seq, n, now));
    const forks = this.#forksSinceLastStep;
    this.#forksSinceLastStep = [];
    return {
      scheduled,
      newSeqs: scheduled.filter((s) => s.isNew).map((s) => s.seq),
      numScheduledTokens: this.lastStepNumTokens,
      blockCopies: this.blockManager.takeBlockCopies(),
      finished,
      preempted,
      forks,
    };
  }

  // Applies a step's results: sampled[i] is the token sampled for output.scheduled[i], -1 where
  // none was. Advances KV, caches blocks that became full, appends tokens, checks stop tokens.
  postprocess(output: SchedulerOutput, sampled: Int32Array, now: number): StepEvent[] {
    if (sampled.length !== output.scheduled.length) {
      throw new Error(`postprocess: ${sampled.length} sampled tokens for ${output.scheduled.length} sequences`);
    }
    this.#isStepInFlight = false;
    const events: StepEvent[] = [];
    output.scheduled.forEach((s, i) => {
      const seq = s.seq;
      if (seq.status !== 'running') return; // finished while the step ran; already reported
      if (seq.numComputedTokens !== s.startPos) throw new Error(`postprocess: ${seq.requestId} moved during the step`);
      seq.numComputedTokens += s.numNewTokens;
      this.blockManager.cacheFullBlocks(seq);
      if (!s.doSample) return void events.push({ seq, newTokenId: null });
      const token = sampled[i];
      if (token < 0) {
        this.#finish(seq, 'error', now);
        return void events.push({ seq, newTokenId: null, finished: 'error' });
      }
      if (seq.isBeam) return void events.push({ seq, newTokenId: token }); // the search picks (appendBeamToken, forkBeam)
      seq.appendToken(token, now);
      const reason = checkStop(seq, this.options.maxModelLen);
      if (reason === null) return void events.push({ seq, newTokenId: token });
      this.#finish(seq, reason, now);
      events.push({ seq, newTokenId: token, finished: reason });
    });
    return events;
  }

  // Beam search, after postprocess: the token the policy chose for a beam (no stop checks: the
  // policy ends beams), and a new beam forked from a running one before the parent's token is
  // appended. The child shares every block (copy-on-write); the worker learns it through the
  // next step's forks, applied there before that step's releases.
  appendBeamToken(seq: Sequence, tokenId: number, now: number): void {
    if (!seq.isBeam || seq.status !== 'running') throw new Error(`appendBeamToken: ${seq.requestId} is not a running beam`);
    seq.appendToken(tokenId, now);
  }

  forkBeam(parent: Sequence, child: Sequence): void {
    if (!parent.isBeam || !child.isBeam || parent.status !== 'running' || child.status !== 'waiting')
      throw new Error('forkBeam: a running beam and a new beam are needed');
    if (this.#byId.has(child.requestId)) throw new WeftError('WEFT_ERR_SCHED_DUPLICATE_ID', `request id ${child.requestId} is already in use`);
    child.tokenIds.push(...parent.outputTokenIds);
    child.beamGroup = parent.beamGroup;
    child.maxTokens = parent.maxTokens;
    this.blockManager.fork(parent, child);
    child.status = 'running';
    child.arrivalOrder = this.#numArrivals++;
    child.isKnownToWorker = true;
    child.sentBlockTable = parent.sentBlockTable.slice();
    this.#running.push(child);
    this.#byId.set(child.requestId, child);
    this.#forksSinceLastStep.push([parent.seqId, child.seqId]);
  }

  // n > 1 samples of one prompt: once the parent's prompt is computed, a sibling takes its blocks
  // (copy-on-write) instead of prefilling again, and recomputes only the last prompt position to
  // sample its own first token. The worker learns it as a new sequence (its own sampling) with
  // the parent's blocks; the penalty history gets the prompt.
  forkForSampling(parent: Sequence, child: Sequence): void {
    if (parent.status !== 'running' || parent.numComputedTokens < parent.numPromptTokens)
      throw new Error('forkForSampling: the parent has not computed its prompt');
    if (child.promptTokenIds.join() !== parent.promptTokenIds.join()) throw new Error('forkForSampling: the prompts differ');
    this.#validateNew(child);
    this.blockManager.fork(parent, child);
    child.numComputedTokens = child.numPromptTokens - 1;
    child.status = 'running';
    child.arrivalOrder = this.#numArrivals++;
    this.#running.push(child);
    this.#byId.set(child.requestId, child);
  }

  #validateNew(seq: Sequence): void {
    const { maxModelLen, numBlocks, blockSize } = this.options;
    const invalid = (msg: string) => new WeftError('WEFT_ERR_SCHED_INVALID_PARAMS', msg);
    if (seq.status !== 'waiting' || seq.arrivalOrder !== -1) throw invalid(`sequence ${seq.requestId} was already added`);
    if (this.#byId.has(seq.requestId)) throw new WeftError('WEFT_ERR_SCHED_DUPLICATE_ID', `request id ${seq.requestId} is already in use`);
    if (seq.numPromptTokens === 0) throw invalid('the prompt is empty');
    if (seq.numPromptTokens >= maxModelLen) {
      throw new WeftError('WEFT_ERR_SCHED_TOO_LONG', `the prompt has ${seq.numPromptTokens} tokens; the maximum context length is ${maxModelLen}`);
    }
    if (seq.maxTokens === -1) seq.maxTokens = maxModelLen - seq.numPromptTokens;
    if (!Number.isSafeInteger(seq.maxTokens) || seq.maxTokens < 1) throw invalid(`maxTokens must be a positive integer, got ${seq.maxTokens}`);
    if (!Number.isSafeInteger(seq.minTokens) || seq.minTokens < 0 || seq.minTokens > seq.maxTokens) {
      throw invalid(`minTokens must be an integer in [0, maxTokens], got ${seq.minTokens}`);
    }
    const numTotal = seq.numPromptTokens + seq.maxTokens;
    if (numTotal > maxModelLen) {
      throw new WeftError(
        'WEFT_ERR_SCHED_TOO_LONG',
        `prompt (${seq.numPromptTokens}) + maxTokens (${seq.maxTokens}) exceeds the maximum context length ${maxModelLen}`,
      );
    }
    // the last sampled token is never fed back, so its KV is never stored
    if (numTotal - 1 > numBlocks * blockSize) {
      throw new WeftError(
        'WEFT_ERR_SCHED_TOO_LONG',
        `prompt (${seq.numPromptTokens}) + maxTokens (${seq.maxTokens}) can never fit the KV cache of ${numBlocks * blockSize} tokens`,
      );
    }
  }

  // Preemption by recompute: the KV is dropped and the sequence re-prefills prompt + outputs.
  #preempt(seq: Sequence): void {
    this.blockManager.free(seq);
    seq.numComputedTokens = 0;
    seq.status = 'preempted';
    seq.numPreemptions++;
    seq.isKnownToWorker = false;
    seq.sentBlockTable = [];
    this.numPreemptions++;
    this.#running.splice(this.#running.indexOf(seq), 1);
    insertWaiting(this.#waiting, seq);
  }

  #finish(seq: Sequence, reason: FinishReason, now: number | null): void {
    const queue = seq.status === 'running' ? this.#running : this.#waiting;
    const index = queue.indexOf(seq);
    if (index >= 0) queue.splice(index, 1);
    this.blockManager.free(seq);
    seq.numComputedTokens = 0;
    seq.status = 'finished';
    seq.finishReason = reason;
    seq.finishedTime = now;
    this.#byId.delete(seq.requestId);
    this.#finishedSinceLastStep.push({ seq, reason });
  }
}

// The step's view of one scheduled sequence; records what the worker now holds.
function describeStep(seq: Sequence, numNewTokens: number, now: number): ScheduledSeq {
  const startPos = seq.numComputedTokens;
  const end = startPos + numNewTokens;
  const blockTable = seq.blockTable.slice();
  const blockUpdates: [number, number][] = [];
  blockTable.forEach((b, i) => {
    if (seq.sentBlockTable[i] !== b) blockUpdates.push([i, b]);
  });
  const isNew = !seq.isKnownToWorker;
  seq.isKnownToWorker = true;
  seq.sentBlockTable = blockTable;
  seq.firstScheduledTime ??= now;
  return {
    seq,
    seqId: seq.seqId,
    startPos,
    numNewTokens,
    tokenIds: seq.tokenIds.slice(startPos, end),
    blockTable,
    blockUpdates,
    isNew,
    isPrefill: startPos < seq.numTokens - 1 || seq.numOutputTokens === 0,
    doSample: end === seq.numTokens,
  };
}
