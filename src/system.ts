// What the host lets this process use. Only CPU count today: the CPUs in the affinity mask
// (os.availableParallelism follows sched_getaffinity), capped by a cgroup v2 CPU quota
// (/sys/fs/cgroup/cpu.max, "QUOTA PERIOD" or "max PERIOD") — the rule llama.cpp applies too.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';

export function cgroupCpuLimit(cpuMax: string): number {
  const [quota, period] = cpuMax.trim().split(/\s+/);
  const q = Number(quota),
    p = Number(period);
  if (quota === 'max' || !(q > 0) || !(p > 0)) return Infinity;
  return Math.max(1, Math.ceil(q / p));
}

let cached = 0;
export function usableCpuCount(): number {
  if (cached) return cached;
  let quota = Infinity;
  try {
    quota = cgroupCpuLimit(readFileSync('/sys/fs/cgroup/cpu.max', 'utf8'));
  } catch {
    // no cgroup v2 CPU controller here: the affinity mask alone decides
  }
  cached = Math.max(1, Math.min(availableParallelism(), quota));
  return cached;
}
