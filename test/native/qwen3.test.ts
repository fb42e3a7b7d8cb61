// Qwen3 on seeded synthetic weights (explicit head_dim 32 ≠ hidden 64 / 4 heads, per-head q/k
// RMSNorm before RoPE, tied embeddings, the stories260K tokenizer's 512 ids): the HF directory
// and the GGUF give the same logits, int8 stays close, the q/k norm is really applied, and the
// engine matches a plain-JS forward pass written here from the HF weights.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { loadModelSpec } from '../../src/model/load.js';
import { readSafetensors, readTensorBytes, toFloat32 } from '../../src/model/safetensors.js';
import { synthesizeModel } from '../../src/model/synth.js';
import type { ModelConfig, ModelSpec } from '../../src/model/types.js';
import { runOffline } from '../../src/offline.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import type { WeightDtype } from '../../src/workers/binding.js';
import { GOLDEN_IDS, MODEL_DIR } from '../fixtures/paths.js';
import { QWEN3 } from '../fixtures/qwen3.js';

const PROMPT = GOLDEN_IDS.slice(0, 12);

const dir = mkdtempSync(join(tmpdir(), 'weft-qwen3-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const tokenizerJson = readFileSync(join(MODEL_DIR, 'tokenizer.json'), 'utf8');
const HF = join(dir, 'hf'),
  GGUF = join(dir, 'f32.gguf'),
  GGUF_Q8 = join(dir, 'q8_0.gguf');
await synthesizeModel({ config: QWEN3, out: HF, format: 'hf', dtype: 'f32', seed: 7, tokenizerJson });
await synthesizeModel({ config: QWEN3, out: GGUF, format: 'gguf', dtype: 'f32', seed: 7, tokenizerJson });
await synthesizeModel({ config: QWEN3, out: GGUF_Q8, format: 'gguf', dtype: 'q8_0', seed: 7, tokenizerJson });

async function logitsOf(path: string, dtype: WeightDtype, prompt: number[], spec?: ModelSpec): Promise<Float32Array> {
  const e = await EngineInstance.open({ modelPath: path, dtype, numThreads: 1, numKvBlocks: 8, blockSize: 16 }, spec);
  try {
    return runOffline(e, [{ promptIds: prompt, maxTokens: 1, ignoreEos: true }], { returnLogits: true })[0].logits[0];
  } finally {
    e.close();
  }
}
const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
};
const maxAbs = (a: ArrayLike<number>) => maxDiff(a, new Float32Array(a.length));

// ---- the reference: Qwen3 as HF transformers computes it, in float64, one sequence ----

function reference(c: ModelConfig, w: (name: string) => Float64Array, prompt: number[], qkNorm = true): Float64Array {
  const { dim: D, headDim: hd, numHeads: H, numKvHeads: KV, ffnDim: F, rmsEps: eps } = c;
  const matvec = (m: Float64Array, x: Float64Array, rows: number) => {
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) for (let i = 0; i < x.length; i++) y[r] += m[r * x.length + i] * x[i];
    return y;
  };
  const rmsnorm = (x: Float64Array, g: Float64Array) => {
    const inv = 1 / Math.sqrt(x.reduce((s, v) => s + v * v, 0) / x.length + eps);
    return x.map((v, i) => v * inv * g[i]);
  };
  const rope = (v: Float64Array, pos: number) => {
    // rotate halves (NEOX / HF)
    const out = v.slice(),
      half = hd / 2;
    for (let i = 0; i < half; i++) {
      const a = pos / Math.pow(c.ropeTheta, (2 * i) / hd),
        cs = Math.cos(a),
        sn = Math.sin(a);
      out[i] = v[i] * cs - v[i + half] * sn;
      out[i + half] = v[i + half] * cs + v[i] * sn;
    }
    return out;
  };
  const embed = w('model.embed_tokens.weight');
  const xs = prompt.map((id) => embed.slice(id * D, (id + 1) * D));
  for (let l = 0; l < c.numLayers; l++) {
    const p = `model.layers.${l}.`,
      ks: Float64Array[][] = [],
      vs: Float64Array[][] = [];
    for (let pos = 0; pos < xs.length; pos++) {
      const x = xs[pos],
        h = rmsnorm(x, w(`${p}input_layernorm.weight`));
      const q = matvec(w(`${p}self_attn.q_proj.weight`), h, H * hd);
      const k = matvec(w(`${p}self_attn.k_proj.weight`), h, KV * hd);
      const v = matvec(w(`${p}self_attn.v_proj.weight`), h, KV * hd);
      const head = (a: Float64Array, j: number, norm: string) => {
        const s = a.slice(j * hd, (j + 1) * hd);
        return rope(qkNorm ? rmsnorm(s, w(`${p}self_attn.${norm}.weight`)) : s, pos);
      };
      ks.push(Array.from({ length: KV }, (_, j) => head(k, j, 'k_norm')));
      vs.push(Array.from({ length: KV }, (_, j) => v.slice(j * hd, (j + 1) * hd)));
      const attn = new Float64Array(H * hd);
      for (let j = 0; j < H; j++) {
        const qh = head(q, j, 'q_norm'),
          g = Math.floor(j / (H / KV));
        const scores = ks.map((kk) => kk[g].reduce((s, kv, i) => s + kv * qh[i], 0) / Math.sqrt(hd));
        const m = Math.max(...scores),
          e = scores.map((s) => Math.exp(s - m)),
          z = e.reduce((a, b) => a + b, 0);
        e.forEach((ei, tpos) =>
          vs[tpos][g].forEach((vv, i) => {
            attn[j * hd + i] += (ei / z) * vv;
          }),
        );
      }
      const o = matvec(w(`${p}self_attn.o_proj.weight`), attn, D);
      const x2 = x.map((v0, i) => v0 + o[i]);
      const h2 = rmsnorm(x2, w(`${p}post_attention_layernorm.weight`));
      const gate = matvec(w(`${p}mlp.gate_proj.weight`), h2, F),
        up = matvec(w(`${p}mlp.up_proj.weight`), h2, F);
      const act = gate.map((gv, i) => (gv / (1 + Math.exp(-gv))) * up[i]);
      const down = matvec(w(`${p}mlp.down_proj.weight`), act, D);
      xs[pos] = x2.map((v0, i) => v0 + down[i]); // later positions of this layer read only ks/vs
    }
  }
  const last = rmsnorm(xs[xs.length - 1], w('model.norm.weight'));
  return matvec(embed, last, c.vocabSize); // tied LM head
}

