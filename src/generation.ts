// The generation service the routes share: token ids in → engine loop → incremental
// detokenizing → stop strings → text out, with a per-request timeout and abort on disconnect.
// Routes see text, ids and finish reasons; never sequences or blocks.
import { WeftError } from './errors.js';
import type { Metrics } from './metrics.js';
import type { BeamOutcome, LiveBeams } from './scheduler/beam-group.js';
import type { EarlyStopping, Hypothesis } from './scheduler/beam-search.js';
import type { EngineLoop, RequestHandle } from './scheduler/engine.js';
import type { FinishReason } from './scheduler/sequence.js';
import { IncrementalDetokenizer, type TextTokenizer } from './tokenizer.js';

// Prompt tokens decoded as context for the first output token's text (vLLM uses 5).
const DETOKENIZE_CONTEXT = 5;
import type { LogitBias, SamplingParams } from './sampling.js';
import type { ConstraintSpec } from './structured/types.js';
import type { ToolParserName } from './tool-formats.js';

export interface ModelInfo {
  id: string; // the served model name
  aliases: readonly string[]; // other names requests may use (--served-model-name a,b,…)
  path: string;
  isDemo: boolean;
  backend: 'cpu' | 'gpu';
  dtype: string;
  maxModelLen: number;
  vocabSize: number;
  eosTokenIds: number[];
  numInstances: number;
  chatTemplate: string | null;
  toolCallParser?: 'auto' | ToolParserName; // --tool-call-parser (default auto: from the chat template)
}

export interface GenRequest {
  promptIds: number[];
  // default: what the context leaves after the prompt. 0: the prompt is computed (and scored, with
  // promptLogprobs) and nothing is returned: the token its last position samples is dropped.
  maxTokens?: number;
  minTokens?: number;
  ignoreEos?: boolean;
  stopTokenIds?: number[];
  stop?: string[]; // not part of the output, unless includeStopStr
  includeStopStr?: boolean; // vLLM's include_stop_str_in_output: the output ends with the stop string it met
  skipSpecialTokens?: boolean; // default true: special tokens (EOS, chat markers) leave no text
  sampling?: Partial<SamplingParams>;
  constraint?: ConstraintSpec; // structured output: only the tokens it allows are sampled
  logitBias?: LogitBias; // OpenAI's logit_bias
  // Prompt scoring (echo with logprobs): each prompt token's log-prob given the ones before it,
  // with this many likeliest alternatives. CPU backend only; n samples score it once (the first).
  promptLogprobs?: number;
}

// Beam search: HF generate(num_beams=…) semantics (see scheduler/beam-search.ts).
export interface BeamRequest {
  beamWidth: number;
  lengthPenalty: number;
  earlyStopping: EarlyStopping;
  numReturnSequences: number;
  // An async reranker: picks the hypothesis to stream once the search ends (index into the
  // returned ones); without it the best beam score is streamed.
  choose?: (hypotheses: Hypothesis[]) => Promise<number>;
  streamBeams?: boolean; // hooks.onBeams gets the live beams after each step
}

export interface TokenLogprob {
  id: number;
  logprob: number;
  rank?: number; // a scored prompt token's rank among the vocabulary (1 = likeliest)
  top?: { id: number; logprob: number }[];
}

// One engine token: the text it made releasable (may be '' while a stop string or a
// multi-byte character is pending) and its id.
export interface GenDelta {
  text: string;
  tokenId: number;
  numOutputTokens: number; // the request's output tokens so far, this one included
  logprob?: TokenLogprob;
  promptLogprobs?: PromptLogprobs; // on the first delta of a request that scores its prompt
}

// A scored prompt: entry p is prompt token p's log-prob given tokens 0..p-1; the first token has
// none (null).
export type PromptLogprobs = (TokenLogprob | null)[];

export interface GenResult {
  text: string;
  tokenIds: number[];
  logprobs: TokenLogprob[]; // empty when hooks.onDelta took them one by one (a stream keeps none)
  finishReason: 'stop' | 'length' | 'abort';
  numPromptTokens: number;
  numOutputTokens: number;
  numCachedTokens: number; // prompt tokens found in the prefix cache (not computed)
  promptLogprobs?: PromptLogprobs; // a request that scores its prompt (its first sample's result)
  beam?: BeamOutcome; // beam search: every returned hypothesis and the chosen one
}

export interface RunHooks {
  onDelta?: (d: GenDelta) => void | Promise<void>;
  onBeams?: (beams: LiveBeams) => void | Promise<void>; // beam search with streamBeams: after each step
  signal?: AbortSignal; // client gone: the sequence is aborted
}

