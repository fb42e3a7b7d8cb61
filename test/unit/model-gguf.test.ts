// GGUF: the reader on the real stories260K file, agreement with the safetensors copy of the same
// weights, the header writer, and malformed files (always WEFT_ERR_MODEL_*, never a hang).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';

import { isWeftError } from '../../src/errors.js';
import {
  encodeGgufHeader,
  GGUF_TYPE,
  ggufTensorName,
  ggufTensorRefs,
  hfTensorName,
  readGguf,
  type GgufEntry,
  type GgufValue,
} from '../../src/model/gguf.js';
import { loadModelSpec } from '../../src/model/load.js';
import { readTensorBytes, toFloat32 } from '../../src/model/safetensors.js';
import { MODEL_DIR, MODEL_GGUF } from '../fixtures/paths.js';

const tmp = mkdtempSync(join(tmpdir(), 'weft-gguf-'));
const bytesOf = (p: string) => new Uint8Array(readFileSync(p));
function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
// A copy of `bytes` edited through a DataView.
function patched(bytes: Uint8Array, edit: (v: DataView) => void): Uint8Array {
  const copy = bytes.slice();
  edit(new DataView(copy.buffer));
  return copy;
}
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

async function codeOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (e) {
    return isWeftError(e) ? e.code : `not a WeftError: ${String(e)}`;
  }
  return 'no error';
}

// Metadata back to typed entries (types picked by value; enough to rewrite stories260K).
function entriesOf(meta: Map<string, GgufValue>): GgufEntry[] {
  const typeOf = (v: GgufValue, key: string): number =>
    typeof v === 'string'
      ? GGUF_TYPE.STRING
      : typeof v === 'boolean'
        ? GGUF_TYPE.BOOL
        : key.endsWith('scores') || !Number.isInteger(v)
          ? GGUF_TYPE.F32
          : key.endsWith('token_type')
            ? GGUF_TYPE.I32
            : GGUF_TYPE.U32;
  return [...meta].map(([key, value]) =>
    Array.isArray(value) ? { key, type: GGUF_TYPE.ARRAY, elemType: typeOf(value[0], key), value } : { key, type: typeOf(value, key), value },
  );
}

// stories260K.gguf with its metadata / tensor infos edited, data section copied as is.
function rewriteGguf(name: string, edit: (meta: Map<string, GgufValue>, tensors: ReturnType<typeof readGguf>['tensors']) => void): string {
  const g = readGguf(MODEL_GGUF);
  const meta = new Map(g.metadata);
  const tensors = g.tensors.map((x) => ({ ...x, dims: [...x.dims] }));
  edit(meta, tensors);
  const header = encodeGgufHeader(entriesOf(meta), tensors);
  const out = join(tmp, name);
  writeFileSync(out, concat(header, bytesOf(MODEL_GGUF).subarray(g.dataOffset)));
  return out;
}

t.test('reads stories260K.gguf', async (t) => {
  const g = readGguf(MODEL_GGUF);
  t.equal(g.version, 3);
  t.equal(g.alignment, 32);
  t.equal(g.metadata.get('general.architecture'), 'llama');
  t.equal((g.metadata.get('tokenizer.ggml.tokens') as string[]).length, 512);
  t.equal(g.tensors.length, 48);
  const { tensors, other } = ggufTensorRefs(g);
  t.same(Object.keys(other), []);
  t.same(tensors['model.layers.0.mlp.gate_proj.weight'].shape, [172, 64], 'HF orientation [out, in]');
  t.same(tensors['lm_head.weight'].shape, [512, 64]);
  t.equal(hfTensorName('blk.3.attn_output.weight'), 'model.layers.3.self_attn.o_proj.weight');
  t.equal(hfTensorName('blk.3.attn_q.bias'), 'model.layers.3.self_attn.q_proj.bias');
  t.equal(hfTensorName('rope_freqs.weight'), null);
  t.equal(ggufTensorName('model.layers.7.post_attention_layernorm.weight'), 'blk.7.ffn_norm.weight');
  t.equal(ggufTensorName('model.norm.weight'), 'output_norm.weight');
});

