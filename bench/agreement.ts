// npm run bench:agreement — weft's greedy ids against llama.cpp's (node-llama-cpp, as
// bench/llamacpp/run.mjs runs it) on the very same GGUF files: the synthetic 110M-shape model
// requantized by llama-quantize to each llama.cpp type, loaded by weft with --dtype auto (the
// file's block types kept). Prints, per type and prompt, how many of the first 32 positions
// agree, and exits 1 when one is under 28. On random weights the logits are flat and a different
// rounding order alone can change a greedy choice, after which every later position may differ;
// so it also prints the teacher-forced count (each choice made on llama.cpp's own context), the
// log-prob difference on the same context, and all three for llama.cpp against itself with flash
// attention off (node-llama-cpp's default, "auto", turns it on for the CPU): the noise floor; and
// weft against that second llama.cpp, to show which of llama.cpp's two paths weft is nearer to.
//
//   npm run bench:agreement -- [--shape 110m] [--types q4_k_m,q5_k_m,q6_k,q4_0,q5_0] [--tokens 32] [--prompts 3]

import { resolveDtype } from '../src/config.js';
import { loadModelSpec } from '../src/model/load.js';
import { checkpointKind } from '../src/model/types.js';
import { runOffline } from '../src/offline.js';
import { EngineInstance } from '../src/workers/engine-instance.js';
import { benchArgs } from './args.js';
import { SHAPES } from './shapes.js';
import { loadLlama, type NlcLlama } from './nlc.js';
import { blockGguf, median } from './timing.js';

const FIXED_PROMPTS = [
  [1, 450, 4996, 17354, 1701, 432],
  [1, 9038, 2501, 263, 931],
  [1, 29871, 13, 1576, 338, 263, 1243],
];

// The three fixed prompts, then seeded random ones (BOS and 4 to 7 ids past the specials), so a
// count of misses can rest on more cases than three a type.
function promptSet(n: number, vocab: number): number[][] {
  let s = 12345;
  const next = () => (s = (Math.imul(s, 1103515245) + 12345) >>> 0);
  return Array.from({ length: n }, (_, k) =>
    k < FIXED_PROMPTS.length ? FIXED_PROMPTS[k] : [1, ...Array.from({ length: 4 + (k % 4) }, () => 3 + (next() % (vocab - 3)))],
  );
}

// One sequence, one thread, as bench/llamacpp runs llama.cpp for a single stream.
const contextOptions = (flashAttention: 'auto' | boolean) => ({
  contextSize: 128,
  sequences: 1,
  threads: { ideal: 1, min: 1 },
  ignoreMemorySafetyChecks: true,
  flashAttention,
});

// Greedy ids per prompt; with `forced`, teacher-forced: after its k-th choice the context goes on
// with forced[prompt][k] (node-llama-cpp evaluates a token given to next() instead of its own).
async function llamaCppIds(
  llama: NlcLlama,
  file: string,
  prompts: number[][],
  tokens: number,
  flashAttention: 'auto' | boolean,
  forced?: number[][],
): Promise<number[][]> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const out: number[][] = [];
  for (const [p, prompt] of prompts.entries()) {
    const ctx = await model.createContext(contextOptions(flashAttention));
    const gen = ctx.getSequence().evaluate(prompt); // temperature 0: greedy argmax
    const ids: number[] = [];
    for (let i = 0; i < tokens; i++) {
      const { value, done } = await (i > 0 && forced ? gen.next(forced[p][i - 1]) : gen.next());
      if (done) break;
      ids.push(value);
    }
    await gen.return(undefined);
    await ctx.dispose();
    out.push(ids);
  }
  await model.dispose();
  return out;
}

