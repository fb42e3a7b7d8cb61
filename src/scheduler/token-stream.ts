// A single-consumer async queue of one request's events; the engine loop pushes, the caller
// iterates with for-await. Ends after the event that carries a finish reason.
export class TokenStream<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #waiter: ((r: IteratorResult<T>) => void) | null = null;
  #closed = false;
  #onEmpty: (() => void) | null = null;

  // events pushed and not yet taken: how far the consumer lags
  get size(): number {
    return this.#items.length;
  }

  // Calls fn once, when the consumer has taken every queued event.
  onceEmpty(fn: () => void): void {
    this.#onEmpty = fn;
  }

  push(item: T, isLast = false): void {
    if (this.#closed) return;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = null;
      w({ value: item, done: false });
    } else this.#items.push(item);
    if (isLast) this.#closed = true;
  }

  get isClosed(): boolean {
    return this.#closed;
  }

  [Symbol.asyncIterator](): AsyncIterator<T> {
    return {
      next: () => {
        if (this.#items.length > 0) {
          const value = this.#items.shift()!;
          if (this.#items.length === 0 && this.#onEmpty) {
            const fn = this.#onEmpty;
            this.#onEmpty = null;
            fn();
          }
          return Promise.resolve({ value, done: false });
        }
        if (this.#closed) return Promise.resolve({ value: undefined, done: true });
        return new Promise((resolve) => {
          this.#waiter = resolve;
        });
      },
    };
  }
}
