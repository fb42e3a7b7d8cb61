// npm run bench:itl — one stream through HTTP against the engine's own batch-1 step, side by
// side in one run (issue 10's target: median ITL at one stream <= the step + 0.5 ms). Each pair:
// the raw decode step (an engine in this process, nothing else running; medians of 3 as
// bench:engine takes them), then --requests streamed completions one at a time against weft
// started as `npm start` runs it, with no tuning flags, through the bench's client. The pairs
// alternate so that a noisy minute of a shared machine falls on both sides; the gap's median
// over the pairs is the figure.
//
//   npm run bench:itl -- [--shape 110m] [--dtype q8_0] [--pairs 5] [--requests 20]
//                        [--prompt-tokens 128] [--output-tokens 64]

import { resolveDtype } from '../src/config.js';
import { loadModelSpec } from '../src/model/load.js';
import { checkpointKind } from '../src/model/types.js';
import { usableCpuCount } from '../src/system.js';
import { EngineInstance } from '../src/workers/engine-instance.js';
import { benchArgs } from './args.js';
import { sendRequest, type ClientTarget } from './serve/client.js';
import { randomIds } from './serve/datasets.js';
import { makeRng } from './serve/rng.js';
import { freePort, startServer, weftSpec } from './serve/spawn.js';
import { SHAPES } from './shapes.js';
import { median, syntheticGguf, timeDecode } from './timing.js';

async function main(): Promise<void> {
  const { values } = benchArgs('npm run bench:itl --', {
    shape: { type: 'string', default: '110m' },
    dtype: { type: 'string', default: 'q8_0' },
    pairs: { type: 'string', default: '5' },
    requests: { type: 'string', default: '20' },
    'prompt-tokens': { type: 'string', default: '128' },
    'output-tokens': { type: 'string', default: '64' },
  });
  const pairs = Number(values.pairs),
    numRequests = Number(values.requests),
    P = Number(values['prompt-tokens']),
    N = Number(values['output-tokens']);
  const path = await syntheticGguf(values.shape!, SHAPES[values.shape!], values.dtype as 'f32' | 'q8_0');
  const spec = await loadModelSpec(path);
  // what the server's defaults pick: --dtype auto, --num-threads auto
  const dtype = resolveDtype('auto', 'cpu', checkpointKind(spec));
  const threads = usableCpuCount();
  const engine = await EngineInstance.open({
    modelPath: path,
    dtype,
    numThreads: threads,
    numKvBlocks: Math.ceil((P + N + 1) / 16) + 2,
    blockSize: 16,
  });
  const server = await startServer(weftSpec(path, await freePort(), []));
  const target: ClientTarget = { baseUrl: server.baseUrl, endpoint: '/v1/completions', temperature: 0, ignoreEos: true, timeoutMs: 120_000 };
  const rng = makeRng(0);
  const request = () => ({ prompt: randomIds(rng, P, spec.config.vocabSize), promptLen: P, maxTokens: N });
  const served = async (n: number): Promise<number[]> => {
    const itl: number[] = [];
    for (let i = 0; i < n; i++) {
      const r = await sendRequest(target, request(), performance.now());
      if (!r.success) throw new Error(`a request failed: ${r.error}`);
      itl.push(...r.itlMs);
    }
    return itl;
  };
  process.stdout.write(
    `${values.shape} ${values.dtype} (weft ${dtype}), ${threads} thread(s), prompt ${P}, ${N} output tokens, ` +
      `${pairs} pairs of (raw step: median of 3 runs; served: ${numRequests} requests)\n`,
  );
  try {
    timeDecode(engine, 1, 8, 4); // warm-up
    await served(2);
    const rows: { step: number; itl: number; gap: number }[] = [];
    for (let k = 0; k < pairs; k++) {
      const step = 1000 / median([0, 1, 2].map(() => timeDecode(engine, 1, P, N)));
      const itl = median(await served(numRequests));
      rows.push({ step, itl, gap: itl - step });
      process.stdout.write(`pair ${k + 1}: raw step ${step.toFixed(2)} ms, median ITL ${itl.toFixed(2)} ms, gap ${(itl - step).toFixed(2)} ms\n`);
    }
    const m = (f: (r: (typeof rows)[number]) => number) => median(rows.map(f)).toFixed(2);
    process.stdout.write(`medians: raw step ${m((r) => r.step)} ms, ITL ${m((r) => r.itl)} ms, gap ${m((r) => r.gap)} ms\n`);
  } finally {
    await server.stop();
    engine.close();
  }
}

await main();
