import t from 'tap';

import { arrivalGapsMs, arrivalTimesMs, poissonGapsMs } from '../../bench/serve/arrivals.js';
import { makeRng } from '../../bench/serve/rng.js';

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

t.test('a seed reproduces the arrivals; another seed differs', async (t) => {
  t.same(arrivalGapsMs(100, 5, 1, 42), arrivalGapsMs(100, 5, 1, 42));
  t.same(arrivalGapsMs(100, 5, 0.5, 42), arrivalGapsMs(100, 5, 0.5, 42));
  t.not(arrivalGapsMs(10, 5, 1, 42)[0], arrivalGapsMs(10, 5, 1, 43)[0]);
});

t.test('burstiness 1 is the Poisson process', async (t) => {
  t.same(arrivalGapsMs(200, 3, 1, 7), poissonGapsMs(200, 3, 7));
});

t.test('mean gap is 1/rate for every burstiness (20000 draws, fixed seed)', async (t) => {
  for (const k of [0.3, 1, 2, 5]) {
    const gaps = arrivalGapsMs(20_000, 4, k, 1234);
    // expected 250 ms; the std of the mean is 250/sqrt(k·20000) ≤ 3.3 ms, and the seed is fixed
    t.ok(Math.abs(mean(gaps) - 250) < 12.5, `burstiness ${k}: mean ${mean(gaps).toFixed(2)} ms`);
    t.ok(gaps.every((g) => g >= 0));
  }
});

t.test('burstier arrivals vary more', async (t) => {
  const cv = (xs: number[]) => {
    const m = mean(xs);
    return Math.sqrt(mean(xs.map((x) => (x - m) ** 2))) / m;
  };
  t.ok(cv(arrivalGapsMs(20_000, 4, 0.25, 9)) > 1.5); // gamma cv = 1/sqrt(k) = 2
  t.ok(cv(arrivalGapsMs(20_000, 4, 4, 9)) < 0.6); // 0.5
});

t.test('rate inf sends everything at once; times accumulate', async (t) => {
  t.same(arrivalGapsMs(3, Infinity, 1, 0), [0, 0, 0]);
  t.same(arrivalTimesMs([1, 2, 3]), [1, 3, 6]);
  t.throws(() => arrivalGapsMs(3, 1, 0, 0));
});

t.test('the generator: uniform range and shuffle are seeded', async (t) => {
  const a = makeRng(5),
    b = makeRng(5);
  const xs = Array.from({ length: 1000 }, () => a.int(3, 6));
  t.same(
    xs,
    Array.from({ length: 1000 }, () => b.int(3, 6)),
  );
  t.same([...new Set(xs)].sort(), [3, 4, 5, 6]);
  t.same(makeRng(1).shuffle([1, 2, 3, 4, 5]), makeRng(1).shuffle([1, 2, 3, 4, 5]));
});
