// Raw TCP clients for what HTTP clients hide (the hostile-client benchmark and the connection tests):
// the bytes a server writes, and whether and when it closes the connection (a stalled body, a client
// that never reads, a reset mid-upload).
import { connect, type Socket } from 'node:net';

export interface RawConnection {
  socket: Socket;
  connectedAt: number; // performance.now() when the connection was made
  received(): string; // what the server sent so far
  // Resolves when the server closes (or resets) the connection, with everything it sent.
  closed: Promise<{ text: string; error?: string; at: number }>;
  // Resolves when what the server sent matches `re` (rejects if it closes first).
  waitFor(re: RegExp): Promise<string>;
}

export function rawConnect(port: number): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    let error: string | undefined;
    const waiters: { re: RegExp; resolve: (s: string) => void; reject: (e: Error) => void }[] = [];
    const closed = new Promise<{ text: string; error?: string; at: number }>((res) => {
      socket.on('close', () => {
        for (const w of waiters.splice(0)) w.reject(new Error(`closed before ${w.re}: ${JSON.stringify(text.slice(0, 300))}`));
        res({ text, error, at: performance.now() });
      });
    });
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      for (const w of [...waiters]) {
        if (w.re.test(text)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(text);
        }
      }
    });
    socket.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
    });
    socket.once('connect', () =>
      resolve({
        socket,
        connectedAt: performance.now(),
        closed,
        received: () => text,
        waitFor: (re) => (re.test(text) ? Promise.resolve(text) : new Promise((res, rej) => waiters.push({ re, resolve: res, reject: rej }))),
      }),
    );
    socket.once('error', reject);
  });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

// The first final response in `text` (a 100 Continue before it skipped; its body up to the end of
// the text; chunked bodies are de-chunked).
export function parseResponse(text: string): RawResponse {
  while (text.startsWith('HTTP/1.1 100 ')) text = text.slice(text.indexOf('\r\n\r\n') + 4);
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete response head in ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  let body = text.slice(end + 4);
  if (headers['transfer-encoding'] === 'chunked') {
    let out = '';
    for (let at = 0; at < body.length; ) {
      const eol = body.indexOf('\r\n', at);
      const size = parseInt(body.slice(at, eol), 16);
      if (!(size > 0)) break;
      out += body.slice(eol + 2, eol + 2 + size);
      at = eol + 2 + size + 2;
    }
    body = out;
  }
  return { status: Number(statusLine.split(' ')[1]), headers, body };
}

// A POST head for `path` with a JSON content type and the given extra header lines.
export function postHead(path: string, ...extra: string[]): string {
  return [`POST ${path} HTTP/1.1`, 'Host: localhost', 'Content-Type: application/json', ...extra].join('\r\n') + '\r\n\r\n';
}

function drainedOrClosed(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

// A client that writes a whole body of `size` bytes (declared, or chunked) before it reads a byte of
// the answer, as many HTTP clients do: what the server answered, or how the connection failed.
export async function writeThenRead(port: number, path: string, size: number, isChunked: boolean): Promise<{ text: string; error?: string }> {
  const c = await rawConnect(port);
  c.socket.pause();
  c.socket.write(postHead(path, isChunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${size}`));
  const piece = new Uint8Array(256 * 1024).fill(0x20);
  for (let sent = 0; sent < size && c.socket.writable; sent += piece.length) {
    const part = piece.subarray(0, Math.min(piece.length, size - sent));
    if (isChunked) c.socket.write(`${part.length.toString(16)}\r\n`);
    const ok = c.socket.write(part);
    if (isChunked) c.socket.write('\r\n');
    if (!ok) await drainedOrClosed(c.socket);
  }
  if (isChunked && c.socket.writable) c.socket.write('0\r\n\r\n');
  c.socket.resume();
  return c.closed;
}
