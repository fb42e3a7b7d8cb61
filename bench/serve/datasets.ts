// The prompts to send, as vLLM's benchmark datasets build them: random token ids of exact
// lengths (with an optional shared prefix), prefixes repeated across requests (prefix caching),
// or the first human turn of ShareGPT conversations read from a local JSON file.
import { readFileSync } from 'node:fs';

import { makeRng, type Rng } from './rng.js';
import type { BenchRequest } from './types.js';

export type DatasetName = 'random' | 'sharegpt' | 'prefix-repetition';

export interface DatasetOptions {
  name: DatasetName;
  numPrompts: number;
  seed: number;
  vocabSize: number;
  randomInputLen: number;
  randomOutputLen: number;
  randomRangeRatio: number;
  randomPrefixLen: number;
  prefixLen: number;
  suffixLen: number;
  numPrefixes: number;
  prefixOutputLen: number;
  datasetPath?: string;
  sharegptOutputLen?: number;
}

// Low token ids are control/byte tokens in most vocabularies; start above them when the vocabulary allows.
const MIN_TOKEN_ID = 10;

export function randomIds(rng: Rng, n: number, vocabSize: number): number[] {
  const lo = vocabSize > 2 * MIN_TOKEN_ID ? MIN_TOKEN_ID : 0;
  return Array.from({ length: n }, () => rng.int(lo, vocabSize - 1));
}

// vLLM's bounds: [floor(len·(1−r)), ceil(len·(1+r))], never below `min`.
export function lengthBounds(len: number, ratio: number, min: number): [number, number] {
  if (!(ratio >= 0 && ratio < 1)) throw new Error(`--random-range-ratio must be in [0, 1), got ${ratio}`);
  return [Math.max(min, Math.floor(len * (1 - ratio))), Math.max(min, Math.ceil(len * (1 + ratio)))];
}

export function randomDataset(o: DatasetOptions, rng: Rng): BenchRequest[] {
  const [inLo, inHi] = lengthBounds(o.randomInputLen, o.randomRangeRatio, 0);
  const [outLo, outHi] = lengthBounds(o.randomOutputLen, o.randomRangeRatio, 1);
  const prefix = randomIds(rng, o.randomPrefixLen, o.vocabSize);
  return Array.from({ length: o.numPrompts }, () => {
    const ids = [...prefix, ...randomIds(rng, Math.max(rng.int(inLo, inHi), prefix.length ? 0 : 1), o.vocabSize)];
    return { prompt: ids, promptLen: ids.length, maxTokens: rng.int(outLo, outHi) };
  });
}

export function prefixRepetitionDataset(o: DatasetOptions, rng: Rng): BenchRequest[] {
  if (o.numPrefixes < 1) throw new Error('--prefix-repetition-num-prefixes must be ≥ 1');
  const prefixes = Array.from({ length: o.numPrefixes }, () => randomIds(rng, o.prefixLen, o.vocabSize));
  const reqs = Array.from({ length: o.numPrompts }, (_, i) => {
    const ids = [...prefixes[i % o.numPrefixes], ...randomIds(rng, o.suffixLen, o.vocabSize)];
    return { prompt: ids, promptLen: ids.length, maxTokens: o.prefixOutputLen };
  });
  return rng.shuffle(reqs);
}

interface ShareGptTurn {
  from?: string;
  value?: string;
}

// Without the server's tokenizer, lengths are estimated at 4 characters a token; the input
// lengths are replaced by the server's usage.prompt_tokens when it reports them.
export const estimateTokens = (text: string): number => Math.max(1, Math.ceil(text.length / 4));

export function sharegptDataset(o: DatasetOptions, rng: Rng): BenchRequest[] {
  if (!o.datasetPath) throw new Error('--dataset-name sharegpt needs --dataset-path FILE.json');
  const raw = JSON.parse(readFileSync(o.datasetPath, 'utf8')) as { conversations?: ShareGptTurn[] }[];
  if (!Array.isArray(raw)) throw new Error(`${o.datasetPath}: expected a JSON array of conversations`);
  const pairs: BenchRequest[] = [];
  for (const c of raw) {
    const turns = c.conversations ?? [];
    const h = turns.findIndex((t) => t.from === 'human' && t.value);
    const answer = h >= 0 ? turns[h + 1] : undefined;
    if (!answer?.value) continue;
    const prompt = turns[h].value!;
    pairs.push({ prompt, promptLen: estimateTokens(prompt), maxTokens: o.sharegptOutputLen ?? estimateTokens(answer.value) });
  }
  if (pairs.length === 0) throw new Error(`${o.datasetPath}: no conversation with a human turn followed by an answer`);
  rng.shuffle(pairs);
  // cycles when the file has fewer conversations than --num-prompts
  return Array.from({ length: o.numPrompts }, (_, i) => pairs[i % pairs.length]);
}

export function buildDataset(o: DatasetOptions): BenchRequest[] {
  const rng = makeRng(o.seed);
  switch (o.name) {
    case 'random':
      return randomDataset(o, rng);
    case 'prefix-repetition':
      return prefixRepetitionDataset(o, rng);
    case 'sharegpt':
      return sharegptDataset(o, rng);
    default:
      throw new Error(`unknown --dataset-name "${o.name as string}" (random, sharegpt, prefix-repetition)`);
  }
}
