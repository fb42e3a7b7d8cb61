// npm run bench:structured — what structured output costs.
//
//   npm run bench:structured -- [--tokenizer DIR] [--mask-tokens 2000] [--shape 110m] [--batch 64]
//                               [--decode-tokens 32] [--threads 2] [--backend cpu|gpu] [--reps 3] [--json FILE]
//
// 1. Grammar engine alone, on a real tokenizer (default: the SmolLM2 one in ../shared, 49,152
//    tokens): the vocabulary's preparation, the compile time of a 50-property JSON Schema (cold,
//    then from the cache), the route-side check of it, and the time of one next-token mask and one
//    accepted token (p50, p99) over seeded random walks through several constraints.
// 2. The engine at batch B on a synthetic shape (Q8_0 GGUF, its own 32,000-token vocabulary): decode
//    tokens/s with every sequence under the 50-property JSON Schema against none, through the
//    scheduler, the engine loop and the worker (where masks are computed), sampled at temperature 1.
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

import { loadTokenizerFiles } from '../src/model/load.js';
import { EngineLoop, type StepTiming } from '../src/scheduler/engine.js';
import type { ConstraintSpec, TokenMatcher } from '../src/structured/types.js';
import { ConstraintValidator } from '../src/structured/validate.js';
import { grammarVocabFromJson } from '../src/structured/vocab.js';
import { XgrammarCompiler } from '../src/structured/xgrammar.js';
import { findInPackage } from '../src/package-path.js';
import { EngineWorker } from '../src/workers/pool.js';
import { benchArgs } from './args.js';
import { mulberry32 } from './random.js';
import { SHAPES } from './shapes.js';
import { median, syntheticGguf } from './timing.js';

const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];

// 50 properties of mixed kinds, all required.
export function fiftyPropertySchema(): object {
  const kinds = [
    { type: 'string', maxLength: 24 },
    { type: 'integer', minimum: 0, maximum: 10000 },
    { type: 'boolean' },
    { enum: ['low', 'medium', 'high'] },
    { type: 'array', items: { type: 'integer' }, maxItems: 4 },
  ];
  const properties = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`field_${i}`, kinds[i % kinds.length]]));
  return { type: 'object', properties, required: Object.keys(properties), additionalProperties: false };
}

const SPECS: [string, ConstraintSpec][] = [
  ['json_schema (50 properties)', { type: 'json_schema', schema: JSON.stringify(fiftyPropertySchema()) }],
  ['json_object', { type: 'json_object' }],
  ['regex', { type: 'regex', pattern: '([A-Z][a-z]{1,12} ){3,8}[0-9]{2,4}' }],
  ['grammar (arithmetic)', { type: 'grammar', grammar: 'root ::= expr\nexpr ::= term ((" + " | " - ") term)*\nterm ::= [0-9]{1,4} | "(" expr ")"' }],
];

// Times fill + accept along a random walk (restarting when only stop tokens remain).
async function timeMasks(c: XgrammarCompiler, spec: ConstraintSpec, vocabSize: number, stop: Set<number>, numTokens: number) {
  const fill: number[] = [],
    accept: number[] = [];
  const mask = new Uint32Array(Math.ceil(vocabSize / 32));
  const rand = mulberry32(1);
  let m: TokenMatcher = await c.matcher(spec);
  while (fill.length < numTokens) {
    let t0 = performance.now();
    m.fillNextTokenMask(mask);
    fill.push(performance.now() - t0);
    const allowed: number[] = [];
    for (let w = 0; w < mask.length; w++)
      for (let bits = mask[w]; bits !== 0; bits &= bits - 1) {
        const t = w * 32 + 31 - Math.clz32(bits & -bits);
        if (!stop.has(t)) allowed.push(t);
      }
    if (allowed.length === 0) {
      m.dispose();
      m = await c.matcher(spec);
      continue;
    }
    t0 = performance.now();
    m.acceptToken(allowed[Math.floor(rand() * allowed.length)]);
    accept.push(performance.now() - t0);
  }
  m.dispose();
  return { fillP50: quantile(fill, 0.5), fillP99: quantile(fill, 0.99), acceptP50: quantile(accept, 0.5), acceptP99: quantile(accept, 0.99) };
}

