// `weft quantize` output loads without requantizing and equals quantizing on load, bit for bit.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { loadModelSpec } from '../../src/model/load.js';
import { quantizeModel } from '../../src/model/quantize.js';
import { runOffline } from '../../src/offline.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { MODEL_DIR } from '../fixtures/paths.js';

t.test('pre-quantized directory == quantize on load', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-q-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'int8');
  await quantizeModel(MODEL_DIR, out);
  const spec = await loadModelSpec(out);
  t.equal(spec.tensors['model.layers.0.mlp.up_proj.weight'].dtype, 'I8');
  t.ok(spec.tensors['model.layers.0.mlp.up_proj.weight_scale'], 'per-row scales stored');
  const ahead = await EngineInstance.open({ modelPath: out, dtype: 'int8', numThreads: 1, numKvBlocks: 8, blockSize: 16 });
  const onLoad = await EngineInstance.open({ modelPath: MODEL_DIR, dtype: 'int8', numThreads: 1, numKvBlocks: 8, blockSize: 16 });
  const a = runOffline(ahead, [{ promptIds: [1], maxTokens: 40, ignoreEos: true }], { returnLogits: true })[0];
  const b = runOffline(onLoad, [{ promptIds: [1], maxTokens: 40, ignoreEos: true }], { returnLogits: true })[0];
  t.same(a.outputIds, b.outputIds);
  let maxDiff = 0;
  a.logits.forEach((l, i) =>
    l.forEach((v, j) => {
      maxDiff = Math.max(maxDiff, Math.abs(v - b.logits[i][j]));
    }),
  );
  t.equal(maxDiff, 0, 'identical logits');
  ahead.close();
  onLoad.close();
});
