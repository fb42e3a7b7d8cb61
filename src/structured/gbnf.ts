// llama.cpp's GBNF → xgrammar's EBNF. The two are close; this parser reads GBNF with llama.cpp's
// rules and writes each rule on one line in the form xgrammar's parser takes, so existing GBNF
// grammars work unchanged. What differs and is handled here:
// - a rule ends at a newline unless inside parentheses (GBNF); xgrammar wants each rule name at
//   the start of a line, so the output puts every rule on its own line;
// - `.` (any character) becomes [^]; a class with non-ASCII ranges becomes an alternation of its
//   characters (xgrammar mismatches such ranges); empty alternatives (`("a" | )`) become "";
// - string and class escapes are decoded and written again in xgrammar's escapes (GBNF allows
//   `\[` and `\]` in strings; xgrammar does not);
// - rule names may start with a digit in GBNF; they get a prefix (underscores are accepted too).
// Errors (a WeftError WEFT_ERR_REQ_BAD_GRAMMAR) name the GBNF line and column. Token references
// (`<[id]>`, `<|tok|>`) are not supported.
import { WeftError } from '../errors.js';
import { MAX_NON_ASCII_CLASS, subtract, type Range } from './regex.js';
import { Scanner } from './scanner.js';

// xgrammar matches a class with non-ASCII ranges byte by byte (any single byte in range counts as
// a character), but a negated class and single characters correctly: `.` is a negated empty class.
const ANY_CHAR = '[^]';

class GbnfParser extends Scanner {
  readonly rules = new Map<string, string>();
  readonly referenced = new Map<string, number>(); // rule name → position of its first use

  fail(why: string, at = this.pos): never {
    const before = this.src.slice(0, at);
    const line = before.split('\n').length,
      col = at - before.lastIndexOf('\n');
    throw new WeftError('WEFT_ERR_REQ_BAD_GRAMMAR', `grammar: line ${line}, column ${col}: ${why}`);
  }

