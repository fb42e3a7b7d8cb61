// The per-tensor type rules of the llama.cpp file types: expected tables for a 110M-shape (tied,
// 12 layers, rows of 768/2048) and a stories260K-shape (untied, 5 layers, rows of 64 and 172)
// tensor list, derived by reading llama-quant.cpp (llama_tensor_get_type_impl and
// tensor_type_fallback). When llama.cpp's llama-quantize is built (test/fixtures/paths.ts), the
// types it writes are compared with weft's choice and with the types in the files weft's quantize
// writes from the same F32 GGUF, and the two files' errors against that source; CI has no
// llama-quantize and skips that part.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';

import { configFromHf } from '../../src/model/config.js';
import { ggmlTypeName, readGguf } from '../../src/model/gguf.js';
import { chooseTensorTypes, GGUF_FILE_TYPES, useMoreBits, type GgufFileType, type TensorType } from '../../src/model/quant-mix.js';
import { quantizeToGguf } from '../../src/model/quantize-gguf.js';
import { synthesizeModel } from '../../src/model/synth.js';
import { squaredErrors, tensorBytes } from './gguf-values.js';
import { LLAMA_BASE, SHAPE_110M } from './configs.js';
import { llamaQuantize, NO_QUANTIZE } from './llamacpp.js';

const TOKENS = { bosTokenId: 1, eosTokenIds: [2] };
const SHAPE_260K = {
  ...LLAMA_BASE,
  hidden_size: 64,
  num_hidden_layers: 5,
  num_attention_heads: 8,
  num_key_value_heads: 4,
  intermediate_size: 172,
  vocab_size: 512,
  tie_word_embeddings: false,
};
// small enough for llama-quantize in a test, with 256-multiple rows and 16 layers for the "more bits" pattern
const SHAPE_16L = {
  ...LLAMA_BASE,
  hidden_size: 256,
  num_hidden_layers: 16,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 512,
  vocab_size: 512,
  tie_word_embeddings: true,
};

// The GGUF tensor list of a config, in the order synth writes it.
function tensorList(cfg: Record<string, unknown>): { name: string; dims: number[] }[] {
  const c = configFromHf(cfg, '<test>', null, TOKENS);
  const kv = c.numKvHeads * c.headDim;
  const list = [{ name: 'token_embd.weight', dims: [c.dim, c.vocabSize] }];
  for (let i = 0; i < c.numLayers; i++) {
    const p = `blk.${i}.`;
    list.push(
      { name: `${p}attn_norm.weight`, dims: [c.dim] },
      { name: `${p}attn_q.weight`, dims: [c.dim, c.dim] },
      { name: `${p}attn_k.weight`, dims: [c.dim, kv] },
      { name: `${p}attn_v.weight`, dims: [c.dim, kv] },
      { name: `${p}attn_output.weight`, dims: [c.dim, c.dim] },
      { name: `${p}ffn_norm.weight`, dims: [c.dim] },
      { name: `${p}ffn_gate.weight`, dims: [c.dim, c.ffnDim] },
      { name: `${p}ffn_up.weight`, dims: [c.dim, c.ffnDim] },
      { name: `${p}ffn_down.weight`, dims: [c.ffnDim, c.dim] },
    );
  }
  list.push({ name: 'output_norm.weight', dims: [c.dim] });
  if (!c.tieEmbeddings) list.push({ name: 'output.weight', dims: [c.dim, c.vocabSize] });
  return list;
}
const choose = (type: GgufFileType, cfg: Record<string, unknown>) =>
  chooseTensorTypes(type, tensorList(cfg), configFromHf(cfg, '<test>', null, TOKENS));

// Expected: a type for the norms, the embedding, the output, and per layer for attn_v, ffn_down and the rest.
interface Expected {
  embd: TensorType;
  output?: TensorType;
  v: (i: number) => TensorType;
  down: (i: number) => TensorType;
  attnOut?: TensorType; // attn_output, when it is not `other`
  other: TensorType;
}
function check(t: Test, got: Map<string, TensorType>, e: Expected, what: string): void {
  const wrong: string[] = [];
  for (const [name, type] of got) {
    const layer = Number(/^blk\.(\d+)\./.exec(name)?.[1]);
    const want = name.includes('_norm')
      ? 'F32'
      : name === 'token_embd.weight'
        ? e.embd
        : name === 'output.weight'
          ? e.output
          : name.includes('attn_v')
            ? e.v(layer)
            : name.includes('ffn_down')
              ? e.down(layer)
              : name.includes('attn_output')
                ? (e.attnOut ?? e.other)
                : e.other;
    if (type !== want) wrong.push(`${name}: ${type}, expected ${want}`);
  }
  t.same(wrong, [], what);
}

