// Starts a server to benchmark (weft itself, or a peer such as llama.cpp's llama-server) on a
// free loopback port, waits until it answers its readiness path, samples its memory, and stops
// it. The command is data so tests can inject a fake server.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

import { RssSampler } from './rss.js';

export interface SpawnSpec {
  label: string;
  command: string;
  args: string[];
  port: number;
  readyPath: string; // 200 here = ready (weft: /ready, llama-server: /health)
  startTimeoutMs: number;
}

export interface ServerProcess {
  label: string;
  baseUrl: string;
  pid: number;
  peakRssMb(): number;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

// Splits "--a 1 --b 'x y'" as a shell would for simple quoting.
export function splitArgs(s: string | undefined): string[] {
  if (!s) return [];
  return [...s.matchAll(/"([^"]*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));
}

async function waitReady(spec: SpawnSpec, child: ChildProcess, tail: () => string): Promise<void> {
  const deadline = Date.now() + spec.startTimeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${spec.label} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${tail()}`);
    try {
      const res = await fetch(`http://127.0.0.1:${spec.port}${spec.readyPath}`, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      if (res.status === 200) return;
    } catch {
      /* not listening yet */
    }
    await sleep(200);
  }
  throw new Error(`${spec.label} was not ready after ${spec.startTimeoutMs} ms:\n${tail()}`);
}

export async function startServer(spec: SpawnSpec): Promise<ServerProcess> {
  const child = spawn(spec.command, spec.args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const keep = (b: Buffer) => {
    out = (out + b.toString()).slice(-4000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (e) => reject(new Error(`cannot start ${spec.label} (${spec.command}): ${e.message}`))),
  );
  const rss = new RssSampler(child.pid ?? -1);
  const stop = async () => {
    rss.stop();
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const killed = await Promise.race([exited(child).then(() => true), sleep(10_000, false, { ref: false })]);
    if (!killed) {
      child.kill('SIGKILL');
      await exited(child);
    }
  };
  try {
    await Promise.race([waitReady(spec, child, () => out), spawnError]);
  } catch (e) {
    await stop();
    throw e;
  }
  rss.start();
  return { label: spec.label, baseUrl: `http://127.0.0.1:${spec.port}`, pid: child.pid!, peakRssMb: () => (rss.sample(), rss.peakMb), stop };
}

// The checkout's root, found upward from this file (it runs from bench/serve or dist/bench/serve).
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6 && !existsSync(join(dir, 'package.json')); i++) dir = dirname(dir);
  return dir;
}

// weft from this checkout; quiet logs unless --server-args says otherwise (the last flag wins).
export function weftSpec(
  modelPath: string,
  port: number,
  serverArgs: string[],
  command = [process.execPath, join(repoRoot(), 'bin', 'serve.cjs')], // as `npm start` runs it
): SpawnSpec {
  return {
    label: 'weft',
    command: command[0],
    readyPath: '/ready',
    port,
    startTimeoutMs: 300_000,
    args: [...command.slice(1), '--model', modelPath, '--port', String(port), '--host', '127.0.0.1', '--log-level', 'warn', ...serverArgs],
  };
}

export interface LlamaServerOptions {
  gguf: string;
  port: number;
  ctx: number;
  peerArgs: string[];
}

// llama-server: 2 threads, 64 slots and room for each slot's longest request, unless --peer-args says otherwise.
export function llamaServerSpec(command: string[], o: LlamaServerOptions): SpawnSpec {
  const defaults: [string, string][] = [
    ['-t', '2'],
    ['-np', '64'],
    ['-c', String(o.ctx)],
  ];
  const given = new Set(o.peerArgs.filter((a) => a.startsWith('-')));
  const aliases: Record<string, string[]> = { '-t': ['--threads'], '-np': ['--parallel'], '-c': ['--ctx-size'] };
  const kept = defaults.filter(([f]) => !given.has(f) && !aliases[f].some((a) => given.has(a))).flat();
  return {
    label: 'llama-server',
    command: command[0],
    readyPath: '/health',
    port: o.port,
    startTimeoutMs: 300_000,
    args: [...command.slice(1), '-m', o.gguf, '--host', '127.0.0.1', '--port', String(o.port), ...kept, ...o.peerArgs],
  };
}

// bench/llamacpp/build-server.sh builds llama-server once and prints its path last.
export async function buildLlamaServer(script = join(repoRoot(), 'bench', 'llamacpp', 'build-server.sh')): Promise<string> {
  const child = spawn('bash', [script], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  const path = out.trim().split('\n').pop() ?? '';
  if (code !== 0 || !path) throw new Error(`${script} failed (exit ${code})`);
  return path;
}