  // spaces, tabs and comments; newlines too when `newlineOk` (inside parentheses, between rules)
  #space(newlineOk: boolean): void {
    while (this.pos < this.src.length) {
      const c = this.peek();
      if (c === '#') {
        while (this.pos < this.src.length && this.peek() !== '\n' && this.peek() !== '\r') this.pos++;
      } else if (c === ' ' || c === '\t' || (newlineOk && (c === '\n' || c === '\r'))) {
        this.pos++;
      } else {
        break;
      }
    }
  }

  #name(): string {
    const m = /^[a-zA-Z0-9_-]+/.exec(this.src.slice(this.pos, this.pos + 256));
    if (!m) this.fail(`expected a rule name, found ${JSON.stringify(this.peek() || 'the end')}`);
    this.pos += m[0].length;
    return /^[0-9]/.test(m[0]) ? `r-${m[0]}` : m[0];
  }

  parse(): Map<string, string> {
    this.#space(true);
    while (this.pos < this.src.length) {
      const at = this.pos;
      const name = this.#name();
      this.#space(false);
      if (!this.src.startsWith('::=', this.pos)) this.fail('expected ::=');
      this.pos += 3;
      this.#space(true);
      const body = this.#alternates(false);
      if (this.rules.has(name)) this.fail(`rule "${name}" is defined twice`, at);
      this.rules.set(name, body);
      if (this.pos < this.src.length && this.peek() !== '\n' && this.peek() !== '\r')
        this.fail(`expected the end of the rule, found ${JSON.stringify(this.peek())}`);
      this.#space(true);
    }
    if (!this.rules.has('root')) throw new WeftError('WEFT_ERR_REQ_BAD_GRAMMAR', 'grammar: there is no rule named root');
    for (const [name, at] of this.referenced) if (!this.rules.has(name)) this.fail(`rule "${name}" is used but not defined`, at);
    return this.rules;
  }

  #alternates(nested: boolean): string {
    const alts = [this.#sequence(nested)];
    while (this.peek() === '|') {
      this.pos++;
      this.#space(true);
      alts.push(this.#sequence(nested));
    }
    return alts.map((a) => a || '""').join(' | ');
  }

  #sequence(nested: boolean): string {
    const items: string[] = [];
    for (;;) {
      const c = this.peek();
      if (c === '"') items.push(this.#string());
      else if (c === '[') items.push(this.#charClass());
      else if (c === '.') {
        this.pos++;
        items.push(ANY_CHAR);
      } else if (c === '(') {
        this.pos++;
        this.#space(true);
        const inner = this.#alternates(true);
        if (this.peek() !== ')') this.fail('expected )');
        this.pos++;
        items.push(`(${inner})`);
      } else if (c === '*' || c === '+' || c === '?') {
        if (items.length === 0) this.fail(`${c} has nothing to repeat`);
        this.pos++;
        items[items.length - 1] += c;
      } else if (c === '{') {
        if (items.length === 0) this.fail('{ has nothing to repeat');
        items[items.length - 1] += this.#braces();
      } else if (c === '<' || c === '!') {
        this.fail('token references (<...>) are not supported');
      } else if (/[a-zA-Z0-9_-]/.test(c)) {
        const at = this.pos;
        const name = this.#name();
        if (!this.referenced.has(name)) this.referenced.set(name, at);
        items.push(name);
      } else {
        break;
      }
      this.#space(nested);
    }
    return items.join(' ');
  }

  #braces(): string {
    this.pos++;
    this.#space(true);
    const int = (): number => {
      const m = /^[0-9]{1,9}/.exec(this.src.slice(this.pos, this.pos + 10));
      if (!m) this.fail('expected an integer');
      this.pos += m[0].length;
      this.#space(true);
      return Number(m[0]);
    };
    const min = int();
    let out = `{${min}}`;
    if (this.peek() === ',') {
      this.pos++;
      this.#space(true);
      if (this.peek() === '}') out = `{${min},}`;
      else {
        const max = int();
        if (max < min) this.fail(`{${min},${max}}: the maximum is below the minimum`);
        out = `{${min},${max}}`;
      }
    }
    if (this.peek() !== '}') this.fail('expected }');
    this.pos++;
    return out;
  }

  // One character of a string or class, escapes decoded (llama.cpp's parse_char).
  #char(): number {
    const cp = this.codePoint();
    if (cp !== null) return cp;
    const e = this.src[this.pos + 1] ?? '';
    const simple: Record<string, number> = { t: 9, r: 13, n: 10, '\\': 92, '"': 34, '[': 91, ']': 93 };
    if (!(e in simple)) this.fail(`unknown escape \\${e}`);
    this.pos += 2;
    return simple[e];
  }

  #string(): string {
    this.pos++;
    let out = '';
    while (this.peek() !== '"') {
      if (this.peek() === '') this.fail('unterminated string');
      out += escapeChar(this.#char(), '"\\');
    }
    this.pos++;
    return `"${out}"`;
  }

  #charClass(): string {
    const { at, isNegated: negated, ranges } = this.readClass(() => this.#char());
    const one = (cp: number) => escapeChar(cp, CLASS_SPECIAL);
    const text = (rs: Range[]) => rs.map(([a, b]) => (a === b ? one(a) : `${one(a)}-${one(b)}`)).join('');
    if (negated) {
      if (ranges.some(([, b]) => b > 0x7f)) this.fail('a negated class may list only ASCII characters', at);
      return `[^${text(ranges)}]`;
    }
    const wide = subtract(ranges, [[0, 0x7f]]);
    const numWide = wide.reduce((n, [a, b]) => n + b - a + 1, 0);
    if (numWide === 0) return `[${text(ranges)}]`;
    if (numWide > MAX_NON_ASCII_CLASS) this.fail(`a class with ${numWide} non-ASCII characters (at most ${MAX_NON_ASCII_CLASS} are supported)`, at);
    const ascii = subtract(ranges, [[0x80, 0x10ffff]]);
    const parts = ascii.length > 0 ? [`[${text(ascii)}]`] : [];
    for (const [a, b] of wide) for (let cp = a; cp <= b; cp++) parts.push(`"${escapeChar(cp, '"\\')}"`);
    return `(${parts.join(' | ')})`;
  }
}

const CLASS_SPECIAL = ']\\-^';

// A code point as xgrammar's EBNF writes it inside a string or class: printable ASCII as is
// (with `special` escaped), everything else as \u or \U.
export function escapeChar(cp: number, special: string): string {
  const ch = String.fromCodePoint(cp);
  if (cp >= 0x20 && cp < 0x7f) return special.includes(ch) ? '\\' + ch : ch;
  return cp <= 0xffff ? `\\u${cp.toString(16).padStart(4, '0')}` : `\\U${cp.toString(16).padStart(8, '0')}`;
}

// An xgrammar string literal for arbitrary text.
export function ebnfString(text: string): string {
  let out = '';
  for (const ch of text) out += escapeChar(ch.codePointAt(0)!, '"\\');
  return `"${out}"`;
}

// GBNF text → xgrammar EBNF text (root rule `root`), or a WEFT_ERR_REQ_BAD_GRAMMAR.
export function gbnfToEbnf(gbnf: string): string {
  const rules = new GbnfParser(gbnf).parse();
  return [...rules].map(([name, body]) => `${name} ::= ${body}`).join('\n') + '\n';
}
