// bench:engine --mode loop: the same decode workload through the scheduler, the engine loop and
// a Piscina worker, to measure what serving costs outside the model.
import { EngineLoop, type StepTiming } from '../src/scheduler/engine.js';
import type { KvDtype, WeightDtype } from '../src/workers/binding.js';
import { EngineWorker } from '../src/workers/pool.js';
import { median } from './timing.js';

export interface LoopResult {
  decodeTokPerSec: number;
  numDecodeSteps: number;
  overheadUsPerStep: number; // median step wall time minus native time
  scheduleUs: number;
  packUs: number;
  transferUs: number;
  nativeUs: number;
}

export async function timeLoop(
  modelPath: string,
  dtype: WeightDtype,
  threads: number,
  batch: number,
  promptTokens: number,
  decodeTokens: number,
  kvDtype: KvDtype = 'auto',
): Promise<LoopResult> {
  const numKvBlocks = batch * Math.ceil((promptTokens + decodeTokens + 1) / 16) + 8;
  const worker = await EngineWorker.start(0, { modelPath, dtype, numThreads: threads, numKvBlocks, blockSize: 16, kvDtype });
  const steps: (StepTiming & { at: number })[] = [];
  const loop = new EngineLoop([worker], {
    scheduler: {
      maxNumSeqs: batch,
      maxNumBatchedTokens: Math.max(batch, 8 * promptTokens),
      maxModelLen: promptTokens + decodeTokens + 1,
      enablePrefixCaching: false,
    },
    eosTokenIds: [],
    onStep: (s) => steps.push({ ...s, at: performance.now() }),
  });
  const run = async (n: number, maxTokens: number) => {
    const handles = Array.from({ length: n }, (_, i) =>
      loop.submit({
        promptTokenIds: Array.from({ length: promptTokens }, (_, j) => 3 + ((i * 131 + j * 7) % 30000)),
        maxTokens,
        ignoreEos: true,
      }),
    );
    await Promise.all(
      handles.map(async (h) => {
        for await (const _ of h.events) {
          /* drain */
        }
      }),
    );
  };
  await run(1, 4); // warm-up
  steps.length = 0;
  await run(batch, decodeTokens + 1);
  await loop.close();
  await worker.close();
  // pure decode steps: every sequence feeds exactly one token
  const decode = steps.filter((s) => s.numSeqs === batch && s.numTokens === batch);
  const first = steps.indexOf(decode[0]);
  const wall = decode[decode.length - 1].at - steps[first].at;
  return {
    decodeTokPerSec: (batch * (decode.length - 1)) / (wall / 1000),
    numDecodeSteps: decode.length,
    overheadUsPerStep: median(decode.map((s) => s.totalUs - s.nativeUs)),
    scheduleUs: median(decode.map((s) => s.scheduleUs)),
    packUs: median(decode.map((s) => s.packUs)),
    transferUs: median(decode.map((s) => s.transferUs)),
    nativeUs: median(decode.map((s) => s.nativeUs)),
  };
}
