// Seeded synthetic weights at a real model's shape (vLLM's "dummy" load format), written as a HF
// directory or a GGUF file, for benchmarks. Every row of every tensor has its own PRNG stream,
// keyed by (seed, canonical tensor name, row), so files stream row by row, GGUF can write q/k
// rows in its permuted order, and both formats of one seed hold the same model.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

import { WeftError } from '../errors.js';
import { configFromHf } from './config.js';
import { alignUp, encodeGgufHeader, GGML_TYPE_ID, GGUF_TYPE, ggufTensorName, type GgufEntry, type GgufTensorInfo } from './gguf.js';
import { ggufTokenizerEntries, tokenizerJsonFromVocab, TOKEN_TYPE, vocabFromTokenizerJson, type GgufVocab } from './gguf-tokenizer.js';
import { expectedShapes } from './load.js';
import { f32ToF16, SafetensorsWriter } from './safetensors.js';
import type { ModelConfig } from './types.js';

export interface SynthOptions {
  config: Record<string, unknown> | string;  // a HF config.json object, or a path to one
  out: string;                               // hf: a directory; gguf: the .gguf file
  format: 'gguf' | 'hf';
  dtype: 'f32' | 'f16' | 'q8_0';
  seed: number;
  tokenizerJson?: string;                    // default: a synthetic SentencePiece-style vocabulary
  chatTemplate?: string | null;              // default: a simple one with the synthetic vocabulary, none with a given tokenizer
  onProgress?: (done: number, total: number) => void;  // tensors written
}

const CHUNK_BYTES = 4 << 20;

// ---- PRNG: splitmix32 to seed, xoshiro128** to draw ----

