// main: loadConfig → buildApp → listen (so /health answers and /ready says 503 while the model
// loads) → load the model → start the engine workers → attach. SIGTERM/SIGINT: stop accepting,
// let in-flight requests finish (bounded by shutdownTimeoutMs), close the workers, exit.
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

import type { FastifyBaseLogger, FastifyInstance } from 'fastify';

import { buildApp, type LoadProgress } from './app.js';
import {
  AUTO_KV_MIN_BLOCKS,
  configUsage,
  describeConfig,
  engineSlice,
  hubEnv,
  generationSlice,
  kvFractionForInstance,
  loadConfig,
  resolveBackend,
  resolveDtype,
  resolveKvCacheBlocks,
  resolveNumThreads,
  schedulerSlice,
  type Config,
} from './config.js';
import { DEMO_MODEL_NAME, ensureDemoModel } from './demo-model.js';
import { WeftError, isWeftError } from './errors.js';
import { GenerationService } from './generation.js';
import { parseHubId, resolveHubModel } from './hub.js';
import { loadModelSpec } from './model/load.js';
import { progressBar } from './progress.js';
import { checkpointKind, type ModelSpec } from './model/types.js';
import { ModelReranker } from './rerank.js';
import { Embedder } from './embed.js';
import { availableMemoryBytes, usableCpuCount } from './system.js';
import type { Metrics } from './metrics.js';
import { EngineLoop } from './scheduler/engine.js';
import type { EngineInitOptions } from './scheduler/protocol.js';
import { TextTokenizer } from './tokenizer.js';
import { loadNative } from './workers/binding.js';
import { EngineWorker } from './workers/pool.js';

export interface Engine {
  service: GenerationService;
  reranker: ModelReranker | null; // --reranker-model
  embedder: Embedder | null; // --embedding-model
  workers: readonly EngineWorker[]; // the engine instances (a test kills one to see it restarted)
  close(): Promise<void>;
}

// --model as given: a local path, or a Hub id resolved to its files in the Hub cache (downloaded
// when missing, with a progress bar on a terminal and the bytes in /ready's progress).
async function modelSource(model: string, ggufFile: string, log?: FastifyBaseLogger, onProgress?: (p: LoadProgress) => void): Promise<string> {
  const id = parseHubId(model);
  if (!id) return model;
  log?.info(`model ${id.repo}@${id.revision}: from the Hugging Face Hub cache, downloading what is missing`);
  const bar = progressBar();
  const path = await resolveHubModel(id, {
    env: hubEnv(),
    ...(ggufFile ? { ggufFile } : {}),
    onProgress: (p) => {
      bar.update(`${p.file} (${p.fileIndex}/${p.numFiles})`, p.bytes, p.total);
      onProgress?.({ phase: 'download', file: p.file, bytes: p.bytes, total: p.total });
    },
  });
  bar.end();
  log?.info(`model ${id.repo}@${id.revision}: ${path}`);
  onProgress?.({ phase: 'load' });
  return path;
}

// --chat-template: a file holding the template, or the template itself (vLLM's convention), in
// place of the model's own.
function chatTemplateOf(config: Readonly<Config>, model: string | null): string | null {
  const t = config.chatTemplate;
  if (t === '') return model;
  if (t.includes('{%') || t.includes('{{')) return t;
  try {
    return readFileSync(t, 'utf8');
  } catch (e) {
    throw new WeftError('WEFT_ERR_CONFIG_INVALID', `--chat-template ${t}: neither a readable file nor a Jinja template (${(e as Error).message})`);
  }
}

