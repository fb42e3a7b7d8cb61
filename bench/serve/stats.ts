// Pure statistics over request records, with vLLM's definitions (vllm/benchmarks/serve.py):
// percentiles by linear interpolation (numpy's default), population std, TPOT per request
// excluding the first token, ITL per chunk pooled over requests, goodput = requests meeting
// every given SLO per second. Empty inputs give 0, as np.mean(x or 0) does.
import type { RequestRecord, Slo } from './types.js';

export type MetricName = 'ttft' | 'tpot' | 'itl' | 'e2el';
export const METRIC_NAMES: readonly MetricName[] = ['ttft', 'tpot', 'itl', 'e2el'];

export interface Summary {
  mean: number;
  median: number;
  std: number;
  percentiles: [number, number][]; // [p, value]
}

export interface BenchMetrics {
  completed: number;
  failed: number;
  totalInput: number;
  totalOutput: number;
  requestThroughput: number;
  requestGoodput: number | null;
  outputThroughput: number;
  totalTokenThroughput: number;
  maxOutputTokensPerS: number;
  maxConcurrentRequests: number;
  samples: Record<MetricName, number[]>; // ms; tpot only for requests of more than one token
  summaries: Record<MetricName, Summary>;
  outputLens: number[]; // per request, 0 for failures
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return 0;
  const a = [...values].sort((x, y) => x - y);
  const idx = ((a.length - 1) * p) / 100;
  const lo = Math.floor(idx),
    hi = Math.ceil(idx);
  return a[lo] + (a[hi] - a[lo]) * (idx - lo);
}

export const mean = (xs: readonly number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
export const median = (xs: readonly number[]): number => percentile(xs, 50);

export function std(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const m = mean(xs);
  return Math.sqrt(mean(xs.map((x) => (x - m) ** 2)));
}

export function summarize(xs: readonly number[], ps: readonly number[]): Summary {
  return { mean: mean(xs), median: median(xs), std: std(xs), percentiles: ps.map((p) => [p, percentile(xs, p)]) };
}

// 0 for a request of one token, as vLLM keeps it for goodput (and leaves it out of the TPOT stats).
export function tpotMs(r: RequestRecord): number {
  return r.outputTokens > 1 ? (r.latencyMs - r.ttftMs) / (r.outputTokens - 1) : 0;
}

export function meetsSlo(r: RequestRecord, slo: Slo): boolean {
  return (
    (slo.ttft === undefined || r.ttftMs <= slo.ttft) &&
    (slo.tpot === undefined || tpotMs(r) <= slo.tpot) &&
    (slo.e2el === undefined || r.latencyMs <= slo.e2el)
  );
}

// Peak output tokens in any whole second of the run, and the most requests in flight in any second.
export function peaks(ok: readonly RequestRecord[]): { maxOutputTokensPerS: number; maxConcurrentRequests: number } {
  if (ok.length === 0) return { maxOutputTokensPerS: 0, maxConcurrentRequests: 0 };
  const t0 = Math.min(...ok.map((r) => r.startMs));
  const tEnd = Math.max(...ok.map((r) => r.startMs + r.latencyMs));
  const numSeconds = Math.ceil((tEnd - t0) / 1000) + 1;
  const tokens = new Array<number>(numSeconds).fill(0),
    inFlight = new Array<number>(numSeconds).fill(0);
  for (const r of ok) {
    let t = r.startMs + r.ttftMs;
    const times = [t, ...r.itlMs.map((g) => (t += g))];
    for (const x of times) {
      const s = Math.floor((x - t0) / 1000);
      if (s >= 0 && s < numSeconds) tokens[s]++;
    }
    const first = Math.floor((r.startMs - t0) / 1000),
      last = Math.floor((r.startMs + r.latencyMs - t0) / 1000);
    for (let s = first; s <= last && s < numSeconds; s++) inFlight[s]++;
  }
  return { maxOutputTokensPerS: Math.max(...tokens), maxConcurrentRequests: Math.max(...inFlight) };
}

export function computeMetrics(records: readonly RequestRecord[], durationMs: number, ps: readonly number[], slo: Slo | null): BenchMetrics {
  const ok = records.filter((r) => r.success);
  const seconds = durationMs / 1000;
  const per = (x: number) => (seconds > 0 ? x / seconds : 0);
  const totalInput = ok.reduce((a, r) => a + r.promptLen, 0);
  const totalOutput = ok.reduce((a, r) => a + r.outputTokens, 0);
  const samples: Record<MetricName, number[]> = {
    ttft: ok.map((r) => r.ttftMs),
    tpot: ok.filter((r) => r.outputTokens > 1).map(tpotMs),
    itl: ok.flatMap((r) => r.itlMs),
    e2el: ok.map((r) => r.latencyMs),
  };
  const summaries = Object.fromEntries(METRIC_NAMES.map((m) => [m, summarize(samples[m], ps)])) as Record<MetricName, Summary>;
  return {
    completed: ok.length,
    failed: records.length - ok.length,
    totalInput,
    totalOutput,
    requestThroughput: per(ok.length),
    requestGoodput: slo ? per(ok.filter((r) => meetsSlo(r, slo)).length) : null,
    outputThroughput: per(totalOutput),
    totalTokenThroughput: per(totalInput + totalOutput),
    ...peaks(ok),
    samples,
    summaries,
    outputLens: records.map((r) => (r.success ? r.outputTokens : 0)),
  };
}

// Mean ITL at each output position (1 = the gap after the first token), for the report's chart.
export function itlByPosition(records: readonly RequestRecord[]): [number, number][] {
  const sums: number[] = [],
    counts: number[] = [];
  for (const r of records) {
    if (!r.success) continue;
    r.itlMs.forEach((g, i) => {
      sums[i] = (sums[i] ?? 0) + g;
      counts[i] = (counts[i] ?? 0) + 1;
    });
  }
  return sums.map((s, i) => [i + 1, s / counts[i]]);
}
