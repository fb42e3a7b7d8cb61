// POST /v1/embeddings (and /embeddings): texts or token ids embedded by the embedding model
// (--embedding-model), in OpenAI's shape: {object: 'list', data: [{object: 'embedding', index,
// embedding}], model, usage}; `encoding_format: 'base64'` (what OpenAI's Python client asks for by
// default) sends each vector as little-endian float32 bytes.
import { randomUUID } from 'node:crypto';

import type { FastifyInstance } from 'fastify';

import { finishEmbedding, type Embedder } from '../embed.js';
import { WeftError } from '../errors.js';
import { checkTokenIds } from '../generation.js';
import { embeddingsBody } from './schemas.js';
import { onClientGone } from './sse.js';

interface EmbeddingsBody {
  model?: string;
  input: string | string[] | number[] | number[][];
  encoding_format?: 'float' | 'base64';
  dimensions?: number;
  user?: string;
  add_special_tokens?: boolean;
  normalize?: boolean;
  truncate_prompt_tokens?: number | null;
}

// Inputs of one request computed at once: enough to fill a step, few enough that one request of
// 2048 inputs neither fills the waiting queue (429s) nor holds back the requests after it.
const INPUTS_IN_FLIGHT = 64;

// The inputs as texts or token-id lists, one entry each.
function inputsOf(input: EmbeddingsBody['input']): (string | number[])[] {
  if (typeof input === 'string') return [input];
  if (input.every((x) => typeof x === 'number')) return [input as number[]];
  return input as (string | number[])[];
}

async function tokenIdsOf(e: Embedder, b: EmbeddingsBody, input: string | number[], index: number): Promise<number[]> {
  let ids = typeof input === 'string' ? await e.tokenizer.encode(input, b.add_special_tokens ?? true) : input;
  checkTokenIds(ids, e.tokenizer.vocabSize(), `input ${index}`);
  const k = b.truncate_prompt_tokens === -1 ? e.maxInputTokens : b.truncate_prompt_tokens;
  if (k != null && ids.length > k) ids = ids.slice(-k);
  if (ids.length === 0) throw new WeftError('WEFT_ERR_REQ_INVALID', `input ${index} has no tokens`);
  if (ids.length > e.maxInputTokens)
    throw new WeftError(
      'WEFT_ERR_REQ_PROMPT_TOO_LONG',
      `input ${index} has ${ids.length} tokens; the embedding model takes at most ${e.maxInputTokens} (truncate_prompt_tokens cuts longer ones)`,
    );
  return ids;
}

// Runs fn over items, at most `limit` at a time; the first failure aborts the rest (signal).
async function mapWindowed<T, R>(items: readonly T[], limit: number, signal: AbortSignal, fn: (x: T, i: number) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length && !signal.aborted) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (signal.aborted) throw new WeftError('WEFT_ERR_HTTP_SHUTDOWN_ABORTED', 'the embeddings request was aborted (client gone)');
  return out;
}

const base64Of = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');

export async function embeddingRoutes(app: FastifyInstance): Promise<void> {
  for (const url of ['/v1/embeddings', '/embeddings']) {
    app.post<{ Body: EmbeddingsBody }>(
      url,
      { schema: { body: embeddingsBody, tags: ['embeddings'], summary: 'Embed texts or token ids' } },
      async (request, reply) => {
        const e = app.weft.embedder;
        if (!e) throw new WeftError('WEFT_ERR_REQ_NO_EMBEDDING_MODEL', 'this server has no embedding model: start it with --embedding-model PATH');
        const b = request.body;
        if (b.truncate_prompt_tokens === 0) throw new WeftError('WEFT_ERR_REQ_INVALID', 'truncate_prompt_tokens must be -1 or at least 1');
        if (b.dimensions !== undefined && b.dimensions > e.dim)
          throw new WeftError('WEFT_ERR_REQ_INVALID', `dimensions ${b.dimensions} is more than the embedding model's ${e.dim}`);
        const t0 = performance.now();
        const inputs = inputsOf(b.input);
        const ids = await Promise.all(inputs.map((x, i) => tokenIdsOf(e, b, x, i)));
        const stop = new AbortController();
        onClientGone(reply, () => stop.abort());
        let vectors: Float32Array[];
        try {
          vectors = await mapWindowed(ids, INPUTS_IN_FLIGHT, stop.signal, (x) => e.embed(x, stop.signal));
        } catch (err) {
          stop.abort(); // the inputs still running are dropped
          throw err;
        }
        const numTokens = ids.reduce((n, x) => n + x.length, 0);
        app.weft.metrics.observeEmbeddings(inputs.length, numTokens, (performance.now() - t0) / 1000);
        const normalize = b.normalize ?? e.normalize;
        return {
          id: `embd-${randomUUID()}`,
          object: 'list',
          created: Math.floor(Date.now() / 1000),
          model: b.model ?? e.name,
          data: vectors.map((v, index) => {
            const out = finishEmbedding(v, b.dimensions, normalize);
            return { object: 'embedding', index, embedding: b.encoding_format === 'base64' ? base64Of(out) : Array.from(out) };
          }),
          usage: { prompt_tokens: numTokens, total_tokens: numTokens },
        };
      },
    );
  }
}
