// Peak resident memory of a process and its descendants, from /proc (Linux only; elsewhere 0).
// Sampled periodically: the tree's summed VmRSS at each sample, and each process's own VmHWM
// (its kernel-tracked peak), so a short spike between samples still counts for a single process.
import { readFileSync, readdirSync } from 'node:fs';

function statusKb(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export function processTree(pid: number): number[] {
  const out: number[] = [];
  const stack = [pid];
  // bounded: a pid is visited once
  while (stack.length && out.length < 4096) {
    const p = stack.pop()!;
    if (out.includes(p)) continue;
    out.push(p);
    try {
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        const kids = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim();
        if (kids) stack.push(...kids.split(/\s+/).map(Number));
      }
    } catch {
      /* the process ended */
    }
  }
  return out;
}

// The tree's resident memory now (kB).
export function treeRssKb(pid: number): number {
  return processTree(pid).reduce((a, p) => a + statusKb(p, 'VmRSS'), 0);
}

export class RssSampler {
  private peakKb = 0;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 250,
  ) {}

  sample(): void {
    const sum = treeRssKb(this.pid);
    const hwm = Math.max(0, ...processTree(this.pid).map((p) => statusKb(p, 'VmHWM')));
    this.peakKb = Math.max(this.peakKb, sum, hwm);
  }

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get peakMb(): number {
    return this.peakKb / 1024;
  }
}
