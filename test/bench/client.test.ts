// The bench's streaming client: SSE payloads across reads, what a request records, and its errors,
// against a local server whose every write the test controls (no timing is asserted).
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

import t, { type Test } from 'tap';

import { SseLines, sendRequest, type ClientTarget } from '../../bench/serve/client.js';

t.test('SseLines: data payloads split across reads, CRLF lines, comments and the last line without a newline', async (t) => {
  const got: string[] = [];
  const lines = new SseLines();
  for (const part of ['data: {"a"', ':1}\r\n\r\n: keep-alive\n', 'event: x\ndata:  two \n\nda', 'ta: [DONE]']) lines.push(part, (d) => got.push(d));
  t.same(got, ['{"a":1}', 'two']);
  lines.end((d) => got.push(d));
  t.same(got, ['{"a":1}', 'two', '[DONE]']);
});

// A server that answers POST /v1/completions with `script` (one write per entry) or a status.
function serve(t: Test, respond: (res: ServerResponse) => void): Promise<ClientTarget> {
  return serveRaw(t, (req, res) => {
    req.resume();
    req.on('end', () => respond(res));
  });
}

// A server whose handler sees each request as it arrives (before its body is read).
async function serveRaw(t: Test, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<ClientTarget> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  server.unref();
  const { port } = server.address() as AddressInfo;
  return { baseUrl: `http://127.0.0.1:${port}`, endpoint: '/v1/completions', temperature: 0, ignoreEos: true, timeoutMs: 10_000 };
}

const sse = (res: ServerResponse, frames: string[]) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' });
  for (const f of frames) res.write(f);
  res.end();
};
const text = (s: string) => `data: ${JSON.stringify({ choices: [{ text: s }] })}\n\n`;
const REQ = { prompt: [1, 2, 3], promptLen: 3, maxTokens: 3 };

t.test('a stream: text chunks counted, the usage chunk gives the token counts, [DONE] ends it', async (t) => {
  const target = await serve(t, (res) =>
    sse(res, [
      text('Hé'),
      text('llo'),
      'data: {"choices":[{"text":""}]}\n\n', // no text: not a token for TTFT/ITL
      text(' wörld'),
      `data: ${JSON.stringify({ choices: [], usage: { prompt_tokens: 7, completion_tokens: 5 } })}\n\n`,
      'data: [DONE]\n\n',
    ]),
  );
  const r = await sendRequest(target, REQ, performance.now());
  t.ok(r.success, r.error);
  t.equal(r.generatedText, 'Héllo wörld');
  t.equal(r.outputTokens, 5, 'from the usage chunk');
  t.equal(r.promptLen, 7, 'the server’s prompt count');
  t.equal(r.itlMs.length, 2, 'one gap between each two text chunks');
  t.ok(r.ttftMs >= 0 && r.latencyMs >= r.ttftMs);
});

t.test('without a usage chunk the text chunks are the token count', async (t) => {
  const target = await serve(t, (res) => sse(res, [text('a'), text('b'), 'data: [DONE]\n\n']));
  const r = await sendRequest(target, REQ, performance.now());
  t.ok(r.success);
  t.equal(r.outputTokens, 2);
});

t.test('errors: an HTTP status, an error event, a stream without text', async (t) => {
  const bad = await serve(t, (res) => res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":{"code":"X"}}'));
  const r1 = await sendRequest(bad, REQ, performance.now());
  t.notOk(r1.success);
  t.match(r1.error, /^HTTP 400: \{"error"/);
  const ev = await serve(t, (res) => sse(res, [text('a'), 'data: {"error":{"message":"boom"}}\n\n', 'data: [DONE]\n\n']));
  const r2 = await sendRequest(ev, REQ, performance.now());
  t.notOk(r2.success);
  t.equal(r2.error, 'boom');
  const empty = await serve(t, (res) => sse(res, ['data: [DONE]\n\n']));
  const r3 = await sendRequest(empty, REQ, performance.now());
  t.notOk(r3.success);
  t.equal(r3.error, 'the stream carried no text');
  const refused = await sendRequest({ ...bad, baseUrl: 'http://127.0.0.1:1' }, REQ, performance.now());
  t.notOk(refused.success);
  t.match(refused.error, /ECONNREFUSED/);
});

t.test('a stream that stalls ends at the timeout as a failed request, not a hang', async (t) => {
  const held: ServerResponse[] = [];
  const target = await serve(t, (res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(text('a'));
    held.push(res); // never ended
  });
  t.teardown(() => held.forEach((r) => r.destroy()));
  const r = await sendRequest({ ...target, timeoutMs: 200 }, REQ, performance.now());
  t.notOk(r.success);
  t.equal(r.error, 'timed out after 200 ms');
});

// llama-server closes a kept-alive connection after each stream; a request the client then sends on
// that socket dies unseen. Here the server makes that deterministic: a second request on a socket is
// answered by closing it.
t.test('a request sent on a kept-alive socket the server has closed is sent again on a new connection', async (t) => {
  const served = new WeakMap<object, number>();
  let seen = 0;
  const target = await serveRaw(t, (req, res) => {
    seen++;
    const n = (served.get(req.socket) ?? 0) + 1;
    served.set(req.socket, n);
    if (n > 1) return req.socket.destroy();
    req.resume();
    req.on('end', () => sse(res, [text('a'), text('b'), 'data: [DONE]\n\n']));
  });
  const results = [];
  for (let i = 0; i < 4; i++) results.push(await sendRequest(target, REQ, performance.now()));
  t.same(
    results.map((r) => [r.success, r.error, r.outputTokens]),
    Array(4).fill([true, '', 2]),
    'every request completed',
  );
  t.ok(seen > 4, `the server closed reused sockets (${seen} arrivals for 4 requests)`);
});

t.test('a request that dies on a new connection is not sent again (the server may have seen it)', async (t) => {
  let seen = 0;
  const target = await serveRaw(t, (req) => {
    seen++;
    req.socket.destroy();
  });
  const r = await sendRequest(target, REQ, performance.now());
  t.notOk(r.success);
  t.match(r.error, /socket hang up|ECONNRESET/);
  t.equal(seen, 1, 'sent once');
});
