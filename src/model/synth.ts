// Seeded synthetic weights at a real model's shape (vLLM's "dummy" load format), written as a HF
// directory or a GGUF file, for benchmarks. Every row of every tensor has its own PRNG stream,
// keyed by (seed, canonical tensor name, row), so files stream row by row, GGUF can write q/k
// rows in its permuted order, and both formats of one seed hold the same model.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { WeftError } from '../errors.js';
import { configFromHf } from './config.js';
import { ggufTensorName } from './gguf.js';
import { ggufMetadata, ggufRowOrder, ropeFreqFactors } from './gguf-layout.js';
import { tokenizerJsonFromVocab, TOKEN_TYPE, vocabFromTokenizerJson, type GgufVocab } from './gguf-tokenizer.js';
import { encodeRows, writeGgufFile, type GgufTensorSource } from './gguf-write.js';
import { expectedShapes } from './load.js';
import { chooseTensorTypes, GGUF_FILE_TYPES, type GgufFileType } from './quant-mix.js';
import { SafetensorsWriter } from './safetensors.js';
import type { ModelConfig } from './types.js';

export interface SynthOptions {
  config: Record<string, unknown> | string; // a HF config.json object, or a path to one
  out: string; // hf: a directory; gguf: the .gguf file
  format: 'gguf' | 'hf';
  type?: GgufFileType; // default f32; hf takes f32 or f16
  dtype?: 'f32' | 'f16' | 'q8_0'; // the older spelling of type
  seed: number;
  tokenizerJson?: string; // default: a synthetic SentencePiece-style vocabulary
  chatTemplate?: string | null; // default: a simple one with the synthetic vocabulary, none with a given tokenizer
  onProgress?: (done: number, total: number) => void; // tensors written
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
  let a = sm(),
    b = sm(),
    c = sm(),
    d = sm();
  for (let i = 0; i < out.length; i++) {
    const r = Math.imul((Math.imul(b, 5) << 7) | (Math.imul(b, 5) >>> 25), 9) >>> 0;
    const t = b << 9;
    c ^= a;
    d ^= b;
    b ^= c;
    a ^= d;
    c ^= t;
    d = (d << 11) | (d >>> 21);
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

const WORDS = (
  'the and was a to he she it they in of said her his with you that on for is one day little big girl boy ' +
  'named lily tim ben mom dad friend friends happy sad saw play played wanted went ball cat dog bird tree park time once ' +
  'upon there had very so but not what can be all when we like look at up out go see fun toy sun red blue good new make ' +
  'came home love help hello world run jump fast slow quick brown fox lazy over yes no this then from are were'
).split(' ');
const LETTERS = 'etaoinshrdlcumwfgypbvkjxqz';
const SINGLE = `▁${LETTERS}${LETTERS.toUpperCase()}0123456789.,!?'"-:;()`;

// A llama SentencePiece-style vocabulary of exactly vocabSize tokens: <unk> <s> </s>, the 256
// byte tokens, single characters, then pieces in decreasing score, each one piece longer than a
// piece before it so BPE can reach it: "▁" + common words (with their prefixes), then every
// piece extended by every letter, breadth first.
export function buildSyntheticVocab(vocabSize: number): GgufVocab {
  const base = 3 + 256 + 1; // the specials, the bytes and '▁'; the rest falls back to bytes
  if (!Number.isInteger(vocabSize) || vocabSize < base)
    throw new WeftError('WEFT_ERR_MODEL_BAD_CONFIG', `vocab_size ${vocabSize} is too small for the synthetic vocabulary (at least ${base})`);
  const tokens = ['<unk>', '<s>', '</s>'];
  const types: number[] = [TOKEN_TYPE.UNKNOWN, TOKEN_TYPE.CONTROL, TOKEN_TYPE.CONTROL];
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types.push(TOKEN_TYPE.BYTE);
  }
  const seen = new Set<string>();
  const pieces: string[] = [];
  const add = (p: string) => {
    if (!seen.has(p) && tokens.length + pieces.length < vocabSize) {
      seen.add(p);
      pieces.push(p);
    }
  };
  for (const ch of SINGLE) add(ch);
  for (const w of WORDS) for (let k = 2; k <= w.length + 1; k++) add(('▁' + w).slice(0, k));
  for (let i = 0; tokens.length + pieces.length < vocabSize; i++) {
    const p = pieces[i];
    if (/^[a-z▁]/.test(p)) for (const c of LETTERS) add(p + c);
  }
  return {
    model: 'llama',
    tokens: [...tokens, ...pieces],
    scores: [...tokens.map(() => 0), ...pieces.map((_, i) => -i)],
    tokenTypes: [...types, ...pieces.map(() => TOKEN_TYPE.NORMAL)],
    merges: [],
    pre: 'default',
    bosId: 1,
    eosId: 2,
    unkId: 0,
    addBos: true,
    addEos: false,
  };
}

// ---- the model ----

// Only with the synthetic vocabulary (a given tokenizer.json comes with its own tokenizer_config.json).
const SIMPLE_CHAT_TEMPLATE =
  "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}assistant:{% endif %}";

export async function synthesizeModel(opts: SynthOptions): Promise<void> {
  const file = typeof opts.config === 'string' ? opts.config : '<synth config>';
  const raw = typeof opts.config === 'string' ? (JSON.parse(readFileSync(opts.config, 'utf8')) as Record<string, unknown>) : { ...opts.config };
  // the synthetic vocabulary has its own <s>/</s>, whatever ids the real model used
  if (!opts.tokenizerJson) Object.assign(raw, { bos_token_id: 1, eos_token_id: 2, pad_token_id: null });
  const config = configFromHf(raw, file, null, { bosTokenId: 1, eosTokenIds: [2] });
  const type = synthFileType(opts);
  if (!GGUF_FILE_TYPES.includes(type)) throw new WeftError('WEFT_ERR_CONFIG_INVALID', `synth: unknown type ${type}`);
  if (opts.format === 'hf' && type !== 'f32' && type !== 'f16')
    throw new WeftError('WEFT_ERR_CONFIG_INVALID', `synth: ${type} is a GGUF type; use --format gguf`);
  const vocab = opts.tokenizerJson
    ? vocabFromTokenizerJson(opts.tokenizerJson, config.vocabSize, { bosId: config.bosTokenId, eosId: config.eosTokenIds[0] ?? null })
    : buildSyntheticVocab(config.vocabSize);
  const names = [...expectedShapes(config).keys()].filter((n) => !(n === 'lm_head.weight' && config.tieEmbeddings));
  const shapes = expectedShapes(config);
  const seed = (opts.seed % 2 ** 32) ^ Math.floor(opts.seed / 2 ** 32);
  if (opts.format === 'hf') await writeHf(opts, raw, config, vocab, names, shapes, seed);
  else await writeGguf(opts, config, vocab, names, shapes, seed);
}

// Streams a tensor's rows (HF order unless rowOrder maps output row → HF row) as f32 chunks of whole rows.
async function streamTensor(
  name: string,
  shape: number[],
  seed: number,
  emit: (rows: Float32Array) => Promise<void>,
  rowOrder?: (r: number) => number,
): Promise<void> {
  const [numRows, rowLen] = shape.length === 2 ? shape : [1, shape[0]];
  const [center, halfWidth] = valueRange(name, shape);
  const hash = fnv1a(name);
  const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / (rowLen * 4)));
  for (let r0 = 0; r0 < numRows; r0 += perChunk) {
    const n = Math.min(perChunk, numRows - r0);
    const buf = new Float32Array(n * rowLen);
    for (let i = 0; i < n; i++)
      fillRow(buf.subarray(i * rowLen, (i + 1) * rowLen), seed, hash, rowOrder ? rowOrder(r0 + i) : r0 + i, center, halfWidth);
    await emit(buf);
  }
}

