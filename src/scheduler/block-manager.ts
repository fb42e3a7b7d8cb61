// Mirrors the engine's paged KV cache: which block holds which sequence's tokens, with
// reference counts, copy-on-write after a fork, and prefix caching of full blocks.
//
// Prefix caching (as vLLM v1): a full block whose tokens have all been computed is registered
// under a chained hash hash(parent block's hash, the block's tokens). When its reference count
// drops to zero it stays registered and evictable. Free blocks are handed out in two tiers:
// blocks holding nothing reusable first, least recently freed first; then cached blocks, least
// recently freed first (LRU eviction). A sequence frees its blocks tail first, so its last blocks
// are evicted before the prefix others are likelier to share. Prefix-cache counters are in tokens.
import { BlockLinks, FreeBlockQueue } from './free-block-queue.js';
import type { Sequence } from './sequence.js';

export interface BlockManagerOptions {
  numBlocks: number;
  blockSize: number;
  enablePrefixCaching: boolean;
}

export interface CachedPrefix {
  readonly blockIds: readonly number[];
  readonly numTokens: number;
}

export type BlockCopy = [src: number, dst: number];

const NO_HASH = -1;
const ROOT_HASH = 0;
const EMPTY_PREFIX: CachedPrefix = Object.freeze({ blockIds: Object.freeze([]), numTokens: 0 });

export class BlockManager {
  readonly numBlocks: number;
  readonly blockSize: number;
  readonly enablePrefixCaching: boolean;
  numPrefixCacheQueries = 0; // prompt tokens looked up at first admission
  numPrefixCacheHits = 0; // of those, tokens found cached
  numEvictions = 0; // cached blocks reused for other content

  readonly #refCounts: Int32Array;
  readonly #hashes: Float64Array; // the block's registered hash, NO_HASH if none
  readonly #parentHashes: Float64Array; // with #tokens: verifies a hash hit is the same content
  readonly #tokens: Int32Array;
  readonly #hashToBlock = new Map<number, number>();
  readonly #plainFree: FreeBlockQueue;
  readonly #cachedFree: FreeBlockQueue;
  #pendingCopies: BlockCopy[] = [];

  constructor(o: BlockManagerOptions) {
    this.numBlocks = o.numBlocks;
    this.blockSize = o.blockSize;
    this.enablePrefixCaching = o.enablePrefixCaching;
    this.#refCounts = new Int32Array(o.numBlocks);
    this.#hashes = new Float64Array(o.numBlocks).fill(NO_HASH);
    this.#parentHashes = new Float64Array(o.numBlocks).fill(NO_HASH);
    this.#tokens = new Int32Array(o.enablePrefixCaching ? o.numBlocks * o.blockSize : 0);
    const links = new BlockLinks(o.numBlocks);
    this.#plainFree = new FreeBlockQueue(links, 0);
    this.#cachedFree = new FreeBlockQueue(links, 1);
    for (let b = 0; b < o.numBlocks; b++) this.#plainFree.push(b);
  }

  get numFreeBlocks(): number {
    return this.#plainFree.size + this.#cachedFree.size;
  }

  get numUsedBlocks(): number {
    return this.numBlocks - this.numFreeBlocks;
  }

  // registered full blocks, in use or evictable
  get numCachedBlocks(): number {
    return this.#hashToBlock.size;
  }

  get usage(): number {
    return this.numUsedBlocks / this.numBlocks;
  }

  refCount(block: number): number {
    return this.#refCounts[block];
  }

  isBlockCached(block: number): boolean {
    return this.#hashes[block] !== NO_HASH;
  }

