// node-llama-cpp (bench/llamacpp's install; CI lacks it) and llama-quantize (test/fixtures/paths.ts)
// for the tests that check weft's GGUF files against llama.cpp.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';

import { loadLlama, type NlcSequence } from '../../bench/nlc.js';
import { LLAMA_QUANTIZE } from '../fixtures/paths.js';

export { NO_NLC } from '../../bench/nlc.js';
export const NO_QUANTIZE = existsSync(LLAMA_QUANTIZE) ? false : `llama-quantize is not built (${LLAMA_QUANTIZE})`;

// llama-quantize SRC OUT TYPE with one thread (TYPE as weft spells it: q4_k_m, …).
export const llamaQuantize = (src: string, out: string, type: string) =>
  execFileSync(LLAMA_QUANTIZE, [src, out, type.toUpperCase(), '1'], { stdio: 'ignore' });

export const PROMPT = [1, 300, 301, 77, 400, 29, 310];

// BOS and then n − 1 seeded token ids below vocab (from 3: past <unk>, <s>, </s>).
export function randomPrefix(n: number, vocab: number): number[] {
  let s = 17;
  return [
    1,
    ...Array.from({ length: n - 1 }, () => {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      return 3 + (s % (vocab - 3));
    }),
  ];
}

// `use` on a one-sequence, one-thread context of each file in turn; its results, file by file.
async function eachFile<T>(files: string[], use: (seq: NlcSequence) => Promise<T>): Promise<T[]> {
  const llama = await loadLlama();
  const out: T[] = [];
  for (const file of files) {
    const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
    const context = await model.createContext({ contextSize: 128, sequences: 1, threads: { ideal: 1, min: 1 }, ignoreMemorySafetyChecks: true });
    out.push(await use(context.getSequence()));
    await context.dispose();
    await model.dispose();
  }
  await llama.dispose();
  return out;
}

// llama.cpp's greedy ids after `prompt` on each file.
export function llamaGreedy(files: string[], prompt: number[], numTokens: number): Promise<number[][]> {
  return eachFile(files, async (seq) => {
    const gen = seq.evaluate(prompt); // default options: temperature 0, greedy
    const ids: number[] = [];
    for (let i = 0; i < numTokens; i++) {
      const { value, done } = await gen.next();
      if (done) break;
      ids.push(value);
    }
    await gen.return(undefined);
    return ids;
  });
}

// llama.cpp's argmax after every prefix of `tokens` (teacher-forced: each file sees the same prefixes).
export function llamaArgmax(files: string[], tokens: number[]): Promise<number[][]> {
  return eachFile(files, async (seq) => {
    const res = await seq.controlledEvaluate(tokens.map((id) => [id, { generateNext: { token: true } }]));
    return res.map((r) => r?.next.token ?? -1);
  });
}

export const agreement = (a: number[], b: number[]) => a.filter((id, i) => id === b[i]).length;
