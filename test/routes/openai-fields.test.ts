// Fields vLLM clients send: echo and the developer role work; fields weft does not take are named
// in the 400 (with what to use instead where there is something).
import t from 'tap';

import { sseData, startTestApp } from './helpers.js';

const s = await startTestApp({ backend: 'cpu' });
t.teardown(() => s.close());
const post = (url: string, payload: unknown) => s.app.inject({ method: 'POST', url, payload });

t.test('echo: every choice, plain and streamed, starts with its prompt', async (t) => {
  const r = (
    await post('/v1/completions', { prompt: ['Once upon a time', 'Lily'], n: 2, max_tokens: 5, temperature: 1, seed: 1, echo: true })
  ).json();
  t.equal(r.choices.length, 4);
  for (const c of r.choices) t.match(c.text, c.index < 2 ? /^Once upon a time./ : /^Lily./, `choice ${c.index}: ${JSON.stringify(c.text)}`);
  const plain = (await post('/v1/completions', { prompt: 'Once upon a time', max_tokens: 5, temperature: 0 })).json().choices[0].text;
  t.equal(r.choices[0].text.length > 'Once upon a time'.length, true);
  const streamed = await post('/v1/completions', { prompt: 'Once upon a time', max_tokens: 5, temperature: 0, echo: true, stream: true });
  const text = (sseData(streamed.body).filter((d) => d !== '[DONE]') as { choices: { text: string }[] }[])
    .map((d) => d.choices[0]?.text ?? '')
    .join('');
  t.equal(text, 'Once upon a time' + plain, 'streamed: the prompt, then the same completion');
  const ids = (await post('/v1/completions', { prompt: [1, 403, 407], max_tokens: 2, temperature: 0, echo: true })).json();
  t.match(ids.choices[0].text, /^Once/, 'token-id prompts are decoded');
});

t.test('the developer role is the system role', async (t) => {
  const as = async (role: string) =>
    (
      await post('/tokenize', {
        messages: [
          { role, content: 'Be brief.' },
          { role: 'user', content: 'Hi' },
        ],
      })
    ).json().ids;
  t.same(await as('developer'), await as('system'));
  const r = await post('/v1/chat/completions', {
    messages: [
      { role: 'developer', content: 'Be brief.' },
      { role: 'user', content: 'Hi' },
    ],
    max_tokens: 3,
  });
  t.equal(r.statusCode, 200, r.body);
});

t.test('fields weft does not take are named in the 400', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['/v1/completions', { prompt: 'a', best_of: 2 }, /best_of is not supported: ask for n samples/],
    ['/v1/chat/completions', { messages: [{ role: 'user', content: 'a' }], functions: [] }, /legacy functions API.*use tools/],
    ['/v1/completions', { prompt: 'a', suffix: 'b' }, /suffix/],
    ['/v1/completions', { prompt: 'a', frobnicate: 1 }, /unknown field "frobnicate"/],
    ['/v1/chat/completions', { messages: [{ role: 'user', content: 'a', mood: 'x' }] }, /unknown field "mood" in messages\.0/],
  ];
  for (const [url, body, message] of cases) {
    const r = await post(url, body);
    t.equal(r.statusCode, 400, JSON.stringify(body));
    t.equal(r.json().error.code, 'WEFT_ERR_REQ_INVALID');
    t.match(r.json().error.message, message);
  }
});

t.test("--chat-template: a template file (or the template itself) replaces the model's", async (t) => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'weft-tpl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'chat.jinja');
  const template = "{% for m in messages %}<<{{ m['role'] }}>>{{ m['content'] }}\n{% endfor %}{% if add_generation_prompt %}<<assistant>>{% endif %}";
  writeFileSync(file, template);
  for (const chatTemplate of [file, template]) {
    const app = await startTestApp({ backend: 'cpu', chatTemplate });
    const r = (await app.app.inject({ method: 'POST', url: '/tokenize', payload: { messages: [{ role: 'user', content: 'Hi' }] } })).json();
    t.equal(r.prompt, '<<user>>Hi\n<<assistant>>', chatTemplate === file ? 'from a file' : 'inline');
    await app.close();
  }
  await t.rejects(startTestApp({ backend: 'cpu', chatTemplate: join(dir, 'missing.jinja') }), { code: 'WEFT_ERR_CONFIG_INVALID' });
});

