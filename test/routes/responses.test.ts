// /v1/responses through the official openai client on stories260K: a turn's output equals what
// /v1/chat/completions answers for the same conversation (instructions a system turn, the
// previous response's conversation and output before the input); the streamed events add up to
// the whole response (the client's own accumulator rebuilds it); stored responses are fetched,
// listed, continued, deleted; background ones are polled and cancelled; tools, text.format and
// log-probs come through; bad requests are 4xx with codes.
import { Ajv2020 } from 'ajv/dist/2020.js';
import { OpenAI } from 'openai';
import t from 'tap';

import { buildApp } from '../../src/app.js';
import { WeftError } from '../../src/errors.js';
import { Metrics } from '../../src/metrics.js';
import { logSink, metricValue, startTestApp, testConfig } from './helpers.js';

const s = await startTestApp({ backend: 'cpu' });
t.teardown(() => s.close());
const base = await s.app.listen({ port: 0, host: '127.0.0.1' });
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 });
const model = 'stories260K';
const greedy = { model, temperature: 0 } as const;

type ChatMessage = OpenAI.Chat.Completions.ChatCompletionMessageParam;
const chat = (messages: ChatMessage[], max_tokens: number, extra: object = {}) =>
  client.chat.completions.create({ ...greedy, messages, max_tokens, ...extra });
const inject = (method: 'GET' | 'POST' | 'DELETE', url: string, payload?: object) => s.app.inject({ method, url, ...(payload ? { payload } : {}) });

t.test('a turn answers what chat completions answers for the same conversation', async (t) => {
  const r = await client.responses.create({ ...greedy, input: 'Tell me a story.', max_output_tokens: 24 });
  const c = await chat([{ role: 'user', content: 'Tell me a story.' }], 24);
  t.match(r.id, /^resp_/);
  t.equal(r.object, 'response');
  t.equal(r.output_text, c.choices[0].message.content, 'the same text');
  t.equal(r.output.length, 1, 'one message item');
  t.match(r.output[0], { type: 'message', role: 'assistant', id: /^msg_/ });
  t.equal(r.usage?.input_tokens, c.usage?.prompt_tokens, 'input tokens');
  t.equal(r.usage?.output_tokens, c.usage?.completion_tokens, 'output tokens');
  t.equal(r.usage?.total_tokens, (r.usage?.input_tokens ?? 0) + (r.usage?.output_tokens ?? 0));
  if (c.choices[0].finish_reason === 'length') {
    t.equal(r.status, 'incomplete');
    t.same(r.incomplete_details, { reason: 'max_output_tokens' });
    t.equal((r.output[0] as { status: string }).status, 'incomplete');
  } else t.equal(r.status, 'completed');
  t.equal(r.store, true);
  t.equal(r.max_output_tokens, 24);
  t.equal(r.temperature, 0);

  const items = await client.responses.create({
    ...greedy,
    instructions: 'You tell short stories.',
    input: [
      { role: 'developer', content: 'Be kind.' },
      { role: 'user', content: [{ type: 'input_text', text: 'Hello' }] },
      { role: 'assistant', content: 'Hi! What story?' },
      { type: 'message', role: 'user', content: 'One about a cat.' },
    ],
    max_output_tokens: 16,
  });
  const same = await chat(
    [
      { role: 'system', content: 'You tell short stories.' },
      { role: 'developer', content: 'Be kind.' },
      { role: 'user', content: 'Hello' },
      { role: 'assistant', content: 'Hi! What story?' },
      { role: 'user', content: 'One about a cat.' },
    ],
    16,
  );
  t.equal(items.output_text, same.choices[0].message.content, 'instructions and item lists: the same prompt');
  t.equal(items.usage?.input_tokens, same.usage?.prompt_tokens);
  t.equal(items.instructions, 'You tell short stories.');
});

