// loadModelSpec: a HF directory or a .gguf file → ModelSpec (config, tensor locations, tokenizer),
// with every required tensor checked against the config. Reads headers and metadata only.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

import tokenizers from 'tokenizers';

import { WeftError } from '../errors.js';
import { configFromGguf, configFromHf, type TokenDefaults } from './config.js';
import { ggufTensorRefs, readGguf } from './gguf.js';
import { tokenizerJsonFromGguf } from './gguf-tokenizer.js';
import { ggufPooling, sentenceTransformersPooling } from './pooling.js';
import { keepCheckedTokenizer } from '../tokenizer.js';
import { readSafetensors, readSafetensorsIndex, readTensorBytes, toFloat32 } from './safetensors.js';
import { isQuantizedDtype, type ModelConfig, type ModelSpec, type TensorRef } from './types.js';

export async function loadModelSpec(path: string): Promise<ModelSpec> {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new WeftError('WEFT_ERR_MODEL_NOT_FOUND', `${abs}: no such model directory or .gguf file`);
  return statSync(abs).isDirectory() ? loadHfDir(abs) : loadGgufFile(abs);
}

function need(dir: string, ...names: string[]): string {
  for (const n of names) if (existsSync(join(dir, n))) return join(dir, n);
  throw new WeftError('WEFT_ERR_MODEL_NOT_FOUND', `${dir}: ${names.join(' or ')} is missing`);
}

type TextCode = 'WEFT_ERR_MODEL_BAD_CONFIG' | 'WEFT_ERR_MODEL_TOKENIZER';

// A file of the model directory as text; one that cannot be read (a directory by that name) is
// the model's error, not an fs error.
function readText(file: string, code: TextCode): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    throw new WeftError(code, `${file}: cannot read it: ${(e as Error).message}`);
  }
}

function readJson(file: string, code: TextCode): Record<string, unknown> {
  return parseJsonObject(readText(file, code), file, code);
}

