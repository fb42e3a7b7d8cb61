// Rerankers: one interface, `rank(query, candidates)` → candidate indexes best first with their
// scores. `logprob` (the default, and what `use_rerank` falls back to without a reranker model)
// ranks by the beam score, so it agrees with the beam search's own order. `ModelReranker` runs a
// Qwen3-Reranker-style causal LM: a candidate's score is P(yes) = sigmoid(logit_yes − logit_no)
// at the last position of the model card's prompt, computed by prefill-only requests through its
// own engine loop (the shared system + instruction + query prefix comes from the prefix cache).
import { WeftError } from './errors.js';
import { loadModelSpec } from './model/load.js';
import { EngineLoop } from './scheduler/engine.js';
import { sideLoopOptions } from './scheduler/scheduler-options.js';
import { TextTokenizer } from './tokenizer.js';
import type { EngineInitOptions } from './scheduler/protocol.js';
import { EngineWorker } from './workers/pool.js';

export interface RerankCandidate {
  text: string;
  beamScore?: number; // beam search: sum of log-probs / generated_len ** length_penalty
  cumLogprob?: number;
}

export interface RankedCandidate {
  index: number;
  score: number;
}

export interface Reranker {
  readonly name: string;
  rank(query: string, candidates: readonly RerankCandidate[], instruction?: string): Promise<RankedCandidate[]>;
}

const byScore = (a: RankedCandidate, b: RankedCandidate) => b.score - a.score || a.index - b.index;

export const logprobReranker: Reranker = {
  name: 'logprob',
  async rank(_query, candidates) {
    return candidates.map((c, index) => ({ index, score: c.beamScore ?? 0 })).sort(byScore);
  },
};

export const DEFAULT_RERANK_INSTRUCTION = 'Given a web search query, retrieve relevant passages that answer the query';

// The Qwen3-Reranker model card's prompt; the answer is read at its last position.
export function rerankPrompt(instruction: string, query: string, doc: string): string {
  return (
    '<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct provided. ' +
    'Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n' +
    `<Instruct>: ${instruction}\n<Query>: ${query}\n<Document>: ${doc}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n`
  );
}

export const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

export class ModelReranker implements Reranker {
  readonly name: string;

  private constructor(
    name: string,
    private readonly loop: EngineLoop,
    private readonly worker: EngineWorker,
    readonly tokenizer: TextTokenizer,
    readonly yesId: number,
    readonly noId: number,
  ) {
    this.name = name;
  }

  static async start(name: string, options: EngineInitOptions): Promise<ModelReranker> {
    const spec = options.spec ?? (await loadModelSpec(options.modelPath));
    const tokenizer = new TextTokenizer(spec);
    const one = async (word: string) => {
      const ids = await tokenizer.encode(word, false);
      if (ids.length !== 1)
        throw new WeftError('WEFT_ERR_MODEL_TOKENIZER', `reranker ${options.modelPath}: "${word}" is not a single token (${ids.length} tokens)`);
      return ids[0];
    };
    const [yesId, noId] = [await one('yes'), await one('no')];
    const worker = await EngineWorker.start(0, options);
    const loop = new EngineLoop([worker], {
      scheduler: sideLoopOptions(options, options.maxContextLen || spec.config.maxPositions),
      eosTokenIds: [],
    });
    return new ModelReranker(name, loop, worker, tokenizer, yesId, noId);
  }

  // The prompt ids of one candidate (also what /rerank_scores reports).
  async promptIds(query: string, doc: string, instruction = DEFAULT_RERANK_INSTRUCTION): Promise<number[]> {
    return this.tokenizer.encode(rerankPrompt(instruction, query, doc), false);
  }

  async score(ids: number[]): Promise<number> {
    // only the two LM-head rows the score reads are evaluated (of a 151,669-token vocabulary for Qwen3)
    const h = this.loop.submit({
      promptTokenIds: ids,
      maxTokens: 1,
      ignoreEos: true,
      returnLogits: true,
      logitRows: [this.yesId, this.noId].sort((a, b) => a - b),
      sampling: { temperature: 0 },
    });
    let logits: Float32Array | undefined;
    for await (const ev of h.events) {
      if (ev.error) throw ev.error;
      if (ev.logits) logits = ev.logits;
    }
    if (!logits) throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', 'the reranker returned no logits');
    return sigmoid(logits[this.yesId] - logits[this.noId]);
  }

  async rank(query: string, candidates: readonly RerankCandidate[], instruction?: string): Promise<RankedCandidate[]> {
    const scores = await Promise.all(candidates.map(async (c) => this.score(await this.promptIds(query, c.text, instruction))));
    return scores.map((score, index) => ({ index, score })).sort(byScore);
  }

  async close(): Promise<void> {
    await this.loop.close();
    await this.worker.close();
  }
}
