// Seeded random walks through a TokenMatcher, standing in for sampling at temperature 1 without a
// model: at each step a token is drawn uniformly from the mask. After `freeSteps` the walk heads for
// the end (EOS when allowed, else a closing `"`/`}`/`]`/`)` token, else a one-character token), as a
// model's distribution would; a walk that hits `maxSteps` did not finish. The text is decoded with
// the model's real tokenizer, after a short context, as the server streams it.
import { join } from 'node:path';

import { loadTokenizerFiles } from '../../src/model/load.js';
import type { ConstraintCompiler, TokenMatcher } from '../../src/structured/types.js';
import { openConstraintCompiler } from '../../src/structured/xgrammar.js';
import { TextTokenizer } from '../../src/tokenizer.js';
import { mulberry32 } from '../../bench/random.js';
import { MODEL_DIR, REPO_ROOT } from '../fixtures/paths.js';

export { mulberry32 };

export const SMOLLM2_DIR = join(REPO_ROOT, '..', 'shared', 'models', 'smollm2-135m-shape');
export const TOKENIZER_DIRS: [name: string, dir: string][] = [
  ['stories260K', MODEL_DIR],
  ['smollm2', SMOLLM2_DIR],
];

export interface WalkEnv {
  compiler: ConstraintCompiler;
  vocabSize: number;
  stop: ReadonlySet<number>;
  isCloser: Uint8Array;
  isShort: Uint8Array;
  tokenizer: TextTokenizer;
  context: number[];
  contextText: string;
}

export async function walkEnv(dir: string, extraVocab = 0): Promise<WalkEnv> {
  const files = loadTokenizerFiles(dir);
  const tokenizer = new TextTokenizer({ ...files, path: dir });
  const vocabSize = files.config.vocabSize + extraVocab;
  const compiler = await openConstraintCompiler(dir, vocabSize);
  const isCloser = new Uint8Array(vocabSize),
    isShort = new Uint8Array(vocabSize);
  const n = tokenizer.vocabSize();
  const texts = await tokenizer.decodeMany(
    Array.from({ length: n }, (_, i) => [i]),
    false,
  );
  texts.forEach((s, i) => {
    if (/^\s*["}\])]+\s*$/.test(s)) isCloser[i] = 1;
    if ([...s].length === 1) isShort[i] = 1;
  });
  const context = await tokenizer.encode('Hi', false);
  return {
    compiler,
    vocabSize,
    stop: new Set(files.config.eosTokenIds),
    isCloser,
    isShort,
    tokenizer,
    context,
    contextText: await tokenizer.decode(context),
  };
}

export function allowedTokens(mask: Uint32Array, vocabSize: number, keep: (t: number) => boolean = () => true): number[] {
  const out: number[] = [];
  for (let w = 0; w < mask.length; w++) {
    let bits = mask[w];
    while (bits !== 0) {
      const b = 31 - Math.clz32(bits & -bits);
      const t = w * 32 + b;
      if (t < vocabSize && keep(t)) out.push(t);
      bits &= bits - 1;
    }
  }
  return out;
}

export interface Walk {
  tokens: number[];
  text: string;
  isFinished: boolean; // ended on EOS (or with nothing but EOS allowed), not at maxSteps
  problem?: string; // an empty mask, or an allowed token the matcher refused
}

export async function randomWalk(env: WalkEnv, matcher: TokenMatcher, seed: number, freeSteps = 40, maxSteps = 2000): Promise<Walk> {
  const rand = mulberry32(seed);
  const mask = new Uint32Array(Math.ceil(env.vocabSize / 32));
  const tokens: number[] = [];
  let isFinished = false,
    problem: string | undefined;
  for (let step = 0; step < maxSteps; step++) {
    await matcher.fillNextTokenMask(mask);
    const allowed = allowedTokens(mask, env.vocabSize);
    if (allowed.length === 0) {
      problem = `empty mask after ${tokens.length} tokens`;
      break;
    }
    const canStop = allowed.some((t) => env.stop.has(t));
    if (canStop && (step >= freeSteps || allowed.length === 1)) {
      isFinished = true;
      break;
    }
    let pool = allowed;
    if (step >= freeSteps) {
      const closers = allowed.filter((t) => env.isCloser[t]);
      const short = allowed.filter((t) => env.isShort[t]);
      pool = closers.length > 0 ? closers : short.length > 0 ? short : allowed;
    }
    const pick = pool[Math.floor(rand() * pool.length)];
    if (env.stop.has(pick)) {
      isFinished = true;
      break;
    }
    if (!matcher.acceptToken(pick)) {
      problem = `the matcher refused allowed token ${pick}`;
      break;
    }
    tokens.push(pick);
  }
  const full = await env.tokenizer.decode([...env.context, ...tokens]);
  return { tokens, text: full.slice(env.contextText.length), isFinished, problem };
}
