// The Responses API's stored responses (store: true): in memory, bounded by bytes, the least
// recently used finished one evicted first. A response still running (background) is never
// evicted: it is counted, and the finished ones make room. Nothing outlives the process, as in
// vLLM's store; a client that needs a conversation kept longer sends it whole.
//
// Each entry keeps what a later request needs: the response object as GET returns it, the input
// items of its request (GET …/input_items), and the whole conversation the model saw, its output
// included, so previous_response_id can continue it even after an earlier response in the chain
// was deleted or evicted.

export interface StoredResponse<Response, Item, Message> {
  response: Response;
  inputItems: Item[];
  conversation: Message[]; // instructions excluded: they are not carried over (OpenAI's rule)
  cancel?: () => Promise<void>; // a background response still running: aborts it, resolves once it is stored finished
}

interface Entry<R, I, M> {
  value: StoredResponse<R, I, M>;
  bytes: number;
  isRunning: boolean;
}

export class ResponseStore<R, I, M> {
  readonly #entries = new Map<string, Entry<R, I, M>>(); // in order of use, the oldest first
  #bytes = 0;

  // maxBytes 0: nothing is stored.
  constructor(readonly maxBytes: number) {}

  get isEnabled(): boolean {
    return this.maxBytes > 0;
  }

  get size(): number {
    return this.#entries.size;
  }

  get bytes(): number {
    return this.#bytes;
  }

  // Marks the entry as used (it is evicted last).
  get(id: string): StoredResponse<R, I, M> | undefined {
    const e = this.#entries.get(id);
    if (!e) return undefined;
    this.#entries.delete(id);
    this.#entries.set(id, e);
    return e.value;
  }

  // Stores or replaces the entry; isRunning entries are kept until they are put again finished.
  put(id: string, value: StoredResponse<R, I, M>, isRunning = false): void {
    if (!this.isEnabled) return;
    this.delete(id);
    // the JSON size stands for the memory it holds (strings dominate; objects cost a constant more)
    const bytes = JSON.stringify([value.response, value.inputItems, value.conversation]).length;
    this.#entries.set(id, { value, bytes, isRunning });
    this.#bytes += bytes;
    this.#evict();
  }

  has(id: string): boolean {
    return this.#entries.has(id);
  }

  delete(id: string): boolean {
    const e = this.#entries.get(id);
    if (!e) return false;
    this.#entries.delete(id);
    this.#bytes -= e.bytes;
    return true;
  }

  #evict(): void {
    for (const [id, e] of this.#entries) {
      if (this.#bytes <= this.maxBytes) return;
      if (!e.isRunning) this.delete(id);
    }
  }
}
