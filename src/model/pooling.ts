// How an embedding model turns its hidden states into one vector, as its files say: a GGUF's
// `<arch>.pooling_type` (llama.cpp's enum), or a sentence-transformers directory's
// `1_Pooling/config.json` (and a `Normalize` module in `modules.json`). The loader reads it with
// the rest of the model's files (ModelSpec.pooling).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

import { WeftError } from '../errors.js';
import type { GgufValue } from './gguf.js';
import type { Pooling, PoolingConfig } from './types.js';

// llama.cpp's enum llama_pooling_type: 0 none, 1 mean, 2 cls, 3 last, 4 rank (a reranker's head)
const GGUF_POOLING: Record<number, Pooling | 'cls'> = { 1: 'mean', 2: 'cls', 3: 'last' };

// sentence-transformers' Pooling flags, in the order weft prefers them when several are set
const ST_MODES: [string, Pooling | 'cls'][] = [
  ['pooling_mode_lasttoken', 'last'],
  ['pooling_mode_mean_tokens', 'mean'],
  ['pooling_mode_cls_token', 'cls'],
];

export function ggufPooling(metadata: ReadonlyMap<string, GgufValue>): PoolingConfig {
  const t = metadata.get(`${String(metadata.get('general.architecture'))}.pooling_type`);
  return { pooling: typeof t === 'number' ? (GGUF_POOLING[t] ?? null) : null, normalize: null };
}

export function sentenceTransformersPooling(dir: string): PoolingConfig {
  const json = (f: string): unknown => {
    if (!existsSync(join(dir, f))) return null;
    try {
      return JSON.parse(readFileSync(join(dir, f), 'utf8'));
    } catch (e) {
      throw new WeftError('WEFT_ERR_MODEL_BAD_CONFIG', `${join(dir, f)}: ${(e as Error).message}`);
    }
  };
  const modules = json('modules.json');
  const types = Array.isArray(modules) ? modules.map((m) => String((m as { type?: unknown }).type ?? '')) : [];
  const normalize = types.length > 0 ? types.some((t) => t.endsWith('.Normalize')) : null;
  const p = json('1_Pooling/config.json') as Record<string, unknown> | null;
  const pooling = p ? (ST_MODES.find(([key]) => p[key] === true)?.[1] ?? null) : null;
  return { pooling, normalize };
}
