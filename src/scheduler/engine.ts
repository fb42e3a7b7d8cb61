// The engine loop: for each engine instance, schedule → one step on its worker → postprocess →
// emit tokens to each request's stream. It runs while there is work and sleeps when idle.
// New requests go to the least-loaded instance and stay there (their KV lives in its worker).
import { WeftError, isWeftError } from '../errors.js';
import type { ConstraintSpec } from '../structured/types.js';
import { BeamGroup, checkBeamFits, type BeamOutcome, type BeamSelector, type LiveBeams } from './beam-group.js';
import type { BeamCandidate, BeamParams } from './beam-search.js';
import type { StepMessage, StepReply } from './protocol.js';
import { buildStepMessage, candidatesOf, hiddenSpan, logitsRow, promptScoresOf, releasedIds, topOf, type PromptScore } from './step-message.js';
import { Scheduler, type SchedulerOptions, type SchedulerOutput, type SchedulerStats } from './scheduler.js';
import { Sequence, type FinishReason, type SequenceInit } from './sequence.js';
import { TokenStream } from './token-stream.js';

// What the loop needs of a worker (EngineWorker implements it; tests inject fakes).
export interface StepRunner {
  readonly info: { numKvBlocks: number; blockSize: number };
  step(msg: StepMessage): Promise<StepReply>;
  restart(): Promise<void>;
  // Compiles a constraint off the step path; a sequence under it is scheduled once this resolves
  // (without it, constrained sequences are scheduled at once).
  prepare?(constraint: ConstraintSpec): Promise<void>;
}

export interface TokenEvent {
  tokenId: number | null; // null on a final event without a new token (abort, error)
  logprob?: number;
  topLogprobs?: { id: number; logprob: number }[];
  finishReason?: FinishReason;
  error?: WeftError;
  beam?: BeamOutcome; // a beam search's final event: every hypothesis and the chosen one
  logits?: Float32Array; // the sampled row's raw logits, for sequences that asked
  beams?: LiveBeams; // a beam search that asked for them: its beams after each step (no token)
  promptLogprobs?: PromptScore[]; // prompt scoring: the positions this step computed (no token)
  // hidden states (embeddings): rows × dim final-normed hidden states of consecutive prompt
  // positions from `position` (no token); a preempted sequence's come again as it recomputes
  hidden?: { position: number; states: Float32Array };
}

export interface StepTiming {
  instance: number;
  numSeqs: number;
  numTokens: number;
  scheduleUs: number; // schedule() + building the message + postprocess()
  packUs: number; // worker-side unpack and pack
  nativeUs: number; // forward + sampling
  transferUs: number; // the rest of the round trip: messaging between threads
  totalUs: number;
}

export interface EngineLoopOptions {
  scheduler: Partial<SchedulerOptions>;
  eosTokenIds: number[];
  onStep?: (t: StepTiming) => void;
  onFinish?: (seq: Sequence, reason: FinishReason) => void;
  // An instance's step failed (its worker died, or the engine returned an error): what was lost,
  // and whether the fresh worker came up. The server logs it; the loop itself never logs.
  onInstanceFailure?: (f: InstanceFailure) => void;
  now?: () => number; // ms clock, injectable for tests
}

export interface InstanceFailure {
  instance: number;
  error: WeftError;
  numFailedRequests: number;
  restarted: boolean;
  restartError?: WeftError;
}

export interface RequestHandle {
  readonly requestId: string;
  readonly instance: number;
  readonly sequence: Sequence;
  readonly events: AsyncIterable<TokenEvent>;
}

interface BeamEntry {
  group: BeamGroup;
  stream: TokenStream<TokenEvent>;
  streamBeams: boolean;
}

