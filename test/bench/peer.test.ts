import { join } from 'node:path';

import t from 'tap';

import { comparisonRows, formatComparison, llamaCtx, parallelFrom, ratio } from '../../bench/serve/compare.js';
import { main } from '../../bench/serve/main.js';
import type { PointResult } from '../../bench/serve/point.js';
import { freePort, llamaServerSpec, splitArgs, startServer } from '../../bench/serve/spawn.js';
import { computeMetrics } from '../../bench/serve/stats.js';
import type { RequestRecord } from '../../bench/serve/types.js';
import { MODEL_GGUF, REPO_ROOT } from '../fixtures/paths.js';

const FAKE = [process.execPath, join(REPO_ROOT, 'test', 'fixtures', 'fake-openai-server.mjs')];

function point(server: string, ttft: number, itl: number, rss: number | null): PointResult {
  const r: RequestRecord = {
    success: true,
    error: '',
    promptLen: 8,
    outputTokens: 3,
    generatedText: '',
    startMs: 0,
    ttftMs: ttft,
    itlMs: [itl, itl],
    latencyMs: ttft + 2 * itl,
  };
  return {
    server,
    requestRate: Infinity,
    maxConcurrency: 4,
    serverMetrics: {},
    peakRssMb: rss,
    run: { records: [r, r], durationMs: 1000, startedAt: new Date(0) },
    metrics: computeMetrics([r, r], 1000, [99], null),
  };
}

t.test('the side-by-side table: one row per number, ratio weft/peer', async (t) => {
  t.equal(ratio(30, 10), '3.00x');
  t.equal(ratio(1, 0), 'n/a');
  t.equal(ratio(null, 2), 'n/a');
  const rows = comparisonRows(point('weft', 10, 2, 100), point('llama-server', 20, 4, 50));
  t.same(
    rows.map((r) => r.name),
    ['Output token throughput (tok/s)', 'TTFT p50 (ms)', 'TTFT p99 (ms)', 'ITL p50 (ms)', 'ITL p99 (ms)', 'TPOT median (ms)', 'Peak RSS (MB)'],
  );
  const text = formatComparison('llama-server', rows);
  const lines = text.split('\n');
  t.match(lines[0], /weft\s+llama-server\s+weft\/peer/);
  t.match(text, /Output token throughput \(tok\/s\)\s+6\.00\s+6\.00\s+1\.00x/);
  t.match(text, /TTFT p50 \(ms\)\s+10\.00\s+20\.00\s+0\.50x/);
  t.match(text, /Peak RSS \(MB\)\s+100\.00\s+50\.00\s+2\.00x/);
  t.equal(new Set(lines.slice(2).map((l) => l.length)).size, 1, 'columns line up');
  t.match(formatComparison('peer', comparisonRows(point('weft', 1, 1, 5), point('peer', 1, 1, null))), /Peak RSS \(MB\)\s+5\.00\s+n\/a\s+n\/a/);
});

t.test('llama-server flags: defaults, overridden by --peer-args', async (t) => {
  const reqs = [
    { prompt: [1], promptLen: 30, maxTokens: 10 },
    { prompt: [1], promptLen: 20, maxTokens: 40 },
  ];
  t.equal(llamaCtx(reqs, 4), 4 * (30 + 40 + 16));
  t.equal(parallelFrom(splitArgs('-np 8 -fa on')), 8);
  t.equal(parallelFrom([]), 64);
  t.same(splitArgs(`-a 1 --b "x y" 'z'`), ['-a', '1', '--b', 'x y', 'z']);
  const spec = llamaServerSpec(['BIN'], { gguf: 'm.gguf', port: 9, ctx: 100, peerArgs: ['--threads', '4', '-fa', 'on'] });
  t.equal(spec.command, 'BIN');
  t.same(spec.args, ['-m', 'm.gguf', '--host', '127.0.0.1', '--port', '9', '-np', '64', '-c', '100', '--threads', '4', '-fa', 'on']);
  t.equal(spec.readyPath, '/health');
});

t.test('a spawned server is waited for, measured and stopped', async (t) => {
  const port = await freePort();
  const s = await startServer(llamaServerSpec(FAKE, { gguf: 'x.gguf', port, ctx: 64, peerArgs: [] }));
  try {
    t.equal(s.baseUrl, `http://127.0.0.1:${port}`);
    t.equal((await fetch(s.baseUrl + '/health')).status, 200);
    t.ok(s.peakRssMb() > 1, 'RSS read from /proc');
  } finally {
    await s.stop();
  }
  await t.rejects(fetch(s.baseUrl + '/health'), 'stopped');
  await t.rejects(
    startServer({
      label: 'broken',
      command: process.execPath,
      args: ['-e', 'process.exit(3)'],
      port: await freePort(),
      readyPath: '/',
      startTimeoutMs: 5000,
    }),
    /exited/,
  );
});

t.test('--peer llama-server runs the same load against an injected peer and prints the table', async (t) => {
  const out: string[] = [],
    log: string[] = [];
  const code = await main(
    [
      '--model',
      MODEL_GGUF,
      '--peer',
      'llama-server',
      '--num-prompts',
      '6',
      '--max-concurrency',
      '3',
      '--random-input-len',
      '8',
      '--random-output-len',
      '4',
      '--disable-tqdm',
    ],
    { weftCommand: FAKE, peerCommand: FAKE, out: (s) => out.push(s), log: (s) => log.push(s) },
  );
  t.equal(code, 0, log.join('\n'));
  const text = out.join('\n');
  t.equal(text.split('Serving Benchmark Result').length - 1, 2, 'one summary per server');
  t.match(text, /weft\s+llama-server\s+weft\/peer/);
  t.match(text, /Output token throughput \(tok\/s\)\s+[\d.]+\s+[\d.]+\s+[\d.]+x/);
  t.match(text, /Successful requests:\s+6/);
});
