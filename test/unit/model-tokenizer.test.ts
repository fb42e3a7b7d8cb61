// Tokenizers rebuilt from GGUF metadata must encode exactly like the HF originals: the llama
// SentencePiece vocab of stories260K, a byte-level BPE (SmolLM2), and the synthetic vocab.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import t from 'tap';
import tokenizers from 'tokenizers';

import { encodeGgufHeader, readGguf } from '../../src/model/gguf.js';
import {
  ggufTokenizerEntries,
  ggufVocab,
  spmMerges,
  tokenizerJsonFromGguf,
  tokenizerJsonFromVocab,
  vocabFromTokenizerJson,
  type GgufVocab,
} from '../../src/model/gguf-tokenizer.js';
import { buildSyntheticVocab } from '../../src/model/synth.js';
import { MODEL_DIR, MODEL_GGUF, SMOLLM_DIR } from '../fixtures/paths.js';

const STRINGS = ['Once upon a time', 'Hello world', 'café ☕ 123', '  two  spaces', 'The quick brown fox jumps over the lazy dog.', "Lily's ball!"];
const MORE = ['', ' ', 'a', '\n\nnew\tlines\n', 'ÀÉÎÕÜ ñ ß 日本語 🎉🎉', 'x'.repeat(300), '1234567890 3.14159', "don't won't I'm"];

const tmp = mkdtempSync(join(tmpdir(), 'weft-tok-'));
t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

const load = (json: string) => tokenizers.Tokenizer.fromString(json);
const ids = async (tok: tokenizers.Tokenizer, s: string, special = true) => (await tok.encode(s, undefined, { addSpecialTokens: special })).getIds();

t.test('stories260K: the GGUF vocab rebuilds tokenizer.json', async (t) => {
  const json = tokenizerJsonFromGguf(readGguf(MODEL_GGUF).metadata, MODEL_GGUF);
  const refText = readFileSync(join(MODEL_DIR, 'tokenizer.json'), 'utf8');
  const mine = load(json),
    ref = load(refText);
  t.same((await mine.encode('Once upon a time')).getIds(), [1, 403, 407, 261, 378]);
  for (const s of [...STRINGS, ...MORE]) {
    const a = await ids(mine, s);
    t.same(a, await ids(ref, s), `encode ${JSON.stringify(s).slice(0, 40)}`);
    t.same(await ids(mine, s, false), await ids(ref, s, false), 'without BOS too');
    t.equal(await mine.decode(a, true), s, `decode round-trips ${JSON.stringify(s).slice(0, 40)}`);
  }
  // not just equivalent: the very merges SentencePieceExtractor derives, in its order
  t.same(JSON.parse(json).model.merges, JSON.parse(refText).model.merges);
});

t.test('stories260K tokenizer.json → GGUF vocab → the same tokenizer.json', async (t) => {
  const refText = readFileSync(join(MODEL_DIR, 'tokenizer.json'), 'utf8');
  const v = vocabFromTokenizerJson(refText, 512, { bosId: 1, eosId: 2 });
  t.equal(v.model, 'llama');
  t.same([v.tokenTypes[0], v.tokenTypes[1], v.tokenTypes[3], v.tokenTypes[300]], [2, 3, 6, 1], 'unknown, control, byte, normal');
  t.equal(v.addBos, true);
  t.same(JSON.parse(tokenizerJsonFromVocab(v)), JSON.parse(refText));
});

t.test('byte-level BPE (SmolLM2): tokenizer.json → GGUF vocab → tokenizer.json', async (t) => {
  const refText = readFileSync(join(SMOLLM_DIR, 'tokenizer.json'), 'utf8');
  const v = vocabFromTokenizerJson(refText, 49152, { bosId: 1, eosId: 2 });
  t.equal(v.model, 'gpt2');
  t.equal(v.pre, 'smollm', "Digits + ByteLevel is llama.cpp's smollm pre-tokenizer");
  t.equal(v.tokens.length, 49152);
  t.equal(v.addBos, false, 'no post-processor, no BOS');
  // through real GGUF bytes, as synth writes them
  const p = join(tmp, 'smol.gguf');
  writeFileSync(p, encodeGgufHeader(ggufTokenizerEntries(v), []));
  const json = tokenizerJsonFromGguf(readGguf(p).metadata, p);
  const mine = load(json),
    ref = load(refText);
  for (const s of [...STRINGS, ...MORE, '<|im_start|>user\nhi there<|im_end|>\n', 'def f(x):\n    return x**2  # 42']) {
    const a = await ids(mine, s);
    t.same(a, await ids(ref, s), `encode ${JSON.stringify(s).slice(0, 40)}`);
    t.equal(await mine.decode(a, false), await ref.decode(a, false), 'decodes alike');
  }
});

