// npm run bench:hostile — slow and hostile clients against a weft started for each scenario, with
// the figures issue 14 asks for:
//   slow        stalled bodies (1 MB of a declared 1,000,000 sent, then nothing) and idle or
//               slow-header connections: each must get a 408 and be closed within its timeout,
//               while normal requests keep answering; RSS before, at the peak, after
//   nonreading  streaming clients that never read (n 16, logprobs 20, max_tokens 480): cut off
//               after the write timeout, their sequences freed; RSS before, at the peak, after
//   shutdown    long streams when SIGTERM comes with a 1 s shutdown timeout: each must end with
//               a final event carrying the shutdown error code, then [DONE]
//   bodies      bodies of 5–20 MiB from clients that write everything before reading: each must
//               receive the 413 with its code
//
//   npm run bench:hostile -- [--scenario all|slow|nonreading|shutdown|bodies] [--model DIR]
//     [--stalled 300] [--idle 500] [--headers-timeout-ms 5000] [--body-timeout-ms 10000]
//     [--nonreading 10] [--write-timeout-ms 5000] [--streams 50] [--bodies 20] [--server-args "..."]
import { cpus, loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

import { benchArgs } from './args.js';
import { parseResponse, postHead, rawConnect, writeThenRead, type RawConnection } from './raw-socket.js';
import { DEFAULT_MODEL, formatCounts, increments, restingRss, serverState, settledState, startWeft } from './server-state.js';
import { treeRssKb } from './serve/rss.js';
import type { ServerProcess } from './serve/spawn.js';

type Args = Record<string, string>;
const num = (a: Args, k: string) => Number(a[k]);
const mib = (pid: number) => treeRssKb(pid) / 1024;
const stats = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))].toFixed(1);
  return s.length === 0 ? 'none' : `min ${s[0].toFixed(1)}, median ${at(0.5)}, p99 ${at(0.99)}, max ${s.at(-1)!.toFixed(1)}`;
};
const count = <T>(xs: T[]) => xs.reduce((m, x) => m.set(x, (m.get(x) ?? 0) + 1), new Map<T, number>());
const formatMap = (m: Map<unknown, number>) => [...m].map(([k, v]) => `${String(k)}: ${v}`).join(', ');

// Peak RSS of the server while `during` runs, sampled every 100 ms.
async function peakRssWhile(pid: number, during: Promise<unknown>): Promise<number> {
  let peak = mib(pid);
  let isDone = false;
  void during.finally(() => {
    isDone = true;
  });
  while (!isDone) {
    peak = Math.max(peak, mib(pid));
    await Promise.race([sleep(100), during.catch(() => undefined)]);
  }
  return Math.max(peak, mib(pid));
}

