// Beam search as Hugging Face transformers' generate(num_beams=k) does it, as a pure policy:
// after each engine step it decides which (beam, token) pairs continue and which end as
// hypotheses. It never sees the prompt, so every length here is a count of generated tokens:
// the length penalty divides by the generated length including the ending token, as HF does
// (vLLM divides by prompt + generated, which lets the prompt's length change the ranking).

export type EarlyStopping = boolean | 'never';

export interface BeamParams {
  beamWidth: number; // k, 1..16
  maxTokens: number; // generated tokens at most per hypothesis, the ending token included
  lengthPenalty: number; // score = cumLogprob / generatedLen ** lengthPenalty
  earlyStopping: EarlyStopping;
  eosTokenIds: readonly number[];
  stopTokenIds?: readonly number[]; // end a hypothesis like EOS, even with ignoreEos
  ignoreEos?: boolean;
  minTokens?: number; // EOS/stop tokens do not end a hypothesis before this many generated tokens
  // Stop strings: true when the text of these generated tokens contains one (asked of each top
  // candidate that no ending id ends; the text layer above answers, this module knows no text).
  endsWithStop?: (tokens: readonly number[]) => boolean;
  numReturnSequences?: number; // 1..beamWidth, default beamWidth
}

export interface BeamCandidate {
  tokenId: number;
  logprob: number;
}
export interface Hypothesis {
  tokens: number[];
  cumLogprob: number;
  score: number;
  finishReason: 'stop' | 'length';
}
export interface NextBeam {
  parent: number;
  tokenId: number;
  cumLogprob: number;
}
export interface BeamStep {
  next: NextBeam[];
  finished: Hypothesis[];
  done: boolean;
}

interface Beam {
  tokens: number[];
  cumLogprob: number;
}

export const MAX_BEAM_WIDTH = 16;

function checkParams(p: BeamParams): void {
  const isInt = (n: unknown, min: number): boolean => Number.isInteger(n) && (n as number) >= min;
  if (!isInt(p.beamWidth, 1) || p.beamWidth > MAX_BEAM_WIDTH)
    throw new Error(`beam width must be an integer in 1..${MAX_BEAM_WIDTH}, got ${p.beamWidth}`);
  if (!isInt(p.maxTokens, 1)) throw new Error(`maxTokens must be an integer >= 1, got ${p.maxTokens}`);
  if (!Number.isFinite(p.lengthPenalty)) throw new Error(`lengthPenalty must be a finite number, got ${p.lengthPenalty}`);
  if (p.earlyStopping !== true && p.earlyStopping !== false && p.earlyStopping !== 'never')
    throw new Error(`earlyStopping must be true, false or 'never', got ${String(p.earlyStopping)}`);
  if (p.minTokens !== undefined && !isInt(p.minTokens, 0)) throw new Error(`minTokens must be an integer >= 0, got ${p.minTokens}`);
  const n = p.numReturnSequences;
  if (n !== undefined && (!isInt(n, 1) || n > p.beamWidth))
    throw new Error(`numReturnSequences must be an integer in 1..beamWidth (${p.beamWidth}), got ${n}`);
}

// HF's BeamHypotheses: the best `capacity` by score. When full, a newcomer enters only if
// strictly better than the worst, which leaves (among equal worst scores, the earliest added).
class KeptHypotheses {
  private readonly items: { hyp: Hypothesis; order: number }[] = [];
  private numAdded = 0;

  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.items.length;
  }

  get worstScore(): number {
    let worst = Infinity;
    for (const { hyp } of this.items) worst = Math.min(worst, hyp.score);
    return worst;
  }

  add(hyp: Hypothesis): boolean {
    if (this.items.length >= this.capacity && !(hyp.score > this.worstScore)) return false;
    this.items.push({ hyp, order: this.numAdded++ });
    if (this.items.length > this.capacity) {
      let worst = 0;
      for (let i = 1; i < this.items.length; i++) if (this.items[i].hyp.score < this.items[worst].hyp.score) worst = i;
      this.items.splice(worst, 1);
    }
    return true;
  }

  clone(): KeptHypotheses {
    const copy = new KeptHypotheses(this.capacity);
    copy.items.push(...this.items);
    copy.numAdded = this.numAdded;
    return copy;
  }

  // Best first; equal scores put the later-added first, as HF's finalize (stable ascending
  // sort, popped from the end) does.
  ranked(): Hypothesis[] {
    return [...this.items].sort((a, b) => b.hyp.score - a.hyp.score || b.order - a.order).map((e) => e.hyp);
  }
}

export class BeamSearch {
  readonly beamWidth: number;
  readonly maxTokens: number;
  readonly lengthPenalty: number;
  readonly earlyStopping: EarlyStopping;
  readonly minTokens: number;
  readonly numReturnSequences: number;
  private readonly endingIds: ReadonlySet<number>;
  private readonly endsWithStop?: (tokens: readonly number[]) => boolean;

  private alive: Beam[] = [{ tokens: [], cumLogprob: 0 }];
  private kept: KeptHypotheses;
  private numGenerated = 0;
  // HF's `_done`: set by the is_done heuristic, and then finalize leaves the alive beams out
  private isHeuristicDone = false;
  private isOver = false;
  private result: Hypothesis[] | null = null;

  constructor(params: BeamParams) {
    checkParams(params);
    this.beamWidth = params.beamWidth;
    this.maxTokens = params.maxTokens;
    this.lengthPenalty = params.lengthPenalty;
    this.earlyStopping = params.earlyStopping;
    this.minTokens = params.minTokens ?? 0;
    this.numReturnSequences = params.numReturnSequences ?? params.beamWidth;
    const ending = new Set(params.stopTokenIds ?? []);
    if (!params.ignoreEos) for (const id of params.eosTokenIds) ending.add(id);
    this.endingIds = ending;
    this.endsWithStop = params.endsWithStop;
    this.kept = new KeptHypotheses(this.beamWidth);
  }

