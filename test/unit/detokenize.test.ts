// The streamed text is decoded on the event loop's thread (decodeNow, IncrementalDetokenizer):
// it must equal the tokenizer's own decode, for a SentencePiece tokenizer with byte fallback
// (stories260K) and a byte-level BPE one (SmolLM2), special tokens kept or skipped.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import t from 'tap';

import { IncrementalDetokenizer, TextTokenizer } from '../../src/tokenizer.js';
import { MODEL_DIR, SMOLLM_DIR } from '../fixtures/paths.js';

function tokenizerAt(dir: string, bosTokenId: number | null): TextTokenizer {
  const tokenizerJson = readFileSync(join(dir, 'tokenizer.json'), 'utf8');
  return new TextTokenizer({ tokenizerJson, path: dir, config: { bosTokenId } as never });
}

// a seeded generator of id sequences: plain ids, byte tokens and special ones mixed
function* sequences(vocab: number, specials: number[], count: number): Generator<number[]> {
  let s = 12345;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31);
  for (let c = 0; c < count; c++) {
    const ids: number[] = [];
    for (let i = 0, n = 1 + (next() % 40); i < n; i++) {
      const r = next() % 10;
      ids.push(r === 0 && specials.length ? specials[next() % specials.length] : r < 3 ? 3 + (next() % 256) : next() % vocab);
    }
    yield ids;
  }
}

const CASES = [
  { name: 'stories260K (SentencePiece, byte fallback)', dir: MODEL_DIR, bos: 1 },
  { name: 'SmolLM2 (byte-level BPE)', dir: SMOLLM_DIR, bos: null },
];

const TEXTS = [
  'Once upon a time, there was a little girl named Lily.',
  'She said: "Héllo, wörld!" — and then 3 + 4 = 7.',
  'Emoji 🙂🚀 and CJK 你好世界, tabs\tand\nnewlines.',
  '  leading spaces, trailing spaces  ',
];

for (const c of CASES) {
  t.test(`${c.name}: decodeNow equals the tokenizer's decode; the incremental stream equals it on real text`, async (t) => {
    const tok = tokenizerAt(c.dir, c.bos);
    const vocab = tok.vocabSize();
    const specials = [0, 1, 2].filter((id) => id < vocab);
    let numSeqs = 0;
    // random ids (invalid UTF-8 byte runs and special tokens included)
    for (const ids of sequences(vocab, specials, 300)) {
      for (const skip of [true, false]) {
        const got = tok.decodeNow(ids, skip);
        const want = await tok.decode(ids, skip);
        if (got !== want) {
          t.fail(`decodeNow(${JSON.stringify(ids)}, ${skip}) = ${JSON.stringify(got)}, decode = ${JSON.stringify(want)}`);
          return;
        }
      }
      numSeqs++;
    }
    t.equal(numSeqs, 300, '300 random sequences, special tokens skipped and kept: decodeNow = decode');
    for (const text of TEXTS) {
      const ids = await tok.encode(text, false);
      for (const skip of [true, false]) {
        const d = new IncrementalDetokenizer(tok, skip);
        let streamed = '';
        for (const id of ids) streamed += d.push(id);
        streamed += d.flush();
        t.equal(streamed, await tok.decode(ids, skip), `streamed token by token: ${JSON.stringify(text)}`);
      }
    }
  });
}