  // The longest run of cached full blocks at the start of seq's tokens. At least one token is
  // left to compute so that the step yields logits: a fully cached prompt recomputes its last block.
  // A sequence that scores its prompt computes all of it (a cached position yields no logits).
  getCachedPrefix(seq: Sequence): CachedPrefix {
    if (!this.enablePrefixCaching || seq.promptLogprobs !== null || seq.hiddenStates === 'all') return EMPTY_PREFIX;
    const maxBlocks = Math.floor((seq.numTokens - 1) / this.blockSize);
    this.#extendHashes(seq, maxBlocks);
    const blockIds: number[] = [];
    for (let i = 0; i < maxBlocks; i++) {
      const block = this.#hashToBlock.get(seq.blockHashes[i]);
      if (block === undefined || !this.#isSameContent(block, seq, i)) break;
      blockIds.push(block);
    }
    return blockIds.length === 0 ? EMPTY_PREFIX : { blockIds, numTokens: blockIds.length * this.blockSize };
  }

  // Gives a sequence without blocks its cached prefix plus room for numNewTokens more tokens.
  // Returns false, changing nothing, when there is no room.
  allocate(seq: Sequence, prefix: CachedPrefix, numNewTokens: number): boolean {
    if (seq.blockTable.length !== 0) throw new Error(`sequence ${seq.requestId} already has blocks`);
    const numNeeded = Math.ceil((prefix.numTokens + numNewTokens) / this.blockSize);
    let numRevived = 0;
    for (const b of prefix.blockIds) if (this.#refCounts[b] === 0) numRevived++;
    if (numNeeded - prefix.blockIds.length > this.numFreeBlocks - numRevived) return false;
    for (const b of prefix.blockIds) {
      if (this.#refCounts[b] === 0) this.#cachedFree.remove(b);
      this.#refCounts[b]++;
    }
    const table = [...prefix.blockIds];
    while (table.length < numNeeded) table.push(this.#takeFreeBlock());
    seq.blockTable = table;
    seq.numComputedTokens = prefix.numTokens;
    seq.numHashedBlocks = prefix.blockIds.length;
    if (this.enablePrefixCaching && seq.numPreemptions === 0) {
      this.numPrefixCacheQueries += seq.numTokens;
      this.numPrefixCacheHits += prefix.numTokens;
      seq.numCachedPromptTokens = prefix.numTokens;
    }
    return true;
  }

  // Makes room to write numNewTokens more tokens after seq's computed ones. A shared block about
  // to be written is replaced by a private copy (copy-on-write) and the copy recorded for the
  // engine. Returns false, changing nothing, when there is no room.
  appendSlots(seq: Sequence, numNewTokens: number): boolean {
    const table = seq.blockTable;
    const first = Math.floor(seq.numComputedTokens / this.blockSize);
    const numNeeded = Math.ceil((seq.numComputedTokens + numNewTokens) / this.blockSize);
    const numShared = this.#countShared(table, first, Math.min(numNeeded, table.length));
    if (numShared + Math.max(0, numNeeded - table.length) > this.numFreeBlocks) return false;
    for (let i = first; i < Math.min(numNeeded, table.length); i++) {
      const src = table[i];
      if (this.#refCounts[src] <= 1) continue;
      const dst = this.#takeFreeBlock();
      this.#refCounts[src]--;
      this.#pendingCopies.push([src, dst]);
      table[i] = dst;
    }
    while (table.length < numNeeded) table.push(this.#takeFreeBlock());
    return true;
  }

  // Drops seq's hold on its blocks, tail first. Its KV is gone: the caller resets numComputedTokens.
  free(seq: Sequence): void {
    const table = seq.blockTable;
    for (let i = table.length - 1; i >= 0; i--) this.#release(table[i]);
    seq.blockTable = [];
    seq.numHashedBlocks = 0;
  }

  // child shares every block of parent (same tokens so far); whichever writes first into a
  // shared block gets a copy.
  fork(parent: Sequence, child: Sequence): void {
    if (child.blockTable.length !== 0) throw new Error(`sequence ${child.requestId} already has blocks`);
    for (const b of parent.blockTable) this.#refCounts[b]++;
    child.blockTable = [...parent.blockTable];
    child.numComputedTokens = parent.numComputedTokens;
    child.numHashedBlocks = parent.numHashedBlocks;
    child.blockHashes.length = 0;
    child.blockHashes.push(...parent.blockHashes);
  }

  // Registers seq's blocks that became full and computed. Call after numComputedTokens advanced.
  cacheFullBlocks(seq: Sequence): void {
    if (!this.enablePrefixCaching) return;
    const numFull = Math.min(Math.floor(seq.numComputedTokens / this.blockSize), seq.blockTable.length);
    if (numFull <= seq.numHashedBlocks) return;
    this.#extendHashes(seq, numFull);
    for (let i = seq.numHashedBlocks; i < numFull; i++) {
      const block = seq.blockTable[i];
      const hash = seq.blockHashes[i];
      // the same content computed twice at once keeps the first copy; this one stays unregistered
      if (this.#hashes[block] !== NO_HASH || this.#hashToBlock.has(hash)) continue;
      this.#hashToBlock.set(hash, block);
      this.#hashes[block] = hash;
      this.#parentHashes[block] = i === 0 ? ROOT_HASH : seq.blockHashes[i - 1];
      for (let j = 0; j < this.blockSize; j++) this.#tokens[block * this.blockSize + j] = seq.tokenIds[i * this.blockSize + j];
    }
    seq.numHashedBlocks = numFull;
  }

  // The (src, dst) copies the engine must run before the next forward pass; clears them.
  takeBlockCopies(): BlockCopy[] {
    const copies = this.#pendingCopies;
    this.#pendingCopies = [];
    return copies;
  }

  #countShared(table: readonly number[], from: number, to: number): number {
    let n = 0;
    for (let i = from; i < to; i++) if (this.#refCounts[table[i]] > 1) n++;
    return n;
  }

  #takeFreeBlock(): number {
    let block = this.#plainFree.shift();
    if (block === -1) {
      block = this.#cachedFree.shift();
      if (block === -1) throw new Error('no free KV block'); // callers check room first
      this.#evict(block);
    }
    this.#refCounts[block] = 1;
    return block;
  }

  #evict(block: number): void {
    const hash = this.#hashes[block];
    if (this.#hashToBlock.get(hash) === block) this.#hashToBlock.delete(hash);
    this.#hashes[block] = NO_HASH;
    this.#parentHashes[block] = NO_HASH;
    this.numEvictions++;
  }

  #release(block: number): void {
    if (--this.#refCounts[block] > 0) return;
    if (this.#refCounts[block] < 0) throw new Error(`block ${block} freed twice`);
    // A block with no hash has no cache value: it is handed out again before the blocks never
    // touched, so the KV memory in use (allocated lazily by the engines) stays near peak use.
    if (this.#hashes[block] !== NO_HASH) this.#cachedFree.push(block);
    else this.#plainFree.unshift(block);
    // a copy into a block nobody holds any more is moot, and the block may be handed out again
    if (this.#pendingCopies.length > 0) this.#pendingCopies = this.#pendingCopies.filter(([, dst]) => dst !== block);
  }

  #extendHashes(seq: Sequence, numBlocks: number): void {
    const hashes = seq.blockHashes;
    for (let i = hashes.length; i < numBlocks; i++) {
      hashes.push(hashBlock(i === 0 ? ROOT_HASH : hashes[i - 1], seq.tokenIds, i * this.blockSize, this.blockSize));
    }
  }

  #isSameContent(block: number, seq: Sequence, index: number): boolean {
    if (this.#parentHashes[block] !== (index === 0 ? ROOT_HASH : seq.blockHashes[index - 1])) return false;
    const base = block * this.blockSize;
    const start = index * this.blockSize;
    for (let j = 0; j < this.blockSize; j++) if (this.#tokens[base + j] !== seq.tokenIds[start + j]) return false;
    return true;
  }
}

// A 53-bit chained hash of one block's tokens: two 32-bit murmur-style lanes, each seeded
// with both halves of the parent hash. Hits are verified against stored tokens, so a collision
// costs a miss, never wrong KV.
export function hashBlock(parent: number, tokens: ArrayLike<number>, start: number, length: number): number {
  const lo = parent >>> 0;
  const hi = Math.floor(parent / 0x100000000) >>> 0;
  let a = (lo ^ Math.imul(hi, 0x9e3779b1) ^ 0x243f6a88) | 0;
  let b = (hi ^ Math.imul(lo, 0x85ebca77) ^ 0x13198a2e) | 0;
  for (let i = start; i < start + length; i++) {
    const t = tokens[i] | 0;
    a = Math.imul(a ^ t, 0xcc9e2d51);
    a = Math.imul((a << 15) | (a >>> 17), 0x1b873593);
    b = Math.imul(b ^ t, 0x85ebca6b);
    b = (Math.imul((b << 13) | (b >>> 19), 5) + 0xe6546b64) | 0;
    b ^= a >>> 7;
  }
  a = fmix32(a ^ length);
  b = fmix32(b ^ a);
  return (a >>> 0) * 0x200000 + ((b >>> 0) & 0x1fffff);
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
