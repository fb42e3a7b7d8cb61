// Large request bodies are read at a bounded number of bytes per event-loop turn, all requests
// together, so that many of them arriving at once cannot hold the event loop. libuv reads every
// ready socket up to 2 MiB in one poll phase, so 300 clients uploading 1 MB bodies together made
// single turns of 100–270 ms (the socket reads and copies alone), and every other request waited
// behind them (bench:hostile's "slow" scenario). A paced body passes through a Transform that,
// over the turn's budget, holds its chunk until the next turn: the held write backpressures the
// request, Node stops reading its socket, and the next turn reads the other sockets first.
// Small bodies (most requests) are not paced and pay nothing.
import type { IncomingMessage } from 'node:http';
import { Transform, type Readable } from 'node:stream';

export const PACED_FROM_BYTES = 64 * 1024; // bodies declared at least this long, and chunked ones
export const TURN_BUDGET_BYTES = 1024 * 1024;

interface Held {
  bytes: number;
  release: () => void;
}

// Bytes handed on per event-loop turn. One per process: the event loop is shared by every server in it.
export class TurnBudget {
  private used = 0;
  private isScheduled = false;
  private readonly held: Held[] = [];

  constructor(private readonly budgetBytes = TURN_BUDGET_BYTES) {}

  get numHeld(): number {
    return this.held.length;
  }

  take(bytes: number, release: () => void): void {
    if (this.held.length === 0 && this.used + bytes <= this.budgetBytes) {
      this.used += bytes;
      this.schedule();
      return release();
    }
    this.held.push({ bytes, release });
    this.schedule();
  }

  private schedule(): void {
    if (this.isScheduled) return;
    this.isScheduled = true;
    setImmediate(() => this.nextTurn()); // the check phase: after this turn's poll, before the next
  }

  private nextTurn(): void {
    this.isScheduled = false;
    this.used = 0;
    // at least one chunk per turn, so one larger than the budget still passes
    while (this.held.length > 0 && (this.used === 0 || this.used + this.held[0].bytes <= this.budgetBytes)) {
      const h = this.held.shift()!;
      this.used += h.bytes;
      h.release();
    }
    if (this.held.length > 0 || this.used > 0) this.schedule();
  }
}

const budget = new TurnBudget();

function isLarge(raw: IncomingMessage): boolean {
  const declared = Number(raw.headers['content-length']);
  return raw.headers['transfer-encoding'] !== undefined || declared >= PACED_FROM_BYTES;
}

// Fastify's preParsing hook: the stream the body parser reads instead of the request.
export function pacedBody(raw: IncomingMessage, payload: Readable): Readable {
  if (!isLarge(raw) || raw.complete) return payload;
  // receivedEncodedLength: the bytes taken from the request, which Fastify checks against its limits
  const paced: Transform & { receivedEncodedLength: number } = Object.assign(
    new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        paced.receivedEncodedLength += chunk.length;
        budget.take(chunk.length, () => callback(null, chunk));
      },
    }),
    { receivedEncodedLength: 0 },
  );
  payload.on('error', (err) => paced.destroy(err));
  payload.on('aborted', () => paced.destroy(Object.assign(new Error('request aborted'), { code: 'ECONNRESET' })));
  payload.pipe(paced);
  return paced;
}
