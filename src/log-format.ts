// The log on a terminal: one readable line per pino record (time, level, message, then the other
// fields as key=value) instead of JSON; JSON stays the format for files, pipes and collectors.
const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const COLORS: Record<number, string> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '35' };
const HIDDEN = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'v']);

function value(v: unknown): string {
  if (typeof v === 'string') return /[\s=]/.test(v) ? JSON.stringify(v) : v;
  if (v && typeof v === 'object' && 'message' in v) return JSON.stringify((v as { message: unknown }).message);
  return JSON.stringify(v);
}

// One JSON record → one line ('' for what is not a record: it passes through unchanged).
export function prettyLine(json: string, color = false): string {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const level = Number(r.level);
  const name = (LEVELS[level] ?? String(r.level)).padEnd(5);
  const time = typeof r.time === 'number' ? new Date(r.time).toISOString().slice(11, 23) : '';
  const rest = Object.entries(r)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${value(v)}`);
  const stack = typeof (r.err as { stack?: unknown } | undefined)?.stack === 'string' ? `\n${(r.err as { stack: string }).stack}` : '';
  const lvl = color && COLORS[level] ? `\x1b[${COLORS[level]}m${name}\x1b[0m` : name;
  return `${time} ${lvl} ${String(r.msg ?? '')}${rest.length ? '  ' + rest.join(' ') : ''}${stack}\n`;
}

export function prettyLogStream(out: NodeJS.WriteStream = process.stdout): { write(line: string): void } {
  return { write: (line) => out.write(prettyLine(line.trimEnd(), !!out.isTTY)) };
}
