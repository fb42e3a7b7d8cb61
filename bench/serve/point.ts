// One measured point of a session: a load run against one server at one rate and concurrency,
// with the server's metrics scraped meanwhile, reduced to vLLM's metrics.
import { sendRequest, type ClientTarget } from './client.js';
import { Progress } from './progress.js';
import { runLoad, type RunResult } from './runner.js';
import { MetricsScraper, type Series } from './scrape.js';
import { computeMetrics, type BenchMetrics } from './stats.js';
import type { BenchConfig } from './options.js';
import type { BenchRequest } from './types.js';

export interface PointResult {
  server: string; // weft, llama-server, or the URL's label
  requestRate: number; // the target; Infinity = all at once
  maxConcurrency: number | null;
  run: RunResult;
  metrics: BenchMetrics;
  serverMetrics: Series;
  peakRssMb: number | null; // null when the server was not started here
}

export interface PointTarget {
  label: string;
  client: ClientTarget;
  peakRssMb: (() => number) | null;
}

export async function runPoint(
  t: PointTarget,
  cfg: BenchConfig,
  requests: BenchRequest[],
  requestRate: number,
  maxConcurrency: number | null,
): Promise<PointResult> {
  const scraper = new MetricsScraper(t.client.baseUrl);
  const progress = cfg.showProgress ? new Progress(process.stderr, `${t.label} rate=${requestRate} conc=${maxConcurrency ?? '∞'}`) : null;
  scraper.start();
  let run: RunResult;
  try {
    run = await runLoad({
      requests,
      numWarmups: cfg.numWarmups,
      requestRate,
      burstiness: cfg.burstiness,
      maxConcurrency,
      seed: cfg.dataset.seed,
      send: (req, t0) => sendRequest(t.client, req, t0),
      onProgress: progress ? (d, n) => progress.update(d, n) : undefined,
    });
  } finally {
    progress?.done();
  }
  const serverMetrics = await scraper.stop();
  const metrics = computeMetrics(run.records, run.durationMs, cfg.percentiles, cfg.slo);
  return { server: t.label, requestRate, maxConcurrency, run, metrics, serverMetrics, peakRssMb: t.peakRssMb ? t.peakRssMb() : null };
}
