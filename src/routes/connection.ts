// What happens on a connection outside any route: how long a request may take to arrive, the
// errors Node's HTTP parser raises before Fastify sees a request (answered in our error shape),
// and a refused body that is drained, within a bound, so the client reads the refusal.
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

import type { FastifyInstance } from 'fastify';

import type { ClientLimits } from '../config.js';
import { WeftError } from '../errors.js';
import { errorBody } from './error-body.js';

// Fastify's requestTimeout is Node's: a request must arrive whole (headers and body) within it, or
// the connection is answered 408 and closed. Fastify sets it to 0 (no limit), which lets a client
// that stalls or trickles its body, or sends a chunked body that never ends, hold its connection
// and buffered body forever. headersTimeout also covers a connection that never sends a byte.
// Node checks the deadlines every connectionsCheckingInterval (30 s by default), so a connection
// outlived its deadline by up to that long. The check runs every fiftieth of the shorter timeout
// (5–100 ms; it walks the connections being received, a cheap loop in C++), and Node is given each
// deadline two intervals early: one for the check's period, one for the time that answering a burst
// of expired connections takes (hundreds of 408s in one check). The 408 then goes out one to two
// intervals before the timeout: 100–200 ms before it from 5 s up, 2–4% of it below.
export function checkIntervalMs(limits: Pick<ClientLimits, 'headersTimeoutMs' | 'bodyTimeoutMs'>): number {
  const shortest = limits.bodyTimeoutMs > 0 ? Math.min(limits.headersTimeoutMs, limits.bodyTimeoutMs) : limits.headersTimeoutMs;
  return Math.min(100, Math.max(5, Math.floor(shortest / 50)));
}

// How much earlier than configured Node is told to expire a request.
export const earlyByMs = (limits: Pick<ClientLimits, 'headersTimeoutMs' | 'bodyTimeoutMs'>) => 2 * checkIntervalMs(limits);

export function connectionOptions(limits: Pick<ClientLimits, 'headersTimeoutMs' | 'bodyTimeoutMs'>) {
  const early = (ms: number) => (ms > 0 ? Math.max(1, ms - earlyByMs(limits)) : 0); // 0: no limit
  return {
    requestTimeout: early(limits.bodyTimeoutMs),
    http: { headersTimeout: early(limits.headersTimeoutMs), connectionsCheckingInterval: checkIntervalMs(limits) },
  };
}

// Node's parser errors and timeouts → the status and code they mean (isInRequest: its headers arrived).
function clientErrorOf(err: NodeJS.ErrnoException, isInRequest: boolean, limits: ClientLimits): WeftError {
  switch (err.code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new WeftError(
        'WEFT_ERR_HTTP_REQUEST_TIMEOUT',
        isInRequest
          ? `the request body did not arrive within ${limits.bodyTimeoutMs} ms (--body-timeout-ms)`
          : `no complete request headers within ${limits.headersTimeoutMs} ms (--headers-timeout-ms)`,
      );
    case 'HPE_HEADER_OVERFLOW':
      return new WeftError('WEFT_ERR_HTTP_HEADERS_TOO_LARGE', 'the request headers are too large');
    default:
      // llhttp's reason: a bad request line or header, Content-Length with Transfer-Encoding, a duplicate Content-Length, …
      return new WeftError('WEFT_ERR_HTTP_BAD_REQUEST', `malformed HTTP request: ${(err.message ?? '').replace(/^Parse Error: /, '') || err.code}`);
  }
}

// Fastify's clientErrorHandler (called with the instance as `this`): errors on a connection before,
// or instead of, a request, answered in the { error: { message, type, code } } shape and counted;
// then the connection is closed.
export function onClientError(this: FastifyInstance, err: NodeJS.ErrnoException, socket: Socket): void {
  // a reset connection has nobody left to answer
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  // the response Node made for a request whose headers arrived (Node's own field, and its own rule
  // below: never write over a response already under way)
  const pending = (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage;
  const e = clientErrorOf(err, !!pending, this.weft.limits);
  this.weft.metrics.countError(e.code);
  // one line per connection answered so (a flood of them is worth seeing at the default level)
  this.log.info({ code: e.code, cause: err.code, remote: socket.remoteAddress }, e.message);
  if (pending) this.weft.cutOff.add(pending); // this line is its request's: no second one when its response closes
  // a request that had begun leaves its buffered body as garbage; a connection that never sent its
  // headers, only a socket
  if (e.code === 'WEFT_ERR_HTTP_REQUEST_TIMEOUT' && pending) this.weft.relief.shed();
  if (socket.writable && !pending?.headersSent) {
    const body = JSON.stringify(errorBody(e));
    socket.write(
      `HTTP/1.1 ${e.status} ${STATUS_CODES[e.status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

// An error answered before the request's body was read (over the size limit, a bad key): up to
// maxBytes of the rest are read and discarded before the answer goes out. Answering at once and
// closing, as Fastify does for a body error, resets a connection the client is still writing to,
// and most clients then report the reset (EPIPE), never the 413. Past maxBytes the answer goes out
// and the connection closes. The body timeout bounds the time this takes (408 past it).
export async function drainUnreadBody(raw: IncomingMessage, maxBytes: number): Promise<boolean> {
  if (raw.complete || raw.readableEnded || raw.destroyed) return true; // (inject()'s requests never set complete)
  return new Promise<boolean>((resolve) => {
    let numBytes = 0;
    const done = (isWhole: boolean) => {
      raw.off('data', onData);
      raw.off('end', onEnd);
      raw.off('close', onEnd);
      raw.off('error', onEnd);
      resolve(isWhole);
    };
    const onData = (chunk: Buffer) => {
      numBytes += chunk.length;
      if (numBytes > maxBytes) done(false);
    };
    const onEnd = () => done(raw.complete || raw.readableEnded);
    raw.on('data', onData);
    raw.once('end', onEnd);
    raw.once('close', onEnd);
    raw.once('error', onEnd);
    raw.unpipe(); // a paced body's Transform (upload-pacing.ts) would hold the stream paused
    raw.resume(); // flowing: what no listener takes is dropped
  });
}
