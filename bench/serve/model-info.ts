// What the benchmark needs to know about the served model: its id, its context length (requests
// must fit) and its vocabulary size (random token ids must be valid), from the server's
// /v1/models, else from the model files when weft was started here.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

import { readGguf } from '../../src/model/gguf.js';
import type { BenchRequest } from './types.js';

export interface ModelInfo {
  id?: string;
  ownedBy?: string;
  maxModelLen?: number;
  vocabSize?: number;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && v > 0 ? v : undefined);

export async function serverModelInfo(baseUrl: string): Promise<ModelInfo> {
  try {
    const res = await fetch(baseUrl + '/v1/models', { signal: AbortSignal.timeout(10_000) });
    if (!res.ok) return {};
    const m = ((await res.json()) as { data?: Record<string, unknown>[] }).data?.[0] ?? {};
    return {
      id: typeof m.id === 'string' ? m.id : undefined,
      ownedBy: typeof m.owned_by === 'string' ? m.owned_by : undefined,
      maxModelLen: num(m.max_model_len),
      vocabSize: num(m.vocab_size),
    };
  } catch {
    return {};
  }
}

// config.json of an HF directory, or the token list of a GGUF file.
export function localVocabSize(modelPath: string): number | undefined {
  try {
    if (statSync(modelPath).isDirectory()) {
      const file = join(modelPath, 'config.json');
      if (!existsSync(file)) return undefined;
      const c = JSON.parse(readFileSync(file, 'utf8')) as { vocab_size?: number; text_config?: { vocab_size?: number } };
      return num(c.vocab_size ?? c.text_config?.vocab_size);
    }
    const meta = readGguf(modelPath).metadata;
    const tokens = meta.get('tokenizer.ggml.tokens');
    return Array.isArray(tokens) ? tokens.length : undefined;
  } catch {
    return undefined;
  }
}

export function checkFits(requests: BenchRequest[], maxModelLen: number | undefined): void {
  if (!maxModelLen) return;
  const worst = requests.reduce((a, r) => Math.max(a, r.promptLen + r.maxTokens), 0);
  if (worst > maxModelLen)
    throw new Error(
      `a request needs ${worst} tokens (prompt + max_tokens) but the server's context is ${maxModelLen}: lower the input/output lengths`,
    );
}
