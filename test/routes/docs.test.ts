// The OpenAPI document at /docs: every route's example body, posted as it stands (what Swagger
// UI's "Try it out" sends), is accepted with a 2xx by a server with a model and a reranker;
// every operation documents its error responses with their codes; /docs opens without the API
// key (the page asks for it through Authorize) while the API itself still needs it.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { buildApp } from '../../src/app.js';
import { synthesizeModel } from '../../src/model/synth.js';
import { SMOLLM_DIR } from '../fixtures/paths.js';
import { TINY_SMOL_CONFIG } from '../fixtures/tiny-smol.js';
import { startTestApp, testConfig } from './helpers.js';

// a tiny reranker, as in rerank.test.ts, so that /v1/rerank's example has a model to answer it (and
// /v1/embeddings' an embedding model)
const dir = mkdtempSync(join(tmpdir(), 'weft-docs-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
await synthesizeModel({
  config: TINY_SMOL_CONFIG,
  out: dir,
  format: 'hf',
  dtype: 'f32',
  seed: 3,
  tokenizerJson: readFileSync(join(SMOLLM_DIR, 'tokenizer.json'), 'utf8'),
});
const s = await startTestApp({ backend: 'cpu', rerankerModel: dir, embeddingModel: dir });
t.teardown(() => s.close());

interface Operation {
  requestBody?: { content: Record<string, { schema?: { examples?: unknown[] }; example?: unknown; examples?: Record<string, { value: unknown }> }> };
  responses: Record<string, { description: string }>;
}
const spec = (await s.app.inject({ url: '/docs/json' })).json() as { paths: Record<string, Record<string, Operation>> };

t.test('every example body is accepted as it stands', async (t) => {
  let posted = 0;
  for (const [path, ops] of Object.entries(spec.paths)) {
    const op = ops.post;
    if (!op?.requestBody) continue;
    const media = op.requestBody.content['application/json'];
    const example = media.example ?? media.schema?.examples?.[0] ?? Object.values(media.examples ?? {})[0]?.value;
    t.ok(example, `${path} has an example`);
    const r = await s.app.inject({ method: 'POST', url: path, payload: example as object });
    t.ok(r.statusCode >= 200 && r.statusCode < 300, `POST ${path} ${JSON.stringify(example)} → ${r.statusCode} ${r.statusCode >= 300 ? r.body : ''}`);
    posted++;
  }
  t.ok(posted >= 12, `${posted} routes posted`);
});

t.test('every operation documents its error responses and their codes', async (t) => {
  for (const [path, ops] of Object.entries(spec.paths))
    for (const [method, op] of Object.entries(ops)) {
      t.match(op.responses['400']?.description ?? '', /WEFT_ERR_REQ_INVALID\b/, `${method} ${path}: 400 lists its codes`);
      t.match(op.responses['503']?.description ?? '', /WEFT_ERR_HTTP_NOT_READY/, `${method} ${path}: 503`);
    }
});

t.test('with API keys, /docs opens without one; the API still needs it', async (t) => {
  const app = await buildApp(testConfig({ apiKeys: ['k1'] }));
  t.teardown(() => app.close());
  const page = await app.inject({ url: '/docs/' });
  t.equal(page.statusCode, 200);
  t.equal((await app.inject({ url: '/docs/json' })).statusCode, 200);
  t.equal((await app.inject({ url: '/docs/static/swagger-ui.css' })).statusCode, 200);
  const api = await app.inject({ method: 'POST', url: '/tokenize', payload: { text: 'a' } });
  t.equal(api.statusCode, 401);
  t.equal((await app.inject({ url: '/docsx' })).statusCode, 401, 'only /docs itself is public');
});
