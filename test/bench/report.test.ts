import t from 'tap';

import type { BenchConfig } from '../../bench/serve/options.js';
import { parseArgs, usage } from '../../bench/serve/args.js';
import { toConfig } from '../../bench/serve/options.js';
import type { PointResult } from '../../bench/serve/point.js';
import { center, formatSummary, resultJson } from '../../bench/serve/report.js';
import { computeMetrics } from '../../bench/serve/stats.js';
import { isOversaturated, sweepRates } from '../../bench/serve/sweep.js';
import { renderChart, niceTicks } from '../../bench/serve/svg.js';

const cfg = (argv: string[]): BenchConfig => toConfig(parseArgs(['--url', 'http://127.0.0.1:1', ...argv]));

function pointOf(c: BenchConfig, rate = Infinity, throughput = 2): PointResult {
  const r = { success: true, error: '', promptLen: 4, outputTokens: 3, generatedText: 'abc', startMs: 0, ttftMs: 10, itlMs: [5, 7], latencyMs: 22 };
  const metrics = computeMetrics([r], 1000 / throughput, c.percentiles, c.slo);
  return {
    server: 'weft',
    requestRate: rate,
    maxConcurrency: 2,
    serverMetrics: {},
    peakRssMb: 12.5,
    run: { records: [r], durationMs: 1000 / throughput, startedAt: new Date(2024, 0, 2, 3, 4, 5) },
    metrics,
  };
}

t.test('vLLM layout: centred headers and 40-column labels', async (t) => {
  t.equal(center(' Serving Benchmark Result ', 50, '='), '============ Serving Benchmark Result ============');
  t.equal(center('Time to First Token', 50, '-'), '---------------Time to First Token----------------');
  const c = cfg(['--metric-percentiles', '50,99.9', '--goodput', 'ttft:100', 'tpot:20']);
  const text = formatSummary(pointOf(c), c);
  t.match(text, /^Successful requests: {21}1 {9}$/m);
  t.match(text, /^Request goodput \(req\/s\): {17}2\.00/m);
  t.match(text, /^P99\.9 TTFT \(ms\): +10\.00/m);
  t.match(text, /^Mean TPOT \(ms\): +6\.00/m);
  t.notMatch(text, /E2EL/);
  t.match(text, /^={50}$/m);
});

t.test('JSON: vLLM keys, rate "inf", metadata, seconds for raw times', async (t) => {
  const c = cfg(['--metadata', 'a=1', 'b=x=y']);
  const j = resultJson(pointOf(c), c, 'm');
  t.equal(j.date, '20240102-030405');
  t.equal(j.request_rate, 'inf');
  t.equal(j.a, '1');
  t.equal(j.b, 'x=y');
  t.same(j.ttfts, [0.01]);
  t.same(j.itls, [[0.005, 0.007]]);
  t.equal(j.p99_itl_ms, 6.98);
  t.equal(j.request_goodput, null);
});

t.test('flags: vLLM names, lists, validation', async (t) => {
  t.match(usage(), /--request-rate/);
  const c = cfg(['--request-rate', '4', '--max-concurrency', '1,16,64', '--burstiness', '0.5']);
  t.equal(c.requestRate, 4);
  t.same(c.concurrencies, [1, 16, 64]);
  t.equal(c.burstiness, 0.5);
  t.throws(() => cfg(['--num-prompts', 'x']), /integer/);
  t.throws(() => cfg(['--bogus']), /unknown/);
  t.throws(() => toConfig(parseArgs(['--url', 'http://example.com:80'])), /allow-remote/);
  t.throws(() => toConfig(parseArgs([])), /exactly one/);
  t.throws(() => cfg(['--goodput', 'ttft=3']), /goodput/);
});

t.test('sweep rates lie strictly between synchronous and maximum; saturation at 90%', async (t) => {
  t.same(sweepRates(1, 7, 5), [2, 3, 4, 5, 6]);
  t.same(sweepRates(5, 5, 3), []);
  const c = cfg([]);
  // sends every 100 ms (10 req/s); completions every `gap` ms after a fixed latency
  const paced = (gap: number, rate = 10): PointResult => {
    const p = pointOf(c, rate);
    const records = Array.from({ length: 11 }, (_, i) => ({ ...p.run.records[0], startMs: i * 100, latencyMs: 50 + i * (gap - 100) }));
    return { ...p, run: { ...p.run, records } };
  };
  t.notOk(isOversaturated(paced(100)), 'keeps pace');
  t.notOk(isOversaturated(paced(110)), 'within 90%');
  t.ok(isOversaturated(paced(125)), 'falls behind: 8 req/s of 10');
  t.notOk(isOversaturated(paced(200, Infinity)), 'rate inf is never over-saturated');
});

t.test('charts are standalone SVG', async (t) => {
  t.same(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  const svg = renderChart({
    title: 'a<b',
    xLabel: 'x',
    yLabel: 'y',
    kind: 'line',
    series: [
      {
        name: 's',
        points: [
          [1, 2],
          [2, 3],
        ],
      },
    ],
  });
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.match(svg, /a&lt;b/);
  t.match(svg, /<polyline/);
  t.match(renderChart({ title: 't', xLabel: 'x', yLabel: 'y', kind: 'scatter', series: [] }), /no data/);
});
