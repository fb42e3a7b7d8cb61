// Prompt scoring: /v1/completions with echo and logprobs (what lm-evaluation-harness's
// loglikelihood sends) returns every prompt token's log-prob given the tokens before it. The
// oracle runs each prefix of the prompt alone through an engine and takes the log-softmax of its
// last row's full logits here, sharing no code with the scoring path.
import t from 'tap';

import { loadModelSpec } from '../../src/model/load.js';
import { GREEDY } from '../../src/sampling.js';
import { EngineInstance } from '../../src/workers/engine-instance.js';
import { packStep } from '../../src/workers/step-pack.js';
import { MODEL_DIR } from '../fixtures/paths.js';
import { sseData, startTestApp } from './helpers.js';

const PROMPT = 'Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her friends.';
const TOP = 2;

interface Oracle {
  logprob: number[]; // [p]: prompt token p's log-prob given tokens 0..p-1 (p >= 1)
  rank: number[]; // [p]: 1 + the tokens with a larger logit there
  top: number[][]; // [p]: the 3 likeliest log-probs there, best first
  topIds: number[][];
}

async function oracle(ids: number[]): Promise<Oracle> {
  const e = await EngineInstance.open({ modelPath: MODEL_DIR, dtype: 'f32', numThreads: 1, numKvBlocks: 16, blockSize: 16 });
  const out: Oracle = { logprob: [], rank: [], top: [], topIds: [] };
  for (let p = 1; p < ids.length; p++) {
    const tokens = ids.slice(0, p);
    const blockTable = Array.from({ length: Math.ceil(p / 16) }, (_, i) => i);
    const step = { seqId: p, tokens, startPos: 0, promptLen: p, blockTable, doSample: true, sampling: { ...GREEDY } };
    const logits = e.step(packStep([step], 16, { returnLogits: true, release: p > 1 ? [p - 1] : [] })).logits!;
    let max = -Infinity;
    for (const x of logits) max = Math.max(max, x);
    let sum = 0;
    for (const x of logits) sum += Math.exp(x - max);
    const lse = max + Math.log(sum);
    out.logprob[p] = logits[ids[p]] - lse;
    out.rank[p] = 1 + logits.filter((x) => x > logits[ids[p]]).length;
    const order = [...logits.keys()].sort((a, b) => logits[b] - logits[a] || a - b).slice(0, 3);
    out.top[p] = order.map((i) => logits[i] - lse);
    out.topIds[p] = order;
  }
  e.close();
  return out;
}

interface Lp {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
}

function checkPrompt(t: Tap.Test, lp: Lp, o: Oracle, n: number, what: string): void {
  t.equal(lp.token_logprobs[0], null, `${what}: the first prompt token has no log-prob`);
  t.equal(lp.top_logprobs[0], null);
  let worst = 0,
    worstTop = 0;
  for (let p = 1; p < n; p++) {
    worst = Math.max(worst, Math.abs((lp.token_logprobs[p] as number) - o.logprob[p]));
    const top = Object.values(lp.top_logprobs[p] ?? {}).sort((a, b) => b - a);
    // two alternatives with the same text would fold into one key; the stories260K vocabulary has none
    t.equal(top.length, TOP, `${what}: position ${p} has ${TOP} alternatives`);
    for (let k = 0; k < TOP; k++) worstTop = Math.max(worstTop, Math.abs(top[k] - o.top[p][k]));
  }
  t.ok(worst < 1e-4, `${what}: prompt log-probs equal the prefixes run alone (largest difference ${worst})`);
  t.ok(worstTop < 1e-4, `${what}: and so do the likeliest alternatives' (largest difference ${worstTop})`);
}

const spec = await loadModelSpec(MODEL_DIR);
t.ok(spec.config.vocabSize > 0);

