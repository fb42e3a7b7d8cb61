// Text ↔ token ids through HF tokenizers, and an incremental detokenizer for streaming that
// never emits broken UTF-8.
import tokenizers from 'tokenizers';

import { WeftError } from './errors.js';
import type { ModelSpec } from './model/types.js';

export class TextTokenizer {
  readonly #tok: tokenizers.Tokenizer;
  readonly bosTokenId: number | null;
  readonly #decoder: tokenizers.Decoder | null;
  readonly #special: ReadonlySet<number>;

  constructor(spec: Pick<ModelSpec, 'tokenizerJson' | 'config' | 'path'>) {
    try {
      this.#tok = tokenizers.Tokenizer.fromString(spec.tokenizerJson);
    } catch (e) {
      throw new WeftError('WEFT_ERR_MODEL_TOKENIZER', `${spec.path}: cannot load tokenizer: ${(e as Error).message}`);
    }
    this.bosTokenId = spec.config.bosTokenId;
    this.#decoder = this.#tok.getDecoder();
    const added = (JSON.parse(spec.tokenizerJson) as { added_tokens?: { id: number; special?: boolean }[] }).added_tokens ?? [];
    this.#special = new Set(added.filter((t) => t.special).map((t) => t.id));
  }

  // An empty text encodes to BOS alone (when the model has one).
  async encode(text: string, addSpecialTokens = true): Promise<number[]> {
    if (text === '') return addSpecialTokens && this.bosTokenId !== null ? [this.bosTokenId] : [];
    const enc = await this.#tok.encode(text, undefined, { addSpecialTokens });
    return enc.getIds();
  }

  async encodeWithPieces(text: string, addSpecialTokens = true): Promise<{ ids: number[]; tokens: string[] }> {
    const enc = await this.#tok.encode(text, undefined, { addSpecialTokens });
    return { ids: enc.getIds(), tokens: enc.getTokens() };
  }

  decode(ids: number[], skipSpecialTokens = true): Promise<string> {
    return this.#tok.decode(ids, skipSpecialTokens);
  }

  // Several decodes in one trip to the tokenizer's thread: a streamed token costs one hop.
  decodeMany(ids: number[][], skipSpecialTokens = true): Promise<string[]> {
    return this.#tok.decodeBatch(ids, skipSpecialTokens);
  }

  // Synchronous decode through the tokenizer's decoder, for checks made inside the engine loop
  // (beam search stop strings). Special tokens are left out, as by decode(ids, true).
  decodeNow(ids: readonly number[]): string {
    const pieces: string[] = [];
    for (const id of ids) {
      const t = this.#special.has(id) ? null : this.#tok.idToToken(id);
      if (t !== null) pieces.push(t);
    }
    return this.#decoder ? this.#decoder.decode(pieces) : pieces.join('');
  }

  vocabSize(): number {
    return this.#tok.getVocabSize(true);
  }
}

// Streams text for a growing list of ids: decodes a short window and emits only the new
// suffix once it no longer ends in an incomplete character (U+FFFD). `contextIds` (the last
// few prompt tokens) are decoded as context but never emitted, so the first output token keeps
// the leading space a SentencePiece decoder strips at the start of a text.
export class IncrementalDetokenizer {
  #ids: number[];
  #prefixOffset = 0;
  #readOffset: number;

  constructor(private readonly tok: TextTokenizer, private readonly skipSpecialTokens = true, contextIds: readonly number[] = []) {
    this.#ids = [...contextIds];
    this.#readOffset = this.#ids.length;
  }

  async push(id: number): Promise<string> {
    this.#ids.push(id);
    const [prefix, full] = await this.#window();
    if (full.length > prefix.length && !full.endsWith('\uFFFD')) {
      this.#prefixOffset = this.#readOffset;
      this.#readOffset = this.#ids.length;
      return full.slice(prefix.length);
    }
    return '';
  }

  // Whatever is left at the end (an incomplete trailing character is emitted as U+FFFD).
  async flush(): Promise<string> {
    const [prefix, full] = await this.#window();
    this.#prefixOffset = this.#readOffset = this.#ids.length;
    return full.length > prefix.length ? full.slice(prefix.length) : '';
  }

  // The text of the already emitted context and of the whole window, decoded together.
  #window(): Promise<string[]> {
    return this.tok.decodeMany([this.#ids.slice(this.#prefixOffset, this.#readOffset), this.#ids.slice(this.#prefixOffset)], this.skipSpecialTokens);
  }
}
