// Regular expressions (JavaScript syntax, a documented subset) rewritten for xgrammar's regex
// converter, which handles ASCII well but mismatches some things at the byte level: `.` and
// character ranges beyond ASCII (it takes any single byte for them), and classes that exclude
// non-ASCII characters. The rewrite keeps the language the same, or makes it a subset, so every
// output still matches the original pattern:
// - `.` becomes [^\n\r] (JavaScript's dot, minus U+2028/9, which it would also exclude); \s, \d
//   and \w are ASCII (JavaScript's \s also has Unicode spaces: [^\s] here allows U+00A0, U+200A…);
// - a class with non-ASCII ranges becomes an alternation of its characters (at most 1024);
// - inside a JSON string (schema `pattern`s, which xgrammar matches against the raw JSON text),
//   `"`, `\` and control characters are taken out of classes and dots, and \s means a space.
// Refused with WEFT_ERR_REQ_BAD_REGEX (or the caller's code): lookaround, backreferences, \b,
// \p{...}, flags, anchors other than a leading ^ and a trailing $, negated classes that list
// non-ASCII characters, and literals a JSON string cannot hold unescaped (in JSON mode).
import { WeftError, type ErrorCode } from '../errors.js';
import { Scanner } from './scanner.js';

export const MAX_NON_ASCII_CLASS = 1024;
const META = new Set([...'\\^$.|?*+()[]{}/-']);

export type Range = [number, number];

const SHORTHAND: Record<string, Range[]> = {
  d: [[0x30, 0x39]],
  w: [
    [0x30, 0x39],
    [0x41, 0x5a],
    [0x5f, 0x5f],
    [0x61, 0x7a],
  ],
  s: [
    [0x09, 0x0d],
    [0x20, 0x20],
  ],
};
const JSON_UNSAFE: Range[] = [
  [0x00, 0x1f],
  [0x22, 0x22],
  [0x5c, 0x5c],
];

export function subtract(ranges: Range[], cut: Range[]): Range[] {
  let out = ranges;
  for (const [a, b] of cut) {
    out = out.flatMap(([lo, hi]): Range[] => {
      if (b < lo || a > hi) return [[lo, hi]];
      return [...(lo < a ? [[lo, a - 1] as Range] : []), ...(hi > b ? [[b + 1, hi] as Range] : [])];
    });
  }
  return out;
}

// Sorted, with overlapping and adjacent ranges joined.
function merge(ranges: Range[]): Range[] {
  const out: Range[] = [];
  for (const [a, b] of [...ranges].sort((x, y) => x[0] - y[0])) {
    const last = out[out.length - 1];
    if (last && a <= last[1] + 1) last[1] = Math.max(last[1], b);
    else out.push([a, b]);
  }
  return out;
}

// One code point written inside an xgrammar class or as a literal.
function lit(cp: number, inClass: boolean): string {
  const ch = String.fromCodePoint(cp);
  if (cp < 0x20 || cp === 0x7f) return `\\x${cp.toString(16).padStart(2, '0')}`;
  if (META.has(ch) || (inClass && ch === ']')) return '\\' + ch;
  return ch;
}

class RegexRewriter extends Scanner {
  constructor(
    src: string,
    private readonly json: boolean,
    private readonly code: ErrorCode,
    private readonly what: string,
  ) {
    super(src);
  }

  fail(why: string, at = this.pos): never {
    throw new WeftError(this.code, `${this.what} ${JSON.stringify(this.src)}: at position ${at}: ${why}`);
  }

  rewrite(): string {
    if (this.peek() === '^') this.pos++;
    const out = this.#alternation(true);
    if (this.pos < this.src.length) this.fail(`unexpected ${JSON.stringify(this.peek())}`);
    return out;
  }