for (const maxNumBatchedTokens of [256, 7]) {
  t.test(`echo with logprobs scores the prompt (max_num_batched_tokens ${maxNumBatchedTokens})`, async (t) => {
    const s = await startTestApp({ maxNumBatchedTokens, maxNumSeqs: 4, backend: 'cpu' });
    t.teardown(() => s.close());
    const post = (payload: unknown) => s.app.inject({ method: 'POST', url: '/v1/completions', payload });
    const ids: number[] = (await s.app.inject({ method: 'POST', url: '/tokenize', payload: { text: PROMPT } })).json().ids;
    t.ok(ids.length > 20, `a prompt of ${ids.length} tokens`);
    const o = await oracle(ids);

    // the same prompt once without scoring first: its blocks are in the prefix cache, which a
    // scoring request must not use (a cached position yields no log-prob)
    const plain = (await post({ prompt: PROMPT, max_tokens: 4, temperature: 0, logprobs: TOP })).json();
    const body = { prompt: PROMPT, max_tokens: 4, temperature: 0, logprobs: TOP, echo: true };
    const r = await post(body);
    t.equal(r.statusCode, 200, r.body);
    const c = r.json().choices[0];
    const lp = c.logprobs as Lp;
    t.equal(c.text, PROMPT + plain.choices[0].text, 'the text: the prompt, then the same completion');
    t.equal(lp.tokens.length, ids.length + 4, 'a log-prob entry for every prompt and completion token');
    checkPrompt(t, lp, o, ids.length, 'plain');
    t.same(lp.token_logprobs.slice(ids.length), plain.choices[0].logprobs.token_logprobs, "the completion's log-probs as without echo");
    t.equal(lp.text_offset[ids.length], PROMPT.length, "the completion's offsets start after the echoed prompt");
    // a prompt token's offset: where its text starts in the echoed prompt (BOS takes no room)
    t.same(lp.text_offset.slice(0, 3), [0, 0, 'Once'.length]);
    for (let p = 1; p < ids.length; p++)
      t.ok(
        PROMPT.startsWith(lp.tokens[p].trimStart(), lp.text_offset[p] + (lp.tokens[p].startsWith(' ') && p > 1 ? 1 : 0)),
        `token ${p} at its offset`,
      );
    t.same(
      lp.text_offset.slice(ids.length),
      plain.choices[0].logprobs.text_offset.map((x: number) => x + PROMPT.length),
    );
    t.equal(r.json().usage.prompt_tokens_details.cached_tokens, 0, 'nothing came from the prefix cache');
    t.equal(r.json().usage.completion_tokens, 4);

    // streamed: the first chunk carries the prompt and its log-probs, the rest as without echo
    const streamed = await post({ ...body, stream: true });
    const chunks = (sseData(streamed.body).filter((d) => d !== '[DONE]') as { choices: { text: string; logprobs: Lp | null }[] }[])
      .map((d) => d.choices[0])
      .filter((x) => x !== undefined);
    t.equal(chunks.map((x) => x.text).join(''), c.text, 'streamed text');
    const joined: Lp = { tokens: [], token_logprobs: [], top_logprobs: [], text_offset: [] };
    for (const x of chunks) if (x.logprobs) for (const k of Object.keys(joined) as (keyof Lp)[]) (joined[k] as unknown[]).push(...x.logprobs[k]);
    t.same(joined, lp, 'streamed log-probs, joined, equal the plain ones');

    // max_tokens 0 (how scoring scripts ask): the prompt alone, scored, nothing generated
    const zero = await post({ ...body, max_tokens: 0 });
    t.equal(zero.statusCode, 200, zero.body);
    const z = zero.json();
    t.equal(z.choices[0].text, PROMPT);
    t.equal(z.choices[0].finish_reason, 'length');
    t.equal(z.usage.completion_tokens, 0);
    t.same(
      z.choices[0].logprobs,
      {
        tokens: lp.tokens.slice(0, ids.length),
        token_logprobs: lp.token_logprobs.slice(0, ids.length),
        top_logprobs: lp.top_logprobs.slice(0, ids.length),
        text_offset: lp.text_offset.slice(0, ids.length),
      },
      'max_tokens 0: the prompt part of the same log-probs',
    );
    const zeroStreamed = await post({ ...body, max_tokens: 0, stream: true });
    const zc = (
      sseData(zeroStreamed.body).filter((d) => d !== '[DONE]') as { choices: { text: string; logprobs: Lp | null; finish_reason: string | null }[] }[]
    )
      .map((d) => d.choices[0])
      .filter((x) => x !== undefined);
    t.equal(zc.map((x) => x.text).join(''), PROMPT, 'max_tokens 0 streamed: the prompt');
    t.same(zc.at(-1)?.logprobs, z.choices[0].logprobs, 'and its log-probs, in the last chunk');
    t.equal(zc.at(-1)?.finish_reason, 'length');

    // vLLM's prompt_logprobs: per position the prompt token's log-prob and rank, and the likeliest 3
    const v = await post({ prompt: PROMPT, max_tokens: 2, temperature: 0, prompt_logprobs: 3, echo: true, logprobs: 1 });
    t.equal(v.statusCode, 200, v.body);
    const pl = v.json().choices[0].prompt_logprobs as (Record<string, { logprob: number; rank: number; decoded_token: string }> | null)[];
    t.equal(pl.length, ids.length);
    t.equal(pl[0], null);
    let worst = 0,
      ranks = 0;
    for (let p = 1; p < ids.length; p++) {
      const own = pl[p]![String(ids[p])];
      worst = Math.max(worst, Math.abs(own.logprob - o.logprob[p]));
      if (own.rank === o.rank[p]) ranks++;
      for (let k = 0; k < 3; k++) {
        const e = pl[p]![String(o.topIds[p][k])];
        worst = Math.max(worst, Math.abs(e.logprob - o.top[p][k]));
        t.equal(e.rank, k + 1, `position ${p}: the ${k + 1}. likeliest has rank ${k + 1}`);
      }
      t.equal(Object.keys(pl[p]!).length, o.rank[p] <= 3 ? 3 : 4, `position ${p}: the 3 likeliest and the prompt's own token`);
    }
    t.ok(worst < 1e-4, `prompt_logprobs equal the prefixes run alone (largest difference ${worst})`);
    t.equal(ranks, ids.length - 1, 'every prompt token has its rank');
    t.ok(
      (v.json().choices[0].logprobs as Lp).top_logprobs.slice(1, ids.length).every((x) => Object.keys(x ?? {}).length === 1),
      "echo's log-probs keep their own count (1) beside prompt_logprobs' 3",
    );
  });
}