t.test('streamed events add up to the whole response', async (t) => {
  for (const input of ['Once upon a time', 'Tell me about a dog.']) {
    const whole = await client.responses.create({ ...greedy, input, max_output_tokens: 20 });
    const stream = client.responses.stream({ ...greedy, input, max_output_tokens: 20 });
    const events: OpenAI.Responses.ResponseStreamEvent[] = [];
    for await (const e of stream) events.push(e);
    const final = await stream.finalResponse(); // the client's accumulator, from the events alone
    t.equal(final.output_text, whole.output_text, `${input}: the same text`);
    // ids differ between the two responses; `parsed` is the client's own addition
    const plain = (r: OpenAI.Responses.Response) =>
      JSON.parse(JSON.stringify(r.output, (k, v) => (k === 'id' ? '' : k === 'parsed' ? undefined : v))) as unknown;
    t.same(plain(final), plain(whole), 'the same items');
    t.same(
      events.map((e) => e.sequence_number),
      events.map((_, i) => i),
      'sequence numbers 0, 1, 2, …',
    );
    t.equal(events[0].type, 'response.created');
    t.equal(events[1].type, 'response.in_progress');
    const last = events.at(-1)!;
    t.equal(last.type, whole.status === 'incomplete' ? 'response.incomplete' : 'response.completed', 'ends on the status event');
    const deltas = events.filter((e) => e.type === 'response.output_text.delta').map((e) => (e as { delta: string }).delta);
    t.ok(deltas.length > 1, `${deltas.length} deltas`);
    t.equal(deltas.join(''), whole.output_text, 'the deltas are the text');
    const ended = (last as { response: OpenAI.Responses.Response }).response;
    // the second run finds the prompt in the prefix cache: only cached_tokens may differ
    t.same({ ...ended.usage, input_tokens_details: null }, { ...whole.usage, input_tokens_details: null }, 'usage');
    const got = await client.responses.retrieve(ended.id);
    t.equal(got.output_text, whole.output_text, 'a streamed response is stored too');
  }
  const raw = await fetch(`${base}/v1/responses`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...greedy, input: 'Hi', max_output_tokens: 4, stream: true }),
  });
  const text = await raw.text();
  t.notOk(text.includes('[DONE]'), 'no [DONE]: the stream ends on its last event');
  t.match(text, /^event: response\.created\ndata: /, 'named events');
});

t.test('previous_response_id continues the stored conversation; instructions are not carried over', async (t) => {
  const first = await client.responses.create({ ...greedy, instructions: 'Speak softly.', input: 'Hello', max_output_tokens: 12 });
  const second = await client.responses.create({ ...greedy, previous_response_id: first.id, input: 'Tell me a story.', max_output_tokens: 16 });
  const c = await chat(
    [
      { role: 'user', content: 'Hello' },
      { role: 'assistant', content: first.output_text },
      { role: 'user', content: 'Tell me a story.' },
    ],
    16,
  );
  t.equal(second.output_text, c.choices[0].message.content, 'the conversation so far, then the input');
  t.equal(second.usage?.input_tokens, c.usage?.prompt_tokens);
  t.equal(second.previous_response_id, first.id);
  const third = await client.responses.create({ ...greedy, previous_response_id: second.id, input: 'More.', max_output_tokens: 8 });
  const c3 = await chat(
    [
      { role: 'user', content: 'Hello' },
      { role: 'assistant', content: first.output_text },
      { role: 'user', content: 'Tell me a story.' },
      { role: 'assistant', content: second.output_text },
      { role: 'user', content: 'More.' },
    ],
    8,
  );
  t.equal(third.output_text, c3.choices[0].message.content, 'a chain of three');
  await client.responses.delete(first.id);
  const fourth = await client.responses.create({ ...greedy, previous_response_id: third.id, input: 'End.', max_output_tokens: 4 });
  t.ok(fourth.usage!.input_tokens > third.usage!.input_tokens, 'an earlier response deleted: the chain still holds');
});

t.test('stored responses: get, input items, delete; store false keeps nothing', async (t) => {
  const input = [
    { role: 'user' as const, content: 'a' },
    { role: 'assistant' as const, content: 'b' },
    { role: 'user' as const, content: 'c' },
  ];
  const r = await client.responses.create({ ...greedy, input, max_output_tokens: 4, metadata: { team: 'x' } });
  const got = await client.responses.retrieve(r.id);
  t.same(got, r, 'GET returns the response');
  t.same(got.metadata, { team: 'x' });
  const list = await client.responses.inputItems.list(r.id);
  t.same(
    list.data.map((it) => (it.type === 'message' ? (it.content[0] as { text: string }).text : '')),
    ['c', 'b', 'a'],
    'the last item first',
  );
  const asc = await inject('GET', `/v1/responses/${r.id}/input_items?order=asc&limit=2`);
  const page = asc.json();
  t.equal(page.data.length, 2);
  t.equal(page.has_more, true);
  t.equal(page.first_id, page.data[0].id);
  const next = (await inject('GET', `/v1/responses/${r.id}/input_items?order=asc&after=${page.last_id}`)).json();
  t.same(
    next.data.map((it: { content: { text: string }[] }) => it.content[0].text),
    ['c'],
    'after: the next page',
  );
  t.equal(next.has_more, false);
  const del = await inject('DELETE', `/v1/responses/${r.id}`);
  t.same(del.json(), { id: r.id, object: 'response', deleted: true });
  const gone = await inject('GET', `/v1/responses/${r.id}`);
  t.equal(gone.statusCode, 404);
  t.equal(gone.json().error.code, 'WEFT_ERR_REQ_RESPONSE_NOT_FOUND');
  t.equal((await inject('DELETE', `/v1/responses/${r.id}`)).statusCode, 404, 'deleted once');

  const unstored = await client.responses.create({ ...greedy, input: 'x', max_output_tokens: 2, store: false });
  t.equal(unstored.store, false);
  t.equal((await inject('GET', `/v1/responses/${unstored.id}`)).statusCode, 404);
  const metrics = (await inject('GET', '/metrics')).body;
  t.ok(metricValue(metrics, 'weft_responses_stored') > 0, 'weft_responses_stored');
  t.ok(metricValue(metrics, 'weft_responses_store_bytes') > 0, 'weft_responses_store_bytes');
});

