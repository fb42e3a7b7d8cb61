// The step worker's grammar hosts (grammar-host.ts): threads that compile constraints and hold the
// matchers of its constrained sequences. A constraint is compiled before its sequence is
// scheduled (prepare), on a host that serves no sequence, spawning one when none is free (up to
// MAX_GRAMMAR_HOSTS): a compile never runs on a thread whose matchers a step waits for, so running
// sequences, constrained or not, keep stepping. Only with every host serving sequences does a
// compile go to the least busy one, whose sequences then wait for it.
//
// Each step, the worker records its matcher work here (forks, releases, new matchers, accepted
// tokens, masks wanted) and flush() sends it to the hosts concerned in one message each, in
// parallel, and returns the masks.
import { Worker } from 'node:worker_threads';

import { fromErrorData, WeftError } from '../errors.js';
import type { CompileRequest, HostInit, HostReply, StepRequest } from './host-protocol.js';
import { specKey } from './spec-grammar.js';
import type { ConstraintSpec } from './types.js';

// Each host holds an xgrammar instance and the model's vocabulary in its WASM memory (tens of MB
// with a 150k-token vocabulary), so their number is bounded.
export const MAX_GRAMMAR_HOSTS = 4;
// Constraints remembered with their host; older ones are forgotten (a host keeps its own LRU
// cache of compiled grammars, and one asked again for a grammar it evicted compiles it again).
const MAX_REMEMBERED = 256;

const HOST_FILE = new URL(`./grammar-host${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

type StepOps = Omit<StepRequest, 'kind' | 'id' | 'maskWords'>;
const emptyOps = (): StepOps => ({ forks: [], release: [], creates: [], accepts: [], maskSeqIds: [] });

class Host {
  numMatchers = 0;
  numCompiling = 0;
  ops = emptyOps();
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (m: Uint32Array | null) => void; reject: (e: WeftError) => void }>();
  #nextId = 0;
  #failure: WeftError | null = null;

  constructor(init: HostInit) {
    this.#worker = new Worker(HOST_FILE, { workerData: init });
    this.#worker.on('message', (r: HostReply) => {
      const p = this.#pending.get(r.id);
      this.#pending.delete(r.id);
      if (r.ok) p?.resolve(r.masks);
      else p?.reject(fromErrorData(r.error));
    });
    const fail = (why: string) => {
      this.#failure = new WeftError('WEFT_ERR_ENGINE_WORKER_DIED', `grammar host: ${why}`);
      for (const p of this.#pending.values()) p.reject(this.#failure);
      this.#pending.clear();
    };
    this.#worker.on('error', (e) => fail(e.message));
    this.#worker.on('exit', (code) => fail(`exited with code ${code}`));
  }

  request(r: Omit<CompileRequest, 'id'> | Omit<StepRequest, 'id'>): Promise<Uint32Array | null> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#worker.postMessage({ ...r, id });
    });
  }

  close(): Promise<number> {
    return this.#worker.terminate();
  }
}

export class GrammarHosts {
  readonly #hosts: Host[] = [];
  readonly #compiled = new Map<string, { host: Host; done: Promise<unknown> }>(); // by specKey
  readonly #bySeq = new Map<number, Host>();

  constructor(
    private readonly init: HostInit,
    private readonly maxHosts = MAX_GRAMMAR_HOSTS,
  ) {}

  get numHosts(): number {
    return this.#hosts.length;
  }

  // Compiles the constraint, unless it is compiled (or compiling) already; resolves when it is.
  prepare(spec: ConstraintSpec): Promise<void> {
    const key = specKey(spec);
    let entry = this.#compiled.get(key);
    if (!entry) {
      const host = this.#hostForCompile();
      host.numCompiling++;
      const done = host.request({ kind: 'compile', spec }).finally(() => {
        host.numCompiling--;
      });
      entry = { host, done };
      this.#remember(key, entry);
      done.catch(() => {
        if (this.#compiled.get(key)?.done === done) this.#compiled.delete(key);
      });
    }
    return entry.done.then(() => undefined);
  }

  #remember(key: string, entry: { host: Host; done: Promise<unknown> }): void {
    this.#compiled.set(key, entry);
    if (this.#compiled.size > MAX_REMEMBERED) this.#compiled.delete(this.#compiled.keys().next().value as string);
  }

  #hostForCompile(): Host {
    const free = this.#hosts.filter((h) => h.numMatchers === 0);
    const idle = free.find((h) => h.numCompiling === 0);
    if (idle) return idle;
    if (this.#hosts.length < this.maxHosts) {
      const h = new Host(this.init);
      this.#hosts.push(h);
      return h;
    }
    const pool = free.length > 0 ? free : this.#hosts;
    return pool.reduce((a, b) => (b.numMatchers + b.numCompiling < a.numMatchers + a.numCompiling ? b : a));
  }

  has(seqId: number): boolean {
    return this.#bySeq.has(seqId);
  }

  // A matcher for a sequence, on the host that compiled its constraint (one not prepared, e.g.
  // evicted from the host's cache, compiles there in this step), replaying its output tokens.
  create(seqId: number, spec: ConstraintSpec, tokens: number[]): void {
    this.release(seqId);
    const host = this.#compiled.get(specKey(spec))?.host ?? this.#hostForCompile();
    if (!this.#compiled.has(specKey(spec))) this.#remember(specKey(spec), { host, done: Promise.resolve() });
    host.numMatchers++;
    host.ops.creates.push({ seqId, spec, tokens });
    this.#bySeq.set(seqId, host);
  }

  fork(parent: number, child: number): void {
    const host = this.#bySeq.get(parent);
    if (!host) return;
    host.numMatchers++; // child ids are new: the host applies forks before releases
    host.ops.forks.push(parent, child);
    this.#bySeq.set(child, host);
  }

  release(seqId: number): void {
    const host = this.#bySeq.get(seqId);
    if (!host) return;
    host.numMatchers--;
    host.ops.release.push(seqId);
    this.#bySeq.delete(seqId);
  }

  accept(seqId: number, tokens: number[]): void {
    if (tokens.length > 0) this.#bySeq.get(seqId)!.ops.accepts.push({ seqId, tokens });
  }

  wantMask(seqId: number): void {
    this.#bySeq.get(seqId)!.ops.maskSeqIds.push(seqId);
  }

  // Sends the step's matcher work; the masks asked for, by sequence.
  async flush(maskWords: number): Promise<Map<number, Uint32Array>> {
    const work = this.#hosts.map((h) => {
      const ops = h.ops;
      h.ops = emptyOps();
      const isEmpty = ops.forks.length + ops.release.length + ops.creates.length + ops.accepts.length + ops.maskSeqIds.length === 0;
      return isEmpty ? null : h.request({ kind: 'step', ...ops, maskWords }).then((m) => ({ ids: ops.maskSeqIds, m }));
    });
    const masks = new Map<number, Uint32Array>();
    for (const r of await Promise.all(work)) {
      if (!r?.m) continue;
      r.ids.forEach((id, i) => masks.set(id, r.m!.subarray(i * maskWords, (i + 1) * maskWords)));
    }
    return masks;
  }

  async close(): Promise<void> {
    await Promise.all(this.#hosts.map((h) => h.close()));
  }
}
