// A Piscina worker that owns one native engine instance. It keeps each sequence's sampling
// parameters, block table and token matcher (structured output), applies the step message's
// deltas, packs the native input and runs the step. It makes no scheduling decisions.
import { move, transferableSymbol, valueSymbol } from 'piscina';

import { toErrorData, WeftError } from '../errors.js';
import type { InitReply, StepMessage, WorkerMessage, WorkerReply } from '../scheduler/protocol.js';
import { matcherFactory, type MatcherFactory } from '../structured/matchers.js';
import type { TokenMatcher } from '../structured/types.js';
import { EngineInstance } from './engine-instance.js';
import type { LogitBias } from '../sampling.js';
import { packStep, type SamplingParams, type SeqStep } from './step-pack.js';

interface SeqState {
  promptLen: number;
  sampling: SamplingParams;
  blockTable: number[];
  // Structured output: the matcher advances on the tokens fed, not on those sampled (see
  // src/structured/types.ts); consumed counts the output tokens it has accepted.
  matcher?: TokenMatcher;
  consumed: number;
  logitBias?: LogitBias;
}

let engine: EngineInstance | null = null;
let matchers: MatcherFactory | null = null;
const seqs = new Map<number, SeqState>();

// Feeds a constrained sequence's matcher the output tokens among `tokens` (at positions from
// `startPos`) that it has not accepted yet.
function advance(s: SeqState, tokens: ArrayLike<number>, startPos: number, seqId: number): void {
  if (!s.matcher) return;
  for (let j = 0; j < tokens.length; j++) {
    const g = startPos + j - s.promptLen;  // index among the outputs
    if (g < s.consumed) continue;
    if (!s.matcher.acceptToken(tokens[j]))
      throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', `sequence ${seqId}: output token ${tokens[j]} breaks its constraint`);
    s.consumed = g + 1;
  }
}

function release(id: number): void {
  seqs.get(id)?.matcher?.dispose();
  seqs.delete(id);
}

async function runStep(m: StepMessage): Promise<WorkerReply> {
  if (!engine) throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', 'worker has no engine (not initialized or restarted)');
  const t0 = performance.now();
  // Forks before releases: a parent may be released in the very step that forks it.
  for (let i = 0; i < m.forks.length; i += 2) {
    const parent = seqs.get(m.forks[i]);
    if (!parent) continue;
    const matcher = parent.matcher ? await parent.matcher.fork() : undefined;
    seqs.set(m.forks[i + 1], { ...parent, blockTable: [...parent.blockTable], ...(matcher ? { matcher } : {}) });
  }
  for (let i = 0; i < m.release.length; i++) release(m.release[i]);
  for (const n of m.newSeqs) {
    release(n.seqId);  // a preempted sequence comes back as new: its matcher starts over
    const s: SeqState = { promptLen: n.promptLen, sampling: n.sampling, blockTable: [], consumed: 0, ...(n.logitBias ? { logitBias: n.logitBias } : {}) };
    if (n.constraint) {
      matchers ??= matcherFactory(engine.spec.path, engine.spec.config.vocabSize);
      s.matcher = await matchers(n.constraint);
      if (n.prefixTokens) advance(s, n.prefixTokens, 0, n.seqId);
    }
    seqs.set(n.seqId, s);
  }
  for (let i = 0; i < m.blockUpdates.length; i += 3) {
    const s = seqs.get(m.blockUpdates[i]);
    if (!s) throw new WeftError('WEFT_ERR_ENGINE_BAD_INPUT', `block update for unknown sequence ${m.blockUpdates[i]}`);
    s.blockTable[m.blockUpdates[i + 1]] = m.blockUpdates[i + 2];
  }
  const steps: SeqStep[] = [];
  let off = 0;
  for (let i = 0; i < m.seqIds.length; i++) {
    const s = seqs.get(m.seqIds[i]);
    if (!s) throw new WeftError('WEFT_ERR_ENGINE_BAD_INPUT', `step for unknown sequence ${m.seqIds[i]}`);
    const n = m.numNewTokens[i], tokens = m.tokenIds.subarray(off, off + n), doSample = m.doSample[i] === 1;
    let mask: Uint32Array | undefined;
    if (s.matcher) {
      advance(s, tokens, m.startPos[i], m.seqIds[i]);
      if (doSample) {
        await s.matcher.fillNextTokenMask((mask = new Uint32Array(Math.ceil(engine.spec.config.vocabSize / 32))));
        // A grammar complete in a model without any end token allows nothing: the sequence goes on
        // unconstrained (its max_tokens ends it) rather than failing the whole step.
        if (!mask.some((w) => w !== 0)) mask = undefined;
      }
    }
    steps.push({ seqId: m.seqIds[i], tokens, startPos: m.startPos[i], promptLen: s.promptLen,
      blockTable: s.blockTable, doSample, sampling: s.sampling, ...(mask ? { mask } : {}), ...(s.logitBias ? { logitBias: s.logitBias } : {}) });
    off += n;
  }
  const history = m.newSeqs.filter((n) => n.prefixTokens).map((n) => ({ seqId: n.seqId, tokens: n.prefixTokens! }));
  const input = packStep(steps, engine.blockSize, { blockCopies: m.blockCopies, forks: m.forks, release: m.release, history, returnLogits: m.returnLogits });
  const packUs = (performance.now() - t0) * 1000;
  const out = engine.step(input);
  return { ok: true, ...out, packUs };
}

export default async function handle(msg: WorkerMessage): Promise<unknown> {
  try {
    if (msg.kind === 'init') {
      engine?.close();
      for (const id of [...seqs.keys()]) release(id);
      matchers = null;
      engine = await EngineInstance.open(msg.options);
      const reply: InitReply = { numKvBlocks: engine.numKvBlocks, blockSize: engine.blockSize, isa: engine.isa, weightBytes: engine.weightBytes };
      return reply;
    }
    const reply = (await runStep(msg)) as Extract<WorkerReply, { ok: true }>;
    const buffers = [reply.sampled, reply.logprobs, reply.topIds, reply.topLogprobs, ...(reply.logits ? [reply.logits] : [])].map((a) => a.buffer);
    // Transfer the typed arrays of the reply instead of cloning them.
    return move({ [transferableSymbol]: buffers, [valueSymbol]: reply } as never);
  } catch (e) {
    return { ok: false, error: toErrorData(e) };
  }
}
