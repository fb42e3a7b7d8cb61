// Text ↔ token ids through HF tokenizers, and an incremental detokenizer for streaming that
// never emits broken UTF-8.
import tokenizers from 'tokenizers';

import { WeftError } from './errors.js';
import type { ModelSpec } from './model/types.js';

// The tokenizer loadModelSpec built to check a model's tokenizer JSON, handed to the TextTokenizer
// made next from the same JSON instead of building it again (~0.4 s for a 32K vocabulary, more for
// a larger one). One entry, taken once: nothing shares a tokenizer.
let checked: { json: string; tok: tokenizers.Tokenizer } | null = null;

export function keepCheckedTokenizer(json: string, tok: tokenizers.Tokenizer): void {
  checked = { json, tok };
}

function tokenizerFromJson(json: string): tokenizers.Tokenizer {
  const c = checked;
  if (c !== null && c.json === json) {
    checked = null;
    return c.tok;
  }
  return tokenizers.Tokenizer.fromString(json);
}

export class TextTokenizer {
  readonly #tok: tokenizers.Tokenizer;
  readonly bosTokenId: number | null;
  readonly #decoder: tokenizers.Decoder | null;
  readonly #special: ReadonlySet<number>;
  readonly #bytesOf: (id: number) => Uint8Array;
  readonly #bytes = new Map<number, Uint8Array>();

  constructor(spec: Pick<ModelSpec, 'tokenizerJson' | 'config' | 'path'>) {
    try {
      this.#tok = tokenizerFromJson(spec.tokenizerJson);
    } catch (e) {
      throw new WeftError('WEFT_ERR_MODEL_TOKENIZER', `${spec.path}: cannot load tokenizer: ${(e as Error).message}`);
    }
    this.bosTokenId = spec.config.bosTokenId;
    this.#decoder = this.#tok.getDecoder();
    const json = JSON.parse(spec.tokenizerJson) as TokenizerJson;
    const added = json.added_tokens ?? [];
    this.#special = new Set(added.filter((t) => t.special).map((t) => t.id));
    this.#bytesOf = tokenBytesFunction(json, (id) => this.#tok.idToToken(id));
  }

  // The bytes a token stands for in a text, leading space and byte-fallback bytes included
  // (a SentencePiece '▁' is a space, <0xE2> the byte 0xE2, a byte-level BPE symbol its byte);
  // special tokens: their content.
  tokenBytes(id: number): Uint8Array {
    let b = this.#bytes.get(id);
    if (b === undefined) this.#bytes.set(id, (b = this.#bytesOf(id)));
    return b;
  }

