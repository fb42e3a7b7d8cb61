// A GuideLLM-style sweep: a synchronous run (one request at a time), a throughput run (every
// request at once), then rates evenly spaced strictly between the two measured request rates,
// lowest first, stopping once the server falls behind: the achieved request rate under 90% of
// the target means requests queue without bound, and higher rates only say the same.
//
// Both rates are measured over the same requests so a short run's drain tail and the random
// arrival gaps do not read as saturation: the offered rate is the spacing of the sends (the
// target as the arrival process realised it), the achieved rate the spacing of the completions.
import type { PointResult } from './point.js';
import type { RequestRecord } from './types.js';

export type RunAt = (requestRate: number, maxConcurrency: number | null) => Promise<PointResult>;

export const SATURATION_FRACTION = 0.9;

export function sweepRates(syncRate: number, maxRate: number, numPoints: number): number[] {
  if (!(maxRate > syncRate) || numPoints < 1) return [];
  return Array.from({ length: numPoints }, (_, i) => syncRate + ((maxRate - syncRate) * (i + 1)) / (numPoints + 1));
}

// (n − 1) requests over the span from the first to the last event, per second
function spanRate(times: number[]): number {
  if (times.length < 2) return 0;
  const span = Math.max(...times) - Math.min(...times);
  return span > 0 ? ((times.length - 1) * 1000) / span : Infinity;
}

export function offeredAndAchieved(records: readonly RequestRecord[]): { offered: number; achieved: number } {
  const ok = records.filter((r) => r.success);
  return { offered: spanRate(ok.map((r) => r.startMs)), achieved: spanRate(ok.map((r) => r.startMs + r.latencyMs)) };
}

export function isOversaturated(p: PointResult): boolean {
  if (!Number.isFinite(p.requestRate)) return false;
  if (p.metrics.failed > 0 && p.metrics.completed === 0) return true;
  const { offered, achieved } = offeredAndAchieved(p.run.records);
  return achieved < SATURATION_FRACTION * Math.min(p.requestRate, offered);
}

export async function runSweep(runAt: RunAt, numPoints: number, onPoint: (p: PointResult, note: string) => void): Promise<PointResult[]> {
  const sync = await runAt(Infinity, 1);
  onPoint(sync, 'synchronous');
  const max = await runAt(Infinity, null);
  onPoint(max, 'throughput');
  const points = [sync, max];
  for (const rate of sweepRates(sync.metrics.requestThroughput, max.metrics.requestThroughput, numPoints)) {
    const p = await runAt(Number(rate.toFixed(3)), null);
    points.push(p);
    const saturated = isOversaturated(p);
    onPoint(p, saturated ? 'over-saturated: sweep stops' : '');
    if (saturated) break;
  }
  return points;
}
