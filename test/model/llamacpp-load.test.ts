// llama.cpp loads what weft writes: node-llama-cpp (bench/llamacpp's install, absent in CI, where
// this file skips) loads a weft-synthesized small model in every file type and runs greedy
// tokens; and on a 110M-shape model, weft's Q4_K_M and llama-quantize's Q4_K_M of the same F32
// GGUF follow the F32 file's argmax about equally often, with weft's weights about as close to
// the source.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { GGUF_FILE_TYPES } from '../../src/model/quant-mix.js';
import { quantizeToGguf } from '../../src/model/quantize-gguf.js';
import { synthesizeModel } from '../../src/model/synth.js';
import { squaredErrors } from './gguf-values.js';
import { SHAPE_110M, SMALL } from './configs.js';
import { agreement, llamaArgmax, llamaGreedy, llamaQuantize, NO_NLC, NO_QUANTIZE, PROMPT, randomPrefix } from './llamacpp.js';

t.test('llama.cpp loads a weft-synthesized model in every file type and generates', { skip: NO_NLC }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-llamacpp-load-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const files = [];
  for (const type of GGUF_FILE_TYPES) {
    files.push(join(dir, `${type}.gguf`));
    await synthesizeModel({ config: SMALL, out: files[files.length - 1], format: 'gguf', type, seed: 11 });
  }
  const ids = await llamaGreedy(files, PROMPT, 8);
  GGUF_FILE_TYPES.forEach((type, i) =>
    t.ok(ids[i].length === 8 && ids[i].every((id) => Number.isInteger(id) && id >= 0 && id < 512), `${type}: ${ids[i].join(' ')}`),
  );
  // the 8-bit and 6-bit files hold nearly the f32 weights: their greedy ids start as f32's do
  const f32 = ids[GGUF_FILE_TYPES.indexOf('f32')];
  for (const type of ['f16', 'q8_0', 'q6_k'] as const)
    t.same(ids[GGUF_FILE_TYPES.indexOf(type)].slice(0, 2), f32.slice(0, 2), `${type} starts as f32`);
});

// The synthetic 110M model's logits are flat (|logit| ≲ 2, see synth.ts), so 4-bit noise moves its
// argmax often and greedy runs that part once never meet again: llama-quantize's own Q4_K_M
// follows the F32 file's greedy ids on only a part of 32. The fair measure is teacher-forced: at
// each of 32 random prefixes, how often each Q4_K_M file's argmax is the F32 file's; weft's must
// do about as well as llama-quantize's.
t.test(
  "110M shape: weft's Q4_K_M and llama-quantize's Q4_K_M of one F32 GGUF",
  {
    skip: NO_NLC || NO_QUANTIZE,
  },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-llamacpp-110m-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const src = join(dir, 'f32.gguf'),
      ours = join(dir, 'weft-q4_k_m.gguf'),
      theirs = join(dir, 'llama-q4_k_m.gguf');
    await synthesizeModel({ config: SHAPE_110M, out: src, format: 'gguf', type: 'f32', seed: 3 });
    llamaQuantize(src, theirs, 'q4_k_m');
    await quantizeToGguf(src, ours, 'q4_k_m');
    const [a, b, f] = await llamaGreedy([ours, theirs, src], PROMPT, 32);
    t.comment(
      `free-running greedy, 32 tokens: weft's vs llama-quantize's file ${agreement(a, b)}/32; ` +
        `vs F32: weft's ${agreement(a, f)}, llama-quantize's ${agreement(b, f)}`,
    );
    const [ta, tb, tf] = await llamaArgmax([ours, theirs, src], randomPrefix(32, 32000));
    const [oa, ob, ab] = [agreement(ta, tf), agreement(tb, tf), agreement(ta, tb)];
    t.ok(
      oa >= ob - 3,
      `teacher-forced argmax, 32 prefixes: as F32's, weft's ${oa}/32, llama-quantize's ${ob}/32; weft's as llama-quantize's ${ab}/32`,
    );
    const [oursErr, theirsErr] = squaredErrors(src, [ours, theirs]);
    const ratio = Math.sqrt(oursErr / theirsErr);
    t.ok(ratio <= 1.1, `RMS error against the F32 weights, weft / llama-quantize: ${ratio.toFixed(4)}`);
  },
);
