// The route-side check of constraint specs (each bad spec → its code, with a message naming the
// problem), and the translations it relies on: GBNF → xgrammar EBNF, the regex rewrite, the JSON
// Schema rewrite.
import t from 'tap';

import { gbnfToEbnf } from '../../src/structured/gbnf.js';
import { rewriteJsonSchema } from '../../src/structured/json-schema.js';
import { rewriteJsonStringPattern, rewriteRegex } from '../../src/structured/regex.js';
import type { ConstraintSpec } from '../../src/structured/types.js';
import { ConstraintValidator } from '../../src/structured/validate.js';

const schema = (s: unknown): ConstraintSpec => ({ type: 'json_schema', schema: typeof s === 'string' ? s : JSON.stringify(s) });

const BAD: [name: string, spec: ConstraintSpec, code: string, message: RegExp][] = [
  ['schema: not JSON', schema('{"type": '), 'WEFT_ERR_REQ_BAD_JSON_SCHEMA', /not valid JSON/],
  ['schema: unknown type', schema({ type: 'foo' }), 'WEFT_ERR_REQ_BAD_JSON_SCHEMA', /not a valid JSON Schema/],
  ['schema: properties not an object', schema({ type: 'object', properties: 5 }), 'WEFT_ERR_REQ_BAD_JSON_SCHEMA', /properties must be object/],
  ['schema: dangling $ref', schema({ $ref: '#/$defs/missing' }), 'WEFT_ERR_REQ_BAD_JSON_SCHEMA', /\$defs/],
  ['schema: minimum above maximum', schema({ type: 'integer', minimum: 5, maximum: 1 }), 'WEFT_ERR_REQ_BAD_JSON_SCHEMA', /minimum/],
  ['schema: minItems above maxItems', schema({ type: 'array', minItems: 3, maxItems: 1 }), 'WEFT_ERR_REQ_BAD_JSON_SCHEMA', /minItems/],
  ['schema: not', schema({ not: { type: 'string' } }), 'WEFT_ERR_REQ_BAD_JSON_SCHEMA', /"not" is not supported/],
  ['schema: uniqueItems', schema({ type: 'array', uniqueItems: true }), 'WEFT_ERR_REQ_BAD_JSON_SCHEMA', /uniqueItems/],
  [
    'schema: multipleOf in a property',
    schema({ type: 'object', properties: { a: { type: 'integer', multipleOf: 3 } } }),
    'WEFT_ERR_REQ_BAD_JSON_SCHEMA',
    /\/properties\/a: "multipleOf"/,
  ],
  ['schema: bounds on a number', schema({ type: 'number', maximum: 2.5 }), 'WEFT_ERR_REQ_BAD_JSON_SCHEMA', /on numbers are not supported/],
  ['schema: false', schema('false'), 'WEFT_ERR_REQ_BAD_JSON_SCHEMA', /accepts nothing/],
  ['schema: lookahead pattern', schema({ type: 'string', pattern: 'a(?=b)' }), 'WEFT_ERR_REQ_BAD_JSON_SCHEMA', /lookaround/],
  ['schema: pattern with a raw quote', schema({ type: 'string', pattern: 'a"b' }), 'WEFT_ERR_REQ_BAD_JSON_SCHEMA', /unescaped/],
  ['schema: pattern and maxLength', schema({ type: 'string', pattern: 'a+', maxLength: 3 }), 'WEFT_ERR_REQ_BAD_JSON_SCHEMA', /together/],
  ['regex: unclosed group', { type: 'regex', pattern: '(ab' }, 'WEFT_ERR_REQ_BAD_REGEX', /unclosed \(/],
  ['regex: backreference', { type: 'regex', pattern: '(a)\\1' }, 'WEFT_ERR_REQ_BAD_REGEX', /backreferences/],
  ['regex: \\p', { type: 'regex', pattern: '\\p{L}+' }, 'WEFT_ERR_REQ_BAD_REGEX', /Unicode property/],
  ['regex: quantifier on nothing', { type: 'regex', pattern: '*a' }, 'WEFT_ERR_REQ_BAD_REGEX', /nothing to repeat/],
  ['regex: word boundary', { type: 'regex', pattern: '\\bword' }, 'WEFT_ERR_REQ_BAD_REGEX', /word boundaries/],
  ['grammar: undefined rule', { type: 'grammar', grammar: 'root ::= value' }, 'WEFT_ERR_REQ_BAD_GRAMMAR', /line 1, column 10: rule "value"/],
  ['grammar: no root', { type: 'grammar', grammar: 'start ::= "a"' }, 'WEFT_ERR_REQ_BAD_GRAMMAR', /no rule named root/],
  ['grammar: unterminated string', { type: 'grammar', grammar: 'root ::= "abc' }, 'WEFT_ERR_REQ_BAD_GRAMMAR', /unterminated string/],
  ['grammar: missing ::=', { type: 'grammar', grammar: 'root = "a"' }, 'WEFT_ERR_REQ_BAD_GRAMMAR', /expected ::=/],
  ['grammar: token reference', { type: 'grammar', grammar: 'root ::= <[12]>' }, 'WEFT_ERR_REQ_BAD_GRAMMAR', /token references/],
  ['grammar: two rules named alike', { type: 'grammar', grammar: 'root ::= "a"\nroot ::= "b"' }, 'WEFT_ERR_REQ_BAD_GRAMMAR', /defined twice/],
  ['grammar: | on the next line', { type: 'grammar', grammar: 'root ::= "a"\n| "b"' }, 'WEFT_ERR_REQ_BAD_GRAMMAR', /line 2/],
  ['choice: empty list', { type: 'choice', choices: [] }, 'WEFT_ERR_REQ_BAD_CHOICE', /empty/],
];

t.test('bad specs are refused with their codes', async (t) => {
  const v = new ConstraintValidator();
  t.teardown(() => v.close());
  for (const [name, spec, code, message] of BAD) {
    const e = await v.check(spec).then(
      () => null,
      (x: { code?: string; message?: string }) => x,
    );
    t.equal(e?.code, code, `${name}: code`);
    t.match(e?.message ?? '', message, `${name}: message`);
  }
  for (const spec of [
    schema({ type: 'object', properties: { a: { type: 'string', format: 'email' } } }),
    { type: 'regex', pattern: '[a-z]+' },
    { type: 'choice', choices: ['a', ''] },
    { type: 'json_object' },
    { type: 'grammar', grammar: 'root ::= "x"' },
  ] as ConstraintSpec[])
    await t.resolves(v.check(spec), `${JSON.stringify(spec).slice(0, 60)} passes (after the failures above)`);
});

t.test('GBNF → xgrammar EBNF', async (t) => {
  t.equal(gbnfToEbnf('root ::= ("a" | ) x\nx ::= .'), 'root ::= ("a" | "") x\nx ::= [^]\n', 'empty alternative and dot');
  t.equal(gbnfToEbnf('root ::=\n  "{" (\n    "a"\n  )* "}"  # comment\n'), 'root ::= "{" ("a")* "}"\n', 'multi-line rule in parentheses');
  t.equal(
    gbnfToEbnf('root ::= "\\[x\\]" [\\]a-c]{2,3} 1rule\n1rule ::= "q"'),
    'root ::= "[x]" [\\]a-c]{2,3} r-1rule\nr-1rule ::= "q"\n',
    'string escapes, class escapes, repetition, a rule name starting with a digit',
  );
  t.equal(gbnfToEbnf('root ::= [é-ê]'), 'root ::= ("\\u00e9" | "\\u00ea")\n', 'non-ASCII class as an alternation');
  t.throws(() => gbnfToEbnf('root ::= [^é]'), { code: 'WEFT_ERR_REQ_BAD_GRAMMAR' }, 'negated non-ASCII class refused');
});

t.test('regex rewrite', async (t) => {
  t.equal(rewriteRegex('^a.b$'), 'a[^\\x0a\\x0d]b', 'anchors dropped, dot without newlines');
  t.equal(rewriteRegex('[à-â]x'), '(?:à|á|â)x', 'non-ASCII range as an alternation');
  t.equal(rewriteRegex('(?<n>a|)b*?'), '((?:a|))b*', 'named group, empty branch, lazy quantifier');
  t.equal(rewriteJsonStringPattern('.\\s["a]'), '[^\\x00-\\x1f"\\\\][ ][a]', 'JSON strings: no quote, backslash or controls');
});

t.test('JSON Schema rewrite', async (t) => {
  const out = JSON.parse(
    rewriteJsonSchema(
      JSON.stringify({
        type: 'object',
        properties: { s: { type: 'string', maxLength: 4 }, d: { type: 'string', format: 'date' }, p: { type: 'string', pattern: '^a.$' } },
      }),
    ),
  );
  t.equal(out.properties.s.pattern, '[^"\\\\\\x00-\\x1f]{0,4}', 'string lengths as a JSON-safe pattern');
  t.equal(out.properties.s.maxLength, undefined);
  t.match(out.properties.d.pattern, /^\\d\{4\}-/, 'date format as a pattern');
  t.equal(out.properties.p.pattern, 'a[^\\x00-\\x1f"\\\\]', 'pattern rewritten for the raw JSON text');
});