async function grammarEngine(dir: string, numTokens: number) {
  const files = loadTokenizerFiles(dir);
  const vocabSize = files.config.vocabSize;
  const vocab = grammarVocabFromJson(files.tokenizerJson, files.config.eosTokenIds);
  let t0 = performance.now();
  const c = await XgrammarCompiler.create(vocab, vocabSize);
  const prepareMs = performance.now() - t0;
  const big = SPECS[0][1];
  t0 = performance.now();
  (await c.matcher(big)).dispose();
  const compileMs = performance.now() - t0;
  t0 = performance.now();
  (await c.matcher(big)).dispose();
  const cachedMs = performance.now() - t0;
  const validator = new ConstraintValidator();
  await validator.check({ type: 'json_object' }); // starts its thread
  t0 = performance.now();
  await validator.check(big);
  const checkMs = performance.now() - t0;
  await validator.close();
  const masks = [];
  for (const [name, spec] of SPECS) masks.push({ name, ...(await timeMasks(c, spec, vocabSize, new Set(vocab.stopTokenIds), numTokens)) });
  return { tokenizer: dir, vocabSize, prepareMs, compileMs, cachedMs, checkMs, masks };
}

interface DecodeRun {
  tokPerSec: number;
  packUs: number; // median per decode step: the worker's unpacking and packing, the token masks included
  nativeUs: number; // median per decode step: the engine's step
  otherUs: number; // median per decode step: the rest (scheduling, postprocessing, messaging between threads)
}

async function decodeRun(
  loop: EngineLoop,
  steps: (StepTiming & { at: number })[],
  batch: number,
  decodeTokens: number,
  constraint?: ConstraintSpec,
): Promise<DecodeRun> {
  const submit = (n: number, maxTokens: number) =>
    Promise.all(
      Array.from({ length: n }, (_, i) =>
        loop.submit({
          promptTokenIds: Array.from({ length: 32 }, (_, j) => 3 + ((i * 131 + j * 7) % 30000)),
          maxTokens,
          ignoreEos: true,
          sampling: { temperature: 1, topP: 1, topK: 0, seed: i + 1 },
          ...(constraint ? { constraint } : {}),
        }),
      ).map(async (h) => {
        for await (const _ of h.events) {
          /* drain */
        }
      }),
    );
  await submit(1, 4); // warm-up (and the grammar's compile, once)
  steps.length = 0;
  await submit(batch, decodeTokens + 1);
  const decode = steps.filter((s) => s.numSeqs === batch && s.numTokens === batch);
  const wall = decode[decode.length - 1].at - decode[0].at;
  return {
    tokPerSec: (batch * (decode.length - 1)) / (wall / 1000),
    packUs: median(decode.map((s) => s.packUs)),
    nativeUs: median(decode.map((s) => s.nativeUs)),
    otherUs: median(decode.map((s) => s.scheduleUs + s.transferUs)),
  };
}

async function engineDecode(o: { shape: string; batch: number; decodeTokens: number; threads: number; backend: 'cpu' | 'gpu'; reps: number }) {
  const modelPath = await syntheticGguf(o.shape, SHAPES[o.shape], 'q8_0');
  const worker = await EngineWorker.start(0, {
    modelPath,
    dtype: 'int8',
    numThreads: o.threads,
    numKvBlocks: o.batch * Math.ceil((32 + o.decodeTokens + 8) / 16) + 16,
    blockSize: 16,
    backend: o.backend,
    device: 0,
    kvCacheFraction: 0,
    maxNumTokens: 2048,
    maxNumSeqs: o.batch,
    maxContextLen: 512,
    cudaGraphs: true,
  });
  const steps: (StepTiming & { at: number })[] = [];
  const loop = new EngineLoop([worker], {
    scheduler: { maxNumSeqs: o.batch, maxNumBatchedTokens: 2048, maxModelLen: 512, enablePrefixCaching: false },
    eosTokenIds: [2],
    onStep: (s) => steps.push({ ...s, at: performance.now() }),
  });
  const free: DecodeRun[] = [],
    constrained: DecodeRun[] = [];
  for (let r = 0; r < o.reps; r++) {
    // interleaved, so drift hits both alike
    free.push(await decodeRun(loop, steps, o.batch, o.decodeTokens));
    constrained.push(await decodeRun(loop, steps, o.batch, o.decodeTokens, SPECS[0][1]));
  }
  await loop.close();
  await worker.close();
  const m = (rs: DecodeRun[], k: keyof DecodeRun) => median(rs.map((r) => r[k]));
  const a = m(free, 'tokPerSec'),
    b = m(constrained, 'tokPerSec');
  // On a loaded machine wall-clock throughput drifts; the step's own parts do not: the masks' cost
  // is the worker's extra packing time against the engine's step.
  const stepFree = m(free, 'nativeUs') + m(free, 'packUs'),
    maskUs = m(constrained, 'packUs') - m(free, 'packUs');
  return {
    shape: o.shape,
    backend: o.backend,
    batch: o.batch,
    unconstrainedTokPerSec: a,
    constrainedTokPerSec: b,
    ratio: b / a,
    nativeUs: m(free, 'nativeUs'),
    maskUsPerStep: maskUs,
    stepRatio: stepFree / (stepFree + maskUs),
    steps: {
      free: { nativeUs: m(free, 'nativeUs'), packUs: m(free, 'packUs'), otherUs: m(free, 'otherUs') },
      constrained: { nativeUs: m(constrained, 'nativeUs'), packUs: m(constrained, 'packUs'), otherUs: m(constrained, 'otherUs') },
    },
  };
}

