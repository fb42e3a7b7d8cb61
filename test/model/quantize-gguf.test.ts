// `weft quantize IN OUT.gguf --type T` and `weft synth --type T`, through the command line: a HF
// directory is laid out as llama.cpp's converter lays it out (stories260K's tensors come out
// byte-equal to its GGUF, q/k permutation included), a GGUF keeps its metadata entries, weft's
// own block files of stories260K follow its f32 greedy, and bad requests fail with typed errors.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';

import { resolveDtype } from '../../src/config.js';
import { readGguf } from '../../src/model/gguf.js';
import { loadModelSpec } from '../../src/model/load.js';
import { readGgufEntries } from '../../src/model/quantize-gguf.js';
import { checkpointKind } from '../../src/model/types.js';
import { runOffline } from '../../src/offline.js';
import { TextTokenizer } from '../../src/tokenizer.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { runCli as weft } from '../fixtures/capture.js';
import { GOLDEN_IDS, MODEL_DIR, MODEL_GGUF } from '../fixtures/paths.js';
import { tensorValues } from './gguf-values.js';

const dir = mkdtempSync(join(tmpdir(), 'weft-quantize-gguf-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('from a HF directory: the tensors llama.cpp converted, the same config and tokenizer', async (t) => {
  const out = join(dir, 'hf-f32.gguf');
  t.equal((await weft(['quantize', MODEL_DIR, out, '--type', 'f32'])).code, 0);
  const ours = readGguf(out),
    theirs = readGguf(MODEL_GGUF);
  // the HF checkpoint ties its embeddings; the reference GGUF stores output.weight as a copy
  t.same(
    ours.tensors.map((x) => x.name).sort(),
    theirs.tensors
      .map((x) => x.name)
      .filter((n) => n !== 'output.weight')
      .sort(),
  );
  const differ = ours.tensors.filter((x) => {
    const [a, b] = [tensorValues(ours, x.name).values, tensorValues(theirs, x.name).values];
    return a.length !== b.length || a.some((v, i) => v !== b[i]);
  });
  t.same(
    differ.map((x) => x.name),
    [],
    'every tensor byte-equal to the GGUF llama.cpp converted (q/k rows permuted as it does)',
  );
  const [a, b] = [await loadModelSpec(out), await loadModelSpec(MODEL_DIR)];
  t.same(a.config, { ...b.config }, 'same config');
  const text = 'Once upon a time, Lily saw a big red ball.';
  t.same(await new TextTokenizer(a).encode(text), await new TextTokenizer(b).encode(text), 'same tokenization');
});

t.test('from a GGUF: every metadata entry kept, only the file type and quantization version set', async (t) => {
  const out = join(dir, 'gguf-q8_0.gguf');
  t.equal((await weft(['quantize', MODEL_GGUF, out, '--type', 'q8_0'])).code, 0);
  const src = readGgufEntries(readGguf(MODEL_GGUF)),
    got = readGgufEntries(readGguf(out));
  const strip = (es: typeof src) => es.filter((e) => e.key !== 'general.file_type' && e.key !== 'general.quantization_version');
  t.same(strip(got), strip(src), 'entries, value types and values');
  t.equal(got.find((e) => e.key === 'general.file_type')?.value, 7);
  t.equal(got.find((e) => e.key === 'general.quantization_version')?.value, 2);
  // an already quantized file is refused, naming the tensor and its type
  const again = await weft(['quantize', out, join(dir, 'again.gguf'), '--type', 'q4_0']);
  t.equal(again.code, 1);
  t.match(again.err, /WEFT_ERR_MODEL_UNSUPPORTED_DTYPE: .*is Q8_0; quantize reads F32, F16 or BF16/);
});

// weft's greedy ids from BOS on `file` (--dtype given, or auto: the file's types kept).
async function greedy(file: string, n: number, dtype?: 'f32'): Promise<number[]> {
  const e = await EngineInstance.open({
    modelPath: file,
    dtype: dtype ?? resolveDtype('auto', 'cpu', checkpointKind(await loadModelSpec(file))),
    numThreads: 1,
    numKvBlocks: 16,
    blockSize: 16,
  });
  const ids = runOffline(e, [{ promptIds: [1], maxTokens: n, ignoreEos: true }])[0].outputIds;
  e.close();
  return ids;
}

