// A model's vocabulary as xgrammar needs it: every token's encoded string by id, how to decode it
// (byte-level BPE like GPT-2 and SmolLM2; SentencePiece with ▁ and <0xXX> byte fallback like
// Llama 2 and stories260K; or raw), and the stop tokens. Read from the model directory or GGUF file
// through loadTokenizerFiles, the way the server reads them, so both agree on ids and EOS.
import { loadTokenizerFiles } from '../model/load.js';
import { WeftError } from '../errors.js';

export type VocabType = 'byte_level' | 'byte_fallback' | 'raw';

export interface GrammarVocab {
  tokens: string[]; // by id; '' for special tokens (xgrammar never emits those as text)
  type: VocabType;
  prependSpace: boolean; // SentencePiece-style: a ▁ is prepended to the text before encoding
  stopTokenIds: number[];
}

interface TokenizerDoc {
  model?: { type?: string; vocab?: Record<string, number> | [string, number][]; byte_fallback?: boolean };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  normalizer?: unknown;
  pre_tokenizer?: unknown;
  decoder?: unknown;
}

// GPT-2's byte ↔ printable-character table (bytes_to_unicode): byte-level vocabularies spell
// every byte with one of these characters.
const BYTE_TO_CHAR: string[] = (() => {
  const keep = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const out: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) out[b] = String.fromCodePoint(keep(b) ? b : next++);
  return out;
})();

const byteLevelSpelling = (text: string) => [...Buffer.from(text, 'utf8')].map((b) => BYTE_TO_CHAR[b]).join('');
const CHAR_TO_BYTE = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));
const BYTE_TOKEN = /^<0x([0-9A-Fa-f]{2})>$/;

// The bytes a token adds to the text (what xgrammar matches the grammar against).
export function tokenBytes(vocab: Pick<GrammarVocab, 'type'>, token: string): Uint8Array {
  if (vocab.type === 'byte_level') {
    const out = new Uint8Array(token.length);
    let n = 0;
    for (const ch of token) {
      const b = CHAR_TO_BYTE.get(ch);
      if (b === undefined) return new Uint8Array(Buffer.from(token, 'utf8'));
      out[n++] = b;
    }
    return out.subarray(0, n);
  }
  if (vocab.type === 'byte_fallback') {
    const m = BYTE_TOKEN.exec(token);
    if (m) return Uint8Array.of(parseInt(m[1], 16));
    return new Uint8Array(Buffer.from(token.replaceAll('\u2581', ' '), 'utf8'));
  }
  return new Uint8Array(Buffer.from(token, 'utf8'));
}

// Every component type named anywhere in a normalizer / pre-tokenizer / decoder tree.
function componentTypes(node: unknown, out = new Set<string>()): Set<string> {
  if (Array.isArray(node)) node.forEach((n) => componentTypes(n, out));
  else if (node && typeof node === 'object') {
    const o = node as Record<string, unknown>;
    if (typeof o.type === 'string') out.add(o.type);
    for (const v of Object.values(o)) if (v && typeof v === 'object') componentTypes(v, out);
  }
  return out;
}

// The decoding xgrammar must apply, from the tokenizer's decoder (as xgrammar's own
// TokenizerInfo.from_huggingface decides it).
export function vocabTypeOf(doc: TokenizerDoc): { type: VocabType; prependSpace: boolean } {
  const decoder = componentTypes(doc.decoder);
  const all = componentTypes([doc.normalizer, doc.pre_tokenizer, doc.decoder]);
  if (decoder.has('ByteLevel')) return { type: 'byte_level', prependSpace: false };
  const metaspace = JSON.stringify([doc.normalizer, doc.pre_tokenizer, doc.decoder]).includes('▁');
  if (doc.model?.byte_fallback === true || decoder.has('ByteFallback') || all.has('Metaspace') || metaspace) {
    const prepend =
      JSON.stringify(doc.normalizer ?? null).includes('"Prepend"') ||
      /"prepend_scheme":"(always|first)"|"add_prefix_space":true/.test(JSON.stringify(doc.pre_tokenizer ?? null));
    return { type: 'byte_fallback', prependSpace: prepend };
  }
  return { type: 'raw', prependSpace: false };
}

// Names xgrammar would take for stop tokens, for models whose config names no EOS.
const STOP_NAMES = new Set(['</s>', '<|endoftext|>', '<|end_of_text|>', '<|eot_id|>', '<|im_end|>', '<eos>', '<|end|>', '<end_of_turn>']);

export function grammarVocabFromJson(tokenizerJson: string, eosTokenIds: readonly number[]): GrammarVocab {
  let doc: TokenizerDoc;
  try {
    doc = JSON.parse(tokenizerJson) as TokenizerDoc;
  } catch (e) {
    throw new WeftError('WEFT_ERR_MODEL_TOKENIZER', `tokenizer JSON: ${(e as Error).message}`);
  }
  const vocab = doc.model?.vocab;
  if (!vocab || typeof vocab !== 'object') throw new WeftError('WEFT_ERR_MODEL_TOKENIZER', 'tokenizer JSON: the model has no vocabulary');
  const { type, prependSpace } = vocabTypeOf(doc);
  const tokens: string[] = [];
  // BPE/WordPiece: token → id; Unigram: [piece, score] by id
  if (Array.isArray(vocab))
    vocab.forEach(([piece], id) => {
      tokens[id] = piece;
    });
  else for (const [t, id] of Object.entries(vocab)) tokens[id] = t;
  const specials: { id: number; content: string }[] = [];
  for (const a of doc.added_tokens ?? []) {
    if (a.special) {
      tokens[a.id] = '';
      specials.push(a);
    } else {
      tokens[a.id] = type === 'byte_level' ? byteLevelSpelling(a.content) : a.content;
    }
  }
  for (let i = 0; i < tokens.length; i++) tokens[i] ??= '';
  const stopTokenIds = eosTokenIds.length > 0 ? [...eosTokenIds] : specials.filter((s) => STOP_NAMES.has(s.content)).map((s) => s.id);
  return { tokens, type, prependSpace, stopTokenIds };
}

// The vocabulary of the model at `modelPath` (an HF directory or a .gguf file).
export function loadGrammarVocab(modelPath: string): GrammarVocab {
  const t = loadTokenizerFiles(modelPath);
  return grammarVocabFromJson(t.tokenizerJson, t.config.eosTokenIds);
}
