// Rerankers: one interface, `rank(query, candidates)` → candidate indexes best first with their
// scores. `logprob` (the default, and what `use_rerank` falls back to without a reranker model)
// ranks by the beam score, so it agrees with the beam search's own order.
export interface RerankCandidate {
  text: string;
  beamScore: number;     // sum of log-probs / generated_len ** length_penalty
  cumLogprob: number;
}

export interface Reranker {
  readonly name: string;
  rank(query: string, candidates: readonly RerankCandidate[]): Promise<{ index: number; score: number }[]>;
}

export const logprobReranker: Reranker = {
  name: 'logprob',
  async rank(_query, candidates) {
    return candidates.map((c, index) => ({ index, score: c.beamScore })).sort((a, b) => b.score - a.score || a.index - b.index);
  },
};
