import t from 'tap';

import { BlockManager, hashBlock } from '../../src/scheduler/block-manager.js';
import { FreeBlockQueue, BlockLinks } from '../../src/scheduler/free-block-queue.js';
import { Sequence } from '../../src/scheduler/sequence.js';
import { range } from './scheduler-harness.js';

const BS = 4;

function seqOf(id: string, tokens: number[]): Sequence {
  return new Sequence({ requestId: id, promptTokenIds: tokens });
}

// allocate with the cached prefix, then pretend the engine computed `numTokens` tokens
function admit(bm: BlockManager, seq: Sequence, numNewTokens = seq.numTokens): boolean {
  const prefix = bm.getCachedPrefix(seq);
  const n = Math.min(numNewTokens, seq.numTokens - prefix.numTokens);
  if (!bm.allocate(seq, prefix, n)) return false;
  seq.numComputedTokens += n;
  bm.cacheFullBlocks(seq);
  return true;
}

function allRefCountsZero(bm: BlockManager): boolean {
  return range(0, bm.numBlocks).every((b) => bm.refCount(b) === 0);
}

t.test('free block queue: FIFO with O(1) removal from the middle', async (t) => {
  const links = new BlockLinks(8);
  const a = new FreeBlockQueue(links, 0);
  const b = new FreeBlockQueue(links, 1);
  for (const x of [3, 1, 4, 5]) a.push(x);
  b.push(2);
  a.remove(4);
  t.same([...a], [3, 1, 5]);
  t.equal(a.shift(), 3);
  t.ok(b.has(2));
  t.notOk(a.has(2));
  t.throws(() => a.push(2), /already free/);
  t.equal(a.size, 2);
  t.equal(a.shift(), 1);
  t.equal(a.shift(), 5);
  t.equal(a.shift(), -1);
});

t.test('allocate and appendSlots answer "no room" without changing anything', async (t) => {
  const bm = new BlockManager({ numBlocks: 4, blockSize: BS, enablePrefixCaching: false });
  const a = seqOf('a', range(1, 10)); // 3 blocks
  t.ok(admit(bm, a));
  t.equal(bm.numUsedBlocks, 3);
  t.equal(bm.numFreeBlocks, 1);
  const b = seqOf('b', range(1, 8)); // 2 blocks: no room
  t.notOk(bm.allocate(b, bm.getCachedPrefix(b), 8));
  t.same(b.blockTable, []);
  t.equal(bm.numFreeBlocks, 1);
  // a has 10 tokens in 3 blocks: 2 more fit in its last block, 3 more need a 4th, 7 more a 5th
  t.ok(bm.appendSlots(a, 2));
  t.equal(a.blockTable.length, 3);
  t.notOk(bm.appendSlots(a, 7));
  t.equal(a.blockTable.length, 3);
  t.ok(bm.appendSlots(a, 3));
  t.equal(a.blockTable.length, 4);
  t.equal(bm.numFreeBlocks, 0);
  bm.free(a);
  t.same(a.blockTable, []);
  t.equal(bm.numFreeBlocks, 4);
  t.ok(allRefCountsZero(bm));
  t.throws(() => bm.free({ ...a, blockTable: [0] } as unknown as Sequence), /freed twice/);
});

t.test('freed blocks that cache nothing are handed out again first, before never-used ones', async (t) => {
  const bm = new BlockManager({ numBlocks: 6, blockSize: BS, enablePrefixCaching: false });
  const a = seqOf('a', range(1, 8));
  const b = seqOf('b', range(1, 8));
  admit(bm, a);
  admit(bm, b);
  t.same(a.blockTable, [0, 1]);
  t.same(b.blockTable, [2, 3]);
  bm.free(b); // freed tail first: 3, then 2 go to the head of the queue, before 4, 5
  bm.free(a); // then 1, 0
  const c = seqOf('c', range(100, 24));
  admit(bm, c);
  t.same(c.blockTable, [0, 1, 2, 3, 4, 5], 'the memory already touched is reused; 4 and 5 come last');
});

t.test('prefix cache: hits on computed full blocks only, counted in tokens', async (t) => {
  const bm = new BlockManager({ numBlocks: 16, blockSize: BS, enablePrefixCaching: true });
  const shared = range(1, 12); // 3 full blocks
  const a = seqOf('a', [...shared, 50, 51]);
  // a has only its first chunk (5 tokens) computed: one full block registered
  t.ok(admit(bm, a, 5));
  t.equal(bm.numCachedBlocks, 1);
  const early = seqOf('early', [...shared, 60]);
  t.equal(bm.getCachedPrefix(early).numTokens, 4, 'an uncomputed block is never a hit');
  // finish a's prefill
  t.ok(bm.appendSlots(a, 9));
  a.numComputedTokens += 9;
  bm.cacheFullBlocks(a);
  t.equal(bm.numCachedBlocks, 3);

  const b = seqOf('b', [...shared, 70, 71, 72]);
  const prefix = bm.getCachedPrefix(b);
  t.same(prefix.blockIds, a.blockTable.slice(0, 3));
  t.equal(prefix.numTokens, 12);
  t.ok(bm.allocate(b, prefix, 3));
  t.equal(b.numComputedTokens, 12);
  t.equal(b.numCachedPromptTokens, 12);
  t.equal(bm.refCount(a.blockTable[0]), 2);
  t.equal(bm.numPrefixCacheQueries, 14 + 15);
  t.equal(bm.numPrefixCacheHits, 0 + 12);

  // a prompt that is entirely cached still computes its last block
  const c = seqOf('c', shared);
  t.equal(bm.getCachedPrefix(c).numTokens, 8);

  // different content in the first block breaks the chain even if later blocks are equal
  const d = seqOf('d', [99, ...shared.slice(1), 1]);
  t.equal(bm.getCachedPrefix(d).numTokens, 0);

  bm.free(a);
  bm.free(b);
  t.ok(allRefCountsZero(bm));
  t.equal(bm.numFreeBlocks, 16);
  t.equal(bm.numCachedBlocks, 3, 'freed blocks stay cached');
  t.equal(bm.getCachedPrefix(seqOf('e', [...shared, 1])).numTokens, 12, 'and still hit after free');
});