function parseJsonObject(text: string, file: string, code: TextCode): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new WeftError(code, `${file}: not valid JSON: ${(e as Error).message}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new WeftError(code, `${file}: not a JSON object`);
  return v as Record<string, unknown>;
}

// The tokenizer JSON must load in HF tokenizers; anything else fails here, not at the first request.
// The tokenizer it builds is kept for the TextTokenizer made next from this JSON (tokenizer.ts).
function checkTokenizer(json: string, file: string): void {
  try {
    keepCheckedTokenizer(json, tokenizers.Tokenizer.fromString(json));
  } catch (e) {
    throw new WeftError('WEFT_ERR_MODEL_TOKENIZER', `${file}: HF tokenizers cannot load it: ${(e as Error).message}`);
  }
}

// HF tokenizers builds a BPE model with a continuing_subword_prefix by cutting the prefix off each
// merge's second part, without checking that it is there: a part shorter than the prefix, or one the
// cut would split inside a character, panics in Rust and aborts the whole process (found by the
// fuzzer). Such a merge can only come from a broken or hostile file: refuse it first. (weft's own
// tokenizer JSON for a GGUF vocabulary has no such prefix.)
function checkSubwordPrefix(tok: Record<string, unknown>, file: string): void {
  const model = tok.model as { continuing_subword_prefix?: unknown; merges?: unknown } | null | undefined;
  const prefix = model?.continuing_subword_prefix;
  if (typeof prefix !== 'string' || prefix === '' || !Array.isArray(model?.merges)) return;
  for (const m of model.merges as unknown[]) {
    const second = typeof m === 'string' ? m.split(' ')[1] : Array.isArray(m) ? m[1] : undefined;
    if (typeof second === 'string' && !second.startsWith(prefix))
      throw new WeftError('WEFT_ERR_MODEL_TOKENIZER', `${file}: BPE merge ${JSON.stringify(m)} does not continue with the subword prefix`);
  }
}

// bos/eos ids named by tokenizer_config.json's token strings, when config.json names none.
function tokenizerDefaults(tok: Record<string, unknown>, tokConfig: Record<string, unknown> | null): TokenDefaults {
  const ids = new Map<string, number>();
  const model = tok.model as { vocab?: unknown } | undefined;
  if (model && typeof model.vocab === 'object' && model.vocab !== null && !Array.isArray(model.vocab))
    for (const [t, id] of Object.entries(model.vocab as Record<string, number>)) ids.set(t, id);
  if (Array.isArray(tok.added_tokens)) for (const a of tok.added_tokens as { id: number; content: string }[]) ids.set(a.content, a.id);
  const lookup = (v: unknown) => {
    const s = typeof v === 'string' ? v : (v as { content?: string } | null | undefined)?.content;
    return s === undefined ? null : (ids.get(s) ?? null);
  };
  const eos = lookup(tokConfig?.eos_token);
  return { bosTokenId: lookup(tokConfig?.bos_token), eosTokenIds: eos === null ? [] : [eos] };
}

function chatTemplateOf(dir: string, tokConfig: Record<string, unknown> | null): string | null {
  const t = tokConfig?.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = (t as { name?: string; template?: string }[]).find((x) => x.name === 'default');
    return typeof named?.template === 'string' ? named.template : null;
  }
  const jinja = join(dir, 'chat_template.jinja'); // newer transformers keep it beside the config
  return existsSync(jinja) ? readText(jinja, 'WEFT_ERR_MODEL_TOKENIZER') : null;
}

function generationDefaults(gen: Record<string, unknown> | null): ModelSpec['generationDefaults'] {
  if (!gen || gen.do_sample === false) return {};
  const out: ModelSpec['generationDefaults'] = {};
  if (typeof gen.temperature === 'number') out.temperature = gen.temperature;
  if (typeof gen.top_p === 'number') out.topP = gen.top_p;
  if (typeof gen.top_k === 'number') out.topK = gen.top_k;
  return out;
}

// The tokenizer half of a model (tokenizer JSON, the config that names bos/eos, the chat template),
// read exactly as loadModelSpec reads it but without the weights: the worker's grammar engine
// (src/structured) needs only this, and must agree with the server on the vocabulary and EOS.
export interface TokenizerFiles {
  tokenizerJson: string;
  config: ModelConfig;
  chatTemplate: string | null;
}

export function loadTokenizerFiles(path: string): TokenizerFiles {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new WeftError('WEFT_ERR_MODEL_NOT_FOUND', `${abs}: no such model directory or .gguf file`);
  if (statSync(abs).isDirectory()) return hfTokenizerFiles(abs);
  const g = readGguf(abs);
  return { tokenizerJson: tokenizerJsonFromGguf(g.metadata, abs), config: ggufConfig(g, abs), chatTemplate: ggufChatTemplate(g.metadata) };
}

function hfTokenizerFiles(dir: string): TokenizerFiles & { tokFile: string; gen: Record<string, unknown> | null } {
  const configFile = need(dir, 'config.json');
  const tokFile = need(dir, 'tokenizer.json');
  const tokConfigFile = join(dir, 'tokenizer_config.json');
  const tokConfig = existsSync(tokConfigFile) ? readJson(tokConfigFile, 'WEFT_ERR_MODEL_TOKENIZER') : null;
  const genFile = join(dir, 'generation_config.json');
  const gen = existsSync(genFile) ? readJson(genFile, 'WEFT_ERR_MODEL_BAD_CONFIG') : null;

  const tokenizerJson = readText(tokFile, 'WEFT_ERR_MODEL_TOKENIZER');
  const tok = parseJsonObject(tokenizerJson, tokFile, 'WEFT_ERR_MODEL_TOKENIZER');
  // before anything below reads its fields, and before HF tokenizers builds it
  checkSubwordPrefix(tok, tokFile);
  checkTokenizer(tokenizerJson, tokFile);
  const config = configFromHf(readJson(configFile, 'WEFT_ERR_MODEL_BAD_CONFIG'), configFile, gen, tokenizerDefaults(tok, tokConfig));
  return { tokenizerJson, config, chatTemplate: chatTemplateOf(dir, tokConfig), tokFile, gen };
}

function loadHfDir(dir: string): ModelSpec {
  const configFile = need(dir, 'config.json');
  const weights = need(dir, 'model.safetensors', 'model.safetensors.index.json');
  need(dir, 'tokenizer.json');
  const { tokenizerJson, config, chatTemplate, gen } = hfTokenizerFiles(dir);
  const all = weights.endsWith('.index.json') ? readSafetensorsIndex(weights) : readSafetensors(weights);
  return {
    format: 'hf',
    path: dir,
    config,
    tensors: checkTensors(config, all, configFile, weights),
    ropeInterleaved: false,
    tokenizerJson,
    chatTemplate,
    generationDefaults: generationDefaults(gen),
    pooling: sentenceTransformersPooling(dir),
  };
}

function ggufConfig(g: ReturnType<typeof readGguf>, file: string): ModelConfig {
  const { tensors, other } = ggufTensorRefs(g);
  const freqsRef = other['rope_freqs.weight'];
  const ropeFreqs = freqsRef?.dtype === 'F32' ? toFloat32(readTensorBytes(freqsRef), 'F32') : null;
  return configFromGguf(g.metadata, file, { hasOutputTensor: 'lm_head.weight' in tensors, ropeFreqs });
}

function ggufChatTemplate(meta: ReturnType<typeof readGguf>['metadata']): string | null {
  const template = meta.get('tokenizer.chat_template');
  return typeof template === 'string' ? template : null;
}

function loadGgufFile(file: string): ModelSpec {
  const g = readGguf(file);
  const { tensors } = ggufTensorRefs(g);
  const config = ggufConfig(g, file);
  const tokenizerJson = tokenizerJsonFromGguf(g.metadata, file);
  checkTokenizer(tokenizerJson, file);
  return {
    format: 'gguf',
    path: file,
    config,
    tensors: checkTensors(config, tensors, file, file),
    ropeInterleaved: config.architecture === 'llama', // llama.cpp permutes llama q/k rows, not qwen2's or qwen3's
    tokenizerJson,
    chatTemplate: ggufChatTemplate(g.metadata),
    generationDefaults: {},
    pooling: ggufPooling(g.metadata),
  };
}

// name and expected shape of every tensor the engine reads, in file order. A generator: the
// config comes from the file too, and its layer count (up to 2^53) is only believed as far as
// the tensors are there to back it.
export function* expectedTensors(c: ModelConfig): Generator<[string, number[]]> {
  const q = c.numHeads * c.headDim,
    kv = c.numKvHeads * c.headDim;
  yield ['model.embed_tokens.weight', [c.vocabSize, c.dim]];
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`;
    yield [`${p}input_layernorm.weight`, [c.dim]];
    yield [`${p}self_attn.q_proj.weight`, [q, c.dim]];
    yield [`${p}self_attn.k_proj.weight`, [kv, c.dim]];
    yield [`${p}self_attn.v_proj.weight`, [kv, c.dim]];
    yield [`${p}self_attn.o_proj.weight`, [c.dim, q]];
    if (c.qkvBias) {
      yield [`${p}self_attn.q_proj.bias`, [q]];
      yield [`${p}self_attn.k_proj.bias`, [kv]];
      yield [`${p}self_attn.v_proj.bias`, [kv]];
    }
    if (c.qkNorm) {
      yield [`${p}self_attn.q_norm.weight`, [c.headDim]];
      yield [`${p}self_attn.k_norm.weight`, [c.headDim]];
    }
    yield [`${p}post_attention_layernorm.weight`, [c.dim]];
    yield [`${p}mlp.gate_proj.weight`, [c.ffnDim, c.dim]];
    yield [`${p}mlp.up_proj.weight`, [c.ffnDim, c.dim]];
    yield [`${p}mlp.down_proj.weight`, [c.dim, c.ffnDim]];
  }
  yield ['model.norm.weight', [c.dim]];
  yield ['lm_head.weight', [c.vocabSize, c.dim]];
}

