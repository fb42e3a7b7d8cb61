// The embedding model: a synthetic causal LM with SmolLM2's tokenizer and tied embeddings stands in
// for a Qwen3-Embedding. With tied embeddings the logits are E·h (E the embedding matrix, h the
// final-normed hidden state), so an embedding is checked against an independent forward pass: E
// times the returned vector must equal the logits an offline run of the same prompt gives at its
// last position ('last' pooling), or the mean of the logits at every position ('mean').
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

import t from 'tap';

import { GGUF_TYPE, readGguf } from '../../src/model/gguf.js';
import { writeGgufFile } from '../../src/model/gguf-write.js';
import { loadModelSpec } from '../../src/model/load.js';
import { ggufPooling, sentenceTransformersPooling } from '../../src/model/pooling.js';
import { synthesizeModel } from '../../src/model/synth.js';
import { runOffline } from '../../src/offline.js';
import { TextTokenizer } from '../../src/tokenizer.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { packStep } from '../../src/workers/step-pack.js';
import { GREEDY } from '../../src/sampling.js';
import { SMOLLM_DIR } from '../fixtures/paths.js';
import { TINY_SMOL_CONFIG } from '../fixtures/tiny-smol.js';
import { metricValue, startTestApp } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'weft-embed-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const config = { ...TINY_SMOL_CONFIG, num_hidden_layers: 2 };
await synthesizeModel({
  config,
  out: dir,
  format: 'hf',
  dtype: 'f32',
  seed: 5,
  tokenizerJson: readFileSync(join(SMOLLM_DIR, 'tokenizer.json'), 'utf8'),
});

const spec = await loadModelSpec(dir);
const tok = new TextTokenizer(spec);
const D = spec.config.dim,
  V = spec.config.vocabSize;
const E = (() => {
  const ref = spec.tensors['model.embed_tokens.weight'];
  const bytes = readFileSync(ref.file).subarray(ref.offset, ref.offset + ref.byteLength);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
})();

// the logits E·v of a vector v
const project = (v: ArrayLike<number>) => {
  const out = new Float32Array(V);
  for (let r = 0; r < V; r++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += E[r * D + d] * v[d];
    out[r] = s;
  }
  return out;
};

// the logits at each position of ids, from offline runs of its prefixes (f32, one thread)
async function prefixLogits(ids: number[]): Promise<Float32Array[]> {
  const e = await EngineInstance.open({ modelPath: dir, dtype: 'f32', numThreads: 1, numKvBlocks: 8 * ids.length + 8, blockSize: 16 });
  const runs = runOffline(
    e,
    ids.map((_, p) => ({ promptIds: ids.slice(0, p + 1), maxTokens: 1, ignoreEos: true })),
    { returnLogits: true },
  );
  e.close();
  return runs.map((r) => r.logits[0]);
}

const maxDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
};
const norm = (v: number[]) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));

const texts = ['The cat sat on the mat.', 'A dog ran in the park, fast.', 'Hello', 'Paris is the capital of France.'];

const last = await startTestApp({ embeddingModel: dir });
t.teardown(() => last.close());
const mean = await startTestApp({ embeddingModel: dir, embeddingPooling: 'mean' });
t.teardown(() => mean.close());
type Body = { data: { index: number; embedding: number[] | string; object: string }[]; usage: { prompt_tokens: number }; model: string };
const embed = async (s: typeof last, payload: unknown) => {
  const r = await s.app.inject({ method: 'POST', url: '/v1/embeddings', payload });
  t.equal(r.statusCode, 200, r.body.slice(0, 300));
  return r.json() as Body;
};
const vec = (b: Body, i: number) => b.data[i].embedding as number[];

t.test("'last' pooling: E·v equals the logits at the last position of an independent run", async (t) => {
  t.equal(E.length, V * D);
  const raw = await embed(last, { input: texts, normalize: false });
  const unit = await embed(last, { input: texts });
  t.equal(raw.data.length, texts.length);
  let tokens = 0;
  for (const [i, text] of texts.entries()) {
    const ids = await tok.encode(text, true);
    tokens += ids.length;
    const [want] = (await prefixLogits(ids)).slice(-1);
    const got = project(vec(raw, i));
    t.ok(maxDiff(got, want) < 2e-3, `${JSON.stringify(text)}: E·v vs logits, max |diff| ${maxDiff(got, want)}`);
    t.equal(raw.data[i].index, i);
    const n = norm(vec(raw, i));
    t.ok(Math.abs(norm(vec(unit, i)) - 1) < 1e-5, 'normalized by default');
    t.ok(
      maxDiff(
        vec(unit, i),
        vec(raw, i).map((x) => x / n),
      ) < 1e-6,
      'normalized = raw / |raw|',
    );
  }
  t.equal(raw.usage.prompt_tokens, tokens, 'usage counts every input token');
  t.equal(raw.data[0].object, 'embedding');
});

