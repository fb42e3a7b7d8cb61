// One row per measured point (sweeps and --max-concurrency lists), printed as each point ends.
import type { PointResult } from './point.js';
import { percentile } from './stats.js';

const COLUMNS: [string, number][] = [
  ['server', 13],
  ['rate', 8],
  ['conc', 5],
  ['req/s', 8],
  ['out tok/s', 10],
  ['TTFT p50', 9],
  ['TTFT p99', 9],
  ['ITL p50', 8],
  ['ITL p99', 8],
  ['TPOT p50', 9],
  ['failed', 6],
];

const fmt = (v: number, digits = 2): string => (Number.isFinite(v) ? v.toFixed(digits) : 'inf');

export function tableHeader(): string {
  return COLUMNS.map(([h, w]) => h.padStart(w)).join(' ') + '\n' + COLUMNS.map(([, w]) => '-'.repeat(w)).join(' ');
}

export function tableRow(p: PointResult): string {
  const s = p.metrics.samples;
  const cells = [
    p.server,
    fmt(p.requestRate),
    p.maxConcurrency === null ? '-' : String(p.maxConcurrency),
    fmt(p.metrics.requestThroughput),
    fmt(p.metrics.outputThroughput, 1),
    fmt(percentile(s.ttft, 50), 1),
    fmt(percentile(s.ttft, 99), 1),
    fmt(percentile(s.itl, 50), 1),
    fmt(percentile(s.itl, 99), 1),
    fmt(percentile(s.tpot, 50), 1),
    String(p.metrics.failed),
  ];
  return cells.map((c, i) => c.padStart(COLUMNS[i][1])).join(' ');
}