export const expectedShapes = (c: ModelConfig): Map<string, number[]> => new Map(expectedTensors(c));

const same = (a: number[], b: number[]) => a.length === b.length && a.every((v, i) => v === b[i]);
const fmt = (s: number[]) => `[${s.join(', ')}]`;

// Keeps only the tensors the engine reads (plus int8 scales), each present and of the right shape.
function checkTensors(c: ModelConfig, all: Record<string, TensorRef>, configFile: string, weightsFile: string): Record<string, TensorRef> {
  const out: Record<string, TensorRef> = {};
  for (const [name, shape] of expectedTensors(c)) {
    const t = all[name];
    if (!t) {
      if (name === 'lm_head.weight' && c.tieEmbeddings) continue;
      const why = name === 'lm_head.weight' ? ' and the embeddings are not tied' : '';
      throw new WeftError('WEFT_ERR_MODEL_MISSING_TENSOR', `${weightsFile}: tensor ${name} is missing${why} (config: ${configFile})`);
    }
    if (!same(t.shape, shape))
      throw new WeftError(
        'WEFT_ERR_MODEL_SHAPE_MISMATCH',
        `${t.file}: tensor ${name} has shape ${fmt(t.shape)}, the config (${configFile}) expects ${fmt(shape)}`,
      );
    // int8 rows need a per-row scale and are not gathered (embeddings); GGML blocks carry their own
    const isProjection = shape.length === 2 && name !== 'model.embed_tokens.weight';
    if ((t.dtype === 'I8' && !isProjection) || (isQuantizedDtype(t.dtype) && shape.length !== 2))
      throw new WeftError('WEFT_ERR_MODEL_UNSUPPORTED_DTYPE', `${t.file}: tensor ${name} is ${t.dtype}, which weft reads only for weight matrices`);
    out[name] = t;
    if (t.dtype !== 'I8') continue;
    const s = all[`${name}_scale`];
    if (!s) throw new WeftError('WEFT_ERR_MODEL_MISSING_TENSOR', `${t.file}: tensor ${name}_scale is missing for the I8 tensor ${name}`);
    if (s.dtype !== 'F32' || !same(s.shape, [shape[0]]))
      throw new WeftError(
        'WEFT_ERR_MODEL_SHAPE_MISMATCH',
        `${s.file}: tensor ${name}_scale is ${s.dtype} ${fmt(s.shape)}, expected F32 [${shape[0]}]`,
      );
    out[`${name}_scale`] = s;
  }
  return out;
}
