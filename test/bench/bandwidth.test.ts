// bench:engine's memory read probe: one thread and several at once each give a finite rate, and
// the probe's worker threads are gone when it returns (a leftover worker would keep this file's
// process alive past tap's timeout).
import t from 'tap';

import { readBandwidth } from '../../bench/timing.js';

t.test('the read probe measures on 1 and 2 threads', async (t) => {
  for (const threads of [1, 2]) {
    const bytesPerSec = await readBandwidth(threads);
    t.ok(Number.isFinite(bytesPerSec) && bytesPerSec > 1e8, `${threads} thread(s): ${(bytesPerSec / 1e9).toFixed(1)} GB/s`);
  }
});