export interface Generation {
  readonly result: Promise<GenResult>;
  abort(): void;
}

// Why a request was aborted on the server's side (timeout, shutdown): its result rejects with this.
type Failure = (numOutputTokens: number) => WeftError;

// Ids a client sent (prompts, stop ids, inputs to embed) against a vocabulary of vocabSize tokens.
export function checkTokenIds(ids: readonly number[], vocabSize: number, what: string): void {
  const bad = ids.find((id) => !Number.isInteger(id) || id < 0 || id >= vocabSize);
  if (bad !== undefined) throw new WeftError('WEFT_ERR_REQ_INVALID_TOKEN_ID', `${what}: token id ${bad} is outside the vocabulary [0, ${vocabSize})`);
}

// Where a text ends at its first stop string (the earliest match, the longest at one place):
// before it, or after it with includeStop. -1 when none starts at or after `from`.
export function stopCut(text: string, stops: readonly string[], includeStop: boolean, from = 0): number {
  let at = -1,
    len = 0;
  for (const s of stops) {
    const i = s.length > 0 ? text.indexOf(s, from) : -1;
    if (i >= 0 && (at < 0 || i < at || (i === at && s.length > len))) [at, len] = [i, s.length];
  }
  return at < 0 ? -1 : includeStop ? at + len : at;
}

// What a run may carry besides its request: a beam search's reranker hook, or the prompt scores
// its n samples share.
interface RunExtra {
  choose?: BeamRequest['choose'];
  share?: SharedPromptScores;
}

// A prompt's log-probs, from the sample that computes them (the first of n) to its siblings, which
// fork from it once the prompt is computed and so never score it: every choice of a scoring
// request gets the prompt's log-probs, as a sample alone would. Settled once (later calls do nothing).
class SharedPromptScores {
  readonly scores: Promise<PromptLogprobs | undefined>;
  settle!: (scores: PromptLogprobs | undefined) => void;
  constructor() {
    this.scores = new Promise((resolve) => {
      this.settle = resolve;
    });
  }
}

export class GenerationService {
  readonly #active = new Map<RequestHandle, (why: Failure) => void>(); // each request in flight → how to fail it
  readonly #idle = new EventTarget(); // 'idle' when the last request in flight ends
  readonly #tokenText = new Map<number, string>();

