// npm run bench:engine — raw engine throughput on synthetic Llama shapes, optionally side by side
// with llama.cpp (bench/llamacpp, node-llama-cpp) on the very same GGUF file.
//
//   npm run bench:engine -- [--shapes 15m,110m] [--dtypes f32,int8,int8-q8_0,q4_k_m,…] [--batches 1,16,64]
//                           [--threads 2] [--prompt-tokens 128] [--decode-tokens 32] [--reps 3]
//                           [--kv-dtypes auto,f16,int8] [--llamacpp] [--mode raw|loop|both] [--score TOP] [--json FILE]
//   npm run bench:engine -- --backend gpu [...]   the CUDA backend (bench/engine-gpu.ts)
//
// Decode tokens/s at batch B: B sequences are prefilled with P-token prompts (untimed), then D
// decode steps of B tokens each are timed; the median over reps is printed. The reps alternate
// between the dtypes (all their engines open at once), so load from elsewhere hits each alike. Prefill tokens/s: 4
// prompts of P tokens in one step. dtypes: f32 and int8 load an F32 GGUF (int8 = per-row scales,
// quantized on load); int8-q8_0 (or q8_0) loads the Q8_0 GGUF that llama.cpp runs (group-32 scales);
// a llama.cpp type (q4_0, q5_0, q4_k_m, q5_k_m, q6_k, …) loads the F32 model requantized by
// llama-quantize, with --dtype auto (its block types kept), and with --llamacpp llama.cpp runs that
// very file. --kv-dtypes runs each dtype with each CPU KV cache type (side by side, as the dtypes);
// llama.cpp gets a Q8_0 cache where weft's is int8 (F16 otherwise). Batch-1 rows print the weight bytes a decode step reads per second against a memory
// read probe on as many threads (the physical limit the decode step is bound by).
// --mode loop (or both) runs the largest batch again through the scheduler, the engine loop and a
// Piscina worker, and prints its decode tokens/s next to the raw engine's, with the per-step
// overhead outside the model (scheduling, packing, thread hops).
// --score TOP times the prefill again with every prompt row scored (echo with logprobs,
// prompt_logprobs: TOP likeliest tokens a row), in the same reps, and prints its cost beside it.
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { benchArgs } from './args.js';
import { timeLoop } from './loop-mode.js';
import { EngineInstance } from '../src/workers/engine-instance.js';
import { SHAPES } from './shapes.js';
import { resolveDtype } from '../src/config.js';
import { loadModelSpec } from '../src/model/load.js';
import { checkpointKind } from '../src/model/types.js';
import { envWithoutLlamaLibraries, NLC_DIR } from './nlc.js';
import { BLOCK_TYPES, blockGguf, median, readBandwidth, syntheticGguf, timeDecode, timePrefill } from './timing.js';
import type { KvDtype, WeightDtype } from '../src/workers/binding.js';

// The file and weight dtype of a --dtypes entry.
async function modelFor(shape: string, dtype: string): Promise<{ path: string; weights: WeightDtype; sameAsLlamacpp: boolean } | null> {
  if (dtype === 'f32' || dtype === 'int8') return { path: await syntheticGguf(shape, SHAPES[shape], 'f32'), weights: dtype, sameAsLlamacpp: false };
  if (dtype === 'int8-q8_0' || dtype === 'q8_0')
    return { path: await syntheticGguf(shape, SHAPES[shape], 'q8_0'), weights: 'int8', sameAsLlamacpp: true };
  if (!BLOCK_TYPES.includes(dtype)) throw new Error(`unknown dtype ${dtype}`);
  const path = await blockGguf(shape, SHAPES[shape], dtype);
  if (!path) return null;
  return { path, weights: resolveDtype('auto', 'cpu', checkpointKind(await loadModelSpec(path))), sameAsLlamacpp: true };
}

type LlamaCppRef = Map<number, { decode: number; prefill: number }> | null;

