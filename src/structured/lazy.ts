// A value made asynchronously on first use, shared by every caller, and made again on the next use
// if making it failed (a broken xgrammar instance, a model file not readable yet).
export class Lazy<T> {
  #value: Promise<T> | null = null;

  constructor(private readonly make: () => Promise<T>) {}

  get(): Promise<T> {
    if (!this.#value) {
      const p = this.make();
      this.#value = p;
      p.catch(() => {
        if (this.#value === p) this.#value = null;
      });
    }
    return this.#value;
  }

  // The next get() makes a new one.
  reset(): void {
    this.#value = null;
  }
}
