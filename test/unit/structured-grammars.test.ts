// Regex, GBNF and choice constraints without a model, on both tokenizers: seeded random walks whose
// decoded outputs must match (JavaScript regexes, JSON.parse, an arithmetic evaluation); a grammar
// that allows any text; matcher mechanics (fork, refused tokens, padding ids, the compile cache).
import t, { type Test } from 'tap';

import { XgrammarCompiler } from '../../src/structured/xgrammar.js';
import type { ConstraintSpec } from '../../src/structured/types.js';
import { grammarVocabFromJson } from '../../src/structured/vocab.js';
import { loadTokenizerFiles } from '../../src/model/load.js';
import { GRAMMARS, JSON_GBNF, REGEXES } from '../structured/grammars.js';
import { allowedTokens, mulberry32, randomWalk, TOKENIZER_DIRS, walkEnv, type WalkEnv } from './structured-walk.js';

const WALKS = 20;

async function walksMatch(t: Test, env: WalkEnv, spec: ConstraintSpec, name: string, check: (s: string) => boolean): Promise<void> {
  const problems: string[] = [];
  for (let seed = 1; seed <= WALKS; seed++) {
    const m = await env.compiler.matcher(spec);
    const w = await randomWalk(env, m, seed * 104729 + name.length);
    m.dispose();
    let ok = false;
    try {
      ok = !w.problem && w.isFinished && check(w.text);
    } catch {
      ok = false;
    }
    if (!ok) problems.push(`seed ${seed}: ${w.problem ?? (w.isFinished ? '' : 'did not finish; ')}${JSON.stringify(w.text.slice(0, 160))}`);
  }
  t.same(problems, [], `${name}: all ${WALKS} outputs match`);
}