function runLlamaCpp(
  gguf: string,
  o: { threads: number; batches: number[]; promptTokens: number; decodeTokens: number; kvType: string },
): LlamaCppRef {
  const install = spawnSync('bash', [join(NLC_DIR, 'install.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  if (install.status !== 0) return null;
  // llama.cpp's best of 1 and N threads, flash attention on and off (its prebuilt binary runs
  // batch-1 decode far slower with 2 threads on a small machine: bench/llamacpp/README.md).
  const threads = o.threads > 1 ? `1,${o.threads}` : '1';
  const r = spawnSync(
    process.execPath,
    [
      join(NLC_DIR, 'run.mjs'),
      '--model',
      gguf,
      '--threads',
      threads,
      '--flash-attention',
      o.kvType === 'F16' ? 'on,off' : 'on', // llama.cpp quantizes V only with flash attention
      '--repeat',
      '2',
      '--batches',
      o.batches.join(','),
      '--prompt-tokens',
      String(o.promptTokens),
      '--decode-tokens',
      String(o.decodeTokens),
      '--kv-type',
      o.kvType,
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env: envWithoutLlamaLibraries(process.env) },
  );
  if (r.status !== 0) return null;
  const json = JSON.parse(r.stdout.trim().split('\n').pop()!);
  return new Map(
    json.results.map((x: { batch: number; decodeTokensPerSec: number; prefillTokensPerSec: number }) => [
      x.batch,
      { decode: x.decodeTokensPerSec, prefill: x.prefillTokensPerSec },
    ]),
  );
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const b = argv.indexOf('--backend');
  const backend = b >= 0 ? argv.splice(b, 2)[1] : 'cpu';
  if (backend === 'gpu') return (await import('./engine-gpu.js')).mainGpu(argv);
  if (backend !== 'cpu') throw new Error('--backend must be cpu or gpu');
  const { values } = benchArgs(
    'npm run bench:engine --',
    {
      shapes: { type: 'string', default: '15m,110m' },
      dtypes: { type: 'string', default: 'f32,int8,int8-q8_0' },
      batches: { type: 'string', default: '1,16,64' },
      threads: { type: 'string', default: '2' },
      'prompt-tokens': { type: 'string', default: '128' },
      'decode-tokens': { type: 'string', default: '32' },
      reps: { type: 'string', default: '3' },
      'kv-dtypes': { type: 'string', default: 'auto' },
      llamacpp: { type: 'boolean', default: false },
      json: { type: 'string' },
      mode: { type: 'string', default: 'raw' },
      score: { type: 'string' },
    },
    argv,
  );
  const batches = values.batches!.split(',').map(Number);
  const threads = Number(values.threads),
    reps = Number(values.reps);
  const promptTokens = Number(values['prompt-tokens']),
    decodeTokens = Number(values['decode-tokens']);
  const scoreTop = values.score === undefined ? -1 : Number(values.score);
  const rows: Record<string, unknown>[] = [];
  const bandwidth1 = await readBandwidth(1),
    bandwidth = threads > 1 ? await readBandwidth(threads) : bandwidth1;
  process.stdout.write(
    `memory read bandwidth (memcmp): ${(bandwidth1 / 1e9).toFixed(1)} GB/s on 1 thread` +
      (threads > 1 ? `, ${(bandwidth / 1e9).toFixed(1)} GB/s on ${threads} (the probe below)` : '') +
      '\n',
  );
  const lcOpts = { threads, batches, promptTokens, decodeTokens };
  const kvDtypes = values['kv-dtypes']!.split(',') as KvDtype[];
  for (const shape of values.shapes!.split(',')) {
    // Every dtype's engine is open at once and the reps go round them in turn, so a neighbour's load
    // on a shared machine falls on all of them alike and the ratios between them hold.
    const runs: {
      dtype: string;
      kvDtype: KvDtype;
      path: string;
      weights: WeightDtype;
      e: EngineInstance;
      ref: LlamaCppRef;
      prefill: number[];
      scored: number[]; // --score: the prefill with every row scored
      decode: number[][];
    }[] = [];
    const refs = new Map<string, LlamaCppRef>(); // llama.cpp's figures per file and cache type
    for (const dtype of values.dtypes!.split(','))
      for (const kvDtype of kvDtypes) {
        const m = await modelFor(shape, dtype);
        if (!m) {
          process.stderr.write(`${dtype}: neither llama-quantize (set WEFT_LLAMA_QUANTIZE) nor weft's quantizer writes this type; skipped\n`);
          continue;
        }
        const label = kvDtype === 'auto' ? dtype : `${dtype}/kv-${kvDtype}`;
        // f32/int8 compare with llama.cpp on the Q8_0 file, as before; a llama.cpp file type with llama.cpp on that very file
        let ref: LlamaCppRef = null;
        if (values.llamacpp) {
          const file = m.sameAsLlamacpp && !dtype.includes('8_0') ? m.path : await syntheticGguf(shape, SHAPES[shape], 'q8_0');
          const kvType = kvDtype === 'int8' ? 'Q8_0' : 'F16';
          const key = `${file}|${kvType}`;
          if (!refs.has(key)) refs.set(key, runLlamaCpp(file, { ...lcOpts, kvType }));
          ref = refs.get(key)!;
          if (!ref) process.stderr.write(`llama.cpp run failed for ${label} (see above); printing weft figures only\n`);
        }
        const numKvBlocks = Math.max(...batches, 4) * Math.ceil((promptTokens + decodeTokens + 1) / 16) + 8;
        const e = await EngineInstance.open({ modelPath: m.path, dtype: m.weights, numThreads: threads, numKvBlocks, blockSize: 16, kvDtype });
        timeDecode(e, 1, 8, 4); // warm-up
        runs.push({ dtype: label, kvDtype, path: m.path, weights: m.weights, e, ref, prefill: [], scored: [], decode: batches.map(() => []) });
      }
    for (let r = 0; r < reps; r++)
      for (const run of runs) {
        run.prefill.push(timePrefill(run.e, promptTokens));
        if (scoreTop >= 0) run.scored.push(timePrefill(run.e, promptTokens, 4, scoreTop));
        batches.forEach((batch, i) => run.decode[i].push(timeDecode(run.e, batch, promptTokens, decodeTokens)));
      }
    for (const run of runs) {
      const { dtype, e } = run,
        prefill = median(run.prefill);
      batches.forEach((batch, i) => {
        const decode = median(run.decode[i]),
          lc = run.ref?.get(batch);
        const row = {
          shape,
          dtype,
          isa: e.isa,
          threads,
          batch,
          decodeTokPerSec: +decode.toFixed(1),
          prefillTokPerSec: +prefill.toFixed(1),
          llamacppDecodeTokPerSec: lc ? +lc.decode.toFixed(1) : null,
          ratioVsLlamacpp: lc ? +(decode / lc.decode).toFixed(2) : null,
          llamacppPrefillTokPerSec: lc ? +lc.prefill.toFixed(1) : null,
          prefillRatioVsLlamacpp: lc ? +(prefill / lc.prefill).toFixed(2) : null,
          weightBytes: e.weightBytes,
          tokenWeightBytes: e.tokenWeightBytes,
          ...(batch === 1
            ? {
                bytesPerSec: Math.round(decode * e.tokenWeightBytes),
                probeBytesPerSec: Math.round(bandwidth),
                ofBandwidth: +((decode * e.tokenWeightBytes) / bandwidth).toFixed(3),
              }
            : {}),
        };
        rows.push(row);
        process.stdout.write(
          `${shape.padEnd(5)} ${dtype.padEnd(14)} ${e.isa.padEnd(7)} t=${threads} batch ${String(batch).padStart(3)}: ` +
            `decode ${decode.toFixed(1).padStart(8)} tok/s` +
            `  prefill ${prefill.toFixed(0).padStart(6)} tok/s` +
            (lc
              ? `   llama.cpp ${lc.decode.toFixed(1).padStart(8)} tok/s  ratio ${(decode / lc.decode).toFixed(2)}x` +
                `  prefill ${lc.prefill.toFixed(0)} tok/s ratio ${(prefill / lc.prefill).toFixed(2)}x`
              : '') +
            (batch === 1
              ? `   weights read ${(e.tokenWeightBytes / 1e6).toFixed(1)} MB/step: ${((decode * e.tokenWeightBytes) / 1e9).toFixed(1)} GB/s` +
                ` = ${((100 * decode * e.tokenWeightBytes) / bandwidth).toFixed(0)}% of the probe`
              : '') +
            '\n',
        );
      });
      if (scoreTop >= 0) {
        const scored = median(run.scored);
        rows.push({ shape, dtype, mode: 'score', threads, scoreTop, prefillTokPerSec: +prefill.toFixed(1), scoredTokPerSec: +scored.toFixed(1) });
        process.stdout.write(
          `${shape.padEnd(5)} ${dtype.padEnd(14)} score   t=${threads}: prefill with every row scored (top ${scoreTop}) ` +
            `${scored.toFixed(0).padStart(6)} tok/s, ${(prefill / scored).toFixed(2)}x the plain prefill's time\n`,
        );
      }
      e.close();
      if (values.mode === 'loop' || values.mode === 'both') {
        const batch = Math.max(...batches);
        const raw = (rows.at(-1) as { decodeTokPerSec: number }).decodeTokPerSec;
        const loops = [];
        for (let r = 0; r < reps; r++) loops.push(await timeLoop(run.path, run.weights, threads, batch, promptTokens, decodeTokens, run.kvDtype));
        const l = loops.sort((a, b) => a.decodeTokPerSec - b.decodeTokPerSec)[Math.floor(loops.length / 2)];
        rows.push({
          shape,
          dtype,
          mode: 'loop',
          threads,
          batch,
          decodeTokPerSec: +l.decodeTokPerSec.toFixed(1),
          rawDecodeTokPerSec: raw,
          loopVsRaw: +(l.decodeTokPerSec / raw).toFixed(3),
          overheadUsPerStep: Math.round(l.overheadUsPerStep),
          scheduleUs: Math.round(l.scheduleUs),
          packUs: Math.round(l.packUs),
          transferUs: Math.round(l.transferUs),
          nativeUs: Math.round(l.nativeUs),
        });
        process.stdout.write(
          `${shape.padEnd(5)} ${dtype.padEnd(14)} loop    t=${threads} batch ${String(batch).padStart(3)}: ` +
            `decode ${l.decodeTokPerSec.toFixed(1).padStart(8)} tok/s` +
            `  = ${((100 * l.decodeTokPerSec) / raw).toFixed(1)}% of raw; per step: overhead ${l.overheadUsPerStep.toFixed(0)} us` +
            ` (schedule ${l.scheduleUs.toFixed(0)}, pack ${l.packUs.toFixed(0)}, transfer ${l.transferUs.toFixed(0)}),` +
            ` native ${(l.nativeUs / 1000).toFixed(1)} ms\n`,
        );
      }
    }
  }
  if (values.json) writeFileSync(values.json, JSON.stringify(rows, null, 2));
}

await main();
