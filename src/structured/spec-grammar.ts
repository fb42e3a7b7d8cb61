// A ConstraintSpec → an xgrammar Grammar. The one place that decides how each kind of constraint
// is expressed, shared by the route-side check (validate.ts: does it parse?) and the worker's
// compiler (xgrammar.ts: compile it against the vocabulary), so both see the same grammar.
import { ebnfString, gbnfToEbnf } from './gbnf.js';
import { rewriteJsonSchema } from './json-schema.js';
import { rewriteRegex } from './regex.js';
import type { ConstraintSpec } from './types.js';
import type { XgApi, XgGrammar } from './xgrammar-wasm.js';

// JSON output: any whitespace between elements (models write both compact and indented JSON),
// but at most this many characters of it in a row, so a model cannot pad forever.
export const JSON_MAX_WHITESPACE = 16;

export function specKey(spec: ConstraintSpec): string {
  return JSON.stringify(spec);
}

export async function grammarOf(api: XgApi, spec: ConstraintSpec): Promise<XgGrammar> {
  switch (spec.type) {
    case 'json_object':
      // strict mode off: properties beyond the (empty) list are allowed
      return api.Grammar.fromJSONSchema('{"type": "object"}', true, undefined, undefined, false, JSON_MAX_WHITESPACE);
    case 'json_schema':
      // strict mode on (xgrammar's default, as in vLLM): no properties or items the schema does not name
      return api.Grammar.fromJSONSchema(rewriteJsonSchema(spec.schema), true, undefined, undefined, true, JSON_MAX_WHITESPACE);
    case 'regex':
      return api.Grammar.fromStructuralTag({ type: 'structural_tag', format: { type: 'regex', pattern: rewriteRegex(spec.pattern) } });
    case 'choice':
      return api.Grammar.fromEBNF(`root ::= ${spec.choices.map(ebnfString).join(' | ')}\n`);
    case 'grammar':
      return api.Grammar.fromEBNF(gbnfToEbnf(spec.grammar));
  }
}
