// Structured output end to end on stories260K: every API's field (OpenAI response_format, vLLM's
// structured_outputs and guided_*, llama.cpp's json_schema and grammar, Ollama's format) through
// the server, sampled at temperature 1 with seeds; every output parses and validates. Greedy under
// a grammar that allows any text equals unconstrained greedy. Bad specs are 400s with codes.
import { Ajv2020 } from 'ajv/dist/2020.js';
import t, { type Test } from 'tap';

import { sseData, startTestApp } from './helpers.js';

const s = await startTestApp({ backend: 'cpu' });
t.teardown(() => s.close());
const post = (url: string, payload: object) => s.app.inject({ method: 'POST', url, payload });
const ajv = new Ajv2020({ strict: false });

const PERSON = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 10 }, age: { type: 'integer', minimum: 0, maximum: 99 } },
  required: ['name', 'age'],
};
const COLORS = { type: 'array', items: { enum: ['red', 'green', 'blue'] }, minItems: 1, maxItems: 3 };
const EITHER = {
  anyOf: [
    { type: 'integer', minimum: -50, maximum: 50 },
    { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] },
  ],
};
const SEEDS = [1, 2, 3, 4];

function checkJson(t: Test, text: string, schema: object, what: string): void {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    t.fail(`${what}: not JSON: ${JSON.stringify(text)}`);
    return;
  }
  t.ok(ajv.validate(schema, value), `${what}: ${text.replace(/\s+/g, ' ')} ${ajv.errorsText()}`);
}

t.test('JSON Schema on every route and field', async (t) => {
  for (const [name, schema] of [
    ['person', PERSON],
    ['colors', COLORS],
    ['either', EITHER],
  ] as const) {
    for (const seed of SEEDS) {
      const g = await post('/generate', { prompt: 'Once upon a time', max_tokens: 160, temperature: 1, seed, json_schema: schema });
      t.equal(g.statusCode, 200, g.body);
      t.equal(g.json().finish_reason, 'stop', `/generate ${name} seed ${seed} finished`);
      checkJson(t, g.json().output_text, schema, `/generate json_schema ${name} seed ${seed}`);
    }
    const c = await post('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'Tell me about Lily.' }],
      max_tokens: 160,
      n: 2,
      seed: 7,
      response_format: { type: 'json_schema', json_schema: { name, schema, strict: true } },
    });
    t.equal(c.statusCode, 200, c.body);
    for (const ch of c.json().choices) checkJson(t, ch.message.content, schema, `chat response_format ${name} choice ${ch.index}`);
    const cm = await post('/v1/completions', { prompt: 'Lily and Tom', max_tokens: 160, seed: 11, guided_json: schema });
    checkJson(t, cm.json().choices[0].text, schema, `completions guided_json ${name}`);
  }
  const o = await post('/chat', { messages: ['Hello'], stream: false, max_tokens: 160, seed: 5, format: PERSON });
  checkJson(t, o.json().output_text, PERSON, '/chat with Ollama format');
  const so = await post('/v1/completions', { prompt: 'A', max_tokens: 160, seed: 3, structured_outputs: { json: COLORS } });
  checkJson(t, so.json().choices[0].text, COLORS, 'structured_outputs.json');
});

t.test('streamed under a schema: the deltas make the final text, which validates', async (t) => {
  for (const seed of SEEDS) {
    const r = await post('/stream', { prompt: 'Once upon a time', max_tokens: 160, seed, format: PERSON });
    const events = sseData(r.body).filter((e) => e !== '[DONE]') as { text?: string; output_text?: string; finish_reason?: string }[];
    const last = events.at(-1)!;
    t.equal(
      events
        .slice(0, -1)
        .map((e) => e.text)
        .join(''),
      last.output_text,
      `seed ${seed}: deltas = final text`,
    );
    t.equal(last.finish_reason, 'stop', `seed ${seed}: finished`);
    checkJson(t, last.output_text!, PERSON, `/stream seed ${seed}`);
  }
});

// Free-form JSON from a 260K-parameter model rarely closes within the context; the walks in
// test/unit/structured-grammars.test.ts check json_object outputs in full.
t.test('json_object: an object, and valid JSON whenever it finishes', async (t) => {
  for (const seed of SEEDS) {
    const r = await post('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 250,
      seed,
      response_format: { type: 'json_object' },
    });
    const c = r.json().choices[0];
    t.match(c.message.content, /^\{/, `seed ${seed}: starts an object`);
    if (c.finish_reason === 'stop') t.type(JSON.parse(c.message.content), 'object', `seed ${seed}: ${c.message.content.replace(/\s+/g, ' ')}`);
  }
});

