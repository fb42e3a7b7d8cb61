// vLLM's bad_words: a matcher that bans the token completing any of the sequences, at every step,
// and the requests that use it never contain the words.
import t from 'tap';

import { BadWordsMatcher } from '../../src/structured/bad-words.js';
import { startTestApp } from '../routes/helpers.js';

const allowed = (m: BadWordsMatcher, vocab: number): number[] => {
  const mask = new Uint32Array(Math.ceil(vocab / 32));
  m.fillNextTokenMask(mask);
  return Array.from({ length: mask.length * 32 }, (_, i) => i).filter((i) => (mask[i >>> 5] >>> (i & 31)) & 1);
};
const banned = (m: BadWordsMatcher, vocab: number) => {
  const ok = new Set(allowed(m, vocab));
  return Array.from({ length: vocab }, (_, i) => i).filter((i) => !ok.has(i));
};

t.test('the matcher: one-token words always, longer ones after their first tokens', async (t) => {
  const m = new BadWordsMatcher([[7], [3, 4, 5]], 40);
  t.same(banned(m, 40), [7], 'at the start: the one-token word');
  t.equal(allowed(m, 40).at(-1), 39, 'no bits past the vocabulary');
  m.acceptToken(3);
  t.same(banned(m, 40), [7]);
  m.acceptToken(4);
  t.same(banned(m, 40), [5, 7], 'after 3 4: 5 would complete a word');
  const f = m.fork() as BadWordsMatcher;
  m.acceptToken(9);
  t.same(banned(m, 40), [7], 'the word broken');
  t.same(banned(f, 40), [5, 7], 'a fork keeps its own state');
  t.ok(m.acceptToken(7), 'a matcher rejects nothing it is fed (the mask kept it out)');
});

t.test('bad_words on the routes: the words never appear, the rest samples as before', async (t) => {
  const s = await startTestApp({ backend: 'cpu' });
  t.teardown(() => s.close());
  const post = (url: string, payload: unknown) => s.app.inject({ method: 'POST', url, payload });
  const body = { prompt: 'Once upon a time', max_tokens: 24, temperature: 0 };
  const free: string = (await post('/v1/completions', body)).json().choices[0].text;
  t.match(free, /little/, `greedy: ${JSON.stringify(free)}`);
  const r = await post('/v1/completions', { ...body, bad_words: ['little', 'Lily'] });
  t.equal(r.statusCode, 200, r.body);
  const text: string = r.json().choices[0].text;
  t.notMatch(text, /little|Lily/, `with bad_words: ${JSON.stringify(text)}`);
  t.equal(text.slice(0, free.indexOf(' little')), free.slice(0, free.indexOf(' little')), 'the same up to the word');
  // sampled, a beam search and chat obey it too
  for (const [url, extra] of [
    ['/v1/completions', { temperature: 1, seed: 4, n: 4 }],
    ['/v1/completions', { n: 3, use_beam_search: true }],
    ['/v1/chat/completions', { messages: [{ role: 'user', content: 'Once upon a time' }], prompt: undefined }],
  ] as const) {
    const res = (await post(url, { ...body, ...extra, bad_words: ['little', 'Lily'] })).json();
    for (const c of res.choices) t.notMatch(c.text ?? c.message.content, /little|Lily/, `${url} ${JSON.stringify(extra)}: choice ${c.index}`);
  }
  const both = await post('/v1/completions', { ...body, bad_words: ['little'], allowed_token_ids: [1, 2, 3] });
  t.equal(both.statusCode, 400);
  t.match(both.json().error, { code: 'WEFT_ERR_REQ_CONFLICTING_CONSTRAINTS', message: /bad_words/ });
  const empty = await post('/v1/completions', { ...body, bad_words: [''] });
  t.equal(empty.statusCode, 400, 'an empty word is refused');
});
