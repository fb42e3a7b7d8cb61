// Tool calling through the official openai client on stories260K (no chat template: weft writes
// the hermes format's instructions into the prompt): tool_choice required and a named function
// constrain generation, so every call's arguments validate against the function's schema; auto
// reads <tool_call> blocks (the output steered here by a grammar, as a tiny model never writes one).
// Streamed and not. A tool result in the history; bad tool_choice values are 400s with codes.
import { Ajv2020 } from 'ajv/dist/2020.js';
import { OpenAI } from 'openai';
import t, { type Test } from 'tap';

import { startTestApp } from './helpers.js';

const s = await startTestApp({ backend: 'cpu' });
t.teardown(() => s.close());
const base = await s.app.listen({ port: 0, host: '127.0.0.1' });
const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'unused', maxRetries: 0 });
const ajv = new Ajv2020({ strict: false });

// small schemas: the prompt (instructions and tools) takes 434 of the model's 512 positions
const DIGIT = { type: 'integer', minimum: 0, maximum: 9 };
const ADD_PARAMS = { type: 'object', properties: { a: DIGIT, b: DIGIT }, required: ['a', 'b'] };
const NOTE_PARAMS = { type: 'object', properties: { text: { type: 'string', maxLength: 4 } }, required: ['text'] };
const tools = [
  { type: 'function' as const, function: { name: 'add', parameters: ADD_PARAMS } },
  { type: 'function' as const, function: { name: 'note', parameters: NOTE_PARAMS } },
];
const PARAMS: Record<string, object> = { add: ADD_PARAMS, note: NOTE_PARAMS };
const messages = [{ role: 'user' as const, content: 'Add 2 and 3.' }];
const AUTO_GRAMMAR = String.raw`root ::= "Sure. <tool_call>\n{\"name\": \"add\", \"arguments\": {\"a\": " [1-9] ", \"b\": " [1-9] "}}\n</tool_call>"`;

interface Call {
  id?: string;
  type?: string;
  function?: { name?: string; arguments?: string };
}

function checkCalls(t: Test, calls: Call[] | undefined, what: string, only?: string): void {
  t.ok(calls && calls.length > 0, `${what}: tool_calls`);
  for (const c of calls ?? []) {
    t.match(c.id, /^call_/, `${what}: an id`);
    t.equal(c.type, 'function');
    const name = c.function?.name ?? '';
    if (only) t.equal(name, only, `${what}: the named function`);
    t.ok(name in PARAMS, `${what}: a known function (${name})`);
    const args = JSON.parse(c.function?.arguments ?? 'null');
    t.ok(ajv.validate(PARAMS[name] ?? {}, args), `${what}: arguments ${c.function?.arguments} validate`);
  }
}

// The streamed tool-call deltas, put together per index as a client does.
function gather(chunks: OpenAI.Chat.Completions.ChatCompletionChunk[]): Call[] {
  const calls: Call[] = [];
  for (const ch of chunks)
    for (const d of ch.choices[0]?.delta?.tool_calls ?? []) {
      const c = (calls[d.index] ??= { function: { name: '', arguments: '' } });
      if (d.id) c.id = d.id;
      if (d.type) c.type = d.type;
      c.function!.name += d.function?.name ?? '';
      c.function!.arguments += d.function?.arguments ?? '';
    }
  return calls;
}

// required with parallel_tool_calls false: exactly one call (a tiny model would add calls until the context ends)
const CHOICES = [
  ['required', 'required', undefined],
  ['named', { type: 'function', function: { name: 'note' } }, 'note'],
] as const;

for (const [label, tool_choice, only] of CHOICES) {
  t.test(`tool_choice ${label}`, async (t) => {
    for (const seed of [1, 2, 3]) {
      const req = { model: 'stories260K', messages, tools, tool_choice, seed, parallel_tool_calls: false };
      const r = await client.chat.completions.create(req);
      t.equal(r.choices[0].finish_reason, 'tool_calls', `seed ${seed}: finish_reason`);
      t.equal(r.choices[0].message.content, null);
      checkCalls(t, r.choices[0].message.tool_calls as Call[], `seed ${seed}`, only);
      t.equal(r.choices[0].message.tool_calls?.length, 1, 'one call');
      const stream = await client.chat.completions.create({ ...req, stream: true });
      const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
      for await (const c of stream) chunks.push(c);
      t.equal(chunks.at(-1)?.choices[0]?.finish_reason, 'tool_calls', `seed ${seed} streamed: finish_reason`);
      const calls = gather(chunks);
      checkCalls(t, calls, `seed ${seed} streamed`, only);
      t.same(
        calls.map((c) => c.function),
        (r.choices[0].message.tool_calls as Call[]).map((c) => c.function),
        'the same calls as not streamed',
      );
    }
  });
}