t.test('regex, choice and GBNF', async (t) => {
  const re = /^[A-Z][a-z]{2,6} (and|or) [A-Z][a-z]{2,6}$/;
  for (const seed of SEEDS) {
    const r = await post('/generate', { prompt: 'Once upon a time', max_tokens: 40, seed, guided_regex: '[A-Z][a-z]{2,6} (and|or) [A-Z][a-z]{2,6}' });
    t.match(r.json().output_text, re, `guided_regex seed ${seed}`);
    const c = await post('/v1/completions', {
      prompt: 'The cat was',
      max_tokens: 10,
      seed,
      structured_outputs: { choice: ['happy', 'sad', 'very sleepy'] },
    });
    t.ok(['happy', 'sad', 'very sleepy'].includes(c.json().choices[0].text), `choice seed ${seed}: ${c.json().choices[0].text}`);
    const g = await post('/generate', {
      prompt: 'One plus two',
      max_tokens: 60,
      seed,
      grammar: 'root ::= num (" " [-+*] " " num){1,3}\nnum ::= [1-9] [0-9]?',
    });
    t.match(g.json().output_text, /^[1-9][0-9]?( [-+*] [1-9][0-9]?){1,3}$/, `GBNF seed ${seed}: ${g.json().output_text}`);
  }
});

t.test('n > 1 and beam search carry the constraint on every sequence', async (t) => {
  const choices = ['red', 'green', 'blue'];
  const n = await post('/v1/completions', { prompt: 'The ball was', max_tokens: 8, n: 3, seed: 4, guided_choice: choices });
  t.equal(n.json().choices.length, 3);
  for (const c of n.json().choices) t.ok(choices.includes(c.text), `n: ${c.text}`);
  const b = await post('/v1/completions', {
    prompt: 'The ball was',
    max_tokens: 12,
    n: 3,
    use_beam_search: true,
    temperature: 0,
    guided_regex: '(big|small) (red|blue) ball',
  });
  t.equal(b.statusCode, 200, b.body);
  for (const c of b.json().choices) t.match(c.text, /^(big|small) (red|blue) ball$/, `beam: ${c.text}`);
});

t.test('greedy under a grammar that allows any text equals unconstrained greedy', async (t) => {
  for (const prompt of ['Once upon a time', 'Lily wanted to']) {
    const free = await post('/generate', { prompt, max_tokens: 48, temperature: 0 });
    const any = await post('/generate', { prompt, max_tokens: 48, temperature: 0, grammar: 'root ::= .*' });
    t.same(any.json().output_ids, free.json().output_ids, prompt);
  }
  const one = await post('/generate', { prompt: 'Once', max_tokens: 8, temperature: 0, guided_choice: ['Tom'] });
  t.equal(one.json().output_text, 'Tom', 'a single choice is forced');
});

type Bad = [name: string, url: string, body: object, code: string];
const P = { prompt: 'a', max_tokens: 4 };
const M = { messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };
const BAD: Bad[] = [
  [
    'response_format with a bad schema',
    '/v1/chat/completions',
    { ...M, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'nope' } } } },
    'WEFT_ERR_REQ_BAD_JSON_SCHEMA',
  ],
  ['guided_json with an unsupported keyword', '/v1/completions', { ...P, guided_json: { not: { type: 'string' } } }, 'WEFT_ERR_REQ_BAD_JSON_SCHEMA'],
  ['json_schema not JSON text', '/generate', { ...P, guided_json: '{"type": ' }, 'WEFT_ERR_REQ_BAD_JSON_SCHEMA'],
  ['guided_regex with a lookahead', '/generate', { ...P, guided_regex: 'a(?=b)' }, 'WEFT_ERR_REQ_BAD_REGEX'],
  ['structured_outputs.regex unclosed', '/v1/completions', { ...P, structured_outputs: { regex: '(ab' } }, 'WEFT_ERR_REQ_BAD_REGEX'],
  ['grammar with an undefined rule', '/stream', { ...P, grammar: 'root ::= item' }, 'WEFT_ERR_REQ_BAD_GRAMMAR'],
  ['guided_grammar without root', '/v1/completions', { ...P, guided_grammar: 'start ::= "a"' }, 'WEFT_ERR_REQ_BAD_GRAMMAR'],
  ['empty guided_choice', '/generate', { ...P, guided_choice: [] }, 'WEFT_ERR_REQ_BAD_CHOICE'],
  ['two constraints', '/generate', { ...P, guided_regex: 'a', json_schema: { type: 'string' } }, 'WEFT_ERR_REQ_CONFLICTING_CONSTRAINTS'],
  [
    'structured_outputs with two kinds',
    '/v1/completions',
    { ...P, structured_outputs: { regex: 'a', choice: ['b'] } },
    'WEFT_ERR_REQ_CONFLICTING_CONSTRAINTS',
  ],
  ['a constraint and allowed_token_ids', '/generate', { ...P, format: 'json', allowed_token_ids: [5, 6] }, 'WEFT_ERR_REQ_CONFLICTING_CONSTRAINTS'],
  ['response_format of an unknown type', '/v1/chat/completions', { ...M, response_format: { type: 'xml' } }, 'WEFT_ERR_REQ_INVALID'],
];

t.test(`bad constraints (${BAD.length} cases) are 400s with their codes, before any work`, async (t) => {
  for (const [name, url, body, code] of BAD) {
    const r = await post(url, body);
    t.equal(r.statusCode, 400, `${name}: status`);
    t.equal(r.json().error?.code, code, `${name}: ${r.json().error?.message}`);
  }
  t.equal(s.engine.service.numActive, 0, 'nothing was started');
});
