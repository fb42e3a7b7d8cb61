// npm run bench:embed — embedding throughput, weft against llama.cpp on the same GGUF, one run:
//   weft       the embedding model's engine loop and worker (what /v1/embeddings drives, without
//              HTTP): every input submitted at once, prefilled in shared steps, last-token pooling
//   llama.cpp  node-llama-cpp's embedding context (in-process, one input at a time, as it offers),
//              on 1 thread and on weft's count: its prebuilt binary can be faster on one thread on
//              a small machine (bench/llamacpp/README.md), so its better median is the one compared
// A synthetic model, random token ids; runs alternate, medians of --reps. Also prints the cosine
// between the two engines' vectors for each input (same ids).
//
//   npm run bench:embed -- [--shape 110m] [--dtype q8_0] [--inputs 32] [--input-tokens 128]
//                          [--threads auto] [--reps 3]

import { Embedder } from '../src/embed.js';
import { loadModelSpec } from '../src/model/load.js';
import { usableCpuCount } from '../src/system.js';
import { benchArgs } from './args.js';
import { loadLlama, NO_NLC } from './nlc.js';
import { SHAPES } from './shapes.js';
import { cosine, median, syntheticGguf } from './timing.js';

async function main(): Promise<void> {
  const { values } = benchArgs('npm run bench:embed --', {
    shape: { type: 'string', default: '110m' },
    dtype: { type: 'string', default: 'q8_0' },
    inputs: { type: 'string', default: '32' },
    'input-tokens': { type: 'string', default: '128' },
    threads: { type: 'string', default: 'auto' },
    reps: { type: 'string', default: '3' },
  });
  const N = Number(values.inputs),
    P = Number(values['input-tokens']),
    reps = Number(values.reps);
  const threads = values.threads === 'auto' ? usableCpuCount() : Number(values.threads);
  const path = await syntheticGguf(values.shape!, SHAPES[values.shape!], values.dtype as 'f32' | 'q8_0');
  const spec = await loadModelSpec(path);
  // BOS, then seeded ids; a fresh set for every run so that no run reads another's prefix cache
  let setNo = 0;
  const inputSet = () => {
    const k = setNo++;
    return Array.from({ length: N }, (_, i) => [1, ...Array.from({ length: P - 1 }, (_, j) => 3 + ((k * 7919 + i * 104729 + j * 131) % 30000))]);
  };

  const embedder = await Embedder.start(
    'bench',
    {
      modelPath: path,
      spec,
      dtype: values.dtype === 'f32' ? 'f32' : 'int8',
      numThreads: threads,
      numKvBlocks: Math.ceil((N * P) / 16) + 64,
      blockSize: 16,
      maxContextLen: P + 16,
    },
    'last',
    false,
  );
  const llama = NO_NLC ? null : await loadLlama();
  const model = await llama?.loadModel({ modelPath: path, gpuLayers: 0 });
  const contexts = new Map<number, Awaited<ReturnType<NonNullable<typeof model>['createEmbeddingContext']>>>();
  for (const n of new Set([1, threads]))
    if (model)
      contexts.set(
        n,
        await model.createEmbeddingContext({ contextSize: P + 16, batchSize: P + 16, threads: { ideal: n, min: n }, ignoreMemorySafetyChecks: true }),
      );

  const weftRun = (ids: number[][]) => Promise.all(ids.map((x) => embedder.embed(x)));
  const llamaRun = async (n: number, ids: number[][]) => {
    const out: (readonly number[])[] = [];
    for (const x of ids) out.push((await contexts.get(n)!.getEmbeddingFor(x)).vector);
    return out;
  };
  const time = async <T>(f: () => Promise<T>): Promise<[number, T]> => {
    const t0 = performance.now();
    const r = await f();
    return [performance.now() - t0, r];
  };
  const warm = inputSet().slice(0, 2);
  await weftRun(warm);
  for (const n of contexts.keys()) await llamaRun(n, warm);
  const weftMs: number[] = [];
  const llamaMs = new Map([...contexts.keys()].map((n) => [n, [] as number[]]));
  const cosines: number[] = [];
  for (let r = 0; r < reps; r++) {
    const ids = inputSet();
    const [w, ours] = await time(() => weftRun(ids));
    weftMs.push(w);
    for (const n of contexts.keys()) {
      const [l, theirs] = await time(() => llamaRun(n, ids));
      llamaMs.get(n)!.push(l);
      ours.forEach((v, i) => cosines.push(cosine(v, theirs[i])));
    }
  }
  await embedder.close();
  for (const c of contexts.values()) await c.dispose();
  await model?.dispose();
  await llama?.dispose();

  const rate = (m: number) => `${((N * 1000) / m).toFixed(1).padStart(7)} inputs/s ${((N * P * 1000) / m).toFixed(0).padStart(6)} tok/s`;
  const w = median(weftMs);
  process.stdout.write(`${values.shape} ${values.dtype}, ${N} inputs of ${P} tokens, last-token pooling, medians of ${reps}\n`);
  process.stdout.write(`weft, ${threads} thread(s)      ${w.toFixed(1).padStart(9)} ms  ${rate(w)}\n`);
  if (contexts.size === 0) {
    process.stdout.write(`llama.cpp   skipped: ${NO_NLC}\n`);
    return;
  }
  const best = Math.min(...[...llamaMs.values()].map(median));
  for (const [n, m] of llamaMs)
    process.stdout.write(
      `llama.cpp, ${n} thread(s) ${median(m).toFixed(1).padStart(9)} ms  ${rate(median(m))}` +
        `${median(m) === best ? `   weft ${(best / w).toFixed(2)}x llama.cpp's best` : ''}\n`,
    );
  process.stdout.write(
    `cosine weft vs llama.cpp over ${cosines.length} vectors: min ${Math.min(...cosines).toFixed(6)}, median ${median(cosines).toFixed(6)}\n`,
  );
}

await main();