  #alternation(top: boolean): string {
    const branches = [this.#sequence(top)];
    while (this.peek() === '|') {
      this.pos++;
      branches.push(this.#sequence(top));
    }
    const joined = branches.join('|');
    return branches.some((b) => b === '') && top ? `(?:${joined})` : joined;
  }

  #sequence(top: boolean): string {
    let out = '';
    for (;;) {
      const c = this.peek();
      if (c === '' || c === '|' || c === ')') return out;
      if (c === '$') {
        const at = this.pos++;
        if (!(top && this.pos === this.src.length)) this.fail('$ is supported only at the end', at);
        return out;
      }
      const atom = this.#atom();
      out += atom + this.#quantifier();
    }
  }

  #quantifier(): string {
    const c = this.peek();
    let q = '';
    if (c === '*' || c === '+' || c === '?') {
      this.pos++;
      q = c;
    } else if (c === '{') {
      const m = /^\{(\d{1,6})(,(\d{0,6}))?\}/.exec(this.src.slice(this.pos));
      if (!m) return ''; // a literal brace, as JavaScript reads it
      if (m[3] && Number(m[3]) < Number(m[1])) this.fail(`${m[0]}: the maximum is below the minimum`);
      this.pos += m[0].length;
      q = m[0];
    } else {
      return '';
    }
    if (this.peek() === '?') this.pos++; // lazy: the same language
    if ('*+?{'.includes(this.peek()) && this.peek() !== '') this.fail('two quantifiers in a row');
    return q;
  }

  #atom(): string {
    const at = this.pos;
    const c = this.peek();
    if (c === '(') {
      this.pos++;
      if (this.src.startsWith('?:', this.pos)) this.pos += 2;
      else if (this.peek() === '?') {
        const named = /^\?<([A-Za-z_][A-Za-z0-9_]*)>/.exec(this.src.slice(this.pos));
        if (!named) this.fail('lookaround and group flags are not supported');
        this.pos += named[0].length;
      }
      const inner = this.#alternation(false);
      if (this.peek() !== ')') this.fail('unclosed (', at);
      this.pos++;
      return `(${inner.split('|').some((b) => b === '') ? `(?:${inner})` : inner})`;
    }
    if (c === '[') return this.#charClass();
    if (c === '.') {
      this.pos++;
      return this.#classText(
        subtract(
          [[0, 0x10ffff]],
          [
            [0x0a, 0x0a],
            [0x0d, 0x0d],
          ],
        ),
        false,
      );
    }
    if (c === '*' || c === '+' || c === '?' || (c === '{' && /^\{\d/.test(this.src.slice(this.pos)))) this.fail(`${c} has nothing to repeat`);
    if (c === '^') this.fail('^ is supported only at the start');
    if (c === ')') this.fail('unmatched )');
    if (c === '\\') {
      const cls = this.#shorthand();
      if (cls) return this.#classText(cls.ranges, cls.negated);
    }
    const cp = this.#char();
    if (this.json && JSON_UNSAFE.some(([a, b]) => cp >= a && cp <= b))
      this.fail('a JSON string cannot hold this character unescaped (the grammar engine matches the raw JSON text)', at);
    return lit(cp, false);
  }

  // \d \w \s and their negations
  #shorthand(): { ranges: Range[]; negated: boolean } | null {
    const e = this.src[this.pos + 1] ?? '';
    const base = SHORTHAND[e.toLowerCase()];
    if (!base || !'dwsDWS'.includes(e)) return null;
    this.pos += 2;
    const ranges = this.json && e === 's' ? [[0x20, 0x20] as Range] : base;
    return { ranges, negated: e !== e.toLowerCase() };
  }

  // One character, escapes decoded.
  #char(): number {
    const cp = this.codePoint();
    if (cp !== null) return cp;
    const e = this.src[this.pos + 1] ?? '';
    if (e === 'u') {
      // \u{…}
      const m = /^\\u\{([0-9a-fA-F]{1,6})\}/.exec(this.src.slice(this.pos));
      if (!m || parseInt(m[1], 16) > 0x10ffff) this.fail('bad \\u{...} escape');
      this.pos += m[0].length;
      return parseInt(m[1], 16);
    }
    const controls: Record<string, number> = { t: 9, n: 10, r: 13, f: 12, v: 11, '0': 0 };
    if (e in controls && !(e === '0' && /[0-9]/.test(this.src[this.pos + 2] ?? ''))) {
      this.pos += 2;
      return controls[e];
    }
    if (/[1-9k]/.test(e)) this.fail('backreferences are not supported');
    if (e === 'b' || e === 'B') this.fail('word boundaries (\\b, \\B) are not supported');
    if (e === 'p' || e === 'P') this.fail('Unicode property classes (\\p{...}) are not supported');
    if (e === '' || /[a-zA-Z0-9]/.test(e)) this.fail(`unknown escape \\${e}`);
    this.pos += 2;
    return e.codePointAt(0)!;
  }

  #charClass(): string {
    const member = () => {
      const sh = this.peek() === '\\' ? this.#shorthand() : null;
      if (sh?.negated) this.fail('\\D, \\W and \\S inside a class are not supported');
      return sh?.ranges ?? null;
    };
    const read = this.readClass(() => this.#char(), member);
    const { at, isNegated: negated } = read;
    let ranges = read.ranges;
    if (negated && ranges.some(([, b]) => b > 0x7f)) this.fail('a negated class may list only ASCII characters', at);
    if (!negated) ranges = ranges.filter(([a, b]) => b >= a);
    return this.#classText(ranges, negated);
  }

  // A set of characters (or its complement) in the form xgrammar matches correctly.
  #classText(ranges: Range[], negated: boolean): string {
    if (negated) {
      const cut = merge(this.json ? [...ranges, ...JSON_UNSAFE] : ranges);
      return `[^${cut.map(([a, b]) => (a === b ? lit(a, true) : `${lit(a, true)}-${lit(b, true)}`)).join('')}]`;
    }
    const safe = this.json ? subtract(ranges, JSON_UNSAFE) : ranges;
    const ascii = subtract(safe, [[0x80, 0x10ffff]]);
    const wide = subtract(safe, [[0, 0x7f]]);
    if (wide.length === 1 && wide[0][0] === 0x80 && wide[0][1] === 0x10ffff) {
      // every non-ASCII character: a negated class of the ASCII ones left out
      const asciiOut = subtract([[0, 0x7f]], ascii);
      return this.#classText(asciiOut, true);
    }
    const numWide = wide.reduce((n, [a, b]) => n + b - a + 1, 0);
    if (numWide > MAX_NON_ASCII_CLASS) this.fail(`a class with ${numWide} non-ASCII characters (at most ${MAX_NON_ASCII_CLASS} are supported)`);
    const parts: string[] = [];
    if (ascii.length > 0) parts.push(`[${ascii.map(([a, b]) => (a === b ? lit(a, true) : `${lit(a, true)}-${lit(b, true)}`)).join('')}]`);
    for (const [a, b] of wide) for (let cp = a; cp <= b; cp++) parts.push(lit(cp, false));
    if (parts.length === 0) this.fail('the class matches no character');
    return parts.length === 1 ? parts[0] : `(?:${parts.join('|')})`;
  }
}

// A regex spec's pattern, for xgrammar's regex converter.
export function rewriteRegex(pattern: string, code: ErrorCode = 'WEFT_ERR_REQ_BAD_REGEX', what = 'regex'): string {
  return new RegexRewriter(pattern, false, code, what).rewrite();
}

// A JSON Schema `pattern` (the text between the quotes of a JSON string), for xgrammar.
export function rewriteJsonStringPattern(pattern: string, what = 'pattern'): string {
  return new RegexRewriter(pattern, true, 'WEFT_ERR_REQ_BAD_JSON_SCHEMA', what).rewrite();
}
