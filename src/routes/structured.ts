// Structured output on every generating route: the request fields of each API that asks for it,
// turned into one ConstraintSpec (src/structured/types.ts), checked before any work, and set on the
// request so that it rides with the sequence to the engine worker.
//   OpenAI     response_format: {type: "json_object"} | {type: "json_schema", json_schema: {name, schema, strict}}
//   vLLM       structured_outputs: {json | regex | choice | grammar | json_object}; guided_json, guided_regex,
//              guided_choice, guided_grammar (its older names)
//   llama.cpp  grammar (GBNF), json_schema
//   Ollama     format: "json" | a JSON Schema
// One request asks for one constraint: two of them (allowed_token_ids included) is a 400.
import { WeftError } from '../errors.js';
import type { GenerationService, GenRequest } from '../generation.js';
import type { ConstraintSpec } from '../structured/types.js';
import { constraintValidator } from '../structured/validate.js';

const schemaValue = { anyOf: [{ type: 'object' }, { type: 'boolean' }], description: 'a JSON Schema' };

// The request-schema fragment (spread into the bodies in schemas.ts).
export const structuredFields = {
  response_format: {
    description: "OpenAI's: text, json_object, or json_schema {name, schema, strict}",
    type: 'object',
    nullable: true,
    additionalProperties: false,
    required: ['type'],
    properties: {
      type: { type: 'string', enum: ['text', 'json_object', 'json_schema'] },
      json_schema: {
        type: 'object',
        additionalProperties: false,
        required: ['name'],
        properties: {
          name: { type: 'string', maxLength: 256 },
          description: { type: 'string' },
          schema: schemaValue,
          strict: { type: 'boolean', nullable: true },
        },
      },
    },
  },
  structured_outputs: {
    description: "vLLM's: exactly one of json, regex, choice, grammar, json_object",
    type: 'object',
    nullable: true,
    additionalProperties: false,
    properties: {
      json: { anyOf: [schemaValue, { type: 'string' }] },
      regex: { type: 'string' },
      choice: { type: 'array', items: { type: 'string' } },
      grammar: { type: 'string' },
      json_object: { type: 'boolean' },
    },
  },
  guided_json: { anyOf: [schemaValue, { type: 'string' }], description: "vLLM's older name of structured_outputs.json" },
  guided_regex: { type: 'string' },
  guided_choice: { type: 'array', items: { type: 'string' } },
  guided_grammar: { type: 'string', description: 'GBNF (llama.cpp syntax), root rule `root`' },
  grammar: { type: 'string', description: "llama.cpp's: a GBNF grammar, root rule `root`" },
  json_schema: { anyOf: schemaValue.anyOf, description: "llama.cpp's: a JSON Schema the output must follow" },
  format: { anyOf: [{ type: 'string', enum: ['json', ''] }, { type: 'object' }], description: 'Ollama\'s: "json" or a JSON Schema' },
  bad_words: {
    type: 'array',
    maxItems: 64,
    items: { type: 'string', minLength: 1, maxLength: 256 },
    description: "vLLM's: words the output never contains (each word's tokens, at the start and after a space, never completed)",
  },
} as const;

type SchemaValue = boolean | Record<string, unknown>;

export interface StructuredFields {
  response_format?: {
    type: 'text' | 'json_object' | 'json_schema';
    json_schema?: { name: string; schema?: SchemaValue; strict?: boolean | null };
  } | null;
  structured_outputs?: { json?: SchemaValue | string; regex?: string; choice?: string[]; grammar?: string; json_object?: boolean } | null;
  guided_json?: SchemaValue | string;
  guided_regex?: string;
  guided_choice?: string[];
  guided_grammar?: string;
  grammar?: string;
  json_schema?: SchemaValue;
  format?: 'json' | '' | Record<string, unknown>;
  bad_words?: string[];
}

const jsonSchemaSpec = (s: SchemaValue | string): ConstraintSpec => ({ type: 'json_schema', schema: typeof s === 'string' ? s : JSON.stringify(s) });

