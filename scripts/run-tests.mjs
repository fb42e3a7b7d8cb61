#!/usr/bin/env node
// Runs the tap suite and ends with one line CI can read: `tests: N passed, N failed, N skipped`.
// tap's own exit code is kept; a non-zero exit with no failed assertion counts as one failure.
import { spawn } from 'node:child_process';

const args = process.argv.slice(2);
const tap = spawn(process.execPath, ['node_modules/tap/dist/esm/run.mjs', '--reporter=tap', ...args], {
  stdio: ['ignore', 'pipe', 'inherit'],
});

let tail = '';
tap.stdout.on('data', (chunk) => {
  process.stdout.write(chunk);
  tail = (tail + chunk.toString()).slice(-4096);
});

tap.on('close', (code, signal) => {
  const m = /# \{ total: (\d+)(?:, pass: (\d+))?(?:, fail: (\d+))?(?:, todo: (\d+))?(?:, skip: (\d+))?/.exec(tail);
  const pass = Number(m?.[2] ?? 0),
    todo = Number(m?.[4] ?? 0),
    skip = Number(m?.[5] ?? 0);
  let fail = Number(m?.[3] ?? 0);
  const exit = code ?? (signal ? 1 : 0);
  if (exit !== 0 && fail === 0) fail = 1;
  process.stdout.write(`\ntests: ${pass} passed, ${fail} failed, ${skip + todo} skipped\n`);
  process.exit(exit !== 0 ? exit : fail > 0 ? 1 : 0);
});
