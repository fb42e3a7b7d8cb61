// The only Server-Sent Events writer. It takes the response over from Fastify (hijack), writes
// `data: …\n\n` frames with backpressure, ends with `data: [DONE]` where the protocol wants
// it, and turns a client that goes away into an AbortSignal for the generation.
import type { FastifyReply, FastifyRequest } from 'fastify';

export class SseStream {
  readonly #reply: FastifyReply;
  readonly #abort = new AbortController();
  #ended = false;

  private constructor(reply: FastifyReply) {
    this.#reply = reply;
    // request.raw 'close' fires once the body is read; the response's 'close' before its
    // end means the client left.
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) this.#abort.abort();
    });
  }

  // Sends the status line and headers (CORS headers Fastify already set are kept).
  static open(request: FastifyRequest, reply: FastifyReply): SseStream {
    reply.hijack();
    const headers: Record<string, string> = {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    };
    for (const [k, v] of Object.entries(reply.getHeaders())) if (v !== undefined) headers[k] = String(v);
    headers['x-request-id'] = String(request.id);
    reply.raw.writeHead(200, headers);
    reply.raw.flushHeaders?.();
    return new SseStream(reply);
  }

  // Aborted when the client disconnects before the stream ends.
  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  get isClosed(): boolean {
    return this.#ended || this.#abort.signal.aborted;
  }

  // One `data:` frame (an object is JSON-encoded; a string is sent as is). Waits for
  // 'drain' when the socket's buffer is full; resolves without writing once the client is gone.
  async send(data: unknown, event?: string): Promise<void> {
    if (this.isClosed) return;
    const payload = typeof data === 'string' ? data : JSON.stringify(data);
    const frame = (event ? `event: ${event}\n` : '') + `data: ${payload}\n\n`;
    if (!this.#reply.raw.write(frame)) await this.#drain();
  }

  #drain(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => { this.#reply.raw.off('drain', done); this.#reply.raw.off('close', done); resolve(); };
      this.#reply.raw.on('drain', done);
      this.#reply.raw.on('close', done);
    });
  }

  async done(): Promise<void> {
    await this.send('[DONE]');
    this.end();
  }

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
