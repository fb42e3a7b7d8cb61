// The regexes and GBNF grammars the structured-output tests run, each with the check its outputs
// must pass. Shared by the mask-level random walks (test/unit/structured-grammars.test.ts) and the
// real generations (test/structured/generation.test.ts).

// [pattern, the JavaScript regex outputs must match in full]. Runs of letters are bounded: a model
// with random weights picks among thousands of letter tokens and almost never the one way out.
export const REGEXES: [string, RegExp][] = [
  ['[a-z]{3}-\\d{2}', /^[a-z]{3}-\d{2}$/u],
  ['(foo|bar)+baz', /^(foo|bar)+baz$/u],
  ['\\w{1,12}@\\w{1,12}\\.com', /^\w{1,12}@\w{1,12}\.com$/u],
  ['https?://[a-z]{1,16}\\.(com|org|net)(/[a-z0-9]{1,8}){0,3}', /^https?:\/\/[a-z]{1,16}\.(com|org|net)(\/[a-z0-9]{1,8}){0,3}$/u],
  ['\\d{1,3}(\\.\\d{1,3}){3}', /^\d{1,3}(\.\d{1,3}){3}$/u],
  ['[ぁ-ゖ]{2,4}', /^[ぁ-ゖ]{2,4}$/u],
  ['[A-Z][a-z]{0,10}( [A-Z][a-z]{0,10}){0,2}', /^[A-Z][a-z]{0,10}( [A-Z][a-z]{0,10}){0,2}$/u],
  ['(yes|no|maybe)', /^(yes|no|maybe)$/u],
  ['[^0-9\\s]{1,5}x', /^[^0-9\t\n\v\f\r ]{1,5}x$/u], // \s is ASCII whitespace (JavaScript's has U+200A…)
  ['-?(0|[1-9]\\d*)(\\.\\d+)?', /^-?(0|[1-9]\d*)(\.\d+)?$/u],
  ['.{3,6}', /^[^\n\r]{3,6}$/u], // weft's `.` leaves out \n and \r (JavaScript's also U+2028/9)
  ['\\(\\d{3}\\) \\d{3}-\\d{4}', /^\(\d{3}\) \d{3}-\d{4}$/u],
  ['^a{2,}b?$', /^a{2,}b?$/u],
  ['(?:ab|cd)*e', /^(?:ab|cd)*e$/u],
  ['[\\u00e0-\\u00fc]+!', /^[\u00e0-\u00fc]+!$/u],
  ['(?<word>[a-z]{1,10})(, [a-z]{1,10}){0,3}', /^[a-z]{1,10}(, [a-z]{1,10}){0,3}$/u],
];

// GBNF grammars written for these tests (llama.cpp syntax: multi-line rules in parentheses,
// repetition braces, negated classes, `.`).
export const JSON_GBNF = String.raw`# any JSON value, laid out as llama.cpp's json.gbnf is (whitespace after each token)
root    ::= value
value   ::= object | array | string | number | ("true" | "false" | "null") ws
object  ::=
  "{" ws (
    string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws
array   ::= "[" ws ( value ("," ws value)* )? "]" ws
string  ::= "\"" char* "\"" ws
char    ::= [^"\\\x00-\x1F\x7F] | "\\" escape
escape  ::= ["\\/bfnrt] | "u" [0-9a-fA-F]{4}
number  ::= "-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]+)? ([eE] [-+]? [0-9]+)? ws
ws      ::= | " " | "\n" [ \t]{0,20}
`;
const ARITHMETIC_GBNF = String.raw`root   ::= expr
expr   ::= term (" " [-+] " " term)*
term   ::= factor (" " [*/] " " factor)*
factor ::= number | "(" expr ")" | "-" (number | "(" expr ")")
number ::= ("0" | [1-9] [0-9]{0,5}) ("." [0-9]{1,3})?
`;
const CHOICES_GBNF = String.raw`root ::= item ("," " "? item){0,3} "."
item ::= "apple" | "banana" | "cherry" | "dried fig"   # a list of choices
`;
const UNICODE_GBNF = String.raw`root ::= "say: " [à-ü]{1,3} " " [^a-z\n]{2} "|" .{1,4} ("!" | )`;

const isArithmetic = (s: string) => /^[0-9+\-*/(). ]+$/.test(s) && typeof Function(`"use strict"; return (${s});`)() === 'number';
export const GRAMMARS: [name: string, gbnf: string, check: (s: string) => boolean][] = [
  [
    'json',
    JSON_GBNF,
    (s) => {
      JSON.parse(s);
      return true;
    },
  ],
  ['arithmetic', ARITHMETIC_GBNF, isArithmetic],
  ['list of choices', CHOICES_GBNF, (s) => /^(apple|banana|cherry|dried fig)(, ?(apple|banana|cherry|dried fig)){0,3}\.$/.test(s)],
  ['unicode classes and dot', UNICODE_GBNF, (s) => /^say: [à-ü]{1,3} [^a-z\n]{2}\|.{1,4}!?$/su.test(s)],
];
