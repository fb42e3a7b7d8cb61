// Normalizes a HF config.json or GGUF metadata into ModelConfig, validating every field
// (WEFT_ERR_MODEL_BAD_CONFIG) and refusing what the engine cannot run (WEFT_ERR_MODEL_UNSUPPORTED_ARCH).
import { WeftError } from '../errors.js';
import { describeValue } from './describe.js';
import type { GgufValue } from './gguf.js';
import type { ModelConfig, RopeScaling } from './types.js';

type Raw = Record<string, unknown>;

const HF_ARCHITECTURES: Record<string, ModelConfig['architecture']> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  Qwen3ForCausalLM: 'qwen3',
};
const HF_MODEL_TYPES: Record<string, ModelConfig['architecture']> = { llama: 'llama', mistral: 'llama', qwen2: 'qwen2', qwen3: 'qwen3' };
const GGUF_ARCHITECTURES: ModelConfig['architecture'][] = ['llama', 'qwen2', 'qwen3'];

const badConfig = (file: string, field: string, what: string): never => {
  throw new WeftError('WEFT_ERR_MODEL_BAD_CONFIG', `${file}: ${field} ${what}`);
};
const unsupported = (file: string, what: string): never => {
  throw new WeftError('WEFT_ERR_MODEL_UNSUPPORTED_ARCH', `${file}: ${what}`);
};

function posInt(v: unknown, field: string, file: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) badConfig(file, field, `must be a positive integer, got ${describeValue(v)}`);
  return v as number;
}
function posNum(v: unknown, field: string, file: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) badConfig(file, field, `must be a positive number, got ${describeValue(v)}`);
  return v as number;
}
function tokenIds(v: unknown, field: string, file: string): number[] {
  if (v === undefined || v === null) return [];
  const ids = Array.isArray(v) ? v : [v];
  for (const id of ids)
    if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) badConfig(file, field, `must be token ids, got ${describeValue(v)}`);
  return ids as number[];
}

// The shared checks, once every field is known.
function validate(c: ModelConfig, file: string): ModelConfig {
  if (c.numHeads % c.numKvHeads !== 0) badConfig(file, 'num_key_value_heads', `(${c.numKvHeads}) must divide num_attention_heads (${c.numHeads})`);
  if (c.headDim % 2 !== 0) badConfig(file, 'head_dim', `(${c.headDim}) must be even for RoPE`);
  for (const id of [...(c.bosTokenId === null ? [] : [c.bosTokenId]), ...c.eosTokenIds])
    if (id >= c.vocabSize) badConfig(file, 'bos/eos token id', `${id} is outside the vocabulary (${c.vocabSize})`);
  return c;
}

function headDimOf(explicit: unknown, dim: number, numHeads: number, field: string, file: string): number {
  if (explicit !== undefined && explicit !== null) return posInt(explicit, field, file);
  if (dim % numHeads !== 0) badConfig(file, 'num_attention_heads', `(${numHeads}) must divide hidden_size (${dim})`);
  return dim / numHeads;
}

function hfRopeScaling(v: unknown, file: string): RopeScaling | null {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object') return badConfig(file, 'rope_scaling', 'must be an object or null');
  const r = v as Raw;
  const type = r.rope_type ?? r.type;
  if (type === 'default') return null;
  if (type === 'linear') return { type: 'linear', factor: posNum(r.factor, 'rope_scaling.factor', file) };
  if (type === 'llama3') {
    const s: RopeScaling = {
      type: 'llama3',
      factor: posNum(r.factor, 'rope_scaling.factor', file),
      lowFreqFactor: posNum(r.low_freq_factor, 'rope_scaling.low_freq_factor', file),
      highFreqFactor: posNum(r.high_freq_factor, 'rope_scaling.high_freq_factor', file),
      originalMaxPositions: posInt(r.original_max_position_embeddings, 'rope_scaling.original_max_position_embeddings', file),
    };
    if (s.highFreqFactor <= s.lowFreqFactor) badConfig(file, 'rope_scaling.high_freq_factor', 'must be greater than low_freq_factor');
    return s;
  }
  return unsupported(file, `rope_scaling type ${describeValue(type)} is not supported (llama3, linear)`);
}

export interface TokenDefaults {
  bosTokenId: number | null;
  eosTokenIds: number[];
}

