// Qwen3 config and tensor loading (no native code): explicit head_dim, the per-head q/k norm
// weights under their HF and GGUF names, and GGUF q/k rows that are not permuted (llama.cpp
// permutes only llama's).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { configFromGguf, configFromHf } from '../../src/model/config.js';
import { readGguf } from '../../src/model/gguf.js';
import { loadModelSpec } from '../../src/model/load.js';
import { readTensorBytes, toFloat32 } from '../../src/model/safetensors.js';
import { synthesizeModel } from '../../src/model/synth.js';
import type { TensorRef } from '../../src/model/types.js';
import { MODEL_DIR } from '../fixtures/paths.js';
import { QWEN3 as QWEN3_FIXTURE } from '../fixtures/qwen3.js';

// as a real Qwen3 config.json has it: rope_theta 1e6 and the sliding-window fields (off)
const QWEN3 = { ...QWEN3_FIXTURE, rope_theta: 1000000, use_sliding_window: false, sliding_window: null };

const tmp = mkdtempSync(join(tmpdir(), 'weft-qwen3-unit-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
const values = (r: TensorRef) => toFloat32(readTensorBytes(r), r.dtype);

t.test('a Qwen3 config.json: head_dim from the config, q/k norm on, no bias', async (t) => {
  const c = configFromHf(QWEN3, 'config.json', null, { bosTokenId: null, eosTokenIds: [] });
  t.equal(c.architecture, 'qwen3');
  t.equal(c.headDim, 32, 'head_dim is read, not hidden_size / num_heads (16)');
  t.equal(c.qkNorm, true);
  t.equal(c.qkvBias, false);
  t.equal(
    configFromHf({ ...QWEN3, architectures: undefined }, 'config.json', null, { bosTokenId: null, eosTokenIds: [] }).architecture,
    'qwen3',
    'model_type alone names it',
  );
  t.throws(() => configFromHf({ ...QWEN3, attention_bias: true }, 'config.json', null, { bosTokenId: null, eosTokenIds: [] }), {
    code: 'WEFT_ERR_MODEL_UNSUPPORTED_ARCH',
  });
  t.throws(() => configFromHf({ ...QWEN3, architectures: ['Qwen3MoeForCausalLM'] }, 'config.json', null, { bosTokenId: null, eosTokenIds: [] }), {
    code: 'WEFT_ERR_MODEL_UNSUPPORTED_ARCH',
  });
});

t.test('synth writes Qwen3 as HF and GGUF; both load with the same q/k norm weights', async (t) => {
  const tok = readFileSync(join(MODEL_DIR, 'tokenizer.json'), 'utf8');
  await synthesizeModel({ config: QWEN3, out: join(tmp, 'hf'), format: 'hf', dtype: 'f32', seed: 9, tokenizerJson: tok });
  await synthesizeModel({ config: QWEN3, out: join(tmp, 'm.gguf'), format: 'gguf', dtype: 'q8_0', seed: 9, tokenizerJson: tok });
  const g = readGguf(join(tmp, 'm.gguf'));
  t.equal(g.metadata.get('general.architecture'), 'qwen3');
  t.equal(g.metadata.get('qwen3.attention.key_length'), 32);
  t.ok(
    g.tensors.some((x) => x.name === 'blk.1.attn_q_norm.weight' && x.type === 0),
    'blk.N.attn_q_norm.weight, F32',
  );
  t.ok(
    g.tensors.some((x) => x.name === 'blk.1.attn_k_norm.weight'),
    'blk.N.attn_k_norm.weight',
  );
  const hf = await loadModelSpec(join(tmp, 'hf')),
    gg = await loadModelSpec(join(tmp, 'm.gguf'));
  t.same(gg.config, hf.config, 'the same config from both formats');
  t.equal(gg.ropeInterleaved, false, 'qwen3 GGUF q/k rows are in HF order');
  for (const n of ['model.layers.0.self_attn.q_norm.weight', 'model.layers.1.self_attn.k_norm.weight']) {
    t.same(hf.tensors[n].shape, [32]);
    const a = values(hf.tensors[n]),
      b = values(gg.tensors[n]);
    t.same(Array.from(b), Array.from(a), `${n} equal in both files`);
    t.ok(a.every((v) => v > 0.5 && v < 1.5) && a.some((v) => Math.abs(v - 1) > 0.1), `${n} random around 1`);
  }
});

t.test('GGUF metadata names qwen3; a Qwen3 config over a checkpoint without q/k norms is refused', async (t) => {
  const meta = readGguf(join(tmp, 'm.gguf')).metadata;
  const c = configFromGguf(meta, 'm.gguf', { hasOutputTensor: false, ropeFreqs: null });
  t.match(c, { architecture: 'qwen3', headDim: 32, qkNorm: true, qkvBias: false, tieEmbeddings: true, ropeTheta: 1000000 });
  // the same shapes as Llama (explicit head_dim), then relabelled Qwen3: the norms are missing
  const dir = join(tmp, 'llama');
  await synthesizeModel({
    config: { ...QWEN3, architectures: ['LlamaForCausalLM'], model_type: 'llama' },
    out: dir,
    format: 'hf',
    dtype: 'f32',
    seed: 1,
  });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(QWEN3));
  await t.rejects(loadModelSpec(dir), { code: 'WEFT_ERR_MODEL_MISSING_TENSOR', message: /self_attn\.q_norm\.weight/ });
});
