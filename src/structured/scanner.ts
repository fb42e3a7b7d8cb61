// What the GBNF and regex parsers share: a position in a source text, and reading a code point or a
// hex escape (\xHH, \uHHHH, \UHHHHHHHH) there. Each parser says how it reports an error.
export abstract class Scanner {
  protected pos = 0;

  constructor(protected readonly src: string) {}

  abstract fail(why: string, at?: number): never;

  protected peek(): string {
    return this.src[this.pos] ?? '';
  }

  // The code point at the position: a character as it is, or a \x \u \U escape (consumed); null,
  // with the position left on the backslash, for the other escapes, which each parser reads itself.
  protected codePoint(): number | null {
    const c = this.peek();
    if (c === '') this.fail('unexpected end');
    if (c !== '\\') return this.literal();
    const letter = this.src[this.pos + 1];
    if (letter === 'x') return this.hexEscape(2);
    if (letter === 'u' && this.src[this.pos + 2] !== '{') return this.hexEscape(4);
    if (letter === 'U') return this.hexEscape(8);
    return null;
  }

  // A character class at the position ("[", an optional "^", members, "]"): its ranges. `char` reads
  // one character; `member` may read a member of its own (a regex's \d) or return null.
  protected readClass(char: () => number, member: () => [number, number][] | null = () => null) {
    const at = this.pos++;
    const isNegated = this.peek() === '^';
    if (isNegated) this.pos++;
    const ranges: [number, number][] = [];
    while (this.peek() !== ']') {
      if (this.peek() === '') this.fail('unterminated character class', at);
      const own = member();
      if (own) {
        ranges.push(...own);
        continue;
      }
      const lo = char();
      let hi = lo;
      if (this.peek() === '-' && this.pos + 1 < this.src.length && this.src[this.pos + 1] !== ']') {
        this.pos++;
        hi = char();
        if (hi < lo) this.fail('a character range ends below its start');
      }
      ranges.push([lo, hi]);
    }
    this.pos++;
    return { at, isNegated, ranges };
  }

  // The code point at the position, taken as it is.
  protected literal(): number {
    const cp = this.src.codePointAt(this.pos)!;
    this.pos += cp > 0xffff ? 2 : 1;
    return cp;
  }

  // An escape at the position: a backslash, a letter and `n` hex digits.
  protected hexEscape(n: number): number {
    const letter = this.src[this.pos + 1];
    const h = this.src.slice(this.pos + 2, this.pos + 2 + n);
    if (!new RegExp(`^[0-9a-fA-F]{${n}}$`).test(h)) this.fail(`\\${letter} needs ${n} hex digits`);
    this.pos += 2 + n;
    const cp = parseInt(h, 16);
    if (cp > 0x10ffff) this.fail('code point above U+10FFFF');
    return cp;
  }
}
