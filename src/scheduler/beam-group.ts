// One beam-search request inside the engine loop: its beams are ordinary sequences of the
// scheduler, batched with every other request, sharing the prompt's KV blocks (a new beam is a
// copy-on-write fork of its parent). After a step in which every alive beam sampled, the pure
// policy (beam-search.ts) sees each beam's top log-probs and decides which beams continue with
// which token, which fork and which end; this class applies that through the scheduler and
// streams the tokens that can no longer change.
import { BeamSearch, type BeamCandidate, type BeamParams, type Hypothesis } from './beam-search.js';
import type { Scheduler } from './scheduler.js';
import { WeftError } from '../errors.js';
import { Sequence } from './sequence.js';

export interface BeamOutcome {
  chosen: Hypothesis; // what was streamed (with 'defer': the best by beam score, for now)
  hypotheses: Hypothesis[]; // every returned hypothesis, best beam score first
  deferred: boolean; // the caller chooses (an async reranker) and streams the rest
}

export interface BeamEmit {
  tokens: number[]; // newly final tokens, in order
  outcome?: BeamOutcome; // set once, when the search has ended
  live?: LiveBeams; // while it runs: the alive beams and the kept hypotheses
}

export interface LiveBeams {
  beams: { tokens: readonly number[]; cumLogprob: number }[];
  hypotheses: Hypothesis[];
}

// Chooses the hypothesis to stream among the returned ones; the default keeps the beam-search
// order. 'defer': stream only what every returned hypothesis shares; the caller chooses.
export type BeamSelector = ((hypotheses: Hypothesis[]) => Hypothesis) | 'defer';

// A search is preempted and readmitted whole, so all its beams at full length must fit the KV
// cache: the prompt's full blocks once, the rest of every beam's blocks each.
export function checkBeamFits(
  cache: { numBlocks: number; blockSize: number },
  numPromptTokens: number,
  p: Pick<BeamParams, 'beamWidth' | 'maxTokens'>,
): void {
  const numShared = Math.floor(numPromptTokens / cache.blockSize);
  const numWorst = numShared + p.beamWidth * (Math.ceil((numPromptTokens + p.maxTokens) / cache.blockSize) - numShared);
  if (numWorst > cache.numBlocks) {
    throw new WeftError(
      'WEFT_ERR_SCHED_TOO_LONG',
      `a beam search of width ${p.beamWidth} over ${numPromptTokens} + ${p.maxTokens} tokens needs up to ${numWorst} KV blocks; ` +
        `the cache has ${cache.numBlocks}`,
    );
  }
}

export class BeamGroup {
  readonly requestId: string;
  readonly root: Sequence;
  readonly search: BeamSearch;
  #beams: Sequence[]; // alive, in the policy's beam order
  readonly #reported = new Map<Sequence, BeamCandidate[]>();
  #numEmitted = 0;
  #numForks = 0;
  #ended = false;

  constructor(
    root: Sequence,
    params: BeamParams,
    private readonly select: BeamSelector = (h) => h[0],
  ) {
    if (!root.isBeam) throw new Error('BeamGroup: the root sequence must be a beam');
    this.requestId = root.requestId;
    this.root = root;
    this.search = new BeamSearch(params);
    this.#beams = [root];
  }

  get beams(): readonly Sequence[] {
    return this.#beams;
  }

  get isEnded(): boolean {
    return this.#ended;
  }

  has(seq: Sequence): boolean {
    return this.#beams.includes(seq);
  }

  // A beam sampled in the step that just ran; true once every alive beam has.
  report(seq: Sequence, candidates: BeamCandidate[]): boolean {
    this.#reported.set(seq, candidates);
    return this.#beams.every((b) => this.#reported.has(b));
  }

  // Runs one policy step and applies it: continuing beams get their token, extra children fork
  // from their parent first, beams with no child end (their blocks freed).
  apply(scheduler: Scheduler, now: number): BeamEmit {
    const step = this.search.step(this.#beams.map((b) => this.#reported.get(b)!));
    this.#reported.clear();
    if (step.done) return this.#end(scheduler, now); // the search's last beams are never run
    const parents = this.#beams;
    const byParent = new Map<number, { tokenId: number; index: number }[]>();
    step.next.forEach((n, index) => {
      if (!byParent.has(n.parent)) byParent.set(n.parent, []);
      byParent.get(n.parent)!.push({ tokenId: n.tokenId, index });
    });
    const next: Sequence[] = new Array(step.next.length);
    parents.forEach((parent, p) => {
      const children = byParent.get(p);
      if (!children) return;
      for (const c of children.slice(1)) {
        // forks first: they copy the parent's tokens so far
        const child = new Sequence({
          requestId: `${this.requestId}#beam${++this.#numForks}`,
          promptTokenIds: this.root.promptTokenIds,
          maxTokens: parent.maxTokens,
          eosTokenIds: parent.eosTokenIds,
          sampling: parent.sampling,
          arrivalTime: parent.arrivalTime,
          isBeam: true,
          priority: parent.priority,
          ...(parent.constraint ? { constraint: parent.constraint } : {}),
          ...(parent.logitBias ? { logitBias: parent.logitBias } : {}),
        });
        scheduler.forkBeam(parent, child);
        scheduler.appendBeamToken(child, c.tokenId, now);
        next[c.index] = child;
      }
      scheduler.appendBeamToken(parent, children[0].tokenId, now);
      next[children[0].index] = parent;
    });
    for (const [p, parent] of parents.entries()) if (!byParent.has(p)) scheduler.finish(parent.requestId, 'stop', now);
    this.#beams = next;
    if (this.#beams.length === 0) return this.#end(scheduler, now);
    return {
      tokens: this.#takeCommitted(this.search.committedPrefix()),
      live: { beams: this.search.beams.map((b) => ({ tokens: [...b.tokens], cumLogprob: b.cumLogprob })), hypotheses: [...this.search.hypotheses] },
    };
  }

  // Ends the search (done, or aborted by the caller): every beam still alive is freed.
  #end(scheduler: Scheduler, now: number): BeamEmit {
    for (const b of this.#beams) scheduler.finish(b.requestId, 'stop', now);
    this.#beams = [];
    this.#ended = true;
    const hypotheses = this.search.finish();
    if (this.select === 'defer')
      return {
        tokens: this.#takeCommitted(commonPrefix(hypotheses.map((h) => h.tokens))),
        outcome: { chosen: hypotheses[0], hypotheses, deferred: true },
      };
    const chosen = this.select(hypotheses);
    return { tokens: this.#takeCommitted(chosen.tokens), outcome: { chosen, hypotheses, deferred: false } };
  }

  // Frees every beam (abort, error); nothing more is emitted.
  abort(scheduler: Scheduler, reason: 'abort' | 'error', now?: number): void {
    for (const b of this.#beams) scheduler.finish(b.requestId, reason, now);
    this.#beams = [];
    this.#ended = true;
  }

  #takeCommitted(prefix: readonly number[]): number[] {
    const out = prefix.slice(this.#numEmitted);
    this.#numEmitted = Math.max(this.#numEmitted, prefix.length);
    return out;
  }
}

function commonPrefix(lists: readonly (readonly number[])[]): number[] {
  const out: number[] = [];
  for (let i = 0; lists.length > 0 && lists.every((l) => i < l.length && l[i] === lists[0][i]); i++) out.push(lists[0][i]);
  return out;
}
