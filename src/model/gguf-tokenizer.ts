// GGUF tokenizer metadata ⇄ a HF tokenizers JSON document. llama (SentencePiece BPE with byte
// fallback) and gpt2 (byte-level BPE) vocabularies; the engine itself only ever sees the JSON.
import { WeftError } from '../errors.js';
import { describeValue } from './describe.js';
import { GGUF_TYPE, type GgufEntry, type GgufValue } from './gguf.js';

// tokenizer.ggml.token_type values (llama.cpp)
export const TOKEN_TYPE = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface GgufVocab {
  model: 'llama' | 'gpt2';
  tokens: string[];
  scores: number[]; // llama only; empty for gpt2
  tokenTypes: number[];
  merges: string[]; // gpt2 only: "a b"
  pre: string; // gpt2 pre-tokenizer name (tokenizer.ggml.pre)
  bosId: number | null;
  eosId: number | null;
  unkId: number | null;
  addBos: boolean;
  addEos: boolean;
}

const LLAMA3_REGEX =
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const LLAMA3_PRES = new Set(['llama-bpe', 'llama3', 'llama-v3', 'smaug-bpe', 'falcon3', 'tekken']);

// Reads the tokenizer.ggml.* keys, checking types (a wrong type is a corrupt file, not a crash).
export function ggufVocab(meta: Map<string, GgufValue>, path: string): GgufVocab {
  const bad = (what: string): never => {
    throw new WeftError('WEFT_ERR_MODEL_TOKENIZER', `${path}: ${what}`);
  };
  const model = meta.get('tokenizer.ggml.model');
  if (model !== 'llama' && model !== 'gpt2') bad(`tokenizer.ggml.model ${describeValue(model)} is not supported (llama or gpt2)`);
  const tokens = meta.get('tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || tokens.length === 0 || !tokens.every((s) => typeof s === 'string'))
    bad('tokenizer.ggml.tokens is missing or not a string array');
  const nums = (key: string, required: boolean): number[] => {
    const v = meta.get(key);
    if (v === undefined && !required) return [];
    if (!Array.isArray(v) || v.length !== (tokens as string[]).length || !v.every((x) => typeof x === 'number'))
      bad(`${key} is missing or does not have one number per token`);
    return v as number[];
  };
  const id = (key: string): number | null => {
    const v = meta.get(key);
    return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v < (tokens as string[]).length ? v : null;
  };
  const merges = meta.get('tokenizer.ggml.merges') ?? [];
  if (model === 'gpt2' && (!Array.isArray(merges) || !merges.every((s) => typeof s === 'string'))) bad('tokenizer.ggml.merges is not a string array');
  const flag = (key: string, def: boolean) => (typeof meta.get(key) === 'boolean' ? (meta.get(key) as boolean) : def);
  const unkId = id('tokenizer.ggml.unknown_token_id');
  return {
    model: model as 'llama' | 'gpt2',
    tokens: tokens as string[],
    scores: nums('tokenizer.ggml.scores', false),
    tokenTypes: nums('tokenizer.ggml.token_type', false),
    merges: merges as string[],
    pre: String(meta.get('tokenizer.ggml.pre') ?? 'default'),
    bosId: id('tokenizer.ggml.bos_token_id'),
    eosId: id('tokenizer.ggml.eos_token_id'),
    unkId: unkId ?? (model === 'llama' ? 0 : null),
    addBos: flag('tokenizer.ggml.add_bos_token', model === 'llama'),
    addEos: flag('tokenizer.ggml.add_eos_token', false),
  };
}

const addedToken = (id: number, content: string, special: boolean) => ({
  id,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special,
});

// Merges that make HF BPE reproduce SentencePiece BPE: SentencePiece repeatedly joins the adjacent
// pair whose concatenation is the highest-scoring piece, so every split a+b of a piece t (both in
// the vocab) becomes a merge ranked by t's score. All splits are needed: which one a word meets
// depends on how its left and right parts were merged before. This is transformers'
// SentencePieceExtractor order: by score, then by the ids of the two parts.
// Finding the splits of a piece costs the square of its length, so pieces longer than
// MAX_MERGED_PIECE code points get no merges (a hostile file's one 300k-character piece would
// take minutes); SentencePiece trains pieces of at most 16 by default, so no real vocabulary loses one.
const MAX_MERGED_PIECE = 256;
export function spmMerges(v: GgufVocab, vocab: Map<string, number>): [string, string][] {
  const order = v.tokens
    .map((_, i) => i)
    .filter((i) => (v.tokenTypes[i] ?? TOKEN_TYPE.NORMAL) === TOKEN_TYPE.NORMAL && v.tokens[i].length <= 2 * MAX_MERGED_PIECE)
    .sort((a, b) => (v.scores[b] ?? 0) - (v.scores[a] ?? 0) || a - b);
  const merges: [string, string][] = [];
  for (const i of order) {
    const chars = Array.from(v.tokens[i]); // split on code points, never inside a surrogate pair
    if (chars.length > MAX_MERGED_PIECE) continue;
    const local: [string, string, number, number][] = [];
    for (let k = 1; k < chars.length; k++) {
      const a = chars.slice(0, k).join(''),
        b = chars.slice(k).join('');
      const ia = vocab.get(a),
        ib = vocab.get(b);
      if (ia !== undefined && ib !== undefined) local.push([a, b, ia, ib]);
    }
    local.sort((x, y) => x[2] - y[2] || x[3] - y[3]);
    for (const [a, b] of local) merges.push([a, b]);
  }
  return merges;
}

function postProcessor(v: GgufVocab): Record<string, unknown> | null {
  if (!(v.addBos && v.bosId !== null) && !(v.addEos && v.eosId !== null)) return null;
  const special = (id: number, typeId: number) => ({ SpecialToken: { id: v.tokens[id], type_id: typeId } });
  const seq = (id: 'A' | 'B', typeId: number) => ({ Sequence: { id, type_id: typeId } });
  const wrap = (id: 'A' | 'B', typeId: number) => [
    ...(v.addBos && v.bosId !== null ? [special(v.bosId, typeId)] : []),
    seq(id, typeId),
    ...(v.addEos && v.eosId !== null ? [special(v.eosId, typeId)] : []),
  ];
  const specials: Record<string, unknown> = {};
  for (const id of [v.addBos ? v.bosId : null, v.addEos ? v.eosId : null])
    if (id !== null) specials[v.tokens[id]] = { id: v.tokens[id], ids: [id], tokens: [v.tokens[id]] };
  return { type: 'TemplateProcessing', single: wrap('A', 0), pair: [...wrap('A', 0), ...wrap('B', 1)], special_tokens: specials };
}

function byteLevelPreTokenizer(pre: string): Record<string, unknown> {
  const byteLevel = (useRegex: boolean) => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: useRegex });
  const split = (regex: string) => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });
  if (LLAMA3_PRES.has(pre)) return { type: 'Sequence', pretokenizers: [split(LLAMA3_REGEX), byteLevel(false)] };
  if (pre === 'qwen2' || pre === 'deepseek-r1-qwen') return { type: 'Sequence', pretokenizers: [split(QWEN2_REGEX), byteLevel(false)] };
  if (pre === 'smollm') return { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel(true)] };
  return byteLevel(true); // GPT-2's own regex
}

