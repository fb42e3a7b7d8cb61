// Polls the server's Prometheus /metrics during a run and keeps time series of the gauges that
// show load: running and waiting requests and KV cache use, under weft's, vLLM's or llama.cpp's
// names. Metrics the server does not expose are skipped; a server without /metrics gives none.
import { performance } from 'node:perf_hooks';

export const SCRAPED_METRICS = [
  'weft_num_requests_running',
  'weft_num_requests_waiting',
  'weft_kv_cache_usage_perc',
  'vllm:num_requests_running',
  'vllm:num_requests_waiting',
  'vllm:gpu_cache_usage_perc',
  'vllm:kv_cache_usage_perc',
  'llamacpp:requests_processing',
  'llamacpp:requests_deferred',
  'llamacpp:kv_cache_usage_ratio',
] as const;

export type Series = Record<string, [number, number][]>; // name → [seconds since start, value]

// Sums a metric over its label sets (vLLM labels each gauge with model_name).
export function parsePrometheus(text: string, names: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([^\s{]+)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m || !names.includes(m[1])) continue;
    const v = Number(m[3]);
    if (Number.isFinite(v)) out[m[1]] = (out[m[1]] ?? 0) + v;
  }
  return out;
}

export class MetricsScraper {
  private readonly series: Series = {};
  private stopped = false;
  private loop: Promise<void> | null = null;

  constructor(
    private readonly baseUrl: string,
    private readonly intervalMs = 500,
  ) {}

  start(): void {
    const t0 = performance.now();
    this.loop = (async () => {
      while (!this.stopped) {
        const ok = await this.scrapeOnce((performance.now() - t0) / 1000);
        if (!ok) return;
        await new Promise((r) => setTimeout(r, this.intervalMs));
      }
    })();
  }

  async stop(): Promise<Series> {
    this.stopped = true;
    await this.loop;
    return this.series;
  }

  // false when the server has no usable /metrics, which ends the polling
  private async scrapeOnce(t: number): Promise<boolean> {
    try {
      const res = await fetch(this.baseUrl + '/metrics', { signal: AbortSignal.timeout(5000) });
      if (!res.ok) return false;
      const values = parsePrometheus(await res.text(), SCRAPED_METRICS);
      for (const [k, v] of Object.entries(values)) (this.series[k] ??= []).push([Number(t.toFixed(3)), v]);
      return true;
    } catch {
      return false;
    }
  }
}
