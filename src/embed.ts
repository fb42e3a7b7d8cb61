// Embeddings: an embedding model (--embedding-model, a causal LM such as Qwen3-Embedding) runs
// prefill-only requests through its own engine loop, as the reranker model does. Each input's
// final-normed hidden states (the LM head's input, HF's last_hidden_state) are pooled into one
// vector, the last token's (Qwen3-Embedding, gte-Qwen2, e5-mistral) or the mean over the prompt,
// then, unless asked not to, scaled to unit length.
import { WeftError } from './errors.js';
import { loadModelSpec } from './model/load.js';
import type { Pooling } from './model/types.js';
import { EngineLoop } from './scheduler/engine.js';
import { sideLoopOptions } from './scheduler/scheduler-options.js';
import type { EngineInitOptions } from './scheduler/protocol.js';
import { TextTokenizer } from './tokenizer.js';
import { EngineWorker } from './workers/pool.js';

export class Embedder {
  private constructor(
    readonly name: string,
    readonly pooling: Pooling,
    readonly normalize: boolean, // the default of a request that does not say
    readonly dim: number,
    readonly maxInputTokens: number, // a prefill-only request still asks its loop for one output token
    readonly tokenizer: TextTokenizer,
    private readonly loop: EngineLoop,
    private readonly worker: EngineWorker,
  ) {}

  static async start(name: string, options: EngineInitOptions, pooling: Pooling, normalize: boolean): Promise<Embedder> {
    const spec = options.spec ?? (await loadModelSpec(options.modelPath));
    const maxModelLen = options.maxContextLen || spec.config.maxPositions;
    const worker = await EngineWorker.start(0, options);
    const loop = new EngineLoop([worker], { scheduler: sideLoopOptions(options, maxModelLen), eosTokenIds: [] });
    return new Embedder(name, pooling, normalize, spec.config.dim, maxModelLen - 1, new TextTokenizer(spec), loop, worker);
  }

  // The pooled hidden state of a prompt (not normalized). The step's one sampled token is
  // evaluated on a single LM-head row and dropped. signal: the client is gone, stop computing.
  async embed(ids: readonly number[], signal?: AbortSignal): Promise<Float32Array> {
    if (ids.length === 0) throw new WeftError('WEFT_ERR_REQ_INVALID', 'an input to embed must hold at least one token');
    const h = this.loop.submit({
      promptTokenIds: ids,
      maxTokens: 1,
      ignoreEos: true,
      logitRows: [0],
      sampling: { temperature: 0 },
      hiddenStates: this.pooling === 'mean' ? 'all' : 'last',
    });
    const abort = () => this.loop.abort(h.requestId);
    signal?.addEventListener('abort', abort, { once: true });
    const pool = new Float32Array(this.dim);
    // A preempted sequence recomputes its prompt from the start: positions already pooled come
    // again and are skipped. (Prefill-only sequences seldom are: the running ones take a step's
    // budget in order, so few grow at once; no test forces it.)
    let next = 0;
    try {
      for await (const ev of h.events) {
        if (ev.error) throw ev.error;
        if (ev.finishReason === 'abort')
          throw new WeftError('WEFT_ERR_HTTP_SHUTDOWN_ABORTED', 'the embedding request was aborted (client gone or server shutting down)');
        if (!ev.hidden) continue;
        const { position, states } = ev.hidden;
        for (let r = 0; r < states.length / this.dim; r++) {
          const p = position + r;
          if (p < next) continue;
          next = p + 1;
          const row = states.subarray(r * this.dim, (r + 1) * this.dim);
          if (this.pooling === 'mean') for (let d = 0; d < this.dim; d++) pool[d] += row[d] / ids.length;
          else if (p === ids.length - 1) pool.set(row);
        }
      }
    } finally {
      signal?.removeEventListener('abort', abort);
    }
    if (next !== ids.length)
      throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', `the embedding model returned hidden states up to position ${next} of ${ids.length}`);
    return pool;
  }

  async close(): Promise<void> {
    await this.loop.close();
    await this.worker.close();
  }
}

// OpenAI's `dimensions`: the first d values (Matryoshka-trained models keep their meaning there),
// then scaled to unit length when normalize.
export function finishEmbedding(v: Float32Array, dimensions: number | undefined, normalize: boolean): Float32Array {
  const out = dimensions !== undefined && dimensions < v.length ? v.slice(0, dimensions) : v;
  if (!normalize) return out;
  let ss = 0;
  for (const x of out) ss += x * x;
  const scale = ss > 0 ? 1 / Math.sqrt(ss) : 0;
  for (let i = 0; i < out.length; i++) out[i] *= scale;
  return out;
}
