#!/usr/bin/env node
// llama.cpp reference benchmark (through node-llama-cpp's prebuilt CPU binary).
//
// Prints ONE JSON line on stdout; everything else goes to stderr.
//
//   node bench/llamacpp/run.mjs --model FILE.gguf [--threads 2|1,2] [--batches 1,16,64]
//        [--decode-tokens 64] [--prompt-tokens 128] [--ctx CELLS_PER_SEQ] [--repeat N]
//        [--flash-attention auto|on|off|on,off] [--batch-size N] [--check-golden]
//
// Method (mirrors llama.cpp's llama-batched-bench): for each batch size B a
// context with B sequences is created; each sequence gets a deterministic
// prompt of P ordinary vocab tokens; all B prompts are prefilled together
// (prefill tok/s = B*P / time), then every sequence decodes D tokens greedily
// in lockstep so that each step is ONE llama_decode over B tokens
// (decode tok/s = B*D / time). A short warm-up round runs first and is not
// timed. The number of llama_decode calls is counted and reported, so the
// batching can be checked (decode "steps" must equal D).
import { getLlama, LlamaLogLevel } from 'node-llama-cpp';
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import os from 'node:os';

const log = (...a) => process.stderr.write(a.join(' ') + '\n');

function fail(msg) {
  log(`run.mjs: ${msg}`);
  process.exit(2);
}

// Another llama.cpp build on LD_LIBRARY_PATH is loaded in place of node-llama-cpp's own libraries
// (the search path comes before the addon's RUNPATH): a mismatched ABI, a corrupted heap.
for (const d of (process.env.LD_LIBRARY_PATH ?? '').split(':').filter(Boolean))
  if (existsSync(join(d, 'libllama.so')) || existsSync(join(d, 'libggml.so')))
    fail(`LD_LIBRARY_PATH holds another llama.cpp build (${d}): node-llama-cpp would load its libraries; unset it`);

