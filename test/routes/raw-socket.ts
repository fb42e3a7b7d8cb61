// Raw TCP clients for what HTTP clients hide: the bytes a server writes, and whether and when it
// closes the connection (a stalled body, a client that never reads, a reset mid-upload).
import { connect, type Socket } from 'node:net';

export interface RawConnection {
  socket: Socket;
  connectedAt: number;                 // performance.now() when the connection was made
  received(): string;                  // what the server sent so far
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
    socket.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message; });
    socket.once('connect', () => resolve({
      socket, connectedAt: performance.now(), closed, received: () => text,
      waitFor: (re) => (re.test(text) ? Promise.resolve(text) : new Promise((res, rej) => waiters.push({ re, resolve: res, reject: rej }))),
    }));
    socket.once('error', reject);
  });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

// The first response in `text` (its body up to the end of the text; chunked bodies are de-chunked).
export function parseResponse(text: string): RawResponse {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete response head in ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  let body = text.slice(end + 4);
  if (headers['transfer-encoding'] === 'chunked') {
    let out = '';
    for (let at = 0; at < body.length;) {
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
