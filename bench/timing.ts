// What the benchmarks share: synthetic models cached on disk, medians and cosines, and timed decode and
// prefill on one engine instance (CPU or GPU).
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

import { GGUF_FILE_TYPES, type GgufFileType } from '../src/model/quant-mix.js';
import { quantizeToGguf } from '../src/model/quantize-gguf.js';
import { synthesizeModel } from '../src/model/synth.js';
import type { EngineInstance } from '../src/workers/engine-instance.js';
import { GREEDY, packStep, type SeqStep } from '../src/workers/step-pack.js';

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

// The cosine of the angle between two vectors (two engines' embeddings of one input).
export function cosine(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let ab = 0,
    aa = 0,
    bb = 0;
  for (let i = 0; i < a.length; i++) [ab, aa, bb] = [ab + a[i] * b[i], aa + a[i] * a[i], bb + b[i] * b[i]];
  return ab / Math.sqrt(aa * bb);
}

// A seeded random GGUF at the shape of `config`, written once to $WEFT_BENCH_DIR (default
// $TMPDIR)/weft-bench/NAME-DTYPE-seed0.gguf.
export async function syntheticGguf(name: string, config: Record<string, unknown>, dtype: 'f32' | 'f16' | 'q8_0'): Promise<string> {
  const dir = join(process.env.WEFT_BENCH_DIR ?? tmpdir(), 'weft-bench');
  mkdirSync(dir, { recursive: true });
  const out = join(dir, `${name}-${dtype}-seed0.gguf`);
  if (!existsSync(out)) {
    process.stderr.write(`synthesizing ${out} …\n`);
    await synthesizeModel({ config, out, format: 'gguf', dtype, seed: 0 });
  }
  return out;
}

// llama.cpp's block types the benchmarks load (their file names: the lower-case llama-quantize
// type): every GGUF file type weft writes but the int8 (Q8_0) and float ones.
export const BLOCK_TYPES: readonly string[] = GGUF_FILE_TYPES.filter((t) => !['q8_0', 'f16', 'f32'].includes(t));