const { values: opt } = parseArgs({
  options: {
    model: { type: 'string' },
    threads: { type: 'string', default: '2' },
    batches: { type: 'string', default: '1,16,64' },
    'decode-tokens': { type: 'string', default: '64' },
    'prompt-tokens': { type: 'string', default: '128' },
    ctx: { type: 'string' },
    'batch-size': { type: 'string' },
    'flash-attention': { type: 'string', default: 'auto' },
    'kv-type': { type: 'string', default: 'F16' },
    'warmup-tokens': { type: 'string', default: '4' },
    repeat: { type: 'string', default: '1' },
    'check-golden': { type: 'boolean', default: false },
    'golden-tokens': { type: 'string', default: '48' },
    verbose: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});

if (opt.help) {
  log('usage: node bench/llamacpp/run.mjs --model FILE.gguf [--threads 2|1,2] [--batches 1,16,64]\n' +
      '         [--decode-tokens 64] [--prompt-tokens 128] [--ctx CELLS_PER_SEQ (default P+D+1)] [--batch-size N]\n' +
      '         [--flash-attention auto|on|off|on,off] [--kv-type F16|Q8_0] [--repeat N] [--check-golden] [--golden-tokens 48]');
  process.exit(0);
}
if (!opt.model) fail('--model FILE.gguf is required');
if (!existsSync(opt.model)) fail(`model file not found: ${opt.model}`);

const int = (name, v, min = 1) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer >= ${min} (got ${v})`);
  return n;
};
// --threads N, or a list (e.g. 1,2): each count is measured and every row
// keeps the fastest (see README: 2 threads can be much slower than 1).
const threadList = opt.threads.split(',').map((x) => int('threads', x.trim()));
const threads = Math.max(...threadList);
const batches = opt.batches.split(',').map((s) => int('batches', s.trim()));
const D = int('decode-tokens', opt['decode-tokens']);
const P = int('prompt-tokens', opt['prompt-tokens']);
// KV cells per sequence. Default: just enough (P + D + 1), like sizing
// llama-batched-bench's -c to the test; llama.cpp pads the attended KV to a
// multiple of 256 anyway, and a larger value made flash attention slower.
const ctxPerSeq = opt.ctx === undefined ? P + D + 1 : int('ctx', opt.ctx);
const warmupTokens = int('warmup-tokens', opt['warmup-tokens']);
const goldenTokens = int('golden-tokens', opt['golden-tokens']);
const repeat = int('repeat', opt.repeat);
// --flash-attention auto|on|off, or a list (on,off) to measure each.
const faNames = opt['flash-attention'].split(',').map((x) => x.trim());
const faValue = (name) => {
  const v = { auto: 'auto', on: true, off: false }[name];
  if (v === undefined) fail('--flash-attention must be auto, on or off (or a list of them)');
  return v;
};
faNames.forEach(faValue);
// Every (threads, flash attention) combination is measured; with more than
// one, each result row keeps the fastest decode and the fastest prefill.
const configs = threadList.flatMap((t) => faNames.map((fa) => ({ threads: t, fa })));

// node-llama-cpp's "exports" hides package.json: walk up from its entry point.
function nlcVersionOf() {
  let dir = dirname(fileURLToPath(import.meta.resolve('node-llama-cpp')));
  for (;;) {
    const p = join(dir, 'package.json');
    if (existsSync(p)) {
      const pkg = JSON.parse(readFileSync(p, 'utf8'));
      if (pkg.name === 'node-llama-cpp') return pkg.version;
    }
    const up = dirname(dir);
    if (up === dir) return 'unknown';
    dir = up;
  }
}
const nlcVersion = nlcVersionOf();

const llama = await getLlama({
  gpu: false,
  build: 'never',
  maxThreads: threads,
  logLevel: opt.verbose ? LlamaLogLevel.info : LlamaLogLevel.warn,
  logger: (level, message) => process.stderr.write(`[llama.cpp ${level}] ${message}\n`),
});
const model = await llama.loadModel({ modelPath: opt.model, gpuLayers: 0 });
const version = `node-llama-cpp ${nlcVersion}, llama.cpp ${llama.llamaCppRelease.release}`;
log(`${version}; model ${opt.model} (${model.typeDescription}); cpuMathCores=${llama.cpuMathCores}; threads=${threadList.join(',')}`);

// Counts llama_decode calls (node-llama-cpp's native decodeBatch) on a context.
// Internal field, used only to verify that batching happens.
function countDecodes(context) {
  const native = context._ctx;
  const counter = { calls: 0, tokens: 0, ns: 0n };
  if (!native || typeof native.decodeBatch !== 'function' || typeof native.initBatch !== 'function') {
    counter.calls = counter.tokens = NaN;
    return counter;
  }
  const initBatch = native.initBatch.bind(native);
  const decodeBatch = native.decodeBatch.bind(native);
  // N-API methods are non-writable on the prototype; shadow them on the instance.
  const shadow = (name, value) => Object.defineProperty(native, name, { value, configurable: true, writable: true });
  shadow('initBatch', (n) => { counter.tokens += n; return initBatch(n); });
  shadow('decodeBatch', async (...a) => {
    counter.calls++;
    const t0 = process.hrtime.bigint();
    try { return await decodeBatch(...a); } finally { counter.ns += process.hrtime.bigint() - t0; }
  });
  return counter;
}

async function makeContext(sequences, tokensPerSeq, batchSize, nThreads = threads, fa = faNames[0]) {
  // node-llama-cpp's contextSize is PER SEQUENCE: it creates the llama.cpp
  // context with n_ctx = contextSize * sequences (kv_unified = false, one KV
  // stream per sequence).
  const context = await model.createContext({
    sequences,
    contextSize: tokensPerSeq,
    batchSize,
    flashAttention: faValue(fa),
    // the KV cache's type, keys and values alike (llama.cpp's -ctk / -ctv)
    experimentalKvCacheKeyType: opt['kv-type'],
    experimentalKvCacheValueType: opt['kv-type'],
    threads: { ideal: nThreads, min: nThreads },
    ignoreMemorySafetyChecks: true,
    failedCreationRemedy: false,
  });
  const seqs = [];
  for (let i = 0; i < sequences; i++) seqs.push(context.getSequence({ contextShift: { size: 1 } }));
  return { context, seqs };
}

if (opt['check-golden']) {
  const bos = model.tokens.bos;
  if (bos == null) fail('model has no BOS token');
  const { context, seqs } = await makeContext(1, Math.max(opt.ctx === undefined ? 0 : ctxPerSeq, goldenTokens + 1), undefined);
  const ids = [bos];
  // Default evaluate options: temperature 0 = greedy argmax, no penalties.
  const gen = seqs[0].evaluate([bos]);
  for (let i = 0; i < goldenTokens; i++) {
    const { value, done } = await gen.next();
    if (done) break;
    ids.push(value);
  }
  await gen.return();
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  process.stdout.write(JSON.stringify({ engine: 'llama.cpp', version, ids }) + '\n');
  process.exit(0);
}

// Ordinary vocab tokens (no control/byte/unused ones) to build prompts from.
const normalTokens = [];
for (const t of model.iterateAllTokens()) {
  if (model.isSpecialToken(t)) continue;
  const a = model.getTokenAttributes(t);
  if (a.normal && !a.byte && !a.control && !a.unused && !a.unknown) normalTokens.push(t);
}
if (normalTokens.length === 0) fail('no normal tokens found in the vocab');
const promptFor = (seq, n, salt = 0) => {
  const out = [];
  for (let i = 0; i < n; i++) out.push(normalTokens[(seq * 131 + salt * 17 + i * 7) % normalTokens.length]);
  return out;
};

// Prefill B prompts of nPrompt tokens and decode nDecode tokens in lockstep.
async function round(seqs, counter, nPrompt, nDecode, salt) {
  const gens = seqs.map((s, i) => s.evaluate(promptFor(i, nPrompt, salt)));
  const next = async () => {
    const r = await Promise.all(gens.map((g) => g.next()));
    if (r.some((x) => x.done)) throw new Error('generator ended early');
  };
  const c0 = counter.calls;
  const t0 = process.hrtime.bigint();
  await next(); // evaluates the prompts, samples each sequence's first token
  const t1 = process.hrtime.bigint();
  const c1 = counter.calls;
  const tok1 = counter.tokens;
  const ns1 = counter.ns;
  for (let i = 0; i < nDecode; i++) await next(); // each: B tokens in, B tokens sampled
  const t2 = process.hrtime.bigint();
  const c2 = counter.calls;
  const decodedTokens = counter.tokens - tok1;
  const llamaDecodeSec = Number(counter.ns - ns1) / 1e9;
  await Promise.all(gens.map((g) => g.return()));
  return {
    prefillSec: Number(t1 - t0) / 1e9,
    decodeSec: Number(t2 - t1) / 1e9,
    prefillCalls: c1 - c0,
    decodeCalls: c2 - c1,
    decodedTokens,
    llamaDecodeSec,
  };
}

if (ctxPerSeq < P + D + 1) fail(`--ctx ${ctxPerSeq} is too small for --prompt-tokens ${P} + --decode-tokens ${D} (+1)`);
// How busy the machine is right before measuring (this process is idle then).
async function cpuBusyPercent(ms = 1000) {
  const sum = () => os.cpus().reduce((acc, c) => {
    const t = c.times;
    acc.total += t.user + t.nice + t.sys + t.idle + t.irq;
    acc.idle += t.idle;
    return acc;
  }, { total: 0, idle: 0 });
  const a = sum();
  await new Promise((r) => setTimeout(r, ms));
  const b = sum();
  const total = b.total - a.total;
  return total > 0 ? +(100 * (1 - (b.idle - a.idle) / total)).toFixed(1) : 0;
}
const busyBefore = await cpuBusyPercent();
log(`CPU busy before the run: ${busyBefore}% of ${os.cpus().length} CPUs; load average ${os.loadavg()[0].toFixed(2)}` +
    (busyBefore > 10 ? ' -- WARNING: other processes are using the CPU; llama.cpp (2 threads especially) is very sensitive to that' : ''));
async function measure(B, { threads: nThreads, fa }) {
  // llama-batched-bench uses n_ubatch 512; node-llama-cpp sets n_ubatch = n_batch.
  const batchSize = opt['batch-size'] ? int('batch-size', opt['batch-size']) : Math.max(512, B);
  if (batchSize < B) fail(`--batch-size ${batchSize} < batch ${B}: decode steps could not be one llama_decode`);
  const { context, seqs } = await makeContext(B, ctxPerSeq, batchSize, nThreads, fa);
  const counter = countDecodes(context);
  const tag = `batch ${B} threads ${nThreads}${faNames.length > 1 ? ` fa ${fa}` : ''}`;
  log(`${tag}: contextSize=${context.contextSize}/seq batchSize=${context.batchSize} ` +
      `idealThreads=${context.idealThreads} flashAttention=${context.flashAttention}`);

  // Warm-up (not timed), then reset the KV cache.
  await round(seqs, counter, Math.min(P, 16), warmupTokens, 1);
  await Promise.all(seqs.map((s) => s.clearHistory()));

  // Timed rounds; with --repeat N the fastest prefill and the fastest decode
  // are kept (best-of-N filters out other processes' interference).
  const runs = [];
  for (let rep = 0; rep < repeat; rep++) {
    const r = await round(seqs, counter, P, D, 0);
    await Promise.all(seqs.map((s) => s.clearHistory()));
    runs.push(r);
    log(`${tag}${repeat > 1 ? ` run ${rep + 1}/${repeat}` : ''}: prefill ${(B * P / r.prefillSec).toFixed(1)} tok/s ` +
        `(${r.prefillCalls} llama_decode), decode ${(B * D / r.decodeSec).toFixed(1)} tok/s ` +
        `(${r.decodeCalls} llama_decode for ${D} steps, ${r.decodedTokens} tokens, ` +
        `${(r.decodeSec * 1000 / D).toFixed(3)} ms/step; inside llama_decode: ${(B * D / r.llamaDecodeSec).toFixed(1)} tok/s)`);
    if (Number.isFinite(r.decodeCalls) && (r.decodeCalls !== D || r.decodedTokens !== B * D)) {
      log(`WARNING: ${tag}: expected ${D} llama_decode calls of ${B} tokens, got ${r.decodeCalls} calls / ${r.decodedTokens} tokens`);
    }
  }
  await context.dispose();
  const bestPrefill = runs.reduce((a, b) => (b.prefillSec < a.prefillSec ? b : a));
  const bestDecode = runs.reduce((a, b) => (b.decodeSec < a.decodeSec ? b : a));
  return {
    batch: B,
    threads: nThreads,
    flashAttention: fa,
    decodeTokensPerSec: +(B * D / bestDecode.decodeSec).toFixed(1),
    prefillTokensPerSec: +(B * P / bestPrefill.prefillSec).toFixed(1),
    // llama_decode calls in the decode phase: D when the B sequences are batched.
    steps: bestDecode.decodeCalls,
    // Time inside llama_decode only (no sampling / JS), the closest to what
    // llama-batched-bench measures.
    llamaDecodeTokensPerSec: +(B * D / bestDecode.llamaDecodeSec).toFixed(1),
    decodeMsPerStep: +(bestDecode.decodeSec * 1000 / D).toFixed(3),
    prefillCalls: bestPrefill.prefillCalls,
    runs: repeat,
  };
}

const results = [];
for (const B of batches) {
  const rows = [];
  for (const c of configs) rows.push(await measure(B, c));
  if (rows.length === 1) { results.push(rows[0]); continue; }
  // Decode figures from the fastest decode, prefill from the fastest prefill;
  // every configuration under "configs".
  const dec = rows.reduce((a, b) => (b.decodeTokensPerSec > a.decodeTokensPerSec ? b : a));
  const pre = rows.reduce((a, b) => (b.prefillTokensPerSec > a.prefillTokensPerSec ? b : a));
  results.push({
    ...dec,
    prefillTokensPerSec: pre.prefillTokensPerSec,
    prefillCalls: pre.prefillCalls,
    prefillThreads: pre.threads,
    prefillFlashAttention: pre.flashAttention,
    configs: rows.map(({ threads: t, flashAttention: f, decodeTokensPerSec, prefillTokensPerSec, llamaDecodeTokensPerSec, decodeMsPerStep, steps }) =>
      ({ threads: t, flashAttention: f, decodeTokensPerSec, prefillTokensPerSec, llamaDecodeTokensPerSec, decodeMsPerStep, steps })),
  });
  log(`batch ${B}: best decode ${dec.decodeTokensPerSec} tok/s (threads ${dec.threads}, fa ${dec.flashAttention}), ` +
      `best prefill ${pre.prefillTokensPerSec} tok/s (threads ${pre.threads}, fa ${pre.flashAttention})`);
}

await model.dispose();
await llama.dispose();
process.stdout.write(JSON.stringify({
  engine: 'llama.cpp',
  version,
  threads: threadList.length === 1 ? threadList[0] : threadList,
  model: opt.model,
  promptTokens: P,
  decodeTokens: D,
  ctxPerSequence: ctxPerSeq,
  flashAttention: faNames.length === 1 ? faNames[0] : faNames,
  cpuBusyBeforePercent: busyBefore,
  loadAverage: +os.loadavg()[0].toFixed(2),
  results,
}) + '\n');
