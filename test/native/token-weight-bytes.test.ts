// tokenWeightBytes: the weight bytes one decode step at batch 1 reads, which bench:engine divides
// by the step time to compare with the memory bandwidth. It differs from the resident weightBytes
// only where a kernel skips resident data: group-32 int8 (Q8_0) keeps 4 bytes of row sums beside
// every 4-byte scale of 32 weights, which the scalar kernel and AVX-512's one-token GEMV never read
// (read: 32 + 4 bytes per group of the 32 + 4 + 4 held, exactly 0.9), while AVX2 reads them
// only with AVX-VNNI. Every dimension of the models is a multiple of 32 (of 256 for Q4_K_M), so
// no row falls back to another type.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { synthesizeModel } from '../../src/model/synth.js';
import { loadNative } from '../../src/workers/binding.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { SMALL_LLAMA } from '../fixtures/small-llama.js';

t.test('a decode step reads all of f32 and block weights, and Q8_0 without its row sums', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-token-bytes-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const supported = loadNative().cpuInfo().supported;
  const files: Record<string, string> = {};
  for (const type of ['f32', 'q8_0', 'q4_k_m'] as const) {
    files[type] = join(dir, `m-${type}.gguf`);
    const config = type === 'q4_k_m' ? { ...SMALL_LLAMA, hidden_size: 256, intermediate_size: 512 } : SMALL_LLAMA;
    await synthesizeModel({ config, out: files[type], format: 'gguf', dtype: type, seed: 3 });
  }
  const open = (path: string, dtype: 'f32' | 'int8' | 'quant', isa: 'scalar' | 'avx2' | 'avx512') =>
    EngineInstance.open({ modelPath: path, dtype, numThreads: 1, numKvBlocks: 8, blockSize: 16, isa });
  for (const isa of ['scalar', 'avx2', 'avx512'] as const) {
    if (!supported.includes(isa)) continue;
    for (const [type, dtype] of [
      ['f32', 'f32'],
      ['q4_k_m', 'quant'],
    ] as const) {
      const e = await open(files[type], dtype, isa);
      t.equal(e.tokenWeightBytes, e.weightBytes, `${isa} ${type}: every resident byte is read (${e.weightBytes})`);
      e.close();
    }
    const e = await open(files.q8_0, 'int8', isa);
    const share = e.tokenWeightBytes / e.weightBytes;
    if (isa === 'avx2') t.ok(share === 0.9 || share === 1, `avx2 q8_0: ${share} of the resident bytes (1 with AVX-VNNI)`);
    else t.equal(share, 0.9, `${isa} q8_0: the row sums are not read (${e.tokenWeightBytes} of ${e.weightBytes} bytes)`);
    e.close();
  }
});