t.test('text.format json_schema: the output follows the schema', async (t) => {
  const schema = {
    type: 'object',
    properties: { name: { type: 'string', maxLength: 8 }, age: { type: 'integer', minimum: 0, maximum: 99 } },
    required: ['name', 'age'],
    additionalProperties: false,
  };
  const ajv = new Ajv2020({ strict: false });
  for (const seed of [1, 2]) {
    const r = await client.responses.create({
      model,
      seed,
      input: 'Describe a person as JSON.',
      text: { format: { type: 'json_schema', name: 'person', schema, strict: true } },
    } as never);
    const value = JSON.parse((r as OpenAI.Responses.Response).output_text);
    t.ok(ajv.validate(schema, value), `seed ${seed}: ${JSON.stringify(value)} validates`);
    t.same((r as OpenAI.Responses.Response).text?.format, { type: 'json_schema', name: 'person', schema, strict: true }, 'echoed');
  }
});

const ADD = {
  type: 'object',
  properties: { a: { type: 'integer', minimum: 0, maximum: 9 }, b: { type: 'integer', minimum: 0, maximum: 9 } },
  required: ['a', 'b'],
};
const tools = [{ type: 'function' as const, name: 'add', parameters: ADD, strict: true }];

t.test('function tools: calls as function_call items, streamed and not; their output goes back as input', async (t) => {
  const ajv = new Ajv2020({ strict: false });
  const req = { model, seed: 3, input: 'Add 2 and 3.', tools, tool_choice: 'required' as const, parallel_tool_calls: false };
  const r = await client.responses.create(req);
  const calls = r.output.filter((it) => it.type === 'function_call');
  t.equal(calls.length, 1, 'one call');
  const call = calls[0] as OpenAI.Responses.ResponseFunctionToolCall;
  t.match(call, { type: 'function_call', name: 'add', call_id: /^call_/, id: /^fc_/, status: 'completed' });
  t.ok(ajv.validate(ADD, JSON.parse(call.arguments)), `arguments ${call.arguments} validate`);
  t.equal(r.status, 'completed');

  const stream = client.responses.stream(req);
  const types: string[] = [];
  for await (const e of stream) types.push(e.type);
  const final = await stream.finalResponse();
  const streamed = final.output.find((it) => it.type === 'function_call') as OpenAI.Responses.ResponseFunctionToolCall;
  t.equal(streamed.arguments, call.arguments, 'the same arguments streamed');
  for (const ty of ['response.function_call_arguments.delta', 'response.function_call_arguments.done', 'response.output_item.done'])
    t.ok(types.includes(ty), ty);

  const named = await client.responses.create({ ...req, tool_choice: { type: 'function', name: 'add' } });
  t.equal((named.output.find((it) => it.type === 'function_call') as { name: string }).name, 'add', 'a named function');
  // the client sends null for what a tool does not give: the same as not given
  const nulls = [
    { type: 'function' as const, name: 'sum', description: null, parameters: ADD, strict: null },
    { type: 'function' as const, name: 'ping', description: null, parameters: null, strict: null },
  ];
  const summed = await client.responses.create({ model, seed: 1, input: 'Add.', tools: nulls, tool_choice: { type: 'function', name: 'sum' } });
  const call2 = summed.output.find((it) => it.type === 'function_call') as OpenAI.Responses.ResponseFunctionToolCall | undefined;
  t.equal(call2?.name, 'sum', 'tools with null fields: a call');
  t.ok(call2 && ajv.validate(ADD, JSON.parse(call2.arguments)), `its arguments validate: ${call2?.arguments}`);
  t.equal(summed.tools.length, 2, 'both tools echoed');
  const chatNulls = await inject('POST', '/v1/chat/completions', {
    messages: [{ role: 'user', content: 'Ping.' }],
    tools: [{ type: 'function', function: { name: 'ping', description: null, parameters: null } }],
    max_tokens: 2,
  });
  t.equal(chatNulls.statusCode, 200, 'chat takes the nulls too');

  // the call and its result, replayed as input items, render as chat's assistant tool_calls and tool turn
  const input = [
    { role: 'user' as const, content: 'Add 2 and 3.' },
    { type: 'function_call' as const, call_id: 'call_1', name: 'add', arguments: '{"a": 2, "b": 3}' },
    { type: 'function_call_output' as const, call_id: 'call_1', output: 'The sum is 5.' },
  ];
  const back = await client.responses.create({ ...greedy, input, tools, tool_choice: 'none', max_output_tokens: 8 });
  const c = await chat(
    [
      { role: 'user', content: 'Add 2 and 3.' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'add', arguments: '{"a": 2, "b": 3}' } }],
      },
      { role: 'tool', content: 'The sum is 5.', tool_call_id: 'call_1' },
    ],
    8,
    { tools: [{ type: 'function', function: { name: 'add', parameters: ADD } }], tool_choice: 'none' },
  );
  t.equal(back.output_text, c.choices[0].message.content, 'the same prompt as chat with the call and the result');
  t.equal(back.usage?.input_tokens, c.usage?.prompt_tokens);
  const chained = await client.responses.create({
    ...greedy,
    previous_response_id: r.id,
    input: [{ type: 'function_call_output', call_id: call.call_id, output: '5' }],
    max_output_tokens: 4,
  });
  const same = await chat(
    [
      { role: 'user', content: 'Add 2 and 3.' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: call.call_id, type: 'function', function: { name: 'add', arguments: call.arguments } }],
      },
      { role: 'tool', content: '5', tool_call_id: call.call_id },
    ],
    4,
  );
  t.equal(chained.usage?.input_tokens, same.usage?.prompt_tokens, 'a tool result continues the response that called');
  t.equal(chained.output_text, same.choices[0].message.content);
});