// The KV blocks per instance (--kv-cache-blocks, auto by default; see resolveKvCacheBlocks). On
// the GPU, auto is AUTO_KV_MIN_BLOCKS: there the cache follows --gpu-memory-utilization unless
// that is 0. The weights are reckoned at their size in the files (an f32 expansion of a bf16
// checkpoint holds twice that: the half of the rest left unused covers it).
function kvCacheBlocksFor(
  e: ReturnType<typeof engineSlice>,
  spec: ModelSpec,
  dtype: ReturnType<typeof resolveDtype>,
  backend: 'cpu' | 'gpu',
  maxModelLen: number,
): { blocks: number; limitedByMemory: boolean; bytesPerToken: number } {
  const c = spec.config;
  // GPU caches hold f16 or bf16 (two bytes a value); the CPU engine says which of its types auto
  // gives these weights and what a token of that type takes (an int8 cache's scales included).
  const bytesPerToken =
    backend === 'gpu'
      ? c.numLayers * c.numKvHeads * c.headDim * 2 * 2
      : loadNative().cpuKvBytesPerToken(loadNative().cpuKvDtype(dtype, e.kvDtype), c);
  if (backend === 'gpu') return { blocks: e.kvCacheBlocks || AUTO_KV_MIN_BLOCKS, limitedByMemory: false, bytesPerToken };
  const weightBytes = Object.values(spec.tensors).reduce((n, t) => n + t.byteLength, 0);
  const r = resolveKvCacheBlocks(e.kvCacheBlocks, {
    blockSize: e.blockSize,
    maxModelLen,
    bytesPerToken,
    numInstances: e.numInstances,
    availableBytes: availableMemoryBytes(),
    weightBytes,
  });
  return { ...r, bytesPerToken };
}

