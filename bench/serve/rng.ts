// A small seeded generator (sfc32) so datasets and arrivals repeat exactly for a seed, plus the
// normal and gamma draws the arrival process needs.

export interface Rng {
  next(): number; // uniform in [0, 1)
  int(lo: number, hi: number): number; // uniform integer in [lo, hi], both inclusive
  normal(): number;
  exponential(): number; // rate 1
  gamma(shape: number): number; // scale 1
  shuffle<T>(xs: T[]): T[]; // in place
}

// splitmix32 spreads a small seed over sfc32's 128-bit state.
function splitmix(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export function makeRng(seed: number): Rng {
  const sm = splitmix(seed);
  let a = sm(),
    b = sm(),
    c = sm(),
    d = sm();
  const next = (): number => {
    const t = (((a + b) >>> 0) + d) >>> 0;
    d = (d + 1) >>> 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) >>> 0;
    c = ((c << 21) | (c >>> 11)) >>> 0;
    c = (c + t) >>> 0;
    return t / 4294967296;
  };
  for (let i = 0; i < 12; i++) next();
  const rng: Rng = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    normal() {
      // Box-Muller; 1 - u keeps log() away from 0
      const u = 1 - next(),
        v = next();
      return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    },
    exponential: () => -Math.log(1 - next()),
    gamma(shape) {
      // shape 1 is the exponential exactly, so burstiness 1 reproduces the Poisson draws;
      // otherwise Marsaglia-Tsang, and shape < 1 boosts through shape + 1
      if (shape === 1) return rng.exponential();
      if (shape < 1) return rng.gamma(shape + 1) * Math.pow(1 - next(), 1 / shape);
      const d0 = shape - 1 / 3,
        c0 = 1 / Math.sqrt(9 * d0);
      for (;;) {
        const x = rng.normal(),
          v = (1 + c0 * x) ** 3;
        if (v <= 0) continue;
        const u = 1 - next();
        if (Math.log(u) < 0.5 * x * x + d0 - d0 * v + d0 * Math.log(v)) return d0 * v;
      }
    },
    shuffle(xs) {
      for (let i = xs.length - 1; i > 0; i--) {
        const j = Math.floor(next() * (i + 1));
        [xs[i], xs[j]] = [xs[j], xs[i]];
      }
      return xs;
    },
  };
  return rng;
}
