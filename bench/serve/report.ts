// The printed summary (vLLM's layout, line for line) and the saved JSON (vLLM's keys, plus the
// server's peak RSS and its scraped metrics).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import type { BenchConfig } from './options.js';
import type { PointResult } from './point.js';
import { METRIC_NAMES, percentile, type MetricName } from './stats.js';

const HEADERS: Record<MetricName, [string, string]> = {
  ttft: ['TTFT', 'Time to First Token'],
  tpot: ['TPOT', 'Time per Output Token (excl. 1st token)'],
  itl: ['ITL', 'Inter-token Latency'],
  e2el: ['E2EL', 'End-to-end Latency'],
};

// Python's '{:c^n}': the odd padding character goes to the right.
export function center(s: string, n: number, c: string): string {
  const pad = Math.max(0, n - s.length),
    left = Math.floor(pad / 2);
  return c.repeat(left) + s + c.repeat(pad - left);
}

// '{:<40} {:<10}' and '{:<40} {:<10.2f}'
const line = (label: string, v: number | string, isFloat = true): string =>
  `${label.padEnd(40)} ${(typeof v === 'number' && isFloat ? v.toFixed(2) : String(v)).padEnd(10)}`;

// vLLM's p_word: 99 → "99", 99.9 → "99.9"
export const pWord = (p: number): string => String(p);

export function formatSummary(p: PointResult, cfg: BenchConfig): string {
  const m = p.metrics;
  const out = [
    center(' Serving Benchmark Result ', 50, '='),
    line('Successful requests:', m.completed, false),
    line('Failed requests:', m.failed, false),
  ];
  if (p.maxConcurrency !== null) out.push(line('Maximum request concurrency:', p.maxConcurrency, false));
  if (Number.isFinite(p.requestRate)) out.push(line('Request rate configured (RPS):', p.requestRate));
  out.push(
    line('Benchmark duration (s):', p.run.durationMs / 1000),
    line('Total input tokens:', m.totalInput, false),
    line('Total generated tokens:', m.totalOutput, false),
    line('Request throughput (req/s):', m.requestThroughput),
  );
  if (m.requestGoodput !== null) out.push(line('Request goodput (req/s):', m.requestGoodput));
  out.push(
    line('Output token throughput (tok/s):', m.outputThroughput),
    line('Peak output token throughput (tok/s):', m.maxOutputTokensPerS),
    line('Peak concurrent requests:', m.maxConcurrentRequests),
    line('Total Token throughput (tok/s):', m.totalTokenThroughput),
  );
  if (p.peakRssMb !== null) out.push(line('Server peak RSS (MB):', p.peakRssMb));
  for (const name of cfg.percentileMetrics) {
    const s = m.summaries[name],
      [short, header] = HEADERS[name];
    out.push(center(header, 50, '-'), line(`Mean ${short} (ms):`, s.mean), line(`Median ${short} (ms):`, s.median));
    for (const [pc, v] of s.percentiles) out.push(line(`P${pWord(pc)} ${short} (ms):`, v));
  }
  out.push('='.repeat(50));
  return out.join('\n');
}

const pad2 = (n: number) => String(n).padStart(2, '0');
export const dateStamp = (d: Date): string =>
  `${d.getFullYear()}${pad2(d.getMonth() + 1)}${pad2(d.getDate())}-${pad2(d.getHours())}${pad2(d.getMinutes())}${pad2(d.getSeconds())}`;

export function resultJson(p: PointResult, cfg: BenchConfig, modelId: string): Record<string, unknown> {
  const m = p.metrics,
    recs = p.run.records;
  const json: Record<string, unknown> = {
    date: dateStamp(p.run.startedAt),
    backend: p.server,
    model_id: modelId,
    tokenizer_id: modelId,
    num_prompts: recs.length,
    request_rate: Number.isFinite(p.requestRate) ? p.requestRate : 'inf',
    burstiness: cfg.burstiness,
    max_concurrency: p.maxConcurrency,
    ...cfg.metadata,
    duration: p.run.durationMs / 1000,
    completed: m.completed,
    failed: m.failed,
    total_input_tokens: m.totalInput,
    total_output_tokens: m.totalOutput,
    request_throughput: m.requestThroughput,
    request_goodput: m.requestGoodput,
    output_throughput: m.outputThroughput,
    total_token_throughput: m.totalTokenThroughput,
    max_output_tokens_per_s: m.maxOutputTokensPerS,
    max_concurrent_requests: m.maxConcurrentRequests,
    input_lens: recs.map((r) => r.promptLen),
    output_lens: m.outputLens,
    // seconds, as vLLM saves them
    ttfts: recs.map((r) => r.ttftMs / 1000),
    itls: recs.map((r) => r.itlMs.map((x) => x / 1000)),
    generated_texts: recs.map((r) => r.generatedText),
    errors: recs.map((r) => r.error),
    server_peak_rss_mb: p.peakRssMb,
    server_metrics: p.serverMetrics,
  };
  const ps = [...new Set([...cfg.percentiles, 99])];
  for (const name of METRIC_NAMES) {
    const s = m.summaries[name],
      xs = m.samples[name];
    json[`mean_${name}_ms`] = s.mean;
    json[`median_${name}_ms`] = s.median;
    json[`std_${name}_ms`] = s.std;
    for (const pc of ps) json[`p${pWord(pc)}_${name}_ms`] = percentile(xs, pc);
  }
  return json;
}

export function resultFilename(p: PointResult, cfg: BenchConfig, modelId: string, suffix = ''): string {
  const rate = Number.isFinite(p.requestRate) ? String(p.requestRate) : 'inf';
  const conc = p.maxConcurrency !== null ? `-concurrency${p.maxConcurrency}` : '';
  const base = cfg.resultFilename
    ? cfg.resultFilename.replace(/\.json$/, '')
    : `${p.server}-${rate}qps${conc}-${modelId.replace(/[^\w.-]/g, '_')}-${dateStamp(p.run.startedAt)}`;
  return `${base}${suffix}.json`;
}

export function saveResult(p: PointResult, cfg: BenchConfig, modelId: string, suffix = ''): string {
  mkdirSync(cfg.resultDir, { recursive: true });
  const file = join(cfg.resultDir, resultFilename(p, cfg, modelId, suffix));
  writeFileSync(file, JSON.stringify(resultJson(p, cfg, modelId), null, 2) + '\n');
  return file;
}
