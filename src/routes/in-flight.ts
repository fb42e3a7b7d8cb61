// Every response in flight, for two things: shutdown waits until the last one is written (each
// aborted stream's final event) before it closes connections, and a client that stops reading is
// cut off after the write timeout instead of holding its socket and buffers as long as it stays.
import type { ServerResponse } from 'node:http';

import type { FastifyBaseLogger } from 'fastify';

import { WeftError } from '../errors.js';

export class InFlight {
  readonly #open = new Set<ServerResponse>();
  readonly #onEmpty = new EventTarget();

  constructor(
    readonly writeTimeoutMs: number,
    readonly countError: (code: string) => void,
    readonly onCutOff: (res: ServerResponse) => void = () => undefined, // logged here; memory to give back (MemoryRelief)
  ) {}

  get size(): number {
    return this.#open.size;
  }

  // From the request's arrival to the response's 'close'. A response that has ended but whose
  // last bytes the client has not taken after writeTimeoutMs is cut off.
  track(res: ServerResponse, log: FastifyBaseLogger): void {
    this.#open.add(res);
    let timer: NodeJS.Timeout | undefined;
    if (this.writeTimeoutMs > 0)
      res.once('prefinish', () => {
        if (res.writableFinished) return;
        const why = `the client did not take the end of the response within ${this.writeTimeoutMs} ms`;
        timer = setTimeout(() => this.cutOff(res, log, why), this.writeTimeoutMs);
      });
    res.once('close', () => {
      clearTimeout(timer);
      this.#open.delete(res);
      if (this.#open.size === 0) this.#onEmpty.dispatchEvent(new Event('empty'));
    });
  }

  // A client too slow to read: one log line with the cause, the error counted, the socket destroyed
  // (which aborts the generation behind a stream and frees its sequences).
  cutOff(res: ServerResponse, log: FastifyBaseLogger, why: string): void {
    if (res.destroyed) return;
    const e = new WeftError('WEFT_ERR_HTTP_WRITE_TIMEOUT', `response cut off: ${why} (${res.writableLength} bytes unsent)`);
    this.countError(e.code);
    log.warn({ code: e.code, remote: res.socket?.remoteAddress, unsentBytes: res.writableLength }, e.message);
    this.onCutOff(res);
    res.destroy();
  }

  // Resolves true once no response is in flight, or false after maxMs.
  settled(maxMs: number): Promise<boolean> {
    if (this.#open.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (isEmpty: boolean) => {
        clearTimeout(timer);
        this.#onEmpty.removeEventListener('empty', onEmpty);
        resolve(isEmpty);
      };
      const onEmpty = () => done(true);
      const timer = setTimeout(() => done(this.#open.size === 0), maxMs);
      this.#onEmpty.addEventListener('empty', onEmpty);
    });
  }
}