  get beams(): readonly { tokens: readonly number[]; cumLogprob: number }[] {
    return this.alive;
  }

  get hypotheses(): readonly Hypothesis[] {
    return this.kept.ranked();
  }

  get isDone(): boolean {
    return this.isOver;
  }

  // HF takes the top 2k so that k beams survive even if k of the candidates end.
  get numCandidates(): number {
    return 2 * this.beamWidth;
  }

  step(candidates: readonly (readonly BeamCandidate[])[]): BeamStep {
    if (this.isOver) throw new Error('beam search step after the search is done');
    if (candidates.length !== this.alive.length)
      throw new Error(`beam search step needs candidates for ${this.alive.length} beams, got ${candidates.length}`);
    const top = this.topCandidates(candidates);
    const k = this.beamWidth;
    const len = this.numGenerated + 1;
    const canEnd = len >= this.minTokens;
    const next: NextBeam[] = [];
    const finished: Hypothesis[] = [];
    for (let rank = 0; rank < top.length && next.length < k; rank++) {
      const c = top[rank];
      const ends = canEnd && (this.endingIds.has(c.tokenId) || (this.endsWithStop?.([...this.alive[c.parent].tokens, c.tokenId]) ?? false));
      if (!ends) {
        next.push(c);
        continue;
      }
      // an ending outside the top k would not have been picked with only k beams: HF skips it
      if (rank >= k) continue;
      const hyp: Hypothesis = {
        tokens: [...this.alive[c.parent].tokens, c.tokenId],
        cumLogprob: c.cumLogprob,
        score: this.scoreOf(c.cumLogprob, len),
        finishReason: 'stop',
      };
      if (this.kept.add(hyp)) finished.push(hyp);
    }
    this.alive = next.map((c) => ({ tokens: [...this.alive[c.parent].tokens, c.tokenId], cumLogprob: c.cumLogprob }));
    this.numGenerated = len;
    this.isHeuristicDone = this.checkHeuristicDone();
    this.isOver = this.isHeuristicDone || this.alive.length === 0 || len >= this.maxTokens;
    return { next, finished, done: this.isOver };
  }

  finish(): Hypothesis[] {
    if (this.result === null) {
      this.kept = this.finalSet();
      this.alive = [];
      this.isOver = true;
      this.result = this.kept.ranked().slice(0, this.numReturnSequences);
    }
    return [...this.result];
  }

  // Every later hypothesis extends an alive beam, so the common prefix of the alive beams and
  // the kept hypotheses can only grow; once done, the winner is known.
  committedPrefix(): number[] {
    if (this.isOver) return [...(this.finalSet().ranked()[0]?.tokens ?? [])];
    const seqs: readonly (readonly number[])[] = [...this.alive.map((b) => b.tokens), ...this.kept.ranked().map((h) => h.tokens)];
    if (seqs.length === 0) return [];
    let n = seqs[0].length;
    for (const s of seqs) {
      n = Math.min(n, s.length);
      for (let i = 0; i < n; i++) if (s[i] !== seqs[0][i]) n = i;
    }
    return seqs[0].slice(0, n);
  }

  // The global top 2k by beam cumLogprob + candidate logprob; ties go to the lower beam index,
  // then the lower token id, so a run is reproducible whatever order the engine returns.
  // -inf (masked) candidates are never chosen.
  private topCandidates(candidates: readonly (readonly BeamCandidate[])[]): NextBeam[] {
    const pool: NextBeam[] = [];
    candidates.forEach((list, parent) => {
      for (const c of list)
        if (c.logprob > -Infinity) pool.push({ parent, tokenId: c.tokenId, cumLogprob: this.alive[parent].cumLogprob + c.logprob });
    });
    if (pool.length === 0) throw new Error('beam search step got no finite candidate');
    pool.sort((a, b) => b.cumLogprob - a.cumLogprob || a.parent - b.parent || a.tokenId - b.tokenId);
    return pool.slice(0, 2 * this.beamWidth);
  }

  private scoreOf(cumLogprob: number, len: number): number {
    return len === 0 ? cumLogprob : cumLogprob / len ** this.lengthPenalty;
  }

  // HF's is_done. Width 1 is done at the first hypothesis because HF runs greedy decoding for
  // num_beams=1, where early_stopping has no effect.
  private checkHeuristicDone(): boolean {
    if (this.kept.size < this.beamWidth) return false;
    if (this.beamWidth === 1 || this.earlyStopping === true || this.alive.length === 0) return true;
    let best = -Infinity;
    for (const b of this.alive) best = Math.max(best, b.cumLogprob);
    // 'never' with a positive penalty: a longer hypothesis divides by more, so the bound is
    // reached at maxTokens; otherwise the bound is the current length.
    const len = this.earlyStopping === 'never' && this.lengthPenalty > 0 ? this.maxTokens : this.numGenerated;
    return this.kept.worstScore >= best / len ** this.lengthPenalty;
  }

  // HF's finalize: unless the heuristic ended the search, the alive beams join as 'length'.
  private finalSet(): KeptHypotheses {
    const set = this.kept.clone();
    if (!this.isHeuristicDone)
      for (const b of this.alive)
        set.add({ tokens: [...b.tokens], cumLogprob: b.cumLogprob, score: this.scoreOf(b.cumLogprob, b.tokens.length), finishReason: 'length' });
    return set;
  }
}