function splitmix32(state: number): () => number {
  return () => {
    state = (state + 0x9e3779b9) | 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

// Fills `out` with uniform values in [center - halfWidth, center + halfWidth) from row `row` of a tensor.
function fillRow(out: Float32Array, seed: number, nameHash: number, row: number, center: number, halfWidth: number): void {
  const sm = splitmix32((Math.imul(seed, 0x9e3779b1) ^ nameHash ^ Math.imul(row + 1, 0x85ebca6b)) | 0);
  let a = sm(), b = sm(), c = sm(), d = sm();
  for (let i = 0; i < out.length; i++) {
    const r = Math.imul(((Math.imul(b, 5) << 7) | (Math.imul(b, 5) >>> 25)), 9) >>> 0;
    const t = b << 9;
    c ^= a; d ^= b; b ^= c; a ^= d; c ^= t; d = (d << 11) | (d >>> 21);
    out[i] = center + halfWidth * (r / 2147483648 - 1);
  }
}

// Value ranges. Matrices are U(±1/sqrt(in)) (variance 1/(3·in)), so with RMS-normalized inputs
// every projection output has RMS ≈ 0.58, o_proj adds ≈ 0.3 and down_proj ≈ 0.1 RMS to the
// residual per layer: the residual grows like sqrt(layers) (RMS ≈ 2 after 32 layers), never
// exponentially, and RMSNorm re-normalizes each block's input. Embeddings are small,
// U(±0.5/sqrt(dim)) (real checkpoints are of that order): large ones dominate the residual and,
// with tied embeddings, the logit of the input token itself (|e|²/rms(x)) wins every argmax, so
// the model only repeats its input. Here that self term is under one logit std and the argmax
// follows the context. Logits are flat (|logit| ≲ 2): fine for timing, not for sampling quality.
// Norm weights 1 ± 0.02, biases ±0.02. Qwen3's per-head q/k norm weights are 1 ± 0.5: they
// scale each RoPE frequency's share of the attention scores, so a test sees them at work.
function valueRange(name: string, shape: number[]): [number, number] {
  if (/\.[qk]_norm\.weight$/.test(name)) return [1, 0.5];
  if (name.endsWith('norm.weight')) return [1, 0.02];
  if (name.endsWith('.bias')) return [0, 0.02];
  return [0, (name === 'model.embed_tokens.weight' ? 0.5 : 1) / Math.sqrt(shape[1])];
}

// ---- the synthetic vocabulary ----

const WORDS = ('the and was a to he she it they in of said her his with you that on for is one day little big girl boy '
  + 'named lily tim ben mom dad friend friends happy sad saw play played wanted went ball cat dog bird tree park time once '
  + 'upon there had very so but not what can be all when we like look at up out go see fun toy sun red blue good new make '
  + 'came home love help hello world run jump fast slow quick brown fox lazy over yes no this then from are were').split(' ');
const LETTERS = 'etaoinshrdlcumwfgypbvkjxqz';
const SINGLE = `▁${LETTERS}${LETTERS.toUpperCase()}0123456789.,!?'"-:;()`;

// A llama SentencePiece-style vocabulary of exactly vocabSize tokens: <unk> <s> </s>, the 256
// byte tokens, single characters, then pieces in decreasing score, each one piece longer than a
// piece before it so BPE can reach it: "▁" + common words (with their prefixes), then every
// piece extended by every letter, breadth first.
export function buildSyntheticVocab(vocabSize: number): GgufVocab {
  const base = 3 + 256 + 1;  // the specials, the bytes and '▁'; the rest falls back to bytes
  if (!Number.isInteger(vocabSize) || vocabSize < base)
    throw new WeftError('WEFT_ERR_MODEL_BAD_CONFIG', `vocab_size ${vocabSize} is too small for the synthetic vocabulary (at least ${base})`);
  const tokens = ['<unk>', '<s>', '</s>'];
  const types: number[] = [TOKEN_TYPE.UNKNOWN, TOKEN_TYPE.CONTROL, TOKEN_TYPE.CONTROL];
  for (let b = 0; b < 256; b++) { tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`); types.push(TOKEN_TYPE.BYTE); }
  const seen = new Set<string>();
  const pieces: string[] = [];
  const add = (p: string) => { if (!seen.has(p) && tokens.length + pieces.length < vocabSize) { seen.add(p); pieces.push(p); } };
  for (const ch of SINGLE) add(ch);
  for (const w of WORDS) for (let k = 2; k <= w.length + 1; k++) add(('▁' + w).slice(0, k));
  for (let i = 0; tokens.length + pieces.length < vocabSize; i++) {
    const p = pieces[i];
    if (/^[a-z▁]/.test(p)) for (const c of LETTERS) add(p + c);
  }
  return {
    model: 'llama', tokens: [...tokens, ...pieces],
    scores: [...tokens.map(() => 0), ...pieces.map((_, i) => -i)],
    tokenTypes: [...types, ...pieces.map(() => TOKEN_TYPE.NORMAL)],
    merges: [], pre: 'default', bosId: 1, eosId: 2, unkId: 0, addBos: true, addEos: false,
  };
}

// ---- the model ----

// Only with the synthetic vocabulary (a given tokenizer.json comes with its own tokenizer_config.json).
const SIMPLE_CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

export async function synthesizeModel(opts: SynthOptions): Promise<void> {
  const file = typeof opts.config === 'string' ? opts.config : '<synth config>';
  const raw = typeof opts.config === 'string' ? JSON.parse(readFileSync(opts.config, 'utf8')) as Record<string, unknown> : { ...opts.config };
  // the synthetic vocabulary has its own <s>/</s>, whatever ids the real model used
  if (!opts.tokenizerJson) Object.assign(raw, { bos_token_id: 1, eos_token_id: 2, pad_token_id: null });
  const config = configFromHf(raw, file, null, { bosTokenId: 1, eosTokenIds: [2] });
  if (opts.format === 'hf' && opts.dtype === 'q8_0') throw new WeftError('WEFT_ERR_CONFIG_INVALID', 'synth: q8_0 is a GGUF type; use --format gguf');
  const vocab = opts.tokenizerJson
    ? vocabFromTokenizerJson(opts.tokenizerJson, config.vocabSize, { bosId: config.bosTokenId, eosId: config.eosTokenIds[0] ?? null })
    : buildSyntheticVocab(config.vocabSize);
  const names = [...expectedShapes(config).keys()].filter((n) => !(n === 'lm_head.weight' && config.tieEmbeddings));
  const shapes = expectedShapes(config);
  const seed = (opts.seed % 2 ** 32) ^ Math.floor(opts.seed / 2 ** 32);
  if (opts.format === 'hf') await writeHf(opts, raw, config, vocab, names, shapes, seed);
  else await writeGguf(opts, config, vocab, names, shapes, seed);
}

// Streams a tensor's rows (HF order unless rowOrder maps output row → HF row) as encoded chunks.
async function streamTensor(name: string, shape: number[], seed: number, encode: (rows: Float32Array, numRows: number) => Uint8Array,
  write: (b: Uint8Array) => Promise<void>, rowOrder?: (r: number) => number): Promise<void> {
  const [numRows, rowLen] = shape.length === 2 ? shape : [1, shape[0]];
  const [center, halfWidth] = valueRange(name, shape);
  const hash = fnv1a(name);
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / (rowLen * 4)));
  for (let r0 = 0; r0 < numRows; r0 += perChunk) {
    const n = Math.min(perChunk, numRows - r0);
    const buf = new Float32Array(n * rowLen);
    for (let i = 0; i < n; i++) fillRow(buf.subarray(i * rowLen, (i + 1) * rowLen), seed, hash, rowOrder ? rowOrder(r0 + i) : r0 + i, center, halfWidth);
    await write(encode(buf, n));
  }
}

const asF32 = (v: Float32Array) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
function asF16(v: Float32Array): Uint8Array {
  const h = new Uint16Array(v.length);
  for (let i = 0; i < v.length; i++) h[i] = f32ToF16(v[i]);
  return new Uint8Array(h.buffer);
}

// GGUF Q8_0 as gguf-py quantizes: per 32 values d = absmax/127 (fp16), q = roundf(x · (1/d)), in float32.
export function encodeQ8_0(v: Float32Array): Uint8Array {
  const out = new Uint8Array((v.length / 32) * 34);
  const view = new DataView(out.buffer);
  for (let b = 0; b < v.length / 32; b++) {
    let amax = 0;
    for (let i = 0; i < 32; i++) amax = Math.max(amax, Math.abs(v[b * 32 + i]));
    const d = Math.fround(amax / 127), id = d === 0 ? 0 : Math.fround(1 / d);
    view.setUint16(b * 34, f32ToF16(d), true);
    for (let i = 0; i < 32; i++) {
      const x = Math.fround(v[b * 32 + i] * id);
      view.setInt8(b * 34 + 2 + i, x < 0 ? -Math.round(-x) : Math.round(x));  // roundf: half away from zero
    }
  }
  return out;
}

async function writeHf(opts: SynthOptions, raw: Record<string, unknown>, config: ModelConfig, vocab: GgufVocab,
  names: string[], shapes: Map<string, number[]>, seed: number): Promise<void> {
  mkdirSync(opts.out, { recursive: true });
  const dtype = opts.dtype === 'f16' ? 'F16' : 'F32';
  const w = await SafetensorsWriter.create(join(opts.out, 'model.safetensors'), names.map((name) => ({ name, dtype, shape: shapes.get(name)! })));
  for (const [i, name] of names.entries()) {
    await streamTensor(name, shapes.get(name)!, seed, dtype === 'F16' ? asF16 : asF32, (b) => w.write(b));
    opts.onProgress?.(i + 1, names.length);
  }
  await w.close();
  const json = (f: string, v: unknown) => writeFileSync(join(opts.out, f), JSON.stringify(v, null, 2) + '\n');
  json('config.json', { ...raw, torch_dtype: dtype === 'F16' ? 'float16' : 'float32' });
  json('generation_config.json', { bos_token_id: config.bosTokenId, eos_token_id: config.eosTokenIds[0] ?? null });
  writeFileSync(join(opts.out, 'tokenizer.json'), opts.tokenizerJson ?? tokenizerJsonFromVocab(vocab));
  const tokenName = (id: number | null) => (id === null ? null : vocab.tokens[id]);
  json('tokenizer_config.json', {
    add_bos_token: vocab.addBos, add_eos_token: false, bos_token: tokenName(vocab.bosId), eos_token: tokenName(vocab.eosId),
    unk_token: tokenName(vocab.unkId), model_max_length: config.maxPositions,
    ...(templateOf(opts) ? { chat_template: templateOf(opts) } : {}),
  });
}

// llama.cpp's q/k row order for llama: GGUF row (head, j, s) holds HF row (head, s, j).
function permutedRow(numHeads: number, rows: number): (r: number) => number {
  const hd = rows / numHeads, half = hd / 2;
  return (g) => {
    const h = Math.floor(g / hd), i = g % hd;
    return h * hd + (i & 1) * half + (i >> 1);
  };
}

// llama.cpp keeps Llama 3.1 rope scaling as per-dimension factors (convert_hf_to_gguf.py).
function ropeFreqFactors(c: ModelConfig): Float32Array | null {
  const s = c.ropeScaling;
  if (s?.type !== 'llama3') return null;
  const out = new Float32Array(c.headDim / 2);
  for (let i = 0; i < out.length; i++) {
    const freq = 1 / Math.pow(c.ropeTheta, Math.fround((2 * i) / c.headDim));
    const wavelen = (2 * Math.PI) / freq;
    const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    out[i] = wavelen < s.originalMaxPositions / s.highFreqFactor ? 1
      : wavelen > s.originalMaxPositions / s.lowFreqFactor ? s.factor : 1 / ((1 - smooth) / s.factor + smooth);
  }
  return out;
}

function ggufMetadata(c: ModelConfig, vocab: GgufVocab, fileType: number, template: string | null): GgufEntry[] {
  const a = c.architecture;
  const u32 = (key: string, value: number): GgufEntry => ({ key: `${a}.${key}`, type: GGUF_TYPE.U32, value });
  const f32 = (key: string, value: number): GgufEntry => ({ key: `${a}.${key}`, type: GGUF_TYPE.F32, value });
  return [
    { key: 'general.architecture', type: GGUF_TYPE.STRING, value: a },
    { key: 'general.name', type: GGUF_TYPE.STRING, value: 'weft-synth' },
    { key: 'general.file_type', type: GGUF_TYPE.U32, value: fileType },
    u32('vocab_size', c.vocabSize), u32('context_length', c.maxPositions), u32('embedding_length', c.dim),
    u32('block_count', c.numLayers), u32('feed_forward_length', c.ffnDim), u32('attention.head_count', c.numHeads),
    u32('attention.head_count_kv', c.numKvHeads), u32('rope.dimension_count', c.headDim),
    ...(c.headDim * c.numHeads !== c.dim ? [u32('attention.key_length', c.headDim), u32('attention.value_length', c.headDim)] : []),
    f32('attention.layer_norm_rms_epsilon', c.rmsEps), f32('rope.freq_base', c.ropeTheta),
    ...(c.ropeScaling?.type === 'linear'
      ? [{ key: `${a}.rope.scaling.type`, type: GGUF_TYPE.STRING, value: 'linear' }, f32('rope.scaling.factor', c.ropeScaling.factor)] : []),
    ...ggufTokenizerEntries(vocab),
    ...(template ? [{ key: 'tokenizer.chat_template', type: GGUF_TYPE.STRING, value: template }] : []),
  ];
}

async function writeGguf(opts: SynthOptions, c: ModelConfig, vocab: GgufVocab, names: string[], shapes: Map<string, number[]>, seed: number): Promise<void> {
  // 2-D tensors take the requested type (Q8_0 needs rows of 32s, else F16 as llama.cpp falls back); norms stay F32
  const typeOf = (shape: number[]) =>
    shape.length === 1 || opts.dtype === 'f32' ? GGML_TYPE_ID.F32 : opts.dtype === 'q8_0' && shape[1] % 32 === 0 ? GGML_TYPE_ID.Q8_0 : GGML_TYPE_ID.F16;
  const bytesOf = (shape: number[], type: number) => {
    const n = shape.reduce((x, y) => x * y, 1);
    return type === GGML_TYPE_ID.F32 ? n * 4 : type === GGML_TYPE_ID.F16 ? n * 2 : (n / 32) * 34;
  };
  const freqs = ropeFreqFactors(c);
  const infos: (GgufTensorInfo & { hfName: string; bytes: number })[] = [];
  let at = 0;
  for (const hfName of [...names, ...(freqs ? ['rope_freqs.weight'] : [])]) {
    const shape = hfName === 'rope_freqs.weight' ? [freqs!.length] : shapes.get(hfName)!;
    const type = typeOf(shape), bytes = bytesOf(shape, type);
    infos.push({ name: ggufTensorName(hfName) ?? hfName, hfName, dims: [...shape].reverse(), type, offset: at, bytes });
    at = alignUp(at + bytes, 32);
  }
  const fileType = opts.dtype === 'f32' ? 0 : opts.dtype === 'f16' ? 1 : 7;
  const fh = await open(opts.out, 'w');
  try {
    await fh.write(encodeGgufHeader(ggufMetadata(c, vocab, fileType, templateOf(opts)), infos));
    for (const [i, t] of infos.entries()) {
      opts.onProgress?.(i, infos.length);
      const write = async (b: Uint8Array) => { await fh.write(b); };
      if (t.hfName === 'rope_freqs.weight') await write(asF32(freqs!));
      else {
        const encode = t.type === GGML_TYPE_ID.F32 ? asF32 : t.type === GGML_TYPE_ID.F16 ? asF16 : encodeQ8_0;
        const shape = shapes.get(t.hfName)!;
        const heads = c.architecture !== 'llama' ? 0 : t.hfName.endsWith('q_proj.weight') ? c.numHeads : t.hfName.endsWith('k_proj.weight') ? c.numKvHeads : 0;
        await streamTensor(t.hfName, shape, seed, encode, write, heads ? permutedRow(heads, shape[0]) : undefined);
      }
      await write(new Uint8Array(alignUp(t.bytes, 32) - t.bytes));
    }
    opts.onProgress?.(infos.length, infos.length);
  } finally {
    await fh.close();
  }
}

// The chat template written with the model: the given one, else the simple template that goes
// with the synthetic vocabulary (a given tokenizer without a template gets none).
function templateOf(opts: SynthOptions): string | null {
  if (opts.chatTemplate !== undefined) return opts.chatTemplate;
  return opts.tokenizerJson ? null : SIMPLE_CHAT_TEMPLATE;
}