t.test('cached free blocks are evicted LRU, after blocks holding nothing', async (t) => {
  const bm = new BlockManager({ numBlocks: 5, blockSize: BS, enablePrefixCaching: true });
  const a = seqOf('a', [...range(10, 4), 1]);
  const b = seqOf('b', [...range(20, 4), 1]);
  admit(bm, a); // blocks 0 (full: cached) and 1 (partial)
  admit(bm, b); // blocks 2 (cached) and 3
  bm.free(a); // freed tail first: 1, then 0
  bm.free(b); // 3, then 2
  t.equal(bm.numCachedBlocks, 2);
  // blocks holding nothing go first (3 and 1, most recently freed first, then the never-used 4),
  // then the least recently freed cached one (0)
  const c = seqOf('c', range(100, 16));
  t.ok(admit(bm, c));
  t.same(c.blockTable, [3, 1, 4, 0]);
  t.equal(bm.numEvictions, 1);
  t.ok(bm.isBlockCached(0), "block 0 now caches c's last block");
  t.equal(bm.getCachedPrefix(seqOf('a2', [...range(10, 4), 1])).numTokens, 0, "a's prefix was evicted");
  t.equal(bm.getCachedPrefix(seqOf('b2', [...range(20, 4), 1])).numTokens, 4, "b's survived");
  bm.free(c);
  // a hit revives a cached free block out of the free queue; the fresh block comes from the head
  const b2 = seqOf('b2', [...range(20, 4), 2]);
  t.ok(admit(bm, b2));
  t.same(b2.blockTable, [2, 0]);
  t.equal(bm.refCount(2), 1);
  t.equal(bm.numFreeBlocks, 3);
});

t.test('fork shares blocks; a write into a shared block copies it first', async (t) => {
  const bm = new BlockManager({ numBlocks: 8, blockSize: BS, enablePrefixCaching: true });
  const parent = seqOf('p', range(1, 6)); // block 0 full, block 1 holds 2 tokens
  admit(bm, parent);
  const child = seqOf('c', range(1, 6));
  bm.fork(parent, child);
  t.same(child.blockTable, parent.blockTable);
  t.equal(child.numComputedTokens, 6);
  t.equal(bm.refCount(parent.blockTable[0]), 2);
  t.equal(bm.refCount(parent.blockTable[1]), 2);
  const [full, partial] = parent.blockTable;

  // the child writes its 7th token into the shared partial block: copy-on-write
  child.tokenIds.push(40);
  t.ok(bm.appendSlots(child, 1));
  const copies = bm.takeBlockCopies();
  t.equal(copies.length, 1);
  t.same(copies[0], [partial, child.blockTable[1]]);
  t.not(child.blockTable[1], partial);
  t.same(parent.blockTable, [full, partial], 'the parent keeps its blocks');
  t.equal(child.blockTable[0], full, 'the full block stays shared');
  t.equal(bm.refCount(partial), 1);
  t.equal(bm.refCount(full), 2);
  t.same(bm.takeBlockCopies(), [], 'copies are handed out once');

  // the parent now owns its partial block alone: no copy
  parent.tokenIds.push(41);
  t.ok(bm.appendSlots(parent, 1));
  t.same(bm.takeBlockCopies(), []);
  t.equal(parent.blockTable[1], partial);

  // no room for the copy: "no room", nothing changed
  const small = new BlockManager({ numBlocks: 2, blockSize: BS, enablePrefixCaching: false });
  const p2 = seqOf('p2', range(1, 6));
  admit(small, p2);
  const c2 = seqOf('c2', range(1, 6));
  small.fork(p2, c2);
  t.notOk(small.appendSlots(c2, 1));
  t.same(c2.blockTable, p2.blockTable);
  t.same(small.takeBlockCopies(), []);

  bm.free(parent);
  bm.free(child);
  t.ok(allRefCountsZero(bm));
  t.equal(bm.numFreeBlocks, 8);
});

t.test('a copy into a block freed before the step is dropped', async (t) => {
  const bm = new BlockManager({ numBlocks: 8, blockSize: BS, enablePrefixCaching: false });
  const parent = seqOf('p', range(1, 2));
  admit(bm, parent);
  const child = seqOf('c', range(1, 2));
  bm.fork(parent, child);
  t.ok(bm.appendSlots(child, 1));
  bm.free(child); // e.g. preempted in the same schedule()
  t.same(bm.takeBlockCopies(), []);
  bm.free(parent);
  t.ok(allRefCountsZero(bm));
});

t.test('block hash: chained, content-sensitive, deterministic', async (t) => {
  const tokens = range(0, 32);
  const h0 = hashBlock(0, tokens, 0, 16);
  t.equal(h0, hashBlock(0, tokens, 0, 16));
  t.not(h0, hashBlock(0, tokens, 16, 16));
  t.not(hashBlock(h0, tokens, 16, 16), hashBlock(h0 + 1, tokens, 16, 16), 'parent hash matters');
  t.ok(Number.isSafeInteger(h0) && h0 >= 0);
  const seen = new Set<number>();
  for (let i = 0; i < 20000; i++) seen.add(hashBlock(0, [i, i >> 3, 7], 0, 3));
  t.equal(seen.size, 20000, 'no collisions on 20k small blocks');
});
