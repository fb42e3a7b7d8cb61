// MemoryRelief: one collection (a full GC, then malloc_trim) once connections stop being shed, not
// one per connection; at idle only when the process grew since the last one, never under requests.
import t from 'tap';

import { MemoryRelief } from '../../src/memory-relief.js';

t.test('shedding connections leads to one collection and one trim once it stops', async (t) => {
  let collected!: () => void;
  const done = new Promise<void>((resolve) => {
    collected = resolve;
  });
  let numTrimCalls = 0;
  const relief = new MemoryRelief({ quietMs: 0, trim: () => ++numTrimCalls > 0, onCollect: () => collected() });
  const alive = setInterval(() => undefined, 1 << 30); // its timer is unref'd: keep this process up meanwhile
  t.ok(relief.isAvailable, 'the collector can be called in this runtime');
  for (let i = 0; i < 100; i++) relief.shed();
  await done;
  t.equal(relief.numCollections, 1, 'a burst of 100 gives one collection');
  t.equal(numTrimCalls, 1, 'and one malloc_trim');
  t.equal(relief.numTrims, 1, 'counted when it gave memory back');
  relief.close();
  clearInterval(alive);
});

t.test('at idle: a collection only when RSS grew by growthBytes since the last, and none while busy', async (t) => {
  let rss = 100,
    isBusy = false,
    numTrimCalls = 0;
  const relief = new MemoryRelief({ quietMs: 60_000, growthBytes: 50, rss: () => rss, isBusy: () => isBusy, trim: () => (numTrimCalls++, false) });
  t.notOk(relief.collectIfDue(), 'no growth since it started: nothing to do');
  rss = 149;
  t.notOk(relief.collectIfDue(), 'grown by less than growthBytes: nothing');
  rss = 150;
  isBusy = true;
  t.notOk(relief.collectIfDue(), 'grown, but requests are in flight: not under them');
  isBusy = false;
  let turns = 0;
  setImmediate(() => setImmediate(() => turns++));
  t.ok(relief.collectIfDue(), 'grown and idle: collected');
  t.equal(numTrimCalls, 0, 'malloc_trim not yet: native finalizers run in a later turn of the event loop');
  await relief.collection;
  t.equal(numTrimCalls, 1, 'malloc_trim called');
  t.equal(turns, 1, 'two turns after the collection began');
  t.equal(relief.numTrims, 0, 'not counted as a trim: it gave nothing back');
  t.notOk(relief.collectIfDue(), 'the next needs new growth from the RSS after this one');
  relief.shed();
  t.ok(relief.collectIfDue(), 'a shed connection collects without growth');
  await relief.collection;
  t.equal(relief.numCollections, 2);
  relief.close();
});

t.test('going idle again and again does not put the collection off', async (t) => {
  let collected!: () => void;
  const done = new Promise<void>((resolve) => {
    collected = resolve;
  });
  let rss = 100;
  const relief = new MemoryRelief({ quietMs: 50, growthBytes: 10, rss: () => rss, onCollect: () => collected() });
  rss = 200;
  relief.idle();
  const probe = setInterval(() => relief.idle(), 10); // a request ending every 10 ms, each time nothing left in flight
  await done;
  clearInterval(probe);
  t.equal(relief.numCollections, 1, 'collected while idle() kept coming');
  relief.close();
});

t.test('growth counts from the lowest RSS seen when idle, not from just after the last collection', async (t) => {
  let rss = 300;
  const relief = new MemoryRelief({ quietMs: 60_000, growthBytes: 50, rss: () => rss });
  relief.shed();
  t.ok(relief.collectIfDue(), 'collected at 300');
  await relief.collection;
  rss = 200; // RSS went on falling after it
  relief.idle();
  rss = 260;
  t.ok(relief.collectIfDue(), 'grown by 60 from the 200 seen when idle (only -40 from the 300 just after the collection)');
  relief.close();
});
