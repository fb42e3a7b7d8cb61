// The C++ kernel test driver (native/test/test_matmul.cc, built by CMake beside the addon):
// every ISA's f32 and int8 matmul against a double-precision reference over many shapes.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';

import { REPO_ROOT } from '../fixtures/paths.js';

t.test('matmul kernels match the reference on every ISA', async (t) => {
  const exe = join(REPO_ROOT, 'build', 'test_matmul');
  t.ok(existsSync(exe), `${exe} is built by npm install`);
  const r = spawnSync(exe, [], { encoding: 'utf8', timeout: 300_000 });
  const summary = /(\d+) passed, (\d+) failed/.exec(r.stdout);
  t.equal(r.status, 0, r.stdout.split('\n').filter((l) => /FAIL/.test(l)).slice(0, 10).join('\n'));
  t.ok(summary && Number(summary[1]) > 1000, `checks passed: ${summary?.[1]}`);
  t.equal(summary?.[2], '0', 'no failed check');
});
