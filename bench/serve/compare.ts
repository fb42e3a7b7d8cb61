// The side-by-side table of weft and a peer server (llama.cpp's llama-server) under the same
// load: one row per headline number, with the ratio weft/peer.
import type { PointResult } from './point.js';
import { percentile } from './stats.js';
import type { BenchRequest } from './types.js';

export interface CompareRow {
  name: string;
  weft: number | null;
  peer: number | null;
}

export function comparisonRows(w: PointResult, p: PointResult): CompareRow[] {
  const row = (name: string, f: (x: PointResult) => number | null): CompareRow => ({ name, weft: f(w), peer: f(p) });
  const pc = (k: 'ttft' | 'itl' | 'tpot', q: number) => (x: PointResult) => percentile(x.metrics.samples[k], q);
  return [
    row('Output token throughput (tok/s)', (x) => x.metrics.outputThroughput),
    row('TTFT p50 (ms)', pc('ttft', 50)),
    row('TTFT p99 (ms)', pc('ttft', 99)),
    row('ITL p50 (ms)', pc('itl', 50)),
    row('ITL p99 (ms)', pc('itl', 99)),
    row('TPOT median (ms)', pc('tpot', 50)),
    row('Peak RSS (MB)', (x) => x.peakRssMb),
  ];
}

export function ratio(a: number | null, b: number | null): string {
  if (a === null || b === null || b === 0) return 'n/a';
  return `${(a / b).toFixed(2)}x`;
}

const cell = (v: number | null): string => (v === null ? 'n/a' : v.toFixed(2));

export function formatComparison(peerLabel: string, rows: CompareRow[]): string {
  const w = [34, 12, 14, 11];
  const head = ['', 'weft', peerLabel, 'weft/peer'];
  const fmtRow = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join(' ');
  return [
    fmtRow(head),
    '-'.repeat(w.reduce((a, b) => a + b + 1, -1)),
    ...rows.map((r) => fmtRow([r.name, cell(r.weft), cell(r.peer), ratio(r.weft, r.peer)])),
  ].join('\n');
}

// llama-server splits its context evenly over its slots: each needs room for the longest request.
export function llamaCtx(requests: BenchRequest[], parallel: number): number {
  const maxIn = Math.max(0, ...requests.map((r) => r.promptLen));
  const maxOut = Math.max(0, ...requests.map((r) => r.maxTokens));
  return parallel * (maxIn + maxOut + 16);
}

export function parallelFrom(peerArgs: string[], def = 64): number {
  const i = peerArgs.findIndex((a) => a === '-np' || a === '--parallel');
  const n = i >= 0 ? Number(peerArgs[i + 1]) : def;
  return Number.isInteger(n) && n > 0 ? n : def;
}
