// Doubly linked FIFO queues of block ids over shared link arrays, so that a block is removed
// from the middle in O(1) when a prefix-cache hit revives it. A block sits in at most one queue.

export class BlockLinks {
  readonly prev: Int32Array;
  readonly next: Int32Array;
  readonly owner: Int32Array; // index of the queue holding the block, -1 for none

  constructor(numBlocks: number) {
    this.prev = new Int32Array(numBlocks).fill(-1);
    this.next = new Int32Array(numBlocks).fill(-1);
    this.owner = new Int32Array(numBlocks).fill(-1);
  }
}

export class FreeBlockQueue {
  #head = -1;
  #tail = -1;
  #size = 0;
  private readonly links: BlockLinks;
  private readonly queueId: number;

  constructor(links: BlockLinks, queueId: number) {
    this.links = links;
    this.queueId = queueId;
  }

  get size(): number {
    return this.#size;
  }

  has(block: number): boolean {
    return this.links.owner[block] === this.queueId;
  }

  // Appends at the tail: the most recently freed block is the last one handed out.
  push(block: number): void {
    const { prev, next, owner } = this.links;
    if (owner[block] !== -1) throw new Error(`block ${block} is already free`);
    owner[block] = this.queueId;
    prev[block] = this.#tail;
    next[block] = -1;
    if (this.#tail === -1) this.#head = block;
    else next[this.#tail] = block;
    this.#tail = block;
    this.#size++;
  }

  // Puts a block at the head: the next one handed out.
  unshift(block: number): void {
    const { prev, next, owner } = this.links;
    if (owner[block] !== -1) throw new Error(`block ${block} is already free`);
    owner[block] = this.queueId;
    prev[block] = -1;
    next[block] = this.#head;
    if (this.#head === -1) this.#tail = block;
    else prev[this.#head] = block;
    this.#head = block;
    this.#size++;
  }

  // Takes the least recently freed block, or -1.
  shift(): number {
    const block = this.#head;
    if (block !== -1) this.remove(block);
    return block;
  }

  remove(block: number): void {
    const { prev, next, owner } = this.links;
    if (owner[block] !== this.queueId) throw new Error(`block ${block} is not in this queue`);
    const p = prev[block];
    const n = next[block];
    if (p === -1) this.#head = n;
    else next[p] = n;
    if (n === -1) this.#tail = p;
    else prev[n] = p;
    prev[block] = next[block] = owner[block] = -1;
    this.#size--;
  }

  *[Symbol.iterator](): IterableIterator<number> {
    for (let b = this.#head; b !== -1; b = this.links.next[b]) yield b;
  }
}
