// The native fuzz seeds are written by TypeScript (bench/fuzz/native-corpus.ts) and read by C++
// (native/fuzz/fuzz_model_load.cc): the tensor type byte indexes native TensorDType, and weight
// dtype quant is flag bit 7. A list out of step would make seeds of the wrong type, silently.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import t from 'tap';

import { encodeNativeInput, TENSOR_DTYPES } from '../../bench/fuzz/native-corpus.js';
import { loadModelSpec } from '../../src/model/load.js';
import { toNativeModelSpec } from '../../src/workers/binding.js';
import { MODEL_GGUF, REPO_ROOT } from '../fixtures/paths.js';

t.test("the seeds' tensor types follow native TensorDType, and the target reads them all", async (t) => {
  const header = readFileSync(join(REPO_ROOT, 'native', 'include', 'weft_engine.h'), 'utf8');
  const native = /enum class TensorDType \{([^}]*)\}/
    .exec(header)![1]
    .split(',')
    .map((s) => s.trim());
  t.same(
    TENSOR_DTYPES.map((d) => d.toLowerCase()),
    native,
  );
  const target = readFileSync(join(REPO_ROOT, 'native', 'fuzz', 'fuzz_model_load.cc'), 'utf8');
  t.match(target, `TensorDType>(c.take<uint8_t>() % ${native.length})`, 'the target takes every type');
});

t.test('a seed starts with the weight dtype flags: quant as bit 7, the others in bits 0-1', async (t) => {
  const spec = await loadModelSpec(MODEL_GGUF);
  const file = new Uint8Array(4096);
  const flags = (wd: 'f32' | 'int8' | 'f16' | 'bf16' | 'quant') => encodeNativeInput(toNativeModelSpec(spec, wd, 'k', 'cpu'), file)[0] & 0x83;
  t.same([flags('f32'), flags('int8'), flags('f16'), flags('bf16'), flags('quant')], [0, 1, 2, 3, 128]);
});