  // Token strings in context, so that joined they are the text of the ids' bytes: a token that
  // ends inside a multi-byte character gets '' and the one completing it the whole character.
  tokenStrings(ids: readonly number[]): string[] {
    const s = new TokenTextStream(this);
    return ids.map((id) => s.push(id));
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

  // Several decodes in one trip to the tokenizer's thread (a whole response's text, decodeContinuation).
  decodeMany(ids: number[][], skipSpecialTokens = true): Promise<string[]> {
    return this.#tok.decodeBatch(ids, skipSpecialTokens);
  }

  // decode(ids, skipSpecialTokens) done here, synchronously, through the tokenizer's decoder (what
  // the Rust decode does: the ids' token strings, special ones left out when asked, through the
  // decoder or joined by spaces): for the streamed text, token by token, and for checks made inside
  // the engine loop (beam search stop strings), with no trip to the tokenizer's thread.
  decodeNow(ids: readonly number[], skipSpecialTokens = true): string {
    const pieces: string[] = [];
    for (const id of ids) {
      const t = skipSpecialTokens && this.#special.has(id) ? null : this.#tok.idToToken(id);
      if (t !== null) pieces.push(t);
    }
    return this.#decoder ? this.#decoder.decode(pieces) : pieces.join(' '); // as the Rust decode joins without a decoder
  }

  vocabSize(): number {
    return this.#tok.getVocabSize(true);
  }
}

interface TokenizerJson {
  added_tokens?: { id: number; content: string; special?: boolean }[];
  decoder?: { type?: string; decoders?: { type?: string }[] } | null;
}

// GPT-2's byte-level alphabet: printable bytes stand for themselves, the others are shifted
// to code points 256 and up.
function byteLevelDecoder(): Map<string, number> {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const map = new Map<string, number>();
  let next = 256;
  for (let b = 0; b < 256; b++) map.set(String.fromCodePoint(printable(b) ? b : next++), b);
  return map;
}

function tokenBytesFunction(json: TokenizerJson, piece: (id: number) => string | null): (id: number) => Uint8Array {
  const added = new Map((json.added_tokens ?? []).map((t) => [t.id, t.content]));
  const decoders = [json.decoder?.type, ...(json.decoder?.decoders ?? []).map((d) => d.type)];
  const utf8 = (s: string) => new Uint8Array(Buffer.from(s, 'utf8'));
  if (decoders.includes('ByteLevel')) {
    const alphabet = byteLevelDecoder();
    return (id) => {
      if (added.has(id)) return utf8(added.get(id)!);
      const p = piece(id) ?? '';
      const out: number[] = [];
      for (const ch of p) {
        const b = alphabet.get(ch);
        if (b !== undefined) out.push(b);
        else out.push(...utf8(ch));
      }
      return new Uint8Array(out);
    };
  }
  // SentencePiece-style (Metaspace / Replace ▁ → space, byte fallback <0xNN>)
  return (id) => {
    if (added.has(id)) return utf8(added.get(id)!);
    const p = piece(id) ?? '';
    const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(p);
    return byte ? new Uint8Array([parseInt(byte[1], 16)]) : utf8(p.replace(/\u2581/g, ' '));
  };
}

// Token by token, the text each one completes (see TextTokenizer.tokenStrings).
export class TokenTextStream {
  readonly #decoder = new TextDecoder('utf-8', { fatal: false });

  constructor(private readonly tok: TextTokenizer) {}

  push(id: number): string {
    return this.#decoder.decode(this.tok.tokenBytes(id), { stream: true });
  }
}

// A token's text on its own, as in a list of alternatives: its bytes as UTF-8, or, when they are
// not whole characters, `bytes:` and their hex escapes (as vLLM writes them).
export function tokenAlone(bytes: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return 'bytes:' + [...bytes].map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('');
  }
}

// Streams text for a growing list of ids: decodes a short window (decodeNow, on this thread: a
// trip to the tokenizer's thread per token cost more than the decode) and emits only the new
// suffix once it no longer ends in an incomplete character (U+FFFD). `contextIds` (the last
// few prompt tokens) are decoded as context but never emitted, so the first output token keeps
// the leading space a SentencePiece decoder strips at the start of a text.
export class IncrementalDetokenizer {
  #ids: number[];
  #prefixOffset = 0;
  #readOffset: number;

  constructor(
    private readonly tok: TextTokenizer,
    private readonly skipSpecialTokens = true,
    contextIds: readonly number[] = [],
  ) {
    this.#ids = [...contextIds];
    this.#readOffset = this.#ids.length;
  }

  push(id: number): string {
    this.#ids.push(id);
    const [prefix, full] = this.#window();
    if (full.length > prefix.length && !full.endsWith('\uFFFD')) {
      this.#prefixOffset = this.#readOffset;
      this.#readOffset = this.#ids.length;
      return full.slice(prefix.length);
    }
    return '';
  }

  // Whatever is left at the end (an incomplete trailing character is emitted as U+FFFD).
  flush(): string {
    const [prefix, full] = this.#window();
    this.#prefixOffset = this.#readOffset = this.#ids.length;
    return full.length > prefix.length ? full.slice(prefix.length) : '';
  }

  // The text of the already emitted context and of the whole window, decoded together.
  #window(): string[] {
    return [
      this.tok.decodeNow(this.#ids.slice(this.#prefixOffset, this.#readOffset), this.skipSpecialTokens),
      this.tok.decodeNow(this.#ids.slice(this.#prefixOffset), this.skipSpecialTokens),
    ];
  }
}
