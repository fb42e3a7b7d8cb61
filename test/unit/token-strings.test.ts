// Token strings that round-trip: joined, a text's tokens are the text (leading spaces kept, byte
// tokens of a split character resolved on the token completing it), and each token's bytes are its
// own. SentencePiece with byte fallback (stories260K) and byte-level BPE (SmolLM2).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';

import { TextTokenizer, tokenAlone } from '../../src/tokenizer.js';
import { startTestApp } from '../routes/helpers.js';
import { MODEL_DIR, SMOLLM_DIR } from '../fixtures/paths.js';

const TEXT = 'Once upon a time, naïve Zoë ate 12 crêpes — 東京で寿司を食べた 🍣🎉! Ωμέγα, привет; ' + '"quotes"\ttab\nnewline  two spaces';

const tokenizerOf = (dir: string) =>
  new TextTokenizer({ tokenizerJson: readFileSync(join(dir, 'tokenizer.json'), 'utf8'), config: { bosTokenId: null } as never, path: dir });

for (const [name, dir, prefix] of [
  ['stories260K (SentencePiece, byte fallback)', MODEL_DIR, ' '],
  ['SmolLM2 (byte-level BPE)', SMOLLM_DIR, ''],
] as const) {
  t.test(`${name}: tokens joined are the text, bytes concatenated its UTF-8`, async (t) => {
    const tok = tokenizerOf(dir);
    const ids = await tok.encode(TEXT, false);
    const strings = tok.tokenStrings(ids);
    t.equal(strings.join(''), prefix + TEXT, 'joined (SentencePiece adds its dummy-prefix space)');
    t.same(Buffer.concat(ids.map((id) => tok.tokenBytes(id))), Buffer.from(prefix + TEXT, 'utf8'));
    const split = strings.filter((s, i) => s === '' && tok.tokenBytes(ids[i]).length > 0).length;
    t.ok(split > 0, `${split} tokens end inside a character and carry no text of their own`);
    t.equal(strings.filter((s) => s.includes('\uFFFD')).length, 0, 'no replacement characters');
  });
}

t.test('alternatives on their own: whole characters as text, partial ones as bytes:\\x..', async (t) => {
  t.equal(tokenAlone(new Uint8Array(Buffer.from(' Tom'))), ' Tom');
  t.equal(tokenAlone(new Uint8Array([0xe6, 0x9d])), 'bytes:\\xe6\\x9d');
});

t.test('/tokenize and the OpenAI log-probs keep leading spaces and byte tokens', async (t) => {
  const s = await startTestApp({ backend: 'cpu' });
  t.teardown(() => s.close());
  const post = (url: string, payload: unknown) => s.app.inject({ method: 'POST', url, payload });
  const tk = (await post('/tokenize', { text: ' and Tom', add_special_tokens: false })).json();
  t.equal(tk.tokens.join(''), '  and Tom', 'a dummy-prefix space, then the text with its own leading space');
  t.ok(tk.tokens.slice(1).every((x: string) => x.length > 0));
  t.same(
    tk.token_bytes.map((b: number[]) => Buffer.from(b).toString()),
    tk.tokens,
  );

  const c = (await post('/v1/completions', { prompt: 'Once upon a time', max_tokens: 24, temperature: 0, logprobs: 2, ignore_eos: true })).json();
  const lp = c.choices[0].logprobs;
  t.equal(lp.tokens.join(''), c.choices[0].text, 'completion: tokens joined = text');
  t.same(
    lp.text_offset,
    lp.tokens.map((_: string, i: number) => lp.tokens.slice(0, i).join('').length),
    'text_offset',
  );
  t.ok(
    lp.tokens.filter((x: string) => x.startsWith(' ')).length > 3,
    `word tokens keep their leading space: ${JSON.stringify(lp.tokens.slice(0, 4))}`,
  );

  const streamed = await post('/v1/completions', {
    prompt: 'Once upon a time',
    max_tokens: 24,
    temperature: 0,
    logprobs: 0,
    ignore_eos: true,
    stream: true,
  });
  const chunks = streamed.body
    .split('\n\n')
    .filter((f) => f.startsWith('data: {'))
    .map((f) => JSON.parse(f.slice(6)));
  const toks = chunks.flatMap((ch) => ch.choices[0]?.logprobs?.tokens ?? []);
  t.equal(toks.join(''), c.choices[0].text, 'streamed: tokens joined = text');

  const chat = (
    await post('/v1/chat/completions', {
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 16,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
      ignore_eos: true,
    })
  ).json();
  const content = chat.choices[0].logprobs.content as { token: string; bytes: number[]; top_logprobs: { bytes: number[] }[] }[];
  t.equal(content.map((e) => e.token).join(''), chat.choices[0].message.content, 'chat: tokens joined = content');
  t.same(Buffer.from(content.flatMap((e) => e.bytes)).toString(), chat.choices[0].message.content, 'chat: bytes concatenated = content');
  t.ok(
    content.every((e) => e.top_logprobs.every((x) => x.bytes.length > 0)),
    'alternatives carry their bytes',
  );
});