// llama.cpp's next-token log-probs after each prompt: the position where the engines are compared
// on the very same context, before any choice of theirs can part them.
async function llamaCppFirstLogprobs(
  llama: NlcLlama,
  file: string,
  prompts: number[][],
  flashAttention: 'auto' | boolean,
): Promise<Map<number, number>[]> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const out: Map<number, number>[] = [];
  for (const prompt of prompts) {
    const ctx = await model.createContext(contextOptions(flashAttention));
    const gen = ctx.getSequence().evaluateWithMetadata(prompt, { probabilities: true });
    const { value } = await gen.next();
    if (value) out.push(new Map([...value.probabilities].map(([id, p]) => [id, Math.log(p)])));
    await gen.return(undefined);
    await ctx.dispose();
  }
  await model.dispose();
  return out;
}

// The largest log-prob difference over the reference's 20 likeliest tokens.
function maxDeviation(ref: Map<number, number>, other: (id: number) => number): number {
  const top = [...ref].sort((a, b) => b[1] - a[1]).slice(0, 20);
  return Math.max(...top.map(([id, lp]) => Math.abs(other(id) - lp)));
}

function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity,
    sum = 0;
  for (const v of logits) max = Math.max(max, v);
  for (const v of logits) sum += Math.exp(v - max);
  const z = max + Math.log(sum);
  return Float64Array.from(logits, (v) => v - z);
}

function topGap(logits: Float32Array): number {
  let a = -Infinity,
    b = -Infinity;
  for (const v of logits) {
    if (v > a) [a, b] = [v, a];
    else if (v > b) b = v;
  }
  return a - b;
}

