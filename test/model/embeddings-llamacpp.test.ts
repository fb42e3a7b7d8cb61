// Embeddings against llama.cpp (node-llama-cpp's embedding context; bench/llamacpp/install.sh
// installs it, CI does not, and this file then skips): on the same synthetic Qwen3 GGUF and the
// same token ids, weft's last-token embedding (--embedding-pooling last, not normalized) equals
// llama.cpp's, the final-normed hidden state of the last token, to f16 KV-cache rounding.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { loadLlama, NO_NLC } from '../../bench/nlc.js';
import { cosine } from '../../bench/timing.js';
import { synthesizeModel } from '../../src/model/synth.js';
import { GOLDEN_IDS, MODEL_DIR } from '../fixtures/paths.js';
import { QWEN3 } from '../fixtures/qwen3.js';
import { startTestApp } from '../routes/helpers.js';

const INPUTS = [GOLDEN_IDS.slice(0, 12), [1, ...GOLDEN_IDS.slice(20, 27).reverse()], GOLDEN_IDS.slice(0, 40)];

t.test("last-token embeddings equal llama.cpp's on a synthetic Qwen3 GGUF", { skip: NO_NLC }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-embed-llamacpp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'qwen3-f32.gguf');
  await synthesizeModel({
    config: QWEN3,
    out: file,
    format: 'gguf',
    dtype: 'f32',
    seed: 9,
    tokenizerJson: readFileSync(join(MODEL_DIR, 'tokenizer.json'), 'utf8'),
  });
  const llama = await loadLlama();
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const ctx = await model.createEmbeddingContext({ contextSize: 64, threads: { ideal: 1, min: 1 }, ignoreMemorySafetyChecks: true });
  const theirs: (readonly number[])[] = [];
  for (const ids of INPUTS) theirs.push((await ctx.getEmbeddingFor(ids)).vector);
  await ctx.dispose();
  await model.dispose();
  await llama.dispose();

  const s = await startTestApp({ embeddingModel: file, embeddingPooling: 'last' });
  t.teardown(() => s.close());
  const r = await s.app.inject({ method: 'POST', url: '/v1/embeddings', payload: { input: INPUTS, normalize: false } });
  t.equal(r.statusCode, 200, r.statusCode === 200 ? 'POST /v1/embeddings' : r.body.slice(0, 300));
  const ours = (r.json() as { data: { embedding: number[] }[] }).data.map((d) => d.embedding);
  INPUTS.forEach((ids, i) => {
    t.equal(ours[i].length, theirs[i].length, 'same width');
    const c = cosine(ours[i], theirs[i]);
    // llama.cpp's embedding context keeps an f16 KV cache: ~1e-3 relative differences
    t.ok(c > 0.9999, `input ${i} (${ids.length} tokens): cosine ${c.toFixed(7)}`);
    const diff = Math.sqrt(ours[i].reduce((s, x, d) => s + (x - theirs[i][d]) ** 2, 0) / theirs[i].reduce((s, x) => s + x * x, 0));
    t.ok(diff < 3e-3, `input ${i}: |ours − theirs| / |theirs| = ${diff.toExponential(2)}`);
    t.ok(cosine(ours[i], theirs[(i + 1) % INPUTS.length]) < 0.99, `input ${i}: not the same as another input's`);
  });
});
