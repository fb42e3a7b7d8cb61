// Parsed flags → one validated, typed configuration for a benchmark session.
import type { ParsedArgs } from './args.js';
import type { DatasetOptions, DatasetName } from './datasets.js';
import { METRIC_NAMES, type MetricName } from './stats.js';
import type { Slo } from './types.js';

export interface BenchConfig {
  url?: string;
  model?: string;
  serverArgs: string;
  modelName?: string;
  endpoint: string;
  requestRate: number;
  burstiness: number;
  concurrencies: (number | null)[]; // one run per entry; null = no limit
  numWarmups: number;
  dataset: DatasetOptions;
  vocabSizeGiven: boolean;
  ignoreEos: boolean;
  temperature: number;
  requestTimeoutMs: number;
  slo: Slo | null;
  percentileMetrics: MetricName[];
  percentiles: number[];
  saveResult: boolean;
  resultDir: string;
  resultFilename?: string;
  metadata: Record<string, string>;
  showProgress: boolean;
  sweep: boolean;
  sweepPoints: number;
  html?: string;
  svgDir?: string;
  peer?: 'llama-server';
  peerUrl?: string;
  peerArgs: string;
  allowRemote: boolean;
}

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const list = (s: string): string[] =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean);

export function parseSlo(words: string[] | undefined): Slo | null {
  if (!words?.length) return null;
  const slo: Slo = {};
  for (const w of words) {
    const m = /^(ttft|tpot|e2el):([0-9.]+)$/.exec(w);
    if (!m || !(Number(m[2]) >= 0)) throw new Error(`--goodput takes ttft:MS tpot:MS e2el:MS, got "${w}"`);
    slo[m[1] as keyof Slo] = Number(m[2]);
  }
  return slo;
}

export function parseConcurrencies(v: string | undefined): (number | null)[] {
  if (!v) return [null];
  return list(v).map((x) => {
    const n = Number(x);
    if (!Number.isInteger(n) || n < 1) throw new Error(`--max-concurrency takes positive integers, got "${x}"`);
    return n;
  });
}

function checkUrl(name: string, url: string, allowRemote: boolean): string {
  const u = new URL(url);
  if (!allowRemote && !['127.0.0.1', 'localhost', '[::1]'].includes(u.hostname))
    throw new Error(`${name} ${url} is not on this machine; pass --allow-remote to benchmark a remote server`);
  return url.replace(/\/+$/, '');
}

export function toConfig(a: ParsedArgs): BenchConfig {
  const url = str(a.url),
    model = str(a.model);
  if (!url === !model) throw new Error('give exactly one of --url (a running server) and --model (start weft)');
  const rate = String(a['request-rate']);
  const requestRate = rate === 'inf' ? Infinity : Number(rate);
  if (!(requestRate > 0)) throw new Error(`--request-rate must be > 0 or inf, got "${rate}"`);
  const percentileMetrics = list(String(a['percentile-metrics'])) as MetricName[];
  for (const m of percentileMetrics)
    if (!METRIC_NAMES.includes(m)) throw new Error(`--percentile-metrics: unknown metric "${m}" (ttft, tpot, itl, e2el)`);
  const percentiles = list(String(a['metric-percentiles'])).map(Number);
  if (percentiles.some((p) => !(p >= 0 && p <= 100))) throw new Error('--metric-percentiles must lie in [0, 100]');
  const peer = str(a.peer);
  if (peer !== undefined && peer !== 'llama-server') throw new Error(`--peer takes llama-server, got "${peer}"`);
  if (peer && !model?.endsWith('.gguf')) throw new Error('--peer llama-server needs --model FILE.gguf (both servers load the same file)');
  const allowRemote = a['allow-remote'] === true;
  const metadata = Object.fromEntries(
    ((a.metadata as string[] | undefined) ?? []).map((kv) => {
      const i = kv.indexOf('=');
      if (i < 1) throw new Error(`--metadata takes KEY=VALUE, got "${kv}"`);
      return [kv.slice(0, i), kv.slice(i + 1)];
    }),
  );
  const numPrompts = a['num-prompts'] as number;
  if (numPrompts < 1) throw new Error('--num-prompts must be ≥ 1');
  return {
    url: url && checkUrl('--url', url, allowRemote),
    model,
    serverArgs: String(a['server-args'] ?? ''),
    modelName: str(a['served-model-name']),
    endpoint: String(a.endpoint),
    requestRate,
    burstiness: a.burstiness as number,
    concurrencies: parseConcurrencies(str(a['max-concurrency'])),
    numWarmups: a['num-warmups'] as number,
    dataset: {
      name: String(a['dataset-name']) as DatasetName,
      numPrompts,
      seed: a.seed as number,
      vocabSize: (a['vocab-size'] as number | undefined) ?? 32000,
      randomInputLen: a['random-input-len'] as number,
      randomOutputLen: a['random-output-len'] as number,
      randomRangeRatio: a['random-range-ratio'] as number,
      randomPrefixLen: a['random-prefix-len'] as number,
      prefixLen: a['prefix-repetition-prefix-len'] as number,
      suffixLen: a['prefix-repetition-suffix-len'] as number,
      numPrefixes: a['prefix-repetition-num-prefixes'] as number,
      prefixOutputLen: a['prefix-repetition-output-len'] as number,
      datasetPath: str(a['dataset-path']),
      sharegptOutputLen: a['sharegpt-output-len'] as number | undefined,
    },
    vocabSizeGiven: a['vocab-size'] !== undefined,
    ignoreEos: a['ignore-eos'] === true,
    temperature: a.temperature as number,
    requestTimeoutMs: (a['request-timeout'] as number) * 1000,
    slo: parseSlo(a.goodput as string[] | undefined),
    percentileMetrics,
    percentiles,
    saveResult: a['save-result'] === true,
    resultDir: String(a['result-dir']),
    resultFilename: str(a['result-filename']),
    metadata,
    showProgress: a['disable-tqdm'] !== true && process.stderr.isTTY === true,
    sweep: a.sweep === true,
    sweepPoints: a['sweep-points'] as number,
    html: str(a.html),
    svgDir: str(a['svg-dir']),
    peer: peer as 'llama-server' | undefined,
    peerUrl: str(a['peer-url']) && checkUrl('--peer-url', str(a['peer-url'])!, allowRemote),
    peerArgs: String(a['peer-args'] ?? ''),
    allowRemote,
  };
}