// config.json (+ generation_config.json) → ModelConfig. `fromTokenizer` fills bos/eos that neither names.
export function configFromHf(raw: unknown, file: string, generation: Raw | null, fromTokenizer: TokenDefaults): ModelConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return badConfig(file, 'config', 'is not a JSON object');
  const r = raw as Raw;
  const archName = Array.isArray(r.architectures) ? r.architectures[0] : undefined;
  // own keys only: "constructor" must not name Object, and a non-string must not be stringified
  const lookup = (table: Record<string, ModelConfig['architecture']>, k: unknown) =>
    typeof k === 'string' && Object.hasOwn(table, k) ? table[k] : undefined;
  const architecture = archName !== undefined ? lookup(HF_ARCHITECTURES, archName) : lookup(HF_MODEL_TYPES, r.model_type);
  if (!architecture)
    return unsupported(
      file,
      `architecture ${describeValue(archName ?? r.model_type)} is not supported ` +
        '(LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)',
    );
  if (r.hidden_act !== undefined && r.hidden_act !== 'silu') unsupported(file, `hidden_act ${describeValue(r.hidden_act)} is not supported (silu)`);
  if (r.attention_bias === true || r.mlp_bias === true) unsupported(file, 'attention_bias / mlp_bias on a Llama or Qwen3 model are not supported');
  const dim = posInt(r.hidden_size, 'hidden_size', file);
  const numHeads = posInt(r.num_attention_heads, 'num_attention_heads', file);
  const maxPositions = posInt(r.max_position_embeddings ?? (architecture === 'llama' ? 2048 : 32768), 'max_position_embeddings', file);
  const window = r.sliding_window;
  if (r.use_sliding_window !== false && window !== undefined && window !== null && !(typeof window === 'number' && window >= maxPositions))
    unsupported(file, `sliding_window ${describeValue(window)} < max_position_embeddings ${maxPositions}: sliding-window attention is not supported`);
  const gen = generation ?? {};
  let bos = tokenIds(r.bos_token_id ?? gen.bos_token_id, 'bos_token_id', file);
  let eos = [...new Set([...tokenIds(r.eos_token_id, 'eos_token_id', file), ...tokenIds(gen.eos_token_id, 'generation_config eos_token_id', file)])];
  if (bos.length === 0 && fromTokenizer.bosTokenId !== null) bos = [fromTokenizer.bosTokenId];
  if (eos.length === 0) eos = fromTokenizer.eosTokenIds;
  return validate(
    {
      architecture,
      dim,
      numLayers: posInt(r.num_hidden_layers, 'num_hidden_layers', file),
      numHeads,
      numKvHeads: posInt(r.num_key_value_heads ?? numHeads, 'num_key_value_heads', file),
      headDim: headDimOf(r.head_dim, dim, numHeads, 'head_dim', file),
      ffnDim: posInt(r.intermediate_size, 'intermediate_size', file),
      vocabSize: posInt(r.vocab_size, 'vocab_size', file),
      rmsEps: posNum(r.rms_norm_eps ?? 1e-6, 'rms_norm_eps', file),
      ropeTheta: posNum(r.rope_theta ?? 10000, 'rope_theta', file),
      ropeScaling: hfRopeScaling(r.rope_scaling, file),
      maxPositions,
      tieEmbeddings: r.tie_word_embeddings === undefined ? false : r.tie_word_embeddings === true,
      qkvBias: architecture === 'qwen2',
      qkNorm: architecture === 'qwen3',
      bosTokenId: bos[0] ?? null,
      eosTokenIds: eos,
    },
    file,
  );
}

// float32 metadata as the shortest decimal that is the same float32 (9.99999975e-6 → 1e-5).
export function shortF32(v: number): number {
  for (let p = 1; p <= 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === Math.fround(v)) return d;
  }
  return v;
}

export interface GgufConfigExtras {
  hasOutputTensor: boolean;
  ropeFreqs: Float32Array | null; // rope_freqs.weight (llama.cpp's form of llama3 rope scaling)
}

