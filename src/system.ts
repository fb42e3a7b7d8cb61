// What the host lets this process use. CPUs: those in the affinity mask (os.availableParallelism
// follows sched_getaffinity), capped by a cgroup v2 CPU quota (/sys/fs/cgroup/cpu.max, "QUOTA
// PERIOD" or "max PERIOD") — the rule llama.cpp applies too. Memory: what the kernel reckons
// available (MemAvailable), capped by what a cgroup v2 memory limit leaves (memory.max minus
// memory.current), as a container's limit is the one that kills the process.
import { readFileSync } from 'node:fs';
import { availableParallelism, freemem } from 'node:os';

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

// MemAvailable from /proc/meminfo, in bytes (kB there); NaN when absent.
export function memAvailableBytes(meminfo: string): number {
  const m = /^MemAvailable:\s+(\d+)\s+kB/m.exec(meminfo);
  return m ? Number(m[1]) * 1024 : Number.NaN;
}

// What a cgroup v2 memory limit leaves: memory.max ("max" or bytes) minus memory.current.
export function cgroupMemoryLeft(memoryMax: string, memoryCurrent: string): number {
  const max = memoryMax.trim(),
    cur = Number(memoryCurrent.trim());
  if (max === 'max' || !(Number(max) > 0) || !Number.isFinite(cur)) return Infinity;
  return Math.max(0, Number(max) - cur);
}

const readOr = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};

export function availableMemoryBytes(): number {
  const meminfo = readOr('/proc/meminfo');
  const host = meminfo ? memAvailableBytes(meminfo) : Number.NaN;
  const max = readOr('/sys/fs/cgroup/memory.max'),
    cur = readOr('/sys/fs/cgroup/memory.current');
  const left = max !== null && cur !== null ? cgroupMemoryLeft(max, cur) : Infinity;
  return Math.min(Number.isFinite(host) ? host : freemem(), left);
}
