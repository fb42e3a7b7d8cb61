// Keeps constrained output valid UTF-8. xgrammar matches multi-byte characters loosely at the
// byte level: where a grammar allows "any character" (`.`, `[^"]`) it lets a lone continuation
// byte, an overlong form (E0 9F 95) or F5..FF through, which a byte-fallback or byte-level
// vocabulary can spell with single-byte tokens, and which the detokenizer then shows as U+FFFD.
// This guard follows the UTF-8 decoder state across the accepted tokens and clears, from every
// mask, the tokens whose bytes cannot continue it. The per-state masks are precomputed, so a mask
// costs one AND per 32 tokens.
import { tokenBytes, type GrammarVocab } from './vocab.js';

// UTF-8 decoder states: 0 at a character boundary; 1..3 continuation bytes still needed; 4..7 the
// restricted second byte after E0, ED, F0, F4 (no overlong forms, no surrogates, nothing past U+10FFFF).
const NUM_STATES = 8;
const REJECT = -1;

function step(state: number, b: number): number {
  const cont = b >= 0x80 && b <= 0xbf;
  switch (state) {
    case 0:
      if (b < 0x80) return 0;
      if (b >= 0xc2 && b <= 0xdf) return 1;
      if (b === 0xe0) return 4;
      if (b === 0xed) return 5;
      if (b >= 0xe1 && b <= 0xef) return 2;
      if (b === 0xf0) return 6;
      if (b >= 0xf1 && b <= 0xf3) return 3;
      if (b === 0xf4) return 7;
      return REJECT;
    case 1:
      return cont ? 0 : REJECT;
    case 2:
      return cont ? 1 : REJECT;
    case 3:
      return cont ? 2 : REJECT;
    case 4:
      return b >= 0xa0 && b <= 0xbf ? 1 : REJECT;
    case 5:
      return b >= 0x80 && b <= 0x9f ? 1 : REJECT;
    case 6:
      return b >= 0x90 && b <= 0xbf ? 2 : REJECT;
    case 7:
      return b >= 0x80 && b <= 0x8f ? 2 : REJECT;
    default:
      return REJECT;
  }
}

export class Utf8Guard {
  // next[s][t]: the state after token t from state s (REJECT: t cannot follow); tokens without
  // bytes (special tokens) keep the state
  readonly #next: Int8Array[];
  readonly #allowed: Uint32Array[]; // per state, the tokens that can follow (bitmask)
  readonly #isNeeded: boolean; // false when every token is whole characters

  constructor(vocab: Pick<GrammarVocab, 'tokens' | 'type'>, vocabSize: number) {
    const numWords = Math.ceil(vocabSize / 32);
    this.#next = Array.from({ length: NUM_STATES }, () => new Int8Array(vocabSize));
    this.#allowed = Array.from({ length: NUM_STATES }, () => new Uint32Array(numWords).fill(0xffffffff));
    let isNeeded = false;
    for (let t = 0; t < vocabSize; t++) {
      const bytes = t < vocab.tokens.length ? tokenBytes(vocab, vocab.tokens[t]) : new Uint8Array(0);
      for (let s = 0; s < NUM_STATES; s++) {
        let state = s;
        for (let i = 0; i < bytes.length && state !== REJECT; i++) state = step(state, bytes[i]);
        this.#next[s][t] = state;
        if (state === REJECT) this.#allowed[s][t >> 5] &= ~(1 << (t & 31));
        if (s === 0 && state !== 0) isNeeded = true;
      }
    }
    this.#isNeeded = isNeeded;
  }

  static readonly START = 0;

  // Clears the tokens that cannot follow `state` from a grammar's mask.
  apply(state: number, mask: Uint32Array): void {
    if (!this.#isNeeded) return;
    const allowed = this.#allowed[state];
    for (let w = 0; w < allowed.length; w++) mask[w] &= allowed[w];
  }

  next(state: number, token: number): number {
    return this.#next[state][token];
  }
}
