// When each request is sent, as vLLM's get_request does: rate inf sends all at once; a finite
// rate draws gamma inter-arrival gaps of shape `burstiness` and mean 1/rate (burstiness 1 is a
// Poisson process; below 1 burstier, above 1 more regular).
import { makeRng } from './rng.js';

// Gaps in milliseconds before each of n requests (the first gap included, as vLLM sleeps first).
export function arrivalGapsMs(n: number, requestRate: number, burstiness: number, seed: number): number[] {
  if (!(burstiness > 0)) throw new Error(`--burstiness must be > 0, got ${burstiness}`);
  if (!(requestRate > 0)) throw new Error(`--request-rate must be > 0 or inf, got ${requestRate}`);
  if (!Number.isFinite(requestRate)) return new Array<number>(n).fill(0);
  if (burstiness === 1) return poissonGapsMs(n, requestRate, seed);
  const rng = makeRng(seed);
  const scale = 1 / (requestRate * burstiness); // mean = shape × scale = 1/rate
  return Array.from({ length: n }, () => rng.gamma(burstiness) * scale * 1000);
}

// A Poisson process: exponential gaps of mean 1/rate.
export function poissonGapsMs(n: number, requestRate: number, seed: number): number[] {
  const rng = makeRng(seed);
  return Array.from({ length: n }, () => (rng.exponential() / requestRate) * 1000);
}

// Absolute send offsets from the run's start.
export function arrivalTimesMs(gaps: number[]): number[] {
  let t = 0;
  return gaps.map((g) => (t += g));
}
