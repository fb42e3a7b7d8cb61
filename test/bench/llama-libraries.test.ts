// A llama.cpp build's directory on LD_LIBRARY_PATH makes node-llama-cpp load that build's
// libraries instead of its own (its heap was seen corrupted at exit): the benches refuse to load it
// in-process and drop the directory from the environment of a child that loads it.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { envWithoutLlamaLibraries, foreignLlamaLibraryDirs } from '../../bench/nlc.js';

t.test('directories with libllama.so or libggml.so are found and dropped, others kept', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'weft-ldpath-'));
  const [llama, ggml, other] = ['llama', 'ggml', 'other'].map((d) => join(root, d));
  for (const d of [llama, ggml, other]) mkdirSync(d);
  writeFileSync(join(llama, 'libllama.so'), '');
  writeFileSync(join(ggml, 'libggml.so'), '');
  writeFileSync(join(other, 'libz.so'), '');
  const env = { HOME: '/root', LD_LIBRARY_PATH: `${other}:${llama}::${ggml}` };
  t.same(foreignLlamaLibraryDirs(env), [llama, ggml]);
  t.same(envWithoutLlamaLibraries(env), { HOME: '/root', LD_LIBRARY_PATH: other });
  t.same(envWithoutLlamaLibraries({ HOME: '/root', LD_LIBRARY_PATH: llama }), { HOME: '/root' }, 'no variable left when nothing remains');
  t.same(foreignLlamaLibraryDirs({}), []);
  t.same(envWithoutLlamaLibraries({ HOME: '/root' }), { HOME: '/root' });
});
