// What the soak and hostile-client benchmarks read from a weft server between rounds: running and
// waiting requests, KV cache use, resident memory (its /metrics), errors by code; a weft started
// for the run from this checkout; and the model they default to.
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { parsePrometheus } from './serve/scrape.js';
import { freePort, repoRoot, splitArgs, startServer, weftSpec, type ServerProcess } from './serve/spawn.js';

export interface ServerState {
  running: number;
  waiting: number;
  kvUsage: number; // 0..1
  rssMiB: number;
  errors: Record<string, number>; // weft_errors_total by code
}

export const DEFAULT_MODEL = join(repoRoot(), '..', 'shared', 'models', 'stories260K');

export async function serverState(baseUrl: string): Promise<ServerState> {
  const text = await (await fetch(`${baseUrl}/metrics`, { signal: AbortSignal.timeout(10_000) })).text();
  const names = ['weft_num_requests_running', 'weft_num_requests_waiting', 'weft_kv_cache_usage_perc', 'weft_process_resident_memory_bytes'];
  const v = parsePrometheus(text, names);
  const errors: Record<string, number> = {};
  for (const m of text.matchAll(/^weft_errors_total\{code="([^"]+)"\} (\S+)$/gm)) errors[m[1]] = Number(m[2]);
  return {
    running: v.weft_num_requests_running ?? 0,
    waiting: v.weft_num_requests_waiting ?? 0,
    kvUsage: v.weft_kv_cache_usage_perc ?? 0,
    rssMiB: (v.weft_process_resident_memory_bytes ?? 0) / 2 ** 20,
    errors,
  };
}

// The state once nothing runs or waits (aborted requests take a step to end), or after maxMs.
export async function settledState(baseUrl: string, maxMs = 60_000): Promise<ServerState> {
  const deadline = performance.now() + maxMs;
  for (;;) {
    const s = await serverState(baseUrl);
    if ((s.running === 0 && s.waiting === 0 && s.kvUsage === 0) || performance.now() > deadline) return s;
    await sleep(100);
  }
}

// A process's RSS once it has stopped falling for 3 s, at most 20 s: weft gives memory back a
// second after it goes idle (MemoryRelief), and the OS takes freed pages back over a few seconds.
export async function restingRss(readMiB: () => number | Promise<number>): Promise<number> {
  let last = await readMiB(),
    numStable = 0;
  for (let i = 0; i < 20 && numStable < 3; i++) {
    await sleep(1000);
    const now = await readMiB();
    numStable = now >= last - 1 ? numStable + 1 : 0;
    last = now;
  }
  return last;
}

export const formatState = (s: ServerState) =>
  `running ${s.running}, waiting ${s.waiting}, KV ${(100 * s.kvUsage).toFixed(1)}%, RSS ${s.rssMiB.toFixed(1)} MiB`;

// Counts in `after` beyond those in `before`, by key.
export function increments(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v - (before[k] ?? 0) > 0) out[k] = v - (before[k] ?? 0);
  return out;
}

export const formatCounts = (c: Record<string, number>) =>
  Object.keys(c).length === 0
    ? 'none'
    : Object.entries(c)
        .sort()
        .map(([k, v]) => `${k} ${v}`)
        .join(', ');

// weft from this checkout on a free port, CPU backend unless --server-args says otherwise.
export async function startWeft(model: string, serverArgs: string): Promise<ServerProcess> {
  const port = await freePort();
  return startServer(weftSpec(model, port, ['--backend', 'cpu', ...splitArgs(serverArgs)]));
}
