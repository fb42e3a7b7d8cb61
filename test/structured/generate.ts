// Real generations under constraints, for the structured-output tests: the scheduler, the engine
// loop and a step worker (which compiles the constraint, computes each step's token masks and
// advances its matchers), sampled by the native engine. Two models: stories260K (SentencePiece with
// byte fallback, 512 tokens) and a tiny synthetic model (dim 64, 2 layers) with the SmolLM2
// byte-level BPE tokenizer (49,152 tokens), written into a temporary directory at test time.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { loadTokenizerFiles } from '../../src/model/load.js';
import { synthesizeModel } from '../../src/model/synth.js';
import type { LogitBias } from '../../src/sampling.js';
import { EngineLoop, type RequestHandle } from '../../src/scheduler/engine.js';
import type { FinishReason } from '../../src/scheduler/sequence.js';
import type { ConstraintSpec } from '../../src/structured/types.js';
import { TextTokenizer } from '../../src/tokenizer.js';
import { EngineWorker } from '../../src/workers/pool.js';
import { MODEL_DIR, SMOLLM_DIR } from '../fixtures/paths.js';

export interface GenModel {
  name: string;
  loop: EngineLoop;
  tokenizer: TextTokenizer;
  eosTokenIds: number[];
  prompt: number[];
  promptText: string;
  // The model's lean towards ending what it opened (see closingBias)
  bias: LogitBias;
  close(): Promise<void>;
}

export interface Generation {
  text: string;
  ids: number[];
  finishReason: FinishReason | undefined;
  errorCode?: string;
}

// A tiny model with the SmolLM2 tokenizer: only the tokenizer's shape matters to the grammar engine,
// and dim 64 keeps a 49,152-row LM head cheap enough to sample thousands of tokens in a test.
async function synthSmollm(dir: string): Promise<string> {
  const config = JSON.parse(readFileSync(join(SMOLLM_DIR, 'config.json'), 'utf8')) as Record<string, unknown>;
  const out = join(dir, 'smollm2-tiny');
  await synthesizeModel({
    config: {
      ...config,
      hidden_size: 64,
      intermediate_size: 128,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      num_key_value_heads: 2,
      head_dim: 16,
      max_position_embeddings: 1024,
    },
    out,
    format: 'hf',
    dtype: 'f32',
    seed: 11,
    tokenizerJson: readFileSync(join(SMOLLM_DIR, 'tokenizer.json'), 'utf8'),
  });
  return out;
}

// A model with random weights (and a story model asked for JSON) samples near-uniformly among the
// tokens a grammar allows at temperature 1, so a string that may hold any of 49,152 tokens almost
// never closes. Real models close what they open; this bias stands in for that: every token
// whose text is only closing punctuation (a quote, a bracket, a comma…) gets +5, and the end
// tokens +8. The mask still decides what is allowed: the bias
// only reorders the allowed tokens, as a trained model would.
async function closingBias(tokenizer: TextTokenizer, eos: readonly number[]): Promise<LogitBias> {
  const n = tokenizer.vocabSize();
  const texts = await tokenizer.decodeMany(
    Array.from({ length: n }, (_, i) => [i]),
    false,
  );
  const bias: [number, number][] = [];
  texts.forEach((s, i) => {
    if (/^\s*["}\]]+\s*$/.test(s)) bias.push([i, 12]);
  });
  for (const e of eos) bias.push([e, 15]);
  return bias;
}

export async function openGenModel(name: 'stories260K' | 'smollm2', maxNumSeqs: number): Promise<GenModel> {
  const tmp = name === 'smollm2' ? mkdtempSync(join(tmpdir(), 'weft-structured-')) : null;
  const path = tmp ? await synthSmollm(tmp) : MODEL_DIR;
  const files = loadTokenizerFiles(path);
  const tokenizer = new TextTokenizer({ ...files, path });
  const eosTokenIds = files.config.eosTokenIds;
  // two grammar hosts: each thread costs seconds to start under the test's TypeScript loader
  const worker = await EngineWorker.start(0, {
    modelPath: path,
    dtype: 'f32',
    numThreads: 1,
    numKvBlocks: maxNumSeqs * 24,
    blockSize: 16,
    maxGrammarHosts: 2,
  });
  const loop = new EngineLoop([worker], {
    scheduler: { maxNumSeqs, maxNumWaiting: 1 << 16, maxNumBatchedTokens: 4096, maxModelLen: 1024 },
    eosTokenIds,
  });
  const prompt = await tokenizer.encode('Answer:', true);
  return {
    name,
    loop,
    tokenizer,
    eosTokenIds,
    prompt,
    promptText: await tokenizer.decode(prompt, true),
    bias: await closingBias(tokenizer, eosTokenIds),
    async close() {
      await loop.close();
      await worker.close();
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    },
  };
}

async function collect(m: GenModel, h: RequestHandle): Promise<Generation> {
  const ids: number[] = [];
  for await (const ev of h.events) {
    if (ev.tokenId !== null && !m.eosTokenIds.includes(ev.tokenId)) ids.push(ev.tokenId);
    if (ev.finishReason) {
      return { text: await textOf(m, ids), ids, finishReason: ev.finishReason, ...(ev.error ? { errorCode: ev.error.code } : {}) };
    }
  }
  return { text: '', ids, finishReason: undefined };
}

export async function textOf(m: GenModel, ids: readonly number[]): Promise<string> {
  const full = await m.tokenizer.decode([...m.prompt, ...ids.filter((t) => !m.eosTokenIds.includes(t))], true);
  return full.slice(m.promptText.length);
}

// n samples of one prompt through submitN: the first prefills, the others fork from it (and
// their matchers from its matcher).
export function generateN(m: GenModel, spec: ConstraintSpec, seeds: readonly number[], maxTokens: number): Promise<Generation>[] {
  const inits = seeds.map((seed) => ({
    promptTokenIds: m.prompt,
    maxTokens,
    constraint: spec,
    logitBias: m.bias,
    sampling: { temperature: 1, seed },
  }));
  return m.loop.submitN(inits).map((h) => collect(m, h));
}

// `seeds.length` sampled generations (temperature 1) of one constraint, all submitted at once so
// they share the engine's batches.
export function generate(m: GenModel, spec: ConstraintSpec, seeds: readonly number[], maxTokens: number): Promise<Generation>[] {
  return seeds.map((seed) =>
    collect(
      m,
      m.loop.submit({
        promptTokenIds: m.prompt,
        maxTokens,
        constraint: spec,
        logitBias: m.bias,
        sampling: { temperature: 1, seed, frequencyPenalty: 0.5 },
      }),
    ),
  );
}
