// JSON Schema constraints without a model: for each of 48 schemas, 20 seeded random walks through
// the matcher (a token drawn from each mask, as sampling at temperature 1 would), on the
// stories260K tokenizer (SentencePiece, byte fallback) and the SmolLM2 one (byte-level BPE); every
// decoded output must parse and validate against its schema with ajv.
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import t from 'tap';

import { SCHEMAS } from '../structured/schemas.js';
import { randomWalk, TOKENIZER_DIRS, walkEnv } from './structured-walk.js';

const WALKS = 20;

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
        if (w.problem || !w.isFinished) {
          problems.push(`seed ${seed}: ${w.problem ?? 'did not finish'}`);
          continue;
        }
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