t.test('tool_choice auto: <tool_call> blocks read into tool_calls, the rest is content', async (t) => {
  const body = { model: 'stories260K', messages, tools, seed: 5, structured_outputs: { grammar: AUTO_GRAMMAR } };
  const r = (await client.chat.completions.create(body as never)) as OpenAI.Chat.Completions.ChatCompletion;
  t.equal(r.choices[0].finish_reason, 'tool_calls');
  t.equal(r.choices[0].message.content, 'Sure.');
  checkCalls(t, r.choices[0].message.tool_calls as Call[], 'auto', 'add');
  type Chunks = AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>;
  const stream = (await client.chat.completions.create({ ...body, stream: true } as never)) as Chunks;
  const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
  for await (const c of stream) chunks.push(c);
  t.equal(
    chunks
      .map((c) => c.choices[0]?.delta?.content ?? '')
      .join('')
      .trim(),
    'Sure.',
    'streamed content stops before the tag',
  );
  checkCalls(t, gather(chunks), 'auto streamed', 'add');
  const free = await client.chat.completions.create({ model: 'stories260K', messages, tools, max_tokens: 16, seed: 5 });
  t.equal(free.choices[0].message.tool_calls, undefined, 'without a call in the output: plain content');
  t.type(free.choices[0].message.content, 'string');
});

t.test('a tool result in the history is part of the prompt', async (t) => {
  const call = { id: 'call_1', type: 'function' as const, function: { name: 'add', arguments: '{"a": 2, "b": 3}' } };
  const history = [...messages, { role: 'assistant' as const, content: null, tool_calls: [call] }];
  const one = [tools[0]];
  const without = await client.chat.completions.create({ model: 'stories260K', messages: history, tools: one, max_tokens: 4, seed: 1 });
  const withResult = await client.chat.completions.create({
    model: 'stories260K',
    messages: [...history, { role: 'tool', content: 'The sum is 5.', tool_call_id: 'call_1' }],
    tools: one,
    max_tokens: 4,
    seed: 1,
  });
  const [a, b] = [withResult.usage!.prompt_tokens, without.usage!.prompt_tokens];
  t.ok(a > b + 5, `${a} > ${b} prompt tokens`);
});

t.test('bad tools and tool_choice values are 400s with codes', async (t) => {
  const post = (payload: object) => s.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { messages, max_tokens: 4, ...payload } });
  const cases: [string, object, string][] = [
    ['unknown function', { tools, tool_choice: { type: 'function', function: { name: 'multiply' } } }, 'WEFT_ERR_REQ_BAD_TOOL_CHOICE'],
    ['required without tools', { tool_choice: 'required' }, 'WEFT_ERR_REQ_BAD_TOOL_CHOICE'],
    ['an unknown tool_choice string', { tools, tool_choice: 'sometimes' }, 'WEFT_ERR_REQ_INVALID'],
    ['a function named twice', { tools: [tools[0], tools[0]] }, 'WEFT_ERR_REQ_BAD_TOOLS'],
    [
      'parameters that are not a schema',
      { tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'nope' } } }] },
      'WEFT_ERR_REQ_BAD_TOOLS',
    ],
    [
      'required and response_format together',
      { tools, tool_choice: 'required', response_format: { type: 'json_object' } },
      'WEFT_ERR_REQ_CONFLICTING_CONSTRAINTS',
    ],
    [
      'tool_calls on a user turn',
      { messages: [{ role: 'user', content: 'x', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] }] },
      'WEFT_ERR_REQ_BAD_MESSAGES',
    ],
  ];
  for (const [name, payload, code] of cases) {
    const r = await post(payload);
    t.equal(r.statusCode, 400, `${name}: status`);
    t.equal(r.json().error?.code, code, `${name}: ${r.json().error?.message}`);
  }
});
