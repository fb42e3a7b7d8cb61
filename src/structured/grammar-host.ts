// A grammar host: a thread that owns an xgrammar instance, the grammars compiled in it and the
// matchers over them (a compiled grammar lives in one WASM memory and cannot move). Compiling is
// one synchronous WASM call (up to about a second for a large schema) and blocks this thread
// only; the step worker (grammar-hosts.ts) compiles on a host that serves no running sequence, so
// that no step waits for it. Messages are handled one at a time, in order.
import { parentPort, workerData } from 'node:worker_threads';

import { toErrorData, WeftError } from '../errors.js';
import type { HostInit, HostReply, HostRequest, StepRequest } from './host-protocol.js';
import { matcherFactory } from './matchers.js';
import type { TokenMatcher } from './types.js';

const init = workerData as HostInit;
const newMatcher = matcherFactory(init.modelPath, init.vocabSize);
const matchers = new Map<number, TokenMatcher>();

function accept(seqId: number, m: TokenMatcher, tokens: readonly number[]): void {
  for (const t of tokens) {
    if (!m.acceptToken(t)) throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', `sequence ${seqId}: output token ${t} breaks its constraint`);
  }
}

function release(seqId: number): void {
  matchers.get(seqId)?.dispose();
  matchers.delete(seqId);
}

async function step(r: StepRequest): Promise<Uint32Array | null> {
  for (let i = 0; i < r.forks.length; i += 2) {
    const parent = matchers.get(r.forks[i]);
    if (parent) matchers.set(r.forks[i + 1], await parent.fork());
  }
  for (const id of r.release) release(id);
  for (const c of r.creates) {
    release(c.seqId); // a preempted sequence comes back as new: its matcher starts over
    const m = await newMatcher(c.spec);
    matchers.set(c.seqId, m);
    accept(c.seqId, m, c.tokens);
  }
  for (const a of r.accepts) {
    const m = matchers.get(a.seqId);
    if (!m) throw new WeftError('WEFT_ERR_ENGINE_BAD_INPUT', `grammar host: tokens for unknown sequence ${a.seqId}`);
    accept(a.seqId, m, a.tokens);
  }
  if (r.maskSeqIds.length === 0) return null;
  const masks = new Uint32Array(r.maskSeqIds.length * r.maskWords);
  for (let i = 0; i < r.maskSeqIds.length; i++) {
    const m = matchers.get(r.maskSeqIds[i]);
    if (!m) throw new WeftError('WEFT_ERR_ENGINE_BAD_INPUT', `grammar host: mask for unknown sequence ${r.maskSeqIds[i]}`);
    await m.fillNextTokenMask(masks.subarray(i * r.maskWords, (i + 1) * r.maskWords));
  }
  return masks;
}

async function handle(r: HostRequest): Promise<HostReply> {
  try {
    if (r.kind === 'compile') {
      (await newMatcher(r.spec)).dispose(); // the compiled grammar stays in the compiler's cache
      return { id: r.id, ok: true, masks: null };
    }
    return { id: r.id, ok: true, masks: await step(r) };
  } catch (e) {
    return { id: r.id, ok: false, error: toErrorData(e) };
  }
}

let queue = Promise.resolve();
parentPort!.on('message', (r: HostRequest) => {
  queue = queue.then(async () => {
    const reply = await handle(r);
    parentPort!.postMessage(reply, reply.ok && reply.masks ? [reply.masks.buffer as ArrayBuffer] : []);
  });
});