interface Instance {
  // n > 1 samples: siblings waiting for their first sequence's prompt to be computed, by its seqId
  siblings: Map<number, { seq: Sequence; stream: TokenStream<TokenEvent> }[]>;
  runner: StepRunner;
  scheduler: Scheduler;
  streams: Map<number, { seq: Sequence; stream: TokenStream<TokenEvent> }>; // by seqId
  beams: Map<string, BeamEntry>; // beam searches by requestId
  wake: (() => void) | null;
  running: Promise<void>;
  pendingRelease: number[]; // seqIds finished or preempted in a step that sent no message
  // constrained requests whose grammar compiles (StepRunner.prepare): status waiting, not yet in
  // the scheduler; by requestId, with what ends them if they fail or are aborted meanwhile
  preparing: Map<string, (reason: FinishReason, error?: WeftError) => void>;
}

let nextRequestId = 0;

// Backpressure: a sequence whose consumer has this many events not yet taken (a client that reads
// slowly, or not at all) is held, not computed, until the consumer has taken them all. The engine
// never runs further ahead of a consumer than this.
export const MAX_QUEUED_EVENTS = 64;

export class EngineLoop {
  readonly #instances: Instance[];
  readonly #opts: EngineLoopOptions;
  readonly #now: () => number;
  #closed = false;

