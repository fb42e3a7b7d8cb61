// Routes through inject() on the real model: request schemas, the bad-input table (each case
// with its status and WEFT_ERR code), SSE framing, auth, CORS, readiness, 429, timeouts.
import t from 'tap';

import { buildApp } from '../../src/app.js';
import { resolveBackend } from '../../src/config.js';
import { Metrics } from '../../src/metrics.js';
import { loadNative } from '../../src/workers/binding.js';
import { MODEL_ID, sseData, startTestApp, testConfig } from './helpers.js';

// the test app's backend is auto: the GPU where one is visible
const BACKEND = resolveBackend('auto', loadNative().cudaDeviceCount());

const s = await startTestApp();
t.teardown(() => s.close());
const { app } = s;

type Case = [name: string, method: 'GET' | 'POST', url: string, payload: unknown, status: number, code: string, headers?: Record<string, string>];
const m = MODEL_ID;
const BAD: Case[] = [
  ['malformed JSON', 'POST', '/generate', '{"prompt": ', 400, 'WEFT_ERR_HTTP_BAD_JSON', { 'content-type': 'application/json' }],
  ['empty JSON body', 'POST', '/generate', '', 400, 'WEFT_ERR_HTTP_EMPTY_BODY', { 'content-type': 'application/json' }],
  // bodies are parsed from Buffers (app.ts): prototype poisoning is still refused, as Fastify's own parser does
  [
    '__proto__ key',
    'POST',
    '/generate',
    '{"prompt": "a", "__proto__": {"x": 1}}',
    400,
    'WEFT_ERR_HTTP_BAD_JSON',
    { 'content-type': 'application/json' },
  ],
  [
    'constructor.prototype key',
    'POST',
    '/generate',
    '{"constructor": {"prototype": {}}}',
    400,
    'WEFT_ERR_HTTP_BAD_JSON',
    { 'content-type': 'application/json' },
  ],
  ['no body at all', 'POST', '/generate', undefined, 400, 'WEFT_ERR_HTTP_EMPTY_BODY'],
  ['body not an object', 'POST', '/generate', '[1,2]', 400, 'WEFT_ERR_REQ_INVALID', { 'content-type': 'application/json' }],
  [
    'unsupported media type',
    'POST',
    '/generate',
    'prompt=x',
    415,
    'WEFT_ERR_HTTP_UNSUPPORTED_MEDIA_TYPE',
    { 'content-type': 'application/x-www-form-urlencoded' },
  ],
  ['missing prompt', 'POST', '/generate', { max_tokens: 3 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['prompt of wrong type', 'POST', '/generate', { prompt: 5 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['unknown field', 'POST', '/generate', { prompt: 'a', foo: 1 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['negative temperature', 'POST', '/generate', { prompt: 'a', temperature: -0.5 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['absurd temperature', 'POST', '/generate', { prompt: 'a', temperature: 1e9 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['top_p zero', 'POST', '/generate', { prompt: 'a', top_p: 0 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['top_p above 1', 'POST', '/generate', { prompt: 'a', top_p: 1.5 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['top_k below -1', 'POST', '/generate', { prompt: 'a', top_k: -2 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['top_k fractional', 'POST', '/generate', { prompt: 'a', top_k: 2.5 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['min_p above 1', 'POST', '/generate', { prompt: 'a', min_p: 2 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['repetition_penalty zero', 'POST', '/generate', { prompt: 'a', repetition_penalty: 0 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['presence_penalty out of range', 'POST', '/generate', { prompt: 'a', presence_penalty: 3 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['frequency_penalty out of range', 'POST', '/generate', { prompt: 'a', frequency_penalty: -3 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['negative seed', 'POST', '/generate', { prompt: 'a', seed: -1 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['max_tokens zero', 'POST', '/generate', { prompt: 'a', max_tokens: 0 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['max_tokens as string', 'POST', '/generate', { prompt: 'a', max_tokens: '5' }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['prompt + max_tokens beyond the context', 'POST', '/generate', { prompt: 'a', max_tokens: 100000 }, 400, 'WEFT_ERR_SCHED_TOO_LONG'],
  ['min_tokens above max_tokens', 'POST', '/generate', { prompt: 'a', max_tokens: 2, min_tokens: 5 }, 400, 'WEFT_ERR_SCHED_INVALID_PARAMS'],
  ['stop token id outside the vocabulary', 'POST', '/generate', { prompt: 'a', stop_token_ids: [99999] }, 400, 'WEFT_ERR_REQ_INVALID_TOKEN_ID'],
  ['empty stop string', 'POST', '/generate', { prompt: 'a', stop: [''] }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['too many logprobs', 'POST', '/generate', { prompt: 'a', logprobs: 50 }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['stream: unknown field', 'POST', '/stream', { prompt: 'a', bogus: true }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['batch: empty prompts', 'POST', '/generate_batch', { prompts: [] }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['chat: bad role', 'POST', '/chat', { messages: [{ role: 'robot', content: 'x' }] }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['chat: empty messages', 'POST', '/chat', { messages: [] }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['tokenize: neither text nor messages', 'POST', '/tokenize', {}, 400, 'WEFT_ERR_REQ_INVALID'],
  ['tokenize: both text and messages', 'POST', '/tokenize', { text: 'a', messages: ['b'] }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['detokenize: negative id', 'POST', '/detokenize', { ids: [-1] }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['detokenize: id outside the vocabulary', 'POST', '/detokenize', { ids: [1, 100000] }, 400, 'WEFT_ERR_REQ_INVALID_TOKEN_ID'],
  ['detokenize: ids not an array', 'POST', '/detokenize', { ids: 'abc' }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['completions: model not a string', 'POST', '/v1/completions', { model: 5, prompt: 'a' }, 400, 'WEFT_ERR_REQ_INVALID'],
  ['completions: unknown model', 'POST', '/v1/completions', { model: 'gpt-9', prompt: 'a' }, 404, 'WEFT_ERR_REQ_UNKNOWN_MODEL'],
  ['completions: n too large', 'POST', '/v1/completions', { model: m, prompt: 'a', n: 1000 }, 400, 'WEFT_ERR_REQ_INVALID'],
  [
    'completions: prompt token id outside the vocabulary',
    'POST',
    '/v1/completions',
    { model: m, prompt: [1, 5000] },
    400,
    'WEFT_ERR_REQ_INVALID_TOKEN_ID',
  ],
  ['chat completions: missing messages', 'POST', '/v1/chat/completions', { model: m }, 400, 'WEFT_ERR_REQ_INVALID'],
  [
    'chat completions: top_logprobs without logprobs',
    'POST',
    '/v1/chat/completions',
    { model: m, messages: [{ role: 'user', content: 'x' }], top_logprobs: 2 },
    400,
    'WEFT_ERR_REQ_INVALID',
  ],
  [
    'chat completions: image content part',
    'POST',
    '/v1/chat/completions',
    { model: m, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: 'x' }] }] },
    400,
    'WEFT_ERR_REQ_INVALID',
  ],
  ['unknown route', 'GET', '/v2/nothing', undefined, 404, 'WEFT_ERR_HTTP_NOT_FOUND'],
  ['wrong method', 'GET', '/generate', undefined, 404, 'WEFT_ERR_HTTP_NOT_FOUND'],
];

t.test(`bad-input table (${BAD.length} cases)`, async (t) => {
  t.ok(BAD.length >= 30);
  for (const [name, method, url, payload, status, code, headers] of BAD) {
    const res = await app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as string }) });
    t.equal(res.statusCode, status, `${name}: status`);
    const body = res.json();
    t.equal(body.error?.code, code, `${name}: code`);
    t.type(body.error?.message, 'string', `${name}: message`);
    t.type(body.error?.type, 'string', `${name}: type`);
  }
  const ok = await app.inject({ method: 'POST', url: '/generate', payload: { prompt: 'Once', max_tokens: 3, temperature: 0 } });
  t.equal(ok.statusCode, 200, 'the server keeps serving after every bad request');
});

t.test('body over the size limit → 413', async (t) => {
  const small = await buildApp(testConfig({ bodyLimit: 1024 }), { service: s.engine.service, metrics: new Metrics({ defaultMetrics: false }) });
  const res = await small.inject({ method: 'POST', url: '/generate', payload: { prompt: 'x'.repeat(4096) } });
  t.equal(res.statusCode, 413);
  t.equal(res.json().error.code, 'WEFT_ERR_HTTP_BODY_TOO_LARGE');
  await small.close();
});

t.test('prompt length limits, checked before any work', async (t) => {
  const limited = await startTestApp({ maxPromptTokens: 4 });
  const res = await limited.app.inject({ method: 'POST', url: '/generate', payload: { prompt: 'Once upon a time there was', max_tokens: 1 } });
  t.equal(res.statusCode, 400);
  t.equal(res.json().error.code, 'WEFT_ERR_REQ_PROMPT_TOO_LONG');
  await limited.close();
  const long = await app.inject({
    method: 'POST',
    url: '/generate',
    payload: { prompt: 'Once upon a time there was a girl '.repeat(80), max_tokens: 1 },
  });
  t.equal(long.statusCode, 400);
  t.equal(long.json().error.code, 'WEFT_ERR_REQ_PROMPT_TOO_LONG', 'a prompt that fills the context');
});

t.test('/stream SSE framing', async (t) => {
  const res = await app.inject({ method: 'POST', url: '/stream', payload: { prompt: '', max_tokens: 8, temperature: 0 } });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/event-stream/);
  t.ok(
    res.body
      .split('\n\n')
      .slice(0, -1)
      .every((f) => f.startsWith('data: ')),
    'every frame is data: …\\n\\n',
  );
  const events = sseData(res.body);
  t.equal(events.at(-1), '[DONE]');
  const tokens = events.slice(0, -2) as { text: string; token_id: number }[];
  t.equal(tokens.length, 8, 'one event per token');
  const final = events.at(-2) as { finish_reason: string; usage: { completion_tokens: number }; output_text: string };
  t.equal(final.finish_reason, 'length');
  t.equal(final.usage.completion_tokens, 8);
  t.equal(tokens.map((e) => e.text).join(''), final.output_text);
});

t.test('/v1 streaming framing: chunks, include_usage, [DONE] unquoted', async (t) => {
  const res = await app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    payload: { model: m, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, stream: true, stream_options: { include_usage: true } },
  });
  t.match(res.body, /data: \[DONE\]\n\n$/);
  const events = sseData(res.body).slice(0, -1) as {
    object: string;
    choices: { delta?: { role?: string }; finish_reason: string | null }[];
    usage?: { completion_tokens: number };
  }[];
  t.ok(events.every((e) => e.object === 'chat.completion.chunk'));
  t.equal(events[0].choices[0].delta?.role, 'assistant');
  t.equal(events.at(-2)!.choices[0].finish_reason, 'length');
  t.same(events.at(-1)!.choices, []);
  t.equal(events.at(-1)!.usage?.completion_tokens, 4);
});

// vLLM's continuous_usage_stats: each chunk carries its choice's usage so far (its prompt's tokens,
// the output tokens streamed for that choice), the last usage chunk the whole request's.
t.test("/v1 streaming: continuous_usage_stats puts each choice's running usage on every chunk", async (t) => {
  const opts = { stream: true, stream_options: { include_usage: true, continuous_usage_stats: true } };
  type Chunk = { choices: { index: number }[]; usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number } };
  // url, body, the choices, the choices of one prompt
  const cases = [
    ['/v1/completions', { prompt: ['Once upon', 'Lily'], n: 2, max_tokens: 5, ignore_eos: true, temperature: 1, seed: 3 }, 4, 2],
    ['/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], max_tokens: 5, ignore_eos: true }, 1, 1],
    ['/v1/completions', { prompt: 'Once upon', n: 3, max_tokens: 5, ignore_eos: true, use_beam_search: true }, 3, 3],
  ] as const;
  for (const [url, body, numChoices, perPrompt] of cases) {
    const res = await app.inject({ method: 'POST', url, payload: { model: m, ...body, ...opts } });
    t.equal(res.statusCode, 200, res.body);
    const events = sseData(res.body).slice(0, -1) as Chunk[];
    const last = events.at(-1)!;
    t.same(last.choices, [], `${url}: the usage chunk last`);
    const perChoice = new Map<number, number[]>();
    const prompt = new Map<number, number>();
    for (const e of events.slice(0, -1)) {
      const i = e.choices[0].index;
      t.ok(e.usage, `${url}: choice ${i}'s chunk has usage`);
      if (!e.usage) continue;
      t.equal(e.usage.total_tokens, e.usage.prompt_tokens + e.usage.completion_tokens);
      perChoice.set(i, [...(perChoice.get(i) ?? []), e.usage.completion_tokens]);
      prompt.set(i, e.usage.prompt_tokens);
    }
    t.equal(perChoice.size, numChoices, `${url}: every choice streamed`);
    for (const [i, counts] of perChoice) {
      t.ok(
        counts.every((c, k) => k === 0 || c >= counts[k - 1]),
        `${url}: choice ${i}'s count never goes back (${counts.join(' ')})`,
      );
      t.equal(counts.at(-1), 5, `${url}: choice ${i} ends at its 5 tokens`);
    }
    // each prompt's tokens counted once in the request's usage (its n samples or beams share it)
    const promptTokens = [...prompt].filter(([i]) => i % perPrompt === 0).reduce((a, [, p]) => a + p, 0);
    t.equal(last.usage!.prompt_tokens, promptTokens, `${url}: the request's prompt tokens in the last chunk`);
  }
  const plain = await app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { model: m, prompt: 'a', max_tokens: 2, stream: true, stream_options: { include_usage: true } },
  });
  t.ok(
    (sseData(plain.body).slice(0, -2) as Chunk[]).every((e) => !('usage' in e)),
    'without continuous_usage_stats only the last chunk has usage',
  );
});

t.test('errors during admission keep their status on streaming routes; full queue → 429 + Retry-After', async (t) => {
  const tight = await startTestApp({ maxNumSeqs: 1, maxNumWaiting: 1, maxNumBatchedTokens: 64 });
  t.teardown(() => tight.close());
  const svc = tight.engine.service;
  const req = { promptIds: await svc.encode('Once'), maxTokens: 400, ignoreEos: true };
  // the one running slot taken (its first token came), one request waiting behind it: the queue is full
  let started!: () => void;
  const running = new Promise<void>((resolve) => {
    started = resolve;
  });
  const a = svc.start(req, { onDelta: () => started() });
  await running;
  const b = svc.start(req);
  const routes = [
    ['/stream', { prompt: 'Once' }],
    ['/generate', { prompt: 'Once' }],
    ['/v1/completions', { prompt: 'Once', stream: true }],
  ] as const;
  for (const [url, payload] of routes) {
    const r = await tight.app.inject({ method: 'POST', url, payload });
    t.equal(r.statusCode, 429, `${url}: 429, not a stream that fails`);
    t.equal(r.json().error.code, 'WEFT_ERR_SCHED_QUEUE_FULL');
    t.equal(r.headers['retry-after'], '1');
  }
  a.abort();
  b.abort();
  t.same(
    (await Promise.all([a.result, b.result])).map((r) => r.finishReason),
    ['abort', 'abort'],
  );
  t.equal((await tight.app.inject({ method: 'POST', url: '/stream', payload: { prompt: 'Once', max_tokens: 2 } })).statusCode, 200, 'room again');
});

t.test('a burst is admitted while the batch has free slots, whatever --max-num-waiting says', async (t) => {
  const small = await startTestApp({ maxNumWaiting: 4 }); // 64 running slots (the test config)
  t.teardown(() => small.close());
  const res = await Promise.all(
    Array.from({ length: 60 }, (_, i) => small.app.inject({ method: 'POST', url: '/generate', payload: { prompt: `Once ${i}`, max_tokens: 4 } })),
  );
  t.same(
    res.map((r) => r.statusCode),
    Array(60).fill(200),
    'no 429 while slots are free',
  );
});

t.test('one request may start at most --max-seqs-per-request sequences (prompts × n, or × the beam width)', async (t) => {
  const prompts = (k: number) => Array.from({ length: k }, (_, i) => `p${i}`);
  const over = await app.inject({ method: 'POST', url: '/v1/completions', payload: { prompt: prompts(64), n: 16, max_tokens: 480 } });
  t.equal(over.statusCode, 400, '64 prompts × n 16 = 1,024 sequences');
  t.equal(over.json().error.code, 'WEFT_ERR_REQ_TOO_MANY_SEQUENCES');
  t.match(over.json().error.message, /1024 sequences; one request may start at most 256/);
  const beams = await app.inject({ method: 'POST', url: '/v1/completions', payload: { prompt: prompts(17), n: 16, use_beam_search: true } });
  t.equal(beams.json().error?.code, 'WEFT_ERR_REQ_TOO_MANY_SEQUENCES', 'beam search: prompts × width');
  const at = await app.inject({ method: 'POST', url: '/v1/completions', payload: { prompt: prompts(16), n: 16, max_tokens: 1 } });
  t.equal(at.statusCode, 200, '16 × 16 = 256: at the limit');
  t.equal(at.json().choices.length, 256);
  const capped = await startTestApp({ maxSeqsPerRequest: 4 });
  t.teardown(() => capped.close());
  const payload = { messages: [{ role: 'user', content: 'x' }], n: 5, stream: true };
  const stream = await capped.app.inject({ method: 'POST', url: '/v1/chat/completions', payload });
  t.equal(stream.statusCode, 400, 'configurable; a streamed request is refused before its stream begins');
  t.equal(stream.json().error.code, 'WEFT_ERR_REQ_TOO_MANY_SEQUENCES');
  t.equal((await capped.app.inject({ method: 'POST', url: '/generate_batch', payload: { prompts: prompts(5), max_tokens: 1 } })).statusCode, 400);
});

t.test("/ready and /v1/models show the model's path only with --expose-model-path", async (t) => {
  const hidden = JSON.stringify([(await app.inject({ url: '/ready' })).json(), (await app.inject({ url: '/v1/models' })).json()]);
  t.notMatch(hidden, s.engine.service.model.path, 'not by default');
  t.equal((await app.inject({ url: '/v1/models' })).json().data[0].root, MODEL_ID, 'root is the model id');
  const open = await buildApp(testConfig({ exposeModelPath: true }), { service: s.engine.service, metrics: new Metrics({ defaultMetrics: false }) });
  t.equal((await open.inject({ url: '/ready' })).json().path, s.engine.service.model.path);
  t.equal((await open.inject({ url: '/v1/models' })).json().data[0].root, s.engine.service.model.path);
  await open.close();
});

t.test('a request past its timeout ends with a clear error', async (t) => {
  const slow = await startTestApp({ requestTimeoutMs: 1 });
  const res = await slow.app.inject({ method: 'POST', url: '/generate', payload: { prompt: 'Once', max_tokens: 400, ignore_eos: true } });
  t.equal(res.statusCode, 504);
  t.equal(res.json().error.code, 'WEFT_ERR_REQ_TIMEOUT');
  const st = await slow.app.inject({ method: 'POST', url: '/stream', payload: { prompt: 'Once', max_tokens: 400, ignore_eos: true } });
  t.equal((sseData(st.body).at(-2) as { error: { code: string } }).error.code, 'WEFT_ERR_REQ_TIMEOUT', 'streamed: an error event, then [DONE]');
  await slow.close();
});

t.test('API keys: Bearer on every route but /health', async (t) => {
  const locked = await buildApp(testConfig({ apiKeys: ['sk-one', 'sk-two'] as never }), {
    service: s.engine.service,
    metrics: new Metrics({ defaultMetrics: false }),
  });
  t.equal((await locked.inject({ url: '/health' })).statusCode, 200);
  const none = await locked.inject({ url: '/v1/models' });
  t.equal(none.statusCode, 401);
  t.equal(none.json().error.code, 'WEFT_ERR_AUTH_MISSING_KEY');
  const wrong = await locked.inject({ url: '/metrics', headers: { authorization: 'Bearer nope' } });
  t.equal(wrong.json().error.code, 'WEFT_ERR_AUTH_INVALID_KEY');
  t.equal((await locked.inject({ url: '/v1/models', headers: { authorization: 'Bearer sk-two' } })).statusCode, 200);
  t.equal((await locked.inject({ url: '/v1/models', headers: { authorization: 'Bearer sk-one' } })).statusCode, 200, 'every key works');
  for (const guess of ['sk-on', 'sk-onee', 'SK-ONE', 'sk-twosk-one', 'sk-one,sk-two'])
    t.equal(
      (await locked.inject({ url: '/v1/models', headers: { authorization: `Bearer ${guess}` } })).json().error?.code,
      'WEFT_ERR_AUTH_INVALID_KEY',
      `"${guess}" is refused`,
    );
  await locked.close();
});

t.test('a repetition penalty that float32 would turn into 0 is refused', async (t) => {
  for (const repetition_penalty of [1e-300, 0, -1]) {
    const r = await app.inject({ method: 'POST', url: '/generate', payload: { prompt: 'x', max_tokens: 2, repetition_penalty } });
    t.equal(r.statusCode, 400, String(repetition_penalty));
    t.equal(r.json().error.code, 'WEFT_ERR_REQ_INVALID');
  }
  const ok = await app.inject({ method: 'POST', url: '/generate', payload: { prompt: 'x', max_tokens: 2, repetition_penalty: 0.5 } });
  t.equal(ok.statusCode, 200);
});

t.test('CORS is off by default, on when configured', async (t) => {
  const plain = await app.inject({ url: '/health', headers: { origin: 'http://x.example' } });
  t.notOk(plain.headers['access-control-allow-origin']);
  const open = await buildApp(testConfig({ cors: 'http://x.example' }), {
    service: s.engine.service,
    metrics: new Metrics({ defaultMetrics: false }),
  });
  t.equal(
    (await open.inject({ url: '/health', headers: { origin: 'http://x.example' } })).headers['access-control-allow-origin'],
    'http://x.example',
  );
  await open.close();
});

t.test('/ready is 503 before the engine is attached; /health is 200', async (t) => {
  const loading = await buildApp(testConfig(), { metrics: new Metrics({ defaultMetrics: false }) });
  t.equal((await loading.inject({ url: '/health' })).statusCode, 200);
  const r = await loading.inject({ url: '/ready' });
  t.equal(r.statusCode, 503);
  t.equal(r.json().error.code, 'WEFT_ERR_HTTP_NOT_READY');
  loading.weft.attach(s.engine.service);
  const ready = await loading.inject({ url: '/ready' });
  t.equal(ready.statusCode, 200);
  t.equal(ready.json().backend, BACKEND, 'auto resolves to the GPU where one is visible');
  await loading.close();
});

t.test("the seed's example works as written: POST /chat {messages: ['Hello', 'Tell me a story.']}", async (t) => {
  const streamed = await app.inject({ method: 'POST', url: '/chat', payload: { messages: ['Hello', 'Tell me a story.'] } });
  t.equal(streamed.statusCode, 200, streamed.body);
  t.match(streamed.headers['content-type'], /text\/event-stream/);
  const events = sseData(streamed.body);
  t.ok(events.length >= 2, 'tokens, then the final event');
  const plain = await app.inject({
    method: 'POST',
    url: '/chat',
    payload: { messages: ['Hello', 'Tell me a story.'], stream: false, max_tokens: 8, temperature: 0 },
  });
  t.equal(plain.statusCode, 200, plain.body);
  t.equal(plain.json().usage.completion_tokens ?? plain.json().output_ids.length, plain.json().output_ids.length);
  const tok = (await app.inject({ method: 'POST', url: '/tokenize', payload: { messages: ['Hello', 'Tell me a story.'] } })).json();
  t.equal(tok.prompt, 'user: Hello\nuser: Tell me a story.\nassistant:', 'two user turns (the plain fallback template)');
});

t.test('tokenize / detokenize / models / docs', async (t) => {
  const tok = (await app.inject({ method: 'POST', url: '/tokenize', payload: { text: 'Once upon' } })).json();
  t.equal(tok.ids[0], 1, 'BOS first');
  t.equal(tok.tokens.length, tok.ids.length);
  const noSpecial = (await app.inject({ method: 'POST', url: '/tokenize', payload: { text: 'Once upon', add_special_tokens: false } })).json();
  t.same(noSpecial.ids, tok.ids.slice(1));
  const chat = (await app.inject({ method: 'POST', url: '/tokenize', payload: { messages: ['hello'] } })).json();
  t.equal(chat.prompt, 'user: hello\nassistant:', 'the plain fallback template');
  t.equal((await app.inject({ method: 'POST', url: '/detokenize', payload: { ids: tok.ids } })).json().text, 'Once upon');
  const models = (await app.inject({ url: '/v1/models' })).json();
  t.equal(models.data[0].id, MODEL_ID);
  t.equal(models.data[0].backend, BACKEND);
  const spec = (await app.inject({ url: '/docs/json' })).json();
  t.equal(spec.openapi, '3.0.3');
  for (const p of [
    '/generate',
    '/stream',
    '/generate_batch',
    '/chat',
    '/tokenize',
    '/detokenize',
    '/v1/completions',
    '/v1/chat/completions',
    '/v1/models',
  ])
    t.ok(spec.paths[p], `OpenAPI has ${p}`);
  t.ok(spec.paths['/generate'].post.requestBody.content['application/json'].schema.properties.temperature, 'schemas come from the route schemas');
  const ui = await app.inject({ url: '/docs/' });
  t.equal(ui.statusCode, 200);
  t.match(ui.body, /swagger/i);
  const css = await app.inject({ url: '/docs/static/swagger-ui.css' });
  t.equal(css.statusCode, 200, 'Swagger UI assets are served from the package (offline)');
});

t.test('stop strings never leak; stream text equals non-streamed text', async (t) => {
  const p = { prompt: 'Once upon a time', max_tokens: 40, temperature: 0, stop: ['park', 'xyz'] };
  const full = (await app.inject({ method: 'POST', url: '/generate', payload: { ...p, stop: undefined } })).json();
  const cut = (await app.inject({ method: 'POST', url: '/generate', payload: p })).json();
  t.ok(full.output_text.includes('park'), 'the stop string would occur');
  t.equal(cut.output_text, full.output_text.slice(0, full.output_text.indexOf('park')));
  t.equal(cut.finish_reason, 'stop');
  const st = sseData((await app.inject({ method: 'POST', url: '/stream', payload: p })).body);
  t.equal((st.slice(0, -2) as { text: string }[]).map((e) => e.text).join(''), cut.output_text);
});

t.test("/version: weft's version from its package.json (vLLM's route)", async (t) => {
  const { readFileSync } = await import('node:fs');
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  const r = await app.inject({ url: '/version' });
  t.equal(r.statusCode, 200);
  t.same(r.json(), { version: pkg.version });
});