t.test("'mean' pooling: E·v equals the mean of the logits at every position", async (t) => {
  const raw = await embed(mean, { input: texts.slice(0, 2), normalize: false });
  for (const [i, text] of texts.slice(0, 2).entries()) {
    const ids = await tok.encode(text, true);
    const per = await prefixLogits(ids);
    const want = new Float32Array(V);
    for (const l of per) for (let r = 0; r < V; r++) want[r] += l[r] / per.length;
    const got = project(vec(raw, i));
    t.ok(maxDiff(got, want) < 2e-3, `${JSON.stringify(text)}: max |diff| ${maxDiff(got, want)}`);
  }
  const lastRaw = await embed(last, { input: texts[0], normalize: false });
  t.ok(maxDiff(vec(raw, 0), vec(lastRaw, 0)) > 1e-3, 'mean differs from last');
});

t.test('an input is embedded the same alone, in a batch, again (prefix cache), and as token ids', async (t) => {
  for (const s of [last, mean]) {
    const alone = vec(await embed(s, { input: texts[1] }), 0);
    const batch = await embed(s, { input: [...texts, ...texts] });
    t.ok(maxDiff(vec(batch, 1), alone) < 1e-5, 'in a batch');
    t.ok(maxDiff(vec(batch, texts.length + 1), alone) < 1e-5, 'again in the same batch');
    t.ok(maxDiff(vec(await embed(s, { input: texts[1] }), 0), alone) < 1e-5, 'again (prefix cache for last pooling)');
    const ids = await tok.encode(texts[1], true);
    t.ok(maxDiff(vec(await embed(s, { input: ids }), 0), alone) < 1e-5, 'token ids');
    t.ok(maxDiff(vec(await embed(s, { input: [ids, ids] }), 1), alone) < 1e-5, 'lists of token ids');
  }
});

t.test('inputs longer than a step: pooled over the chunks that prefill them', async (t) => {
  // 32 tokens a step: each input's hidden states come in two or more steps, beside other inputs'
  const tight = await startTestApp({ embeddingModel: dir, embeddingPooling: 'mean', maxNumBatchedTokens: 32, maxNumSeqs: 4 });
  t.teardown(() => tight.close());
  const inputs = [0, 1, 2, 3].map((k) => `${texts.join(' ')} ${texts[k]} ${texts[(k + 1) % 4]} (number ${k})`);
  const counts = await Promise.all(inputs.map(async (x) => (await tok.encode(x, true)).length));
  t.ok(
    counts.every((n) => n > 32),
    `every input is longer than a step (${counts.join(', ')} tokens)`,
  );
  const got = await embed(tight, { input: inputs });
  const want = await embed(mean, { input: inputs });
  inputs.forEach((_, i) => t.ok(maxDiff(vec(got, i), vec(want, i)) < 1e-5, `input ${i}: as prefilled in one step`));
});

t.test('base64, dimensions, truncate_prompt_tokens', async (t) => {
  const f = vec(await embed(last, { input: texts[0], encoding_format: 'float' }), 0);
  const b64 = (await embed(last, { input: texts[0], encoding_format: 'base64' })).data[0].embedding as string;
  const buf = Buffer.from(b64, 'base64');
  const decoded = Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4));
  t.same(decoded, Array.from(Float32Array.from(f)), 'base64 holds the float32 values');
  const d16 = vec(await embed(last, { input: texts[0], dimensions: 16 }), 0);
  t.equal(d16.length, 16);
  const head = f.slice(0, 16);
  t.ok(
    maxDiff(
      d16,
      head.map((x) => x / norm(head)),
    ) < 1e-6,
    'the first 16 values, unit length again',
  );
  const ids = await tok.encode(texts[1], true);
  const cut = await embed(last, { input: texts[1], truncate_prompt_tokens: 3 });
  t.equal(cut.usage.prompt_tokens, 3);
  t.ok(maxDiff(vec(cut, 0), vec(await embed(last, { input: ids.slice(-3) }), 0)) < 1e-5, 'the last 3 tokens');
  const all = await embed(last, { input: texts[1], truncate_prompt_tokens: -1 });
  t.equal(all.usage.prompt_tokens, ids.length, '-1: the most the model takes');
  t.equal(all.model, basename(dir), 'the model is named after its directory');
});