t.test('both formats of stories260K describe the same model', async (t) => {
  const hf = await loadModelSpec(MODEL_DIR);
  const gg = await loadModelSpec(MODEL_GGUF);
  t.equal(hf.format, 'hf');
  t.equal(gg.format, 'gguf');
  t.equal(hf.ropeInterleaved, false);
  t.equal(gg.ropeInterleaved, true);
  // The GGUF keeps an untied copy of the embedding (output.weight) and says context 2048.
  t.same({ ...gg.config, maxPositions: 0, tieEmbeddings: false }, { ...hf.config, maxPositions: 0, tieEmbeddings: false });
  t.equal(gg.config.maxPositions, 2048);
  t.equal(gg.config.tieEmbeddings, false);
  t.equal(gg.config.rmsEps, 1e-5, 'float32 metadata is read back as its shortest decimal');
  const hfNames = Object.keys(hf.tensors).sort();
  t.same(
    Object.keys(gg.tensors)
      .filter((n) => n !== 'lm_head.weight')
      .sort(),
    hfNames,
  );
  for (const n of hfNames) t.same(gg.tensors[n].shape, hf.tensors[n].shape, n);

  const floats = (spec: typeof hf, n: string) => toFloat32(readTensorBytes(spec.tensors[n]), 'F32');
  const equalArrays = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((v, i) => v === b[i]);
  for (const n of [
    'model.embed_tokens.weight',
    'model.norm.weight',
    'model.layers.2.input_layernorm.weight',
    'model.layers.1.self_attn.v_proj.weight',
    'model.layers.4.self_attn.o_proj.weight',
    'model.layers.0.mlp.down_proj.weight',
  ])
    t.ok(equalArrays(floats(gg, n), floats(hf, n)), `${n}: same floats`);
  t.ok(equalArrays(floats(gg, 'lm_head.weight'), floats(hf, 'model.embed_tokens.weight')), 'output.weight is the embedding');
  // q/k: GGUF row (head, j, s) holds HF row (head, s, j)
  for (const [n, heads] of [
    ['model.layers.3.self_attn.q_proj.weight', 8],
    ['model.layers.3.self_attn.k_proj.weight', 4],
  ] as const) {
    const g = floats(gg, n),
      h = floats(hf, n);
    const [rows, cols] = hf.tensors[n].shape,
      hd = rows / heads;
    const unpermuted = new Float32Array(g.length);
    for (let r = 0; r < rows; r++) {
      const head = Math.floor(r / hd),
        i = r % hd,
        s = Math.floor(i / (hd / 2)),
        j = i % (hd / 2);
      unpermuted.set(g.subarray((head * hd + j * 2 + s) * cols, (head * hd + j * 2 + s + 1) * cols), r * cols);
    }
    t.ok(equalArrays(unpermuted, h), `${n}: same floats after undoing the GGUF permutation`);
    t.notOk(equalArrays(g, h), `${n}: stored permuted`);
  }
});