t.test('log-probs: include message.output_text.logprobs, as chat completions gives them', async (t) => {
  const r = await client.responses.create({
    ...greedy,
    input: 'Once',
    max_output_tokens: 8,
    include: ['message.output_text.logprobs'],
    top_logprobs: 2,
  });
  const c = await chat([{ role: 'user', content: 'Once' }], 8, { logprobs: true, top_logprobs: 2 });
  const part = (r.output[0] as OpenAI.Responses.ResponseOutputMessage).content[0] as OpenAI.Responses.ResponseOutputText;
  t.same(part.logprobs, c.choices[0].logprobs?.content, 'the same entries');
  t.equal(part.logprobs?.length, r.usage?.output_tokens, 'one per output token');
  t.equal(part.logprobs?.[0].top_logprobs.length, 2);
  const plain = await client.responses.create({ ...greedy, input: 'Once', max_output_tokens: 8 });
  t.equal((plain.output[0] as OpenAI.Responses.ResponseOutputMessage).content[0].type, 'output_text');
  t.notOk('logprobs' in (plain.output[0] as OpenAI.Responses.ResponseOutputMessage).content[0], 'none unless asked');
});

// polls until the stored response leaves in_progress (a state, not a time)
async function settled(id: string): Promise<OpenAI.Responses.Response> {
  for (;;) {
    const r = await client.responses.retrieve(id);
    if (r.status !== 'in_progress' && r.status !== 'queued') return r;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

t.test('background: answered at once, polled to its end, cancelled', async (t) => {
  const whole = await client.responses.create({ ...greedy, input: 'A cat', max_output_tokens: 12 });
  const bg = await client.responses.create({ ...greedy, input: 'A cat', max_output_tokens: 12, background: true });
  t.equal(bg.background, true);
  t.equal(bg.status, 'in_progress', 'answered before it ends');
  t.same(bg.output, []);
  const done = await settled(bg.id);
  t.equal(done.output_text, whole.output_text, 'the same output once done');
  t.equal(done.status, whole.status);

  const long = await client.responses.create({ ...greedy, input: 'A dog', max_output_tokens: 400, ignore_eos: true, background: true } as never);
  const running = await inject('POST', '/v1/responses', { input: 'x', previous_response_id: (long as OpenAI.Responses.Response).id });
  t.equal(running.statusCode, 400, 'a running response is not continued');
  t.match(running.json().error.message, /still in progress/);
  const cancelled = await client.responses.cancel((long as OpenAI.Responses.Response).id);
  t.equal(cancelled.status, 'cancelled');
  t.ok((cancelled.usage?.output_tokens ?? 400) < 400, `stopped early (${cancelled.usage?.output_tokens} tokens)`);
  t.equal((await client.responses.retrieve(cancelled.id)).status, 'cancelled', 'stored cancelled');
  await s.engine.service.idle();
  t.equal(s.engine.service.numActive, 0, 'nothing left running');

  const again = await client.responses.create({ ...greedy, input: 'A bird', max_output_tokens: 400, ignore_eos: true, background: true } as never);
  const id = (again as OpenAI.Responses.Response).id;
  t.equal((await inject('DELETE', `/v1/responses/${id}`)).statusCode, 200, 'a running one deleted');
  await s.engine.service.idle();
  t.equal((await inject('GET', `/v1/responses/${id}`)).statusCode, 404, 'and not stored again when it ends');

  const fg = await client.responses.create({ ...greedy, input: 'x', max_output_tokens: 2 });
  const refused = await inject('POST', `/v1/responses/${fg.id}/cancel`);
  t.equal(refused.statusCode, 400, 'only background responses are cancelled');
});

t.test('a client that leaves a stream aborts its generation', async (t) => {
  const aborted = async () => metricValue((await inject('GET', '/metrics')).body, 'weft_request_success_total', 'finished_reason="abort"');
  const before = await aborted();
  const abort = new AbortController();
  const res = await fetch(`${base}/v1/responses`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...greedy, input: 'A long tale', max_output_tokens: 400, ignore_eos: true, stream: true }),
    signal: abort.signal,
  });
  const reader = res.body!.getReader();
  let text = '';
  while (!text.includes('response.output_text.delta')) text += new TextDecoder().decode((await reader.read()).value);
  const id = /"id":"(resp_[0-9a-f]+)"/.exec(text)?.[1];
  abort.abort();
  await reader.cancel().catch(() => undefined);
  await s.engine.service.idle();
  t.equal(s.engine.service.numActive, 0, 'nothing left running');
  t.equal(await aborted(), before + 1, 'the request ended aborted, not at its 400 tokens');
  t.equal((await inject('GET', `/v1/responses/${id}`)).statusCode, 404, 'an abandoned response is not stored');
});

