// One benchmark run: warmups (not measured), then the requests sent on their arrival schedule
// (open loop), each waiting for a slot when --max-concurrency limits the requests in flight
// (closed loop when the rate is inf), as vLLM's benchmark does. Bounded: exactly one send per
// request; each send is bounded by the client's timeout.
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

import { arrivalGapsMs, arrivalTimesMs } from './arrivals.js';
import type { BenchRequest, RequestRecord } from './types.js';

export type Send = (req: BenchRequest, runStart: number) => Promise<RequestRecord>;

export interface RunOptions {
  requests: BenchRequest[];
  numWarmups: number;
  requestRate: number; // Infinity = all at once
  burstiness: number;
  maxConcurrency: number | null;
  seed: number;
  send: Send;
  onProgress?: (done: number, total: number) => void;
}

export interface RunResult {
  records: RequestRecord[];
  durationMs: number;
  startedAt: Date;
}

// A counting semaphore: at most `limit` holders; waiters are served first come, first served.
export class Slots {
  private used = 0;
  private readonly waiting: (() => void)[] = [];
  constructor(private readonly limit: number) {}
  async acquire(): Promise<void> {
    if (this.used < this.limit) {
      this.used++;
      return;
    }
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.used--;
  }
}

async function limited<T>(slots: Slots | null, fn: () => Promise<T>): Promise<T> {
  if (!slots) return fn();
  await slots.acquire();
  try {
    return await fn();
  } finally {
    slots.release();
  }
}

export async function runWarmups(o: RunOptions): Promise<void> {
  if (o.numWarmups <= 0 || o.requests.length === 0) return;
  const slots = o.maxConcurrency ? new Slots(o.maxConcurrency) : null;
  const t0 = performance.now();
  const recs = await Promise.all(Array.from({ length: o.numWarmups }, (_, i) => limited(slots, () => o.send(o.requests[i % o.requests.length], t0))));
  const failed = recs.find((r) => !r.success);
  if (failed) throw new Error(`warmup request failed: ${failed.error}`);
}

export async function runLoad(o: RunOptions): Promise<RunResult> {
  await runWarmups(o);
  const slots = o.maxConcurrency ? new Slots(o.maxConcurrency) : null;
  const times = arrivalTimesMs(arrivalGapsMs(o.requests.length, o.requestRate, o.burstiness, o.seed));
  const startedAt = new Date();
  const t0 = performance.now();
  let done = 0;
  const tasks: Promise<RequestRecord>[] = [];
  for (let i = 0; i < o.requests.length; i++) {
    const wait = t0 + times[i] - performance.now();
    if (wait > 0) await sleep(wait);
    tasks.push(
      limited(slots, () => o.send(o.requests[i], t0)).then((r) => {
        o.onProgress?.(++done, o.requests.length);
        return r;
      }),
    );
  }
  const records = await Promise.all(tasks);
  return { records, durationMs: performance.now() - t0, startedAt };
}
