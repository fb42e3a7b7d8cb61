// Scheduling policies, kept out of Scheduler.schedule() so that a new one is a new function.
import type { Sequence } from './sequence.js';

// Waiting order: priority (lower first), then arrival. A preempted sequence keeps its arrival,
// so it goes back ahead of every request of its priority that arrived after it: with equal
// priorities that is the head of the queue, as in vLLM's FCFS policy.
export function compareWaiting(a: Sequence, b: Sequence): number {
  return a.priority - b.priority || a.arrivalOrder - b.arrivalOrder;
}

// Inserts seq after every sequence that sorts before or equal to it (binary search).
export function insertWaiting(queue: Sequence[], seq: Sequence): void {
  let lo = 0;
  let hi = queue.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareWaiting(queue[mid], seq) <= 0) lo = mid + 1;
    else hi = mid;
  }
  queue.splice(lo, 0, seq);
}

// Preemption victim: a held sequence (its consumer lags; it makes no progress anyway) before any
// other, then the worst priority, and among those the most recently admitted (running is kept in
// admission order). With equal priorities and none held this is vLLM's choice, the tail of the
// running queue.
export function pickVictim(running: readonly Sequence[]): Sequence | undefined {
  let victim: Sequence | undefined;
  const isAsGood = (a: Sequence, b: Sequence) => (a.isHeld !== b.isHeld ? a.isHeld : a.priority >= b.priority);
  for (const seq of running) if (victim === undefined || isAsGood(seq, victim)) victim = seq;
  return victim;
}

// Order in which running sequences take the step's budget: every decode (one token) first,
// then prefill chunks, each group in admission order, so that a long prompt, chunked, never
// holds back a sequence that is generating (llama.cpp's order).
export function orderRunning(running: readonly Sequence[]): Sequence[] {
  const decodes: Sequence[] = [];
  const chunks: Sequence[] = [];
  for (const seq of running) (seq.numTokens - seq.numComputedTokens <= 1 ? decodes : chunks).push(seq);
  return decodes.concat(chunks);
}
