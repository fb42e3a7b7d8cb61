// After the server sheds connections that held memory (requests cut off for arriving or reading
// too slowly), one full garbage collection once things are quiet gives that memory back. V8
// collects old objects only when new allocation asks for it, so an idle server would keep the
// buffers of 300 stalled bodies (about 300 MB) or of a cut-off stream's backlog until traffic
// resumed. Without a way to call the collector this does nothing.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export class MemoryRelief {
  readonly #gc: (() => void) | null;
  #timer: NodeJS.Timeout | undefined;
  numCollections = 0;

  constructor(
    readonly quietMs = 1000,
    readonly onCollect: () => void = () => undefined,
  ) {
    this.#gc = collector();
  }

  get isAvailable(): boolean {
    return this.#gc !== null;
  }

  // A connection that held buffers was shed: collect once none has been for quietMs.
  shed(): void {
    if (!this.#gc) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.numCollections++;
      this.#gc!();
      this.onCollect();
    }, this.quietMs);
    this.#timer.unref();
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
