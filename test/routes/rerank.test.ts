// The reranker model: a synthetic causal LM with SmolLM2's tokenizer (which has single `yes` and
// `no` tokens) stands in for a Qwen3-Reranker. Its scores must equal sigmoid(yes − no) computed
// from the full logits of an independent forward pass (a CPU engine, the prompt run offline);
// /v1/rerank answers in Cohere's, Jina's and vLLM's shapes; beam search reranks with it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { synthesizeModel } from '../../src/model/synth.js';
import { runOffline } from '../../src/offline.js';
import { rerankPrompt, DEFAULT_RERANK_INSTRUCTION, sigmoid } from '../../src/rerank.js';
import { TextTokenizer } from '../../src/tokenizer.js';
import { loadModelSpec } from '../../src/model/load.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { MODEL_DIR } from '../fixtures/paths.js';
import { TINY_SMOL_CONFIG } from '../fixtures/tiny-smol.js';
import { sseData, startTestApp } from './helpers.js';

const SMOL = process.env.WEFT_TEST_SMOLLM2_DIR ?? join(MODEL_DIR, '..', 'smollm2-135m-shape');
const dir = mkdtempSync(join(tmpdir(), 'weft-reranker-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const config = { ...TINY_SMOL_CONFIG, num_hidden_layers: 2, max_position_embeddings: 1024 };
await synthesizeModel({ config, out: dir, format: 'hf', dtype: 'f32', seed: 11, tokenizerJson: readFileSync(join(SMOL, 'tokenizer.json'), 'utf8') });

const s = await startTestApp({ rerankerModel: dir });
t.teardown(() => s.close());
const post = (url: string, payload: unknown) => s.app.inject({ method: 'POST', url, payload });

// sigmoid(yes − no) at the last prompt position, from an offline run of the full prompt
async function reference(query: string, doc: string, instruction = DEFAULT_RERANK_INSTRUCTION): Promise<number> {
  const spec = await loadModelSpec(dir);
  const tok = new TextTokenizer(spec);
  const [yes] = await tok.encode('yes', false),
    [no] = await tok.encode('no', false);
  const ids = await tok.encode(rerankPrompt(instruction, query, doc), false);
  const e = await EngineInstance.open({ modelPath: dir, dtype: 'f32', numThreads: 1, numKvBlocks: Math.ceil(ids.length / 16) + 2, blockSize: 16 });
  const [r] = runOffline(e, [{ promptIds: ids, maxTokens: 1, ignoreEos: true }], { returnLogits: true });
  e.close();
  return sigmoid(r.logits[0][yes] - r.logits[0][no]);
}

const docs = ['Paris is the capital of France.', 'Bananas are yellow.', 'The Eiffel Tower is in Paris.', 'Cats sleep a lot.'];

t.test('scores equal sigmoid(yes - no) from an independent forward pass', async (t) => {
  const r = await post('/v1/rerank', { query: 'Where is the Eiffel Tower?', documents: docs });
  t.equal(r.statusCode, 200, r.body);
  const body = r.json();
  t.equal(body.results.length, 4);
  for (const x of body.results) {
    const want = await reference('Where is the Eiffel Tower?', docs[x.index]);
    t.ok(Math.abs(x.relevance_score - want) < 1e-4, `document ${x.index}: ${x.relevance_score} vs ${want}`);
  }
  const scores = body.results.map((x: { relevance_score: number }) => x.relevance_score);
  t.same(
    scores,
    [...scores].sort((a, b) => b - a),
    'best first',
  );
  t.ok(new Set(scores).size > 1, 'the scores differ between documents');
  t.ok(body.usage.total_tokens > 0 && typeof body.id === 'string');
});

t.test("Cohere's, Jina's and vLLM's request shapes", async (t) => {
  const cohere = (await post('/v2/rerank', { model: 'x', query: 'q', documents: docs, top_n: 2, return_documents: false })).json();
  t.equal(cohere.results.length, 2, 'top_n');
  t.notOk('document' in cohere.results[0], 'return_documents: false');
  const jina = (await post('/v1/rerank', { model: 'x', query: 'q', documents: docs.map((text) => ({ text })), top_n: 3 })).json();
  t.equal(jina.results.length, 3);
  t.equal(jina.results[0].document.text, docs[jina.results[0].index], '{text} documents come back');
  const vllm = (await post('/rerank', { query: 'q', documents: docs })).json();
  t.equal(vllm.results.length, 4);
  for (const [payload, what] of [
    [{ query: 'q' }, 'no documents'],
    [{ query: 'q', documents: [] }, 'empty'],
    [{ query: '', documents: ['a'] }, 'empty query'],
    [{ query: 'q', documents: [1] }, 'a number'],
  ] as const) {
    const bad = await post('/v1/rerank', payload);
    t.equal(bad.statusCode, 400, what);
    t.equal(bad.json().error.code, 'WEFT_ERR_REQ_INVALID', what);
  }
});

t.test('beam search reranks with the model; without one, /v1/rerank is a 400 with a code', async (t) => {
  const scores = (await post('/rerank_scores', { messages: ['Once upon a time'], beam_width: 3, max_tokens: 8, use_rerank: true })).json();
  t.equal(scores.reranker.length > 0 && scores.reranker !== 'logprob', true, `reranker: ${scores.reranker}`);
  for (const h of scores.hypotheses)
    t.ok(Math.abs(h.rerank_score - (await reference('Once upon a time', h.output_text))) < 1e-4, `hypothesis ${h.rank}`);
  const stream = await post('/stream_chat_beam', { messages: ['Once upon a time'], beam_width: 3, max_tokens: 8, use_rerank: true });
  const events = sseData(stream.body);
  const final = events.at(-2) as { output_ids: number[]; output_text: string; reranker: string; rerank_score: number };
  t.equal(final.reranker, scores.reranker);
  t.same(
    (events.slice(0, -2) as { token_id: number }[]).map((e) => e.token_id),
    final.output_ids,
    'streamed tokens = the chosen hypothesis',
  );
  t.equal(final.output_text, scores.hypotheses[0].output_text, "the reranker's best is streamed");
  const plain = await startTestApp();
  t.teardown(() => plain.close());
  const r = await plain.app.inject({ method: 'POST', url: '/v1/rerank', payload: { query: 'q', documents: ['a'] } });
  t.equal(r.statusCode, 400);
  t.equal(r.json().error.code, 'WEFT_ERR_REQ_NO_RERANKER');
});
