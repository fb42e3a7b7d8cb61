// synthesizeModel → loadModelSpec round trips in every format/dtype, determinism, value ranges,
// and quantizeModel (I8 + per-row scales within half a step of the float weights).
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';
import tokenizers from 'tokenizers';

import { isWeftError } from '../../src/errors.js';
import { readGguf } from '../../src/model/gguf.js';
import { loadModelSpec } from '../../src/model/load.js';
import { quantizeModel } from '../../src/model/quantize.js';
import { f16ToF32, readTensorBytes, toFloat32 } from '../../src/model/safetensors.js';
import { synthesizeModel } from '../../src/model/synth.js';
import type { ModelSpec, TensorRef } from '../../src/model/types.js';
import { MODEL_DIR } from '../fixtures/paths.js';

const tmp = mkdtempSync(join(tmpdir(), 'weft-synth-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

// Tiny but real: GQA, an FFN width (80) that is not a multiple of 32 (Q8_0 falls back to F16 there).
const TINY = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 80,
  vocab_size: 384,
  max_position_embeddings: 128,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
};
const sha = (p: string) =>
  createHash('sha256')
    .update(new Uint8Array(readFileSync(p)))
    .digest('hex');

// Row r of a tensor as floats, whatever its dtype.
function rows(ref: TensorRef): Float32Array {
  const bytes = readTensorBytes(ref);
  if (ref.dtype !== 'Q8_0') return toFloat32(bytes, ref.dtype);
  const out = new Float32Array(ref.shape.reduce((a, b) => a * b, 1));
  const view = new DataView(bytes.buffer);
  for (let b = 0; b < out.length / 32; b++) {
    const d = f16ToF32(view.getUint16(b * 34, true));
    for (let i = 0; i < 32; i++) out[b * 32 + i] = d * view.getInt8(b * 34 + 2 + i);
  }
  return out;
}

// GGUF llama q/k rows back to HF order: GGUF row (head, j, s) holds HF row (head, s, j).
function unpermute(w: Float32Array, numRows: number, heads: number): Float32Array {
  const cols = w.length / numRows,
    hd = numRows / heads,
    out = new Float32Array(w.length);
  for (let r = 0; r < numRows; r++) {
    const h = Math.floor(r / hd),
      s = Math.floor((r % hd) / (hd / 2)),
      j = r % (hd / 2),
      g = h * hd + j * 2 + s;
    out.set(w.subarray(g * cols, (g + 1) * cols), r * cols);
  }
  return out;
}

function hfOrder(spec: ModelSpec, name: string): Float32Array {
  const ref = spec.tensors[name],
    w = rows(ref),
    c = spec.config;
  if (!spec.ropeInterleaved) return w;
  if (name.endsWith('q_proj.weight')) return unpermute(w, ref.shape[0], c.numHeads);
  if (name.endsWith('k_proj.weight')) return unpermute(w, ref.shape[0], c.numKvHeads);
  return w;
}

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

t.test('every format and dtype loads back at the configured shape', async (t) => {
  const variants = [
    ['hf', 'f32'],
    ['hf', 'f16'],
    ['gguf', 'f32'],
    ['gguf', 'f16'],
    ['gguf', 'q8_0'],
  ] as const;
  const specs: Record<string, ModelSpec> = {};
  for (const [format, dtype] of variants) {
    const out = join(tmp, format === 'hf' ? `hf-${dtype}` : `m-${dtype}.gguf`);
    await synthesizeModel({ config: TINY, out, format, dtype, seed: 7 });
    specs[`${format}-${dtype}`] = await loadModelSpec(out);
  }
  const ref = specs['hf-f32'];
  t.equal(Object.keys(ref.tensors).length, 1 + 2 * 9 + 2);
  for (const [key, s] of Object.entries(specs)) {
    t.same(s.config, ref.config, `${key}: same config`);
    t.same(Object.keys(s.tensors).sort(), Object.keys(ref.tensors).sort(), `${key}: same tensors`);
    t.equal(s.tokenizerJson, ref.tokenizerJson, `${key}: same tokenizer`);
    t.equal(s.chatTemplate, ref.chatTemplate, `${key}: same chat template`);
  }
  const dt = (key: string, name: string) => specs[key].tensors[name].dtype;
  t.equal(dt('hf-f16', 'model.norm.weight'), 'F16');
  t.equal(dt('gguf-f16', 'model.norm.weight'), 'F32', 'GGUF norms stay F32');
  t.equal(dt('gguf-f16', 'lm_head.weight'), 'F16');
  t.equal(dt('gguf-q8_0', 'model.layers.0.mlp.up_proj.weight'), 'Q8_0');
  t.equal(dt('gguf-q8_0', 'model.embed_tokens.weight'), 'Q8_0');
  t.equal(dt('gguf-q8_0', 'model.layers.0.mlp.down_proj.weight'), 'F16', 'rows of 80 cannot be Q8_0');
  t.equal(specs['gguf-f32'].ropeInterleaved, true);
  t.match(ref.chatTemplate, /add_generation_prompt/, 'the synthetic vocab comes with a simple chat template');

  // one seed, one model: every format holds the same values (to its dtype's precision)
  for (const name of Object.keys(ref.tensors)) {
    const w = hfOrder(ref, name);
    t.equal(maxAbsDiff(hfOrder(specs['gguf-f32'], name), w), 0, `${name}: GGUF f32 = HF f32`);
    const f16 = hfOrder(specs['hf-f16'], name);
    t.ok(
      f16.every((v, i) => Math.abs(v - w[i]) <= Math.abs(w[i]) * 2 ** -11 + 2 ** -25),
      `${name}: f16 rounding`,
    );
    t.equal(maxAbsDiff(hfOrder(specs['gguf-f16'], name), specs['gguf-f16'].tensors[name].dtype === 'F32' ? w : f16), 0);
    if (specs['gguf-q8_0'].tensors[name].dtype === 'Q8_0') {
      const q = hfOrder(specs['gguf-q8_0'], name);
      let worst = 0;
      for (let b = 0; b < w.length / 32; b++) {
        const d = w.subarray(b * 32, b * 32 + 32).reduce((m, v) => Math.max(m, Math.abs(v)), 0) / 127;
        for (let i = b * 32; i < b * 32 + 32; i++) worst = Math.max(worst, Math.abs(q[i] - w[i]) / (d * 0.5 + d * 127 * 2 ** -11));
      }
      t.ok(worst <= 1, `${name}: Q8_0 within half a step (+ fp16 scale rounding), ratio ${worst.toFixed(3)}`);
    }
  }
});

t.test('value ranges keep activations O(1)', async (t) => {
  const spec = await loadModelSpec(join(tmp, 'hf-f32'));
  for (const [name, ref] of Object.entries(spec.tensors)) {
    const w = rows(ref);
    const bound = name.endsWith('norm.weight') ? null : name === 'model.embed_tokens.weight' ? 0.5 / Math.sqrt(64) : 1 / Math.sqrt(ref.shape[1]);
    if (bound === null)
      t.ok(
        w.every((v) => Math.abs(v - 1) <= 0.02),
        `${name}: 1 ± 0.02`,
      );
    else {
      t.ok(
        w.every((v) => Math.abs(v) <= bound * (1 + 1e-6)),
        `${name}: within ±${bound.toFixed(3)}`,
      );
      const mean = w.reduce((a, b) => a + b, 0) / w.length,
        rms = Math.sqrt(w.reduce((a, b) => a + b * b, 0) / w.length);
      t.ok(Math.abs(mean) < 0.1 * bound && rms > 0.5 * bound, `${name}: centered and spread (rms/bound ${(rms / bound).toFixed(2)})`);
    }
  }
});

t.test('deterministic: same seed, same bytes; another seed, other bytes', async (t) => {
  for (const dtype of ['f32', 'q8_0'] as const) {
    const a = join(tmp, `d-${dtype}-a.gguf`),
      b = join(tmp, `d-${dtype}-b.gguf`),
      c = join(tmp, `d-${dtype}-c.gguf`);
    await synthesizeModel({ config: TINY, out: a, format: 'gguf', dtype, seed: 42 });
    await synthesizeModel({ config: TINY, out: b, format: 'gguf', dtype, seed: 42 });
    await synthesizeModel({ config: TINY, out: c, format: 'gguf', dtype, seed: 43 });
    t.equal(sha(a), sha(b), `gguf ${dtype}: identical`);
    t.not(sha(a), sha(c), `gguf ${dtype}: seed matters`);
  }
  await synthesizeModel({ config: TINY, out: join(tmp, 'd-hf-a'), format: 'hf', dtype: 'f16', seed: 2 ** 40 + 1 });
  await synthesizeModel({ config: TINY, out: join(tmp, 'd-hf-b'), format: 'hf', dtype: 'f16', seed: 2 ** 40 + 1 });
  await synthesizeModel({ config: TINY, out: join(tmp, 'd-hf-c'), format: 'hf', dtype: 'f16', seed: 1 });
  for (const f of ['model.safetensors', 'config.json', 'tokenizer.json'])
    t.equal(sha(join(tmp, 'd-hf-a', f)), sha(join(tmp, 'd-hf-b', f)), `hf ${f}: identical`);
  t.not(sha(join(tmp, 'd-hf-a', 'model.safetensors')), sha(join(tmp, 'd-hf-c', 'model.safetensors')));
});

t.test('options and configs', async (t) => {
  await t.rejects(synthesizeModel({ config: TINY, out: join(tmp, 'x'), format: 'hf', dtype: 'q8_0', seed: 0 }), { code: 'WEFT_ERR_CONFIG_INVALID' });
  await t.rejects(synthesizeModel({ config: { ...TINY, num_attention_heads: 0 }, out: join(tmp, 'x'), format: 'hf', dtype: 'f32', seed: 0 }), {
    code: 'WEFT_ERR_MODEL_BAD_CONFIG',
  });
  // a path to a config.json, tied embeddings, bos/eos of a real model remapped to the synthetic vocab
  writeFileSync(join(tmp, 'cfg.json'), JSON.stringify({ ...TINY, tie_word_embeddings: true, bos_token_id: 300, eos_token_id: [301, 302] }));
  await synthesizeModel({ config: join(tmp, 'cfg.json'), out: join(tmp, 'tied.gguf'), format: 'gguf', dtype: 'f32', seed: 0 });
  const tied = await loadModelSpec(join(tmp, 'tied.gguf'));
  t.equal(tied.config.tieEmbeddings, true);
  t.notOk('lm_head.weight' in tied.tensors);
  t.equal(tied.config.bosTokenId, 1);
  t.same(tied.config.eosTokenIds, [2]);

  const l3 = {
    ...TINY,
    hidden_size: 128,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    rope_theta: 500000,
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  };
  await synthesizeModel({ config: l3, out: join(tmp, 'l3.gguf'), format: 'gguf', dtype: 'f32', seed: 0 });
  t.ok(
    readGguf(join(tmp, 'l3.gguf')).tensors.some((x) => x.name === 'rope_freqs.weight'),
    'llama.cpp form: rope_freqs.weight',
  );
  t.same(
    (await loadModelSpec(join(tmp, 'l3.gguf'))).config.ropeScaling,
    { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
    'llama3 parameters recovered',
  );

  const qwen = { ...TINY, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2' };
  await synthesizeModel({ config: qwen, out: join(tmp, 'qwen.gguf'), format: 'gguf', dtype: 'f32', seed: 3 });
  await synthesizeModel({ config: qwen, out: join(tmp, 'qwen-hf'), format: 'hf', dtype: 'f32', seed: 3 });
  const qg = await loadModelSpec(join(tmp, 'qwen.gguf')),
    qh = await loadModelSpec(join(tmp, 'qwen-hf'));
  t.equal(qg.ropeInterleaved, false, 'qwen2 GGUF rows are not permuted');
  t.equal(qg.config.qkvBias, true);
  for (const n of ['model.layers.1.self_attn.q_proj.bias', 'model.layers.1.self_attn.k_proj.weight'])
    t.equal(maxAbsDiff(rows(qg.tensors[n]), rows(qh.tensors[n])), 0, `qwen2 ${n}`);
});

t.test('a given tokenizer.json (byte-level BPE) goes into both formats', async (t) => {
  const tokJson = readFileSync(join(MODEL_DIR, '..', 'smollm2-135m-shape', 'tokenizer.json'), 'utf8');
  const cfg = {
    ...TINY,
    hidden_size: 32,
    num_attention_heads: 2,
    num_key_value_heads: 1,
    intermediate_size: 64,
    num_hidden_layers: 1,
    vocab_size: 49152,
    tie_word_embeddings: true,
  };
  await synthesizeModel({ config: cfg, out: join(tmp, 'smol.gguf'), format: 'gguf', dtype: 'f16', seed: 0, tokenizerJson: tokJson });
  await synthesizeModel({ config: cfg, out: join(tmp, 'smol-hf'), format: 'hf', dtype: 'f32', seed: 0, tokenizerJson: tokJson });
  t.equal(readFileSync(join(tmp, 'smol-hf', 'tokenizer.json'), 'utf8'), tokJson, 'copied verbatim');
  const spec = await loadModelSpec(join(tmp, 'smol.gguf'));
  t.equal(spec.config.vocabSize, 49152);
  const a = tokenizers.Tokenizer.fromString(spec.tokenizerJson),
    b = tokenizers.Tokenizer.fromString(tokJson);
  for (const s of ['Hello world, 2024!', '<|im_start|>user\nhi<|im_end|>', '  spaced   out  ', 'naïve café'])
    t.same((await a.encode(s)).getIds(), (await b.encode(s)).getIds(), JSON.stringify(s));
});

t.test('quantizeModel: int8 rows within half a step', async (t) => {
  const out = join(tmp, 'q');
  await quantizeModel(MODEL_DIR, out);
  const src = await loadModelSpec(MODEL_DIR),
    q = await loadModelSpec(out);
  t.same(q.config, src.config);
  t.same(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).quantization_config, { quant_method: 'weft_int8', group_size: -1 });
  for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) t.ok(existsSync(join(out, f)), `${f} copied`);
  t.equal(q.tensors['model.embed_tokens.weight'].dtype, 'F32', 'the embedding stays float for the gather');
  t.equal(q.tensors['model.norm.weight'].dtype, 'F32');
  let checked = 0;
  for (const [name, ref] of Object.entries(q.tensors)) {
    if (!/_proj\.weight$|^lm_head\.weight$/.test(name)) continue;
    t.equal(ref.dtype, 'I8', `${name} is I8`);
    const scale = q.tensors[`${name}_scale`];
    t.same([scale.dtype, scale.shape], ['F32', [ref.shape[0]]], `${name}_scale F32 [out]`);
    const w = rows(src.tensors[name === 'lm_head.weight' ? 'model.embed_tokens.weight' : name]);
    const qs = new Int8Array(readTensorBytes(ref).buffer),
      s = rows(scale),
      cols = ref.shape[1];
    let ok = true;
    for (let r = 0; r < ref.shape[0]; r++) {
      const amax = w.subarray(r * cols, (r + 1) * cols).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      if (Math.abs(s[r] - Math.fround(amax / 127)) > 0) ok = false;
      for (let i = r * cols; i < (r + 1) * cols; i++) if (Math.abs(qs[i] * s[r] - w[i]) > s[r] * 0.5 * (1 + 1e-6)) ok = false;
    }
    t.ok(ok, `${name}: scale = absmax/127, |q·scale − w| ≤ scale/2`);
    checked++;
  }
  t.equal(checked, 5 * 7 + 1, 'every projection and the (tied) lm_head');
  try {
    await quantizeModel(out, join(tmp, 'qq'));
    t.fail('quantized twice');
  } catch (e) {
    t.equal(isWeftError(e) && e.code, 'WEFT_ERR_MODEL_UNSUPPORTED_DTYPE', 'an int8 model cannot be quantized again');
  }
  await t.rejects(quantizeModel(join(tmp, 'tied.gguf'), join(tmp, 'qg')), { code: 'WEFT_ERR_CONFIG_INVALID' }, 'GGUF input');
  await quantizeModel(join(tmp, 'hf-f16'), join(tmp, 'q16'));
  const q16 = await loadModelSpec(join(tmp, 'q16'));
  t.equal(q16.tensors['model.layers.1.mlp.down_proj.weight'].dtype, 'I8', 'F16 input quantizes too');
  t.equal(q16.tensors['model.embed_tokens.weight'].dtype, 'F16');
});
