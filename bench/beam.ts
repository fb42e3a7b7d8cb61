// npm run bench:beam — what a beam search costs in weft, side by side in one run:
//   greedy       one request, N output tokens
//   weft beams   a width-k search inside the continuous batcher (beams forked, KV shared)
//   re-submit    vLLM's way: every step, every beam sent again as a one-token request (its full
//                prefix; the prefix cache spares most of the prefill), the same policy choosing
// All three through the same engine loop and worker, on a synthetic model, at concurrency 1;
// EOS is ignored so every run makes N tokens. Medians over --reps.
//
//   npm run bench:beam -- [--shape 110m] [--dtype q8_0] [--width 4] [--prompt-tokens 128]
//                         [--output-tokens 32] [--threads auto] [--reps 3]

import { BeamSearch, type BeamCandidate } from '../src/scheduler/beam-search.js';
import { EngineLoop, type RequestHandle } from '../src/scheduler/engine.js';
import { usableCpuCount } from '../src/system.js';
import { EngineWorker } from '../src/workers/pool.js';
import { benchArgs } from './args.js';
import { SHAPES } from './shapes.js';
import { median, syntheticGguf } from './timing.js';

const drain = async (h: RequestHandle) => {
  for await (const _ of h.events) {
    /* until the final event */
  }
};

// vLLM's beam search: the policy outside the scheduler, each beam a fresh one-token request.
async function resubmitSearch(loop: EngineLoop, prompt: number[], width: number, maxTokens: number): Promise<void> {
  const search = new BeamSearch({ beamWidth: width, maxTokens, lengthPenalty: 1, earlyStopping: false, eosTokenIds: [], ignoreEos: true });
  while (!search.isDone) {
    const candidates = await Promise.all(
      search.beams.map(async (b): Promise<BeamCandidate[]> => {
        const h = loop.submit({
          promptTokenIds: [...prompt, ...b.tokens],
          maxTokens: 1,
          ignoreEos: true,
          sampling: { temperature: 0, numLogprobs: search.numCandidates },
        });
        const top: BeamCandidate[] = [];
        for await (const ev of h.events) for (const c of ev.topLogprobs ?? []) top.push({ tokenId: c.id, logprob: c.logprob });
        return top;
      }),
    );
    if (search.step(candidates).done) break;
  }
  search.finish();
}

async function main(): Promise<void> {
  const { values } = benchArgs('npm run bench:beam --', {
    shape: { type: 'string', default: '110m' },
    dtype: { type: 'string', default: 'q8_0' },
    width: { type: 'string', default: '4' },
    'prompt-tokens': { type: 'string', default: '128' },
    'output-tokens': { type: 'string', default: '32' },
    threads: { type: 'string', default: 'auto' },
    reps: { type: 'string', default: '3' },
  });
  const width = Number(values.width),
    P = Number(values['prompt-tokens']),
    N = Number(values['output-tokens']),
    reps = Number(values.reps);
  const threads = values.threads === 'auto' ? usableCpuCount() : Number(values.threads);
  const path = await syntheticGguf(values.shape!, SHAPES[values.shape!], values.dtype as 'f32' | 'q8_0');
  const dtype = values.dtype === 'f32' ? 'f32' : 'int8';
  const worker = await EngineWorker.start(0, { modelPath: path, dtype, numThreads: threads, numKvBlocks: 4096, blockSize: 16 });
  const loop = new EngineLoop([worker], { scheduler: { maxModelLen: P + N + 8 }, eosTokenIds: [] });
  let promptNo = 0;
  // a fresh prompt for every run: no run is served from another's prefix cache
  const prompt = () => {
    const k = promptNo++;
    return Array.from({ length: P }, (_, j) => 3 + ((k * 7919 + j * 131) % 30000));
  };
  const time = async (f: () => Promise<void>) => {
    const t0 = performance.now();
    await f();
    return performance.now() - t0;
  };
  const runs = {
    greedy: () => drain(loop.submit({ promptTokenIds: prompt(), maxTokens: N, ignoreEos: true, sampling: { temperature: 0 } })),
    beams: () =>
      drain(
        loop.submitBeam({ promptTokenIds: prompt() }, { beamWidth: width, maxTokens: N, lengthPenalty: 1, earlyStopping: false, ignoreEos: true }),
      ),
    resubmit: () => resubmitSearch(loop, prompt(), width, N),
  };
  for (const f of Object.values(runs)) await f(); // warm-up
  const ms: Record<string, number[]> = { greedy: [], beams: [], resubmit: [] };
  for (let r = 0; r < reps; r++) for (const [name, f] of Object.entries(runs)) ms[name].push(await time(f)); // interleaved
  await loop.close();
  await worker.close();
  const g = median(ms.greedy),
    b = median(ms.beams),
    v = median(ms.resubmit);
  process.stdout.write(
    `${values.shape} ${values.dtype}, ${threads} thread(s), prompt ${P}, ${N} output tokens, width ${width}, medians of ${reps}\n`,
  );
  process.stdout.write(`greedy                 ${g.toFixed(1).padStart(9)} ms\n`);
  process.stdout.write(`weft beam search       ${b.toFixed(1).padStart(9)} ms  = ${(b / g).toFixed(2)}x greedy\n`);
  process.stdout.write(
    `re-submitted beams     ${v.toFixed(1).padStart(9)} ms  = ${(v / g).toFixed(2)}x greedy, ${(v / b).toFixed(2)}x weft's search\n`,
  );
}

await main();
