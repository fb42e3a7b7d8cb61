// Small standalone SVG charts (line and scatter), no scripts or fonts beyond the system's, so the
// HTML report and the .svg files open anywhere offline.

export interface ChartSeries {
  name: string;
  points: [number, number][];
  dashed?: boolean;
}

export interface ChartSpec {
  title: string;
  xLabel: string;
  yLabel: string;
  kind: 'line' | 'scatter';
  series: ChartSeries[];
}

const W = 560,
  H = 320,
  L = 64,
  R = 16,
  T = 34,
  B = 46;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

export const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

// 1-2-5 steps giving about `count` ticks over [lo, hi]
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count,
    mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9 && out.length < 50; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const label = (v: number): string => (Math.abs(v) >= 1000 ? v.toFixed(0) : Number(v.toPrecision(3)).toString());

function extent(values: number[], fromZero: boolean): [number, number] {
  let lo = Math.min(...values),
    hi = Math.max(...values);
  if (fromZero) lo = Math.min(0, lo);
  if (!(hi > lo)) {
    hi = lo + (Math.abs(lo) || 1);
    if (!fromZero) lo -= (hi - lo) / 2;
  }
  return [lo, hi];
}

export function renderChart(spec: ChartSpec): string {
  const all = spec.series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="11">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="${W / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">${escapeXml(spec.title)}</text>`,
  ];
  if (all.length === 0) {
    out.push(`<text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#888">no data</text></svg>`);
    return out.join('\n');
  }
  const [x0, x1] = extent(
      all.map((p) => p[0]),
      false,
    ),
    [y0, y1] = extent(
      all.map((p) => p[1]),
      true,
    );
  const xs = niceTicks(x0, x1),
    ys = niceTicks(y0, y1);
  const px = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const py = (y: number) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
  for (const y of ys)
    out.push(
      `<line x1="${L}" x2="${W - R}" y1="${py(y).toFixed(1)}" y2="${py(y).toFixed(1)}" stroke="#eee"/>` +
        `<text x="${L - 5}" y="${(py(y) + 4).toFixed(1)}" text-anchor="end">${label(y)}</text>`,
    );
  for (const x of xs) out.push(`<text x="${px(x).toFixed(1)}" y="${H - B + 15}" text-anchor="middle">${label(x)}</text>`);
  out.push(
    `<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#333"/><line x1="${L}" x2="${L}" y1="${T}" y2="${H - B}" stroke="#333"/>`,
    `<text x="${(L + W - R) / 2}" y="${H - 8}" text-anchor="middle">${escapeXml(spec.xLabel)}</text>`,
    `<text transform="translate(14 ${(T + H - B) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(spec.yLabel)}</text>`,
  );
  spec.series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length];
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y)).sort((a, b) => (spec.kind === 'line' ? a[0] - b[0] : 0));
    if (spec.kind === 'line' && pts.length > 1) {
      out.push(
        `<polyline fill="none" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''} ` +
          `points="${pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`,
      );
    }
    const r = spec.kind === 'scatter' ? 2.5 : 3.5;
    for (const [x, y] of pts)
      out.push(
        `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="${r}" fill="${color}"${spec.kind === 'scatter' ? ' fill-opacity="0.5"' : ''}/>`,
      );
    const ly = T + 4 + i * 14;
    out.push(
      `<rect x="${W - R - 150}" y="${ly}" width="10" height="10" fill="${color}"/><text x="${W - R - 136}" y="${ly + 9}">${escapeXml(s.name)}</text>`,
    );
  });
  out.push('</svg>');
  return out.join('\n');
}