  constructor(
    readonly loop: EngineLoop,
    readonly tokenizer: TextTokenizer,
    readonly model: Readonly<ModelInfo>,
    readonly options: Readonly<{ maxPromptTokens: number; requestTimeoutMs: number; maxSeqsPerRequest?: number }>,
    readonly metrics?: Metrics,
  ) {
    metrics?.setPreemptedSource(() => [...this.#active.keys()].filter((h) => h.sequence.numPreemptions > 0).length);
  }

  get eosTokenId(): number | null {
    return this.model.eosTokenIds[0] ?? null;
  }

  get numActive(): number {
    return this.#active.size;
  }

  // Checks ids a client sent (prompts, stop ids) against the vocabulary.
  checkTokenIds(ids: readonly number[], what: string): void {
    checkTokenIds(ids, this.model.vocabSize, what);
  }

  async encode(text: string, addSpecialTokens = true): Promise<number[]> {
    return this.tokenizer.encode(text, addSpecialTokens);
  }

  // The text `tokens` add after a prompt, as a streamed response shows it (a SentencePiece decoder
  // would drop the leading space of a text decoded on its own).
  async decodeContinuation(promptIds: readonly number[], tokens: readonly number[], skipSpecialTokens = true): Promise<string> {
    const ctx = promptIds.slice(-DETOKENIZE_CONTEXT);
    const [head, full] = await this.tokenizer.decodeMany([ctx, [...ctx, ...tokens]], skipSpecialTokens);
    return full.slice(head.length);
  }

  // The text of one token as OpenAI logprobs show it (special tokens included).
  async tokenText(id: number): Promise<string> {
    let s = this.#tokenText.get(id);
    if (s === undefined) {
      s = await this.tokenizer.decode([id], false);
      this.#tokenText.set(id, s);
    }
    return s;
  }

  // One request's sequences (prompts × n, or × the beam width) are capped: a small body must not
  // fill the instance (64 prompts × n 16 would be 1,024 sequences).
  checkNumSequences(numSequences: number, what: string): void {
    const max = this.options.maxSeqsPerRequest ?? Infinity;
    if (numSequences > max)
      throw new WeftError(
        'WEFT_ERR_REQ_TOO_MANY_SEQUENCES',
        `${what} = ${numSequences} sequences; one request may start at most ${max} (--max-seqs-per-request)`,
      );
  }

  // The most prompt tokens a request may have (--max-prompt-tokens, else the context less one).
  get promptLimit(): number {
    return this.options.maxPromptTokens || this.model.maxModelLen - 1;
  }

  #checkPrompt(req: GenRequest): void {
    const n = req.promptIds.length;
    if (n === 0) throw new WeftError('WEFT_ERR_REQ_INVALID', 'the prompt has no tokens (and the model has no BOS token)');
    this.checkTokenIds(req.promptIds, 'prompt');
    if (req.stopTokenIds) this.checkTokenIds(req.stopTokenIds, 'stop_token_ids');
    if (req.constraint?.type === 'token_ids') this.checkTokenIds(req.constraint.ids, 'allowed_token_ids');
    if (req.logitBias)
      this.checkTokenIds(
        req.logitBias.map(([id]) => id),
        'logit_bias',
      );
    const limit = this.promptLimit;
    if (n > limit) throw new WeftError('WEFT_ERR_REQ_PROMPT_TOO_LONG', `the prompt has ${n} tokens; at most ${limit} are allowed`);
  }

  // Submits synchronously (a full queue, a too-long request or bad values throw here, before
  // any work and before a route commits to a response), then streams.
  start(req: GenRequest, hooks: RunHooks = {}): Generation {
    return this.startN(req, 1, () => hooks)[0];
  }

  // n samples of one prompt, prefilled once (the others fork from the first). Seeds: a given
  // seed s gives s, s+1, …; none gives n random ones.
  startN(req: GenRequest, n: number, hooks: (i: number) => RunHooks = () => ({})): Generation[] {
    this.#checkPrompt(req);
    const seed = req.sampling?.seed;
    const handles = this.loop.submitN(
      Array.from({ length: n }, (_, i) => ({
        promptTokenIds: req.promptIds,
        maxTokens: req.maxTokens === 0 ? 1 : req.maxTokens,
        minTokens: req.minTokens,
        ignoreEos: req.ignoreEos,
        stopTokenIds: req.stopTokenIds,
        sampling: { ...req.sampling, seed: seed === undefined ? Math.floor(Math.random() * 2 ** 53) : (seed + i) % Number.MAX_SAFE_INTEGER },
        ...(req.constraint ? { constraint: req.constraint } : {}),
        ...(req.logitBias ? { logitBias: req.logitBias } : {}),
        // the others fork from the first once its prompt is computed: it alone scores the prompt
        ...(i === 0 && req.promptLogprobs !== undefined ? { promptLogprobs: req.promptLogprobs } : {}),
      })),
    );
    const share = req.promptLogprobs !== undefined && n > 1 ? new SharedPromptScores() : undefined;
    return handles.map((h, i) => this.#track(h, req, hooks(i), { share }));
  }

  #track(handle: RequestHandle, req: GenRequest, hooks: RunHooks, extra: RunExtra = {}): Generation {
    const abort = () => {
      this.loop.abort(handle.requestId);
    };
    hooks.signal?.addEventListener('abort', abort, { once: true });
    if (hooks.signal?.aborted) abort();
    return { abort, result: this.#finishRun(handle, req, hooks, extra) };
  }

  async #finishRun(handle: RequestHandle, req: GenRequest, hooks: RunHooks, extra: RunExtra): Promise<GenResult> {
    let failure: Failure | null = null;
    const fail = (why: Failure) => {
      failure ??= why;
      this.loop.abort(handle.requestId);
    };
    this.#active.set(handle, fail);
    const ms = this.options.requestTimeoutMs;
    const timedOut = (n: number) => new WeftError('WEFT_ERR_REQ_TIMEOUT', `the request ran past its ${ms} ms limit after ${n} tokens`);
    const timer = ms > 0 ? setTimeout(() => fail(timedOut), ms) : null;
    try {
      const res = await this.#consume(handle, req, hooks, extra);
      if (failure && res.finishReason === 'abort') throw (failure as Failure)(res.numOutputTokens);
      return res;
    } finally {
      if (timer) clearTimeout(timer);
      this.#active.delete(handle);
      if (this.#active.size === 0) this.#idle.dispatchEvent(new Event('idle'));
      // the scoring sample ended without its scores (it failed or was aborted): its siblings go on
      // without; a sibling's own end settles nothing
      if (handle.sequence.promptLogprobs !== null) extra.share?.settle(undefined);
      // a consumer that throws (a broken socket) must not leave the sequence running
      if (!handle.sequence.isFinished) this.loop.abort(handle.requestId);
    }
  }

  // A beam search (greedy over beams: sampling fields other than penalties are ignored). Streams
  // the chosen hypothesis' tokens as they become final; the result carries every hypothesis.
  startBeam(req: GenRequest, beam: BeamRequest, hooks: RunHooks = {}): Generation {
    this.#checkPrompt(req);
    const handle = this.loop.submitBeam(
      {
        promptTokenIds: req.promptIds,
        sampling: { repetitionPenalty: req.sampling?.repetitionPenalty ?? 1 },
        ...(req.constraint ? { constraint: req.constraint } : {}),
        ...(req.logitBias ? { logitBias: req.logitBias } : {}),
      },
      {
        beamWidth: beam.beamWidth,
        maxTokens: req.maxTokens ?? Math.max(1, this.model.maxModelLen - req.promptIds.length),
        lengthPenalty: beam.lengthPenalty,
        earlyStopping: beam.earlyStopping,
        numReturnSequences: beam.numReturnSequences,
        ignoreEos: req.ignoreEos,
        minTokens: req.minTokens,
        stopTokenIds: req.stopTokenIds,
        endsWithStop: this.#stopCheck(req.stop ?? []),
      },
      beam.choose ? 'defer' : undefined,
      beam.streamBeams ?? false,
    );
    return this.#track(handle, req, hooks, { choose: beam.choose });
  }

  // Beam search with stop strings: a hypothesis ends once its text contains one. Only the tail
  // can hold a new match (an earlier one would have ended it), so only the tail is decoded.
  #stopCheck(stop: string[]): ((tokens: readonly number[]) => boolean) | undefined {
    const stops = stop.filter((x) => x.length > 0);
    if (stops.length === 0) return undefined;
    const window = 4 * Math.max(...stops.map((x) => x.length)) + 4; // tokens; a byte token may be a quarter of a character
    return (tokens) => {
      const text = this.tokenizer.decodeNow(tokens.slice(-window));
      return stops.some((x) => text.includes(x));
    };
  }

  // The text of a hypothesis as returned: decoded as streamed, cut at its first stop string.
  async hypothesisText(
    promptIds: readonly number[],
    tokens: readonly number[],
    req: Pick<GenRequest, 'stop' | 'includeStopStr' | 'skipSpecialTokens'> = {},
  ): Promise<string> {
    const text = await this.decodeContinuation(promptIds, tokens, req.skipSpecialTokens);
    const cut = stopCut(text, req.stop ?? [], req.includeStopStr ?? false);
    return cut < 0 ? text : text.slice(0, cut);
  }

  // start() and wait.
  run(req: GenRequest, hooks: RunHooks = {}): Promise<GenResult> {
    try {
      return this.start(req, hooks).result;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  async #consume(handle: RequestHandle, req: GenRequest, hooks: RunHooks, { choose, share }: RunExtra): Promise<GenResult> {
    const detok = new IncrementalDetokenizer(this.tokenizer, req.skipSpecialTokens ?? true, req.promptIds.slice(-DETOKENIZE_CONTEXT));
    const stops = (req.stop ?? []).filter((s) => s.length > 0);
    const holdBack = stops.reduce((m, s) => Math.max(m, s.length - 1), 0);
    const tokenIds: number[] = [],
      logprobs: TokenLogprob[] = [];
    let full = '',
      released = 0,
      stopAt = -1; // a stop string met: where the output ends (stopCut)
    let reason: FinishReason | undefined;
    let beam: BeamOutcome | undefined;
    let lastTokenAt = 0;
    const scoring = handle.sequence.promptLogprobs !== null;
    const promptLps: PromptLogprobs = scoring ? new Array<TokenLogprob | null>(req.promptIds.length).fill(null) : [];
    let numScored = 0;
    // every prompt position after the first, scored: checked once, before the first token goes out;
    // a sibling of the scoring sample waits for its scores
    const scoredPrompt = async (): Promise<PromptLogprobs | undefined> => {
      if (!scoring) return share?.scores;
      if (numScored < req.promptIds.length - 1)
        throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', `the engine scored ${numScored} of ${req.promptIds.length - 1} prompt positions`);
      share?.settle(promptLps);
      return promptLps;
    };

    // Finds a stop string in the text not yet released; releases what can no longer start one.
    const advance = (isEnd: boolean): string => {
      if (stopAt < 0 && stops.length > 0) stopAt = stopCut(full, stops, req.includeStopStr ?? false, Math.max(0, released - holdBack));
      const upTo = stopAt >= 0 ? stopAt : isEnd ? full.length : Math.max(released, full.length - holdBack);
      const out = full.slice(released, upTo);
      released = Math.max(released, upTo);
      return out;
    };

    const dropsTheToken = req.maxTokens === 0;
    for await (const ev of handle.events) {
      if (ev.error) throw ev.error;
      if (ev.beams) await hooks.onBeams?.(ev.beams);
      for (const s of ev.promptLogprobs ?? []) {
        if (promptLps[s.position] === null) numScored++; // a recomputed chunk (after preemption) scores again
        promptLps[s.position] = s;
      }
      if (ev.tokenId !== null && stopAt < 0 && !dropsTheToken) {
        const now = performance.now();
        if (lastTokenAt > 0) this.metrics?.observeInterTokenLatency((now - lastTokenAt) / 1000);
        lastTokenAt = now;
        tokenIds.push(ev.tokenId);
        const lp: TokenLogprob | undefined =
          ev.logprob === undefined ? undefined : { id: ev.tokenId, logprob: ev.logprob, ...(ev.topLogprobs ? { top: ev.topLogprobs } : {}) };
        // a streamed request has had each one already: kept, n × max_tokens × top-k entries would be its largest memory
        if (lp && !hooks.onDelta) logprobs.push(lp);
        // A token that ends its sequence with 'stop' is a stop token (EOS, stop_token_ids: the
        // scheduler's checkStop; stop strings end a sequence without a token). Its text is left
        // out, as vLLM's is, unless includeStopStr; a beam search's hypotheses keep theirs (their
        // text streams as it becomes final).
        const isStopToken = ev.finishReason === 'stop' && !req.includeStopStr && !handle.sequence.isBeam;
        if (!isStopToken) full += detok.push(ev.tokenId);
        if (ev.finishReason) full += detok.flush();
        const text = advance(!!ev.finishReason);
        // a beam search ends its hypotheses on stop strings itself; its stream goes on to the result
        if (stopAt >= 0 && !ev.finishReason && !handle.sequence.isBeam) this.loop.finish(handle.requestId, 'stop');
        const first = tokenIds.length === 1 ? await scoredPrompt() : undefined;
        await hooks.onDelta?.({
          text,
          tokenId: ev.tokenId,
          numOutputTokens: tokenIds.length,
          ...(lp ? { logprob: lp } : {}),
          ...(first ? { promptLogprobs: first } : {}),
        });
      }
      if (ev.finishReason) {
        reason = ev.finishReason;
        beam = ev.beam;
        if (beam?.deferred && choose) {
          // the reranker picks; its hypothesis extends what was streamed
          beam = { ...beam, chosen: beam.hypotheses[await choose(beam.hypotheses)] };
          const rest = beam.chosen.tokens.slice(tokenIds.length);
          for (const [i, id] of rest.entries()) {
            tokenIds.push(id);
            full += detok.push(id);
            if (i === rest.length - 1) full += detok.flush();
            await hooks.onDelta?.({ text: advance(i === rest.length - 1), tokenId: id, numOutputTokens: tokenIds.length });
          }
          reason = beam.chosen.finishReason;
          if (rest.length > 0) break;
        }
        if (ev.tokenId === null && ev.beam) {
          // a beam search's last tokens were already final
          const tail = detok.flush();
          full += tail;
          const text = advance(true);
          if (text && tokenIds.length > 0) await hooks.onDelta?.({ text, tokenId: tokenIds[tokenIds.length - 1], numOutputTokens: tokenIds.length });
        }
        break;
      }
    }
    if (reason === undefined || reason === 'error') throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', 'the engine ended the request without a result');
    const finishReason = dropsTheToken ? 'length' : stopAt >= 0 ? 'stop' : reason;
    const prompt = finishReason !== 'abort' ? await scoredPrompt() : undefined;
    return {
      text: full.slice(0, stopAt >= 0 ? stopAt : full.length),
      tokenIds,
      logprobs,
      finishReason,
      numPromptTokens: req.promptIds.length,
      numOutputTokens: tokenIds.length,
      numCachedTokens: handle.sequence.numCachedPromptTokens,
      ...(prompt ? { promptLogprobs: prompt } : {}),
      ...(beam ? { beam } : {}),
    };
  }

  // Resolves once no request is in flight (at once when none is).
  idle(): Promise<void> {
    if (this.#active.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.addEventListener('idle', () => resolve(), { once: true }));
  }

  // For shutdown: resolves when no request is in flight, or after maxMs at the latest.
  async drain(maxMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      this.idle(),
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, maxMs);
      }),
    ]);
    clearTimeout(timer);
    return this.#active.size === 0;
  }

  // Shutdown: every request in flight is aborted and its result rejects with `error` (streams end
  // with it as their final event).
  abortAll(error: WeftError): void {
    for (const fail of this.#active.values()) fail(() => error);
  }
}