t.test("chat completions' prompt_logprobs: the rendered prompt's, beside the choices (vLLM's layout)", async (t) => {
  const s = await startTestApp({ backend: 'cpu' });
  t.teardown(() => s.close());
  const messages = [{ role: 'user', content: PROMPT }];
  const ids: number[] = (await s.app.inject({ method: 'POST', url: '/tokenize', payload: { messages } })).json().ids;
  const o = await oracle(ids);
  const post = (extra: object) =>
    s.app.inject({ method: 'POST', url: '/v1/chat/completions', payload: { messages, max_tokens: 4, temperature: 0, ...extra } });
  const r = await post({ prompt_logprobs: 2 });
  t.equal(r.statusCode, 200, r.body);
  const pl = r.json().prompt_logprobs as (Record<string, { logprob: number; rank: number }> | null)[];
  t.equal(pl.length, ids.length, 'one entry per token of the rendered prompt');
  t.equal(pl[0], null);
  let worst = 0;
  for (let p = 1; p < ids.length; p++) {
    const own = pl[p]![String(ids[p])];
    t.equal(own.rank, o.rank[p], `position ${p}: the prompt token's rank`);
    worst = Math.max(worst, Math.abs(own.logprob - o.logprob[p]), Math.abs(pl[p]![String(o.topIds[p][0])].logprob - o.top[p][0]));
  }
  t.ok(worst < 1e-4, `equal to the prefixes run alone (largest difference ${worst})`);
  const plain = await post({});
  t.equal(r.json().choices[0].message.content, plain.json().choices[0].message.content, 'the completion is the one asked without it');
  const two = await post({ prompt_logprobs: 2, n: 2 });
  t.equal(two.statusCode, 200, two.body);
  t.same(two.json().prompt_logprobs, pl, 'n = 2: the same prompt_logprobs (the prompt is scored once)');
  t.equal(two.json().choices.length, 2);
  t.notOk('prompt_logprobs' in plain.json(), 'absent when not asked');
  for (const [extra, why] of [
    [{ prompt_logprobs: 1, stream: true }, /not streamed/],
    [{ prompt_logprobs: 1, n: 2, use_beam_search: true }, /beam/],
  ] as const) {
    const bad = await post(extra);
    t.equal(bad.statusCode, 400, JSON.stringify(extra));
    t.match(bad.json().error, { code: 'WEFT_ERR_REQ_INVALID', message: why });
  }
});

