// Per-request state on one engine instance. The scheduler and the block manager own every
// field; the layers above read them and change a sequence only through the Scheduler.
import { GREEDY, type LogitBias, type SamplingParams } from '../sampling.js';
import type { ConstraintSpec } from '../structured/types.js';

export type SeqStatus = 'waiting' | 'running' | 'preempted' | 'finished';
export type FinishReason = 'stop' | 'length' | 'abort' | 'error';

export interface SequenceInit {
  requestId: string;
  promptTokenIds: ArrayLike<number>;
  maxTokens?: number; // default: what maxModelLen leaves after the prompt
  minTokens?: number; // EOS and stop tokens do not stop before this many outputs
  ignoreEos?: boolean;
  stopTokenIds?: readonly number[];
  eosTokenIds?: readonly number[];
  priority?: number; // lower runs first
  sampling?: Partial<SamplingParams>; // passed through to the engine untouched
  arrivalTime?: number; // caller's clock; the scheduler never reads one
  seqId?: number; // default: the next process-wide id
  // A beam of a beam search: the search policy, not postprocess, picks its next token (and
  // forks or ends it); see beam-group.ts.
  isBeam?: boolean;
  returnLogits?: boolean; // each sampled token's event carries the raw logits row (rerankers)
  // The only logits this sequence needs (a reranker's yes and no): a step whose sampled sequences
  // all say the same evaluates just these LM-head rows, the rest -inf. What it samples is then
  // unspecified: for prefill-only scoring.
  logitRows?: readonly number[];
  constraint?: ConstraintSpec; // structured output: the worker masks the tokens it disallows
  logitBias?: LogitBias; // OpenAI's logit_bias, passed to the engine untouched
  // Prompt scoring (echo with logprobs): every prompt token after the first gets its log-prob
  // given the tokens before it, with this many likeliest alternatives. Such a sequence takes
  // nothing from the prefix cache: a cached position is never computed, so it has no logits.
  promptLogprobs?: number;
  // Hidden states (embeddings): the final-normed hidden state of the last prompt position
  // ('last'), or of every prompt position ('all', for mean pooling; such a sequence takes nothing
  // from the prefix cache, as prompt scoring). They come back in events without a token.
  hiddenStates?: 'last' | 'all';
}

let nextSeqId = 0;

export class Sequence {
  readonly requestId: string;
  // Engine-wide id of this sequence's native state (penalty history); never reused.
  readonly seqId: number;
  readonly numPromptTokens: number;
  // prompt followed by outputs; append-only, so block hashes of full blocks never go stale
  readonly tokenIds: number[];

  maxTokens: number;
  readonly minTokens: number;
  readonly ignoreEos: boolean;
  readonly stopTokenIds: readonly number[];
  readonly eosTokenIds: readonly number[];
  readonly priority: number;
  readonly sampling: Readonly<SamplingParams>;
  readonly isBeam: boolean;
  beamGroup: string | null = null; // the search a beam belongs to (its root's request id)
  readonly returnLogits: boolean;
  readonly logitRows: readonly number[] | null;
  readonly constraint: ConstraintSpec | null;
  readonly logitBias: LogitBias | null;
  readonly promptLogprobs: number | null;
  readonly hiddenStates: 'last' | 'all' | null;

  status: SeqStatus = 'waiting';
  isHeld = false; // its consumer lags: not computed until it catches up (Scheduler.hold)
  finishReason: FinishReason | null = null;
  arrivalOrder = -1; // set by Scheduler.add; ties between equal priorities

  // KV state, owned by the block manager
  numComputedTokens = 0; // tokens whose KV is in the cache
  blockTable: number[] = [];
  readonly blockHashes: number[] = []; // chained content hashes of full blocks, lazily extended
  numHashedBlocks = 0; // leading blocks of blockTable registered in the prefix cache

  // what the worker already holds (see Scheduler: new sequences get everything once)
  isKnownToWorker = false;
  sentBlockTable: number[] = [];

  // metrics
  numPreemptions = 0;
  numCachedPromptTokens = 0; // prefix-cache hit at first admission
  readonly arrivalTime: number;
  firstScheduledTime: number | null = null;
  firstTokenTime: number | null = null;
  lastTokenTime: number | null = null;
  finishedTime: number | null = null;

  constructor(init: SequenceInit) {
    this.requestId = init.requestId;
    this.seqId = init.seqId ?? nextSeqId++;
    this.tokenIds = Array.from(init.promptTokenIds);
    this.numPromptTokens = this.tokenIds.length;
    this.maxTokens = init.maxTokens ?? -1;
    this.minTokens = init.minTokens ?? 0;
    this.ignoreEos = init.ignoreEos ?? false;
    this.stopTokenIds = init.stopTokenIds ?? [];
    this.eosTokenIds = init.eosTokenIds ?? [];
    this.priority = init.priority ?? 0;
    this.sampling = Object.freeze({ ...GREEDY, ...init.sampling });
    this.arrivalTime = init.arrivalTime ?? 0;
    this.isBeam = init.isBeam ?? false;
    if (this.isBeam) this.beamGroup = this.requestId;
    this.returnLogits = init.returnLogits ?? false;
    this.logitRows = init.logitRows?.length ? [...init.logitRows] : null;
    this.constraint = init.constraint ?? null;
    this.logitBias = init.logitBias?.length ? init.logitBias : null;
    this.promptLogprobs = init.promptLogprobs ?? null;
    this.hiddenStates = init.hiddenStates ?? null;
  }

  get numTokens(): number {
    return this.tokenIds.length;
  }

  get numOutputTokens(): number {
    return this.tokenIds.length - this.numPromptTokens;
  }

  get promptTokenIds(): number[] {
    return this.tokenIds.slice(0, this.numPromptTokens);
  }

  get outputTokenIds(): number[] {
    return this.tokenIds.slice(this.numPromptTokens);
  }

  get lastTokenId(): number {
    return this.tokenIds[this.tokenIds.length - 1];
  }

  get isFinished(): boolean {
    return this.status === 'finished';
  }

  appendToken(tokenId: number, now: number): void {
    this.tokenIds.push(tokenId);
    this.firstTokenTime ??= now;
    this.lastTokenTime = now;
  }
}

// Stop conditions on token ids, checked once per sampled token, in vLLM's order.
// Stop strings are matched on text by the layer above, which then calls Scheduler.finish.
export function checkStop(seq: Sequence, maxModelLen: number): FinishReason | null {
  const token = seq.lastTokenId;
  const canStop = seq.numOutputTokens >= seq.minTokens;
  if (canStop && !seq.ignoreEos && seq.eosTokenIds.includes(token)) return 'stop';
  if (canStop && seq.stopTokenIds.includes(token)) return 'stop';
  if (seq.numOutputTokens >= seq.maxTokens || seq.numTokens >= maxModelLen) return 'length';
  return null;
}
