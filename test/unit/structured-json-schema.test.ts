// JSON Schema constraints without a model: for each of 48 schemas, 20 seeded random walks through
// the matcher (a token drawn from each mask, as sampling at temperature 1 would), on the
// stories260K tokenizer (SentencePiece, byte fallback) and the SmolLM2 one (byte-level BPE); every
// decoded output must parse and validate against its schema with ajv.
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import t from 'tap';

import { randomWalk, TOKENIZER_DIRS, walkEnv } from './structured-walk.js';

const WALKS = 20;

const obj = (properties: Record<string, unknown>, required = Object.keys(properties), extra: object = {}) =>
  ({ type: 'object', properties, required, ...extra });
const point = obj({ x: { type: 'integer' }, y: { type: 'integer' } });
const fmt = (format: string) => ({ type: 'string', format });

export const SCHEMAS: [name: string, schema: unknown][] = [
  ['flat object', obj({ name: { type: 'string' }, age: { type: 'integer' } })],
  ['nested object', obj({ user: obj({ id: { type: 'integer' }, tags: { type: 'array', items: { type: 'string' } } }, ['id']) })],
  ['four levels deep', obj({ a: obj({ b: obj({ c: obj({ d: { type: 'boolean' } }) }) }) })],
  ['optional properties', obj({ a: { type: 'string' }, b: { type: 'integer' }, c: { type: 'boolean' } }, [])],
  ['array of integers, 2 to 4 items', { type: 'array', items: { type: 'integer' }, minItems: 2, maxItems: 4 }],
  ['array of objects, 1 to 3 items', { type: 'array', items: point, minItems: 1, maxItems: 3 }],
  ['array of arrays', { type: 'array', items: { type: 'array', items: { type: 'integer' }, maxItems: 3 }, maxItems: 3 }],
  ['exactly 3 items', { type: 'array', items: { enum: ['x', 'y'] }, minItems: 3, maxItems: 3 }],
  ['tuple (prefixItems)', { type: 'array', prefixItems: [{ type: 'string' }, { type: 'integer' }, { type: 'boolean' }], items: false }],
  ['string enum', { enum: ['red', 'green', 'blue'] }],
  ['mixed enum', { enum: [1, 'two', null, true, 4.5] }],
  ['enum property', obj({ status: { enum: ['open', 'closed', 'pending'] }, id: { type: 'integer' } })],
  ['string const', { const: 'fixed value' }],
  ['const property', obj({ version: { const: 2 }, kind: { const: 'event' } })],
  ['anyOf string or integer', { anyOf: [{ type: 'string' }, { type: 'integer' }] }],
  ['oneOf tagged union', {
    oneOf: [obj({ kind: { const: 'circle' }, r: { type: 'integer' } }),
      obj({ kind: { const: 'rect' }, w: { type: 'integer' }, h: { type: 'integer' } })],
  }],
  ['nullable object', { anyOf: [point, { type: 'null' }] }],
  ['type list', { type: ['string', 'null'] }],
  ['$ref and $defs', { $defs: { point }, ...obj({ from: { $ref: '#/$defs/point' }, to: { $ref: '#/$defs/point' } }) }],
  ['anyOf of $refs',
    { $defs: { a: obj({ a: { type: 'integer' } }), b: obj({ b: { type: 'string' } }) }, anyOf: [{ $ref: '#/$defs/a' }, { $ref: '#/$defs/b' }] }],
  ['recursive $ref (tree)', {
    $defs: { node: obj({ value: { type: 'integer' }, children: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 } }) },
    $ref: '#/$defs/node',
  }],
  ['draft-07 definitions', { definitions: { id: { type: 'integer' } }, ...obj({ id: { $ref: '#/definitions/id' } }) }],
  ['number', { type: 'number' }],
  ['integer', { type: 'integer' }],
  ['integer range -10..10', { type: 'integer', minimum: -10, maximum: 10 }],
  ['integer exclusive range', { type: 'integer', exclusiveMinimum: 0, exclusiveMaximum: 100 }],
  ['integer minimum only', { type: 'integer', minimum: 0 }],
  ['numbers in an object', obj({ lat: { type: 'number' }, lon: { type: 'number' }, count: { type: 'integer', minimum: 1, maximum: 999 } })],
  ['boolean', { type: 'boolean' }],
  ['null', { type: 'null' }],
  ['string', { type: 'string' }],
  ['string pattern', { type: 'string', pattern: '^[A-Z]{3}-\\d{3}$' }],
  ['string length 2..8', { type: 'string', minLength: 2, maxLength: 8 }],
  ['string format date', { type: 'string', format: 'date' }],
  ['string format uuid', { type: 'string', format: 'uuid' }],
  ['string formats time, date-time, ipv4', obj({ t: fmt('time'), dt: fmt('date-time'), ip: fmt('ipv4') })],
  ['string formats email, uri, hostname', obj({ e: fmt('email'), u: fmt('uri'), h: fmt('hostname') })],
  ['map (additionalProperties)', { type: 'object', additionalProperties: { type: 'integer' } }],
  ['closed object', obj({ a: { type: 'integer' } }, ['a'], { additionalProperties: false })],
  ['empty object only', { type: 'object', additionalProperties: false }],
  ['patternProperties', { type: 'object', patternProperties: { '^x_[a-z]+$': { type: 'integer' } }, additionalProperties: false }],
  ['propertyNames', { type: 'object', propertyNames: { pattern: '^[a-z]{1,8}$' } }],
  ['min/max properties', { type: 'object', additionalProperties: { type: 'string' }, minProperties: 1, maxProperties: 2 }],
  ['escapes in strings', { enum: ['a "quoted" word', 'back\\slash', 'new\nline', 'tab\there', 'slash/'] }],
  ['unicode enum', { enum: ['héllo', '日本語', 'emoji 😀', 'Ünïcödé ✓'] }],
  ['unicode pattern', { type: 'string', pattern: '^[à-ü]{2,5}$' }],
  ['object of unicode and escapes', obj({ greeting: { const: 'grüß "dich"' }, note: { type: 'string' } })],
  ['allOf with one schema', { allOf: [obj({ id: { type: 'integer' } })] }],
  ['any JSON value', {}],
];

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);

t.test('the schema table has at least 40 schemas', async (t) => {
  t.ok(SCHEMAS.length >= 40, `${SCHEMAS.length} schemas`);
});

for (const [tokName, dir] of TOKENIZER_DIRS) {
  t.test(`${tokName}: ${WALKS} random walks per schema validate`, async (t) => {
    const env = await walkEnv(dir);
    for (const [name, schema] of SCHEMAS) {
      const validate = ajv.compile(schema as object);
      const problems: string[] = [];
      for (let seed = 1; seed <= WALKS; seed++) {
        const m = await env.compiler.matcher({ type: 'json_schema', schema: JSON.stringify(schema) });
        const w = await randomWalk(env, m, seed * 7919 + name.length);
        m.dispose();
        if (w.problem || !w.isFinished) { problems.push(`seed ${seed}: ${w.problem ?? 'did not finish'}`); continue; }
        let value: unknown;
        try {
          value = JSON.parse(w.text);
        } catch {
          problems.push(`seed ${seed}: not JSON: ${JSON.stringify(w.text.slice(0, 200))}`);
          continue;
        }
        if (!validate(value)) problems.push(`seed ${seed}: ${ajv.errorsText(validate.errors)}: ${JSON.stringify(w.text.slice(0, 200))}`);
      }
      t.same(problems, [], `${name}: all ${WALKS} outputs parse and validate`);
    }
  });
}
