// npm run bench:soak — many streamed requests on mixed routes, a share of whose clients vanish
// mid-stream, in rounds; after each round the server must be back to nothing running, nothing
// waiting, no KV block in use, and its memory flat. Every request is accounted for: completed,
// aborted (by its client, on purpose), an error (by code), or lost (a stream that ended without
// its end: [DONE], or the Responses API's status event; or no answer at all) — lost must be 0. Exit code 1 otherwise.
//
//   npm run bench:soak -- [--model DIR | --url http://host:port] [--requests 10000] [--concurrency 256] [--routes 0,1,2,3,4,5,6,7]
//                         [--abort-share 0.2] [--rounds 2] [--max-tokens 32] [--seed 1] [--server-args "..."]

import { benchArgs } from './args.js';
import { makeRng } from './serve/rng.js';
import { DEFAULT_MODEL, formatCounts, formatState, restingRss, serverState, settledState, startWeft, type ServerState } from './server-state.js';

const WORDS = 'once upon a time there was a little girl named lily who loved to play in the park with her dog and cat'.split(' ');

// What one SSE `data:` payload says about the stream: its normal end, an error (by code), or neither.
type FrameMeaning = 'done' | { error: string } | null;

interface Route {
  path: string;
  body(prompt: string, maxTokens: number, seed: number): object;
  read?(data: string): FrameMeaning; // default: `[DONE]` ends, an {error} frame fails
}

const readDone = (data: string): FrameMeaning =>
  data === '[DONE]'
    ? 'done'
    : data.includes('"error"')
      ? { error: (JSON.parse(data) as { error?: { code?: string } }).error?.code ?? 'error event' }
      : null;

// The Responses API ends on its status event, without [DONE]; every event's response carries `"error": null`.
function readResponseEvent(data: string): FrameMeaning {
  const ev = JSON.parse(data) as { type: string; response?: { error?: { code?: string } | null } };
  if (ev.type === 'response.completed' || ev.type === 'response.incomplete') return 'done';
  return ev.type === 'response.failed' ? { error: ev.response?.error?.code ?? 'response.failed' } : null;
}

// Streamed routes, in turn: OpenAI completions (n 1 and 2) and chat, weft's /stream and /chat, and
// beam searches (sequence groups sharing KV blocks: a vanished client must free the whole group),
// on weft's own route (widths 2 to 4, the seed's two-turn form) and on completions (vLLM's form),
// and the Responses API, half of its responses stored (the store must stay within its bound).
const ROUTES: Route[] = [
  { path: '/v1/completions', body: (prompt, max_tokens, seed) => ({ prompt, max_tokens, seed, stream: true }) },
  { path: '/v1/chat/completions', body: (p, max_tokens, seed) => ({ messages: [{ role: 'user', content: p }], max_tokens, seed, stream: true }) },
  { path: '/stream', body: (prompt, max_tokens, seed) => ({ prompt, max_tokens, seed }) },
  { path: '/v1/completions', body: (prompt, max_tokens, seed) => ({ prompt, max_tokens, seed, n: 2, stream: true }) },
  { path: '/chat', body: (prompt, max_tokens, seed) => ({ messages: [prompt], max_tokens, seed }) },
  {
    path: '/stream_chat_beam',
    body: (prompt, max_tokens, seed) => ({ messages: ['Hello', prompt], beam_width: 2 + (seed % 3), max_tokens, use_rerank: seed % 2 === 0 }),
  },
  {
    path: '/v1/completions',
    body: (prompt, max_tokens) => ({ prompt, max_tokens, n: 3, use_beam_search: true, stream: true }),
  },
  {
    path: '/v1/responses',
    body: (input, max_output_tokens, seed) => ({ input, max_output_tokens, seed, store: seed % 2 === 0, stream: true }),
    read: readResponseEvent,
  },
];

type Outcome = { kind: 'completed' | 'aborted' | 'lost' } | { kind: 'error'; code: string };

interface Options {
  baseUrl: string;
  maxTokens: number;
  abortShare: number;
  timeoutMs: number;
  routes: Route[];
}

// Reads an SSE body frame by frame; `onFrame` returns true to stop (the client vanishes).
async function readFrames(body: NonNullable<Response['body']>, onFrame: (data: string) => boolean): Promise<'ended' | 'stopped'> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return 'ended';
    buf += decoder.decode(value, { stream: true });
    for (let end = buf.indexOf('\n\n'); end >= 0; end = buf.indexOf('\n\n')) {
      const frame = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const data = frame
        .split('\n')
        .find((l) => l.startsWith('data: '))
        ?.slice(6);
      if (data !== undefined && onFrame(data)) return 'stopped';
    }
  }
}