for (const [tokName, dir] of TOKENIZER_DIRS) {
  t.test(tokName, async (t) => {
    const env = await walkEnv(dir, 40); // 40 ids past the tokenizer, as a padded embedding has
    const numTokens = env.tokenizer.vocabSize();

    t.test('regexes', async (t) => {
      for (const [pattern, re] of REGEXES) await walksMatch(t, env, { type: 'regex', pattern }, `regex ${pattern}`, (s) => re.test(s));
    });

    t.test('GBNF grammars', async (t) => {
      for (const [name, grammar, check] of GRAMMARS) await walksMatch(t, env, { type: 'grammar', grammar }, `grammar ${name}`, check);
    });

    t.test('choices and json_object', async (t) => {
      const choices = ['yes', 'no', 'maybe so', 'héllo "x"', ''];
      await walksMatch(t, env, { type: 'choice', choices }, 'choice', (s) => choices.includes(s));
      await walksMatch(t, env, { type: 'json_object' }, 'json_object', (s) => {
        const v = JSON.parse(s);
        return typeof v === 'object' && v !== null && !Array.isArray(v);
      });
    });

    t.test('a single choice forces its tokens, then only EOS', async (t) => {
      const m = await env.compiler.matcher({ type: 'choice', choices: ['x'] });
      const mask = new Uint32Array(Math.ceil(env.vocabSize / 32));
      m.fillNextTokenMask(mask);
      const first = allowedTokens(mask, env.vocabSize);
      t.ok(first.length >= 1 && first.length <= 2, `one spelling of "x" (a byte token too where the vocabulary has one): ${first}`);
      const texts = await env.tokenizer.decodeMany(first.map((id) => [id]));
      const x = first[texts.indexOf('x')];
      t.ok(x !== undefined, 'the token "x" is among them');
      t.ok(m.acceptToken(x));
      m.fillNextTokenMask(mask);
      t.same(allowedTokens(mask, env.vocabSize), [...env.stop], 'then only the stop tokens');
      m.dispose();
    });

    t.test('a grammar that allows any text', async (t) => {
      const m = await env.compiler.matcher({ type: 'grammar', grammar: 'root ::= .*' });
      const mask = new Uint32Array(Math.ceil(env.vocabSize / 32));
      m.fillNextTokenMask(mask);
      const allowed = new Set(allowedTokens(mask, env.vocabSize));
      const texts = await env.tokenizer.decodeMany(
        Array.from({ length: numTokens }, (_, i) => [i]),
        true,
      );
      const whole = texts.map((s, i) => (s !== '' && !s.includes('\uFFFD') ? i : -1)).filter((i) => i >= 0);
      t.same(
        whole.filter((i) => !allowed.has(i)),
        [],
        `every token of whole characters is allowed (${whole.length})`,
      );
      for (const s of env.stop) t.ok(allowed.has(s), `stop token ${s} is allowed`);
      const vocab = grammarVocabFromJson(loadTokenizerFiles(dir).tokenizerJson, [...env.stop]);
      const specials = vocab.tokens.map((tok, i) => (tok === '' && !env.stop.has(i) ? i : -1)).filter((i) => i >= 0 && allowed.has(i));
      t.same(specials, [], 'no special token other than the stop tokens');
      t.same(
        [...allowed].filter((i) => i >= numTokens),
        [],
        'no id past the tokenizer',
      );
      const w = await randomWalk(env, m, 99, 200, 200);
      t.equal(w.problem, undefined, 'a long walk never meets an empty mask');
      t.notOk(w.text.includes('\uFFFD'), 'and decodes to valid UTF-8');
      m.dispose();
    });

    t.test('fork: the same state, then independent', async (t) => {
      const spec: ConstraintSpec = { type: 'grammar', grammar: JSON_GBNF };
      const m = await env.compiler.matcher(spec);
      const words = Math.ceil(env.vocabSize / 32);
      const a = new Uint32Array(words),
        b = new Uint32Array(words);
      const rand = mulberry32(5);
      const step = (mask: Uint32Array) => {
        const allowed = allowedTokens(mask, env.vocabSize, (id) => !env.stop.has(id));
        return allowed[Math.floor(rand() * allowed.length)];
      };
      for (let i = 0; i < 12; i++) {
        m.fillNextTokenMask(a);
        t.ok(m.acceptToken(step(a)));
      }
      const f = await m.fork();
      for (let i = 0; i < 8; i++) {
        m.fillNextTokenMask(a);
        f.fillNextTokenMask(b);
        t.same(b, a, `step ${i}: the fork's mask equals the original's`);
        const next = step(a);
        t.ok(m.acceptToken(next) && f.acceptToken(next));
      }
      m.fillNextTokenMask(a);
      const before = Uint32Array.from(a);
      m.dispose();
      f.fillNextTokenMask(b);
      t.same(b, before, 'the fork outlives the original');
      const refused = allowedTokens(
        b.map((w) => ~w >>> 0),
        numTokens,
      )[0];
      t.notOk(f.acceptToken(refused), 'a token outside the mask is refused');
      t.notOk(f.acceptToken(env.vocabSize + 5), 'an id outside the vocabulary is refused');
      f.fillNextTokenMask(a);
      t.same(a, before, '…and the state is unchanged');
      f.dispose();
    });
  });
}

t.test('compiled grammars are cached per spec; eviction waits for their matchers', async (t) => {
  const files = loadTokenizerFiles(TOKENIZER_DIRS[0][1]);
  const vocab = grammarVocabFromJson(files.tokenizerJson, files.config.eosTokenIds);
  const c = await XgrammarCompiler.create(vocab, files.config.vocabSize, { maxCachedGrammars: 2 });
  const specs: ConstraintSpec[] = ['a', 'b', 'c'].map((x) => ({ type: 'choice', choices: [x.repeat(3)] }));
  const first = await c.matcher(specs[0]);
  await c.matcher(specs[0]);
  t.equal(c.numCached, 1, 'one spec, one compiled grammar');
  for (const s of specs.slice(1)) (await c.matcher(s)).dispose();
  t.equal(c.numCached, 2, 'at most maxCachedGrammars kept');
  const mask = new Uint32Array(Math.ceil(files.config.vocabSize / 32));
  first.fillNextTokenMask(mask);
  t.ok(allowedTokens(mask, files.config.vocabSize).length > 0, 'a matcher of an evicted grammar still works');
  first.dispose();
});
