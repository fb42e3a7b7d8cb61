// All the points of one server: a sweep, one run per --max-concurrency value, or the exact
// (rate, concurrency) pairs of an earlier session (a peer replays weft's load).
import { runPoint, type PointResult, type PointTarget } from './point.js';
import type { BenchConfig } from './options.js';
import { runSweep } from './sweep.js';
import type { BenchRequest } from './types.js';

export type OnPoint = (p: PointResult, note: string) => void;

// Point i sends requestsFor(i): each point its own prompts (a server's prefix cache must not
// serve one point from the prompts of the one before), the same ones for weft and its peer.
export async function runSession(
  t: PointTarget,
  cfg: BenchConfig,
  requestsFor: (point: number) => BenchRequest[],
  onPoint: OnPoint,
  replay?: { requestRate: number; maxConcurrency: number | null }[],
): Promise<PointResult[]> {
  let index = 0;
  const at = (rate: number, conc: number | null) => runPoint(t, cfg, requestsFor(index++), rate, conc);
  if (!replay && cfg.sweep) return runSweep(at, cfg.sweepPoints, onPoint);
  const plan = replay ?? cfg.concurrencies.map((c) => ({ requestRate: cfg.requestRate, maxConcurrency: c }));
  const points: PointResult[] = [];
  for (const { requestRate, maxConcurrency } of plan) {
    const p = await at(requestRate, maxConcurrency);
    points.push(p);
    onPoint(p, '');
  }
  return points;
}
