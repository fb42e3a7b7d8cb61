// The `weft` command line, called in-process.
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { loadModelSpec } from '../../src/model/load.js';
import { TextTokenizer } from '../../src/tokenizer.js';
import { runCli as run } from '../fixtures/capture.js';
import { GOLDEN_IDS, MODEL_DIR, MODEL_GGUF } from '../fixtures/paths.js';
import { TINY_SMOL_CONFIG } from '../fixtures/tiny-smol.js';

t.test('generate --json from BOS prints the golden ids (HF and GGUF)', async (t) => {
  for (const model of [MODEL_DIR, MODEL_GGUF]) {
    const r = await run(['generate', '--model', model, '--prompt', '', '--max-tokens', '48', '--json']);
    t.equal(r.code, 0, r.err);
    const j = JSON.parse(r.out);
    t.same(j.prompt_ids, [1]);
    t.same(j.output_ids, GOLDEN_IDS.slice(1));
    t.match(j.text, /^Once upon a time/);
  }
});

t.test('generate prints text; sampling with a seed is reproducible; int8 works', async (t) => {
  const plain = await run(['generate', '--model', MODEL_DIR, '--prompt', 'Once upon a time', '--max-tokens', '10']);
  t.equal(plain.code, 0);
  t.ok(plain.out.trim().length > 0);
  const args = [
    'generate',
    '--model',
    MODEL_DIR,
    '--prompt',
    'Lily',
    '--max-tokens',
    '20',
    '--temperature',
    '0.9',
    '--top-k',
    '40',
    '--top-p',
    '0.95',
    '--seed',
    '42',
    '--json',
  ];
  const a = JSON.parse((await run(args)).out),
    b = JSON.parse((await run(args)).out);
  t.same(a.output_ids, b.output_ids);
  const q = await run(['generate', '--model', MODEL_DIR, '--prompt', '', '--max-tokens', '16', '--dtype', 'int8', '--json']);
  t.same(JSON.parse(q.out).output_ids, GOLDEN_IDS.slice(1, 17));
});

t.test('synth and quantize commands write loadable models', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const gguf = join(dir, 'tiny.gguf');
  t.equal((await run(['synth', join(MODEL_DIR, 'config.json'), gguf, '--format', 'gguf', '--dtype', 'q8_0', '--seed', '3'])).code, 0);
  const g = await run(['generate', '--model', gguf, '--prompt', '', '--max-tokens', '5', '--json', '--dtype', 'int8']);
  t.equal(g.code, 0, g.err);
  t.equal(JSON.parse(g.out).output_ids.length, 5);
  t.equal((await run(['quantize', MODEL_DIR, join(dir, 'q')])).code, 0);
  const q = await run(['generate', '--model', join(dir, 'q'), '--prompt', '', '--max-tokens', '8', '--json', '--dtype', 'int8']);
  t.same(JSON.parse(q.out).output_ids, GOLDEN_IDS.slice(1, 9));
});

t.test('bad command lines fail with a code, not a crash', async (t) => {
  const cases: [string[], RegExp][] = [
    [['generate', '--prompt', 'x'], /WEFT_ERR_CONFIG_INVALID.*--model/],
    [['generate', '--model', MODEL_DIR], /WEFT_ERR_CONFIG_INVALID.*--prompt/],
    [['generate', '--model', MODEL_DIR, '--prompt', 'x', '--max-tokens', 'abc'], /WEFT_ERR_CONFIG_INVALID/],
    [['generate', '--model', MODEL_DIR, '--prompt', 'x', '--dtype', 'q4'], /WEFT_ERR_CONFIG_INVALID/],
    [['generate', '--model', MODEL_DIR, '--prompt', 'x', '--max-tokens', '600'], /WEFT_ERR_CONFIG_INVALID.*context/],
    [['generate', '--model', '/nonexistent', '--prompt', 'x'], /WEFT_ERR_MODEL_NOT_FOUND/],
    [['generate', '--model', MODEL_DIR, '--prompt', 'x', '--bogus'], /Unknown option/],
    [['frobnicate'], /WEFT_ERR_CONFIG_INVALID.*unknown command/],
  ];
  for (const [args, re] of cases) {
    const r = await run(args);
    t.equal(r.code, 1, args.join(' '));
    t.match(r.err, re);
  }
});

t.test('weft serve: a start that fails exits non-zero with one readable line', async (t) => {
  const missing = await run(['serve', '--model', '/nonexistent/model', '--host', '127.0.0.1', '--port', '0', '--log-level', 'silent']);
  t.equal(missing.code, 1, 'a missing model');
  t.match(missing.err, /^weft: cannot start the engine: WEFT_ERR_\w+: /m);
  const bad = await run(['serve', '--bogus']);
  t.equal(bad.code, 2, 'a bad flag');
  t.match(bad.err, /WEFT_ERR_CONFIG_INVALID/);
  process.exitCode = 0; // runServer also sets it; this test process must still exit 0
});

t.test('weft --version, and --help on every command', async (t) => {
  const v = await run(['--version']);
  t.equal(v.code, 0);
  t.match(v.out, /^weft \d+\.\d+\.\d+/);
  for (const cmd of ['generate', 'synth', 'quantize']) {
    const h = await run([cmd, '--help']);
    t.equal(h.code, 0, `${cmd} --help`);
    t.match(h.out, /usage:/);
  }
  const g = await run(['generate', '--model', MODEL_DIR, '--prompt', '', '--max-tokens', '4', '--num-threads', '1', '--json']);
  t.equal(g.code, 0, "generate takes serve's --num-threads too");
});

t.test('weft synth takes the tokenizer and chat template lying next to the config.json', async (t) => {
  const smol = join(MODEL_DIR, '..', 'smollm2-135m-shape');
  const dir = mkdtempSync(join(tmpdir(), 'weft-synth-tok-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'config.json'), JSON.stringify(TINY_SMOL_CONFIG));
  copyFileSync(join(smol, 'tokenizer.json'), join(dir, 'tokenizer.json'));
  copyFileSync(join(smol, 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  const want = JSON.parse(readFileSync(join(smol, 'tokenizer_config.json'), 'utf8')).chat_template as string;
  for (const format of ['gguf', 'hf'] as const) {
    const out = join(dir, format === 'gguf' ? 'm.gguf' : 'm-hf');
    t.equal((await run(['synth', join(dir, 'config.json'), out, '--format', format])).code, 0, format);
    const spec = await loadModelSpec(out);
    t.equal(spec.chatTemplate, want, `${format}: the chat template came along`);
    const reference = new TextTokenizer({ tokenizerJson: readFileSync(join(smol, 'tokenizer.json'), 'utf8'), config: spec.config, path: smol });
    t.same(await new TextTokenizer(spec).encode('hello world', false), await reference.encode('hello world', false), `${format}: the same tokenizer`);
  }
});
