// The step worker's grammar hosts on stories260K: a compile goes to a host that serves no sequence
// (a new thread while every host serves some), masks come back per sequence, forks and releases
// follow their sequences, and a host that serves nothing any more takes the next compile.
import t from 'tap';

import { GrammarHosts } from '../../src/structured/grammar-hosts.js';
import type { ConstraintSpec } from '../../src/structured/types.js';
import { TextTokenizer } from '../../src/tokenizer.js';
import { loadTokenizerFiles } from '../../src/model/load.js';
import { MODEL_DIR } from '../fixtures/paths.js';

const A: ConstraintSpec = { type: 'choice', choices: ['yes'] };
const B: ConstraintSpec = { type: 'regex', pattern: '[0-9]{2}' };
const C: ConstraintSpec = { type: 'json_object' };

const allowed = (mask: Uint32Array) => {
  const out: number[] = [];
  mask.forEach((w, i) => {
    for (let b = 0; b < 32; b++) if ((w >>> b) & 1) out.push(i * 32 + b);
  });
  return out;
};

t.test('compiles go to hosts that serve no sequence; masks, forks and releases follow the sequences', async (t) => {
  const files = loadTokenizerFiles(MODEL_DIR);
  const vocabSize = files.config.vocabSize,
    words = Math.ceil(vocabSize / 32);
  const tok = new TextTokenizer({ ...files, path: MODEL_DIR });
  const hosts = new GrammarHosts({ modelPath: MODEL_DIR, vocabSize }, 2);
  t.teardown(() => hosts.close());

  await hosts.prepare(A);
  t.equal(hosts.numHosts, 1);
  hosts.create(1, A, []);
  hosts.wantMask(1);
  const m1 = (await hosts.flush(words)).get(1)!;
  const first = allowed(m1);
  t.ok(first.length > 0, 'a mask for sequence 1');
  const texts = await tok.decodeMany(
    first.map((id) => [id]),
    false,
  );
  t.ok(
    texts.every((s) => 'yes'.startsWith(s.trimStart()) && s.trim() !== ''),
    `only prefixes of "yes": ${JSON.stringify(texts)}`,
  );

  await hosts.prepare(B);
  t.equal(hosts.numHosts, 2, 'B compiled on a second host: the first serves sequence 1');
  hosts.create(2, B, []);
  hosts.fork(1, 3);
  hosts.accept(3, [first[0]]);
  hosts.wantMask(1);
  hosts.wantMask(2);
  hosts.wantMask(3);
  const masks = await hosts.flush(words);
  t.same(allowed(masks.get(1)!), first, 'sequence 1 is where it was');
  t.notSame(allowed(masks.get(3)!), first, 'its fork moved on by one token');
  const digits = await tok.decodeMany(
    allowed(masks.get(2)!).map((id) => [id]),
    false,
  );
  t.ok(
    digits.every((s) => /^\s*[0-9]{1,2}$/.test(s)),
    `B allows digits: ${JSON.stringify(digits)}`,
  );

  hosts.release(1);
  hosts.release(3);
  await hosts.flush(words);
  await hosts.prepare(C);
  t.equal(hosts.numHosts, 2, 'the first host serves nothing now and compiled C');
  hosts.create(4, C, []);
  hosts.wantMask(4);
  t.ok(allowed((await hosts.flush(words)).get(4)!).length > 0);

  await t.rejects(
    hosts.prepare({ type: 'grammar', grammar: 'root ::= undefined_rule' }),
    { code: 'WEFT_ERR_REQ_BAD_GRAMMAR' },
    'a bad grammar fails its prepare with its typed error, across the thread hop',
  );
});