// Every constraint the body asks for, named by the field that asked.
function requested(b: StructuredFields): [field: string, spec: ConstraintSpec][] {
  const out: [string, ConstraintSpec][] = [];
  const rf = b.response_format;
  if (rf?.type === 'json_object') out.push(['response_format', { type: 'json_object' }]);
  if (rf?.type === 'json_schema') {
    const schema = rf.json_schema?.schema;
    out.push(['response_format', schema === undefined ? { type: 'json_object' } : jsonSchemaSpec(schema)]);
  }
  const so = b.structured_outputs;
  if (so) {
    const kinds = (['json', 'regex', 'choice', 'grammar', 'json_object'] as const).filter((k) => so[k] !== undefined && so[k] !== false);
    if (kinds.length !== 1) {
      throw new WeftError(
        'WEFT_ERR_REQ_CONFLICTING_CONSTRAINTS',
        `structured_outputs takes exactly one of json, regex, choice, grammar, json_object; got ${kinds.join(', ') || 'none'}`,
      );
    }
    if (so.json !== undefined) out.push(['structured_outputs.json', jsonSchemaSpec(so.json)]);
    if (so.regex !== undefined) out.push(['structured_outputs.regex', { type: 'regex', pattern: so.regex }]);
    if (so.choice !== undefined) out.push(['structured_outputs.choice', { type: 'choice', choices: so.choice }]);
    if (so.grammar !== undefined) out.push(['structured_outputs.grammar', { type: 'grammar', grammar: so.grammar }]);
    if (so.json_object) out.push(['structured_outputs.json_object', { type: 'json_object' }]);
  }
  if (b.guided_json !== undefined) out.push(['guided_json', jsonSchemaSpec(b.guided_json)]);
  if (b.guided_regex !== undefined) out.push(['guided_regex', { type: 'regex', pattern: b.guided_regex }]);
  if (b.guided_choice !== undefined) out.push(['guided_choice', { type: 'choice', choices: b.guided_choice }]);
  if (b.guided_grammar !== undefined) out.push(['guided_grammar', { type: 'grammar', grammar: b.guided_grammar }]);
  if (b.grammar !== undefined && b.grammar !== '') out.push(['grammar', { type: 'grammar', grammar: b.grammar }]);
  if (b.json_schema !== undefined) out.push(['json_schema', jsonSchemaSpec(b.json_schema)]);
  if (b.format === 'json') out.push(['format', { type: 'json_object' }]);
  else if (typeof b.format === 'object') out.push(['format', jsonSchemaSpec(b.format)]);
  return out;
}

// vLLM's bad_words: each word's tokens as the text's start and after a space, the sequences the
// output may never complete (a constraint like the others: one per request).
async function badWordsSpec(svc: GenerationService, words: readonly string[]): Promise<ConstraintSpec> {
  const sequences = new Map<string, number[]>();
  for (const w of words)
    for (const text of [w.trimStart(), ` ${w.trimStart()}`]) {
      const ids = await svc.encode(text, false);
      if (ids.length > 0) sequences.set(ids.join(','), ids);
    }
  return { type: 'bad_words', sequences: [...sequences.values()] };
}

// The request with its constraint set and checked (a 400 naming the problem otherwise). `extra` is
// a constraint the route adds itself (tool calling with tool_choice required or a named function).
export async function constrain(
  svc: GenerationService,
  req: GenRequest,
  b: StructuredFields,
  extra?: [field: string, spec: ConstraintSpec],
): Promise<GenRequest> {
  const all = requested(b);
  if (extra) all.push(extra);
  if (b.bad_words?.length) all.push(['bad_words', await badWordsSpec(svc, b.bad_words)]);
  if (req.constraint) all.push(['allowed_token_ids', req.constraint]);
  if (all.length === 0) return req;
  if (all.length > 1)
    throw new WeftError('WEFT_ERR_REQ_CONFLICTING_CONSTRAINTS', `one constraint per request; this one asks for ${all.map(([f]) => f).join(' and ')}`);
  const [, spec] = all[0];
  await constraintValidator.check(spec);
  return { ...req, constraint: spec };
}
