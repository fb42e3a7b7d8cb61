// A value read from a model file, shown in an error message: JSON-like, but never longer than a
// line and never recursing deeper than a few levels, because the value is the file's choice (a
// config field may be a 100k-deep array or a 100 MB string, which JSON.stringify would turn into
// a RangeError or a 100 MB log line).
const MAX_CHARS = 120;
const MAX_ITEMS = 8;
const MAX_DEPTH = 3;

function brief(v: unknown, depth: number): string {
  if (typeof v === 'string') return JSON.stringify(v.length > MAX_CHARS ? `${v.slice(0, MAX_CHARS)}…` : v);
  if (typeof v !== 'object' || v === null) return String(v);
  if (depth >= MAX_DEPTH) return Array.isArray(v) ? '[…]' : '{…}';
  const more = (n: number) => (n > MAX_ITEMS ? ',…' : '');
  if (Array.isArray(v))
    return `[${v
      .slice(0, MAX_ITEMS)
      .map((x) => brief(x, depth + 1))
      .join(',')}${more(v.length)}]`;
  const keys = Object.keys(v);
  const parts = keys.slice(0, MAX_ITEMS).map((k) => `${brief(k, MAX_DEPTH)}:${brief((v as Record<string, unknown>)[k], depth + 1)}`);
  return `{${parts.join(',')}${more(keys.length)}}`;
}

export function describeValue(v: unknown): string {
  const s = brief(v, 0);
  return s.length > MAX_CHARS ? `${s.slice(0, MAX_CHARS)}…` : s;
}
