// Which charts a report holds, built from the measured points of each server: latency against
// load, throughput against concurrency, TTFT against input length, ITL along the output, and the
// server's own gauges during the last run.
import type { PointResult } from './point.js';
import { itlByPosition, percentile } from './stats.js';
import { renderChart, type ChartSeries } from './svg.js';

export interface ServerPoints {
  label: string;
  points: PointResult[];
}

export interface Chart {
  id: string;
  svg: string;
}

// Concurrency when every point is a closed-loop run at a set concurrency; else the achieved request rate.
function loadAxis(all: PointResult[]): { name: string; x: (p: PointResult) => number } {
  const byConcurrency =
    all.every((p) => p.maxConcurrency !== null && !Number.isFinite(p.requestRate)) && new Set(all.map((p) => p.maxConcurrency)).size > 1;
  return byConcurrency
    ? { name: 'max concurrency', x: (p) => p.maxConcurrency! }
    : { name: 'achieved request rate (req/s)', x: (p) => p.metrics.requestThroughput };
}

function latencyChart(id: string, metric: 'ttft' | 'itl', title: string, servers: ServerPoints[]): Chart {
  const axis = loadAxis(servers.flatMap((s) => s.points));
  const series: ChartSeries[] = servers.flatMap((s) =>
    [50, 99].map((q) => ({
      name: `${s.label} p${q}`,
      dashed: q === 99,
      points: s.points.map((p) => [axis.x(p), percentile(p.metrics.samples[metric], q)] as [number, number]),
    })),
  );
  return { id, svg: renderChart({ title, xLabel: axis.name, yLabel: 'ms', kind: 'line', series }) };
}

export function buildCharts(servers: ServerPoints[]): Chart[] {
  const charts = [
    latencyChart('ttft-vs-load', 'ttft', 'Time to first token', servers),
    latencyChart('itl-vs-load', 'itl', 'Inter-token latency', servers),
    {
      id: 'throughput-vs-concurrency',
      svg: renderChart({
        title: 'Output throughput',
        xLabel: 'concurrency (set, or peak measured)',
        yLabel: 'tok/s',
        kind: 'line',
        series: servers.map((s) => ({
          name: s.label,
          points: s.points.map((p) => [p.maxConcurrency ?? p.metrics.maxConcurrentRequests, p.metrics.outputThroughput] as [number, number]),
        })),
      }),
    },
    {
      id: 'ttft-vs-input-len',
      svg: renderChart({
        title: 'TTFT by input length (every request)',
        xLabel: 'input tokens',
        yLabel: 'TTFT (ms)',
        kind: 'scatter',
        series: servers.map((s) => ({
          name: s.label,
          points: s.points.flatMap((p) => p.run.records.filter((r) => r.success).map((r) => [r.promptLen, r.ttftMs] as [number, number])),
        })),
      }),
    },
    {
      id: 'itl-vs-position',
      svg: renderChart({
        title: 'Mean ITL by output position (all points)',
        xLabel: 'output token position',
        yLabel: 'ITL (ms)',
        kind: 'line',
        series: servers.map((s) => ({ name: s.label, points: itlByPosition(s.points.flatMap((p) => p.run.records)) })),
      }),
    },
  ];
  const gauges = servers.map((s) => ({ s, last: s.points.at(-1) })).find(({ last }) => last && Object.keys(last.serverMetrics).length > 0);
  if (gauges?.last) {
    charts.push({
      id: 'server-gauges',
      svg: renderChart({
        title: `${gauges.s.label} gauges during the last run`,
        xLabel: 'seconds',
        yLabel: 'value',
        kind: 'line',
        series: Object.entries(gauges.last.serverMetrics).map(([name, points]) => ({ name, points })),
      }),
    });
  }
  return charts;
}
