// safetensors: header parsing (single and sharded), the writer, half-float conversion, and
// every malformed-header case with its exact error code.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { isWeftError } from '../../src/errors.js';
import {
  bf16ToF32,
  f16ToF32,
  f32ToF16,
  readSafetensors,
  readSafetensorsIndex,
  readTensorBytes,
  SafetensorsWriter,
  toFloat32,
} from '../../src/model/safetensors.js';
import { MODEL_DIR } from '../fixtures/paths.js';

const ST = join(MODEL_DIR, 'model.safetensors');
const tmp = mkdtempSync(join(tmpdir(), 'weft-st-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

// A file with the given header object and data bytes.
function rawFile(name: string, header: unknown, data = new Uint8Array(0), headerLen?: number): string {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const buf = new Uint8Array(8 + json.length + data.length);
  new DataView(buf.buffer).setBigUint64(0, BigInt(headerLen ?? json.length), true);
  buf.set(json, 8);
  buf.set(data, 8 + json.length);
  const p = join(tmp, name);
  writeFileSync(p, buf);
  return p;
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && a.every((v, i) => v === b[i]);

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return isWeftError(e) ? e.code : `not a WeftError: ${String(e)}`;
  }
  return 'no error';
}

t.test('reads the stories260K header without the data', async (t) => {
  const refs = readSafetensors(ST);
  t.equal(Object.keys(refs).length, 47);
  t.ok(Object.values(refs).every((r) => r.dtype === 'F32'));
  t.same(refs['model.embed_tokens.weight'].shape, [512, 64]);
  t.same(refs['model.layers.0.mlp.down_proj.weight'].shape, [64, 172]);
  const end = Math.max(...Object.values(refs).map((r) => r.offset + r.byteLength));
  t.equal(end, statSync(ST).size, 'the data ends at the end of the file');
  for (const r of Object.values(refs)) t.equal(r.byteLength, r.shape.reduce((a, b) => a * b, 1) * 4);
  const norm = toFloat32(readTensorBytes(refs['model.norm.weight']), 'F32');
  t.ok(norm.every(Number.isFinite));
});

t.test('writer round trip, all accepted dtypes', async (t) => {
  const p = join(tmp, 'w.safetensors');
  const f32 = new Float32Array([1, -2.5, 3.25, 0, 1e-3, 7]);
  const i8 = new Int8Array([-127, 0, 5, 127]);
  const w = await SafetensorsWriter.create(p, [
    { name: 'a', dtype: 'F32', shape: [2, 3] },
    { name: 'b', dtype: 'I8', shape: [4] },
    { name: 'c', dtype: 'F16', shape: [1] },
    { name: 'd', dtype: 'BF16', shape: [1] },
  ]);
  await w.write(new Uint8Array(f32.buffer));
  await w.write(new Uint8Array(i8.buffer));
  await w.write(new Uint8Array(new Uint16Array([f32ToF16(0.5)]).buffer));
  await w.write(new Uint8Array(new Uint16Array([0x4040]).buffer)); // bf16 3.0
  await w.close();
  const refs = readSafetensors(p);
  t.same(Array.from(toFloat32(readTensorBytes(refs.a), 'F32')), Array.from(f32));
  t.same(Array.from(new Int8Array(readTensorBytes(refs.b).buffer)), Array.from(i8));
  t.same(Array.from(toFloat32(readTensorBytes(refs.c), 'F16')), [0.5]);
  t.same(Array.from(toFloat32(readTensorBytes(refs.d), 'BF16')), [3]);
  t.equal(refs.a.offset % 8, 0, 'data is 8-byte aligned');
});

t.test('half floats: round to nearest even, specials, every f16 round-trips', async (t) => {
  t.equal(f32ToF16(1), 0x3c00);
  t.equal(f32ToF16(-2), 0xc000);
  t.equal(f32ToF16(65504), 0x7bff);
  t.equal(f32ToF16(65520), 0x7c00, 'overflow to inf');
  t.equal(f32ToF16(1 + 2 ** -11), 0x3c00, 'tie rounds to even (down)');
  t.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02, 'tie rounds to even (up)');
  t.equal(f32ToF16(2 ** -24), 0x0001, 'smallest subnormal');
  t.equal(f32ToF16(2 ** -26), 0x0000, 'underflow to zero');
  t.equal(f32ToF16(NaN) & 0x7c00, 0x7c00);
  t.ok(Number.isNaN(f16ToF32(0x7e00)));
  t.equal(bf16ToF32(0x3f80), 1);
  let bad = 0;
  for (let h = 0; h < 0x10000; h++) {
    const isNan = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
    if (!isNan && f32ToF16(f16ToF32(h)) !== h) bad++;
  }
  t.equal(bad, 0);
});

