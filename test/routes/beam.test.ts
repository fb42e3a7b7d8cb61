// Beam search through the server on stories260K: the seed's example as written, width 1 = greedy,
// the hypotheses against an independent brute-force beam search (every beam's full prefix
// re-run through a CPU engine each step, HF's algorithm written out here, sharing no code with
// scheduler/beam-search.ts), streamed text = final text, blocks shared between beams, abort
// frees everything, and ordinary requests batched with a search keep their tokens.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import t from 'tap';

import { EngineLoop } from '../../src/scheduler/engine.js';
import { runOffline } from '../../src/offline.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { EngineWorker } from '../../src/workers/pool.js';
import { MODEL_DIR } from '../fixtures/paths.js';
import { metricValue, sseData, startTestApp } from './helpers.js';

// the CPU backend: the brute-force oracle below runs the f32 CPU engine, whose scores the server must match to 1e-3
const s = await startTestApp({ backend: 'cpu' });
t.teardown(() => s.close());
const post = (url: string, payload: unknown) => s.app.inject({ method: 'POST', url, payload });
const EOS = 2;
const PERIOD = 426;

t.test("the seed's example works as written", async (t) => {
  const r = await post('/stream_chat_beam', { messages: ['Hello', 'Tell me a story.'], beam_width: 4, max_tokens: 32, use_rerank: true });
  t.equal(r.statusCode, 200, r.body);
  t.match(r.headers['content-type'], /text\/event-stream/);
  const events = sseData(r.body);
  t.equal(events.at(-1), '[DONE]');
  const final = events.at(-2) as { output_ids: number[]; output_text: string; reranker: string; finish_reason: string; beam_score: number };
  const tokens = events.slice(0, -2) as { token_id: number; text: string }[];
  t.same(
    tokens.map((e) => e.token_id),
    final.output_ids,
    'every token streamed once, in order: nothing retracted',
  );
  t.equal(tokens.map((e) => e.text).join(''), final.output_text, 'streamed text == final text');
  t.equal(final.reranker, 'logprob', 'use_rerank without a reranker model says which one ranked');
  t.ok(Number.isFinite(final.beam_score));
  const metrics = (await s.app.inject({ url: '/metrics' })).body;
  t.equal(metricValue(metrics, 'weft_num_requests_running'), 0);
  t.ok(metricValue(metrics, 'weft_beam_search_requests_total') >= 1, 'counted in /metrics');
});

t.test('bad beam bodies get a 400 with a code', async (t) => {
  const base = { messages: ['Hello'], max_tokens: 4 };
  for (const [extra, code] of [
    [{ beam_width: 0 }, 'WEFT_ERR_REQ_INVALID'],
    [{ beam_width: 17 }, 'WEFT_ERR_REQ_INVALID'],
    [{ early_stopping: 'sometimes' }, 'WEFT_ERR_REQ_INVALID'],
    [{ beam_width: 2, num_return_sequences: 3 }, 'WEFT_ERR_REQ_INVALID'],
    [{ temperature: 0.7 }, 'WEFT_ERR_REQ_INVALID'],
    [{ messages: [] }, 'WEFT_ERR_REQ_INVALID'],
  ] as const) {
    for (const url of ['/stream_chat_beam', '/rerank_scores']) {
      const r = await post(url, { ...base, ...extra });
      t.equal(r.statusCode, 400, `${url} ${JSON.stringify(extra)}`);
      t.equal(r.json().error.code, code);
    }
  }
});

t.test('beam_width 1 is greedy, token for token', async (t) => {
  const greedy = (await post('/chat', { messages: ['Once upon a time'], stream: false, temperature: 0, max_tokens: 24, ignore_eos: true })).json();
  const beam = (await post('/rerank_scores', { messages: ['Once upon a time'], beam_width: 1, max_tokens: 24, ignore_eos: true })).json();
  t.same(beam.hypotheses[0].output_ids, greedy.output_ids);
});