async function writeHf(
  opts: SynthOptions,
  raw: Record<string, unknown>,
  config: ModelConfig,
  vocab: GgufVocab,
  names: string[],
  shapes: Map<string, number[]>,
  seed: number,
): Promise<void> {
  mkdirSync(opts.out, { recursive: true });
  const dtype = synthFileType(opts) === 'f16' ? 'F16' : 'F32';
  const w = await SafetensorsWriter.create(
    join(opts.out, 'model.safetensors'),
    names.map((name) => ({ name, dtype, shape: shapes.get(name)! })),
  );
  for (const [i, name] of names.entries()) {
    await streamTensor(name, shapes.get(name)!, seed, (rows) => w.write(encodeRows(dtype, rows)));
    opts.onProgress?.(i + 1, names.length);
  }
  await w.close();
  const json = (f: string, v: unknown) => writeFileSync(join(opts.out, f), JSON.stringify(v, null, 2) + '\n');
  json('config.json', { ...raw, torch_dtype: dtype === 'F16' ? 'float16' : 'float32' });
  json('generation_config.json', { bos_token_id: config.bosTokenId, eos_token_id: config.eosTokenIds[0] ?? null });
  writeFileSync(join(opts.out, 'tokenizer.json'), opts.tokenizerJson ?? tokenizerJsonFromVocab(vocab));
  const tokenName = (id: number | null) => (id === null ? null : vocab.tokens[id]);
  json('tokenizer_config.json', {
    add_bos_token: vocab.addBos,
    add_eos_token: false,
    bos_token: tokenName(vocab.bosId),
    eos_token: tokenName(vocab.eosId),
    unk_token: tokenName(vocab.unkId),
    model_max_length: config.maxPositions,
    ...(templateOf(opts) ? { chat_template: templateOf(opts) } : {}),
  });
}

async function writeGguf(
  opts: SynthOptions,
  c: ModelConfig,
  vocab: GgufVocab,
  names: string[],
  shapes: Map<string, number[]>,
  seed: number,
): Promise<void> {
  const fileType = synthFileType(opts);
  const freqs = ropeFreqFactors(c);
  const list = [...names, ...(freqs ? ['rope_freqs.weight'] : [])].map((hfName) => {
    const shape = hfName === 'rope_freqs.weight' ? [freqs!.length] : shapes.get(hfName)!;
    return { hfName, shape, name: ggufTensorName(hfName) ?? hfName, dims: [...shape].reverse() };
  });
  const types = chooseTensorTypes(fileType, list, c);
  const tensors: GgufTensorSource[] = list.map(({ hfName, shape, name, dims }) => ({
    name,
    dims,
    type: types.get(name)!,
    produce: (emit) => (hfName === 'rope_freqs.weight' ? emit(freqs!) : streamTensor(hfName, shape, seed, emit, ggufRowOrder(c, hfName, shape[0]))),
  }));
  await writeGgufFile(opts.out, ggufMetadata(c, vocab, fileType, templateOf(opts), 'weft-synth'), tensors, opts.onProgress);
}

const synthFileType = (opts: SynthOptions): GgufFileType => opts.type ?? opts.dtype ?? 'f32';

// The chat template written with the model: the given one, else the simple template that goes
// with the synthetic vocabulary (a given tokenizer without a template gets none).
function templateOf(opts: SynthOptions): string | null {
  if (opts.chatTemplate !== undefined) return opts.chatTemplate;
  return opts.tokenizerJson ? null : SIMPLE_CHAT_TEMPLATE;
}