t.test('a background response that fails is stored failed, logged and counted', async (t) => {
  const log = logSink();
  const metrics = new Metrics({ defaultMetrics: false });
  const app = await buildApp(testConfig({ logLevel: 'warn' }), { service: s.engine.service, metrics, logStream: log });
  t.teardown(() => app.close());
  const r = await app.inject({
    method: 'POST',
    url: '/v1/responses',
    payload: { input: 'x', max_output_tokens: 400, ignore_eos: true, background: true },
  });
  const id = r.json().id;
  s.engine.service.abortAll(new WeftError('WEFT_ERR_REQ_TIMEOUT', 'the request took too long'));
  const line = await log.waitFor(/background response failed/);
  t.match(line, id, 'the log line names the response');
  t.match(line, 'WEFT_ERR_REQ_TIMEOUT');
  const got = (await app.inject({ method: 'GET', url: `/v1/responses/${id}` })).json();
  t.equal(got.status, 'failed');
  t.equal(got.error.code, 'WEFT_ERR_REQ_TIMEOUT');
  t.equal(metricValue(await metrics.registry.metrics(), 'weft_errors_total', 'code="WEFT_ERR_REQ_TIMEOUT"'), 1, 'counted');
});

t.test('truncation auto drops the oldest turns until the prompt fits', async (t) => {
  const turn = 'The little cat went to the park and played with a big red ball all day long. '.repeat(3);
  const input = Array.from({ length: 12 }, (_, i) => ({ role: i % 2 ? ('assistant' as const) : ('user' as const), content: `${i}: ${turn}` }));
  const tooLong = await inject('POST', '/v1/responses', { input, max_output_tokens: 8 });
  t.equal(tooLong.statusCode, 400);
  t.equal(tooLong.json().error.code, 'WEFT_ERR_REQ_PROMPT_TOO_LONG');
  const r = await client.responses.create({ ...greedy, input, max_output_tokens: 8, truncation: 'auto' });
  t.ok(r.usage!.input_tokens + 8 <= s.engine.service.model.maxModelLen, `${r.usage!.input_tokens} input tokens fit`);
  t.ok(r.usage!.input_tokens > s.engine.service.model.maxModelLen / 2, 'and as many turns as fit are kept');
  t.equal(r.truncation, 'auto');
});