t.test('bad requests get 4xx codes; metrics count inputs', async (t) => {
  const before = metricValue(await (await last.app.inject({ url: '/metrics' })).body, 'weft_embedding_inputs_total');
  await embed(last, { input: ['a', 'b', 'c'] });
  const after = metricValue(await (await last.app.inject({ url: '/metrics' })).body, 'weft_embedding_inputs_total');
  t.equal(after - before, 3, 'weft_embedding_inputs_total');
  const long = 'word '.repeat(600);
  for (const [payload, code] of [
    [{ input: '' }, 'WEFT_ERR_REQ_INVALID'],
    [{ input: [] }, 'WEFT_ERR_REQ_INVALID'],
    [{}, 'WEFT_ERR_REQ_INVALID'],
    [{ input: 'x', dimensions: D + 1 }, 'WEFT_ERR_REQ_INVALID'],
    [{ input: 'x', encoding_format: 'hex' }, 'WEFT_ERR_REQ_INVALID'],
    [{ input: 'x', truncate_prompt_tokens: 0 }, 'WEFT_ERR_REQ_INVALID'],
    [{ input: [[1, 2], []] }, 'WEFT_ERR_REQ_INVALID'],
    [{ input: [1, V] }, 'WEFT_ERR_REQ_INVALID_TOKEN_ID'],
    [{ input: ['ok', long] }, 'WEFT_ERR_REQ_PROMPT_TOO_LONG'],
  ] as const) {
    const r = await last.app.inject({ method: 'POST', url: '/v1/embeddings', payload });
    t.equal(r.statusCode, 400, `${JSON.stringify(payload).slice(0, 60)}: ${r.body.slice(0, 200)}`);
    t.equal(r.json().error.code, code);
  }
  const plain = await startTestApp();
  t.teardown(() => plain.close());
  const r = await plain.app.inject({ method: 'POST', url: '/embeddings', payload: { input: 'x' } });
  t.equal(r.statusCode, 400);
  t.equal(r.json().error.code, 'WEFT_ERR_REQ_NO_EMBEDDING_MODEL');
});

t.test('the engine returns the hidden rows asked for, and refuses rows outside the step', async (t) => {
  const e = await EngineInstance.open({ modelPath: dir, dtype: 'f32', numThreads: 1, numKvBlocks: 4, blockSize: 16 });
  t.teardown(() => e.close());
  const ids = await tok.encode(texts[0], true);
  const seq = { seqId: 1, startPos: 0, tokens: ids, blockTable: [0], promptLen: ids.length, doSample: true, sampling: GREEDY };
  const out = e.step(packStep([seq], 16, { release: [], hiddenRows: Int32Array.from([ids.length - 1, 0]) }));
  t.equal(out.hidden?.length, 2 * D);
  const per = await prefixLogits(ids);
  t.ok(maxDiff(project(out.hidden!.subarray(0, D)), per.at(-1)!) < 2e-3, 'row of the last token');
  t.ok(maxDiff(project(out.hidden!.subarray(D)), per[0]) < 2e-3, 'row of the first token');
  const seq2 = { ...seq, seqId: 2, blockTable: [1] };
  t.throws(() => e.step(packStep([seq2], 16, { hiddenRows: Int32Array.from([ids.length]) })), /hidden row out of range/);
});

t.test('pooling as the files say: sentence-transformers directories, GGUF pooling_type', async (t) => {
  const st = join(dir, 'st');
  mkdirSync(join(st, '1_Pooling'), { recursive: true });
  t.same(sentenceTransformersPooling(st), { pooling: null, normalize: null }, 'no files: nothing said');
  writeFileSync(
    join(st, 'modules.json'),
    JSON.stringify([
      { idx: 0, type: 'sentence_transformers.models.Transformer' },
      { idx: 1, type: 'sentence_transformers.models.Pooling' },
    ]),
  );
  writeFileSync(join(st, '1_Pooling', 'config.json'), JSON.stringify({ pooling_mode_mean_tokens: true, pooling_mode_lasttoken: false }));
  t.same(sentenceTransformersPooling(st), { pooling: 'mean', normalize: false });
  writeFileSync(
    join(st, 'modules.json'),
    JSON.stringify([{ type: 'sentence_transformers.models.Pooling' }, { type: 'sentence_transformers.models.Normalize' }]),
  );
  writeFileSync(join(st, '1_Pooling', 'config.json'), JSON.stringify({ pooling_mode_lasttoken: true }));
  t.same(sentenceTransformersPooling(st), { pooling: 'last', normalize: true });
  // the loader reads them with the model's other files
  mkdirSync(join(dir, '1_Pooling'), { recursive: true });
  writeFileSync(join(dir, '1_Pooling', 'config.json'), JSON.stringify({ pooling_mode_mean_tokens: true }));
  t.same((await loadModelSpec(dir)).pooling, { pooling: 'mean', normalize: null }, 'ModelSpec.pooling');
  writeFileSync(join(st, 'modules.json'), '{not json');
  t.throws(() => sentenceTransformersPooling(st), { code: 'WEFT_ERR_MODEL_BAD_CONFIG' });
  for (const [type, want] of [
    [3, 'last'],
    [1, 'mean'],
    [2, 'cls'],
    [0, null],
  ] as const) {
    const f = join(dir, `pool-${type}.gguf`);
    await writeGgufFile(
      f,
      [
        { key: 'general.architecture', type: GGUF_TYPE.STRING, value: 'qwen3' },
        { key: 'qwen3.pooling_type', type: GGUF_TYPE.U32, value: type },
      ],
      [],
    );
    t.equal(ggufPooling(readGguf(f).metadata).pooling, want, `pooling_type ${type}`);
  }
});
