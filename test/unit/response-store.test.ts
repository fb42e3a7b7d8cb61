// The Responses API's store: bounded by bytes, the least recently used finished entry evicted
// first, a running one never; a size of 0 stores nothing.
import t from 'tap';

import { ResponseStore } from '../../src/response-store.js';

const entry = (text: string) => ({ response: { text }, inputItems: [], conversation: [] });
const size = (text: string) => JSON.stringify([{ text }, [], []]).length;

t.test('bytes are counted and the least recently used goes first', async (t) => {
  const one = 'x'.repeat(100);
  const store = new ResponseStore<{ text: string }, never, never>(3 * size(one));
  for (const id of ['a', 'b', 'c']) store.put(id, entry(one));
  t.equal(store.size, 3);
  t.equal(store.bytes, 3 * size(one), 'the JSON size of each entry');
  t.ok(store.get('a'), 'a used: now the most recent');
  store.put('d', entry(one));
  t.same(
    ['a', 'b', 'c', 'd'].filter((id) => store.has(id)),
    ['a', 'c', 'd'],
    'b, the least recently used, evicted',
  );
  store.put('c', entry('y'));
  t.equal(store.bytes, 2 * size(one) + size('y'), 'a replaced entry counts its new size');
  t.ok(store.delete('a'));
  t.notOk(store.delete('a'), 'deleted once');
  t.equal(store.bytes, size(one) + size('y'));
  store.put('big', entry('z'.repeat(10 * 100)));
  t.equal(store.size, 0, 'an entry larger than the store evicts everything, itself included');
  t.equal(store.bytes, 0);
});

t.test('a running entry is never evicted; once finished it can be', async (t) => {
  const one = 'x'.repeat(100);
  const store = new ResponseStore<{ text: string }, never, never>(2 * size(one));
  store.put('run', { ...entry(one), cancel: async () => undefined }, true);
  store.put('a', entry(one));
  store.put('b', entry(one));
  t.ok(store.has('run'), 'the running one stays');
  t.notOk(store.has('a'), 'a finished one made room');
  t.ok(store.has('b'));
  store.put('run', entry(one)); // finished: now the most recently used
  store.put('c', entry(one));
  t.same(
    ['run', 'b', 'c'].filter((id) => store.has(id)),
    ['run', 'c'],
  );
  store.put('d', entry(one));
  t.same(
    ['run', 'c', 'd'].filter((id) => store.has(id)),
    ['c', 'd'],
    'evicted like any other once finished',
  );
});

t.test('a store of 0 bytes keeps nothing', async (t) => {
  const store = new ResponseStore<{ text: string }, never, never>(0);
  t.notOk(store.isEnabled);
  store.put('a', entry('x'));
  t.equal(store.size, 0);
  t.equal(store.get('a'), undefined);
});