t.test('bad requests are 4xx with codes', async (t) => {
  const cases: [string, object, number, string][] = [
    ['an image part', { input: [{ role: 'user', content: [{ type: 'input_image', image_url: 'x' }] }] }, 400, 'WEFT_ERR_REQ_BAD_MESSAGES'],
    ['an unknown item type', { input: [{ type: 'web_search_call', id: 'x' }] }, 400, 'WEFT_ERR_REQ_BAD_MESSAGES'],
    ['an unknown role', { input: [{ role: 'robot', content: 'x' }] }, 400, 'WEFT_ERR_REQ_BAD_MESSAGES'],
    ['an empty list', { input: [] }, 400, 'WEFT_ERR_REQ_INVALID'],
    ['a call without call_id', { input: [{ type: 'function_call', name: 'f', arguments: '{}' }] }, 400, 'WEFT_ERR_REQ_BAD_MESSAGES'],
    ['an unknown field', { input: 'x', frobnicate: 1 }, 400, 'WEFT_ERR_REQ_INVALID'],
    ['an unknown previous response', { input: 'x', previous_response_id: 'resp_nope' }, 404, 'WEFT_ERR_REQ_RESPONSE_NOT_FOUND'],
    ['background without store', { input: 'x', background: true, store: false }, 400, 'WEFT_ERR_REQ_INVALID'],
    ['background with stream', { input: 'x', background: true, stream: true }, 400, 'WEFT_ERR_REQ_INVALID'],
    ['a tool_choice naming no tool', { input: 'x', tools, tool_choice: { type: 'function', name: 'mul' } }, 400, 'WEFT_ERR_REQ_BAD_TOOL_CHOICE'],
    [
      'metadata of 17 keys',
      { input: 'x', metadata: Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, 'v'])) },
      400,
      'WEFT_ERR_REQ_INVALID',
    ],
    ['an unknown model', { input: 'x', model: 'gpt-9' }, 404, 'WEFT_ERR_REQ_UNKNOWN_MODEL'],
    [
      'a bad schema',
      { input: 'x', text: { format: { type: 'json_schema', name: 'n', schema: { type: 'nope' } } } },
      400,
      'WEFT_ERR_REQ_BAD_JSON_SCHEMA',
    ],
  ];
  for (const [name, payload, status, code] of cases) {
    const r = await inject('POST', '/v1/responses', payload);
    t.equal(r.statusCode, status, `${name}: status`);
    t.equal(r.json().error?.code, code, `${name}: ${r.json().error?.message}`);
  }
  const stored = await client.responses.create({ ...greedy, input: 'x', max_output_tokens: 2 });
  const resume = await inject('GET', `/v1/responses/${stored.id}?stream=true`);
  t.equal(resume.statusCode, 400, 'resuming a stream: refused');
  t.equal((await inject('GET', `/v1/responses/${stored.id}/input_items?after=nope`)).statusCode, 400, 'after an unknown item');
  t.equal((await inject('GET', `/v1/responses/${stored.id}/input_items?limit=0`)).statusCode, 400, 'limit 0');
});

t.test('with the store off, nothing is kept and what needs it is refused', async (t) => {
  const off = await startTestApp({ backend: 'cpu', responsesStoreBytes: 0 });
  t.teardown(() => off.close());
  const post = (payload: object) => off.app.inject({ method: 'POST', url: '/v1/responses', payload: { max_output_tokens: 2, ...payload } });
  const r = await post({ input: 'x' });
  t.equal(r.statusCode, 200);
  t.equal(r.json().store, false, 'store: false in the response');
  t.equal((await off.app.inject({ method: 'GET', url: `/v1/responses/${r.json().id}` })).statusCode, 404);
  for (const payload of [
    { input: 'x', background: true },
    { input: 'x', previous_response_id: r.json().id },
  ]) {
    const refused = await post(payload);
    t.equal(refused.statusCode, 400);
    t.equal(refused.json().error.code, 'WEFT_ERR_REQ_NO_RESPONSE_STORE');
  }
});