// weft's argmax after each prefix of BOS + `want`, against `want`: teacher-forced, so one early
// difference does not shift every later position.
async function teacherForced(file: string, want: number[]): Promise<number> {
  const dtype = resolveDtype('auto', 'cpu', checkpointKind(await loadModelSpec(file)));
  const e = await EngineInstance.open({ modelPath: file, dtype, numThreads: 1, numKvBlocks: 16, blockSize: 16 });
  const forced = [1, ...want];
  let agree = 0;
  for (let p = 0; p < want.length; p++)
    if (runOffline(e, [{ promptIds: forced.slice(0, p + 1), maxTokens: 1, ignoreEos: true }])[0].outputIds[0] === want[p]) agree++;
  e.close();
  return agree;
}

t.test('stories260K written by weft in block types follows its f32 greedy over 64 tokens', async (t) => {
  const want = await greedy(MODEL_GGUF, 64, 'f32');
  t.same(want.slice(0, 48), GOLDEN_IDS.slice(1), 'the f32 greedy is the golden one');
  for (const type of ['q4_0', 'q8_0', 'q4_k_m', 'q5_k_m', 'q6_k']) {
    const out = join(dir, `stories-${type}.gguf`);
    t.equal((await weft(['quantize', MODEL_GGUF, out, '--type', type])).code, 0);
    const [agree, free] = [await teacherForced(out, want), await greedy(out, 64)];
    const freeAgree = free.filter((x, i) => x === want[i]).length;
    t.ok(agree >= 58, `${type}: teacher-forced argmax as f32's at ${agree}/64 positions (free-running: ${freeAgree}/64)`);
  }
});

t.test('synth --type, and --dtype as its alias', async (t) => {
  const cfg = join(MODEL_DIR, 'config.json'),
    sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
  const a = join(dir, 'synth-type.gguf'),
    b = join(dir, 'synth-dtype.gguf'),
    c = join(dir, 'synth-q4km.gguf');
  t.equal((await weft(['synth', cfg, a, '--type', 'q8_0', '--seed', '4'])).code, 0);
  t.equal((await weft(['synth', cfg, b, '--dtype', 'q8_0', '--seed', '4'])).code, 0);
  t.equal(sha(a), sha(b), 'the same file');
  t.equal((await weft(['synth', cfg, c, '--type', 'q4_k_m', '--seed', '4'])).code, 0);
  const types = new Set(readGguf(c).tensors.map((x) => x.type));
  t.same(
    [...types].sort((x, y) => x - y),
    [0, 1, 6, 8],
    'F32 norms, F16 172-wide ffn_down, Q5_0 (Q4_K fallback), Q8_0 (Q6_K fallback)',
  );
});

t.test('bad requests fail with typed errors', async (t) => {
  const cfg = join(MODEL_DIR, 'config.json');
  const cases: [string[], RegExp][] = [
    [['quantize', MODEL_GGUF, join(dir, 'x.gguf'), '--type', 'q3_k'], /WEFT_ERR_CONFIG_INVALID: --type must be one of q4_k_m/],
    [['quantize', MODEL_GGUF, MODEL_GGUF, '--type', 'q8_0'], /WEFT_ERR_CONFIG_INVALID: quantize: the output must differ/],
    [['synth', cfg, join(dir, 'hf'), '--format', 'hf', '--type', 'q4_k_m'], /WEFT_ERR_CONFIG_INVALID: synth: q4_k_m is a GGUF type/],
    [['synth', cfg, join(dir, 'y.gguf'), '--type', 'q4_0', '--dtype', 'q8_0'], /WEFT_ERR_CONFIG_INVALID: --type and --dtype disagree/],
  ];
  for (const [args, err] of cases) {
    const r = await weft(args);
    t.equal(r.code, 1, args.join(' '));
    t.match(r.err, err);
  }
});