t.test('sharded checkpoint via model.safetensors.index.json', async (t) => {
  const refs = readSafetensors(ST);
  const names = Object.keys(refs);
  const shards = [names.slice(0, 20), names.slice(20)];
  const weightMap: Record<string, string> = {};
  for (const [i, part] of shards.entries()) {
    const file = `model-0000${i + 1}-of-00002.safetensors`;
    const w = await SafetensorsWriter.create(
      join(tmp, file),
      part.map((n) => ({ name: n, dtype: refs[n].dtype, shape: refs[n].shape })),
    );
    for (const n of part) {
      await w.write(readTensorBytes(refs[n]));
      weightMap[n] = file;
    }
    await w.close();
  }
  writeFileSync(join(tmp, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  const sharded = readSafetensorsIndex(join(tmp, 'model.safetensors.index.json'));
  t.same(Object.keys(sharded).sort(), names.sort());
  for (const n of ['model.embed_tokens.weight', 'model.layers.4.mlp.up_proj.weight']) {
    t.same(sharded[n].shape, refs[n].shape);
    t.ok(sameBytes(readTensorBytes(sharded[n]), readTensorBytes(refs[n])), `${n} data`);
  }
  writeFileSync(join(tmp, 'bad.index.json'), JSON.stringify({ weight_map: { x: 'nope.safetensors' } }));
  t.equal(
    codeOf(() => readSafetensorsIndex(join(tmp, 'bad.index.json'))),
    'WEFT_ERR_MODEL_NOT_FOUND',
  );
  writeFileSync(join(tmp, 'bad2.index.json'), '{ not json');
  t.equal(
    codeOf(() => readSafetensorsIndex(join(tmp, 'bad2.index.json'))),
    'WEFT_ERR_MODEL_CORRUPT',
  );
});

t.test('malformed files fail with exact codes', async (t) => {
  const entry = (dtype: string, shape: number[], n: number) => ({ x: { dtype, shape, data_offsets: [0, n] } });
  t.equal(
    codeOf(() => readSafetensors(rawFile('i32', entry('I32', [2], 8), new Uint8Array(8)))),
    'WEFT_ERR_MODEL_UNSUPPORTED_DTYPE',
  );
  t.equal(
    codeOf(() => readSafetensors(rawFile('f64', entry('F64', [2], 16), new Uint8Array(16)))),
    'WEFT_ERR_MODEL_UNSUPPORTED_DTYPE',
  );
  t.equal(
    codeOf(() => readSafetensors(rawFile('weird', entry('Q4', [2], 1), new Uint8Array(1)))),
    'WEFT_ERR_MODEL_UNSUPPORTED_DTYPE',
  );
  t.equal(
    codeOf(() => readSafetensors(rawFile('huge-len', entry('F32', [2], 8), new Uint8Array(8), 2 ** 40))),
    'WEFT_ERR_MODEL_CORRUPT',
  );
  t.equal(
    codeOf(() => readSafetensors(rawFile('zero-len', {}, new Uint8Array(0), 0))),
    'WEFT_ERR_MODEL_CORRUPT',
  );
  t.equal(
    codeOf(() => readSafetensors(rawFile('bad-json', '{"x": {"dtype": "F32",', new Uint8Array(8)))),
    'WEFT_ERR_MODEL_CORRUPT',
  );
  t.equal(
    codeOf(() => readSafetensors(rawFile('array', '[1,2]'))),
    'WEFT_ERR_MODEL_CORRUPT',
  );
  t.equal(
    codeOf(() => readSafetensors(rawFile('size', entry('F32', [3], 8), new Uint8Array(8)))),
    'WEFT_ERR_MODEL_CORRUPT',
    'offsets disagree with shape',
  );
  t.equal(
    codeOf(() => readSafetensors(rawFile('trunc', entry('F32', [4], 16), new Uint8Array(8)))),
    'WEFT_ERR_MODEL_CORRUPT',
    'data past EOF',
  );
  t.equal(
    codeOf(() => readSafetensors(rawFile('noshape', { x: { dtype: 'F32' } }))),
    'WEFT_ERR_MODEL_CORRUPT',
  );
  t.equal(
    codeOf(() => readSafetensors(rawFile('neg', { x: { dtype: 'F32', shape: [-1], data_offsets: [0, 0] } }))),
    'WEFT_ERR_MODEL_CORRUPT',
  );
  writeFileSync(join(tmp, 'tiny'), new Uint8Array(3));
  t.equal(
    codeOf(() => readSafetensors(join(tmp, 'tiny'))),
    'WEFT_ERR_MODEL_CORRUPT',
  );
  t.equal(
    codeOf(() => readSafetensors(join(tmp, 'does-not-exist'))),
    'WEFT_ERR_MODEL_NOT_FOUND',
  );
  // the real file cut short: the last tensors' data is gone
  const real = new Uint8Array(readFileSync(ST));
  writeFileSync(join(tmp, 'cut.safetensors'), real.subarray(0, real.length - 100));
  try {
    readSafetensors(join(tmp, 'cut.safetensors'));
    t.fail('no error');
  } catch (e) {
    t.equal(isWeftError(e) && e.code, 'WEFT_ERR_MODEL_CORRUPT');
    t.match((e as Error).message, /cut\.safetensors.*truncated/);
  }
  t.equal(
    codeOf(() => readSafetensors(rawFile('meta', { __metadata__: { format: 'pt' } }))),
    'no error',
    '__metadata__ is ignored',
  );
});
