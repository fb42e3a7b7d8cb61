// A Piscina worker that owns one native engine instance. It keeps each sequence's sampling
// parameters and block table, applies the step message's deltas, packs the native input and runs
// the step. Constrained sequences (structured output) have their matchers on grammar hosts
// (src/structured/grammar-hosts.ts): the worker tells them which tokens each sequence was fed and
// gets the step's masks back. It makes no scheduling decisions.
import type { MessagePort } from 'node:worker_threads';

import { toErrorData, WeftError } from '../errors.js';
import type {
  ErrorReply,
  InitReply,
  PrepareMessage,
  StepEnvelope,
  StepMessage,
  StepReply,
  StepReplyEnvelope,
  WorkerMessage,
} from '../scheduler/protocol.js';
import { GrammarHosts } from '../structured/grammar-hosts.js';
import { EngineInstance } from './engine-instance.js';
import type { LogitBias } from '../sampling.js';
import { packStep, type SamplingParams, type SeqStep } from './step-pack.js';

interface SeqState {
  promptLen: number;
  sampling: SamplingParams;
  blockTable: number[];
  // Structured output: the matcher advances on the tokens fed, not on those sampled (see
  // src/structured/types.ts); consumed counts the output tokens sent to it.
  consumed: number;
  logitBias?: LogitBias;
}

let engine: EngineInstance | null = null;
let maxGrammarHosts: number | undefined;
let grammars: GrammarHosts | null = null;
const seqs = new Map<number, SeqState>();

// The output tokens among `tokens` (at positions from `startPos`) that the sequence's matcher has
// not been sent yet.
function unsent(s: SeqState, tokens: ArrayLike<number>, startPos: number): number[] {
  const out: number[] = [];
  for (let j = 0; j < tokens.length; j++) {
    const g = startPos + j - s.promptLen; // index among the outputs
    if (g < s.consumed) continue;
    out.push(tokens[j]);
    s.consumed = g + 1;
  }
  return out;
}

function hostsOf(e: EngineInstance): GrammarHosts {
  return (grammars ??= new GrammarHosts({ modelPath: e.spec.path, vocabSize: e.spec.config.vocabSize }, maxGrammarHosts));
}

function release(id: number): void {
  grammars?.release(id);
  seqs.delete(id);
}

async function runStep(m: StepMessage): Promise<StepReply> {
  if (!engine) throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', 'worker has no engine (not initialized or restarted)');
  const t0 = performance.now();
  // Forks before releases: a parent may be released in the very step that forks it.
  for (let i = 0; i < m.forks.length; i += 2) {
    const parent = seqs.get(m.forks[i]);
    if (!parent) continue;
    grammars?.fork(m.forks[i], m.forks[i + 1]);
    seqs.set(m.forks[i + 1], { ...parent, blockTable: [...parent.blockTable] });
  }
  for (let i = 0; i < m.release.length; i++) release(m.release[i]);
  for (const n of m.newSeqs) {
    release(n.seqId); // a preempted sequence comes back as new: its matcher starts over
    const s: SeqState = {
      promptLen: n.promptLen,
      sampling: n.sampling,
      blockTable: [],
      consumed: 0,
      ...(n.logitBias ? { logitBias: n.logitBias } : {}),
    };
    if (n.constraint) hostsOf(engine).create(n.seqId, n.constraint, n.prefixTokens ? unsent(s, n.prefixTokens, 0) : []);
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
    const n = m.numNewTokens[i],
      tokens = m.tokenIds.subarray(off, off + n),
      doSample = m.doSample[i] === 1;
    if (grammars?.has(m.seqIds[i])) {
      grammars.accept(m.seqIds[i], unsent(s, tokens, m.startPos[i]));
      if (doSample) grammars.wantMask(m.seqIds[i]);
    }
    steps.push({
      seqId: m.seqIds[i],
      tokens,
      startPos: m.startPos[i],
      promptLen: s.promptLen,
      blockTable: s.blockTable,
      doSample,
      sampling: s.sampling,
      ...(s.logitBias ? { logitBias: s.logitBias } : {}),
    });
    off += n;
  }
  if (grammars) {
    const masks = await grammars.flush(Math.ceil(engine.spec.config.vocabSize / 32));
    for (const st of steps) {
      const mask = masks.get(st.seqId);
      // A grammar complete in a model without any end token allows nothing: the sequence goes on
      // unconstrained (its max_tokens ends it) rather than failing the whole step.
      if (mask && mask.some((w) => w !== 0)) st.mask = mask;
    }
  }
  const history = m.newSeqs.filter((n) => n.prefixTokens).map((n) => ({ seqId: n.seqId, tokens: n.prefixTokens! }));
  const input = packStep(steps, engine.blockSize, {
    blockCopies: m.blockCopies,
    forks: m.forks,
    release: m.release,
    history,
    returnLogits: m.returnLogits,
    ...(m.logitRows ? { logitRows: m.logitRows } : {}),
    ...(m.scoreTargets ? { score: { targets: m.scoreTargets, topN: m.scoreTopN ?? 0 } } : {}),
    ...(m.hiddenRows ? { hiddenRows: m.hiddenRows } : {}),
  });
  const packUs = (performance.now() - t0) * 1000;
  const out = engine.step(input);
  return { ok: true, ...out, packUs };
}

// Compiles a constraint before its sequence is first scheduled (see grammar-hosts.ts).
async function prepare(m: PrepareMessage): Promise<{ ok: true }> {
  if (!engine) throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', 'worker has no engine (not initialized or restarted)');
  await hostsOf(engine).prepare(m.constraint);
  return { ok: true };
}

// A step from the step channel: its reply goes back on the same port, its typed arrays transferred
// rather than cloned.
async function onStep(port: MessagePort, { id, msg }: StepEnvelope): Promise<void> {
  let reply: StepReply | ErrorReply;
  try {
    reply = await runStep(msg);
  } catch (e) {
    port.postMessage({ id, reply: { ok: false, error: toErrorData(e) } } satisfies StepReplyEnvelope);
    return;
  }
  const optional = [reply.logits, reply.scoredLogprobs, reply.scoredRanks, reply.scoredTopIds, reply.scoredTopLogprobs, reply.hidden].filter(
    (a) => a !== undefined,
  );
  const buffers = [reply.sampled, reply.logprobs, reply.topIds, reply.topLogprobs, ...optional].map((a) => a.buffer as ArrayBuffer);
  port.postMessage({ id, reply } satisfies StepReplyEnvelope, buffers);
}

// Piscina's tasks: init (which also hands over the step channel) and prepare.
export default async function handle(msg: WorkerMessage): Promise<unknown> {
  try {
    if (msg.kind === 'init') {
      engine?.close();
      seqs.clear();
      await grammars?.close();
      grammars = null;
      engine = await EngineInstance.open(msg.options, msg.options.spec);
      maxGrammarHosts = msg.options.maxGrammarHosts;
      const port = msg.steps;
      port.on('message', (m: StepEnvelope) => void onStep(port, m));
      const reply: InitReply = {
        numKvBlocks: engine.numKvBlocks,
        blockSize: engine.blockSize,
        isa: engine.isa,
        kvDtype: engine.kvDtype,
        weightBytes: engine.weightBytes,
      };
      return reply;
    }
    return await prepare(msg);
  } catch (e) {
    return { ok: false, error: toErrorData(e) };
  }
}