// vLLM's add_generation_prompt, continue_final_message (an assistant turn to continue: a prefill of
// the answer) and chat_template_kwargs, on chat completions and /tokenize.
t.test('chat rendering fields: the generation prompt, a final message left open, template variables', async (t) => {
  const messages = [
    { role: 'user', content: 'Tell me a story.' },
    { role: 'assistant', content: 'Once upon a time' },
  ];
  const tok = async (extra: object) => (await post('/tokenize', { messages, ...extra })).json();
  const open = await tok({ continue_final_message: true, add_generation_prompt: false });
  t.equal(open.prompt, 'user: Tell me a story.\nassistant: Once upon a time', 'the last message left open');
  t.equal((await tok({ continue_final_message: true })).prompt, open.prompt, 'add_generation_prompt defaults to false with it');
  t.equal((await tok({ add_generation_prompt: false })).prompt, 'user: Tell me a story.\nassistant: Once upon a time\n');
  t.equal((await tok({})).prompt, 'user: Tell me a story.\nassistant: Once upon a time\nassistant:');
  // the chat continues the assistant's text: the same tokens as a completion of the same ids
  const chat = (await post('/v1/chat/completions', { messages, continue_final_message: true, max_tokens: 6, temperature: 0 })).json();
  const completion = (await post('/v1/completions', { prompt: open.ids, max_tokens: 6, temperature: 0 })).json();
  t.equal(chat.choices[0].message.content, completion.choices[0].text, `continued: ${JSON.stringify(chat.choices[0].message.content)}`);
  t.equal(chat.usage.prompt_tokens, open.count);
  // vLLM's chat echo: the continued assistant text starts the content, plain and streamed
  const echoed = (await post('/v1/chat/completions', { messages, continue_final_message: true, echo: true, max_tokens: 6, temperature: 0 })).json();
  t.equal(
    echoed.choices[0].message.content,
    'Once upon a time' + chat.choices[0].message.content,
    'echo: the last assistant message, then the continuation',
  );
  const echoStream = await post('/v1/chat/completions', {
    messages,
    continue_final_message: true,
    echo: true,
    max_tokens: 6,
    temperature: 0,
    stream: true,
  });
  const streamedText = (sseData(echoStream.body).filter((d) => d !== '[DONE]') as { choices: { delta: { content?: string } }[] }[])
    .map((d) => d.choices[0]?.delta.content ?? '')
    .join('');
  t.equal(streamedText, echoed.choices[0].message.content, 'streamed the same');
  const noEcho = (await post('/v1/chat/completions', { messages: messages.slice(0, 1), echo: true, max_tokens: 3, temperature: 0 })).json();
  const plainAnswer = (await post('/v1/chat/completions', { messages: messages.slice(0, 1), max_tokens: 3, temperature: 0 })).json();
  t.equal(noEcho.choices[0].message.content, plainAnswer.choices[0].message.content, "echo with a user's last message adds nothing");
  const both = await post('/v1/chat/completions', { messages, continue_final_message: true, add_generation_prompt: true, max_tokens: 2 });
  t.equal(both.statusCode, 400);
  t.match(both.json().error, { code: 'WEFT_ERR_REQ_INVALID', message: /add_generation_prompt/ });

  const template =
    '{% for m in messages %}<<{{ m.role }}>>{{ m.content }}\n{% endfor %}' +
    '{% if add_generation_prompt %}<<assistant>>{% if terse %}(brief){% endif %}{% endif %}';
  const custom = await startTestApp({ backend: 'cpu', chatTemplate: template });
  t.teardown(() => custom.close());
  const prompt = async (extra: object) =>
    (await custom.app.inject({ method: 'POST', url: '/tokenize', payload: { messages: messages.slice(0, 1), ...extra } })).json().prompt;
  t.equal(
    await prompt({ chat_template_kwargs: { terse: true } }),
    '<<user>>Tell me a story.\n<<assistant>>(brief)',
    'a variable from chat_template_kwargs',
  );
  t.equal(await prompt({}), '<<user>>Tell me a story.\n<<assistant>>');
  const r = await custom.app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    payload: { messages: messages.slice(0, 1), chat_template_kwargs: { terse: true }, max_tokens: 1 },
  });
  t.equal(
    r.json().usage.prompt_tokens,
    (await custom.app.inject({ method: 'POST', url: '/tokenize', payload: { text: '<<user>>Tell me a story.\n<<assistant>>(brief)' } })).json().count,
  );
  const bad = await post('/v1/chat/completions', { messages, chat_template_kwargs: 'terse', max_tokens: 1 });
  t.equal(bad.statusCode, 400, 'chat_template_kwargs is an object');
});

