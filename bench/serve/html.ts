// The self-contained HTML report: inline SVG charts, the per-point table and the comparison, no
// external scripts, styles or fonts; and the same charts as standalone .svg files on request.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { buildCharts, type ServerPoints } from './charts.js';
import { escapeXml } from './svg.js';
import { tableHeader, tableRow } from './table.js';

export interface ReportInput {
  title: string;
  command: string;
  servers: ServerPoints[];
  comparison?: string;
}

export function renderHtml(r: ReportInput): string {
  const charts = buildCharts(r.servers);
  const rows = [tableHeader(), ...r.servers.flatMap((s) => s.points.map(tableRow))].join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeXml(r.title)}</title>
<style>body{font-family:sans-serif;margin:24px;color:#222}pre{background:#f6f6f6;padding:10px;overflow-x:auto}
.charts{display:flex;flex-wrap:wrap;gap:12px}.charts figure{margin:0;border:1px solid #ddd}</style></head>
<body><h1>${escapeXml(r.title)}</h1>
<p><code>${escapeXml(r.command)}</code></p>
<h2>Points</h2><pre>${escapeXml(rows)}</pre>
${r.comparison ? `<h2>Side by side</h2><pre>${escapeXml(r.comparison)}</pre>` : ''}
<h2>Charts</h2><div class="charts">
${charts.map((c) => `<figure id="${c.id}">${c.svg}</figure>`).join('\n')}
</div></body></html>
`;
}

export function writeHtml(file: string, r: ReportInput): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, renderHtml(r));
}

export function writeSvgs(dir: string, servers: ServerPoints[]): string[] {
  mkdirSync(dir, { recursive: true });
  return buildCharts(servers).map((c) => {
    const file = join(dir, `${c.id}.svg`);
    writeFileSync(file, c.svg + '\n');
    return file;
  });
}