// n samples fork from the first once its prompt is computed: it alone scores the prompt and hands
// its scores to the others, so every choice carries them, streamed or not.
t.test('echo with logprobs, two prompts × n = 2: every choice has its own prompt scored', async (t) => {
  const s = await startTestApp({ backend: 'cpu' });
  t.teardown(() => s.close());
  const other = 'The little dog ran to the tree and barked at a bird.';
  const idsOf = async (text: string): Promise<number[]> => (await s.app.inject({ method: 'POST', url: '/tokenize', payload: { text } })).json().ids;
  const ids = [await idsOf(PROMPT), await idsOf(other)];
  const o = [await oracle(ids[0]), await oracle(ids[1])];
  const body = { prompt: [PROMPT, other], n: 2, max_tokens: 3, temperature: 1, seed: 5, logprobs: TOP, echo: true, prompt_logprobs: 1 };
  const r = await s.app.inject({ method: 'POST', url: '/v1/completions', payload: body });
  t.equal(r.statusCode, 200, r.body);
  const choices = r.json().choices as { index: number; text: string; logprobs: Lp; prompt_logprobs: unknown[] }[];
  t.equal(choices.length, 4);
  for (const c of choices) {
    const p = Math.floor(c.index / 2);
    t.ok(c.text.startsWith([PROMPT, other][p]), `choice ${c.index}: its prompt echoed`);
    checkPrompt(t, c.logprobs, o[p], ids[p].length, `choice ${c.index}`);
    t.equal(c.prompt_logprobs.length, ids[p].length, `choice ${c.index}: prompt_logprobs for its prompt`);
  }
  const zero = await s.app.inject({ method: 'POST', url: '/v1/completions', payload: { ...body, max_tokens: 0, prompt_logprobs: undefined } });
  t.equal(zero.statusCode, 200, zero.body);
  for (const c of zero.json().choices as { index: number; text: string; logprobs: Lp }[]) {
    const p = Math.floor(c.index / 2);
    t.equal(c.text, [PROMPT, other][p], `max_tokens 0, choice ${c.index}: the prompt alone`);
    checkPrompt(t, c.logprobs, o[p], ids[p].length, `max_tokens 0, choice ${c.index}`);
  }
  const streamed = await s.app.inject({ method: 'POST', url: '/v1/completions', payload: { ...body, prompt_logprobs: undefined, stream: true } });
  t.equal(streamed.statusCode, 200, streamed.body);
  const chunks = (sseData(streamed.body).filter((d) => d !== '[DONE]') as { choices: { index: number; logprobs: Lp | null }[] }[]).flatMap(
    (d) => d.choices,
  );
  for (let i = 0; i < 4; i++) {
    const first = chunks.find((c) => c.index === i && c.logprobs);
    t.ok(first, `streamed choice ${i} has log-probs`);
    if (first) checkPrompt(t, first.logprobs!, o[Math.floor(i / 2)], ids[Math.floor(i / 2)].length, `streamed choice ${i}`);
  }
});

t.test('a sibling aborted before the fork leaves the others their prompt scores', async (t) => {
  const s = await startTestApp({ backend: 'cpu' });
  t.teardown(() => s.close());
  const ids: number[] = (await s.app.inject({ method: 'POST', url: '/tokenize', payload: { text: PROMPT } })).json().ids;
  const gens = s.engine.service.startN({ promptIds: ids, maxTokens: 3, promptLogprobs: 1, sampling: { temperature: 1, seed: 9 } }, 3);
  gens[1].abort();
  const [first, aborted, last] = await Promise.all(gens.map((g) => g.result));
  t.equal(aborted.finishReason, 'abort');
  t.equal(first.promptLogprobs?.length, ids.length, 'the scoring sample has its scores');
  t.equal(last.promptLogprobs, first.promptLogprobs, 'the sibling after the aborted one is given them');
});