t.test('header writer round trip, every value type', async (t) => {
  const entries: GgufEntry[] = [
    { key: 'u8', type: GGUF_TYPE.U8, value: 200 },
    { key: 'i8', type: GGUF_TYPE.I8, value: -5 },
    { key: 'u16', type: GGUF_TYPE.U16, value: 60000 },
    { key: 'i16', type: GGUF_TYPE.I16, value: -300 },
    { key: 'u32', type: GGUF_TYPE.U32, value: 4e9 },
    { key: 'i32', type: GGUF_TYPE.I32, value: -7 },
    { key: 'f32', type: GGUF_TYPE.F32, value: 0.5 },
    { key: 'bool', type: GGUF_TYPE.BOOL, value: true },
    { key: 'str', type: GGUF_TYPE.STRING, value: 'héllo ▁' },
    { key: 'u64', type: GGUF_TYPE.U64, value: 2 ** 40 },
    { key: 'i64', type: GGUF_TYPE.I64, value: -(2 ** 40) },
    { key: 'f64', type: GGUF_TYPE.F64, value: 1e-300 },
    { key: 'arr', type: GGUF_TYPE.ARRAY, elemType: GGUF_TYPE.STRING, value: ['a', '', 'c'] },
    { key: 'nums', type: GGUF_TYPE.ARRAY, elemType: GGUF_TYPE.I32, value: [1, -2, 3] },
  ];
  entries.push({ key: 'general.alignment', type: GGUF_TYPE.U32, value: 64 });
  const header = encodeGgufHeader(entries, [{ name: 'x.weight', dims: [32, 2], type: 0, offset: 0 }]);
  t.equal(header.length % 64, 0);
  const p = join(tmp, 'rt.gguf');
  writeFileSync(p, concat(header, new Uint8Array(256)));
  const g = readGguf(p);
  for (const e of entries) t.same(g.metadata.get(e.key), e.value, e.key);
  t.equal(g.dataOffset, header.length);
  t.same(g.tensors, [{ name: 'x.weight', dims: [32, 2], type: 0, offset: 0 }]);
});

t.test('malformed GGUF files', async (t) => {
  const real = bytesOf(MODEL_GGUF);
  const write = (name: string, bytes: Uint8Array) => {
    const p = join(tmp, name);
    writeFileSync(p, bytes);
    return p;
  };
  const badMagic = patched(real, (v) => v.setUint32(0, 0x4c4d4747, true)); // "GGML"
  t.equal(await codeOf(() => readGguf(write('magic.gguf', badMagic))), 'WEFT_ERR_MODEL_CORRUPT');
  const v1 = patched(real, (v) => v.setUint32(4, 1, true));
  t.equal(await codeOf(() => readGguf(write('v1.gguf', v1))), 'WEFT_ERR_MODEL_CORRUPT');
  const hugeKv = patched(real, (v) => v.setBigUint64(16, 2n ** 50n, true));
  t.equal(await codeOf(() => readGguf(write('kv.gguf', hugeKv))), 'WEFT_ERR_MODEL_CORRUPT', 'bogus key count');
  const hugeTensors = patched(real, (v) => v.setBigUint64(8, 2n ** 63n, true));
  t.equal(await codeOf(() => readGguf(write('nt.gguf', hugeTensors))), 'WEFT_ERR_MODEL_CORRUPT', 'bogus tensor count');
  // cut anywhere: in the header, the vocab, the tensor infos, the data
  const g = readGguf(MODEL_GGUF);
  for (const at of [0, 10, 23, 100, 5000, g.dataOffset - 40, g.dataOffset + 1000, real.length - 4]) {
    const p = write(`cut-${at}.gguf`, real.subarray(0, at));
    t.equal(await codeOf(() => loadModelSpec(p)), 'WEFT_ERR_MODEL_CORRUPT', `truncated at ${at}`);
  }
  t.equal(await codeOf(() => readGguf(join(tmp, 'absent.gguf'))), 'WEFT_ERR_MODEL_NOT_FOUND');
  t.equal(await codeOf(() => readGguf(tmp)), 'WEFT_ERR_MODEL_CORRUPT', 'a directory (not a regular file)');
});

t.test('random corruption of the header never escapes as another error', async (t) => {
  const real = bytesOf(MODEL_GGUF);
  const g = readGguf(MODEL_GGUF);
  let seed = 12345;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
  let other = 0;
  for (let i = 0; i < 150; i++) {
    const bytes = real.slice(0, g.dataOffset + 4096);
    for (let k = 0; k < 4; k++) bytes[Math.floor(rand() * g.dataOffset)] = Math.floor(rand() * 256);
    const p = join(tmp, 'fuzz.gguf');
    writeFileSync(p, bytes);
    const code = await codeOf(() => loadModelSpec(p));
    if (code.startsWith('not a WeftError')) {
      other++;
      t.comment(code);
    }
  }
  t.equal(other, 0);
});

