// The terminal progress bar: drawn in place on a TTY, silent otherwise; and synth/quantize report
// their tensors through it.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { quantizeModel } from '../../src/model/quantize.js';
import { synthesizeModel } from '../../src/model/synth.js';
import { progressBar } from '../../src/progress.js';
import { MODEL_DIR } from '../fixtures/paths.js';

const fakeStream = (isTTY: boolean) => {
  const out: string[] = [];
  return { out, stream: { isTTY, write: (s: string) => out.push(s) } as unknown as NodeJS.WriteStream };
};

t.test('a TTY gets one line redrawn in place, ending complete; a pipe gets nothing', async (t) => {
  const tty = fakeStream(true);
  const bar = progressBar(tty.stream);
  bar.update('model.safetensors', 5 << 20, 10 << 20);
  bar.update('model.safetensors', 10 << 20, 10 << 20);
  bar.end();
  t.match(tty.out[0], /^\rmodel\.safetensors \[#{12}\.{12}\]  50% 5\.0 MiB \/ 10\.0 MiB/);
  t.match(tty.out.at(-2), /\[#{24}\] 100% 10\.0 MiB \/ 10\.0 MiB/, 'the last update is always drawn');
  t.equal(tty.out.at(-1), '\n');
  const pipe = fakeStream(false);
  const quiet = progressBar(pipe.stream, 'items');
  quiet.update('x', 1, 2);
  quiet.end();
  t.same(pipe.out, []);
});

t.test('synth and quantize report every tensor', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-progress-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const seen: [number, number][] = [];
  await synthesizeModel({
    config: join(MODEL_DIR, 'config.json'),
    out: join(dir, 'm.gguf'),
    format: 'gguf',
    dtype: 'f32',
    seed: 1,
    onProgress: (d, n) => seen.push([d, n]),
  });
  t.ok(seen.length > 2 && seen.at(-1)![0] === seen.at(-1)![1], `synth: ${seen.at(-1)![1]} tensors`);
  const q: [number, number][] = [];
  await quantizeModel(MODEL_DIR, join(dir, 'q'), (d, n) => q.push([d, n]));
  t.ok(q.length > 2 && q.at(-1)![0] === q.at(-1)![1], `quantize: ${q.at(-1)![1]} tensors`);
});