t.test('scoring and plain requests sent together (batched in the same steps): each scored prompt as alone', async (t) => {
  const s = await startTestApp({ backend: 'cpu' });
  t.teardown(() => s.close());
  const post = (payload: unknown) => s.app.inject({ method: 'POST', url: '/v1/completions', payload });
  const other = 'The little dog ran to the tree and barked at a bird.';
  const idsOf = async (text: string): Promise<number[]> => (await s.app.inject({ method: 'POST', url: '/tokenize', payload: { text } })).json().ids;
  const [ids1, ids2] = [await idsOf(PROMPT), await idsOf(other)];
  const [o1, o2] = [await oracle(ids1), await oracle(ids2)];
  const [r1, r2, r3] = await Promise.all([
    post({ prompt: PROMPT, max_tokens: 8, temperature: 0, logprobs: TOP, echo: true }),
    post({ prompt: other, max_tokens: 8, temperature: 0, logprobs: TOP, echo: true }),
    post({ prompt: 'Lily', max_tokens: 8, temperature: 0 }),
  ]);
  for (const r of [r1, r2, r3]) t.equal(r.statusCode, 200, r.body);
  checkPrompt(t, r1.json().choices[0].logprobs, o1, ids1.length, 'first of three');
  checkPrompt(t, r2.json().choices[0].logprobs, o2, ids2.length, 'second of three');
});

t.test('the engine refuses scoring input out of range with a code', async (t) => {
  const e = await EngineInstance.open({ modelPath: MODEL_DIR, dtype: 'f32', numThreads: 1, numKvBlocks: 4, blockSize: 16 });
  t.teardown(() => e.close());
  const step = { seqId: 1, tokens: [1, 403, 407], startPos: 0, promptLen: 3, blockTable: [0], doSample: true, sampling: { ...GREEDY } };
  const bad = { code: 'WEFT_ERR_ENGINE_BAD_INPUT' };
  t.throws(() => e.step(packStep([step], 16, { score: { targets: Int32Array.from([403, spec.config.vocabSize, -1]), topN: 1 } })), bad);
  t.throws(() => e.step(packStep([step], 16, { score: { targets: Int32Array.from([403, 407, -1]), topN: spec.config.vocabSize + 1 } })), bad);
  const ok = e.step(packStep([step], 16, { score: { targets: Int32Array.from([403, 407, -1]), topN: 3 } }));
  t.equal(ok.scoredLogprobs!.length, 3);
  t.ok(Number.isNaN(ok.scoredLogprobs![2]), 'a row without a target is not scored');
  t.equal(ok.scoredTopIds!.length, 9);
});

t.test('echo with logprobs: bad combinations are refused with a code', async (t) => {
  const s = await startTestApp({ backend: 'cpu' });
  t.teardown(() => s.close());
  const streamed = await s.app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { prompt: 'Lily', max_tokens: 2, prompt_logprobs: 1, stream: true },
  });
  t.equal(streamed.statusCode, 400, 'prompt_logprobs is not streamed');
  t.match(streamed.json().error.message, /prompt_logprobs/);
  const zero = await s.app.inject({ method: 'POST', url: '/v1/completions', payload: { prompt: 'Lily', max_tokens: 0 } });
  t.equal(zero.statusCode, 400, 'max_tokens 0 without echo');
  t.match(zero.json().error.message, /echo/);
  const chatZero = await s.app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    payload: { messages: [{ role: 'user', content: 'x' }], max_tokens: 0 },
  });
  t.equal(chatZero.statusCode, 400, 'chat completions keep max_tokens >= 1');
  const echoOnly = await s.app.inject({ method: 'POST', url: '/v1/completions', payload: { prompt: 'Lily', max_tokens: 0, echo: true } });
  t.equal(echoOnly.statusCode, 200, echoOnly.body);
  t.equal(echoOnly.json().choices[0].text, 'Lily', 'max_tokens 0 with echo and no logprobs: the prompt');
  t.equal(echoOnly.json().choices[0].logprobs, null);
  const beam = await s.app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { prompt: 'Lily', n: 2, max_tokens: 2, echo: true, logprobs: 1, use_beam_search: true },
  });
  t.equal(beam.statusCode, 400);
  const beamPrompt = await s.app.inject({
    method: 'POST',
    url: '/v1/completions',
    payload: { prompt: 'Lily', n: 2, max_tokens: 2, prompt_logprobs: 1, use_beam_search: true },
  });
  t.equal(beamPrompt.statusCode, 400, 'prompt_logprobs with beam search');
  t.match(beamPrompt.json().error.message, /beam/);
});
