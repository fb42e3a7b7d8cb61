// weft's engine and llama.cpp (node-llama-cpp; CI lacks it and this file skips) on the very same
// weft-written GGUF files: a small model in every block type (teacher-forced argmax at 32 random
// prefixes) and the 110M shape in Q4_K_M (greedy ids from a prompt, and teacher-forced). The
// engine keeps the file's block types (--dtype auto), so this checks weft's writer and reader
// against llama.cpp's reader at once.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { resolveDtype } from '../../src/config.js';
import { loadModelSpec } from '../../src/model/load.js';
import { GGUF_FILE_TYPES } from '../../src/model/quant-mix.js';
import { synthesizeModel } from '../../src/model/synth.js';
import { checkpointKind } from '../../src/model/types.js';
import { runOffline } from '../../src/offline.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { SHAPE_110M, SMALL } from './configs.js';
import { agreement, llamaArgmax, llamaGreedy, NO_NLC, PROMPT, randomPrefix } from './llamacpp.js';

// weft's greedy ids after PROMPT, and its argmax after each prefix of `prefix`, with --dtype auto.
async function weftIds(file: string, prefix: number[], numTokens: number): Promise<{ dtype: string; greedy: number[]; argmax: number[] }> {
  const dtype = resolveDtype('auto', 'cpu', checkpointKind(await loadModelSpec(file)));
  const e = await EngineInstance.open({ modelPath: file, dtype, numThreads: 1, numKvBlocks: 16, blockSize: 16 });
  const greedy = runOffline(e, [{ promptIds: PROMPT, maxTokens: numTokens, ignoreEos: true }])[0].outputIds;
  const argmax = prefix.map((_, p) => runOffline(e, [{ promptIds: prefix.slice(0, p + 1), maxTokens: 1, ignoreEos: true }])[0].outputIds[0]);
  e.close();
  return { dtype, greedy, argmax };
}

t.test('a small model in every block type: weft and llama.cpp on the same file', { skip: NO_NLC }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-vs-llamacpp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const prefix = randomPrefix(32, 512);
  for (const type of GGUF_FILE_TYPES.filter((x) => x !== 'f32' && x !== 'f16')) {
    const file = join(dir, `${type}.gguf`);
    await synthesizeModel({ config: SMALL, out: file, format: 'gguf', type, seed: 11 });
    const ours = await weftIds(file, prefix, 8);
    const [theirs] = await llamaArgmax([file], prefix);
    const n = agreement(ours.argmax, theirs);
    t.ok(n >= 28, `${type} (weft --dtype auto → ${ours.dtype}): teacher-forced argmax agrees on ${n}/32 prefixes`);
  }
});

t.test('110M shape, Q4_K_M written by weft: weft and llama.cpp on the same file', { skip: NO_NLC }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-vs-llamacpp-110m-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'q4_k_m.gguf'),
    prefix = randomPrefix(32, 32000);
  await synthesizeModel({ config: SHAPE_110M, out: file, format: 'gguf', type: 'q4_k_m', seed: 0 });
  const ours = await weftIds(file, prefix, 32);
  const [greedy] = await llamaGreedy([file], PROMPT, 32);
  const [argmax] = await llamaArgmax([file], prefix);
  t.equal(ours.dtype, 'quant', 'the file keeps its block types');
  t.ok(agreement(ours.greedy, greedy) >= 28, `greedy from a prompt: ${agreement(ours.greedy, greedy)}/32 positions agree`);
  t.ok(agreement(ours.argmax, argmax) >= 28, `teacher-forced argmax: ${agreement(ours.argmax, argmax)}/32 prefixes agree`);
});
