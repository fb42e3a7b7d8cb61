// Packs one step's sequences into the typed arrays of the native step call.
import { WeftError } from '../errors.js';
import { samplingArrays, setSampling, type LogitBias, type SamplingParams } from '../sampling.js';
import type { NativeStepInput } from './binding.js';

// The sampling parameters are defined once, in src/sampling.ts.
export { GREEDY, type SamplingParams } from '../sampling.js';

export interface SeqStep {
  seqId: number;
  tokens: ArrayLike<number>; // the tokens fed this step, at positions startPos..
  startPos: number;
  promptLen: number;
  blockTable: ArrayLike<number>;
  doSample: boolean;
  sampling: SamplingParams;
  mask?: Uint32Array; // the allowed next tokens (structured output), when sampled
  logitBias?: LogitBias; // OpenAI's logit_bias, when sampled
}

export interface StepExtras {
  blockCopies?: ArrayLike<number>; // src, dst pairs
  forks?: ArrayLike<number>; // parent, child seq id pairs
  release?: ArrayLike<number>; // seq ids
  history?: { seqId: number; tokens: ArrayLike<number> }[]; // prefixes not fed (prefix-cache hits)
  returnLogits?: boolean;
  logitRows?: ArrayLike<number>; // the only LM-head rows needed (weft_engine.h's logit_rows)
  score?: { targets: Int32Array; topN: number }; // prompt scoring, one target per token row (-1: none)
  hiddenRows?: Int32Array; // token rows whose final-normed hidden state comes back
}

export function packStep(seqs: readonly SeqStep[], blockSize: number, extras: StepExtras = {}): NativeStepInput {
  const N = seqs.length;
  let T = 0;
  let maxBlocks = 1;
  for (const s of seqs) {
    T += s.tokens.length;
    if (s.blockTable.length * blockSize < s.startPos + s.tokens.length)
      throw new WeftError(
        'WEFT_ERR_ENGINE_BAD_INPUT',
        `sequence ${s.seqId}: block table covers ${s.blockTable.length * blockSize} tokens, context needs ${s.startPos + s.tokens.length}`,
      );
    maxBlocks = Math.max(maxBlocks, Math.ceil((s.startPos + s.tokens.length) / blockSize));
  }
  const input: NativeStepInput = {
    numTokens: T,
    numSeqs: N,
    maxBlocksPerSeq: maxBlocks,
    tokenIds: new Int32Array(T),
    positions: new Int32Array(T),
    slotMapping: new Int32Array(T),
    seqIds: new Int32Array(N),
    queryStart: new Int32Array(N + 1),
    contextLens: new Int32Array(N),
    promptLens: new Int32Array(N),
    blockTables: new Int32Array(N * maxBlocks),
    doSample: new Uint8Array(N),
    ...samplingArrays(N),
    numBlockCopies: extras.blockCopies ? extras.blockCopies.length / 2 : 0,
    blockCopies: extras.blockCopies ? Int32Array.from(extras.blockCopies) : undefined,
    numForks: extras.forks ? extras.forks.length / 2 : 0,
    forks: extras.forks ? Int32Array.from(extras.forks) : undefined,
    numRelease: extras.release ? extras.release.length : 0,
    releaseSeqIds: extras.release ? Int32Array.from(extras.release) : undefined,
    numHistory: extras.history?.length ?? 0,
    ...packHistory(extras.history ?? []),
    returnLogits: extras.returnLogits ?? false,
    ...(extras.logitRows?.length ? { numLogitRows: extras.logitRows.length, logitRows: Int32Array.from(extras.logitRows) } : {}),
    ...(extras.score ? { scoreTargets: extras.score.targets, scoreTopN: extras.score.topN } : {}),
    ...(extras.hiddenRows ? { hiddenRows: extras.hiddenRows } : {}),
  };
  let t = 0;
  seqs.forEach((s, i) => {
    input.queryStart[i] = t;
    const ctx = s.startPos + s.tokens.length;
    for (let j = 0; j < s.tokens.length; j++, t++) {
      const pos = s.startPos + j;
      input.tokenIds[t] = s.tokens[j];
      input.positions[t] = pos;
      input.slotMapping[t] = s.blockTable[Math.floor(pos / blockSize)] * blockSize + (pos % blockSize);
    }
    input.seqIds[i] = s.seqId;
    input.contextLens[i] = ctx;
    input.promptLens[i] = s.promptLen;
    for (let b = 0; b < Math.min(s.blockTable.length, maxBlocks); b++) input.blockTables[i * maxBlocks + b] = s.blockTable[b];
    input.doSample[i] = s.doSample ? 1 : 0;
    setSampling(input, i, s.sampling);
  });
  input.queryStart[N] = t;
  packMasks(input, seqs);
  packBiases(input, seqs);
  return input;
}

// Logit biases of the sampled sequences that have some, as CSR over every sequence of the step.
function packBiases(input: NativeStepInput, seqs: readonly SeqStep[]): void {
  if (!seqs.some((s) => s.doSample && s.logitBias?.length)) return;
  const offsets = new Int32Array(seqs.length + 1);
  seqs.forEach((s, i) => {
    offsets[i + 1] = offsets[i] + (s.doSample ? (s.logitBias?.length ?? 0) : 0);
  });
  const ids = new Int32Array(offsets[seqs.length]),
    values = new Float32Array(offsets[seqs.length]);
  seqs.forEach((s, i) => {
    if (!s.doSample || !s.logitBias) return;
    s.logitBias.forEach(([id, v], j) => {
      ids[offsets[i] + j] = id;
      values[offsets[i] + j] = v;
    });
  });
  Object.assign(input, { biasOffsets: offsets, biasIds: ids, biasValues: values });
}

// Token masks of the sampled sequences that have one; a step without any packs nothing.
function packMasks(input: NativeStepInput, seqs: readonly SeqStep[]): void {
  const masked = seqs.filter((s) => s.doSample && s.mask);
  if (masked.length === 0) return;
  const words = masked[0].mask!.length;
  input.numMasks = masked.length;
  input.maskWords = words;
  input.maskIndex = new Int32Array(seqs.length).fill(-1);
  input.tokenMasks = new Uint32Array(masked.length * words);
  let m = 0;
  seqs.forEach((s, i) => {
    if (!s.doSample || !s.mask) return;
    if (s.mask.length !== words) throw new WeftError('WEFT_ERR_ENGINE_BAD_INPUT', 'token masks of one step differ in length');
    input.tokenMasks!.set(s.mask, m * words);
    input.maskIndex![i] = m++;
  });
}

function packHistory(h: { seqId: number; tokens: ArrayLike<number> }[]): Pick<NativeStepInput, 'historySeqIds' | 'historyOffsets' | 'historyTokens'> {
  if (h.length === 0) return {};
  const offsets = new Int32Array(h.length + 1);
  h.forEach((x, i) => {
    offsets[i + 1] = offsets[i] + x.tokens.length;
  });
  const tokens = new Int32Array(offsets[h.length]);
  h.forEach((x, i) => tokens.set(Array.from(x.tokens), offsets[i]));
  return { historySeqIds: Int32Array.from(h.map((x) => x.seqId)), historyOffsets: offsets, historyTokens: tokens };
}

// All arrays of a packed step, for transferring them to a worker instead of copying.
export function stepBuffers(input: NativeStepInput): ArrayBuffer[] {
  const out: ArrayBuffer[] = [];
  for (const v of Object.values(input)) if (ArrayBuffer.isView(v)) out.push(v.buffer as ArrayBuffer);
  return out;
}