// The HF tokenizers JSON for a GGUF vocabulary.
export function tokenizerJsonFromVocab(v: GgufVocab): string {
  const vocab = new Map<string, number>();
  v.tokens.forEach((t, i) => {
    if (!vocab.has(t)) vocab.set(t, i);
  }); // duplicates: the first id wins
  const added = v.tokens.flatMap((t, i) => {
    const type = v.tokenTypes[i] ?? TOKEN_TYPE.NORMAL;
    if (type === TOKEN_TYPE.CONTROL || type === TOKEN_TYPE.UNKNOWN) return [addedToken(i, t, true)];
    if (type === TOKEN_TYPE.USER_DEFINED) return [addedToken(i, t, false)];
    return [];
  });
  const bpe = (merges: [string, string][], spm: boolean, ignoreMerges: boolean) => ({
    type: 'BPE',
    dropout: null,
    unk_token: spm && v.unkId !== null ? v.tokens[v.unkId] : null,
    continuing_subword_prefix: null,
    end_of_word_suffix: null,
    fuse_unk: spm,
    byte_fallback: spm,
    ignore_merges: ignoreMerges,
    vocab: Object.fromEntries(vocab),
    merges,
  });
  const processor = postProcessor(v);
  if (v.model === 'llama') {
    return JSON.stringify({
      version: '1.0',
      truncation: null,
      padding: null,
      added_tokens: added,
      normalizer: {
        type: 'Sequence',
        normalizers: [
          { type: 'Prepend', prepend: '▁' },
          { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
        ],
      },
      pre_tokenizer: null,
      post_processor: processor,
      decoder: {
        type: 'Sequence',
        decoders: [
          { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
          { type: 'ByteFallback' },
          { type: 'Fuse' },
          { type: 'Strip', content: ' ', start: 1, stop: 0 },
        ],
      },
      model: bpe(spmMerges(v, vocab), true, false),
    });
  }
  const merges = v.merges.map((m): [string, string] => {
    const at = m.indexOf(' ', 1); // byte-level tokens never hold a real space
    return [m.slice(0, at), m.slice(at + 1)];
  });
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: true };
  return JSON.stringify({
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: null,
    pre_tokenizer: byteLevelPreTokenizer(v.pre),
    post_processor: processor ? { type: 'Sequence', processors: [byteLevel, processor] } : byteLevel,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: bpe(merges, false, LLAMA3_PRES.has(v.pre)),
  });
}

export function tokenizerJsonFromGguf(meta: Map<string, GgufValue>, path: string): string {
  return tokenizerJsonFromVocab(ggufVocab(meta, path));
}

// The GGUF tokenizer.ggml.* entries for a vocabulary (synth writes them).
export function ggufTokenizerEntries(v: GgufVocab): GgufEntry[] {
  const e: GgufEntry[] = [
    { key: 'tokenizer.ggml.model', type: GGUF_TYPE.STRING, value: v.model },
    ...(v.model === 'gpt2' ? [{ key: 'tokenizer.ggml.pre', type: GGUF_TYPE.STRING, value: v.pre }] : []),
    { key: 'tokenizer.ggml.tokens', type: GGUF_TYPE.ARRAY, elemType: GGUF_TYPE.STRING, value: v.tokens },
    ...(v.model === 'llama' ? [{ key: 'tokenizer.ggml.scores', type: GGUF_TYPE.ARRAY, elemType: GGUF_TYPE.F32, value: v.scores }] : []),
    { key: 'tokenizer.ggml.token_type', type: GGUF_TYPE.ARRAY, elemType: GGUF_TYPE.I32, value: v.tokenTypes },
    ...(v.model === 'gpt2' ? [{ key: 'tokenizer.ggml.merges', type: GGUF_TYPE.ARRAY, elemType: GGUF_TYPE.STRING, value: v.merges }] : []),
  ];
  const id = (key: string, value: number | null) => {
    if (value !== null) e.push({ key, type: GGUF_TYPE.U32, value });
  };
  id('tokenizer.ggml.bos_token_id', v.bosId);
  id('tokenizer.ggml.eos_token_id', v.eosId);
  id('tokenizer.ggml.unknown_token_id', v.unkId);
  e.push({ key: 'tokenizer.ggml.add_bos_token', type: GGUF_TYPE.BOOL, value: v.addBos });
  e.push({ key: 'tokenizer.ggml.add_eos_token', type: GGUF_TYPE.BOOL, value: v.addEos });
  return e;
}

interface HfTokenizerDoc {
  model?: {
    type?: string;
    vocab?: Record<string, number>;
    merges?: (string | [string, string])[];
    byte_fallback?: boolean;
    unk_token?: string | null;
  };
  added_tokens?: { id: number; content: string; special: boolean }[];
  pre_tokenizer?: unknown;
  post_processor?: unknown;
}

// The reverse: a HF tokenizer.json (SentencePiece-style BPE with byte fallback, or byte-level
// BPE) as a GGUF vocabulary of exactly `vocabSize` tokens (the embedding's row count; missing ids
// become unused padding tokens, as llama.cpp's converter does).
export function vocabFromTokenizerJson(json: string, vocabSize: number, ids: { bosId: number | null; eosId: number | null }): GgufVocab {
  const bad = (what: string): never => {
    throw new WeftError('WEFT_ERR_MODEL_TOKENIZER', `tokenizer.json: ${what}`);
  };
  let doc: HfTokenizerDoc;
  try {
    doc = JSON.parse(json) as HfTokenizerDoc;
  } catch (e) {
    return bad(`not valid JSON: ${(e as Error).message}`);
  }
  const model = doc?.model;
  if (model?.type !== 'BPE' || typeof model.vocab !== 'object' || model.vocab === null) return bad('only BPE tokenizers can be written to GGUF');
  const tokens: (string | undefined)[] = new Array(vocabSize);
  const types: number[] = new Array(vocabSize).fill(TOKEN_TYPE.NORMAL);
  const place = (t: string, id: number, type: number) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) bad(`token ${describeValue(t)} has id ${id}, outside the vocabulary (${vocabSize})`);
    tokens[id] = t;
    types[id] = type;
  };
  const spm = model.byte_fallback === true;
  for (const [t, id] of Object.entries(model.vocab)) place(t, id, spm && /^<0x[0-9A-F]{2}>$/.test(t) ? TOKEN_TYPE.BYTE : TOKEN_TYPE.NORMAL);
  for (const a of doc.added_tokens ?? [])
    place(a.content, a.id, a.content === model.unk_token ? TOKEN_TYPE.UNKNOWN : a.special ? TOKEN_TYPE.CONTROL : TOKEN_TYPE.USER_DEFINED);
  for (let i = 0; i < vocabSize; i++)
    if (tokens[i] === undefined) {
      tokens[i] = `[PAD${i}]`;
      types[i] = TOKEN_TYPE.UNUSED;
    }
  const post = JSON.stringify(doc.post_processor ?? null);
  const bosName = ids.bosId !== null ? tokens[ids.bosId] : undefined;
  const unk = typeof model.unk_token === 'string' ? tokens.indexOf(model.unk_token) : -1;
  const pre = JSON.stringify(doc.pre_tokenizer ?? null);
  const merges = model.merges ?? [];
  return {
    model: spm ? 'llama' : 'gpt2',
    tokens: tokens as string[],
    // SentencePiece-derived vocabularies are ordered by score, so -id keeps the merge order
    scores: spm ? types.map((t, i) => (t === TOKEN_TYPE.NORMAL ? -i : 0)) : [],
    tokenTypes: types,
    merges: spm ? [] : merges.map((m) => (typeof m === 'string' ? m : m.join(' '))),
    pre: pre.includes('Digits') ? 'smollm' : pre.includes('\\\\p{N}{1,3}') ? 'llama-bpe' : pre.includes('\\\\p{N}|') ? 'qwen2' : 'gpt2',
    bosId: ids.bosId,
    eosId: ids.eosId,
    unkId: unk >= 0 ? unk : null,
    addBos: bosName !== undefined && post.includes(JSON.stringify(bosName)),
    addEos: false,
  };
}
