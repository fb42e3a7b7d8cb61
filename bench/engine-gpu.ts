// npm run bench:engine -- --backend gpu: the CUDA backend on a synthetic Llama-3.2-1B-shaped model
// (seeded random weights; real weights cannot travel to the GPU machine).
//
//   npm run bench:engine -- --backend gpu [--shapes 1b] [--dtypes bf16,int8] [--batches 1,64,256]
//        [--prompt-tokens 128] [--decode-tokens 64] [--prefill 1x2048,4x1024] [--streams 1,2,4] [--reps 3]
//        [--hbm-tbps 3.35] [--tensor-tflops 989] [--no-graphs] [--json FILE]   (--streams 0: skip the streams runs)
//
// Prints decode tokens/s per batch with the share of the bandwidth roofline (weight bytes one
// decode step streams over the HBM bandwidth) and of the tensor-core roofline (2 FLOPs per weight
// per token over the dense bf16 peak), prefill tokens/s, and 2 and 4 engine instances — each on
// its own CUDA stream in its own worker thread, sharing the weights — decoding at once against
// one. Medians over --reps. bf16 loads an F16 GGUF as bf16; int8 loads the Q8_0 GGUF (group-32
// scales, the CPU path's layout).
import { writeFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

import { loadNative } from '../src/workers/binding.js';
import { EngineInstance } from '../src/workers/engine-instance.js';
import { benchArgs } from './args.js';
import { median, syntheticGguf, timeDecode, timePrefill } from './timing.js';

export const GPU_SHAPES: Record<string, Record<string, unknown>> = {
  '1b': {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: 2048,
    num_hidden_layers: 16,
    num_attention_heads: 32,
    num_key_value_heads: 8,
    head_dim: 64,
    intermediate_size: 8192,
    vocab_size: 128256,
    max_position_embeddings: 131072,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    tie_word_embeddings: true,
    bos_token_id: 128000,
    eos_token_id: 128001,
  },
};

// FLOPs of one prefill step of n prompts of L tokens: the layers' projections for every token,
// causal attention (QK^T and PV over the L(L+1)/2 visible pairs per head), and the LM head for
// the one sampled row per prompt. The embedding is a gather, not a product.
export function prefillFlops(c: Record<string, unknown>, n: number, L: number): number {
  const [d, layers, nh, kvh, ffn, vocab] = [
    'hidden_size',
    'num_hidden_layers',
    'num_attention_heads',
    'num_key_value_heads',
    'intermediate_size',
    'vocab_size',
  ].map((k) => Number(c[k]));
  const hd = Number(c.head_dim ?? d / nh);
  const perToken = 2 * layers * (d * (nh + 2 * kvh) * hd + nh * hd * d + 3 * d * ffn);
  const attention = (layers * nh * 4 * hd * (L * (L + 1))) / 2;
  return n * (L * perToken + attention + 2 * d * vocab);
}

export interface StreamJob {
  path: string;
  dtype: 'bf16' | 'int8';
  batch: number;
  promptTokens: number;
  decodeTokens: number;
  numKvBlocks: number;
  maxContextLen: number;
  graphs: boolean;
}

export function openGpu(j: StreamJob, maxNumTokens: number, maxNumSeqs: number): Promise<EngineInstance> {
  return EngineInstance.open({
    modelPath: j.path,
    dtype: j.dtype,
    numThreads: 1,
    numKvBlocks: j.numKvBlocks,
    blockSize: 16,
    backend: 'gpu',
    maxNumTokens,
    maxNumSeqs,
    maxContextLen: j.maxContextLen,
    cudaGraphs: j.graphs,
  });
}

// k instances, each in its own worker thread (one CUDA stream each), released together by a
// shared flag; the aggregate is the sum of each stream's decode tokens/s over its own (overlapping)
// decode window.
async function timeStreams(k: number, j: StreamJob): Promise<{ aggregate: number; each: number[] }> {
  const barrier = new Int32Array(new SharedArrayBuffer(8));
  const workers = Array.from({ length: k }, () => new Worker(new URL('./gpu-stream.js', import.meta.url), { workerData: { job: j, barrier } }));
  const next = (w: Worker) =>
    new Promise<unknown>((res, rej) => {
      w.once('message', res);
      w.once('error', rej);
    });
  await Promise.all(workers.map(next));
  const done = workers.map((w) => next(w) as Promise<{ tokPerSec: number }>);
  Atomics.store(barrier, 0, 1);
  Atomics.notify(barrier, 0);
  const results = await Promise.all(done);
  await Promise.all(workers.map((w) => w.terminate()));
  const each = results.map((r) => r.tokPerSec);
  return { aggregate: each.reduce((a, b) => a + b, 0), each };
}

export async function mainGpu(argv: string[]): Promise<void> {
  const { values } = benchArgs(
    'npm run bench:engine -- --backend gpu',
    {
      shapes: { type: 'string', default: '1b' },
      dtypes: { type: 'string', default: 'bf16,int8' },
      batches: { type: 'string', default: '1,64,256' },
      'prompt-tokens': { type: 'string', default: '128' },
      'decode-tokens': { type: 'string', default: '64' },
      prefill: { type: 'string', default: '1x2048,4x1024' },
      streams: { type: 'string', default: '1,2,4' },
      'stream-batch': { type: 'string', default: '64' },
      reps: { type: 'string', default: '3' },
      'hbm-tbps': { type: 'string', default: '3.35' },
      'tensor-tflops': { type: 'string', default: '989' },
      'no-graphs': { type: 'boolean', default: false },
      json: { type: 'string' },
    },
    argv,
  );
  const native = loadNative();
  if (native.cudaDeviceCount() === 0) throw new Error('bench --backend gpu: no CUDA device visible');
  const dev = native.cudaDeviceInfo(0);
  process.stdout.write(`device: ${dev.name} (sm ${dev.computeCapability}, ${dev.smCount} SMs, ${(dev.totalBytes / 2 ** 30).toFixed(1)} GiB)\n`);
  const batches = values.batches!.split(',').map(Number),
    reps = Number(values.reps);
  const promptTokens = Number(values['prompt-tokens']),
    decodeTokens = Number(values['decode-tokens']);
  const prefills = values.prefill!.split(',').map((x) => x.split('x').map(Number)); // e.g. 4x1024,1x2048
  const pn = Math.max(...prefills.map((x) => x[0])),
    pl = Math.max(...prefills.map((x) => x[1]));
  const prefillTokens = Math.max(...prefills.map(([n, l]) => n * l));
  const hbm = Number(values['hbm-tbps']) * 1e12,
    peak = Number(values['tensor-tflops']) * 1e12;
  const graphs = !values['no-graphs'];
  const rows: Record<string, unknown>[] = [];
  for (const shape of values.shapes!.split(',')) {
    for (const dtype of values.dtypes!.split(',') as ('bf16' | 'int8')[]) {
      const path = await syntheticGguf(shape, GPU_SHAPES[shape], dtype === 'int8' ? 'q8_0' : 'f16');
      const maxBatch = Math.max(...batches);
      const ctx = promptTokens + decodeTokens + 1;
      const job: StreamJob = {
        path,
        dtype,
        batch: maxBatch,
        promptTokens,
        decodeTokens,
        maxContextLen: Math.max(ctx, pl),
        numKvBlocks: Math.max(maxBatch * Math.ceil(ctx / 16), pn * Math.ceil(pl / 16)) + 16,
        graphs,
      };
      const e = await openGpu(job, Math.max(prefillTokens, maxBatch * 8), Math.max(maxBatch, pn));
      const params = e.weightBytes / (dtype === 'int8' ? 1.0 : 2); // ≈ weights read per step / bytes per weight
      timeDecode(e, 1, 8, 4); // warm-up
      for (const [pn, pl] of prefills) {
        const prefill = median(Array.from({ length: reps }, () => timePrefill(e, pl, pn)));
        const tflops = ((prefill / (pn * pl)) * prefillFlops(GPU_SHAPES[shape], pn, pl)) / 1e12;
        rows.push({
          shape,
          dtype,
          device: dev.name,
          kind: 'prefill',
          prompts: pn,
          promptTokens: pl,
          prefillTokPerSec: +prefill.toFixed(0),
          modelTflops: +tflops.toFixed(1),
          tensorRooflineShare: +((tflops * 1e12) / peak).toFixed(3),
        });
        process.stdout.write(
          `${shape} ${dtype.padEnd(5)} prefill ${pn}x${pl}: ${prefill.toFixed(0).padStart(8)} tok/s  ${tflops.toFixed(1)} TFLOP/s of model FLOPs` +
            ` = ${((100 * tflops * 1e12) / peak).toFixed(1)}% of ${values['tensor-tflops']}\n`,
        );
      }
      for (const batch of batches) {
        const split = { forwardUs: 0, sampleUs: 0 };
        const decode = median(Array.from({ length: reps }, () => timeDecode(e, batch, promptTokens, decodeTokens, 64, split)));
        const stepSeconds = batch / decode;
        const bwRoofline = batch / (e.weightBytes / hbm); // tok/s if each step only streamed the weights at full bandwidth
        const row = {
          shape,
          dtype,
          device: dev.name,
          kind: 'decode',
          batch,
          graphs,
          decodeTokPerSec: +decode.toFixed(1),
          stepMs: +(stepSeconds * 1e3).toFixed(3),
          weightBytes: e.weightBytes,
          bandwidthRooflineTokPerSec: +bwRoofline.toFixed(0),
          bandwidthShare: +(decode / bwRoofline).toFixed(3),
          tensorShare: +((decode * 2 * params) / peak).toFixed(3),
          forwardUs: +split.forwardUs.toFixed(1),
          sampleUs: +split.sampleUs.toFixed(1),
        };
        rows.push(row);
        process.stdout.write(
          `${shape} ${dtype.padEnd(5)} decode batch ${String(batch).padStart(3)}: ${decode.toFixed(1).padStart(9)} tok/s` +
            `  step ${(stepSeconds * 1e3).toFixed(3)} ms` +
            `  bandwidth roofline ${bwRoofline.toFixed(0)} tok/s → ${(100 * row.bandwidthShare).toFixed(1)}%  tensor ${(100 * row.tensorShare).toFixed(1)}%` +
            `  (device: forward ${split.forwardUs.toFixed(0)} µs + sampling ${split.sampleUs.toFixed(0)} µs)\n`,
        );
      }
      e.close();
      const sb = Number(values['stream-batch']);
      let one = 0;
      for (const k of values
        .streams!.split(',')
        .map(Number)
        .filter((x) => x > 0)) {
        // --streams 0: none
        const runs: { aggregate: number; each: number[] }[] = [];
        for (let i = 0; i < reps; i++) runs.push(await timeStreams(k, { ...job, batch: sb, numKvBlocks: sb * Math.ceil(ctx / 16) + 16 }));
        const m = runs.sort((a, b) => a.aggregate - b.aggregate)[Math.floor(runs.length / 2)];
        if (k === 1) one = m.aggregate;
        rows.push({
          shape,
          dtype,
          device: dev.name,
          kind: 'streams',
          streams: k,
          batchPerStream: sb,
          aggregateTokPerSec: +m.aggregate.toFixed(1),
          vsOneStream: one ? +(m.aggregate / one).toFixed(2) : null,
        });
        process.stdout.write(
          `${shape} ${dtype.padEnd(5)} ${k} stream(s) × batch ${sb}: aggregate ${m.aggregate.toFixed(1).padStart(9)} tok/s` +
            (one ? `  = ${(m.aggregate / one).toFixed(2)}× one stream` : '') +
            `  (each ${m.each.map((x) => x.toFixed(0)).join(', ')})\n`,
        );
      }
    }
  }
  if (values.json) writeFileSync(values.json, JSON.stringify(rows, null, 2));
}