// vLLM's include_stop_str_in_output: the matched stop string ends the output instead of being cut.
t.test('include_stop_str_in_output: the stop string ends the text, plain, streamed and in a beam search', async (t) => {
  const body = { prompt: 'Once upon a time', max_tokens: 24, temperature: 0 };
  const free = (await post('/v1/completions', body)).json().choices[0].text as string;
  const stop = free.split(' ').filter((w) => w.length > 3)[1];
  t.ok(stop && free.includes(stop), `greedy text ${JSON.stringify(free)}, stop ${JSON.stringify(stop)}`);
  const upTo = free.slice(0, free.indexOf(stop));
  const cut = (await post('/v1/completions', { ...body, stop })).json().choices[0];
  t.equal(cut.text, upTo, 'by default cut before the stop string');
  const kept = (await post('/v1/completions', { ...body, stop, include_stop_str_in_output: true })).json().choices[0];
  t.equal(kept.text, upTo + stop, 'included: it ends the text');
  t.equal(kept.finish_reason, 'stop');
  const streamed = await post('/v1/completions', { ...body, stop, include_stop_str_in_output: true, stream: true });
  const text = (sseData(streamed.body).filter((d) => d !== '[DONE]') as { choices: { text: string }[] }[])
    .map((d) => d.choices[0]?.text ?? '')
    .join('');
  t.equal(text, upTo + stop, 'streamed the same');
  const chat = (
    await post('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 24,
      temperature: 0,
      stop: ['.', ','],
      include_stop_str_in_output: true,
    })
  ).json().choices[0];
  if (chat.finish_reason === 'stop') t.match(chat.message.content, /[.,]$/, 'chat too');
  // a stop token's text is not part of the output either (vLLM's rule), unless included; it is
  // still a generated token
  const gen = (await post('/generate', { prompt: 'Once upon a time', max_tokens: 8, temperature: 0 })).json();
  const [first, second] = gen.output_ids as number[];
  const firstText: string = (await post('/detokenize', { ids: [first] })).json().text;
  const byId = (await post('/v1/completions', { ...body, stop_token_ids: [second] })).json();
  t.equal(byId.choices[0].text, firstText, 'a stop token ends the text without its own');
  t.equal(byId.choices[0].finish_reason, 'stop');
  t.equal(byId.usage.completion_tokens, 2, 'and counts as generated');
  const byIdStreamed = await post('/v1/completions', { ...body, stop_token_ids: [second], stream: true });
  const streamedById = (sseData(byIdStreamed.body).filter((d) => d !== '[DONE]') as { choices: { text: string }[] }[])
    .map((d) => d.choices[0]?.text ?? '')
    .join('');
  t.equal(streamedById, firstText, 'streamed the same');
  const byIdKept = (await post('/v1/completions', { ...body, stop_token_ids: [second], include_stop_str_in_output: true })).json();
  t.equal(byIdKept.choices[0].text, (await post('/detokenize', { ids: [first, second] })).json().text, 'included: its text ends the output');
  const beam = (await post('/v1/completions', { ...body, n: 2, use_beam_search: true, stop: ['.', ','], include_stop_str_in_output: true })).json();
  for (const c of beam.choices) if (c.finish_reason === 'stop') t.match(c.text, /[.,]$/, `beam hypothesis ${c.index} ends with its stop string`);
  t.ok(
    beam.choices.some((c: { finish_reason: string }) => c.finish_reason === 'stop'),
    'a hypothesis ended on a stop string',
  );
});