// ---- the brute-force reference ----

function logSoftmax(logits: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of logits) max = Math.max(max, x);
  let sum = 0;
  for (const x of logits) sum += Math.exp(x - max);
  const lse = max + Math.log(sum);
  return Float64Array.from(logits, (x) => x - lse);
}

interface RefHyp {
  tokens: number[];
  cum: number;
  score: number;
}

// HF's beam search, step by step, with each beam's next-token log-probs from a full re-run of its
// prefix. Returns the kept hypotheses best first.
function bruteForce(
  e: EngineInstance,
  prompt: number[],
  k: number,
  maxTokens: number,
  lp: number,
  early: boolean | 'never',
  enders: number[],
): RefHyp[] {
  let beams: { tokens: number[]; cum: number }[] = [{ tokens: [], cum: 0 }];
  const hyps: RefHyp[] = [];
  const addHyp = (h: RefHyp) => {
    if (hyps.length < k) hyps.push(h);
    else if (h.score > Math.min(...hyps.map((x) => x.score)))
      hyps.splice(
        hyps.findIndex((x) => x.score === Math.min(...hyps.map((y) => y.score))),
        1,
        h,
      );
  };
  let done = false;
  for (let len = 1; len <= maxTokens && !done; len++) {
    const logits = runOffline(
      e,
      beams.map((b) => ({ promptIds: [...prompt, ...b.tokens], maxTokens: 1, ignoreEos: true })),
      { returnLogits: true },
    );
    const all: { beam: number; token: number; cum: number }[] = [];
    beams.forEach((b, i) => logSoftmax(logits[i].logits[0]).forEach((l, token) => all.push({ beam: i, token, cum: b.cum + l })));
    all.sort((a, b) => b.cum - a.cum || a.beam - b.beam || a.token - b.token);
    const next: { tokens: number[]; cum: number }[] = [];
    for (const [rank, c] of all.slice(0, 2 * k).entries()) {
      const tokens = [...beams[c.beam].tokens, c.token];
      if (enders.includes(c.token)) {
        if (rank < k) addHyp({ tokens, cum: c.cum, score: c.cum / tokens.length ** lp });
      } else next.push({ tokens, cum: c.cum });
      if (next.length === k) break;
    }
    beams = next;
    if (hyps.length === k) {
      const best = beams[0].cum;
      const worst = Math.min(...hyps.map((h) => h.score));
      if (early === true) done = true;
      else if (early === 'never' && lp > 0) done = worst >= best / maxTokens ** lp;
      else done = worst >= best / len ** lp;
    }
  }
  if (!done) for (const b of beams) addHyp({ tokens: b.tokens, cum: b.cum, score: b.cum / b.tokens.length ** lp });
  return hyps.sort((a, b) => b.score - a.score);
}

t.test('the hypotheses equal an independent brute-force beam search', async (t) => {
  const e = await EngineInstance.open({ modelPath: MODEL_DIR, dtype: 'f32', numThreads: 1, numKvBlocks: 512, blockSize: 16 });
  t.teardown(() => e.close());
  const messages = ['Lily and Tom'];
  const prompt = (await post('/tokenize', { messages })).json().ids as number[];
  let sawStop = false,
    sawLength = false;
  for (const k of [2, 4, 8]) {
    for (const lp of [0, 1, 2]) {
      for (const early of [true, false, 'never'] as const) {
        const maxTokens = 14;
        // '.' (426) ends a hypothesis too: stories260K rarely ranks EOS among its top candidates
        const got = (
          await post('/rerank_scores', {
            messages,
            beam_width: k,
            max_tokens: maxTokens,
            length_penalty: lp,
            early_stopping: early,
            stop_token_ids: [PERIOD],
          })
        ).json();
        const want = bruteForce(e, prompt, k, maxTokens, lp, early, [EOS, PERIOD]);
        const what = `k=${k} lp=${lp} early=${early}`;
        t.same(
          got.hypotheses.map((h: { output_ids: number[] }) => h.output_ids),
          want.map((h) => h.tokens),
          `${what}: hypotheses`,
        );
        got.hypotheses.forEach((h: { beam_score: number; cumulative_logprob: number; finish_reason: string }, i: number) => {
          if (!want[i]) return;
          t.ok(
            Math.abs(h.cumulative_logprob - want[i].cum) < 1e-3 && Math.abs(h.beam_score - want[i].score) < 1e-3,
            `${what}: scores of hypothesis ${i}`,
          );
          if (h.finish_reason === 'stop') sawStop = true;
          else sawLength = true;
        });
      }
    }
  }
  t.ok(sawStop && sawLength, 'hypotheses ended both by EOS and by length');
});