// Model files → workers → engine loop → generation service, with the metrics hooks wired.
export async function startEngine(
  config: Readonly<Config>,
  metrics: Metrics,
  log?: FastifyBaseLogger,
  onProgress?: (p: LoadProgress) => void,
): Promise<Engine> {
  const e = engineSlice(config);
  const isDemo = e.model === '';
  const modelPath = isDemo ? await ensureDemoModel() : await modelSource(e.model, e.ggufFile, log, onProgress);
  if (isDemo)
    log?.warn(
      `*** no --model given: serving the built-in DEMO model (synthetic weights, its output is noise) from ${modelPath}; ` +
        'pass --model PATH or WEFT_MODEL to serve a real model ***',
    );
  const native = loadNative();
  const devices = native.cudaDeviceCount();
  const backend = resolveBackend(e.backend, devices);
  log?.info(`backend: ${backend} (asked: ${e.backend}; ${devices} CUDA device(s) visible)`);
  const spec = await loadModelSpec(modelPath);
  const dtype = resolveDtype(e.dtype, backend, checkpointKind(spec));
  const numThreads = resolveNumThreads(e.numThreads, e.numInstances, usableCpuCount());
  if (backend === 'cpu')
    log?.info(`compute threads: ${numThreads} per instance (${e.numThreads === 0 ? `auto: ${usableCpuCount()} usable CPU(s)` : '--num-threads'})`);
  // bin/threadpool.cjs sets it for `weft` and `npm start`; Node's default is 4
  log?.info(`tokenizer threads: ${process.env.UV_THREADPOOL_SIZE ?? 4} (the libuv pool, UV_THREADPOOL_SIZE)`);
  const sched = schedulerSlice(config, spec.config.maxPositions);
  const kv = kvCacheBlocksFor(e, spec, dtype, backend, sched.maxModelLen);
  if (backend === 'cpu') {
    const mib = (kv.blocks * e.blockSize * kv.bytesPerToken) / 2 ** 20;
    const why = e.kvCacheBlocks ? '--kv-cache-blocks' : kv.limitedByMemory ? 'auto, limited to half the available memory' : 'auto';
    log?.info(`KV cache: ${kv.blocks} blocks of ${e.blockSize} per instance, ${mib.toFixed(0)} MiB at most, taken from the OS as used (${why})`);
  }
  const workers: EngineWorker[] = [];
  // Weights load inside the first instance's worker (the others share them); the native loader
  // counts the bytes it has read, which this thread polls for the progress bar and /ready.
  const loading = progressBar(process.stderr, 'bytes');
  let instancesReady = 0;
  const report = () => {
    const p = native.loadProgress();
    loading.update(
      `loading ${basename(modelPath)} (instance ${Math.min(instancesReady + 1, e.numInstances)} of ${e.numInstances})`,
      p.bytesDone,
      p.bytesTotal,
    );
    onProgress?.({ phase: 'load', file: basename(modelPath), bytes: p.bytesDone, total: p.bytesTotal, instancesReady, instances: e.numInstances });
  };
  const poll = setInterval(() => {
    if (native.loadProgress().active) report();
  }, 200).unref();
  try {
    for (let i = 0; i < e.numInstances; i++) {
      // GPU instances go round-robin over the visible devices, one CUDA stream each
      const device = backend === 'gpu' ? i % devices : 0;
      const onDevice = backend === 'gpu' ? Math.floor(e.numInstances / devices) + (device < e.numInstances % devices ? 1 : 0) : 1;
      if (backend === 'gpu') {
        const d = native.cudaDeviceInfo(device);
        log?.info(
          `instance ${i}: cuda:${device} ${d.name} (sm ${d.computeCapability}, ${d.smCount} SMs, ` +
            `${(d.freeBytes / 2 ** 30).toFixed(1)} of ${(d.totalBytes / 2 ** 30).toFixed(1)} GiB free)`,
        );
      }
      workers.push(
        await EngineWorker.start(i, {
          modelPath,
          spec,
          dtype,
          numThreads,
          numKvBlocks: kv.blocks,
          blockSize: e.blockSize,
          kvDtype: e.kvDtype,
          backend,
          device,
          kvCacheFraction: backend === 'gpu' ? kvFractionForInstance(e.gpuMemoryUtilization, onDevice, Math.floor(i / devices)) : 0,
          maxNumTokens: sched.maxNumBatchedTokens,
          maxNumSeqs: sched.maxNumSeqs,
          maxContextLen: sched.maxModelLen,
          cudaGraphs: e.cudaGraphs,
        }),
      );
      instancesReady = i + 1;
      report();
    }
    loading.end();
  } catch (err) {
    await Promise.all(workers.map((w) => w.close()));
    throw err;
  } finally {
    clearInterval(poll);
  }
  const loop = new EngineLoop(workers, {
    scheduler: { ...sched, blockSize: e.blockSize },
    eosTokenIds: spec.config.eosTokenIds,
    onStep: metrics.onStep,
    onFinish: metrics.onFinish,
    onInstanceFailure: (f) => {
      const what = `engine instance ${f.instance} failed (${f.error.code}: ${f.error.message}); ${f.numFailedRequests} request(s) ended with that error`;
      if (f.restarted) log?.error(`${what}; the instance was restarted with an empty KV cache`);
      else log?.error(`${what}; restarting it failed too (${f.restartError?.code}: ${f.restartError?.message})`);
    },
  });
  metrics.addStatsSource(() => loop.stats());
  // --served-model-name: the first name is the id; the others are aliases a gateway may rewrite `model` to
  const [id, ...aliases] =
    config.servedModelName.length > 0 ? config.servedModelName : [isDemo ? DEMO_MODEL_NAME : basename(modelPath).replace(/\.gguf$/, '')];
  const service = new GenerationService(
    loop,
    new TextTokenizer(spec),
    {
      id,
      aliases,
      path: modelPath,
      isDemo,
      backend,
      dtype,
      maxModelLen: sched.maxModelLen,
      vocabSize: spec.config.vocabSize,
      eosTokenIds: spec.config.eosTokenIds,
      numInstances: e.numInstances,
      chatTemplate: chatTemplateOf(config, spec.chatTemplate),
      toolCallParser: config.toolCallParser,
    },
    { ...generationSlice(config), maxSeqsPerRequest: config.maxSeqsPerRequest },
    metrics,
  );
  // a cache that cannot hold one full context is a configuration mistake, not an error: say so
  for (const w of workers) {
    const tokens = w.info.numKvBlocks * w.info.blockSize;
    if (tokens < sched.maxModelLen)
      log?.warn(
        `engine instance ${w.index}: its KV cache holds ${tokens} tokens, less than one full context (${sched.maxModelLen}); ` +
          'long requests will be refused — raise --kv-cache-blocks or lower --max-model-len',
      );
  }
  log?.info(
    `model ${id} ready: ${spec.format} ${modelPath}, ${e.numInstances} ${backend} instance(s)` +
      `${backend === 'cpu' ? ` × ${numThreads} thread(s)` : ''}, ${dtype} weights, ` +
      `${workers.map((w) => w.info.numKvBlocks).join('/')} KV blocks of ${e.blockSize}, context ${sched.maxModelLen}`,
  );
  // A side model (reranker, embedding model): one instance beside the model's, with its own KV
  // cache and prefix cache.
  const sideModel = async (path: string, on: 'cpu' | 'gpu'): Promise<EngineInitOptions & { spec: ModelSpec }> => {
    const rspec = await loadModelSpec(path);
    const rdtype = resolveDtype('auto', on, checkpointKind(rspec));
    const rlen = Math.min(sched.maxModelLen, rspec.config.maxPositions);
    return {
      modelPath: path,
      spec: rspec,
      dtype: rdtype,
      numThreads,
      numKvBlocks: kvCacheBlocksFor({ ...e, numInstances: 1 }, rspec, rdtype, on, rlen).blocks,
      blockSize: e.blockSize,
      backend: on,
      device: 0,
      kvCacheFraction: 0,
      maxNumTokens: sched.maxNumBatchedTokens,
      maxNumSeqs: sched.maxNumSeqs,
      maxContextLen: rlen,
      cudaGraphs: e.cudaGraphs,
    };
  };
  const sideName = (path: string) => basename(path).replace(/\.gguf$/, '');
  let reranker: ModelReranker | null = null;
  if (config.rerankerModel) {
    reranker = await ModelReranker.start(sideName(config.rerankerModel), await sideModel(config.rerankerModel, backend));
    log?.info(`reranker ${reranker.name} ready: ${config.rerankerModel} (yes = ${reranker.yesId}, no = ${reranker.noId})`);
  }
  let embedder: Embedder | null = null;
  if (config.embeddingModel) {
    // on the CPU whatever the backend: the CUDA engine does not return hidden states yet
    const options = await sideModel(config.embeddingModel, 'cpu');
    const files = options.spec.pooling;
    const pooling = config.embeddingPooling === 'auto' ? (files.pooling ?? 'last') : config.embeddingPooling;
    if (pooling === 'cls')
      throw new WeftError(
        'WEFT_ERR_CONFIG_INVALID',
        `${config.embeddingModel} asks for CLS pooling, which a causal LM cannot give (its first position sees only itself): ` +
          'give --embedding-pooling last or mean',
      );
    embedder = await Embedder.start(sideName(config.embeddingModel), options, pooling, files.normalize ?? true);
    log?.info(
      `embedding model ${embedder.name} ready: ${config.embeddingModel} (${embedder.dim} dimensions, ${pooling} pooling` +
        `${embedder.normalize ? ', normalized' : ''}, on the CPU)`,
    );
  }
  return {
    service,
    reranker,
    embedder,
    workers,
    async close() {
      await loop.close();
      await Promise.all(workers.map((w) => w.close()));
      await reranker?.close();
      await embedder?.close();
    },
  };
}

