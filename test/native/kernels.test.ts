// The C++ test drivers (native/test/*.cc, built by CMake beside the addon): test_matmul, every
// ISA's f32 and int8 matmul against a double-precision reference over many shapes;
// test_model_load, model_load against hostile ModelSpecs (offsets, shapes, config products);
// test_quant, the GGML block types' dequantization and every ISA's block kernel;
// test_model_blocks, a whole mixed-type block model against its f32 dequantization; and
// test_attention, every ISA's attention (decode tokens and prefill tiles) against the reference.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';

import { REPO_ROOT } from '../fixtures/paths.js';

for (const [driver, what, minChecks] of [
  ['test_matmul', 'matmul kernels match the reference on every ISA', 1000],
  ['test_model_load', 'model_load refuses hostile specs with typed errors', 15],
  ['test_quant', 'GGML block dequantization and kernels match the references on every ISA', 500],
  ['test_model_blocks', 'a model in mixed GGML block types runs like its f32 dequantization', 9],
  ['test_attention', 'attention kernels match the scalar reference on every ISA, never reading past a query', 500],
] as const) {
  t.test(what, async (t) => {
    const exe = join(REPO_ROOT, 'build', driver);
    t.ok(existsSync(exe), `${exe} is built by npm install`);
    const r = spawnSync(exe, [], { encoding: 'utf8', timeout: 300_000 });
    const summary = /(\d+) passed, (\d+) failed/.exec(r.stdout);
    t.equal(
      r.status,
      0,
      r.stdout
        .split('\n')
        .filter((l) => /FAIL/.test(l))
        .slice(0, 10)
        .join('\n'),
    );
    t.ok(summary && Number(summary[1]) >= minChecks, `checks passed: ${summary?.[1]}`);
    t.equal(summary?.[2], '0', 'no failed check');
  });
}
