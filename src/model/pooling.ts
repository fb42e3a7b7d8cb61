// How an embedding model turns its hidden states into one vector, as its files say: a GGUF's
// `<arch>.pooling_type` (llama.cpp's enum), or a sentence-transformers directory's
// `1_Pooling/config.json` (and a `Normalize` module in `modules.json`). null: the files do not say.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { WeftError } from '../errors.js';
import { readGguf } from './gguf.js';

// CLS pooling is refused: in a causal LM the first position sees only itself (a constant vector).
export type Pooling = 'last' | 'mean';

export interface PoolingConfig {
  pooling: Pooling | 'cls' | null;
  normalize: boolean | null;
}

// llama.cpp's enum llama_pooling_type: 0 none, 1 mean, 2 cls, 3 last, 4 rank (a reranker's head)
const GGUF_POOLING: Record<number, Pooling | 'cls'> = { 1: 'mean', 2: 'cls', 3: 'last' };

// sentence-transformers' Pooling flags, in the order weft prefers them when several are set
const ST_MODES: [string, Pooling | 'cls'][] = [
  ['pooling_mode_lasttoken', 'last'],
  ['pooling_mode_mean_tokens', 'mean'],
  ['pooling_mode_cls_token', 'cls'],
];

export function readPoolingConfig(path: string): PoolingConfig {
  if (!statSync(path).isDirectory()) {
    const { metadata } = readGguf(path);
    const arch = metadata.get('general.architecture');
    const t = metadata.get(`${String(arch)}.pooling_type`);
    return { pooling: typeof t === 'number' || typeof t === 'bigint' ? (GGUF_POOLING[Number(t)] ?? null) : null, normalize: null };
  }
  const json = (f: string): unknown => {
    if (!existsSync(join(path, f))) return null;
    try {
      return JSON.parse(readFileSync(join(path, f), 'utf8'));
    } catch (e) {
      throw new WeftError('WEFT_ERR_MODEL_BAD_CONFIG', `${join(path, f)}: ${(e as Error).message}`);
    }
  };
  const modules = json('modules.json');
  const types = Array.isArray(modules) ? modules.map((m) => String((m as { type?: unknown }).type ?? '')) : [];
  const normalize = types.length > 0 ? types.some((t) => t.endsWith('.Normalize')) : null;
  const p = json('1_Pooling/config.json') as Record<string, unknown> | null;
  const pooling = p ? (ST_MODES.find(([key]) => p[key] === true)?.[1] ?? null) : null;
  return { pooling, normalize };
}