// After the shutdown timeout, how long the aborted requests get to write their last event before
// their connections are closed anyway (a client that does not read them).
const FINAL_EVENT_GRACE_MS = 2000;

// Stops accepting, waits for in-flight requests up to shutdownTimeoutMs, then aborts the rest: each
// stream ends with an error event (WEFT_ERR_HTTP_SHUTDOWN_ABORTED) and [DONE], a plain request gets
// a 503 with that code; then the connections close.
export async function shutdown(app: FastifyInstance, engine: Engine | null, timeoutMs: number): Promise<void> {
  app.weft.isShuttingDown = true;
  const closing = app.close();
  const drained = engine ? await engine.service.drain(timeoutMs) : true;
  if (!drained && engine) {
    app.log.warn(`shutdown: ${engine.service.numActive} request(s) still running after ${timeoutMs} ms are aborted (WEFT_ERR_HTTP_SHUTDOWN_ABORTED)`);
    const why = `the server shut down before this request finished (shutdown timeout ${timeoutMs} ms)`;
    engine.service.abortAll(new WeftError('WEFT_ERR_HTTP_SHUTDOWN_ABORTED', why));
    if (!(await app.weft.inFlight.settled(FINAL_EVENT_GRACE_MS)))
      app.log.warn(`shutdown: ${app.weft.inFlight.size} response(s) not written after ${FINAL_EVENT_GRACE_MS} ms are cut off`);
    app.server.closeAllConnections();
  }
  // keep-alive connections that went idle since close() began
  app.server.closeIdleConnections();
  await closing;
  await engine?.close();
}