async function main(): Promise<void> {
  const { values } = benchArgs('npm run bench:agreement --', {
    shape: { type: 'string', default: '110m' },
    types: { type: 'string', default: 'q4_k_m,q5_k_m,q6_k,q4_0,q5_0' },
    tokens: { type: 'string', default: '32' },
    threads: { type: 'string', default: '2' },
    prompts: { type: 'string', default: '3' },
  });
  const tokens = Number(values.tokens),
    need = Math.ceil((tokens * 28) / 32);
  const prompts = promptSet(Number(values.prompts), Number(SHAPES[values.shape!].vocab_size));
  // every case's figures, for the summary: free counts of the three pairs, forced counts, devs
  const all = { weft: [] as number[], weftNoFa: [] as number[], noFa: [] as number[], forced: [] as number[], forcedNoFa: [] as number[] };
  const devs = { weft: [] as number[], noFa: [] as number[] };
  // the last n cases' free counts under the bound: weft vs llama.cpp, vs llama.cpp without flash attention, llama.cpp vs itself
  const under = (xs: number[], n: number) => xs.slice(-n).filter((x) => x < need).length;
  const underAll = (n: number) =>
    `weft vs llama.cpp ${under(all.weft, n)}, weft vs llama.cpp without flash attention ${under(all.weftNoFa, n)}, ` +
    `llama.cpp without vs with ${under(all.noFa, n)}`;
  const byType: string[] = [];
  const llama = await loadLlama();
  process.stdout.write(
    `against llama.cpp (flash attention auto): free = greedy ids equal, forced = teacher-forced, dev = max |log-prob|\n` +
      `difference at the first position over llama.cpp's top 20; then llama.cpp without flash attention against\n` +
      `llama.cpp with it (free, forced, dev), and weft against llama.cpp without it (free, dev)\n` +
      `${'model'.padEnd(12)} ${'weft'.padEnd(6)} prompt  ${'free'.padEnd(11)} ${'forced'.padEnd(8)} ${'dev'.padEnd(8)} ` +
      `${'free'.padEnd(11)} ${'forced'.padEnd(8)} ${'dev'.padEnd(8)} ${'free'.padEnd(6)} dev\n`,
  );
  for (const type of values.types!.split(',')) {
    const file = await blockGguf(values.shape!, SHAPES[values.shape!], type);
    if (!file) throw new Error(`${type}: neither llama-quantize (set WEFT_LLAMA_QUANTIZE) nor weft's quantizer writes this type`);
    const dtype = resolveDtype('auto', 'cpu', checkpointKind(await loadModelSpec(file)));
    const theirs = await llamaCppIds(llama, file, prompts, tokens, 'auto');
    const theirsNoFa = await llamaCppIds(llama, file, prompts, tokens, false);
    const theirsNoFaForced = await llamaCppIds(llama, file, prompts, tokens, false, theirs);
    const firstLp = await llamaCppFirstLogprobs(llama, file, prompts, 'auto');
    const firstLpNoFa = await llamaCppFirstLogprobs(llama, file, prompts, false);
    const e = await EngineInstance.open({ modelPath: file, dtype, numThreads: Number(values.threads), numKvBlocks: 64, blockSize: 16 });
    const runs = prompts.map((p) => runOffline(e, [{ promptIds: p, maxTokens: tokens, ignoreEos: true }], { returnLogits: true })[0]);
    const ours = runs.map((r) => r.outputIds);
    // Teacher-forced: each engine's choice at position j on llama.cpp's own first j ids, so a single
    // near-tie costs one position instead of every later one (llama-perplexity's "same top" rate).
    const oursForced = runOffline(
      e,
      prompts.map((p, i) => ({ promptIds: p, maxTokens: tokens, ignoreEos: true, forcedIds: theirs[i] })),
    ).map((r) => r.outputIds);
    e.close();
    const same = (a: number[], b: number[]): number => a.filter((id, j) => id === b[j]).length;
    prompts.forEach((_, i) => {
      const agree = same(ours[i], theirs[i]);
      const lp = logSoftmax(runs[i].logits[0]);
      const dev = maxDeviation(firstLp[i], (id) => lp[id]),
        devNoFa = maxDeviation(firstLp[i], (id) => firstLpNoFa[i].get(id) ?? -Infinity);
      all.weft.push(agree);
      all.weftNoFa.push(same(ours[i], theirsNoFa[i]));
      all.noFa.push(same(theirsNoFa[i], theirs[i]));
      all.forced.push(same(oursForced[i], theirs[i]));
      all.forcedNoFa.push(same(theirsNoFaForced[i], theirs[i]));
      devs.weft.push(dev);
      devs.noFa.push(devNoFa);
      // Random weights give flat logits: where the two first part, weft's top-2 gap says whether it was a near-tie.
      const first = ours[i].findIndex((id, j) => id !== theirs[i][j]);
      const where = first < 0 ? '' : `  first differs at ${first}, weft's top-2 gap there ${topGap(runs[i].logits[first]).toFixed(5)}`;
      const row = [
        `${values.shape} ${type}`.padEnd(12),
        dtype.padEnd(6),
        String(i).padEnd(7),
        `${agree}/${tokens}${agree >= need ? '' : ' BELOW'}`.padEnd(11),
        `${all.forced.at(-1)}/${tokens}`.padEnd(8),
        dev.toFixed(4).padEnd(8),
        `${all.noFa.at(-1)}/${tokens}`.padEnd(11),
        `${all.forcedNoFa.at(-1)}/${tokens}`.padEnd(8),
        devNoFa.toFixed(4).padEnd(8),
        `${all.weftNoFa.at(-1)}/${tokens}`.padEnd(6),
        maxDeviation(firstLpNoFa[i], (id) => lp[id]).toFixed(4),
      ];
      process.stdout.write(`${row.join(' ')}${where}\n`);
    });
    byType.push(`  ${type.padEnd(8)} ${underAll(prompts.length)}`);
  }
  await llama.dispose();
  process.stdout.write(`free under ${need}/${tokens}, per type (of ${prompts.length} prompts):\n${byType.join('\n')}\n`);
  process.stdout.write(
    `${all.weft.length} cases, free under ${need}/${tokens}: ${underAll(all.weft.length)}\n` +
      `forced, lowest: weft ${Math.min(...all.forced)}/${tokens}, llama.cpp without flash attention ${Math.min(...all.forcedNoFa)}/${tokens}; ` +
      `dev, median: weft ${median(devs.weft).toFixed(4)}, llama.cpp without flash attention ${median(devs.noFa).toFixed(4)}\n`,
  );
  process.exit(under(all.weft, all.weft.length) === 0 ? 0 : 1); // 1: some case under the bound
}

await main();
