import t from 'tap';

import { BeamSearch, type BeamParams, type EarlyStopping, type Hypothesis } from '../../src/scheduler/beam-search.js';

// A deterministic toy model: log-probs over 12 tokens from a hash of (seed, prefix). Logits are
// heavy-tailed so a few tokens dominate and beams diverge; EOS (id 0) grows likelier with length
// so that hypotheses end at different lengths.
const VOCAB = 12;
const EOS = 0;

function hashPrefix(seed: number, prefix: readonly number[]): number {
  let h = (2166136261 ^ seed) >>> 0;
  for (const x of [prefix.length, ...prefix]) h = Math.imul(h ^ (x + 0x9e37), 16777619) >>> 0;
  return h;
}

function mulberry32(a: number): () => number {
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let r = Math.imul(a ^ (a >>> 15), 1 | a);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

function model(seed: number, prefix: readonly number[]): number[] {
  const rand = mulberry32(hashPrefix(seed, prefix));
  const logits = Array.from({ length: VOCAB }, () => 5 * rand() ** 3);
  logits[EOS] = -1.5 + 0.7 * prefix.length + 2 * rand();
  const max = Math.max(...logits);
  const logZ = max + Math.log(logits.reduce((s, l) => s + Math.exp(l - max), 0));
  return logits.map((l) => l - logZ);
}

interface Case extends BeamParams {
  seed: number;
}

// ---- independent reference: HF's beam search written plainly, full vocabulary every step ----
interface RefHyp {
  tokens: number[];
  cum: number;
  score: number;
  reason: 'stop' | 'length';
}

function reference(c: Case): RefHyp[] {
  const k = c.beamWidth;
  const stops = c.stopTokenIds ?? [];
  const isEnd = (tok: number, len: number) => len >= (c.minTokens ?? 0) && ((!c.ignoreEos && c.eosTokenIds.includes(tok)) || stops.includes(tok));
  const cumOf = (tokens: number[]) => {
    let s = 0;
    for (let i = 0; i < tokens.length; i++) s += model(c.seed, tokens.slice(0, i))[tokens[i]];
    return s;
  };
  const penalized = (cum: number, len: number) => cum / len ** c.lengthPenalty;
  // BeamHypotheses, as in HF: a list plus a running worst score
  const hyps: RefHyp[] = [];
  let worst = 1e9;
  const add = (h: RefHyp) => {
    if (hyps.length < k || h.score > worst) {
      hyps.push(h);
      if (hyps.length > k) {
        const sorted = hyps.map((x, i) => [x.score, i]).sort((a, b) => a[0] - b[0] || a[1] - b[1]);
        hyps.splice(sorted[0][1], 1);
        worst = sorted[1][0];
      } else worst = Math.min(h.score, worst);
    }
  };
  let beams: number[][] = [[]];
  let heuristicDone = false;
  for (let len = 1; ; len++) {
    const all: { beam: number; tok: number; score: number }[] = [];
    beams.forEach((b, beam) => {
      const lp = model(c.seed, b);
      const cum = cumOf(b);
      for (let tok = 0; tok < VOCAB; tok++) all.push({ beam, tok, score: cum + lp[tok] });
    });
    all.sort((a, b) => b.score - a.score || a.beam - b.beam || a.tok - b.tok);
    const next: number[][] = [];
    for (const [rank, cand] of all.slice(0, 2 * k).entries()) {
      const tokens = [...beams[cand.beam], cand.tok];
      if (isEnd(cand.tok, len)) {
        if (rank < k) add({ tokens, cum: cand.score, score: penalized(cand.score, len), reason: 'stop' });
      } else next.push(tokens);
      if (next.length === k) break;
    }
    beams = next;
    if (hyps.length >= k) {
      if (k === 1 || c.earlyStopping === true) heuristicDone = true;
      else {
        const best = Math.max(...beams.map(cumOf));
        const boundLen = c.earlyStopping === 'never' && c.lengthPenalty > 0 ? c.maxTokens : len;
        heuristicDone = beams.length === 0 || worst >= best / boundLen ** c.lengthPenalty;
      }
    }
    if (heuristicDone || beams.length === 0 || len === c.maxTokens) break;
  }
  if (!heuristicDone) for (const b of beams) add({ tokens: b, cum: cumOf(b), score: penalized(cumOf(b), b.length), reason: 'length' });
  const asc = hyps.map((h, i) => ({ h, i })).sort((a, b) => a.h.score - b.h.score || a.i - b.i);
  const out: RefHyp[] = [];
  while (out.length < (c.numReturnSequences ?? k) && asc.length > 0) out.push(asc.pop()!.h);
  return out;
}

// ---- drive the policy as the engine would: top 2k per alive beam, in shuffled order ----
function drive(c: Case, check: (what: string, ok: boolean) => void): Hypothesis[] {
  const bs = new BeamSearch(c);
  const shuffle = mulberry32(c.seed * 7919 + 1);
  let committed: number[] = [];
  const isPrefix = (p: readonly number[], s: readonly number[]) => p.length <= s.length && p.every((x, i) => s[i] === x);
  while (!bs.isDone) {
    const before = bs.beams.map((b) => [...b.tokens]);
    const cands = before.map((tokens) =>
      model(c.seed, tokens)
        .map((logprob, tokenId) => ({ tokenId, logprob }))
        .sort((a, b) => b.logprob - a.logprob || a.tokenId - b.tokenId)
        .slice(0, bs.numCandidates)
        .sort(() => shuffle() - 0.5),
    );
    const step = bs.step(cands);
    check(
      'beams follow next',
      step.next.every((n, i) => isPrefix(before[n.parent], bs.beams[i].tokens) && bs.beams[i].tokens.at(-1) === n.tokenId),
    );
    const now = bs.committedPrefix();
    check('committedPrefix never shrinks', isPrefix(committed, now));
    committed = now;
  }
  const doneCommitted = bs.committedPrefix();
  const result = bs.finish();
  check('committedPrefix never shrinks (done)', isPrefix(committed, doneCommitted));
  check('committedPrefix is the final best', isPrefix(doneCommitted, result[0].tokens) && doneCommitted.length === result[0].tokens.length);
  check('committedPrefix stable after finish', isPrefix(doneCommitted, bs.committedPrefix()));
  return result;
}

function caseName(c: Case): string {
  const extra = `${c.ignoreEos ? ' ignoreEos' : ''}${c.stopTokenIds ? ` stop=${c.stopTokenIds}` : ''}${c.minTokens ? ` min=${c.minTokens}` : ''}`;
  return `k=${c.beamWidth} lp=${c.lengthPenalty} es=${c.earlyStopping} seed=${c.seed} max=${c.maxTokens}${extra}`;
}

function allCases(): Case[] {
  const cases: Case[] = [];
  for (const beamWidth of [1, 2, 4, 8])
    for (const lengthPenalty of [0, 1, 2])
      for (const earlyStopping of [true, false, 'never'] as EarlyStopping[])
        for (let seed = 1; seed <= 6; seed++) {
          const c: Case = { seed, beamWidth, lengthPenalty, earlyStopping, eosTokenIds: [EOS], maxTokens: 6 + (seed % 5) };
          if (seed % 3 === 1) Object.assign(c, { stopTokenIds: [11], minTokens: 2 });
          if (seed === 5) Object.assign(c, { ignoreEos: true, stopTokenIds: [7] });
          if (seed === 6) c.numReturnSequences = Math.max(1, beamWidth >> 1);
          cases.push(c);
        }
  return cases;
}

t.test('matches the brute-force HF reference', async (t) => {
  const reasons = { stop: 0, length: 0 };
  let numShort = 0;
  for (const c of allCases()) {
    const failures: string[] = [];
    const got = drive(c, (what, ok) => {
      if (!ok && !failures.includes(what)) failures.push(what);
    });
    const want = reference(c);
    const same =
      got.length === want.length &&
      got.every((h, i) => {
        const w = want[i];
        return (
          h.finishReason === w.reason &&
          h.tokens.join() === w.tokens.join() &&
          Math.abs(h.cumLogprob - w.cum) <= 1e-9 &&
          Math.abs(h.score - w.score) <= 1e-9
        );
      });
    if (!same) failures.push(`hypotheses differ: got ${JSON.stringify(got)} want ${JSON.stringify(want)}`);
    t.same(failures, [], caseName(c));
    for (const h of got) {
      reasons[h.finishReason]++;
      if (h.tokens.length < c.maxTokens) numShort++;
    }
  }
  t.ok(reasons.stop > 0 && reasons.length > 0, `both endings occur: ${JSON.stringify(reasons)}`);
  t.ok(numShort > 0, 'some hypotheses end before maxTokens');
});

t.test('width 1 equals greedy decoding', async (t) => {
  for (const c of allCases().filter((x) => x.beamWidth === 1)) {
    const greedy: number[] = [];
    while (greedy.length < c.maxTokens) {
      const lp = model(c.seed, greedy);
      const tok = lp.indexOf(Math.max(...lp));
      greedy.push(tok);
      const len = greedy.length;
      if (len >= (c.minTokens ?? 0) && ((!c.ignoreEos && tok === EOS) || (c.stopTokenIds ?? []).includes(tok))) break;
    }
    const got = drive(c, () => {});
    t.same(
      got.map((h) => h.tokens),
      [greedy],
      caseName(c),
    );
  }
});

t.test('score divides by the generated length, EOS included (hand-computed)', async (t) => {
  for (const lengthPenalty of [1, 2]) {
    const bs = new BeamSearch({ beamWidth: 2, maxTokens: 10, lengthPenalty, earlyStopping: false, eosTokenIds: [0] });
    t.equal(bs.numCandidates, 4);
    const s1 = bs.step([
      [
        { tokenId: 1, logprob: -0.1 },
        { tokenId: 0, logprob: -0.5 },
        { tokenId: 2, logprob: -1 },
        { tokenId: 3, logprob: -3 },
      ],
    ]);
    t.same(s1.next, [
      { parent: 0, tokenId: 1, cumLogprob: -0.1 },
      { parent: 0, tokenId: 2, cumLogprob: -1 },
    ]);
    t.same(s1.finished, [{ tokens: [0], cumLogprob: -0.5, score: -0.5, finishReason: 'stop' }]);
    t.notOk(s1.done, 'one hypothesis of two');
    // beam 0 = [1], beam 1 = [2]
    const s2 = bs.step([
      [
        { tokenId: 0, logprob: -0.2 },
        { tokenId: 4, logprob: -2 },
      ],
      [
        { tokenId: 5, logprob: -0.1 },
        { tokenId: 0, logprob: -3 },
      ],
    ]);
    const cum = -0.1 + -0.2;
    t.same(s2.finished, [{ tokens: [1, 0], cumLogprob: cum, score: cum / 2 ** lengthPenalty, finishReason: 'stop' }]);
    t.same(
      s2.next.map((n) => [n.parent, n.tokenId]),
      [
        [1, 5],
        [0, 4],
      ],
    );
    if (lengthPenalty === 1) {
      // best alive -1.1 / 2 cannot beat the worst kept score -0.5 / 1
      t.ok(s2.done && bs.isDone);
      t.throws(() => bs.step([[], []]), /done/);
      t.same(
        bs.finish().map((h) => h.tokens),
        [[1, 0], [0]],
        'alive beams are not added once is_done holds',
      );
    } else {
      // -1.1 / 2 ** 2 = -0.275 can still beat -0.5: finish() adds [2, 5], which replaces [0]
      t.notOk(s2.done);
      const out = bs.finish();
      t.same(
        out.map((h) => [h.tokens, h.finishReason]),
        [
          [[1, 0], 'stop'],
          [[2, 5], 'length'],
        ],
      );
      t.equal(out[1].score, (-1 + -0.1) / 4);
    }
    t.same(bs.committedPrefix(), [1, 0]);
  }
});

t.test('exact ties follow HF', async (t) => {
  const bs = new BeamSearch({ beamWidth: 2, maxTokens: 10, lengthPenalty: 0, earlyStopping: false, eosTokenIds: [0] });
  // equal scores: the lower token id ranks first, so EOS takes rank 0
  bs.step([
    [
      { tokenId: 1, logprob: -1 },
      { tokenId: 0, logprob: -1 },
      { tokenId: 2, logprob: -2 },
    ],
  ]);
  t.same(
    bs.beams.map((b) => b.tokens),
    [[1], [2]],
  );
  const s = bs.step([
    [
      { tokenId: 3, logprob: 0 },
      { tokenId: 0, logprob: 0 },
    ],
    [{ tokenId: 4, logprob: -0.5 }],
  ]);
  // the best alive beam (-1) only ties the worst kept score (-1): HF's is_done uses >=
  t.ok(s.done, 'a tie with the worst kept hypothesis ends the search');
  // equal scores: HF's finalize returns the later-added hypothesis first
  t.same(
    bs.finish().map((h) => h.tokens),
    [[1, 0], [0]],
  );
});

t.test('length ending at maxTokens and minTokens', async (t) => {
  const bs = new BeamSearch({ beamWidth: 1, maxTokens: 2, lengthPenalty: 1, earlyStopping: false, eosTokenIds: [0], minTokens: 2 });
  bs.step([
    [
      { tokenId: 0, logprob: -0.1 },
      { tokenId: 3, logprob: -2 },
    ],
  ]);
  t.same(bs.beams[0].tokens, [0], 'EOS before minTokens is an ordinary token');
  const s = bs.step([[{ tokenId: 4, logprob: -0.3 }]]);
  t.ok(s.done);
  t.same(bs.finish(), [{ tokens: [0, 4], cumLogprob: -0.1 + -0.3, score: (-0.1 + -0.3) / 2, finishReason: 'length' }]);
});

t.test('bad params throw', async (t) => {
  const ok: BeamParams = { beamWidth: 2, maxTokens: 4, lengthPenalty: 1, earlyStopping: false, eosTokenIds: [0] };
  t.doesNotThrow(() => new BeamSearch(ok));
  for (const beamWidth of [0, 17, 1.5, NaN]) t.throws(() => new BeamSearch({ ...ok, beamWidth }), /beam width/);
  for (const maxTokens of [0, -1, 2.5]) t.throws(() => new BeamSearch({ ...ok, maxTokens }), /maxTokens/);
  for (const numReturnSequences of [0, 3]) t.throws(() => new BeamSearch({ ...ok, numReturnSequences }), /numReturnSequences/);
  t.throws(() => new BeamSearch({ ...ok, lengthPenalty: NaN }), /lengthPenalty/);
  t.throws(() => new BeamSearch({ ...ok, earlyStopping: 'sometimes' as unknown as EarlyStopping }), /earlyStopping/);
  t.throws(() => new BeamSearch({ ...ok, minTokens: -1 }), /minTokens/);
  t.throws(() => new BeamSearch(ok).step([[], []]), /candidates for 1 beams/);
  t.throws(() => new BeamSearch(ok).step([[]]), /no finite candidate/);
});