// Starts the server; resolves once it serves (0) or failed to start (1; 2 for a bad config),
// the exit code also set on process.exitCode. A failure is one readable line on stderr.
export async function runServer(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(configUsage() + '\n');
    return 0;
  }
  let config: Readonly<Config>;
  try {
    config = loadConfig({ argv });
  } catch (e) {
    process.stderr.write(`weft: ${isWeftError(e) ? e.code + ': ' : ''}${(e as Error).message}\n`);
    process.exitCode = 2;
    return 2;
  }
  const app = await buildApp(config);
  app.log.info({ config: describeConfig(config) }, 'effective configuration');
  try {
    await app.listen({ port: config.port, host: config.host });
  } catch (e) {
    // a port in use or not allowed is the user's to fix: one line, not a stack trace
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'EADDRINUSE'
        ? 'the address is in use (another server? choose one with --port)'
        : code === 'EACCES'
          ? 'permission denied (ports below 1024 need privileges)'
          : (e as Error).message;
    process.stderr.write(`weft: cannot listen on ${config.host}:${config.port}: ${why}\n`);
    await app.close();
    process.exitCode = 1;
    return 1;
  }
  let engine: Engine | null = null;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      // a second Ctrl-C (or SIGTERM) does not wait for the drain
      app.log.warn(`${signal} again: exiting now, without waiting for in-flight requests`);
      process.stderr.write(`weft: ${signal} again: exiting now\n`);
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    stopping = true;
    app.log.info(`${signal}: draining (up to ${config.shutdownTimeoutMs} ms)`);
    shutdown(app, engine, config.shutdownTimeoutMs).then(
      () => process.exit(0),
      (e) => {
        app.log.error(e);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  try {
    app.weft.loadProgress = { phase: 'load' };
    engine = await startEngine(config, app.weft.metrics, app.log, (p) => {
      app.weft.loadProgress = p;
    });
    app.weft.loadProgress = null;
    if (stopping) {
      await engine.close();
      return 0;
    }
    app.weft.attach(engine.service);
    app.weft.reranker = engine.reranker;
    app.weft.embedder = engine.embedder;
  } catch (e) {
    app.log.fatal({ err: e }, `cannot start the engine: ${(e as Error).message}`);
    process.stderr.write(`weft: cannot start the engine: ${isWeftError(e) ? e.code + ': ' : ''}${(e as Error).message}\n`);
    await app.close();
    process.exitCode = 1;
    return 1;
  }
  return 0;
}

if (import.meta.url === `file://${process.argv[1]}`) await runServer(process.argv.slice(2));
