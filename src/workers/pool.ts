// Engine instances as worker threads: one single-thread Piscina pool per instance, so an
// instance (its KV cache, its sequences) always lives in the same thread and placement is
// explicit. A worker that dies or whose step throws fails that step with a typed error; the
// caller finishes the affected sequences and calls restart().
//
// Piscina starts, initializes and replaces the thread and runs its occasional tasks (prepare);
// the steps, one every few milliseconds on the critical path of every token, go on a
// MessageChannel of their own. Measured at batch 1 (bench:engine --mode loop), a step as a Piscina
// task spent ~365 us in the two hand-offs (its task bookkeeping, async resources and the
// Atomics wake on both sides) where a bare message round trip takes ~90 us.
import { MessageChannel, type MessagePort } from 'node:worker_threads';

import { Piscina } from 'piscina';

import { fromErrorData, WeftError } from '../errors.js';
import type { ConstraintSpec } from '../structured/types.js';
import type { EngineInitOptions, InitReply, StepEnvelope, StepMessage, StepReply, StepReplyEnvelope, WorkerReply } from '../scheduler/protocol.js';

const WORKER_FILE = new URL(`./step-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

export class EngineWorker {
  readonly index: number;
  readonly options: EngineInitOptions;
  info: InitReply;
  #pool: Piscina;
  #steps!: MessagePort;
  #stepsClosed = false;
  #nextStepId = 0;
  #pending = new Map<number, { resolve: (r: WorkerReply) => void; reject: (e: Error) => void }>();

  private constructor(index: number, options: EngineInitOptions, pool: Piscina, info: InitReply, steps: MessagePort) {
    this.index = index;
    this.options = options;
    this.#pool = pool;
    this.info = info;
    this.#listen(steps);
  }

  static async start(index: number, options: EngineInitOptions): Promise<EngineWorker> {
    const pool = EngineWorker.#newPool();
    const { info, steps } = await EngineWorker.#init(pool, options);
    return new EngineWorker(index, options, pool, info, steps);
  }

  // The step channel's main-thread end. It closes when the worker thread ends (a crash, a
  // terminate, destroy): the steps it had not answered fail as a dead worker's.
  #listen(steps: MessagePort): void {
    this.#steps = steps;
    this.#stepsClosed = false;
    steps.on('message', ({ id, reply }: StepReplyEnvelope) => {
      const p = this.#pending.get(id);
      this.#pending.delete(id);
      p?.resolve(reply);
    });
    steps.once('close', () => {
      if (this.#steps !== steps) return;
      this.#stepsClosed = true;
      for (const p of this.#pending.values()) p.reject(this.#died());
      this.#pending.clear();
    });
    // Idle between requests, the channel must not keep the process alive by itself.
    steps.unref();
  }

  #died(): WeftError {
    return new WeftError('WEFT_ERR_ENGINE_WORKER_DIED', `engine worker ${this.index} died: its thread ended`);
  }

  // Several tasks at once: a prepare (a constraint compiling on a grammar host) waits beside the
  // steps, which the engine loop still sends one at a time.
  static #newPool(): Piscina {
    return new Piscina({
      filename: WORKER_FILE.href,
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: Number.POSITIVE_INFINITY,
      concurrentTasksPerWorker: 64,
      // The worker's event loop must stay free to receive steps: with Atomics, an idle Piscina
      // worker blocks in Atomics.wait until its next task.
      atomics: 'disabled',
    });
  }

  static async #init(pool: Piscina, options: EngineInitOptions): Promise<{ info: InitReply; steps: MessagePort }> {
    const { port1, port2 } = new MessageChannel();
    const reply = (await pool.run({ kind: 'init', options, steps: port2 }, { transferList: [port2] })) as WorkerReply;
    if ('ok' in reply && reply.ok === false) {
      port1.close();
      await pool.destroy();
      throw fromErrorData(reply.error);
    }
    return { info: reply as InitReply, steps: port1 };
  }

  async step(msg: StepMessage): Promise<StepReply> {
    const transferList = [
      msg.seqIds,
      msg.startPos,
      msg.numNewTokens,
      msg.doSample,
      msg.tokenIds,
      msg.blockUpdates,
      msg.blockCopies,
      msg.forks,
      msg.release,
      ...(msg.scoreTargets ? [msg.scoreTargets] : []),
      ...(msg.hiddenRows ? [msg.hiddenRows] : []),
    ].map((a) => a.buffer as ArrayBuffer);
    // A message on a closed port is dropped without a word: a thread that ended while idle must
    // fail the next step, not leave it waiting.
    if (this.#stepsClosed) throw this.#died();
    const id = this.#nextStepId++;
    const reply = await new Promise<WorkerReply>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#steps.ref(); // a step in flight keeps the process alive until it is answered
      this.#steps.postMessage({ id, msg } satisfies StepEnvelope, transferList);
    }).finally(() => {
      if (this.#pending.size === 0) this.#steps.unref();
    });
    if ('ok' in reply && reply.ok === false) throw fromErrorData(reply.error);
    return reply as StepReply;
  }

  // Resolves when the constraint is compiled on the worker's grammar hosts (a sequence under it
  // is scheduled only then); rejects with the typed error when it cannot be.
  async prepare(constraint: ConstraintSpec): Promise<void> {
    let reply: WorkerReply;
    try {
      reply = (await this.#pool.run({ kind: 'prepare', constraint })) as WorkerReply;
    } catch (e) {
      throw new WeftError('WEFT_ERR_ENGINE_WORKER_DIED', `engine worker ${this.index} died: ${(e as Error).message}`);
    }
    if ('ok' in reply && reply.ok === false) throw fromErrorData(reply.error);
  }

  // A fresh thread and engine (empty KV cache, no sequences).
  async restart(): Promise<void> {
    this.#steps.close();
    await this.#pool.destroy().catch(() => undefined);
    this.#pool = EngineWorker.#newPool();
    const { info, steps } = await EngineWorker.#init(this.#pool, this.options);
    this.info = info;
    this.#listen(steps);
  }

  // For tests: kill the worker thread as if it crashed.
  async killForTest(): Promise<void> {
    await Promise.all(this.#pool.threads.map((t) => t.terminate()));
  }

  async close(): Promise<void> {
    this.#steps.close();
    await this.#pool.destroy();
  }
}
