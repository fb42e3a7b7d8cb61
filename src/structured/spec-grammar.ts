// A ConstraintSpec → an xgrammar Grammar. The one place that decides how each kind of constraint
// is expressed, shared by the route-side check (validate.ts: does it parse?) and the worker's
// compiler (xgrammar.ts: compile it against the vocabulary), so both see the same grammar.
import { WeftError } from '../errors.js';
import { ebnfString, gbnfToEbnf } from './gbnf.js';
import { rewriteJsonSchema } from './json-schema.js';
import { rewriteRegex } from './regex.js';
import type { ConstraintSpec } from './types.js';
import type { XgApi, XgGrammar } from './xgrammar-wasm.js';

// Whitespace between JSON elements: none, one space, or one newline with an indentation of up to
// 12 spaces (in pairs) or 4 tabs — compact and indented JSON fit, but no slot holds a long run
// (small models fall into whitespace loops when any run is allowed). xgrammar writes each of its
// whitespace slots as one of two expressions; each becomes this group of literals, written inline:
// as a rule reference it makes xgrammar 0.1.27 accept a missing comma in repeated members
// ({"a": "b" "c": 1}), and a bounded class repetition ([ \t]{0,20}) compiles several times slower.
// The lookahead assertions after strings (whitespace, then a delimiter) keep a plain class.
const XG_WHITESPACE = ['[ \\n\\t]{0,1}', '[ \\n\\t]*'];
const XG_LOOKAHEAD = ['(= [ \\n\\t]{0,1} ', '(= [ \\n\\t]* '];
const INDENTS = ['', ...Array.from({ length: 6 }, (_, i) => ' '.repeat(2 * i + 2)), ...Array.from({ length: 4 }, (_, i) => '\\t'.repeat(i + 1))];
const JSON_WHITESPACE = `("" | " " | ${INDENTS.map((x) => `"\\n${x}"`).join(' | ')})`;

async function jsonGrammar(api: XgApi, schema: string, strict: boolean): Promise<XgGrammar> {
  let ebnf = (await api.Testings._jsonSchemaToEBNF(schema, true, undefined, undefined, strict, 1)).replaceAll(XG_LOOKAHEAD[0], '(= LOOKAHEAD-WS ');
  for (const ws of XG_WHITESPACE) ebnf = ebnf.replaceAll(ws, JSON_WHITESPACE);
  return api.Grammar.fromEBNF(ebnf.replaceAll('(= LOOKAHEAD-WS ', XG_LOOKAHEAD[1]));
}

export function specKey(spec: ConstraintSpec): string {
  return JSON.stringify(spec);
}

export async function grammarOf(api: XgApi, spec: ConstraintSpec): Promise<XgGrammar> {
  switch (spec.type) {
    case 'json_object':
      // strict mode off: properties beyond the (empty) list are allowed
      return jsonGrammar(api, '{"type": "object"}', false);
    case 'json_schema':
      // strict mode on (xgrammar's default, as in vLLM): no properties or items the schema does not name
      return jsonGrammar(api, rewriteJsonSchema(spec.schema), true);
    case 'regex':
      return api.Grammar.fromStructuralTag({ type: 'structural_tag', format: { type: 'regex', pattern: rewriteRegex(spec.pattern) } });
    case 'choice':
      return api.Grammar.fromEBNF(`root ::= ${spec.choices.map(ebnfString).join(' | ')}\n`);
    case 'grammar':
      return api.Grammar.fromEBNF(gbnfToEbnf(spec.grammar));
    case 'token_ids':
    case 'bad_words':
      throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', `${spec.type} needs no grammar (structured/matchers.ts)`);
  }
}
