// Engine instances as worker threads: one single-thread Piscina pool per instance, so an
// instance (its KV cache, its sequences) always lives in the same thread and placement is
// explicit. A worker that dies or whose step throws fails that step with a typed error; the
// caller finishes the affected sequences and calls restart().
import { Piscina } from 'piscina';

import { fromErrorData, WeftError } from '../errors.js';
import type { ConstraintSpec } from '../structured/types.js';
import type { EngineInitOptions, InitReply, StepMessage, StepReply, WorkerReply } from '../scheduler/protocol.js';

const WORKER_FILE = new URL(`./step-worker${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

export class EngineWorker {
  readonly index: number;
  readonly options: EngineInitOptions;
  info: InitReply;
  #pool: Piscina;

  private constructor(index: number, options: EngineInitOptions, pool: Piscina, info: InitReply) {
    this.index = index;
    this.options = options;
    this.#pool = pool;
    this.info = info;
  }

  static async start(index: number, options: EngineInitOptions): Promise<EngineWorker> {
    const pool = EngineWorker.#newPool();
    const info = await EngineWorker.#init(pool, options);
    return new EngineWorker(index, options, pool, info);
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
    });
  }

  static async #init(pool: Piscina, options: EngineInitOptions): Promise<InitReply> {
    const reply = (await pool.run({ kind: 'init', options })) as WorkerReply;
    if ('ok' in reply && reply.ok === false) {
      await pool.destroy();
      throw fromErrorData(reply.error);
    }
    return reply as InitReply;
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
    ].map((a) => a.buffer as ArrayBuffer);
    let reply: WorkerReply;
    try {
      reply = (await this.#pool.run(msg, { transferList })) as WorkerReply;
    } catch (e) {
      throw new WeftError('WEFT_ERR_ENGINE_WORKER_DIED', `engine worker ${this.index} died: ${(e as Error).message}`);
    }
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
    await this.#pool.destroy().catch(() => undefined);
    this.#pool = EngineWorker.#newPool();
    this.info = await EngineWorker.#init(this.#pool, this.options);
  }

  // For tests: kill the worker thread as if it crashed.
  async killForTest(): Promise<void> {
    await Promise.all(this.#pool.threads.map((t) => t.terminate()));
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}
