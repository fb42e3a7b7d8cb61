// npm run bench:agreement — weft's greedy ids against llama.cpp's (node-llama-cpp, as
// bench/llamacpp/run.mjs runs it) on the very same GGUF files: the synthetic 110M-shape model
// requantized by llama-quantize to each llama.cpp type, loaded by weft with --dtype auto (the
// file's block types kept). Prints, per type and prompt, how many of the first 32 positions
// agree, and exits 1 when one is under 28. As a noise floor it also runs llama.cpp against itself
// with flash attention off (node-llama-cpp's default, "auto", turns it on for the CPU): on random
// weights the logits are flat, and a different rounding order alone can change a greedy choice.
//
//   npm run bench:agreement -- [--shape 110m] [--types q4_k_m,q5_k_m,q6_k,q4_0,q5_0] [--tokens 32]
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

import { resolveDtype } from '../src/config.js';
import { loadModelSpec } from '../src/model/load.js';
import { checkpointKind } from '../src/model/types.js';
import { runOffline } from '../src/offline.js';
import { EngineInstance } from '../src/workers/engine-instance.js';
import { SHAPES } from './shapes.js';
import { blockGguf } from './timing.js';

interface NlcLlama {
  loadModel(o: { modelPath: string; gpuLayers: number }): Promise<{
    createContext(
      o: Record<string, unknown>,
    ): Promise<{ getSequence(): { evaluate(t: number[]): AsyncGenerator<number> }; dispose(): Promise<void> }>;
    dispose(): Promise<void>;
  }>;
  dispose(): Promise<void>;
}

const PROMPTS = [
  [1, 450, 4996, 17354, 1701, 432],
  [1, 9038, 2501, 263, 931],
  [1, 29871, 13, 1576, 338, 263, 1243],
];

async function llamaCppIds(llama: NlcLlama, file: string, tokens: number, flashAttention: 'auto' | boolean): Promise<number[][]> {
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const out: number[][] = [];
  for (const prompt of PROMPTS) {
    const ctx = await model.createContext({
      contextSize: 128,
      sequences: 1,
      threads: { ideal: 1, min: 1 },
      ignoreMemorySafetyChecks: true,
      flashAttention,
    });
    const gen = ctx.getSequence().evaluate(prompt); // temperature 0: greedy argmax
    const ids: number[] = [];
    for (let i = 0; i < tokens; i++) {
      const { value, done } = await gen.next();
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
  const { values } = parseArgs({
    options: {
      shape: { type: 'string', default: '110m' },
      types: { type: 'string', default: 'q4_k_m,q5_k_m,q6_k,q4_0,q5_0' },
      tokens: { type: 'string', default: '32' },
      threads: { type: 'string', default: '2' },
    },
  });
  const tokens = Number(values.tokens),
    need = Math.ceil((tokens * 28) / 32);
  const nlcPath = join(
    dirname(fileURLToPath(import.meta.url)),
    '..',
    '..',
    'bench',
    'llamacpp',
    'node_modules',
    'node-llama-cpp',
    'dist',
    'index.js',
  );
  if (!existsSync(nlcPath)) throw new Error(`node-llama-cpp not installed (sh bench/llamacpp/install.sh): ${nlcPath}`);
  const nlc = (await import(pathToFileURL(nlcPath).href)) as { getLlama(o: Record<string, unknown>): Promise<NlcLlama> };
  const llama = await nlc.getLlama({ gpu: false, build: 'never', maxThreads: 1 });
  let ok = true;
  for (const type of values.types!.split(',')) {
    const file = await blockGguf(values.shape!, SHAPES[values.shape!], type);
    if (!file) throw new Error(`${type}: neither llama-quantize (set WEFT_LLAMA_QUANTIZE) nor weft's quantizer writes this type`);
    const dtype = resolveDtype('auto', 'cpu', checkpointKind(await loadModelSpec(file)));
    const e = await EngineInstance.open({ modelPath: file, dtype, numThreads: Number(values.threads), numKvBlocks: 16, blockSize: 16 });
    const runs = PROMPTS.map((p) => runOffline(e, [{ promptIds: p, maxTokens: tokens, ignoreEos: true }], { returnLogits: true })[0]);
    const ours = runs.map((r) => r.outputIds);
    e.close();
    const theirs = await llamaCppIds(llama, file, tokens, 'auto');
    const theirsNoFa = await llamaCppIds(llama, file, tokens, false);
    PROMPTS.forEach((_, i) => {
      const agree = ours[i].filter((id, j) => id === theirs[i][j]).length;
      const floor = theirsNoFa[i].filter((id, j) => id === theirs[i][j]).length;
      ok &&= agree >= need;
      // Random weights give flat logits: where the two first part, weft's top-2 gap says whether it was a near-tie.
      const first = ours[i].findIndex((id, j) => id !== theirs[i][j]);
      const where = first < 0 ? '' : `; first differs at ${first}, weft's top-2 logit gap there ${topGap(runs[i].logits[first]).toFixed(5)}`;
      process.stdout.write(
        `${values.shape} ${type.padEnd(7)} (weft ${dtype}) prompt ${i}: ${agree}/${tokens} positions agree with llama.cpp` +
          `${agree >= need ? '' : `  BELOW ${need}`}${where}; llama.cpp without flash attention: ${floor}/${tokens}\n`,
      );
    });
  }
  await llama.dispose();
  process.exit(ok ? 0 : 1);
}

await main();
