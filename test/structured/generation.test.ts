// Real generations under constraints, on stories260K and on a tiny synthetic model with the SmolLM2
// byte-level BPE tokenizer: 20 seeded generations at temperature 1 for each of the ≥ 40 JSON
// Schemas, each regex, each GBNF grammar (JSON, arithmetic, a list of choices, unicode) and a
// choice list, through the scheduler, the engine loop, the step worker's masks and native
// sampling. Every output must end on its own (finish reason `stop`; one cut at max_tokens is
// counted as a truncation and fails) and parse and validate (ajv for the schemas). Then, on each
// model: greedy under an allow-everything grammar equals unconstrained greedy, and n = 8 samples
// and a beam search of width 4 under a schema all validate (each sequence has its own matcher).
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import t from 'tap';

import type { BeamOutcome } from '../../src/scheduler/beam-group.js';
import type { ConstraintSpec } from '../../src/structured/types.js';
import { generate, generateN, openGenModel, textOf, type Generation } from './generate.js';
import { GRAMMARS, REGEXES } from './grammars.js';
import { SCHEMAS } from './schemas.js';

const NUM_GENERATIONS = 20;
const MAX_TOKENS = 400;

const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats.default(ajv);

interface Job {
  name: string;
  spec: ConstraintSpec;
  check: (text: string) => string | null; // null: the output is right; else what is wrong
}

function jsonCheck(schema: unknown): (text: string) => string | null {
  const validate = ajv.compile(schema as object);
  return (text) => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      return 'not JSON';
    }
    return validate(value) ? null : ajv.errorsText(validate.errors);
  };
}

function predicateCheck(ok: (s: string) => boolean): (text: string) => string | null {
  return (text) => {
    try {
      return ok(text) ? null : 'does not match';
    } catch (e) {
      return (e as Error).message;
    }
  };
}

const CHOICES = ['yes', 'no', 'maybe so', 'héllo "x"', '日本'];
const JOBS: Job[] = [
  ...SCHEMAS.map(
    ([name, schema]): Job => ({ name: `schema ${name}`, spec: { type: 'json_schema', schema: JSON.stringify(schema) }, check: jsonCheck(schema) }),
  ),
  ...REGEXES.map(([pattern, re]): Job => ({ name: `regex ${pattern}`, spec: { type: 'regex', pattern }, check: predicateCheck((s) => re.test(s)) })),
  ...GRAMMARS.map(([name, grammar, ok]): Job => ({ name: `grammar ${name}`, spec: { type: 'grammar', grammar }, check: predicateCheck(ok) })),
  { name: 'choice', spec: { type: 'choice', choices: CHOICES }, check: predicateCheck((s) => CHOICES.includes(s)) },
  { name: 'json_object', spec: { type: 'json_object' }, check: jsonCheck({ type: 'object' }) },
];

t.test('the table has at least 40 JSON Schemas', async (t) => {
  t.ok(SCHEMAS.length >= 40, `${SCHEMAS.length} schemas`);
});

for (const modelName of ['stories260K', 'smollm2'] as const) {
  t.test(`${modelName}: ${NUM_GENERATIONS} sampled generations per constraint end and validate`, async (t) => {
    const m = await openGenModel(modelName, 256);
    t.teardown(() => m.close());
    const seeds = Array.from({ length: NUM_GENERATIONS }, (_, i) => 1000 * (i + 1) + 7);
    // every constraint's generations at once: the engine batches them all
    const results = await Promise.all(JOBS.map(async (job) => ({ job, gens: await Promise.all(generate(m, job.spec, seeds, MAX_TOKENS)) })));
    let numTokens = 0,
      numTruncated = 0;
    for (const { job, gens } of results) {
      const problems: string[] = [];
      gens.forEach((g: Generation, i) => {
        numTokens += g.ids.length;
        if (g.finishReason === 'length') numTruncated++;
        const why = g.finishReason !== 'stop' ? `finished by ${g.finishReason}${g.errorCode ? ` (${g.errorCode})` : ''}` : job.check(g.text);
        if (why) problems.push(`seed ${seeds[i]}: ${why}: ${JSON.stringify(g.text.slice(0, 160))}`);
      });
      t.same(problems, [], `${job.name}: ${NUM_GENERATIONS} outputs end and are valid`);
    }
    t.comment(
      `${modelName}: ${JOBS.length} constraints × ${NUM_GENERATIONS} generations, ${numTokens} tokens, ` +
        `${numTruncated} truncated at max_tokens ${MAX_TOKENS}`,
    );
    t.equal(numTruncated, 0, 'no output was cut at max_tokens');

    // greedy under a grammar that allows any text equals unconstrained greedy (no bias here)
    const greedy = (constraint?: ConstraintSpec) =>
      m.loop.submit({ promptTokenIds: m.prompt, maxTokens: 48, ignoreEos: true, ...(constraint ? { constraint } : {}) });
    const ids = async (h: ReturnType<typeof greedy>) => {
      const out: number[] = [];
      for await (const ev of h.events) if (ev.tokenId !== null) out.push(ev.tokenId);
      return out;
    };
    const [free, any] = await Promise.all([ids(greedy()), ids(greedy({ type: 'grammar', grammar: 'root ::= [^\\x00]*' }))]);
    t.same(any, free, 'greedy under an allow-everything grammar = unconstrained greedy, batched together');

    // n > 1 and beam search: each sequence, forked from the first or from a beam, carries its own
    // grammar state; a shared one would break the others' JSON as soon as they diverge
    const schema = SCHEMAS.find(([name]) => name === 'array of objects, 1 to 3 items')![1];
    const spec: ConstraintSpec = { type: 'json_schema', schema: JSON.stringify(schema) };
    const check = jsonCheck(schema);
    const n = await Promise.all(generateN(m, spec, seeds.slice(0, 8), MAX_TOKENS));
    t.same(
      n.map((g) => (g.finishReason === 'stop' ? check(g.text) : g.finishReason)),
      Array(8).fill(null),
      'n = 8: every sample ends and validates',
    );
    t.ok(new Set(n.map((g) => g.text)).size > 1, 'and they differ');
    const beam = m.loop.submitBeam(
      { promptTokenIds: m.prompt, constraint: spec, logitBias: m.bias },
      { beamWidth: 4, maxTokens: MAX_TOKENS, lengthPenalty: 1, earlyStopping: true, numReturnSequences: 4 },
    );
    let outcome: BeamOutcome | undefined;
    for await (const ev of beam.events) if (ev.beam) outcome = ev.beam;
    t.equal(outcome?.hypotheses.length, 4, 'beam search returned 4 hypotheses');
    const texts = await Promise.all(outcome!.hypotheses.map((h) => textOf(m, h.tokens)));
    t.same(
      outcome!.hypotheses.map((h, i) => (h.finishReason === 'stop' ? check(texts[i]) : h.finishReason)),
      Array(4).fill(null),
      `beam width 4: every hypothesis ends and validates: ${JSON.stringify(texts)}`,
    );
  });
}