t.test('unsupported tensor types and architectures', async (t) => {
  const iq4 = rewriteGguf('iq4xs.gguf', (_m, tensors) => {
    tensors[3].type = 23;
  }); // IQ4_XS: not read
  t.equal(await codeOf(() => loadModelSpec(iq4)), 'WEFT_ERR_MODEL_UNSUPPORTED_DTYPE');
  try {
    await loadModelSpec(iq4);
  } catch (e) {
    t.match((e as Error).message, /iq4xs\.gguf.*blk\.0\.attn_q\.weight.*IQ4_XS; weft reads .*Q2_K, Q3_K.*Q6_K/);
  }
  const arch = rewriteGguf('gemma.gguf', (m) => {
    m.set('general.architecture', 'gemma');
    for (const [k, v] of [...m])
      if (k.startsWith('llama.')) {
        m.delete(k);
        m.set(k.replace('llama.', 'gemma.'), v);
      }
  });
  t.equal(await codeOf(() => loadModelSpec(arch)), 'WEFT_ERR_MODEL_UNSUPPORTED_ARCH');
  const heads = rewriteGguf('heads.gguf', (m) => {
    m.set('llama.attention.head_count_kv', 3);
  });
  t.equal(await codeOf(() => loadModelSpec(heads)), 'WEFT_ERR_MODEL_BAD_CONFIG');
  const yarn = rewriteGguf('yarn.gguf', (m) => {
    m.set('llama.rope.scaling.type', 'yarn');
  });
  t.equal(await codeOf(() => loadModelSpec(yarn)), 'WEFT_ERR_MODEL_UNSUPPORTED_ARCH');
  const noEmbd = rewriteGguf('noembd.gguf', (_m, tensors) => {
    tensors[0].name = 'something_else.weight';
  });
  t.equal(await codeOf(() => loadModelSpec(noEmbd)), 'WEFT_ERR_MODEL_MISSING_TENSOR');
  const shape = rewriteGguf('shape.gguf', (m) => {
    m.set('llama.feed_forward_length', 160);
  });
  t.equal(await codeOf(() => loadModelSpec(shape)), 'WEFT_ERR_MODEL_SHAPE_MISMATCH');
  const tok = rewriteGguf('tok.gguf', (m) => {
    m.set('tokenizer.ggml.model', 'bert');
  });
  t.equal(await codeOf(() => loadModelSpec(tok)), 'WEFT_ERR_MODEL_TOKENIZER');
  const same = rewriteGguf('same.gguf', () => {});
  t.same((await loadModelSpec(same)).config, (await loadModelSpec(MODEL_GGUF)).config, 'the rewrite itself is faithful');
});

// Regressions found by `npm run fuzz` (bench/fuzz): values a hostile file controls.
t.test('fuzzing findings: layer counts, long pieces, prototype names', async (t) => {
  // the expected tensors were listed up front, one Map entry per layer: 4e9 layers ended in a
  // RangeError (Map maximum size exceeded) after seconds and gigabytes
  const layers = rewriteGguf('layers.gguf', (m) => {
    m.set('llama.block_count', 2 ** 32 - 1);
  });
  t.equal(await codeOf(() => loadModelSpec(layers)), 'WEFT_ERR_MODEL_MISSING_TENSOR', 'block_count 2^32 - 1: the first missing layer');
  // a 300k-character NORMAL piece: its splits were tried one by one, ~10^11 steps
  const long = rewriteGguf('long-piece.gguf', (m) => {
    const tokens = [...(m.get('tokenizer.ggml.tokens') as string[])];
    tokens[300] = '▁'.repeat(300_000);
    m.set('tokenizer.ggml.tokens', tokens);
  });
  t.equal((await loadModelSpec(long)).config.vocabSize, 512, 'a very long piece loads (it gets no merges)');
  // "constructor" is a key of every object: it named Object as the HF name of a GGUF tensor
  t.equal(hfTensorName('constructor'), null);
  t.equal(hfTensorName('blk.0.constructor.weight'), null);
  t.equal(hfTensorName('blk.0.__proto__.weight'), null);
});
