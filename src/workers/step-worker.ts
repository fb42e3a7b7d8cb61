// A Piscina worker that owns one native engine instance. It keeps each sequence's sampling
// parameters and block table, applies the step message's deltas, packs the native input and
// runs the step. It makes no scheduling decisions.
import { move, transferableSymbol, valueSymbol } from 'piscina';

import { toErrorData, WeftError } from '../errors.js';
import type { InitReply, StepMessage, WorkerMessage, WorkerReply } from '../scheduler/protocol.js';
import { EngineInstance } from './engine-instance.js';
import { packStep, type SamplingParams, type SeqStep } from './step-pack.js';

interface SeqState {
  promptLen: number;
  sampling: SamplingParams;
  blockTable: number[];
}

let engine: EngineInstance | null = null;
const seqs = new Map<number, SeqState>();

function runStep(m: StepMessage): WorkerReply {
  if (!engine) throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', 'worker has no engine (not initialized or restarted)');
  const t0 = performance.now();
  // Forks before releases: a parent may be released in the very step that forks it.
  for (let i = 0; i < m.forks.length; i += 2) {
    const parent = seqs.get(m.forks[i]);
    if (parent) seqs.set(m.forks[i + 1], { ...parent, blockTable: [...parent.blockTable] });
  }
  for (let i = 0; i < m.release.length; i++) seqs.delete(m.release[i]);
  for (const n of m.newSeqs) seqs.set(n.seqId, { promptLen: n.promptLen, sampling: n.sampling, blockTable: [] });
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
    const n = m.numNewTokens[i];
    steps.push({ seqId: m.seqIds[i], tokens: m.tokenIds.subarray(off, off + n), startPos: m.startPos[i], promptLen: s.promptLen,
      blockTable: s.blockTable, doSample: m.doSample[i] === 1, sampling: s.sampling });
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
      seqs.clear();
      engine = await EngineInstance.open(msg.options);
      const reply: InitReply = { numKvBlocks: engine.numKvBlocks, blockSize: engine.blockSize, isa: engine.isa, weightBytes: engine.weightBytes };
      return reply;
    }
    const reply = runStep(msg) as Extract<WorkerReply, { ok: true }>;
    const buffers = [reply.sampled, reply.logprobs, reply.topIds, reply.topLogprobs, ...(reply.logits ? [reply.logits] : [])].map((a) => a.buffer);
    // Transfer the typed arrays of the reply instead of cloning them.
    return move({ [transferableSymbol]: buffers, [valueSymbol]: reply } as never);
  } catch (e) {
    return { ok: false, error: toErrorData(e) };
  }
}