// The F32 synthetic model requantized by llama.cpp's llama-quantize ($WEFT_LLAMA_QUANTIZE, default
// the build in ~/.cache/weft-llamacpp) to `type` (e.g. q4_k_m), cached beside it. Without
// llama-quantize, weft's own quantizer writes it (null for a type weft does not write), to a file
// named apart so the two never mix.
export async function blockGguf(name: string, config: Record<string, unknown>, type: string): Promise<string | null> {
  const src = await syntheticGguf(name, config, 'f32');
  const out = src.replace('-f32-seed0.gguf', `-${type}-seed0.gguf`);
  if (existsSync(out)) return out;
  const exe = process.env.WEFT_LLAMA_QUANTIZE ?? join(process.env.HOME ?? '/root', '.cache/weft-llamacpp/src/build/bin/llama-quantize');
  if (!existsSync(exe)) {
    if (!(GGUF_FILE_TYPES as readonly string[]).includes(type)) return null;
    const own = src.replace('-f32-seed0.gguf', `-${type}-weft-seed0.gguf`);
    if (!existsSync(own)) {
      process.stderr.write(`llama-quantize not found: weft quantize ${src} → ${type} …\n`);
      await quantizeToGguf(src, `${own}.tmp`, type as GgufFileType);
      renameSync(`${own}.tmp`, own);
    }
    return own;
  }
  process.stderr.write(`llama-quantize ${src} → ${type.toUpperCase()} …\n`);
  const r = spawnSync(exe, [src, `${out}.tmp`, type.toUpperCase()], { stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`llama-quantize ${type} failed: ${r.stderr.split('\n').slice(-4).join('\n')}`);
  renameSync(`${out}.tmp`, out);
  return out;
}

// Memory read bandwidth in bytes/s of `threads` threads reading at once, each a memcmp
// (Buffer.compare) of its own two equal 128 MiB buffers; best of 5 rounds, each round's bytes over
// its slowest thread's time. The ceiling that a decode step on as many threads, streaming its
// weights, is measured against (one core alone cannot draw the whole DRAM bandwidth).
export async function readBandwidth(threads = 1): Promise<number> {
  const n = 128 << 20,
    rounds = 5;
  const go = new Int32Array(new SharedArrayBuffer(4));
  const src = `
    const { parentPort, workerData } = require('node:worker_threads');
    const go = new Int32Array(workerData.sab);
    const a = new Uint8Array(workerData.n).fill(1), b = new Uint8Array(workerData.n).fill(1);
    for (let r = 0; r < workerData.rounds; r++) {
      parentPort.postMessage('ready');
      Atomics.wait(go, 0, r);
      const t0 = performance.now();
      if (Buffer.compare(a, b) !== 0) throw new Error('bandwidth probe: buffers differ');
      parentPort.postMessage(performance.now() - t0);
    }`;
  const workers = Array.from({ length: threads }, () => new Worker(src, { eval: true, workerData: { n, sab: go.buffer, rounds } }));
  // Each worker's messages in order, awaited one at a time.
  const queues = workers.map((w) => {
    const items: unknown[] = [];
    const waiting: ((v: unknown) => void)[] = [];
    w.on('message', (m) => (waiting.length ? waiting.shift()!(m) : items.push(m)));
    w.on('error', (e) => (waiting.length ? waiting.shift()!(e) : items.push(e)));
    return () => (items.length ? Promise.resolve(items.shift()) : new Promise<unknown>((res) => waiting.push(res)));
  });
  const next = async () => {
    const got = await Promise.all(queues.map((q) => q()));
    const err = got.find((m) => m instanceof Error);
    if (err) throw err;
    return got;
  };
  let best = 0;
  try {
    for (let r = 0; r < rounds; r++) {
      await next(); // every worker has its buffers and waits
      Atomics.store(go, 0, r + 1);
      Atomics.notify(go, 0);
      const ms = (await next()) as number[];
      best = Math.max(best, (2 * n * threads) / (Math.max(...ms) / 1000));
    }
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return best;
}

// Decode tokens/s at batch B: B sequences prefilled with P-token prompts (untimed, in groups of
// `prefillGroup`), then D timed decode steps of B tokens.
// split, when given, receives the engine's own device times per decode step (CUDA events around
// the forward pass and around sampling), medians over the timed steps.
export function timeDecode(
  e: EngineInstance,
  batch: number,
  promptTokens: number,
  decodeTokens: number,
  prefillGroup = 8,
  split?: { forwardUs: number; sampleUs: number },
): number {
  const bs = e.blockSize;
  const blocksPer = Math.ceil((promptTokens + decodeTokens + 1) / bs);
  const seqs: SeqStep[] = Array.from({ length: batch }, (_, i) => ({
    seqId: i,
    tokens: Array.from({ length: promptTokens }, (_, j) => 3 + ((i * 131 + j * 7) % 30000)),
    startPos: 0,
    promptLen: promptTokens,
    blockTable: Array.from({ length: blocksPer }, (_, b) => i * blocksPer + b),
    doSample: true,
    sampling: GREEDY,
  }));
  for (let i = 0; i < batch; i += prefillGroup) {
    // prefill in groups so one step stays a sane size
    const out = e.step(packStep(seqs.slice(i, i + prefillGroup), bs));
    seqs.slice(i, i + prefillGroup).forEach((s, j) => {
      s.startPos = promptTokens;
      s.tokens = [out.sampled[j]];
    });
  }
  const fwd: number[] = [],
    smp: number[] = [];
  const t0 = performance.now();
  for (let d = 0; d < decodeTokens; d++) {
    const out = e.step(packStep(seqs, bs));
    fwd.push(out.forwardUs);
    smp.push(out.sampleUs);
    seqs.forEach((s, j) => {
      s.startPos++;
      s.tokens = [out.sampled[j]];
    });
  }
  const seconds = (performance.now() - t0) / 1000;
  e.step(packStep([], bs, { release: seqs.map((s) => s.seqId) }));
  if (split) Object.assign(split, { forwardUs: median(fwd), sampleUs: median(smp) });
  return (batch * decodeTokens) / seconds;
}

// Prefill tokens/s: n prompts of P tokens in one step.
// scoreTop >= 0: every prompt row is scored too (its next token's log-prob and the scoreTop
// likeliest, as echo with logprobs and prompt_logprobs ask), through the LM head and a log-softmax.
export function timePrefill(e: EngineInstance, promptTokens: number, n = 4, scoreTop = -1): number {
  const bs = e.blockSize,
    blocksPer = Math.ceil(promptTokens / bs);
  const seqs: SeqStep[] = Array.from({ length: n }, (_, i) => ({
    seqId: 1000 + i,
    tokens: Array.from({ length: promptTokens }, (_, j) => 3 + ((i * 17 + j * 11) % 30000)),
    startPos: 0,
    promptLen: promptTokens,
    blockTable: Array.from({ length: blocksPer }, (_, b) => i * blocksPer + b),
    doSample: true,
    sampling: GREEDY,
  }));
  const score =
    scoreTop < 0 ? {} : { score: { targets: Int32Array.from(seqs.flatMap((q) => [...Array.from(q.tokens).slice(1), -1])), topN: scoreTop } };
  const t0 = performance.now();
  e.step(packStep(seqs, bs, score));
  const seconds = (performance.now() - t0) / 1000;
  e.step(packStep([], bs, { release: seqs.map((s) => s.seqId) }));
  return (n * promptTokens) / seconds;
}