const post = (baseUrl: string, path: string, body: object) =>
  fetch(baseUrl + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

// Wall-clock ms comparable across threads (each thread's performance.now() has its own origin).
const now = () => performance.timeOrigin + performance.now();

// The largest event-loop delay the server saw since the previous scrape (prom-client's default
// metric, reset at each scrape).
async function eventLoopLagMaxMs(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  return 1000 * Number(/^weft_nodejs_eventloop_lag_max_seconds (\S+)$/m.exec(text)?.[1] ?? NaN);
}

// Normal requests, one every 100 ms after the last answered, from a worker thread: the main
// thread is busy writing the hostile connections' bytes, and its delays are not the server's.
function startProbe(baseUrl: string): { stop(): Promise<{ ms: number; at: number }[]> } {
  const worker = new Worker(new URL(import.meta.url), { workerData: { baseUrl } });
  const results = new Promise<{ ms: number; at: number }[]>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  return {
    stop() {
      worker.postMessage('stop');
      return results;
    },
  };
}

async function probeLoop(baseUrl: string): Promise<void> {
  let isStopped = false;
  parentPort!.once('message', () => {
    isStopped = true;
  });
  const results: { ms: number; at: number }[] = [];
  while (!isStopped) {
    const at = now();
    const r = await post(baseUrl, '/v1/completions', { prompt: 'Once upon a time', max_tokens: 4 });
    await r.text();
    if (r.status === 200) results.push({ ms: now() - at, at });
    await sleep(100);
  }
  parentPort!.postMessage(results);
}

// Before the baseline: the KV cache is taken from the OS as its blocks are first used, and the
// worker's buffers grow with the batch; 48 sequences of 480 tokens use every block of the default
// cache, so what the baseline leaves out is what the scenario adds.
async function warm(baseUrl: string): Promise<void> {
  const body = { prompt: 'Once', n: 16, max_tokens: 480, ignore_eos: true };
  await Promise.all([0, 1, 2].map(() => post(baseUrl, '/v1/completions', body).then((r) => r.text())));
}

async function slow(server: ServerProcess, a: Args): Promise<void> {
  const [headersMs, bodyMs] = [num(a, 'headers-timeout-ms'), num(a, 'body-timeout-ms')];
  const base = await restingRss(() => mib(server.pid));
  const numIdle = num(a, 'idle'),
    numStalled = num(a, 'stalled');
  // each timeout counts from when the server began the request: a connection's accept (idle, slow
  // headers), its headers for a stalled body (seen here as the 100 Continue Node sends then)
  const conns: { kind: string; limit: number; c: RawConnection; startedAt: number }[] = [];
  await eventLoopLagMaxMs(server.baseUrl); // (its maximum restarts at each scrape)
  const probe = startProbe(server.baseUrl);
  for (let i = 0; i < numIdle; i++) {
    const c = await rawConnect(Number(new URL(server.baseUrl).port));
    if (i % 2 === 1) {
      // half of them: headers begun, one header line per second
      c.socket.write('POST /v1/completions HTTP/1.1\r\nHost: x\r\n');
      const timer = setInterval(() => c.socket.writable && c.socket.write('X-Slow: 1\r\n'), 1000);
      c.socket.once('close', () => clearInterval(timer));
    }
    conns.push({ kind: i % 2 ? 'slow headers' : 'idle', limit: headersMs, c, startedAt: c.connectedAt });
  }
  const piece = new Uint8Array(999_000).fill(0x20);
  await Promise.all(
    Array.from({ length: numStalled }, async () => {
      const c = await rawConnect(Number(new URL(server.baseUrl).port));
      c.socket.write(postHead('/v1/completions', 'Content-Length: 1000000', 'Expect: 100-continue'));
      await c.waitFor(/^HTTP\/1.1 100 Continue\r\n\r\n/);
      conns.push({ kind: 'stalled body', limit: bodyMs, c, startedAt: performance.now() });
      await new Promise((resolve) => c.socket.write(piece, resolve));
    }),
  );
  const sentAt = now();
  const allClosed = Promise.all(conns.map((x) => x.c.closed));
  const peak = await peakRssWhile(server.pid, allClosed);
  const normal = await probe.stop();
  const lagMaxMs = await eventLoopLagMaxMs(server.baseUrl);
  const outcomes = await Promise.all(
    conns.map(async (x) => {
      const { text, at } = await x.c.closed;
      const status = text ? parseResponse(text).status : 0;
      const code = text ? (JSON.parse(parseResponse(text).body).error?.code as string) : 'none';
      return { kind: x.kind, status, code, over: (at - x.startedAt) / x.limit };
    }),
  );
  const after = await restingRss(() => mib(server.pid));
  for (const kind of ['idle', 'slow headers', 'stalled body']) {
    const o = outcomes.filter((x) => x.kind === kind);
    console.log(
      `  ${kind}: ${o.length} connections; ${formatMap(count(o.map((x) => `${x.status} ${x.code}`)))}; ` +
        `closed after ${stats(o.map((x) => 100 * x.over))} % of the ${kind === 'stalled body' ? bodyMs : headersMs} ms timeout`,
    );
  }
  // requests begun before the last stalled body was sent and in the second after it (the server still reading them)
  const upload = normal.filter((x) => x.at < sentAt + 1000),
    rest = normal.filter((x) => x.at >= sentAt + 1000);
  console.log(
    `  normal requests (4 tokens, from another thread) while the 300 MB of bodies were sent and a second after: ` +
      `${upload.length}, latency ms ${stats(upload.map((x) => x.ms))}`,
  );
  console.log(`  normal requests after it, until the last slow connection closed: ${rest.length}, latency ms ${stats(rest.map((x) => x.ms))}`);
  const worst = [...normal]
    .sort((x, y) => y.ms - x.ms)
    .slice(0, 3)
    .map((x) => `${x.ms.toFixed(0)} ms at ${((x.at - sentAt) / 1000).toFixed(1)} s`);
  console.log(`    the slowest: ${worst.join(', ')} (s after the stalled bodies were sent); server event-loop lag max ${lagMaxMs.toFixed(0)} ms`);
  console.log(`  RSS: before ${base.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB, after ${after.toFixed(1)} MiB`);
}

async function nonreading(server: ServerProcess, a: Args): Promise<void> {
  const k = num(a, 'nonreading');
  const base = await restingRss(() => mib(server.pid));
  const before = await serverState(server.baseUrl);
  const body = JSON.stringify({ prompt: 'Once', n: 16, logprobs: 20, max_tokens: 480, ignore_eos: true, stream: true });
  const t0 = performance.now();
  const clients = await Promise.all(
    Array.from({ length: k }, async () => {
      const c = await rawConnect(Number(new URL(server.baseUrl).port));
      c.socket.pause();
      c.socket.write(postHead('/v1/completions', `Content-Length: ${body.length}`) + body);
      return c;
    }),
  );
  // the server's own count of the clients it cut off
  const cutOff = (async () => {
    for (;;) {
      const s = await serverState(server.baseUrl);
      if ((s.errors.WEFT_ERR_HTTP_WRITE_TIMEOUT ?? 0) - (before.errors.WEFT_ERR_HTTP_WRITE_TIMEOUT ?? 0) >= k) return performance.now() - t0;
      await sleep(50);
    }
  })();
  const peak = await peakRssWhile(server.pid, cutOff);
  const ms = await cutOff;
  const settled = await settledState(server.baseUrl);
  for (const c of clients) c.socket.destroy();
  const after = await restingRss(() => mib(server.pid));
  console.log(
    `  ${k} clients that never read: all cut off ${(ms / 1000).toFixed(2)} s after they asked ` +
      `(write timeout ${num(a, 'write-timeout-ms')} ms); server errors: ${formatCounts(increments(before.errors, settled.errors))}`,
  );
  console.log(`  then: running ${settled.running}, waiting ${settled.waiting}, KV ${(100 * settled.kvUsage).toFixed(1)}%`);
  console.log(`  RSS: before ${base.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB, after ${after.toFixed(1)} MiB`);
}

async function shutdown(server: ServerProcess, a: Args): Promise<void> {
  const k = num(a, 'streams');
  const long = { max_tokens: 480, ignore_eos: true };
  const bodies: [string, object][] = [
    ['/v1/completions', { prompt: 'Once', stream: true, ...long }],
    ['/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }], stream: true, ...long }],
    ['/stream', { prompt: 'Lily', ...long }],
    ['/chat', { messages: ['hello'], ...long }],
    ['/stream_chat_beam', { messages: ['hello'], beam_width: 2, ...long }],
  ];
  const streams = await Promise.all(
    Array.from({ length: k }, async (_, i) => {
      const [path, body] = bodies[i % bodies.length];
      const res = await post(server.baseUrl, path, body);
      return { path, res };
    }),
  );
  const statuses = count(streams.map((s) => s.res.status));
  const t0 = performance.now();
  const stopped = server.stop(); // SIGTERM, and wait for the exit
  const ends = await Promise.all(
    streams.map(async ({ res }) => {
      let text = '';
      try {
        text = await res.text();
      } catch (e) {
        return `cut (${(e as Error).message})`;
      }
      const data = text
        .split('\n\n')
        .filter((f) => f.startsWith('data: '))
        .map((f) => f.slice(6));
      if (data.at(-1) !== '[DONE]') return 'no [DONE]';
      const last = data.at(-2) ?? '';
      return last.includes('"error"') ? `error ${JSON.parse(last).error.code} + [DONE]` : 'finished + [DONE]';
    }),
  );
  await stopped;
  const exitS = ((performance.now() - t0) / 1000).toFixed(2);
  console.log(`  ${k} streams (${formatMap(statuses)}) when SIGTERM came, shutdown timeout 1000 ms; exited after ${exitS} s`);
  console.log(`  how they ended: ${formatMap(count(ends))}`);
}

async function bodies(server: ServerProcess, a: Args): Promise<void> {
  const k = num(a, 'bodies');
  const port = Number(new URL(server.baseUrl).port);
  const send = async (size: number, isChunked: boolean) => {
    const { text, error } = await writeThenRead(port, '/v1/completions', size, isChunked);
    return text ? `${parseResponse(text).status} ${JSON.parse(parseResponse(text).body).error?.code}` : `no response (${error})`;
  };
  const sizes = Array.from({ length: k }, (_, i) => Math.round((5 + (15 * i) / Math.max(1, k - 1)) * 2 ** 20));
  const results = await Promise.all(sizes.map((size, i) => send(size, i % 4 === 3)));
  console.log(`  ${k} bodies of 5–20 MiB (every 4th chunked), body limit 1 MiB: ${formatMap(count(results))}`);
}

const SCENARIOS: Record<string, { flags: (a: Args) => string; run: (s: ServerProcess, a: Args) => Promise<void> }> = {
  slow: { flags: (a) => `--headers-timeout-ms ${a['headers-timeout-ms']} --body-timeout-ms ${a['body-timeout-ms']}`, run: slow },
  nonreading: { flags: (a) => `--write-timeout-ms ${a['write-timeout-ms']}`, run: nonreading },
  shutdown: { flags: () => '--shutdown-timeout-ms 1000 --max-num-seqs 8', run: shutdown },
  bodies: { flags: () => '', run: bodies },
};

async function main(argv: string[]): Promise<void> {
  const { values } = benchArgs(
    'npm run bench:hostile --',
    {
      scenario: { type: 'string', default: 'all' },
      model: { type: 'string', default: DEFAULT_MODEL },
      'server-args': { type: 'string', default: '' },
      stalled: { type: 'string', default: '300' },
      idle: { type: 'string', default: '500' },
      'headers-timeout-ms': { type: 'string', default: '5000' },
      'body-timeout-ms': { type: 'string', default: '10000' },
      nonreading: { type: 'string', default: '10' },
      'write-timeout-ms': { type: 'string', default: '5000' },
      streams: { type: 'string', default: '50' },
      bodies: { type: 'string', default: '20' },
    },
    argv,
  );
  const a = values as Args;
  for (const name of a.scenario === 'all' ? Object.keys(SCENARIOS) : a.scenario.split(',')) {
    const sc = SCENARIOS[name];
    if (!sc) throw new Error(`no scenario ${name}: ${Object.keys(SCENARIOS).join(', ')}`);
    const flags = `${sc.flags(a)} ${a['server-args']}`.trim();
    const tunables = process.env.GLIBC_TUNABLES ? `, GLIBC_TUNABLES=${process.env.GLIBC_TUNABLES}` : '';
    console.log(`${name}: weft ${flags} (load average ${loadavg()[0].toFixed(1)} on ${cpus().length} CPUs${tunables})`);
    const server = await startWeft(a.model, flags);
    try {
      await warm(server.baseUrl);
      await sc.run(server, a);
    } finally {
      await server.stop();
    }
  }
}

if (isMainThread) await main(process.argv.slice(2));
else await probeLoop((workerData as { baseUrl: string }).baseUrl);
