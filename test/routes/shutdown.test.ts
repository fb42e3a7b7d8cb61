// Shutdown past --shutdown-timeout-ms: every request still running is aborted, and each stream
// first gets a final error event (WEFT_ERR_HTTP_SHUTDOWN_ABORTED) and [DONE], each plain request
// a 503 with that code; only then are the connections closed.
import t from 'tap';

import { shutdown } from '../../src/server.js';
import { MODEL_ID, sseData, startTestApp } from './helpers.js';

t.test('streams running past the shutdown timeout end with a shutdown error event and [DONE]', async (t) => {
  const s = await startTestApp();
  await s.app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(s.app.server.address() as { port: number }).port}`;
  const long = { max_tokens: 480, ignore_eos: true };
  const routes: [string, object][] = [
    ['/v1/completions', { model: MODEL_ID, prompt: 'Once', stream: true, n: 2, ...long }],
    ['/v1/chat/completions', { model: MODEL_ID, messages: [{ role: 'user', content: 'hi' }], stream: true, ...long }],
    ['/v1/completions', { model: MODEL_ID, prompt: 'Lily', stream: true, use_beam_search: true, n: 2, ...long }],
    ['/stream', { prompt: 'Once', ...long }],
    ['/chat', { messages: ['hello'], ...long }],
    ['/stream_chat_beam', { messages: ['hello'], beam_width: 2, ...long }],
  ];
  const post = (path: string, body: object) =>
    fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const streams = await Promise.all(
    [...routes, ...routes].map(async ([path, body]) => {
      const res = await post(path, body);
      const reader = res.body!.getReader();
      const first = await reader.read(); // the stream has begun
      return { path, reader, text: new TextDecoder().decode(first.value) };
    }),
  );
  const arrived = new Promise((resolve) => s.app.server.once('request', resolve));
  const plain = post('/generate', { prompt: 'Once', ...long });
  await arrived;
  const done = shutdown(s.app, s.engine, 0);
  const bodies = await Promise.all(
    streams.map(async (x) => {
      const decoder = new TextDecoder();
      for (let r = await x.reader.read(); !r.done; r = await x.reader.read()) x.text += decoder.decode(r.value, { stream: true });
      return x;
    }),
  );
  await done;
  for (const { path, text } of bodies) {
    const events = sseData(text);
    t.equal(events.at(-1), '[DONE]', `${path}: ends with [DONE]`);
    t.match(
      events.at(-2),
      { error: { code: 'WEFT_ERR_HTTP_SHUTDOWN_ABORTED', type: 'unavailable_error', message: /shut down/ } },
      `${path}: its final event is the shutdown error`,
    );
  }
  const p = await plain;
  const answer = { status: p.status, body: await p.json() };
  t.match(answer, { status: 503, body: { error: { code: /^WEFT_ERR_HTTP_SHUT/ } } }, 'a plain request: 503 with a code');
  await t.rejects(fetch(`${base}/health`), 'the server is closed');
});