// GGUF metadata → ModelConfig.
export function configFromGguf(meta: Map<string, GgufValue>, file: string, extras: GgufConfigExtras): ModelConfig {
  const arch = meta.get('general.architecture');
  if (!GGUF_ARCHITECTURES.includes(arch as ModelConfig['architecture']))
    return unsupported(file, `general.architecture ${describeValue(arch)} is not supported (${GGUF_ARCHITECTURES.join(', ')})`);
  const key = (k: string) => `${arch}.${k}`;
  const get = (k: string) => meta.get(key(k));
  const num = (k: string) => {
    const v = get(k);
    return typeof v === 'number' ? shortF32(v) : v;
  };
  const dim = posInt(get('embedding_length'), key('embedding_length'), file);
  const numHeads = posInt(get('attention.head_count'), key('attention.head_count'), file);
  const headDim = headDimOf(get('attention.key_length'), dim, numHeads, key('attention.key_length'), file);
  const valueLength = get('attention.value_length');
  if (valueLength !== undefined && valueLength !== headDim)
    unsupported(file, `${key('attention.value_length')} ${valueLength} differs from the key length ${headDim}`);
  const ropeDims = get('rope.dimension_count');
  if (ropeDims !== undefined && ropeDims !== headDim)
    unsupported(file, `${key('rope.dimension_count')} ${ropeDims} < head dim ${headDim}: partial RoPE is not supported`);
  const tokens = meta.get('tokenizer.ggml.tokens');
  if (!Array.isArray(tokens)) return badConfig(file, 'tokenizer.ggml.tokens', 'is missing (the vocabulary size comes from it)');
  const ropeTheta = posNum(num('rope.freq_base') ?? 10000, key('rope.freq_base'), file);
  const id = (k: string) => {
    const v = meta.get(k);
    return typeof v === 'number' && v >= 0 && v < tokens.length ? v : null;
  };
  const eos = ['tokenizer.ggml.eos_token_id', 'tokenizer.ggml.eot_token_id', 'tokenizer.ggml.eom_token_id'].map(id).filter((v) => v !== null);
  return validate(
    {
      architecture: arch as ModelConfig['architecture'],
      dim,
      numLayers: posInt(get('block_count'), key('block_count'), file),
      numHeads,
      numKvHeads: posInt(get('attention.head_count_kv') ?? numHeads, key('attention.head_count_kv'), file),
      headDim,
      ffnDim: posInt(get('feed_forward_length'), key('feed_forward_length'), file),
      vocabSize: posInt(tokens.length, 'tokenizer.ggml.tokens (count)', file),
      rmsEps: posNum(num('attention.layer_norm_rms_epsilon'), key('attention.layer_norm_rms_epsilon'), file),
      ropeTheta,
      ropeScaling: ggufRopeScaling(meta, key, file, extras.ropeFreqs, headDim, ropeTheta),
      maxPositions: posInt(get('context_length'), key('context_length'), file),
      tieEmbeddings: !extras.hasOutputTensor,
      qkvBias: arch === 'qwen2',
      qkNorm: arch === 'qwen3',
      bosTokenId: id('tokenizer.ggml.bos_token_id'),
      eosTokenIds: [...new Set(eos)],
    },
    file,
  );
}

function ggufRopeScaling(
  meta: Map<string, GgufValue>,
  key: (k: string) => string,
  file: string,
  freqs: Float32Array | null,
  headDim: number,
  theta: number,
): RopeScaling | null {
  const type = meta.get(key('rope.scaling.type')) ?? 'none';
  if (type === 'linear') {
    const f = meta.get(key('rope.scaling.factor'));
    return { type: 'linear', factor: posNum(typeof f === 'number' ? shortF32(f) : f, key('rope.scaling.factor'), file) };
  }
  if (type !== 'none')
    return unsupported(file, `${key('rope.scaling.type')} ${describeValue(type)} is not supported (linear, or llama3 via rope_freqs)`);
  return freqs ? llama3FromFreqFactors(freqs, headDim, theta, file) : null;
}

// llama.cpp stores Llama 3.1 rope scaling only as per-dimension factors (rope_freqs.weight).
// Recover the parameters: in the smooth band 1/r = (1-s)/factor + s with s = α/wavelen - β,
// α = orig/(high-low), β = low/(high-low); any orig gives the same frequencies, so orig = 8192.
export function llama3FromFreqFactors(r: Float32Array, headDim: number, theta: number, file: string): RopeScaling | null {
  const half = headDim / 2;
  if (r.length !== half) return badConfig(file, 'rope_freqs.weight', `has ${r.length} values, expected ${half}`);
  const factor = shortF32(Math.max(...r));
  if (Math.abs(factor - 1) < 1e-6) return null;
  const wavelen = (i: number) => 2 * Math.PI * Math.pow(theta, (2 * i) / headDim);
  const band: [number, number][] = []; // [1/wavelen, s]
  for (let i = 0; i < half; i++)
    if (r[i] > 1 + 1e-5 && r[i] < factor * (1 - 1e-5)) band.push([1 / wavelen(i), (1 / r[i] - 1 / factor) / (1 - 1 / factor)]);
  if (band.length < 2) return unsupported(file, 'rope_freqs.weight does not describe llama3 rope scaling weft can recover');
  const [x0, y0] = band[0],
    [x1, y1] = band[band.length - 1];
  const alpha = (y1 - y0) / (x1 - x0),
    beta = alpha * x0 - y0;
  const orig = 8192,
    d = orig / alpha;
  const round = (v: number) => Number(v.toPrecision(5));
  const s: RopeScaling = {
    type: 'llama3',
    factor,
    lowFreqFactor: round(beta * d),
    highFreqFactor: round((beta + 1) * d),
    originalMaxPositions: orig,
  };
  for (let i = 0; i < half; i++) {
    // the fit must reproduce every factor
    const w = wavelen(i),
      lowW = orig / s.lowFreqFactor,
      highW = orig / s.highFreqFactor;
    const sm = (orig / w - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    const expect = w < highW ? 1 : w > lowW ? factor : 1 / ((1 - sm) / factor + sm);
    if (Math.abs(expect - r[i]) > 1e-3 * expect) return unsupported(file, `rope_freqs.weight[${i}] = ${r[i]} does not fit llama3 rope scaling`);
  }
  return s;
}