t.test('the "more bits" layers', async (t) => {
  const layers = (n: number) => Array.from({ length: n }, (_, i) => i).filter((i) => useMoreBits(i, n));
  t.same(layers(12), [0, 3, 6, 9, 10, 11]);
  t.same(layers(5), [2, 4]);
  t.same(layers(16), [0, 1, 4, 7, 10, 13, 14, 15]);
  t.same(layers(32), [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);
});

t.test('110M shape (tied embeddings, rows of 768 and 2048)', async (t) => {
  const more = (hi: TensorType, lo: TensorType) => (i: number) => ([0, 3, 6, 9, 10, 11].includes(i) ? hi : lo);
  const all = (x: TensorType) => () => x;
  check(t, choose('q4_k_m', SHAPE_110M), { embd: 'Q6_K', v: more('Q6_K', 'Q4_K'), down: more('Q6_K', 'Q4_K'), other: 'Q4_K' }, 'q4_k_m');
  check(t, choose('q5_k_m', SHAPE_110M), { embd: 'Q6_K', v: more('Q6_K', 'Q5_K'), down: more('Q6_K', 'Q5_K'), other: 'Q5_K' }, 'q5_k_m');
  check(t, choose('q6_k', SHAPE_110M), { embd: 'Q6_K', v: all('Q6_K'), down: all('Q6_K'), other: 'Q6_K' }, 'q6_k');
  for (const q of ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1'] as const) // the tied embedding is the output: Q6_K
    check(t, choose(q.toLowerCase() as GgufFileType, SHAPE_110M), { embd: 'Q6_K', v: all(q), down: all(q), other: q }, q);
  check(t, choose('q8_0', SHAPE_110M), { embd: 'Q8_0', v: all('Q8_0'), down: all('Q8_0'), other: 'Q8_0' }, 'q8_0');
  // the smaller mixes: no GQA here, so Q2_K's attn_v takes Q3_K; 12 layers: Q3_K_M's first sixteenth is empty
  const first = (k: number, hi: TensorType, lo: TensorType) => (i: number) => (i < k ? hi : lo);
  check(t, choose('q2_k', SHAPE_110M), { embd: 'Q6_K', v: all('Q3_K'), down: all('Q3_K'), attnOut: 'Q3_K', other: 'Q2_K' }, 'q2_k');
  const gqa4 = { ...SHAPE_110M, num_key_value_heads: 3 }; // 12 heads over 3: Q2_K's attn_v takes Q4_K
  check(t, choose('q2_k', gqa4), { embd: 'Q6_K', v: all('Q4_K'), down: all('Q3_K'), attnOut: 'Q3_K', other: 'Q2_K' }, 'q2_k, GQA 4');
  check(t, choose('q3_k_s', SHAPE_110M), { embd: 'Q6_K', v: all('Q3_K'), down: all('Q3_K'), other: 'Q3_K' }, 'q3_k_s');
  check(t, choose('q3_k_m', SHAPE_110M), { embd: 'Q6_K', v: first(2, 'Q5_K', 'Q4_K'), down: all('Q4_K'), attnOut: 'Q4_K', other: 'Q3_K' }, 'q3_k_m');
  check(t, choose('q3_k_l', SHAPE_110M), { embd: 'Q6_K', v: all('Q5_K'), down: all('Q5_K'), attnOut: 'Q5_K', other: 'Q3_K' }, 'q3_k_l');
  check(t, choose('q4_k_s', SHAPE_110M), { embd: 'Q6_K', v: first(4, 'Q5_K', 'Q4_K'), down: first(1, 'Q5_K', 'Q4_K'), other: 'Q4_K' }, 'q4_k_s');
  check(t, choose('q5_k_s', SHAPE_110M), { embd: 'Q6_K', v: all('Q5_K'), down: all('Q5_K'), other: 'Q5_K' }, 'q5_k_s');
  check(t, choose('f16', SHAPE_110M), { embd: 'F16', v: all('F16'), down: all('F16'), other: 'F16' }, 'f16');
  check(t, choose('f32', SHAPE_110M), { embd: 'F32', v: all('F32'), down: all('F32'), other: 'F32' }, 'f32');
});

t.test('stories260K shape (untied, rows of 64 and 172: the fallbacks)', async (t) => {
  const all = (x: TensorType) => () => x;
  const v = (hi: TensorType, lo: TensorType) => (i: number) => (i === 2 || i === 4 ? hi : lo);
  // 64-value rows: Q4_K → Q5_0, Q5_K → Q5_1, Q6_K → Q8_0; 172-value rows fit no block type: F16.
  // The untied embedding takes the base type, the output the output rule (rows not of 256: Q8_0).
  check(t, choose('q4_k_m', SHAPE_260K), { embd: 'Q5_0', output: 'Q8_0', v: v('Q8_0', 'Q5_0'), down: all('F16'), other: 'Q5_0' }, 'q4_k_m');
  check(t, choose('q5_k_m', SHAPE_260K), { embd: 'Q5_1', output: 'Q8_0', v: v('Q8_0', 'Q5_1'), down: all('F16'), other: 'Q5_1' }, 'q5_k_m');
  check(t, choose('q6_k', SHAPE_260K), { embd: 'Q8_0', output: 'Q8_0', v: all('Q8_0'), down: all('F16'), other: 'Q8_0' }, 'q6_k');
  // Q4_0: the output rule picks Q6_K (rows of 64 tile Q4_0's 32), which falls back to Q8_0
  check(t, choose('q4_0', SHAPE_260K), { embd: 'Q4_0', output: 'Q8_0', v: all('Q4_0'), down: all('F16'), other: 'Q4_0' }, 'q4_0');
  check(t, choose('q8_0', SHAPE_260K), { embd: 'Q8_0', output: 'Q8_0', v: all('Q8_0'), down: all('F16'), other: 'Q8_0' }, 'q8_0');
  // Q2_K and Q3_K fall back to Q4_0; GQA 2 is under Q2_K's 4, so its attn_v is Q3_K, then Q4_0
  const out = { embd: 'Q4_0', output: 'Q8_0', down: all('F16'), other: 'Q4_0' } as const;
  check(t, choose('q2_k', SHAPE_260K), { ...out, v: all('Q4_0'), attnOut: 'Q4_0' }, 'q2_k');
  check(t, choose('q3_k_m', SHAPE_260K), { ...out, v: (i) => (i < 2 ? 'Q5_1' : 'Q5_0'), attnOut: 'Q5_0' }, 'q3_k_m');
  check(t, choose('q3_k_l', SHAPE_260K), { ...out, v: all('Q5_1'), attnOut: 'Q5_1' }, 'q3_k_l');
  check(t, choose('q4_k_s', SHAPE_260K), { ...out, embd: 'Q5_0', v: (i) => (i < 4 ? 'Q5_1' : 'Q5_0'), other: 'Q5_0' }, 'q4_k_s');
});

t.test('llama-quantize writes the same types, and so does weft quantize', { skip: NO_QUANTIZE }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-quant-mix-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const typesOf = (file: string) => new Map(readGguf(file).tensors.map((x) => [x.name, ggmlTypeName(x.type)]));
  for (const [shape, cfg] of [
    ['stories260K', SHAPE_260K],
    ['16 layers', SHAPE_16L],
  ] as const) {
    const src = join(dir, 'src.gguf');
    await synthesizeModel({ config: cfg, out: src, format: 'gguf', type: 'f32', seed: 5 });
    for (const type of GGUF_FILE_TYPES.filter((x) => x !== 'f32')) {
      const theirs = join(dir, `llama-${type}.gguf`),
        ours = join(dir, `weft-${type}.gguf`);
      llamaQuantize(src, theirs, type);
      await quantizeToGguf(src, ours, type);
      const expected = Object.fromEntries(typesOf(theirs));
      t.same(Object.fromEntries(choose(type, cfg)), expected, `${shape} ${type}: the rules give llama-quantize's types`);
      t.same(Object.fromEntries(typesOf(ours)), expected, `${shape} ${type}: weft quantize writes them`);
      // weft's decoders read llama.cpp's blocks (a layout misread would be far off), and weft's
      // encoders are about as close to the source as llama.cpp's reference quantizers
      const [oursErr, theirsErr] = squaredErrors(src, [ours, theirs]);
      const ratio = theirsErr === 0 ? (oursErr === 0 ? 1 : Infinity) : Math.sqrt(oursErr / theirsErr);
      t.ok(ratio <= 1.1, `${shape} ${type}: RMS error against the F32 source, weft / llama.cpp = ${ratio.toFixed(3)}`);
      // round to nearest against one scale per block has one answer: the same bytes as llama.cpp's
      const [a, b] = [readGguf(ours), readGguf(theirs)];
      const legacy = a.tensors.filter((x) => !['Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K'].includes(tensorBytes(a, x.name).type));
      const differ = legacy.filter((x) => Buffer.compare(tensorBytes(a, x.name).buf, tensorBytes(b, x.name).buf) !== 0);
      t.same(
        differ.map((x) => x.name),
        [],
        `${shape} ${type}: the ${legacy.length} tensors not in K-quants byte-equal to llama-quantize's`,
      );
    }
  }
});
