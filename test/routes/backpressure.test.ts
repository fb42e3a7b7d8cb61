// Clients that never read: a stream whose client lags past --max-stream-lag-bytes for
// --write-timeout-ms is cut off (socket closed, generation aborted, sequences freed, one log
// line); a finished response left untaken is cut off the same way, which also releases the
// socket of a request that ran past --request-timeout-ms.
import t from 'tap';

import { buildApp } from '../../src/app.js';
import { Metrics } from '../../src/metrics.js';
import { logSink, metricValue, startTestApp, testConfig, type TestServer } from './helpers.js';
import { postHead, rawConnect } from '../../bench/raw-socket.js';

const LIMITS = { maxStreamLagBytes: 65_536, writeTimeoutMs: 300 };

async function listen(s: TestServer, log: ReturnType<typeof logSink>, overrides = {}) {
  const metrics = s.engine.service.metrics ?? new Metrics({ defaultMetrics: false });
  const app = await buildApp(testConfig({ ...LIMITS, logLevel: 'warn', ...overrides }), { service: s.engine.service, metrics, logStream: log });
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, port: (app.server.address() as { port: number }).port };
}

// A client that sends one request and never reads a byte of the answer.
async function nonReader(port: number, path: string, body: object) {
  const c = await rawConnect(port);
  c.socket.pause();
  const json = JSON.stringify(body);
  c.socket.write(postHead(path, `Content-Length: ${json.length}`) + json);
  return c;
}

const s = await startTestApp();
t.teardown(() => s.close());

const idleAndFree = async (server = s) => {
  await server.engine.service.idle();
  const st = server.engine.service.loop.stats()[0];
  return { running: st.numRunning, waiting: st.numWaiting, usedBlocks: st.numUsedBlocks };
};

t.test('streaming clients that never read are cut off after the write timeout; their sequences are freed', async (t) => {
  const log = logSink();
  const { app, port } = await listen(s, log);
  t.teardown(() => app.close());
  const before = await app.weft.metrics.text();
  const body = { prompt: 'Once', n: 16, logprobs: 20, max_tokens: 480, ignore_eos: true, stream: true };
  const clients = await Promise.all([0, 1, 2].map(() => nonReader(port, '/v1/completions', body)));
  const line = await log.waitFor(/WEFT_ERR_HTTP_WRITE_TIMEOUT/);
  t.match(JSON.parse(line), { level: 40, code: 'WEFT_ERR_HTTP_WRITE_TIMEOUT', msg: /left more than 65536 bytes of the stream unread for 300 ms/ });
  t.ok(await app.weft.inFlight.settled(60_000), 'every response closed');
  t.same(await idleAndFree(), { running: 0, waiting: 0, usedBlocks: 0 }, 'nothing running or waiting, every KV block free');
  const after = await app.weft.metrics.text();
  const delta = (name: string, labels: string) => metricValue(after, name, labels) - metricValue(before, name, labels);
  t.equal(delta('weft_errors_total', 'code="WEFT_ERR_HTTP_WRITE_TIMEOUT"'), 3, 'one per client, counted');
  const numEnded = delta('weft_request_success_total', 'finished_reason="abort"') + delta('weft_request_success_total', 'finished_reason="length"');
  t.equal(numEnded, 48, 'every choice ended (aborted when cut off, or run out before)');
  t.equal(log.lines.filter((l) => l.includes('WEFT_ERR_HTTP_WRITE_TIMEOUT')).length, 3, 'one log line each');
  for (const c of clients) c.socket.destroy();
});

t.test('a finished response the client does not take is cut off after the write timeout', async (t) => {
  const log = logSink();
  const { app, port } = await listen(s, log);
  t.teardown(() => app.close());
  // two prompts × n 16 with log-probs: several MB of JSON, more than the socket buffers hold
  const c = await nonReader(port, '/v1/completions', { prompt: ['Once', 'Lily'], n: 16, logprobs: 20, max_tokens: 480, ignore_eos: true });
  const line = await log.waitFor(/WEFT_ERR_HTTP_WRITE_TIMEOUT/);
  t.match(JSON.parse(line).msg, /did not take the end of the response within 300 ms/);
  t.ok(await app.weft.inFlight.settled(60_000), 'the response closed');
  c.socket.destroy();
});

t.test('--request-timeout-ms ends the response of a client that does not read', async (t) => {
  const timed = await startTestApp({ requestTimeoutMs: 1, ...LIMITS });
  t.teardown(() => timed.close());
  const log = logSink();
  const { app, port } = await listen(timed, log, { requestTimeoutMs: 1 });
  t.teardown(() => app.close());
  const closed = new Promise<void>((resolve) => app.server.once('request', (_req, res) => res.once('close', () => resolve())));
  const c = await nonReader(port, '/v1/completions', { prompt: 'Once', n: 16, logprobs: 20, max_tokens: 480, ignore_eos: true, stream: true });
  await closed;
  t.pass('the response closed: it does not wait on the client for as long as the client stays');
  t.same(await idleAndFree(timed), { running: 0, waiting: 0, usedBlocks: 0 });
  t.equal(metricValue(await app.weft.metrics.text(), 'weft_errors_total', 'code="WEFT_ERR_REQ_TIMEOUT"'), 1, 'the request timed out');
  c.socket.destroy();
});
