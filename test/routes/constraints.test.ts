// allowed_token_ids (vLLM's), the simplest structured-output constraint, end to end: route →
// scheduler → worker (token matcher) → native token mask. Sampled, n > 1 and beam search.
import t from 'tap';

import { startTestApp } from './helpers.js';

const s = await startTestApp({ backend: 'cpu' });
t.teardown(() => s.close());
const post = (url: string, payload: unknown) => s.app.inject({ method: 'POST', url, payload });
const ALLOWED = [13, 29, 281, 304, 400, 401, 402, 403];

t.test('/generate: every output token is an allowed one, sampled at temperature 1.5', async (t) => {
  for (const seed of [1, 2, 3, 4]) {
    const r = await post('/generate', {
      prompt: 'Once upon a time',
      max_tokens: 24,
      temperature: 1.5,
      seed,
      ignore_eos: true,
      allowed_token_ids: ALLOWED,
    });
    t.equal(r.statusCode, 200, r.body);
    const ids = r.json().output_ids as number[];
    t.equal(ids.length, 24);
    t.ok(
      ids.every((id) => ALLOWED.includes(id)),
      `seed ${seed}: ${ids.join(',')}`,
    );
  }
});

// single-letter tokens of the stories260K vocabulary ('a', 'e', 't', 'o'): a constrained text is made of them alone
const LETTERS = [412, 411, 413, 414];

t.test('/v1/completions with n = 3 and logprobs: each choice stays inside the set', async (t) => {
  const r = await post('/v1/completions', {
    prompt: 'Lily and Tom',
    max_tokens: 16,
    n: 3,
    temperature: 1,
    seed: 9,
    logprobs: 2,
    ignore_eos: true,
    allowed_token_ids: LETTERS,
  });
  t.equal(r.statusCode, 200, r.body);
  const choices = r.json().choices as {
    index: number;
    text: string;
    logprobs: { token_logprobs: number[]; top_logprobs: Record<string, number>[] };
  }[];
  t.equal(choices.length, 3);
  t.equal(new Set(choices.map((c) => c.text)).size, 3, 'three different samples');
  for (const c of choices) {
    t.match(c.text, /^[aeto]{16}$/, `choice ${c.index}: ${JSON.stringify(c.text)}`);
    t.ok(
      c.logprobs.top_logprobs.every((top) => Object.keys(top).every((k) => /^[aeto]$/.test(k))),
      'top candidates are allowed letters',
    );
  }
});

t.test('beam search under the constraint: every hypothesis uses allowed tokens only', async (t) => {
  const r = await post('/v1/completions', {
    prompt: 'Lily and Tom',
    max_tokens: 8,
    use_beam_search: true,
    n: 3,
    temperature: 0,
    ignore_eos: true,
    allowed_token_ids: LETTERS,
  });
  t.equal(r.statusCode, 200, r.body);
  const choices = r.json().choices as { text: string }[];
  t.equal(choices.length, 3);
  for (const c of choices) t.match(c.text, /^[aeto]{8}$/, JSON.stringify(c.text));
});

t.test('ids outside the vocabulary and empty sets are 400s with a code', async (t) => {
  const big = await post('/v1/completions', { prompt: 'a', max_tokens: 2, allowed_token_ids: [5, 1_000_000] });
  t.equal(big.statusCode, 400);
  t.equal(big.json().error.code, 'WEFT_ERR_REQ_INVALID_TOKEN_ID');
  const empty = await post('/generate', { prompt: 'a', max_tokens: 2, allowed_token_ids: [] });
  t.equal(empty.statusCode, 400);
  t.match(empty.json().error.code, /^WEFT_ERR_/);
});

t.test("logit_bias (OpenAI's): +100 forces a token, bad keys and values are 400s", async (t) => {
  const r = await post('/v1/completions', { prompt: 'Lily and Tom', max_tokens: 8, temperature: 1, seed: 3, logit_bias: { '413': 100 } });
  t.equal(r.statusCode, 200, r.body);
  t.equal(r.json().choices[0].text, 'tttttttt', "token 413 is 't'");
  const chat = await post('/v1/chat/completions', {
    messages: [{ role: 'user', content: 'hi' }],
    max_tokens: 4,
    temperature: 0,
    logit_bias: { '411': 100 },
  });
  t.equal(chat.json().choices[0].message.content, 'eeee');
  const bad = [
    [{ abc: 1 }, 'WEFT_ERR_REQ_INVALID'],
    [{ '5': 101 }, 'WEFT_ERR_REQ_INVALID'],
    [{ '99999': 1 }, 'WEFT_ERR_REQ_INVALID_TOKEN_ID'],
  ] as const;
  for (const [bias, code] of bad) {
    const r = await post('/v1/completions', { prompt: 'a', max_tokens: 2, logit_bias: bias });
    t.equal(r.statusCode, 400, JSON.stringify(bias));
    t.equal(r.json().error.code, code);
  }
});
