// The CPU KV cache's element type and its bytes a token: rules in the native engine
// (cpu_kv_dtype, cpu_kv_bytes_per_token), which the server asks before any engine exists to size
// the cache; an engine must report the rule's type and allocate the rule's bytes.
import t from 'tap';

import { EngineInstance } from '../../src/workers/engine-instance.js';
import { loadNative } from '../../src/workers/binding.js';
import { MODEL_DIR } from '../fixtures/paths.js';

t.test('auto: f32 with f32 weights, f16 with int8 or block weights; an explicit type wins', async (t) => {
  const native = loadNative();
  t.equal(native.cpuKvDtype('f32', 'auto'), 'f32');
  t.equal(native.cpuKvDtype('int8', 'auto'), 'f16');
  t.equal(native.cpuKvDtype('quant', 'auto'), 'f16');
  t.equal(native.cpuKvDtype('int8', 'f32'), 'f32');
  t.equal(native.cpuKvDtype('f32', 'f16'), 'f16');
  t.equal(native.cpuKvDtype('quant', 'int8'), 'int8');
  t.throws(() => native.cpuKvDtype('f32', 'f8' as never), { code: 'WEFT_ERR_ENGINE_BAD_INPUT' });
  t.throws(() => native.cpuKvDtype('q4' as never, 'auto'), { code: 'WEFT_ERR_ENGINE_BAD_INPUT' });
});

// The bytes a token takes, written out here from the layout (attention.h): f32 and f16 four and
// two bytes a value; int8 one, plus a float scale per 32 K values (the whole head when head_dim is
// no multiple of 32) and one per head of V values.
function expectedBytesPerToken(kv: 'f32' | 'f16' | 'int8', c: { numLayers: number; numKvHeads: number; headDim: number }) {
  const values = c.numLayers * c.numKvHeads * c.headDim;
  if (kv !== 'int8') return 2 * values * (kv === 'f32' ? 4 : 2);
  const kScales = c.headDim % 32 === 0 ? c.headDim / 32 : 1;
  return 2 * values + 4 * c.numLayers * c.numKvHeads * (kScales + 1);
}

t.test('bytes a token takes: the layout rule for each type and head size; bad arguments refused', async (t) => {
  const native = loadNative();
  for (const c of [
    { numLayers: 12, numKvHeads: 12, headDim: 64 },
    { numLayers: 5, numKvHeads: 4, headDim: 8 },
    { numLayers: 2, numKvHeads: 3, headDim: 48 },
    { numLayers: 16, numKvHeads: 8, headDim: 128 },
  ])
    for (const kv of ['f32', 'f16', 'int8'] as const)
      t.equal(native.cpuKvBytesPerToken(kv, c), expectedBytesPerToken(kv, c), `${kv} ${JSON.stringify(c)}`);
  // 110M shape: int8 takes 0.547 of f16 (1 + 4/32 and 1 + 4/64 bytes a value against 2 and 2)
  const c110 = { numLayers: 12, numKvHeads: 12, headDim: 64 };
  t.equal(native.cpuKvBytesPerToken('int8', c110) / native.cpuKvBytesPerToken('f16', c110), 2.1875 / 4);
  const bad = { code: 'WEFT_ERR_ENGINE_BAD_INPUT' };
  t.throws(() => native.cpuKvBytesPerToken('auto' as never, c110), bad);
  t.throws(() => native.cpuKvBytesPerToken('f16', { ...c110, headDim: 0 }), bad);
  t.throws(() => native.cpuKvBytesPerToken('f8' as never, c110), bad);
});

for (const dtype of ['f32', 'int8'] as const)
  for (const kvDtype of ['auto', 'f32', 'f16', 'int8'] as const)
    t.test(`an engine with ${dtype} weights and kvDtype ${kvDtype} reports the rule's type`, async (t) => {
      const e = await EngineInstance.open({ modelPath: MODEL_DIR, dtype, numThreads: 1, numKvBlocks: 4, blockSize: 16, kvDtype });
      t.equal(e.kvDtype, loadNative().cpuKvDtype(dtype, kvDtype));
      // the engine allocates what the server sized the cache by
      const kv = e.kvDtype as 'f32' | 'f16' | 'int8';
      t.equal(e.kvCacheBytes, loadNative().cpuKvBytesPerToken(kv, e.spec.config) * 4 * 16);
      t.equal(e.kvCacheBytes, expectedBytesPerToken(kv, e.spec.config) * 4 * 16);
      e.close();
    });
