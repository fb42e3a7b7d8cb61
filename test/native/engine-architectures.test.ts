// Architectures beyond stories260K, on seeded synthetic weights: the same model written as an HF
// directory and as a GGUF (different tensor layouts: GGUF llama q/k rows are permuted, Qwen2's
// are not) must give the same logits; plus the paged cache's block copy used to fork sequences.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { synthesizeModel } from '../../src/model/synth.js';
import { runOffline } from '../../src/offline.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { GREEDY, packStep } from '../../src/workers/step-pack.js';
import { MODEL_DIR } from '../fixtures/paths.js';

const base = {
  hidden_size: 128,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 256,
  vocab_size: 600,
  max_position_embeddings: 512,
  rms_norm_eps: 1e-6,
  bos_token_id: 1,
  eos_token_id: 2,
};
const CONFIGS: Record<string, Record<string, unknown>> = {
  'qwen2 (q/k/v bias)': { ...base, architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', rope_theta: 1000000, tie_word_embeddings: true },
  // head_dim 64 as in Llama 3.2 (the GGUF form of llama3 scaling needs it to be recoverable)
  'llama3 rope scaling, untied head': {
    ...base,
    hidden_size: 256,
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    rope_theta: 500000,
    tie_word_embeddings: false,
    rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
  },
};

for (const [name, config] of Object.entries(CONFIGS)) {
  t.test(`${name}: HF directory and GGUF give the same logits`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-arch-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    await synthesizeModel({ config, out: join(dir, 'hf'), format: 'hf', dtype: 'f32', seed: 5 });
    await synthesizeModel({ config, out: join(dir, 'm.gguf'), format: 'gguf', dtype: 'f32', seed: 5 });
    const prompt = [1, ...Array.from({ length: 90 }, (_, i) => 3 + ((i * 41) % 590))];
    const run = async (path: string) => {
      const e = await EngineInstance.open({ modelPath: path, dtype: 'f32', numThreads: 1, numKvBlocks: 16, blockSize: 16 });
      const r = runOffline(e, [{ promptIds: prompt, maxTokens: 8, ignoreEos: true }], { returnLogits: true })[0];
      t.equal(e.spec.config.qkvBias, name.startsWith('qwen2'), 'q/k/v bias detected');
      e.close();
      return r;
    };
    const hf = await run(join(dir, 'hf'));
    const gguf = await run(join(dir, 'm.gguf'));
    t.same(gguf.outputIds, hf.outputIds);
    let d = 0;
    hf.logits.forEach((l, i) =>
      l.forEach((v, j) => {
        d = Math.max(d, Math.abs(v - gguf.logits[i][j]));
      }),
    );
    t.ok(d < 1e-4, `max |logit diff| ${d.toExponential(2)}`);
    t.ok(new Set(hf.outputIds).size > 1 || hf.logits[0].some((v) => Math.abs(v) > 0.01), 'logits are not degenerate');
    if (config.rope_scaling) {
      // the same weights without scaling must give other logits
      const { rope_scaling: _, ...plain } = config;
      await synthesizeModel({ config: plain, out: join(dir, 'plain'), format: 'hf', dtype: 'f32', seed: 5 });
      const p = await run(join(dir, 'plain'));
      let dp = 0;
      hf.logits[0].forEach((v, j) => {
        dp = Math.max(dp, Math.abs(v - p.logits[0][j]));
      });
      t.ok(dp > 1e-3, `rope scaling changes the logits (max diff ${dp.toExponential(2)})`);
    }
  });
}

t.test('a block copy forks a sequence: the copy continues exactly like the original', async (t) => {
  const e = await EngineInstance.open({ modelPath: MODEL_DIR, dtype: 'f32', numThreads: 1, numKvBlocks: 8, blockSize: 16 });
  const prompt = [1, 403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267]; // 20 tokens: 2 blocks
  const a = e.step(packStep([{ seqId: 1, tokens: prompt, startPos: 0, promptLen: 20, blockTable: [0, 1], doSample: true, sampling: GREEDY }], 16));
  const next = a.sampled[0];
  // seq 2 shares block 0 and gets a private copy of the partly filled block 1 (copy-on-write)
  const out = e.step(
    packStep(
      [
        { seqId: 1, tokens: [next], startPos: 20, promptLen: 20, blockTable: [0, 1], doSample: true, sampling: GREEDY },
        { seqId: 2, tokens: [next], startPos: 20, promptLen: 20, blockTable: [0, 2], doSample: true, sampling: GREEDY },
      ],
      16,
      { blockCopies: [1, 2], forks: [1, 2] },
    ),
  );
  t.equal(out.sampled[1], out.sampled[0], 'the fork predicts what the original predicts');
  const alone = runOffline(e, [{ promptIds: prompt, maxTokens: 2, ignoreEos: true }])[0].outputIds;
  t.same([next, out.sampled[0]], alone);
  e.close();
});

t.test("a fork and the release of its parent in one step: the child keeps the parent's history", async (t) => {
  // With a strong repetition penalty the next tokens depend on the penalty history (prompt and
  // outputs). Native forks copy it; they must run before the step's releases, or a parent
  // released in the step that forks it leaves its child with none.
  const e = await EngineInstance.open({ modelPath: MODEL_DIR, dtype: 'f32', numThreads: 1, numKvBlocks: 8, blockSize: 16 });
  const sampling = { ...GREEDY, repetitionPenalty: 5 };
  const prompt = [1, 403, 407, 261, 378, 432, 383, 286]; // greedy would repeat 261 next; the penalty forbids it
  const alone = runOffline(e, [{ promptIds: prompt, maxTokens: 6, ignoreEos: true, sampling: { repetitionPenalty: 5 } }])[0].outputIds;
  t.notSame(alone, runOffline(e, [{ promptIds: prompt, maxTokens: 6, ignoreEos: true }])[0].outputIds, 'the penalty changes the tokens');
  const first = e.step(packStep([{ seqId: 1, tokens: prompt, startPos: 0, promptLen: 8, blockTable: [0], doSample: true, sampling }], 16)).sampled[0];
  const out = [first];
  // seq 2 forks from seq 1 (a copy of its partly filled block), and seq 1 is released, in one step
  let tok = e.step(
    packStep([{ seqId: 2, tokens: [first], startPos: 8, promptLen: 8, blockTable: [1], doSample: true, sampling }], 16, {
      blockCopies: [0, 1],
      forks: [1, 2],
      release: [1],
    }),
  ).sampled[0];
  out.push(tok);
  for (let pos = 9; out.length < 6; pos++) {
    tok = e.step(packStep([{ seqId: 2, tokens: [tok], startPos: pos, promptLen: 8, blockTable: [1], doSample: true, sampling }], 16)).sampled[0];
    out.push(tok);
  }
  t.same(out, alone, 'the fork continues exactly like the unforked sequence');
  e.close();
});
