// The only Server-Sent Events writer. It takes the response over from Fastify (hijack), writes
// `data: …\n\n` frames, ends with `data: [DONE]` where the protocol wants it, and turns a client
// that goes away into an AbortSignal for the generation.
//
// Backpressure: frames go out as they come while the client has at most maxStreamLagBytes unread;
// past that the stream waits for the client (the generation's tokens queue behind it), and a
// client that has not caught up after writeTimeoutMs is cut off: its socket is closed, the
// generation aborted, its sequences freed, and a log line says so.
import type { FastifyReply, FastifyRequest } from 'fastify';

export class SseStream {
  readonly #request: FastifyRequest;
  readonly #reply: FastifyReply;
  readonly #abort = new AbortController();
  #ended = false;
  #waiting: Promise<void> | null = null;

  private constructor(request: FastifyRequest, reply: FastifyReply) {
    this.#request = request;
    this.#reply = reply;
    // request.raw 'close' fires once the body is read; the response's 'close' before its
    // end means the client left (or was cut off).
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) this.#abort.abort();
    });
  }

  // Sends the status line and headers (CORS headers Fastify already set are kept). No Connection
  // header: Node answers the client's own (close, or keep-alive).
  static open(request: FastifyRequest, reply: FastifyReply): SseStream {
    reply.hijack();
    const headers: Record<string, string> = {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      'x-accel-buffering': 'no',
    };
    for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) headers[k] = String(v);
    headers['x-request-id'] = String(request.id);
    reply.raw.writeHead(200, headers);
    reply.raw.flushHeaders?.();
    return new SseStream(request, reply);
  }

  // Aborted when the client disconnects before the stream ends.
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  get isClosed(): boolean {
    return this.#ended || this.#abort.signal.aborted || this.#reply.raw.destroyed;
  }

  // One `data:` frame (an object is JSON-encoded; a string is sent as is). Waits while the client
  // lags by more than maxStreamLagBytes; resolves without writing once the client is gone.
  async send(data: unknown, event?: string): Promise<void> {
    if (this.isClosed) return;
    const payload = typeof data === 'string' ? data : JSON.stringify(data);
    const raw = this.#reply.raw;
    raw.write((event ? `event: ${event}\n` : '') + `data: ${payload}\n\n`);
    if (raw.writableLength > this.#request.server.weft.limits.maxStreamLagBytes) await this.#waitForClient();
  }

  // Until the client has taken everything written, or is cut off for lagging too long. The socket's
  // 'drain' is heard as well as the response's: Node's response passes it on only when it recorded
  // a refused write of its own, and it does not always (seen with chunked writes under inject()).
  #waitForClient(): Promise<void> {
    this.#waiting ??= new Promise((resolve) => {
      const raw = this.#reply.raw;
      const socket = raw.socket;
      const { limits, inFlight } = this.#request.server.weft;
      const why = `the client left more than ${limits.maxStreamLagBytes} bytes of the stream unread for ${limits.writeTimeoutMs} ms`;
      const timer = limits.writeTimeoutMs > 0 ? setTimeout(() => inFlight.cutOff(raw, this.#request.log, why), limits.writeTimeoutMs) : undefined;
      const done = () => {
        clearTimeout(timer);
        raw.off('drain', done);
        raw.off('close', done);
        socket?.off('drain', done);
        this.#waiting = null;
        resolve();
      };
      raw.on('drain', done);
      raw.on('close', done);
      socket?.on('drain', done);
    });
    return this.#waiting;
  }

  async done(): Promise<void> {
    await this.send('[DONE]');
    this.end();
  }

  // What the client has not taken yet is bounded by the write timeout (InFlight).
  end(): void {
    if (this.#ended) return;
    this.#ended = true;
    if (!this.#reply.raw.destroyed) this.#reply.raw.end();
  }
}

// For non-streamed responses: calls fn when the client leaves before the reply is written.
export function onClientGone(reply: FastifyReply, fn: () => void): void {
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) fn();
  });
}
