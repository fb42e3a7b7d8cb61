// stories260K requantized by llama.cpp's llama-quantize (Q4_0, Q8_0, Q4_K_M, Q5_1), loaded with
// --dtype auto (the file's block types kept): greedy agrees with the f32 GGUF's. Teacher-forced
// on the f32 tokens, the argmax must agree on >= 90% of 64 positions; free-running agreement is
// reported too (after a first difference the texts drift apart, so it measures less). llama.cpp
// falls back for this model's odd rows (dim 64 is no multiple of 256: Q5_0/Q8_0; FFN 172 no
// multiple of 32: F16), so these files mix types as real ones do. Skips without llama-quantize.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { resolveDtype } from '../../src/config.js';
import { loadModelSpec } from '../../src/model/load.js';
import { checkpointKind } from '../../src/model/types.js';
import { runOffline } from '../../src/offline.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { LLAMA_QUANTIZE, MODEL_GGUF } from '../fixtures/paths.js';

const skip = existsSync(LLAMA_QUANTIZE) ? false : `llama-quantize not found at ${LLAMA_QUANTIZE} (set WEFT_LLAMA_QUANTIZE)`;

t.test('llama.cpp-quantized stories260K agrees with f32', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-blocks-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const open = (modelPath: string, dtype: 'f32' | 'quant' | 'int8') =>
    EngineInstance.open({ modelPath, dtype, numThreads: 1, numKvBlocks: 16, blockSize: 16 });
  const f = await open(MODEL_GGUF, 'f32');
  const want = runOffline(f, [{ promptIds: [1], maxTokens: 64, ignoreEos: true }])[0].outputIds;
  f.close();
  for (const type of ['Q4_0', 'Q8_0', 'Q4_K_M', 'Q5_1']) {
    const file = join(dir, `stories260K-${type}.gguf`);
    const r = spawnSync(LLAMA_QUANTIZE, [MODEL_GGUF, file, type], { encoding: 'utf8' });
    t.equal(r.status, 0, `llama-quantize ${type}: ${r.stderr.split('\n').slice(-3).join(' ')}`);
    const spec = await loadModelSpec(file);
    const dtype = resolveDtype('auto', 'cpu', checkpointKind(spec));
    const types = [...new Set(Object.values(spec.tensors).map((x) => x.dtype))].sort().join(',');
    t.equal(dtype, type === 'Q8_0' ? 'int8' : 'quant', `${type}: auto keeps the file's types (${types})`);
    const q = await open(file, dtype);
    const forced = [1, ...want];
    let agree = 0;
    for (let pos = 0; pos < 64; pos++) {
      const rq = runOffline(q, [{ promptIds: forced.slice(0, pos + 1), maxTokens: 1, ignoreEos: true }])[0];
      if (rq.outputIds[0] === want[pos]) agree++;
    }
    const free = runOffline(q, [{ promptIds: [1], maxTokens: 64, ignoreEos: true }])[0].outputIds;
    const freeAgree = free.filter((id, i) => id === want[i]).length;
    let prefix = 0;
    while (prefix < 64 && free[prefix] === want[prefix]) prefix++;
    t.ok(agree >= 58, `${type}: teacher-forced argmax agrees on ${agree}/64 positions (free-running: ${freeAgree}/64, first ${prefix} equal)`);
    q.close();
  }
});
