// Every failure the server survives leaves exactly one log line, with its cause: a refused or
// malformed request, a body too large, the receive timeouts, a client that leaves mid-stream, a
// client cut off for not reading, a dead engine worker and its restart. Each case counts the lines
// written from its start to a sync point (a later request's access line, which the server writes
// after it has handled every event of the case).
import t from 'tap';

import { buildApp } from '../../src/app.js';
import { Metrics } from '../../src/metrics.js';
import { startEngine } from '../../src/server.js';
import { postHead, rawConnect } from '../../bench/raw-socket.js';
import { logSink, testConfig } from './helpers.js';

const log = logSink();
const config = testConfig({
  logLevel: 'info',
  logFormat: 'json',
  headersTimeoutMs: 300,
  bodyTimeoutMs: 600,
  bodyLimit: 4096,
  maxStreamLagBytes: 65_536,
  writeTimeoutMs: 300,
});
const metrics = new Metrics({ defaultMetrics: false, compat: config.metricsCompat });
const app = await buildApp(config, { metrics, logStream: log });
const engine = await startEngine(config, metrics, app.log);
app.weft.attach(engine.service);
await app.listen({ port: 0, host: '127.0.0.1' });
const port = (app.server.address() as { port: number }).port;
const base = `http://127.0.0.1:${port}`;
t.teardown(async () => {
  await app.close();
  await engine.close();
});

interface Line {
  level: number;
  msg: string;
  code?: string;
}

let numSyncs = 0;
// The lines `action` led to: those written after it began, up to a sync request's access line.
async function linesOf(action: () => Promise<unknown>): Promise<Line[]> {
  const from = log.lines.length;
  await action();
  const marker = `/sync-${++numSyncs}`;
  await fetch(base + marker);
  await log.waitFor(new RegExp(`GET ${marker} 404`));
  return log.lines
    .slice(from)
    .map((l) => JSON.parse(l) as Line)
    .filter((l) => !l.msg.startsWith(`GET ${marker} `));
}

const post = (path: string, body: string) => fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

t.test('a body over the limit: its access line names the 413 and its code', async (t) => {
  const lines = await linesOf(async () => t.equal((await post('/v1/completions', JSON.stringify({ prompt: 'x'.repeat(8000) }))).status, 413));
  t.equal(lines.length, 1, 'one line');
  t.match(lines[0], {
    level: 30,
    code: 'WEFT_ERR_HTTP_BODY_TOO_LARGE',
    msg: /^POST \/v1\/completions 413 [\d.]+ ms: WEFT_ERR_HTTP_BODY_TOO_LARGE: /,
  });
});

t.test('an invalid request: one line with the 400 and why', async (t) => {
  const lines = await linesOf(async () => t.equal((await post('/v1/completions', JSON.stringify({ prompt: 'Once', max_tokens: -1 }))).status, 400));
  t.equal(lines.length, 1, 'one line');
  t.match(lines[0], { level: 30, code: 'WEFT_ERR_REQ_INVALID', msg: /400 [\d.]+ ms: WEFT_ERR_REQ_INVALID: .*max_tokens/ });
});

t.test("a request Node's parser refuses: one line with its code", async (t) => {
  const lines = await linesOf(async () => {
    const c = await rawConnect(port);
    c.socket.write('GARBAGE\r\n\r\n');
    await c.closed;
  });
  t.equal(lines.length, 1, 'one line');
  t.match(lines[0], { level: 30, code: 'WEFT_ERR_HTTP_BAD_REQUEST', msg: /malformed HTTP request/ });
});

t.test('the receive timeouts: one line each, for a connection that sends nothing and for a body that stalls', async (t) => {
  const idle = await linesOf(async () => (await rawConnect(port)).closed);
  t.equal(idle.length, 1, 'idle: one line');
  t.match(idle[0], { level: 30, code: 'WEFT_ERR_HTTP_REQUEST_TIMEOUT', msg: /no complete request headers within 300 ms/ });
  // its headers arrived: Fastify began the request, whose response closes unfinished (no second line for that)
  const stalled = await linesOf(async () => {
    const c = await rawConnect(port);
    c.socket.write(postHead('/v1/completions', 'Content-Length: 100') + '{"prompt":');
    await c.closed;
  });
  t.equal(stalled.length, 1, 'stalled body: one line');
  t.match(stalled[0], { level: 30, code: 'WEFT_ERR_HTTP_REQUEST_TIMEOUT', msg: /the request body did not arrive within 600 ms/ });
});

const longStream = JSON.stringify({ prompt: 'Once', max_tokens: 480, ignore_eos: true, stream: true });

t.test('a client that leaves mid-stream: one line saying so', async (t) => {
  const lines = await linesOf(async () => {
    const c = await rawConnect(port);
    c.socket.write(postHead('/v1/completions', `Content-Length: ${longStream.length}`) + longStream);
    await c.waitFor(/data: /);
    c.socket.destroy();
    await app.weft.inFlight.settled(60_000);
  });
  t.equal(lines.length, 1, 'one line');
  const said = /^POST \/v1\/completions: the client closed the connection [\d.]+ ms into the response, before its end \(status 200 sent\)/;
  t.match(lines[0], { level: 30, msg: said });
});

t.test('a client cut off for not reading: the write-timeout line only', async (t) => {
  const body = JSON.stringify({ prompt: 'Once', n: 16, logprobs: 20, max_tokens: 480, ignore_eos: true, stream: true });
  const lines = await linesOf(async () => {
    const c = await rawConnect(port);
    c.socket.pause();
    c.socket.write(postHead('/v1/completions', `Content-Length: ${body.length}`) + body);
    await log.waitFor(/WEFT_ERR_HTTP_WRITE_TIMEOUT/);
    await app.weft.inFlight.settled(60_000);
    c.socket.destroy();
  });
  t.equal(lines.length, 1, 'one line');
  t.match(lines[0], { level: 40, code: 'WEFT_ERR_HTTP_WRITE_TIMEOUT', msg: /response cut off: the client left more than 65536 bytes/ });
});

t.test('an engine worker that dies: one line for the instance and its restart, one for the request it failed', async (t) => {
  let status = 0;
  const lines = await linesOf(async () => {
    const res = post('/v1/completions', JSON.stringify({ prompt: 'Once', max_tokens: 480, ignore_eos: true }));
    while (engine.service.numActive === 0) await new Promise((r) => setImmediate(r)); // until it runs
    await engine.workers[0].killForTest();
    status = (await res).status;
    await log.waitFor(/restarted with an empty KV cache/);
  });
  t.equal(status, 500, 'the request failed');
  t.equal(lines.length, 2, 'two lines');
  const instance = lines.filter((l) => /engine instance 0 failed/.test(l.msg));
  t.equal(instance.length, 1, 'one for the instance');
  t.match(instance[0], { level: 50, msg: /WEFT_ERR_ENGINE_WORKER_DIED.*1 request\(s\) ended with that error; the instance was restarted/ });
  const request = lines.filter((l) => l.msg.startsWith('POST /v1/completions 500'));
  t.equal(request.length, 1, 'one for the request');
  t.match(request[0], { level: 50, code: 'WEFT_ERR_ENGINE_WORKER_DIED' });
  t.equal((await post('/v1/completions', JSON.stringify({ prompt: 'Once', max_tokens: 4 }))).status, 200, 'the restarted instance serves');
});
