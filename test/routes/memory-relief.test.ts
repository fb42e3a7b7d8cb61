// The server's MemoryRelief gives freed memory back to the OS: glibc keeps what was freed in the
// middle of its heaps (here: request-sized buffers, every sixteenth kept alive), and only the
// native malloc_trim after the collection returns it.
import t from 'tap';

import { buildApp } from '../../src/app.js';
import { testConfig } from './helpers.js';

const mib = () => process.memoryUsage.rss() / 2 ** 20;

t.test('a collection after connections were shed returns freed heap memory to the OS', async (t) => {
  const app = await buildApp(testConfig());
  t.teardown(() => app.close());
  const kept: Buffer[] = [];
  let freed: Buffer[] | null = [];
  for (let i = 0; i < 4000; i++) (i % 16 === 0 ? kept : freed).push(Buffer.alloc(32 * 1024, 1)); // 125 MiB
  const grown = mib();
  freed = null;
  app.weft.relief.shed();
  t.ok(app.weft.relief.collectIfDue(), 'collected: nothing in flight');
  await app.weft.relief.collection;
  t.equal(app.weft.relief.numTrims, 1, 'malloc_trim gave memory back');
  const after = mib();
  t.ok(grown - after > 64, `RSS fell by more than half of what was freed (${grown.toFixed(0)} → ${after.toFixed(0)} MiB)`);
  t.equal(kept.length, 250);
});
