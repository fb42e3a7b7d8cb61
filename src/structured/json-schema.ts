// JSON Schema → the schema xgrammar gets. xgrammar (0.1.27) ignores keywords it does not know,
// generates wrong ranges for `number` bounds (a decimal point taken as "any character", bounds
// off by a fraction), lets raw control characters into strings with minLength/maxLength, and
// matches `pattern`s against the raw JSON text. So every subschema is checked here: keywords whose
// constraint would not be enforced are refused (so no output can break its schema), and the rest
// is rewritten into forms xgrammar enforces exactly (patterns through regex.ts, string lengths as
// a JSON-safe pattern). Errors are WEFT_ERR_REQ_BAD_JSON_SCHEMA naming the JSON pointer.
import { WeftError } from '../errors.js';
import { rewriteJsonStringPattern } from './regex.js';

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = { [k: string]: Json };

// Keywords that constrain values but that xgrammar would ignore.
const UNSUPPORTED = [
  'not',
  'if',
  'then',
  'else',
  'dependentSchemas',
  'dependentRequired',
  'dependencies',
  'contains',
  'minContains',
  'maxContains',
  'multipleOf',
  '$dynamicRef',
  '$recursiveRef',
];
const NUMBER_BOUNDS = ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'];
// A JSON string's content without escapes: what a length-limited string may hold.
const PLAIN_STRING_CHAR = '[^"\\\\\\x00-\\x1f]';

// Formats as patterns (xgrammar's own format grammars are looser: any month has 31 days, a
// second may be 60, an IPv4 octet may have leading zeros). Each is a subset of its format: every
// string it allows is valid (February has 28 days here, email local parts no quoted forms).
const DATE = '\\d{4}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|02-(?:0[1-9]|1\\d|2[0-8]))';
const TIME = '(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d{1,6})?(?:Z|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)';
const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,20}[a-z0-9])?';
export const FORMAT_PATTERNS: Record<string, string> = {
  date: DATE,
  time: TIME,
  'date-time': `${DATE}T${TIME}`,
  ipv4: `${OCTET}(?:\\.${OCTET}){3}`,
  email: `[a-z0-9_+-]{1,32}(?:\\.[a-z0-9_+-]{1,32}){0,3}@(?:${LABEL}\\.){1,3}[a-z]{2,6}`,
  hostname: `(?:${LABEL}\\.){0,3}${LABEL}`,
  uri: `https?://(?:${LABEL}\\.){1,3}[a-z]{2,6}(?:/[A-Za-z0-9._~-]{0,24}){0,4}`,
  uuid: '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}',
};

const isObj = (v: Json | undefined): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

function bad(path: string, why: string): never {
  throw new WeftError('WEFT_ERR_REQ_BAD_JSON_SCHEMA', `json schema at ${path || '/'}: ${why}`);
}

function typesOf(s: Obj): string[] {
  return typeof s.type === 'string' ? [s.type] : Array.isArray(s.type) ? s.type.filter((t): t is string => typeof t === 'string') : [];
}

function checkNumbers(s: Obj, path: string): void {
  const bounds = NUMBER_BOUNDS.filter((k) => s[k] !== undefined);
  if (bounds.length === 0) return;
  const types = typesOf(s);
  if (types.includes('number') || types.length === 0)
    bad(path, `${bounds.join(', ')} on numbers are not supported (the grammar engine's number ranges are wrong); use "type": "integer" or no bounds`);
  for (const k of bounds) if (typeof s[k] !== 'number' || !Number.isInteger(s[k])) bad(path, `${k} of an integer must be an integer`);
}

function rewriteStrings(s: Obj, path: string): void {
  const hasLength = s.minLength !== undefined || s.maxLength !== undefined;
  if (typeof s.pattern === 'string') {
    if (hasLength || s.format !== undefined) bad(path, 'pattern together with minLength, maxLength or format is not supported');
    s.pattern = rewriteJsonStringPattern(s.pattern, `pattern at ${path || '/'}`);
  } else if (typeof s.format === 'string' && FORMAT_PATTERNS[s.format] !== undefined) {
    if (hasLength) bad(path, 'minLength or maxLength together with format is not supported');
    s.pattern = FORMAT_PATTERNS[s.format];
    delete s.format;
  } else if (hasLength && typesOf(s).includes('string')) {
    if (s.format !== undefined) bad(path, 'minLength or maxLength together with format is not supported');
    const min = typeof s.minLength === 'number' ? s.minLength : 0;
    const max = typeof s.maxLength === 'number' ? String(s.maxLength) : '';
    s.pattern = `${PLAIN_STRING_CHAR}{${min},${max}}`;
    delete s.minLength;
    delete s.maxLength;
  }
  if (isObj(s.patternProperties)) {
    s.patternProperties = Object.fromEntries(
      Object.entries(s.patternProperties).map(([p, v]) => [rewriteJsonStringPattern(p, `patternProperties key at ${path || '/'}`), v]),
    );
  }
}

const SCHEMA_MAPS = ['properties', 'patternProperties', '$defs', 'definitions'];
const SCHEMA_LISTS = ['anyOf', 'oneOf', 'allOf', 'prefixItems'];
const SCHEMA_ONE = ['additionalProperties', 'propertyNames', 'unevaluatedProperties', 'unevaluatedItems', 'additionalItems'];

// Checks and rewrites one subschema in place, then its children.
function visit(node: Json, path: string): void {
  if (typeof node === 'boolean') return;
  if (!isObj(node)) bad(path, 'a schema must be an object or a boolean');
  for (const k of UNSUPPORTED) if (node[k] !== undefined) bad(path, `"${k}" is not supported`);
  if (node.uniqueItems === true) bad(path, '"uniqueItems": true is not supported');
  if (Array.isArray(node.allOf) && node.allOf.length > 1) bad(path, 'allOf with more than one schema is not supported');
  if (node.propertyNames !== undefined && node.additionalProperties !== undefined && node.additionalProperties !== true)
    bad(path, 'propertyNames together with additionalProperties is not supported (the values would go unchecked)');
  checkNumbers(node, path);
  rewriteStrings(node, path);
  for (const k of SCHEMA_MAPS) if (isObj(node[k])) for (const [name, sub] of Object.entries(node[k] as Obj)) visit(sub, `${path}/${k}/${name}`);
  for (const k of SCHEMA_LISTS) if (Array.isArray(node[k])) (node[k] as Json[]).forEach((sub, i) => visit(sub, `${path}/${k}/${i}`));
  for (const k of SCHEMA_ONE) if (node[k] !== undefined) visit(node[k], `${path}/${k}`);
  if (Array.isArray(node.items)) node.items.forEach((sub, i) => visit(sub, `${path}/items/${i}`));
  else if (node.items !== undefined) visit(node.items, `${path}/items`);
}

export function parseJsonSchema(text: string): Json {
  let schema: Json;
  try {
    schema = JSON.parse(text) as Json;
  } catch (e) {
    return bad('', `not valid JSON: ${(e as Error).message}`);
  }
  if (schema === false) bad('', 'the schema false accepts nothing');
  if (schema !== true && !isObj(schema)) bad('', 'a schema must be an object or a boolean');
  return schema;
}

// The JSON text of the schema in the form xgrammar enforces exactly, or a WEFT_ERR_REQ_BAD_JSON_SCHEMA.
export function rewriteJsonSchema(text: string): string {
  const schema = parseJsonSchema(text);
  visit(schema, '');
  return JSON.stringify(schema);
}
