// Runs a fixed set of requests to completion on one engine instance, without the serving
// scheduler: the CLI, the engine tests and the raw-engine benchmark use it. Every step packs
// all live sequences into one native call: prompt chunks of at most `chunkSize` tokens and
// single decode tokens side by side.
import { WeftError } from './errors.js';
import type { EngineInstance } from './workers/engine-instance.js';
import { GREEDY, type LogitBias, type SamplingParams } from './sampling.js';
import { packStep, type SeqStep } from './workers/step-pack.js';

export interface OfflineRequest {
  promptIds: number[];
  maxTokens: number;
  sampling?: Partial<SamplingParams>;
  stopTokenIds?: number[];
  ignoreEos?: boolean;
  startStep?: number; // join the batch at this step (tests mixed prefill/decode)
  mask?: Uint32Array; // only these tokens are sampled (ceil(vocab / 32) words, bit t & 31 of word t >> 5)
  logitBias?: LogitBias; // (token, added logit) pairs
  // Teacher forcing: after its k-th sampled token the sequence goes on with forcedIds[k] instead
  // (while there is one), so each output is the next-token choice on a context given from outside.
  forcedIds?: number[];
}

export interface OfflineResult {
  outputIds: number[];
  logprobs: number[];
  topLogprobs: { id: number; logprob: number }[][];
  finishReason: 'stop' | 'length';
  logits: Float32Array[]; // per sampled token, when returnLogits
}

export interface OfflineOptions {
  chunkSize?: number; // max prompt tokens per sequence per step
  eosTokenIds?: number[];
  returnLogits?: boolean;
  onStep?: (info: { numTokens: number; numSeqs: number; forwardUs: number; sampleUs: number }) => void;
}

interface Live {
  index: number;
  req: OfflineRequest;
  tokens: number[];
  numComputed: number;
  blocks: number[];
  result: OfflineResult;
  sampling: SamplingParams;
}

export function runOffline(engine: EngineInstance, requests: OfflineRequest[], o: OfflineOptions = {}): OfflineResult[] {
  const bs = engine.blockSize;
  const chunk = o.chunkSize ?? 512;
  const eos = new Set(o.eosTokenIds ?? engine.spec.config.eosTokenIds);
  const free = Array.from({ length: engine.numKvBlocks }, (_, i) => engine.numKvBlocks - 1 - i);
  const results: OfflineResult[] = requests.map(() => ({ outputIds: [], logprobs: [], topLogprobs: [], finishReason: 'length', logits: [] }));
  const pending = requests.map((req, index) => ({ req, index })).sort((a, b) => (a.req.startStep ?? 0) - (b.req.startStep ?? 0));
  let live: Live[] = [];
  const release: number[] = [];
  for (let stepNo = 0; live.length > 0 || pending.length > 0; stepNo++) {
    while (pending.length > 0 && (pending[0].req.startStep ?? 0) <= stepNo) {
      const { req, index } = pending.shift()!;
      if (req.promptIds.length === 0) throw new WeftError('WEFT_ERR_ENGINE_BAD_INPUT', 'empty prompt: start from BOS');
      live.push({
        index,
        req,
        tokens: [...req.promptIds],
        numComputed: 0,
        blocks: [],
        result: results[index],
        sampling: { ...GREEDY, ...req.sampling },
      });
    }
    if (live.length === 0) continue;
    const steps: SeqStep[] = live.map((s) => {
      const n = Math.min(chunk, s.tokens.length - s.numComputed);
      const end = s.numComputed + n;
      while (s.blocks.length * bs < end) {
        const b = free.pop();
        if (b === undefined) throw new WeftError('WEFT_ERR_ENGINE_OUT_OF_MEMORY', `KV cache too small: ${engine.numKvBlocks} blocks of ${bs}`);
        s.blocks.push(b);
      }
      return {
        seqId: s.index,
        tokens: s.tokens.slice(s.numComputed, end),
        startPos: s.numComputed,
        promptLen: s.req.promptIds.length,
        blockTable: s.blocks,
        doSample: end === s.tokens.length,
        sampling: s.sampling,
        ...(s.req.mask ? { mask: s.req.mask } : {}),
        ...(s.req.logitBias ? { logitBias: s.req.logitBias } : {}),
      };
    });
    const out = engine.step(packStep(steps, bs, { release: release.splice(0), returnLogits: o.returnLogits }));
    o.onStep?.({
      numTokens: steps.reduce((a, s) => a + s.tokens.length, 0),
      numSeqs: steps.length,
      forwardUs: out.forwardUs,
      sampleUs: out.sampleUs,
    });
    let row = 0;
    live.forEach((s, i) => {
      s.numComputed += steps[i].tokens.length;
      if (!steps[i].doSample) return;
      const tok = out.sampled[i];
      const r = s.result;
      r.outputIds.push(tok);
      r.logprobs.push(out.logprobs[i]);
      const top: { id: number; logprob: number }[] = [];
      for (let j = 0; j < out.topN && out.topIds[i * out.topN + j] >= 0; j++)
        top.push({ id: out.topIds[i * out.topN + j], logprob: out.topLogprobs[i * out.topN + j] });
      r.topLogprobs.push(top);
      if (o.returnLogits && out.logits) {
        const V = engine.spec.config.vocabSize;
        r.logits.push(out.logits.slice(row * V, (row + 1) * V));
      }
      row++;
      s.tokens.push(s.req.forcedIds?.[r.outputIds.length - 1] ?? tok);
      const stop = (!s.req.ignoreEos && eos.has(tok)) || (s.req.stopTokenIds ?? []).includes(tok);
      if (stop) r.finishReason = 'stop';
      if (stop || r.outputIds.length >= s.req.maxTokens) s.numComputed = -1; // mark finished
    });
    for (const s of live.filter((x) => x.numComputed < 0)) {
      free.push(...s.blocks);
      release.push(s.index);
    }
    live = live.filter((x) => x.numComputed >= 0);
  }
  return results;
}
