// The CPU KV cache's element type: one rule in the native engine (cpu_kv_dtype), which the server
// asks before any engine exists to size the cache; an engine must report what the rule says.
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

for (const dtype of ['f32', 'int8'] as const)
  for (const kvDtype of ['auto', 'f32', 'f16', 'int8'] as const)
    t.test(`an engine with ${dtype} weights and kvDtype ${kvDtype} reports the rule's type`, async (t) => {
      const e = await EngineInstance.open({ modelPath: MODEL_DIR, dtype, numThreads: 1, numKvBlocks: 4, blockSize: 16, kvDtype });
      t.equal(e.kvDtype, loadNative().cpuKvDtype(dtype, kvDtype));
      e.close();
    });