async function main(): Promise<void> {
  const { values } = benchArgs('npm run bench:structured --', {
    tokenizer: { type: 'string', default: findInPackage(import.meta.url, '..', 'shared', 'models', 'smollm2-135m-shape') ?? '' },
    'mask-tokens': { type: 'string', default: '2000' },
    shape: { type: 'string', default: '110m' },
    batch: { type: 'string', default: '64' },
    'decode-tokens': { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
    backend: { type: 'string', default: 'cpu' },
    reps: { type: 'string', default: '3' },
    json: { type: 'string' },
    'skip-engine': { type: 'boolean', default: false },
  });
  const g = await grammarEngine(values.tokenizer!, Number(values['mask-tokens']));
  const ms = (x: number) => x.toFixed(3);
  console.log(`grammar engine on ${g.tokenizer} (${g.vocabSize} tokens)`);
  console.log(
    `  vocabulary prepared in ${g.prepareMs.toFixed(0)} ms; 50-property JSON Schema: compile ${g.compileMs.toFixed(0)} ms ` +
      `(cached: ${ms(g.cachedMs)} ms), route check ${g.checkMs.toFixed(1)} ms`,
  );
  console.log('  per token (ms)                  mask p50   mask p99   accept p50 accept p99');
  for (const m of g.masks) {
    const cols = [ms(m.fillP50).padStart(8), ms(m.fillP99).padStart(9), ms(m.acceptP50).padStart(9), ms(m.acceptP99).padStart(9)];
    console.log(`  ${m.name.padEnd(30)}  ${cols.join('  ')}`);
  }
  let e: Awaited<ReturnType<typeof engineDecode>> | null = null;
  if (!values['skip-engine']) {
    e = await engineDecode({
      shape: values.shape!,
      batch: Number(values.batch),
      decodeTokens: Number(values['decode-tokens']),
      threads: Number(values.threads),
      backend: values.backend as 'cpu' | 'gpu',
      reps: Number(values.reps),
    });
    console.log(
      `decode at batch ${e.batch}, ${e.shape} Q8_0 (${e.backend}): ${e.unconstrainedTokPerSec.toFixed(0)} tok/s unconstrained, ` +
        `${e.constrainedTokPerSec.toFixed(0)} tok/s with every sequence under the JSON Schema (${(100 * e.ratio).toFixed(1)}%)`,
    );
    console.log(
      `  per decode step (medians): engine ${(e.nativeUs / 1000).toFixed(2)} ms, ` +
        `masks of ${e.batch} sequences ${(e.maskUsPerStep / 1000).toFixed(2)} ms ` +
        `in the worker → ${(100 * e.stepRatio).toFixed(1)}% of unconstrained throughput`,
    );
    const part = (p: { nativeUs: number; packUs: number; otherUs: number }) =>
      `engine ${(p.nativeUs / 1000).toFixed(2)} ms, worker ${(p.packUs / 1000).toFixed(2)} ms, rest ${(p.otherUs / 1000).toFixed(2)} ms`;
    console.log(`  step parts (medians): unconstrained ${part(e.steps.free)}; constrained ${part(e.steps.constrained)}`);
  }
  if (values.json) writeFileSync(values.json, JSON.stringify({ grammar: g, decode: e }, null, 2));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
