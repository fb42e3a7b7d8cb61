// MemoryRelief: one full collection once connections stop being shed, not one per connection.
import t from 'tap';

import { MemoryRelief } from '../../src/memory-relief.js';

t.test('shedding connections leads to one collection once it stops', async (t) => {
  let collected!: () => void;
  const done = new Promise<void>((resolve) => { collected = resolve; });
  const relief = new MemoryRelief(0, () => collected());
  const alive = setInterval(() => undefined, 1 << 30);   // its timer is unref'd: keep this process up meanwhile
  t.ok(relief.isAvailable, 'the collector can be called in this runtime');
  for (let i = 0; i < 100; i++) relief.shed();
  await done;
  t.equal(relief.numCollections, 1, 'a burst of 100 gives one collection');
  relief.close();
  clearInterval(alive);
});
