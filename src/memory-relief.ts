// Gives memory back to the OS once the server is quiet after load. Two things keep it otherwise:
// V8 collects old objects only when new allocation asks for it, so an idle server would keep the
// buffers of 300 stalled bodies (about 300 MB) or of a cut-off stream's backlog until traffic
// resumed; and glibc keeps what C++ and Node's own buffers freed in its arenas for reuse, so the
// process stayed at its peak size after a flood (it came back only with GLIBC_TUNABLES set). So:
// full garbage collections, then malloc_trim (through the native addon), quietMs after the
// server last shed a connection or went idle (nothing in flight) having grown by growthBytes.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface MemoryReliefOptions {
  quietMs?: number; // how long nothing must happen before the collection
  growthBytes?: number; // an idle server collects only when RSS grew this much since the last one
  isBusy?: () => boolean; // requests in flight: never collect under them
  trim?: (() => boolean) | null; // malloc_trim(0); null where there is none
  rss?: () => number;
  onCollect?: (rssBefore: number, rssAfter: number) => void;
}

export class MemoryRelief {
  readonly #gc: (() => void) | null;
  readonly #o: Required<MemoryReliefOptions>;
  #timer: NodeJS.Timeout | undefined;
  #isShed = false; // a shed connection's buffers are garbage: collect even if RSS did not grow
  #rssAfter: number; // RSS at rest: growth beyond it by growthBytes asks for a collection
  numCollections = 0;
  numTrims = 0; // collections after which glibc gave memory back
  collection: Promise<void> = Promise.resolve(); // the last one, done when it has trimmed

  constructor(options: MemoryReliefOptions = {}) {
    this.#gc = collector();
    this.#o = {
      quietMs: 1000,
      growthBytes: 32 * 2 ** 20,
      isBusy: () => false,
      trim: null,
      rss: () => process.memoryUsage.rss(),
      onCollect: () => undefined,
      ...options,
    };
    this.#rssAfter = this.#o.rss();
  }

  get isAvailable(): boolean {
    return this.#gc !== null;
  }

  // A connection that held buffers was shed (a 408, a write timeout).
  shed(): void {
    this.#isShed = true;
    this.#schedule();
  }

  // Nothing is in flight now: collect after quietMs if the process grew and nothing is in flight
  // then. It does not restart a wait under way: requests that come and go at about quietMs (a
  // readiness probe, a metrics scrape) would put it off for ever.
  // The RSS the growth counts from is the lowest seen at such a moment: after a collection RSS
  // goes on falling for seconds (the OS and V8 let go of pages late), and growth counted from the
  // RSS just after it went unnoticed (a soak's third round kept its 311 MiB).
  idle(): void {
    this.#rssAfter = Math.min(this.#rssAfter, this.#o.rss());
    if (this.#timer === undefined) this.#schedule();
  }

  // Restarts the wait, so a burst of shed connections leads to one collection after its end.
  #schedule(): void {
    if (!this.#gc && !this.#o.trim) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.collectIfDue();
    }, this.#o.quietMs);
    this.#timer.unref();
  }

  // What the timer runs: true when a collection starts (`collection` says when it is done).
  collectIfDue(): boolean {
    if (this.#o.isBusy()) return false; // the request that ends it calls idle() again
    if (!this.#isShed && this.#o.rss() < this.#rssAfter + this.#o.growthBytes) return false;
    this.#isShed = false;
    this.numCollections++;
    this.collection = this.#collect(this.#o.rss());
    return true;
  }

  // Twice, each followed by a turn of the event loop: V8 frees the backing stores of dead
  // ArrayBuffers (socket reads, request bodies) on a background thread after a collection, and a
  // trim before that finds nothing to give back (a server kept 441 of 451 MiB after a flood in 2 of
  // 5 runs); the next collection waits for that sweep to finish, and also releases the V8 heap
  // pages the first one emptied. The turns let native addons' finalizers run, which Node defers
  // until after the collection: the tokenizer's encodings (their ids, tokens and offsets in Rust)
  // were freed only then, after the trim, and a soak's RSS at rest grew ~10 MiB a round.
  async #collect(before: number): Promise<void> {
    const turn = () => new Promise<void>((resolve) => setImmediate(resolve));
    this.#gc?.();
    await turn();
    this.#gc?.();
    await turn();
    if (this.#o.trim?.()) this.numTrims++;
    this.#rssAfter = this.#o.rss();
    this.#o.onCollect(before, this.#rssAfter);
  }

  close(): void {
    clearTimeout(this.#timer);
  }
}

// node --expose-gc gives a global gc(); otherwise the flag is set now, which gives new contexts one.
function collector(): (() => void) | null {
  const g = (globalThis as { gc?: () => void }).gc;
  if (typeof g === 'function') return g;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}
