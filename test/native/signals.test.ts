// Signals reach the server through `npm start` (its script execs node, so npm's SIGTERM is the
// server's), and a second Ctrl-C exits at once instead of waiting for the drain.
import { spawn, type ChildProcess } from 'node:child_process';
import { connect } from 'node:net';
import t from 'tap';

import { MODEL_DIR, REPO_ROOT } from '../fixtures/paths.js';

// Starts the server, resolving with its port once it logs that it listens (and, with waitReady, has its model).
function start(cmd: string, args: string[], waitReady = false): Promise<{ child: ChildProcess; port: number; lines: string[] }> {
  const child = spawn(cmd, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, WEFT_LOG_FORMAT: 'json' } });
  const lines: string[] = [];
  return new Promise((resolve, reject) => {
    let port = 0,
      buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        lines.push(line);
        const m = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(line);
        if (m) port = Number(m[1]);
        if (port && (!waitReady || /model .* ready/.test(line))) resolve({ child, port, lines });
      }
    });
    child.once('exit', (code) => reject(new Error(`exited ${code} before listening: ${lines.join('\n')}`)));
  });
}
const exited = (c: ChildProcess) => new Promise<number | null>((r) => (c.exitCode !== null ? r(c.exitCode) : c.once('exit', (code) => r(code))));
const refused = (port: number) =>
  new Promise<boolean>((r) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      r(false);
    });
    s.once('error', () => r(true));
  });

t.test('SIGTERM to npm start stops the server itself', async (t) => {
  const { child, port, lines } = await start('npm', ['start', '--silent', '--', '--model', MODEL_DIR, '--port', '0', '--host', '127.0.0.1'], true);
  // bin/threadpool.cjs: one libuv thread (the tokenizer's), unless the environment says otherwise
  const expected = process.env.UV_THREADPOOL_SIZE ?? '1';
  t.ok(
    lines.some((l) => l.includes(`tokenizer threads: ${expected} `)),
    `npm start runs with a libuv pool of ${expected}`,
  );
  child.kill('SIGTERM');
  t.equal(await exited(child), 0, 'npm exits cleanly');
  t.ok(await refused(port), 'and nothing listens on the port any more');
});

t.test('a second SIGINT exits at once, while the first drains a request still arriving', async (t) => {
  const args = [
    'dist/src/server.js',
    '--model',
    MODEL_DIR,
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--shutdown-timeout-ms',
    '600000',
    '--body-timeout-ms',
    '600000',
  ];
  const { child, port, lines } = await start(process.execPath, args, true);
  // a request whose body is half sent: the drain waits for it (up to the 10-minute shutdown timeout)
  const sock = connect(port, '127.0.0.1');
  t.teardown(() => sock.destroy());
  await new Promise<void>((r) => sock.once('connect', () => r()));
  sock.on('error', () => {});
  sock.write('POST /generate HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"prompt":');
  child.kill('SIGINT');
  await new Promise<void>((r) => {
    // wait for the drain to have begun
    const check = () => (lines.some((l) => /SIGINT: draining/.test(l)) ? r() : child.stdout!.once('data', check));
    check();
  });
  child.kill('SIGINT');
  t.equal(await exited(child), 130, `the second SIGINT exits with 130 without waiting: ${lines.slice(-3).join(' / ')}`);
});