t.test('beams share blocks; abort frees them all; ordinary requests keep their tokens', async (t) => {
  const worker = await EngineWorker.start(0, { modelPath: MODEL_DIR, dtype: 'f32', numThreads: 1, numKvBlocks: 256, blockSize: 16 });
  const used: number[] = [];
  const loop = new EngineLoop([worker], {
    scheduler: { maxModelLen: 512 },
    eosTokenIds: [EOS],
    onStep: () => used.push(loop.stats()[0].numUsedBlocks),
  });
  t.teardown(async () => {
    await loop.close();
    await worker.close();
  });
  const prompt = [1, ...Array.from({ length: 199 }, (_, i) => 3 + ((i * 37) % 400))]; // 200 tokens: 13 blocks
  const collect = async (h: { events: AsyncIterable<{ tokenId: number | null; finishReason?: string }> }) => {
    const ids: number[] = [];
    let reason = '';
    for await (const ev of h.events) {
      if (ev.tokenId !== null) ids.push(ev.tokenId);
      if (ev.finishReason) reason = ev.finishReason;
    }
    return { ids, reason };
  };
  const beamParams = { beamWidth: 8, maxTokens: 20, lengthPenalty: 1, earlyStopping: false as const };
  await collect(loop.submitBeam({ promptTokenIds: prompt }, beamParams));
  const one = Math.ceil((prompt.length + 20) / 16);
  t.ok(Math.max(...used) < 2 * one, `a width-8 search held at most ${Math.max(...used)} blocks; one sequence needs ${one}`);
  t.equal(loop.stats()[0].numUsedBlocks, 0, 'all freed at the end');

  // abort in the middle: wait until the search has streamed a token, then abort
  const h = loop.submitBeam({ promptTokenIds: prompt }, { ...beamParams, maxTokens: 200 });
  const it = h.events[Symbol.asyncIterator]();
  let first = await it.next();
  while (!first.done && first.value.tokenId === null) first = await it.next();
  loop.abort(h.requestId);
  for (let ev = await it.next(); !ev.done; ev = await it.next()) if (ev.value.finishReason) t.equal(ev.value.finishReason, 'abort');
  t.equal(loop.stats()[0].numUsedBlocks, 0, 'an aborted search frees every block');
  t.equal(loop.stats()[0].numRunning, 0);

  // an ordinary greedy request alone, then beside a running search
  const plain = { promptTokenIds: [1, 403, 407], maxTokens: 30, ignoreEos: true };
  const alone = await collect(loop.submit(plain));
  const [beside] = await Promise.all([collect(loop.submit(plain)), collect(loop.submitBeam({ promptTokenIds: prompt }, beamParams))]);
  t.same(beside.ids, alone.ids, 'batched with a beam search, the ordinary request is unchanged');
});

