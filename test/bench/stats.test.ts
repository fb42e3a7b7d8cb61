import t from 'tap';

import { computeMetrics, itlByPosition, mean, median, meetsSlo, peaks, percentile, std, tpotMs } from '../../bench/serve/stats.js';
import type { RequestRecord } from '../../bench/serve/types.js';

const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

function rec(over: Partial<RequestRecord>): RequestRecord {
  return { success: true, error: '', promptLen: 10, outputTokens: 1, generatedText: '', startMs: 0, ttftMs: 0, itlMs: [], latencyMs: 0, ...over };
}

// Three successes and one failure, hand-timed (ms).
const RECORDS: RequestRecord[] = [
  rec({ promptLen: 10, outputTokens: 4, startMs: 0, ttftMs: 100, itlMs: [10, 20, 30], latencyMs: 160 }), // tpot (160-100)/3 = 20
  rec({ promptLen: 20, outputTokens: 3, startMs: 500, ttftMs: 200, itlMs: [40, 60], latencyMs: 300 }), // tpot (300-200)/2 = 50
  rec({ promptLen: 30, outputTokens: 1, startMs: 1200, ttftMs: 300, itlMs: [], latencyMs: 300 }), // one token: no tpot
  rec({ success: false, error: 'HTTP 500', promptLen: 40, outputTokens: 0, startMs: 1300, latencyMs: 5 }),
];

t.test('percentiles interpolate linearly, as numpy does', async (t) => {
  const xs = range(1, 100);
  t.equal(percentile(xs, 99), 99.01); // (100-1)·0.99 = 98.01 → 99 + 0.01·1
  t.equal(percentile(xs, 50), 50.5);
  t.equal(percentile(xs, 0), 1);
  t.equal(percentile(xs, 100), 100);
  t.equal(percentile([3, 1, 2], 25), 1.5); // sorted first: idx 0.5 between 1 and 2
  t.equal(percentile([], 99), 0);
  t.equal(percentile([7], 99), 7);
});

t.test('mean, median and population std', async (t) => {
  t.equal(mean([1, 2, 3, 4]), 2.5);
  t.equal(median([1, 2, 3, 4]), 2.5);
  t.equal(median([5, 1, 3]), 3);
  t.equal(std([2, 4, 4, 4, 5, 5, 7, 9]), 2); // the classic population-std example
  t.equal(mean([]), 0);
  t.equal(std([]), 0);
});

t.test('TPOT leaves out the first token; ITL pools every chunk gap', async (t) => {
  t.equal(tpotMs(RECORDS[0]), 20);
  t.equal(tpotMs(RECORDS[1]), 50);
  t.equal(tpotMs(RECORDS[2]), 0);
  const m = computeMetrics(RECORDS, 2000, [50, 99], null);
  t.same(m.samples.tpot, [20, 50]);
  t.same(m.samples.itl, [10, 20, 30, 40, 60]);
  t.same(m.samples.ttft, [100, 200, 300]);
  t.same(m.samples.e2el, [160, 300, 300]);
  t.equal(m.summaries.itl.mean, 32);
  t.equal(m.summaries.itl.median, 30);
  t.equal(m.summaries.tpot.mean, 35);
  t.equal(m.summaries.tpot.std, 15);
  t.same(m.summaries.ttft.percentiles, [
    [50, 200],
    [99, 298],
  ]);
});

t.test('counts and throughputs over the run', async (t) => {
  const m = computeMetrics(RECORDS, 2000, [99], null);
  t.equal(m.completed, 3);
  t.equal(m.failed, 1);
  t.equal(m.totalInput, 60); // failures are not counted
  t.equal(m.totalOutput, 8);
  t.equal(m.requestThroughput, 1.5); // 3 / 2 s
  t.equal(m.outputThroughput, 4);
  t.equal(m.totalTokenThroughput, 34);
  t.same(m.outputLens, [4, 3, 1, 0]);
  t.equal(m.requestGoodput, null);
});

t.test('goodput counts requests meeting every SLO', async (t) => {
  t.ok(meetsSlo(RECORDS[0], { ttft: 100 })); // at the limit passes
  t.notOk(meetsSlo(RECORDS[1], { ttft: 150 }));
  t.notOk(meetsSlo(RECORDS[1], { ttft: 250, tpot: 40 }));
  t.ok(meetsSlo(RECORDS[2], { tpot: 1 })); // one token: tpot 0
  t.equal(computeMetrics(RECORDS, 2000, [99], { ttft: 250 }).requestGoodput, 1); // 2 of 3 / 2 s
  t.equal(computeMetrics(RECORDS, 2000, [99], { ttft: 250, e2el: 200 }).requestGoodput, 0.5);
});

t.test('peak tokens per second and peak concurrency by whole seconds', async (t) => {
  // tokens at 100,110,130,160 | 700,740,800 | 1500 → seconds 0: 7 tokens, 1: 1 token
  const p = peaks(RECORDS.filter((r) => r.success));
  t.equal(p.maxOutputTokensPerS, 7);
  t.equal(p.maxConcurrentRequests, 2); // second 0 holds requests 1 and 2; second 1 holds request 3
  t.same(peaks([]), { maxOutputTokensPerS: 0, maxConcurrentRequests: 0 });
});

t.test('ITL by output position averages over requests', async (t) => {
  t.same(itlByPosition(RECORDS), [
    [1, 25],
    [2, 40],
    [3, 30],
  ]);
});