async function oneRequest(o: Options, route: Route, prompt: string, seed: number, abortAfter: number): Promise<Outcome> {
  const ac = new AbortController();
  let isTimeout = false;
  const timer = setTimeout(() => {
    isTimeout = true;
    ac.abort();
  }, o.timeoutMs);
  try {
    const res = await fetch(o.baseUrl + route.path, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(route.body(prompt, o.maxTokens, seed)),
      signal: ac.signal,
    });
    if (res.status !== 200) {
      const text = await res.text();
      let code = `http ${res.status}`;
      try {
        code = JSON.parse(text).error?.code ?? code;
      } catch {
        /* not JSON */
      }
      return { kind: 'error', code };
    }
    let numFrames = 0,
      isDone = false,
      errorCode: string | null = null;
    const how = await readFrames(res.body!, (data) => {
      numFrames++;
      const meaning = (route.read ?? readDone)(data);
      if (meaning === 'done') isDone = true;
      else if (meaning) errorCode = meaning.error;
      return abortAfter >= 0 && numFrames >= abortAfter && !isDone;
    });
    if (how === 'stopped') {
      ac.abort();
      return { kind: 'aborted' };
    }
    if (errorCode) return { kind: 'error', code: errorCode };
    return { kind: isDone ? 'completed' : 'lost' };
  } catch (e) {
    if (isTimeout) return { kind: 'lost' };
    const cause = (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).name;
    return { kind: 'error', code: `network ${cause}` };
  } finally {
    clearTimeout(timer);
  }
}

interface RoundResult {
  counts: Record<'completed' | 'aborted' | 'lost', number>;
  errors: Record<string, number>;
  seconds: number;
}

async function round(o: Options, numRequests: number, concurrency: number, seed: number): Promise<RoundResult> {
  const rng = makeRng(seed);
  const plans = Array.from({ length: numRequests }, (_, i) => ({
    route: o.routes[i % o.routes.length],
    prompt: Array.from({ length: rng.int(1, 12) }, () => WORDS[rng.int(0, WORDS.length - 1)]).join(' '),
    seed: rng.int(0, 1e9),
    abortAfter: rng.next() < o.abortShare ? rng.int(1, 4) : -1, // frames seen before the client vanishes
  }));
  const result: RoundResult = { counts: { completed: 0, aborted: 0, lost: 0 }, errors: {}, seconds: 0 };
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < plans.length) {
        const p = plans[next++];
        const out = await oneRequest(o, p.route, p.prompt, p.seed, p.abortAfter);
        if (out.kind === 'error') result.errors[out.code] = (result.errors[out.code] ?? 0) + 1;
        else result.counts[out.kind]++;
      }
    }),
  );
  result.seconds = (performance.now() - t0) / 1000;
  return result;
}

async function main(argv: string[]): Promise<number> {
  const { values: a } = benchArgs(
    'npm run bench:soak --',
    {
      url: { type: 'string' },
      model: { type: 'string', default: DEFAULT_MODEL },
      'server-args': { type: 'string', default: '' },
      requests: { type: 'string', default: '10000' },
      concurrency: { type: 'string', default: '256' },
      'abort-share': { type: 'string', default: '0.2' },
      rounds: { type: 'string', default: '2' },
      'max-tokens': { type: 'string', default: '32' },
      seed: { type: 'string', default: '1' },
      'timeout-ms': { type: 'string', default: '300000' },
      routes: { type: 'string', default: ROUTES.map((_, i) => i).join(',') }, // indices into ROUTES, to isolate one
    },
    argv,
  );
  const server = a.url ? null : await startWeft(a.model!, a['server-args']!);
  const baseUrl = a.url ?? server!.baseUrl;
  const routes = a.routes!.split(',').map((i) => ROUTES[Number(i)]);
  if (routes.some((r) => !r)) throw new Error(`--routes: indices 0..${ROUTES.length - 1}`);
  const o: Options = {
    baseUrl,
    maxTokens: Number(a['max-tokens']),
    abortShare: Number(a['abort-share']),
    timeoutMs: Number(a['timeout-ms']),
    routes,
  };
  const [numRequests, concurrency, numRounds] = [Number(a.requests), Number(a.concurrency), Number(a.rounds)];
  console.log(
    `soak: ${baseUrl}${server ? ` (weft on ${a.model})` : ''}; ${numRounds} round(s) of ${numRequests} streamed requests, ` +
      `concurrency ${concurrency}, ${(100 * o.abortShare).toFixed(0)}% of clients vanish mid-stream, max_tokens ${o.maxTokens}`,
  );
  let isClean = true;
  const afters: ServerState[] = [];
  try {
    for (let r = 1; r <= numRounds; r++) {
      const before = await settledState(baseUrl);
      console.log(`round ${r}\n  before: ${formatState(before)}`);
      const res = await round(o, numRequests, concurrency, Number(a.seed) + r);
      const after = await settledState(baseUrl);
      const rested = await restingRss(async () => (await serverState(baseUrl)).rssMiB);
      afters.push({ ...after, rssMiB: rested });
      const { completed, aborted, lost } = res.counts;
      console.log(
        `  completed ${completed}, aborted ${aborted}, errors ${formatCounts(res.errors)}, lost ${lost}  ` +
          `(${res.seconds.toFixed(1)} s, ${(numRequests / res.seconds).toFixed(0)} requests/s)`,
      );
      console.log(`  after:  ${formatState(after)}; at rest ${rested.toFixed(1)} MiB`);
      if (lost > 0 || after.running + after.waiting > 0 || after.kvUsage > 0) isClean = false;
    }
  } finally {
    await server?.stop();
  }
  const drift = afters.length > 1 ? (afters.at(-1)!.rssMiB / afters[0].rssMiB - 1) * 100 : 0;
  console.log(
    `soak: ${isClean ? 'nothing lost, nothing left running, waiting or holding KV' : 'FAILED: requests lost or state left behind'}` +
      (afters.length > 1 ? `; RSS after the last round ${drift >= 0 ? '+' : ''}${drift.toFixed(1)}% of after the first` : ''),
  );
  return isClean ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