  constructor(runners: StepRunner[], opts: EngineLoopOptions) {
    this.#opts = opts;
    this.#now = opts.now ?? (() => performance.now());
    this.#instances = runners.map((runner) => ({
      runner,
      scheduler: this.#newScheduler(runner),
      streams: new Map(),
      beams: new Map(),
      siblings: new Map(),
      wake: null,
      running: Promise.resolve(),
      pendingRelease: [],
      preparing: new Map(),
    }));
    this.#instances.forEach((inst, i) => {
      inst.running = this.#run(inst, i);
    });
  }

  #newScheduler(runner: StepRunner): Scheduler {
    return new Scheduler({ ...this.#opts.scheduler, numBlocks: runner.info.numKvBlocks, blockSize: runner.info.blockSize });
  }

  // Queues a request; throws WEFT_ERR_SCHED_* (queue full, too long, bad parameters) at once.
  submit(init: Omit<SequenceInit, 'requestId' | 'eosTokenIds' | 'arrivalTime'> & { requestId?: string }): RequestHandle {
    if (this.#closed) throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', 'engine is shutting down');
    const index = this.#leastLoaded();
    const inst = this.#instances[index];
    const seq = new Sequence({
      ...init,
      requestId: init.requestId ?? `req-${nextRequestId++}`,
      eosTokenIds: this.#opts.eosTokenIds,
      arrivalTime: this.#now(),
    });
    const stream = new TokenStream<TokenEvent>();
    this.#addWhenReady(inst, seq, (reason, error) => {
      inst.streams.delete(seq.seqId);
      this.#opts.onFinish?.(seq, reason);
      stream.push({ tokenId: null, finishReason: reason, ...(error ? { error } : {}) }, true);
    });
    inst.streams.set(seq.seqId, { seq, stream });
    return { requestId: seq.requestId, instance: index, sequence: seq, events: stream };
  }

  // Queues seq, after its constraint compiles when the runner compiles ahead (the step path never
  // waits for a compile: other sequences keep stepping meanwhile). Refusals (queue full, too long)
  // throw at once either way; `end` ends the request if the compile fails or it is aborted first.
  #addWhenReady(inst: Instance, seq: Sequence, end: (reason: FinishReason, error?: WeftError) => void): void {
    if (inst.preparing.has(seq.requestId)) throw new WeftError('WEFT_ERR_SCHED_DUPLICATE_ID', `request id ${seq.requestId} is already in use`);
    if (!seq.constraint || !inst.runner.prepare) {
      inst.scheduler.add(seq, inst.preparing.size);
      inst.wake?.();
      return;
    }
    inst.scheduler.check(seq, inst.preparing.size);
    inst.preparing.set(seq.requestId, end);
    inst.runner.prepare(seq.constraint).then(
      () => {
        if (!inst.preparing.delete(seq.requestId) || this.#closed) return;
        try {
          inst.scheduler.add(seq);
        } catch (e) {
          end('error', isWeftError(e) ? e : new WeftError('WEFT_ERR_ENGINE_INTERNAL', String(e)));
        }
        inst.wake?.();
      },
      (e: unknown) => {
        if (inst.preparing.delete(seq.requestId)) end('error', isWeftError(e) ? e : new WeftError('WEFT_ERR_ENGINE_INTERNAL', String(e)));
      },
    );
  }

  // n samples of one prompt (inits differ in sampling and request id only): the first prefills the
  // prompt; when its first token comes, the others fork from it (forkForSampling) rather than
  // prefilling again. Each is an independent request from then on.
  submitN(inits: (Omit<SequenceInit, 'requestId' | 'eosTokenIds' | 'arrivalTime'> & { requestId?: string })[]): RequestHandle[] {
    const first = this.submit(inits[0]);
    if (inits.length === 1) return [first];
    const inst = this.#instances[first.instance];
    const siblings = inits.slice(1).map((init) => ({
      seq: new Sequence({
        ...init,
        requestId: init.requestId ?? `req-${nextRequestId++}`,
        eosTokenIds: this.#opts.eosTokenIds,
        arrivalTime: this.#now(),
      }),
      stream: new TokenStream<TokenEvent>(),
    }));
    inst.siblings.set(first.sequence.seqId, siblings);
    return [first, ...siblings.map(({ seq, stream }) => ({ requestId: seq.requestId, instance: first.instance, sequence: seq, events: stream }))];
  }

  // The first of n samples sampled its first token (its prompt is in the cache): the siblings fork.
  // If it ended before that (abort, error), they are queued as ordinary requests instead.
  #releaseSiblings(inst: Instance, first: Sequence): boolean {
    const siblings = inst.siblings.get(first.seqId);
    if (!siblings) return false;
    inst.siblings.delete(first.seqId);
    for (const s of siblings) {
      try {
        if (first.status === 'running') inst.scheduler.forkForSampling(first, s.seq);
        else inst.scheduler.add(s.seq);
        inst.streams.set(s.seq.seqId, s);
      } catch (e) {
        s.stream.push(
          { tokenId: null, finishReason: 'error', error: isWeftError(e) ? e : new WeftError('WEFT_ERR_ENGINE_INTERNAL', String(e)) },
          true,
        );
      }
    }
    return siblings.length > 0;
  }

  // Queues a beam search: one sequence (the prompt) that forks into up to params.beamWidth beams
  // sharing its KV blocks. Its events are the tokens of the result as they become final, then
  // one event with the finish reason and every hypothesis (`beam`).
  submitBeam(
    init: Omit<SequenceInit, 'requestId' | 'eosTokenIds' | 'arrivalTime' | 'isBeam'> & { requestId?: string },
    params: Omit<BeamParams, 'eosTokenIds'>,
    select?: BeamSelector,
    streamBeams = false,
  ): RequestHandle {
    if (this.#closed) throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', 'engine is shutting down');
    const index = this.#leastLoaded();
    const inst = this.#instances[index];
    const numCandidates = 2 * params.beamWidth;
    const seq = new Sequence({
      ...init,
      requestId: init.requestId ?? `req-${nextRequestId++}`,
      eosTokenIds: this.#opts.eosTokenIds,
      arrivalTime: this.#now(),
      isBeam: true,
      maxTokens: params.maxTokens,
      sampling: { ...init.sampling, temperature: 0, numLogprobs: numCandidates },
    });
    const group = new BeamGroup(seq, { ...params, eosTokenIds: this.#opts.eosTokenIds }, select);
    checkBeamFits(inst.scheduler.options, seq.numPromptTokens, params);
    const stream = new TokenStream<TokenEvent>();
    const entry = { group, stream, streamBeams };
    this.#addWhenReady(inst, seq, (reason, error) => this.#endBeam(inst, entry, reason === 'error' ? 'error' : 'abort', error));
    inst.beams.set(seq.requestId, entry);
    return { requestId: seq.requestId, instance: index, sequence: seq, events: stream };
  }

  // Ends a request (client gone, stop string matched): its blocks are freed at once and its
  // stream ends with the reason.
  finish(requestId: string, reason: FinishReason = 'abort'): boolean {
    for (const inst of this.#instances) {
      const end = inst.preparing.get(requestId);
      if (end) {
        inst.preparing.delete(requestId);
        end(reason);
        return true;
      }
      for (const siblings of inst.siblings.values()) {
        const k = siblings.findIndex((s) => s.seq.requestId === requestId);
        if (k < 0) continue;
        const [s] = siblings.splice(k, 1);
        this.#opts.onFinish?.(s.seq, reason);
        s.stream.push({ tokenId: null, finishReason: reason }, true);
        return true;
      }
      const beam = inst.beams.get(requestId);
      if (beam) {
        this.#endBeam(inst, beam, reason === 'error' ? 'error' : 'abort');
        inst.wake?.();
        return true;
      }
      if (inst.scheduler.finish(requestId, reason, this.#now())) {
        inst.wake?.();
        return true;
      }
    }
    return false;
  }

  abort(requestId: string): boolean {
    return this.finish(requestId, 'abort');
  }

  // A request whose grammar is compiling is waiting, as far as metrics and placement go.
  stats(): SchedulerStats[] {
    return this.#instances.map((i) => {
      const s = i.scheduler.stats();
      return { ...s, numWaiting: s.numWaiting + i.preparing.size };
    });
  }

  get numInstances(): number {
    return this.#instances.length;
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const inst of this.#instances) inst.wake?.();
    await Promise.all(this.#instances.map((i) => i.running));
  }

  #leastLoaded(): number {
    let best = 0,
      bestLoad = Infinity;
    this.#instances.forEach((inst, i) => {
      const s = inst.scheduler;
      const load = s.numRunning + s.numWaiting + inst.preparing.size + s.blockManager.usage;
      if (load < bestLoad) {
        best = i;
        bestLoad = load;
      }
    });
    return best;
  }

  async #run(inst: Instance, index: number): Promise<void> {
    while (!this.#closed) {
      if (inst.scheduler.isIdle) {
        await new Promise<void>((resolve) => {
          inst.wake = resolve;
        });
        inst.wake = null;
        continue;
      }
      const t0 = this.#now();
      const out = inst.scheduler.schedule(t0);
      const queuedSiblings = this.#endFinished(inst, out);
      if (out.scheduled.length === 0) {
        inst.pendingRelease.push(...releasedIds(out));
        // Nothing fits right now (or only finishes to report): wait for a change.
        if (!inst.scheduler.isIdle && !queuedSiblings)
          await new Promise<void>((resolve) => {
            inst.wake = resolve;
          });
        inst.wake = null;
        continue;
      }
      const msg = buildStepMessage(out, inst.pendingRelease.splice(0));
      const t1 = this.#now();
      let reply: StepReply;
      try {
        reply = await inst.runner.step(msg);
      } catch (e) {
        await this.#failInstance(inst, index, out, e);
        continue;
      }
      const t2 = this.#now();
      this.#emit(inst, out, reply, t2);
      const t3 = this.#now();
      const nativeUs = reply.forwardUs + reply.sampleUs;
      this.#opts.onStep?.({
        instance: index,
        numSeqs: out.scheduled.length,
        numTokens: out.numScheduledTokens,
        scheduleUs: (t1 - t0 + (t3 - t2)) * 1000,
        packUs: reply.packUs,
        nativeUs,
        transferUs: Math.max(0, (t2 - t1) * 1000 - nativeUs - reply.packUs),
        totalUs: (t3 - t0) * 1000,
      });
    }
  }

  #emit(inst: Instance, out: SchedulerOutput, reply: StepReply, now: number): void {
    const events = inst.scheduler.postprocess(out, reply.sampled, now);
    if (reply.scoredLogprobs) this.#emitPromptScores(inst, out, reply);
    if (reply.hidden) this.#emitHiddenStates(inst, out, reply.hidden);
    const index = new Map(out.scheduled.map((s, i) => [s.seq, i]));
    for (const ev of events) {
      if (ev.seq.isBeam) {
        this.#emitBeam(inst, ev.seq, ev.newTokenId === null ? null : candidatesOf(reply, index.get(ev.seq)!), ev.finished, now);
        continue;
      }
      if (ev.newTokenId !== null || ev.finished) this.#releaseSiblings(inst, ev.seq);
      if (ev.newTokenId === null && !ev.finished) continue;
      const i = index.get(ev.seq)!;
      const stream = inst.streams.get(ev.seq.seqId)?.stream;
      if (!stream) continue;
      const e: TokenEvent = { tokenId: ev.newTokenId };
      if (ev.newTokenId !== null && ev.seq.returnLogits && reply.logits) e.logits = logitsRow(reply.logits, out, i);
      if (ev.newTokenId !== null && !Number.isNaN(reply.logprobs[i])) {
        e.logprob = reply.logprobs[i];
        if (reply.topN > 0) e.topLogprobs = topOf(reply.topIds, reply.topLogprobs, reply.topN, i);
      }
      if (ev.finished) {
        e.finishReason = ev.finished;
        if (ev.finished === 'error') e.error = new WeftError('WEFT_ERR_ENGINE_INTERNAL', 'the engine returned no token');
        inst.streams.delete(ev.seq.seqId);
        this.#opts.onFinish?.(ev.seq, ev.finished);
      }
      stream.push(e, !!ev.finished);
      if (!ev.finished && stream.size >= MAX_QUEUED_EVENTS && !ev.seq.isHeld) this.#hold(inst, ev.seq, stream);
    }
  }

  // Before the step's tokens: a scoring sequence's prompt scores go out as the chunks that hold
  // their positions are computed (a preempted one's again when it recomputes).
  #emitPromptScores(inst: Instance, out: SchedulerOutput, reply: StepReply): void {
    let row = 0;
    for (const s of out.scheduled) {
      const stream = s.seq.promptLogprobs === null ? undefined : inst.streams.get(s.seq.seqId)?.stream;
      if (stream) {
        const scores = promptScoresOf(reply, s, row);
        if (scores.length > 0) stream.push({ tokenId: null, promptLogprobs: scores });
      }
      row += s.numNewTokens;
    }
  }

  // Before the step's tokens, as prompt scores: the hidden states each asking sequence's chunk
  // computed, in the step's row order (stepHiddenRows').
  #emitHiddenStates(inst: Instance, out: SchedulerOutput, hidden: Float32Array): void {
    const spans = out.scheduled.map(hiddenSpan);
    const numRows = spans.reduce((n, [from, to]) => n + to - from, 0);
    const dim = hidden.length / numRows;
    let row = 0;
    out.scheduled.forEach((s, i) => {
      const [from, to] = spans[i];
      if (to === from) return;
      const stream = inst.streams.get(s.seq.seqId)?.stream;
      stream?.push({ tokenId: null, hidden: { position: from, states: hidden.slice(row * dim, (row + to - from) * dim) } });
      row += to - from;
    });
  }

  #hold(inst: Instance, seq: Sequence, stream: TokenStream<TokenEvent>): void {
    inst.scheduler.hold(seq);
    stream.onceEmpty(() => {
      inst.scheduler.release(seq);
      inst.wake?.();
    });
  }

  // A beam sampled (candidates: its top log-probs), or failed. Once every beam of its search has
  // sampled, the policy runs and the tokens it made final go to the request's stream.
  #emitBeam(inst: Instance, seq: Sequence, candidates: BeamCandidate[] | null, finished: FinishReason | undefined, now: number): void {
    const entry = [...inst.beams.values()].find((b) => b.group.has(seq));
    if (!entry) return;
    if (finished === 'error') return this.#endBeam(inst, entry, 'error');
    if (candidates === null || !entry.group.report(seq, candidates)) return;
    const { tokens, outcome, live } = entry.group.apply(inst.scheduler, now);
    if (live && entry.streamBeams) entry.stream.push({ tokenId: null, beams: live });
    tokens.forEach((tokenId, i) => {
      const isLast = outcome !== undefined && i === tokens.length - 1;
      entry.stream.push({ tokenId, ...(isLast ? { finishReason: outcome.chosen.finishReason, beam: outcome } : {}) }, isLast);
    });
    if (outcome && tokens.length === 0) entry.stream.push({ tokenId: null, finishReason: outcome.chosen.finishReason, beam: outcome }, true);
    if (outcome) {
      inst.beams.delete(entry.group.requestId);
      this.#opts.onFinish?.(entry.group.root, outcome.chosen.finishReason);
    }
  }

  #endBeam(inst: Instance, entry: BeamEntry, reason: 'abort' | 'error', error?: WeftError): void {
    entry.group.abort(inst.scheduler, reason, this.#now());
    inst.beams.delete(entry.group.requestId);
    this.#opts.onFinish?.(entry.group.root, reason);
    entry.stream.push(
      {
        tokenId: null,
        finishReason: reason,
        ...(reason === 'error' ? { error: error ?? new WeftError('WEFT_ERR_ENGINE_INTERNAL', 'the engine returned no token') } : {}),
      },
      true,
    );
  }

  // Sequences finished outside a step (abort, stop string) end their streams here. True when
  // that queued siblings of one of them (n samples): there is work although nothing ran.
  #endFinished(inst: Instance, out: SchedulerOutput): boolean {
    let queued = false;
    for (const f of out.finished) {
      queued = this.#releaseSiblings(inst, f.seq) || queued;
      const stream = inst.streams.get(f.seq.seqId)?.stream;
      if (!stream) continue;
      inst.streams.delete(f.seq.seqId);
      this.#opts.onFinish?.(f.seq, f.reason);
      stream.push({ tokenId: null, finishReason: f.reason }, true);
    }
    return queued;
  }

  // A worker died or its step threw: every sequence of this instance ends with the typed
  // error (the KV cache is gone with the worker), the worker is recreated, others carry on.
  async #failInstance(inst: Instance, index: number, out: SchedulerOutput, e: unknown): Promise<void> {
    const error = isWeftError(e) ? e : new WeftError('WEFT_ERR_ENGINE_INTERNAL', String(e));
    inst.scheduler.postprocess(out, new Int32Array(out.scheduled.length).fill(-1), this.#now());
    for (const siblings of inst.siblings.values()) for (const s of siblings) inst.streams.set(s.seq.seqId, s);
    inst.siblings.clear();
    const numFailedRequests = inst.streams.size + inst.beams.size;
    for (const entry of [...inst.beams.values()]) this.#endBeam(inst, entry, 'error', error);
    for (const { seq, stream } of inst.streams.values()) {
      inst.scheduler.finish(seq.requestId, 'error');
      this.#opts.onFinish?.(seq, 'error');
      stream.push({ tokenId: null, finishReason: 'error', error }, true);
    }
    inst.streams.clear();
    inst.pendingRelease = [];
    // Requests submitted while the worker restarts wait in the fresh scheduler.
    inst.scheduler = this.#newScheduler(inst.runner);
    let restartError: WeftError | undefined;
    try {
      await inst.runner.restart();
    } catch (r) {
      // the next step fails again and is reported the same way
      restartError = isWeftError(r) ? r : new WeftError('WEFT_ERR_ENGINE_INTERNAL', String(r));
    }
    this.#opts.onInstanceFailure?.({
      instance: index,
      error,
      numFailedRequests,
      restarted: !restartError,
      ...(restartError ? { restartError } : {}),
    });
  }
}
