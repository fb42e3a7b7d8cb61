// Qwen3 against llama.cpp (node-llama-cpp's prebuilt CPU binary, installed by
// bench/llamacpp/install.sh; CI does not install it, and this file then skips): the greedy ids
// of weft and of llama.cpp on the same synthetic Qwen3 GGUF and the same prompt ids must be
// equal. This checks our reading of llama.cpp's qwen3 layout (unpermuted q/k, NEOX RoPE,
// attn_{q,k}_norm before RoPE) against llama.cpp itself.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { loadLlama, NO_NLC, type NlcContext } from '../../bench/nlc.js';
import { synthesizeModel } from '../../src/model/synth.js';
import { runOffline } from '../../src/offline.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { GOLDEN_IDS, MODEL_DIR } from '../fixtures/paths.js';
import { QWEN3 } from '../fixtures/qwen3.js';

const PROMPTS = [GOLDEN_IDS.slice(0, 12), [1, ...GOLDEN_IDS.slice(20, 27).reverse()]];
const NUM_TOKENS = 24;

// llama.cpp's greedy ids after each prompt, and its next-token distribution after the first.
async function llamaCpp(file: string): Promise<{ ids: number[][]; probs: Map<number, number> }> {
  const llama = await loadLlama();
  const model = await llama.loadModel({ modelPath: file, gpuLayers: 0 });
  const newContext = (): Promise<NlcContext> =>
    // f32 KV and no flash attention (whose CPU path rounds q/k/v to f16): as weft's f32 path, to ~1e-6
    model.createContext({
      contextSize: 64,
      sequences: 1,
      threads: { ideal: 1, min: 1 },
      ignoreMemorySafetyChecks: true,
      experimentalKvCacheKeyType: 'F32',
      experimentalKvCacheValueType: 'F32',
      flashAttention: false,
    });
  const ids: number[][] = [];
  for (const prompt of PROMPTS) {
    const context = await newContext();
    const out: number[] = [];
    const gen = context.getSequence().evaluate(prompt); // default options: temperature 0, greedy argmax
    for (let i = 0; i < NUM_TOKENS; i++) {
      const { value, done } = await gen.next();
      if (done) break;
      out.push(value);
    }
    await gen.return(undefined);
    await context.dispose();
    ids.push(out);
  }
  // temperature 1, no top-k/top-p: the full softmax of the logits
  const context = await newContext();
  const gen = context.getSequence().evaluateWithMetadata(PROMPTS[0], { probabilities: true }, { temperature: 1, topK: 0, topP: 1 });
  const first = await gen.next();
  await gen.return(undefined);
  await context.dispose();
  await model.dispose();
  await llama.dispose();
  return { ids, probs: first.done ? new Map() : first.value.probabilities };
}

const logSoftmax = (l: Float32Array) => {
  const m = Math.max(...l),
    z = Math.log(l.reduce((s, v) => s + Math.exp(v - m), 0));
  return Array.from(l, (v) => v - m - z);
};

t.test("greedy ids equal llama.cpp's on a synthetic Qwen3 GGUF, next-token log-probabilities close", { skip: NO_NLC }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-qwen3-llamacpp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const tokenizerJson = readFileSync(join(MODEL_DIR, 'tokenizer.json'), 'utf8');
  for (const [dtype, weftDtype, tol] of [
    ['f32', 'f32', 1e-4],
    ['q8_0', 'int8', 0.05],
  ] as const) {
    const file = join(dir, `${dtype}.gguf`);
    await synthesizeModel({ config: QWEN3, out: file, format: 'gguf', dtype, seed: 7, tokenizerJson });
    const e = await EngineInstance.open({ modelPath: file, dtype: weftDtype, numThreads: 1, numKvBlocks: 8, blockSize: 16 });
    const ours = PROMPTS.map((p) => runOffline(e, [{ promptIds: p, maxTokens: NUM_TOKENS, ignoreEos: true }], { returnLogits: true })[0]);
    e.close();
    const theirs = await llamaCpp(file);
    PROMPTS.forEach((_, i) =>
      t.same(
        ours[i].outputIds,
        theirs.ids[i],
        `${dtype}, prompt ${i}: weft (${weftDtype}) ${ours[i].outputIds.join(' ')} / llama.cpp ${theirs.ids[i].join(' ')}`,
      ),
    );
    // log-probabilities of the whole vocabulary at the first generated position
    const lp = logSoftmax(ours[0].logits[0]);
    t.equal(theirs.probs.size, lp.length, 'llama.cpp returned the full distribution');
    let d = 0;
    for (const [id, p] of theirs.probs) d = Math.max(d, Math.abs(Math.log(p) - lp[id]));
    t.ok(d < tol, `${dtype}: max |log p diff| vs llama.cpp ${d.toExponential(2)} (< ${tol})`);
  }
});
