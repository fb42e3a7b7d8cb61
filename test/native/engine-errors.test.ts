// Bad input to the native engine comes back as typed errors, never a crash.
import t from 'tap';

import { loadModelSpec } from '../../src/model/load.js';
import { loadNative, toNativeModelSpec } from '../../src/workers/binding.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { GREEDY, packStep } from '../../src/workers/step-pack.js';
import { MODEL_DIR } from '../fixtures/paths.js';

t.test('bad step input is rejected with WEFT_ERR_ENGINE_BAD_INPUT and the engine keeps working', async (t) => {
  const e = await EngineInstance.open({ modelPath: MODEL_DIR, dtype: 'f32', numThreads: 1, numKvBlocks: 4, blockSize: 16 });
  const ok = { seqId: 1, tokens: [1], startPos: 0, promptLen: 1, blockTable: [0], doSample: true, sampling: GREEDY };
  const cases: [string, Parameters<typeof packStep>[0]][] = [
    ['token id out of range', [{ ...ok, tokens: [512] }]],
    ['negative token id', [{ ...ok, tokens: [-1] }]],
    ['block id out of range', [{ ...ok, blockTable: [4] }]],
    ['context longer than the block table', [{ ...ok, tokens: new Array(17).fill(5), blockTable: [0] }]],
  ];
  for (const [name, seqs] of cases) {
    t.throws(() => e.step(packStep(seqs, 16)), { code: 'WEFT_ERR_ENGINE_BAD_INPUT' }, name);
  }
  const short = packStep([ok], 16);
  short.tokenIds = new Int32Array(0);
  t.throws(() => e.step(short), { code: 'WEFT_ERR_ENGINE_BAD_INPUT' }, 'array shorter than numTokens');
  const wrongType = packStep([ok], 16) as unknown as Record<string, unknown>;
  wrongType.positions = [0];
  t.throws(() => e.step(wrongType as never), { code: 'WEFT_ERR_ENGINE_BAD_INPUT' }, 'plain array instead of Int32Array');
  t.equal(e.step(packStep([ok], 16)).sampled[0], 403, 'still works after the errors');
  e.close();
  t.throws(() => e.step(packStep([ok], 16)), 'closed engine');
});

t.test('bad engine options and bad tensor specs give typed errors', async (t) => {
  const spec = await loadModelSpec(MODEL_DIR);
  const native = loadNative();
  const good = toNativeModelSpec(spec, 'f32', `errors-test-${Date.now()}`);
  const model = native.loadModel(good);
  // the load's byte progress: every tensor byte of the files counted, and no load running
  const tensorBytes = good.tensors.reduce((sum, x) => sum + x.byteLength, 0);
  t.same(native.loadProgress(), { bytesDone: tensorBytes, bytesTotal: tensorBytes, active: false }, 'load progress when done');
  t.throws(() => native.createEngine(model.handle, { numThreads: 0, numKvBlocks: 4, blockSize: 16 }), { code: 'WEFT_ERR_ENGINE_BAD_INPUT' });
  // a CPU-layout model cannot feed a CUDA engine: no device where none is visible, else bad input
  t.throws(() => native.createEngine(model.handle, { numThreads: 1, numKvBlocks: 4, blockSize: 16, backend: 'cuda' }), {
    code: native.cudaDeviceCount() > 0 ? 'WEFT_ERR_ENGINE_BAD_INPUT' : 'WEFT_ERR_ENGINE_NO_DEVICE',
  });
  const beyond = structuredClone(good);
  beyond.key += '-beyond';
  beyond.tensors[0].offset = 1e9;
  t.throws(() => native.loadModel(beyond), { code: 'WEFT_ERR_MODEL_CORRUPT' });
  const missing = structuredClone(good);
  missing.key += '-missing';
  missing.tensors = missing.tensors.filter((x) => x.name !== 'model.layers.2.mlp.up_proj.weight');
  t.throws(() => native.loadModel(missing), { code: 'WEFT_ERR_MODEL_MISSING_TENSOR', message: /up_proj/ });
  t.equal(native.loadProgress().active, false, 'a failed load is not left running');
  t.ok(native.loadProgress().bytesDone < native.loadProgress().bytesTotal, 'and did not count what it never read');
  const shape = structuredClone(good);
  shape.key += '-shape';
  shape.config.ffnDim = 100;
  t.throws(() => native.loadModel(shape), { code: 'WEFT_ERR_MODEL_SHAPE_MISMATCH' });
  // offsets and lengths must be safe integers: 2^64 - 2048 wrapped around in the native bounds
  // check and read before the mapping; a negative or fractional one was undefined behaviour
  for (const [field, v] of [
    ['offset', 2 ** 64 - 2048],
    ['offset', -1],
    ['offset', 1.5],
    ['byteLength', NaN],
    ['byteLength', 2 ** 60],
  ] as const) {
    const bad = structuredClone(good);
    bad.key += `-${field}-${v}`;
    bad.tensors[0][field] = v;
    t.throws(() => native.loadModel(bad), { code: 'WEFT_ERR_ENGINE_BAD_INPUT', message: new RegExp(field) }, `${field} ${v}`);
  }
  const nofile = structuredClone(good);
  nofile.key += '-nofile';
  nofile.tensors[0].file = '/nonexistent/model.safetensors';
  t.throws(() => native.loadModel(nofile), { code: 'WEFT_ERR_MODEL_NOT_FOUND' });
});
