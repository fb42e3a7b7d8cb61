// vLLM's bad_words as a TokenMatcher: token sequences the output may never complete. A sequence of
// one token is banned at every step; a longer one bans its last token whenever the tokens before
// it end the output so far. The matcher keeps the last tokens it was fed, as many as the longest
// sequence needs, so a fork copies them.
import type { TokenMatcher } from './types.js';

export class BadWordsMatcher implements TokenMatcher {
  readonly #recent: number[];
  readonly #keep: number;

  constructor(
    readonly sequences: readonly (readonly number[])[],
    readonly vocabSize: number,
    recent: readonly number[] = [],
  ) {
    this.#keep = Math.max(0, ...sequences.map((s) => s.length - 1));
    this.#recent = [...recent];
  }

  fillNextTokenMask(out: Uint32Array): void {
    out.fill(0xffffffff);
    const tail = this.vocabSize & 31;
    if (tail !== 0) out[out.length - 1] = (1 << tail) - 1; // no bits past the vocabulary
    for (const s of this.sequences) {
      const k = s.length - 1;
      if (k > this.#recent.length) continue;
      let matches = true;
      for (let i = 0; i < k && matches; i++) matches = this.#recent[this.#recent.length - k + i] === s[i];
      const last = s[k];
      if (matches && last >= 0 && last < this.vocabSize) out[last >>> 5] &= ~(1 << (last & 31));
    }
  }

  acceptToken(token: number): boolean {
    if (this.#keep === 0) return true;
    this.#recent.push(token);
    if (this.#recent.length > this.#keep) this.#recent.splice(0, this.#recent.length - this.#keep);
    return true;
  }

  fork(): TokenMatcher {
    return new BadWordsMatcher(this.sequences, this.vocabSize, this.#recent);
  }

  dispose(): void {}
}
