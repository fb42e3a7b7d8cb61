// vLLM's allowed_token_ids as a TokenMatcher: the same fixed set at every step. Stateless, so a
// fork is the matcher itself.
import type { TokenMatcher } from './types.js';

export class AllowedTokensMatcher implements TokenMatcher {
  readonly #mask: Uint32Array;

  constructor(ids: readonly number[], vocabSize: number) {
    this.#mask = new Uint32Array(Math.ceil(vocabSize / 32));
    for (const id of ids) if (id >= 0 && id < vocabSize) this.#mask[id >>> 5] |= 1 << (id & 31);
  }

  fillNextTokenMask(out: Uint32Array): void {
    out.set(this.#mask);
  }

  acceptToken(token: number): boolean {
    return token >= 0 && token >>> 5 < this.#mask.length && ((this.#mask[token >>> 5] >>> (token & 31)) & 1) === 1;
  }

  fork(): TokenMatcher {
    return this;
  }

  dispose(): void {}
}
