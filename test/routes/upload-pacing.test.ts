// Large bodies are handed to the parser at a bounded number of bytes per event-loop turn
// (src/routes/upload-pacing.ts): the budget's rule, and bodies that pass through it intact.
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';

import t from 'tap';

import { buildApp } from '../../src/app.js';
import { Metrics } from '../../src/metrics.js';
import { PACED_FROM_BYTES, TURN_BUDGET_BYTES, TurnBudget } from '../../src/routes/upload-pacing.js';
import { startTestApp, testConfig } from './helpers.js';

t.test('the turn budget: what fits passes at once, the rest waits for later turns in order', async (t) => {
  const b = new TurnBudget(1000);
  const released: string[] = [];
  b.take(600, () => released.push('a'));
  b.take(600, () => released.push('b')); // over the budget: held
  b.take(100, () => released.push('c')); // fits, but b came first: held behind it
  t.same(released, ['a']);
  t.equal(b.numHeld, 2);
  await nextTurn();
  t.same(released, ['a', 'b', 'c'], 'the next turn takes b and c (700 of 1000)');
  b.take(5000, () => released.push('big'));
  t.same(released, ['a', 'b', 'c'], 'the turn that took b and c is spent for a chunk over its rest');
  await nextTurn();
  t.same(released, ['a', 'b', 'c', 'big'], 'a chunk larger than the budget passes alone in a turn');
  b.take(900, () => released.push('d'));
  b.take(900, () => released.push('e'));
  await nextTurn();
  await nextTurn();
  t.same(released.slice(4), ['d', 'e']);
  t.equal(b.numHeld, 0);
});

// POST /tokenize over a real socket, with a Content-Length or chunked in pieces.
function postTokenize(port: number, body: string, chunked: boolean): Promise<{ status: number; json: { count: number; ids: number[] } }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string | number> = { 'content-type': 'application/json' };
    if (!chunked) headers['content-length'] = Buffer.byteLength(body);
    const req = httpRequest({ port, method: 'POST', path: '/tokenize', headers }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, json: JSON.parse(Buffer.concat(parts).toString()) }));
    });
    req.on('error', reject);
    if (!chunked) req.end(body);
    else {
      const buf = Buffer.from(body);
      for (let i = 0; i < buf.length; i += 100_000) req.write(buf.subarray(i, i + 100_000));
      req.end();
    }
  });
}

t.test('paced bodies arrive whole: two megabytes at once, by length and chunked, with multi-byte text', async (t) => {
  const s = await startTestApp();
  t.teardown(() => s.close());
  const app = await buildApp(testConfig({ bodyLimit: 16 << 20 }), { service: s.engine.service, metrics: new Metrics({ defaultMetrics: false }) });
  t.teardown(() => app.close());
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as AddressInfo).port;
  // distinct texts, each far over the pacing threshold and together over one turn's budget
  const texts = [0, 1, 2, 3].map((i) => `${'Once upon a time, a little cat — café ü '.repeat(12_000)}${i} end`);
  const bytes = texts.map((x) => Buffer.byteLength(JSON.stringify({ text: x })));
  t.ok(bytes[0] > 5 * PACED_FROM_BYTES && bytes.reduce((a, b) => a + b) > 1.5 * TURN_BUDGET_BYTES, 'each body is paced; together they span turns');
  // the reference: the same text tokenized in process, as a small request would be
  const expected = await Promise.all(texts.map((x) => s.engine.service.encode(x, true)));
  const got = await Promise.all(texts.map((x, i) => postTokenize(port, JSON.stringify({ text: x }), i % 2 === 1)));
  got.forEach((g, i) => {
    t.equal(g.status, 200, `body ${i} (${i % 2 ? 'chunked' : 'content-length'})`);
    t.equal(g.json.count, expected[i].length);
    t.same(g.json.ids.slice(-4), expected[i].slice(-4), 'its end arrived in place');
  });
});