// vLLM's return_tokens_as_token_ids: log-prob entries name tokens "token_id:N" (exact where a text
// is not); the log-probs and text offsets stay what they are without it.
t.test('return_tokens_as_token_ids: "token_id:N" in every log-prob entry, the rest unchanged', async (t) => {
  const body = { prompt: 'Once upon a time', max_tokens: 6, temperature: 0, logprobs: 2, echo: true, prompt_logprobs: 1 };
  const byText = (await post('/v1/completions', body)).json().choices[0];
  const byId = (await post('/v1/completions', { ...body, return_tokens_as_token_ids: true })).json().choices[0];
  const promptIds: number[] = (await post('/tokenize', { text: 'Once upon a time' })).json().ids;
  const ids = byId.logprobs.tokens.map((x: string) => Number(/^token_id:(\d+)$/.exec(x)?.[1] ?? -1));
  t.same(ids.slice(0, promptIds.length), promptIds, 'the echoed prompt: its ids');
  const out: string = (await post('/detokenize', { ids: ids.slice(promptIds.length) })).json().text;
  t.equal('Once upon a time' + out, byText.text, 'the completion: the ids of its text');
  t.same(byId.logprobs.token_logprobs, byText.logprobs.token_logprobs);
  t.same(byId.logprobs.text_offset, byText.logprobs.text_offset, 'offsets stay in the text');
  t.ok(
    byId.logprobs.top_logprobs.slice(1).every((m: Record<string, number>) => Object.keys(m).every((k) => /^token_id:\d+$/.test(k))),
    'alternatives too',
  );
  t.ok(
    byId.prompt_logprobs
      .slice(1)
      .every((m: Record<string, { decoded_token: string }>) => Object.entries(m).every(([id, e]) => e.decoded_token === `token_id:${id}`)),
    "prompt_logprobs' decoded_token",
  );
  const chat = (
    await post('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 4,
      temperature: 0,
      logprobs: true,
      top_logprobs: 1,
      return_tokens_as_token_ids: true,
    })
  ).json().choices[0];
  t.ok(
    chat.logprobs.content.every(
      (e: { token: string; top_logprobs: { token: string }[] }) => /^token_id:\d+$/.test(e.token) && /^token_id:\d+$/.test(e.top_logprobs[0].token),
    ),
    'chat entries',
  );
});

// vLLM's skip_special_tokens (default true): false keeps the special tokens' text in the output.
t.test('skip_special_tokens: false keeps special tokens in the text', async (t) => {
  // EOS (</s>, id 2) all but forced, and not ending the request
  const body = { prompt: 'Once', max_tokens: 3, temperature: 0, ignore_eos: true, logit_bias: { '2': 100 } };
  const skipped = (await post('/v1/completions', body)).json().choices[0];
  t.equal(skipped.text, '', 'by default the special tokens leave no text');
  const kept = (await post('/v1/completions', { ...body, skip_special_tokens: false })).json().choices[0];
  t.equal(kept.text, '</s></s></s>', 'kept');
  const streamed = await post('/v1/completions', { ...body, skip_special_tokens: false, stream: true });
  const text = (sseData(streamed.body).filter((d) => d !== '[DONE]') as { choices: { text: string }[] }[])
    .map((d) => d.choices[0]?.text ?? '')
    .join('');
  t.equal(text, kept.text, 'streamed the same');
  const beam = (await post('/v1/completions', { ...body, n: 2, use_beam_search: true, skip_special_tokens: false })).json();
  t.match(beam.choices[0].text, /<\/s>/, 'beam hypotheses too');
});

// vLLM's truncate_prompt_tokens: a longer prompt keeps its last k tokens.
t.test("truncate_prompt_tokens: only the prompt's last k tokens are used", async (t) => {
  const prompt = 'Once upon a time, there was a little girl named Lily.';
  const ids: number[] = (await post('/tokenize', { text: prompt })).json().ids;
  const k = 5;
  const body = { prompt, max_tokens: 6, temperature: 0 };
  const cut = (await post('/v1/completions', { ...body, truncate_prompt_tokens: k, echo: true, logprobs: 0 })).json();
  const tail = (await post('/v1/completions', { ...body, prompt: ids.slice(-k), echo: true, logprobs: 0 })).json();
  t.equal(cut.usage.prompt_tokens, k);
  t.equal(cut.choices[0].text, tail.choices[0].text, 'the same as the last k ids given as the prompt (echo: their text)');
  t.same(cut.choices[0].logprobs.token_logprobs, tail.choices[0].logprobs.token_logprobs, 'and the same scores');
  const whole = (await post('/v1/completions', { ...body, truncate_prompt_tokens: ids.length + 10 })).json();
  t.equal(whole.usage.prompt_tokens, ids.length, 'a shorter prompt is kept whole');
  const messages = [{ role: 'user', content: prompt }];
  const chatIds: number[] = (await post('/tokenize', { messages })).json().ids;
  const chat = (await post('/v1/chat/completions', { messages, max_tokens: 4, temperature: 0, truncate_prompt_tokens: k })).json();
  const chatTail = (await post('/v1/completions', { prompt: chatIds.slice(-k), max_tokens: 4, temperature: 0 })).json();
  t.equal(chat.usage.prompt_tokens, k);
  t.equal(chat.choices[0].message.content, chatTail.choices[0].text, 'chat: the rendered prompt is cut');
  const bad = await post('/v1/completions', { ...body, truncate_prompt_tokens: 0 });
  t.equal(bad.statusCode, 400);
});