const spec = await loadModelSpec(HF);
const refs = readSafetensors(join(HF, 'model.safetensors'));
const weight = (name: string) => Float64Array.from(toFloat32(readTensorBytes(refs[name]), refs[name].dtype));

t.test('the engine (f32) matches a plain-JS Qwen3 forward pass', async (t) => {
  t.equal(spec.config.headDim, 32);
  t.equal(spec.config.qkNorm, true);
  // one token: attention over one position returns v, so q/k (norm, RoPE) do not matter yet
  const first = await logitsOf(HF, 'f32', PROMPT.slice(0, 1));
  const want1 = reference(spec.config, weight, PROMPT.slice(0, 1));
  t.ok(
    maxDiff(first, want1) < 1e-4,
    `first token: max |logit diff| ${maxDiff(first, want1).toExponential(2)} (|logit| up to ${maxAbs(want1).toFixed(2)})`,
  );
  // the whole prompt: the last token attends over 12 positions through normed, rotated q/k
  const got = await logitsOf(HF, 'f32', PROMPT);
  const want = reference(spec.config, weight, PROMPT);
  t.ok(maxDiff(got, want) < 1e-4, `12 tokens: max |logit diff| ${maxDiff(got, want).toExponential(2)}`);
  const noNorm = reference(spec.config, weight, PROMPT, false);
  t.ok(maxDiff(noNorm, want) > 1e-2, `the reference without q/k norm differs by ${maxDiff(noNorm, want).toExponential(2)}`);
});

t.test('the q/k norm changes the logits: the same weights without it give others', async (t) => {
  const tensors = Object.fromEntries(Object.entries(spec.tensors).filter(([n]) => !/\.[qk]_norm\./.test(n)));
  const bare: ModelSpec = { ...spec, config: { ...spec.config, qkNorm: false }, tensors };
  const withNorm = await logitsOf(HF, 'f32', PROMPT);
  // another path: the native weight cache is keyed by it
  const without = await logitsOf(join(HF, 'model.safetensors'), 'f32', PROMPT, bare);
  t.ok(maxDiff(withNorm, without) > 1e-2, `max |logit diff| ${maxDiff(withNorm, without).toExponential(2)}`);
  t.ok(maxDiff(without, reference(spec.config, weight, PROMPT, false)) < 1e-4, 'and match the reference without the norm');
});

t.test('HF directory and GGUF (f32) give the same logits and greedy ids', async (t) => {
  const run = async (path: string) => {
    const e = await EngineInstance.open({ modelPath: path, dtype: 'f32', numThreads: 1, numKvBlocks: 8, blockSize: 16 });
    const r = runOffline(e, [{ promptIds: PROMPT, maxTokens: 16, ignoreEos: true }], { returnLogits: true })[0];
    t.equal(e.spec.ropeInterleaved, false);
    e.close();
    return r;
  };
  const hf = await run(HF),
    gguf = await run(GGUF);
  t.same(gguf.outputIds, hf.outputIds);
  const d = Math.max(...hf.logits.map((l, i) => maxDiff(l, gguf.logits[i])));
  t.ok(d < 1e-5, `max |logit diff| over 16 steps ${d.toExponential(2)}`);
  t.ok(new Set(hf.outputIds).size > 1, `greedy ids are not one repeated token (${hf.outputIds.join(' ')})`);
});

t.test('int8 (from f32 and from GGUF Q8_0) stays close to f32', async (t) => {
  const f = await logitsOf(HF, 'f32', PROMPT);
  const range = maxAbs(f);
  for (const [name, path] of [
    ['int8 from the HF f32', HF],
    ['int8 from the GGUF Q8_0', GGUF_Q8],
  ]) {
    const q = await logitsOf(path, 'int8', PROMPT);
    const mean = q.reduce((s, v, i) => s + Math.abs(v - f[i]), 0) / q.length;
    // int8 weights and per-token int8 activations: a few hundredths on logits of about ±2
    t.ok(
      maxDiff(q, f) < 0.1 * range && mean < 0.02 * range,
      `${name}: max |logit diff| ${maxDiff(q, f).toFixed(4)}, mean ${mean.toFixed(4)}, |logit| up to ${range.toFixed(2)}`,
    );
  }
});