t.test('pre-tokenizer choice for gpt2 vocabularies', async (t) => {
  const v = vocabFromTokenizerJson(readFileSync(join(SMOLLM_DIR, 'tokenizer.json'), 'utf8'), 49152, { bosId: 1, eosId: 2 });
  const preOf = (pre: string) => JSON.parse(tokenizerJsonFromVocab({ ...v, pre })).pre_tokenizer;
  t.match(JSON.stringify(preOf('llama-bpe')), /p\{N\}\{1,3\}/, 'llama3 split regex');
  t.equal(JSON.parse(tokenizerJsonFromVocab({ ...v, pre: 'llama-bpe' })).model.ignore_merges, true);
  t.equal(preOf('gpt2').type, 'ByteLevel');
  t.equal(preOf('gpt2').use_regex, true, 'GPT-2 regex');
  t.match(JSON.stringify(preOf('qwen2')), /p\{N\}\|/);
  const withBos = JSON.parse(tokenizerJsonFromVocab({ ...v, addBos: true }));
  t.equal(withBos.post_processor.type, 'Sequence');
  const tok = load(tokenizerJsonFromVocab({ ...v, addBos: true }));
  t.same((await ids(tok, 'hi')).slice(0, 1), [1], 'BOS added when tokenizer.ggml.add_bos_token');
});

t.test('synthetic vocabulary', async (t) => {
  for (const size of [320, 1000, 32000]) {
    const v = buildSyntheticVocab(size);
    t.equal(v.tokens.length, size, `exactly ${size} tokens`);
    t.equal(new Set(v.tokens).size, size, 'no duplicates');
    t.same(v.tokens.slice(0, 4), ['<unk>', '<s>', '</s>', '<0x00>']);
    t.equal(v.tokens[258], '<0xFF>');
  }
  t.same(buildSyntheticVocab(1000), buildSyntheticVocab(1000), 'deterministic');
  t.throws(() => buildSyntheticVocab(100), { code: 'WEFT_ERR_MODEL_BAD_CONFIG' });
  const v = buildSyntheticVocab(4000);
  const json = tokenizerJsonFromVocab(v);
  const p = join(tmp, 'synth.gguf');
  writeFileSync(p, encodeGgufHeader(ggufTokenizerEntries(v), []));
  t.equal(tokenizerJsonFromGguf(readGguf(p).metadata, p), json, 'GGUF metadata and tokenizer.json agree');
  const tok = load(json);
  const once = await tok.encode('once upon a time');
  t.same(once.getTokens(), ['<s>', '▁once', '▁upon', '▁a', '▁time'], 'common words are single pieces');
  for (const s of [...STRINGS, ...MORE]) t.equal(await tok.decode(await ids(tok, s), true), s, `round trip ${JSON.stringify(s).slice(0, 30)}`);
});

t.test('bad GGUF tokenizer metadata', async (t) => {
  const meta = new Map(readGguf(MODEL_GGUF).metadata);
  meta.set('tokenizer.ggml.model', 'bert');
  t.throws(() => ggufVocab(meta, 'x.gguf'), { code: 'WEFT_ERR_MODEL_TOKENIZER' });
  meta.set('tokenizer.ggml.model', 'llama');
  meta.set('tokenizer.ggml.scores', [1, 2, 3]);
  t.throws(() => ggufVocab(meta, 'x.gguf'), { code: 'WEFT_ERR_MODEL_TOKENIZER' }, 'scores must match the tokens');
  meta.delete('tokenizer.ggml.tokens');
  t.throws(() => ggufVocab(meta, 'x.gguf'), { code: 'WEFT_ERR_MODEL_TOKENIZER' });
  t.throws(() => vocabFromTokenizerJson('{"model": {"type": "WordPiece", "vocab": {}}}', 10, { bosId: null, eosId: null }), {
    code: 'WEFT_ERR_MODEL_TOKENIZER',
  });
});

// Found by `npm run fuzz`: finding the splits of a piece costs the square of its length, and a
// hostile GGUF's 300k-character piece took minutes. Pieces up to 256 code points still get every
// merge; longer ones get none.
t.test('SentencePiece merges: pieces longer than 256 code points get none', async (t) => {
  const pieces = ['a', 'b', 'ab', 'a'.repeat(256), 'a'.repeat(255), 'a'.repeat(257), '😀'.repeat(256), '😀'.repeat(255), '😀', 'a'.repeat(300_000)];
  const v: GgufVocab = {
    model: 'llama',
    tokens: pieces,
    scores: pieces.map((_, i) => -i),
    tokenTypes: pieces.map(() => 1),
    merges: [],
    pre: 'default',
    bosId: null,
    eosId: null,
    unkId: null,
    addBos: false,
    addEos: false,
  };
  const merges = spmMerges(v, new Map(pieces.map((p, i) => [p, i])));
  const joined = new Set(merges.map(([a, b]) => a + b));
  t.ok(joined.has('ab'), 'a + b');
  t.ok(joined.has('a'.repeat(256)), 'a 256-character piece from a + its 255-character rest');
  t.ok(joined.has('😀'.repeat(256)), '256 code points (512 UTF-16 units) still count as 256');
  t.notOk(joined.has('a'.repeat(257)), 'no merges for a 257-character piece');
  t.notOk(joined.has('a'.repeat(300_000)), 'nor for a 300k-character one');
});
