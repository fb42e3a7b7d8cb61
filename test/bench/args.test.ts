// The benches' command lines (bench/args.ts): --help lists every option with its default and exits
// 0; an unknown or malformed option prints one line and the usage, exit status 2, no stack trace.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

import t from 'tap';

import { benchUsage } from '../../bench/args.js';
import { REPO_ROOT } from '../fixtures/paths.js';

t.test('usage: each option, a value placeholder for strings, defaults', async (t) => {
  const u = benchUsage('npm run bench:x --', {
    shape: { type: 'string', default: '110m' },
    json: { type: 'string' },
    llamacpp: { type: 'boolean', default: false },
    list: { type: 'string', multiple: true, default: ['a', 'b'] },
  });
  t.equal(
    u,
    'usage: npm run bench:x -- [options]\n  --shape <value>  (default 110m)\n  --json <value>\n  --llamacpp\n  --list <value>  (default a,b)\n',
  );
});

const BENCHES = ['engine', 'agreement', 'beam', 'itl', 'hostile', 'quantize', 'soak', 'structured'];

for (const name of BENCHES)
  t.test(`dist/bench/${name}.js: --help, then a bad option`, async (t) => {
    const script = join(REPO_ROOT, 'dist', 'bench', `${name}.js`);
    const help = spawnSync(process.execPath, [script, '--help'], { encoding: 'utf8', timeout: 60_000 });
    t.equal(help.status, 0, help.stderr);
    t.match(help.stdout, /^usage: .+ \[options\]\n {2}--/);
    const bad = spawnSync(process.execPath, [script, '--no-such-option'], { encoding: 'utf8', timeout: 60_000 });
    t.equal(bad.status, 2);
    t.match(bad.stderr, /Unknown option '--no-such-option'/);
    t.notMatch(bad.stderr, /\n\s+at /, 'no stack trace');
  });

t.test('bench:engine --backend gpu has its own options', async (t) => {
  const r = spawnSync(process.execPath, [join(REPO_ROOT, 'dist', 'bench', 'engine.js'), '--backend', 'gpu', '--help'], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /--backend gpu \[options\]/);
  t.match(r.stdout, /--hbm-tbps/);
});