t.test("OpenAI routes: vLLM's use_beam_search, n = width, streamed and not", async (t) => {
  const messages = [{ role: 'user', content: 'Lily and Tom' }];
  const ref = (await post('/rerank_scores', { messages: ['Lily and Tom'], beam_width: 3, max_tokens: 12, length_penalty: 1 })).json();
  const plain = (await post('/v1/chat/completions', { messages, n: 3, use_beam_search: true, max_tokens: 12, temperature: 0 })).json();
  t.same(
    plain.choices.map((c: { message: { content: string } }) => c.message.content),
    ref.hypotheses.map((h: { output_text: string }) => h.output_text),
    'the n hypotheses, best first',
  );
  const streamed = sseData((await post('/v1/chat/completions', { messages, n: 3, use_beam_search: true, max_tokens: 12, stream: true })).body);
  t.equal(streamed.at(-1), '[DONE]');
  const chunks = streamed.slice(0, -1) as { choices: { index: number; delta: { content?: string }; finish_reason: string | null }[] }[];
  for (const i of [0, 1, 2]) {
    const text = chunks
      .flatMap((c) => c.choices)
      .filter((c) => c.index === i)
      .map((c) => c.delta.content ?? '')
      .join('');
    t.equal(text, plain.choices[i].message.content, `choice ${i}: streamed == not streamed`);
    t.ok(
      chunks.some((c) => c.choices.some((x) => x.index === i && x.finish_reason)),
      `choice ${i} finishes`,
    );
  }
  const cmpl = (await post('/v1/completions', { prompt: [1, 403, 407], n: 2, use_beam_search: true, max_tokens: 8 })).json();
  t.equal(cmpl.choices.length, 2);
  for (const [payload, what] of [
    [{ messages, n: 2, use_beam_search: true, logprobs: true }, 'logprobs'],
    [{ messages, length_penalty: 1 }, 'length_penalty without use_beam_search'],
  ] as const) {
    const r = await post('/v1/chat/completions', payload);
    t.equal(r.statusCode, 400, what);
    t.equal(r.json().error.code, 'WEFT_ERR_REQ_INVALID', what);
  }
});

t.test('stream_beams: event: beams frames show the live beams after each step', async (t) => {
  const r = await post('/stream_chat_beam', { messages: ['Hello'], beam_width: 3, max_tokens: 10, stream_beams: true });
  const frames = r.body
    .split('\n\n')
    .filter((f) => f.startsWith('event: beams\n'))
    .map((f) => JSON.parse(f.split('\n')[1].slice(6)));
  t.ok(frames.length >= 5, `${frames.length} beams frames`);
  for (const f of frames) {
    t.ok(f.beams.length >= 1 && f.beams.length <= 3, 'at most beam_width beams');
    for (const b of f.beams) t.equal(typeof b.text, 'string');
  }
  const lengths = frames.map((f) => f.beams[0].token_ids.length);
  t.same(
    lengths,
    [...lengths].sort((a, b) => a - b),
    'the beams grow step by step',
  );
  const final = sseData(r.body).at(-2) as { output_ids: number[] };
  const last = frames.at(-1);
  t.ok(
    [...last.beams, ...last.hypotheses].some(
      (b: { token_ids: number[] }) => final.output_ids.slice(0, b.token_ids.length).join() === b.token_ids.join(),
    ),
    "the chosen hypothesis continues one of the last frame's",
  );
  const quiet = await post('/stream_chat_beam', { messages: ['Hello'], beam_width: 3, max_tokens: 10 });
  t.notMatch(quiet.body, /event: beams/, 'off by default');
});

t.test('a search preempted for room comes back whole and ends as without pressure', async (t) => {
  const collectBeam = async (h: { events: AsyncIterable<{ tokenId: number | null; beam?: { chosen: { tokens: number[] } } }> }) => {
    let chosen: number[] = [];
    for await (const ev of h.events) if (ev.beam) chosen = ev.beam.chosen.tokens;
    return chosen;
  };
  const run = async (numKvBlocks: number) => {
    const worker = await EngineWorker.start(0, { modelPath: MODEL_DIR, dtype: 'f32', numThreads: 1, numKvBlocks, blockSize: 16 });
    const loop = new EngineLoop([worker], { scheduler: { maxModelLen: 512 }, eosTokenIds: [EOS] });
    const prompt = [1, ...Array.from({ length: 63 }, (_, i) => 3 + ((i * 53) % 400))];
    // an ordinary request arrives first and grows; the search then competes for the blocks left
    const other = loop.submit({ promptTokenIds: [1, ...Array.from({ length: 149 }, (_, i) => 5 + (i % 300))], maxTokens: 60, ignoreEos: true });
    const search = collectBeam(
      loop.submitBeam({ promptTokenIds: prompt }, { beamWidth: 4, maxTokens: 40, lengthPenalty: 1, earlyStopping: false, ignoreEos: true }),
    );
    for await (const _ of other.events) {
      /* drain */
    }
    const chosen = await search;
    const stats = loop.stats()[0];
    await loop.close();
    await worker.close();
    return { chosen, stats };
  };
  const free = await run(256);
  const tight = await run(22);
  t.equal(free.stats.numPreemptions, 0);
  t.ok(tight.stats.numPreemptions > 0, `${tight.stats.numPreemptions} preemptions with 22 blocks`);
  t.same(tight.chosen, free.chosen, 'the same hypothesis wins');
  t.equal(tight.stats.numUsedBlocks, 0, 'every block freed');
  // a search that could never fit the cache whole is refused up front
  const worker = await EngineWorker.start(0, { modelPath: MODEL_DIR, dtype: 'f32', numThreads: 1, numKvBlocks: 12, blockSize: 16 });
  const loop = new EngineLoop([worker], { scheduler: { maxModelLen: 512 }, eosTokenIds: [EOS] });
  t.throws(
    () =>
      loop.submitBeam(
        { promptTokenIds: Array.from({ length: 64 }, (_, i) => 3 + i) },
        { beamWidth: 4, maxTokens: 40, lengthPenalty: 1, earlyStopping: false },
      ),
    { code: 'WEFT_ERR_SCHED_TOO_LONG' },
  );
  await loop.close();
  await worker.close();
});

t.test('stop strings end hypotheses inside the search (and never appear in the result)', async (t) => {
  const e = await EngineInstance.open({ modelPath: MODEL_DIR, dtype: 'f32', numThreads: 1, numKvBlocks: 512, blockSize: 16 });
  t.teardown(() => e.close());
  // the vocabulary's tokens whose text holds a '.', read from tokenizer.json (not through weft)
  const vocab = JSON.parse(readFileSync(join(MODEL_DIR, 'tokenizer.json'), 'utf8')).model.vocab as Record<string, number>;
  const dots = Object.entries(vocab)
    .filter(([k]) => k.includes('.'))
    .map(([, id]) => id);
  t.ok(dots.length > 0);
  const messages = ['Lily and Tom'];
  const prompt = (await post('/tokenize', { messages })).json().ids as number[];
  let stopped = 0;
  for (const k of [2, 4]) {
    const got = (await post('/rerank_scores', { messages, beam_width: k, max_tokens: 14, stop: ['.'] })).json();
    const want = bruteForce(e, prompt, k, 14, 1, false, [EOS, ...dots]);
    t.same(
      got.hypotheses.map((h: { output_ids: number[] }) => h.output_ids),
      want.map((h) => h.tokens),
      `width ${k}: as a search where '.' ends a hypothesis`,
    );
    stopped += got.hypotheses.filter((h: { finish_reason: string }) => h.finish_reason === 'stop').length;
    for (const h of got.hypotheses) t.notMatch(h.output_text, /\./, 'the stop string is not returned');
    const streamed = sseData((await post('/stream_chat_beam', { messages, beam_width: k, max_tokens: 14, stop: '.' })).body);
    const final = streamed.at(-2) as { output_text: string };
    t.equal((streamed.slice(0, -2) as { text: string }[]).map((x) => x.text).join(''), final.output_text, 'streamed == final');
    t.equal(final.output_text, got.hypotheses[0].output_text);
  }
  t.ok(stopped > 0, `${stopped} hypotheses ended on the stop string`);
});
