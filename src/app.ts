// buildApp(config): the Fastify instance with every plugin and route registered, no listen.
// The engine is attached when it is ready (/ready answers 503 until then), so the server can
// listen while the model loads, and tests can build apps over a shared engine.
import { createHash, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';

import cors from '@fastify/cors';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';

import { clientLimitsSlice, serverSlice, type ClientLimits, type Config, type ServerConfig } from './config.js';
import { prettyLine, prettyLogStream } from './log-format.js';
import { WeftError } from './errors.js';
import type { GenerationService } from './generation.js';
import { Metrics } from './metrics.js';
import type { Embedder } from './embed.js';
import type { Reranker } from './rerank.js';
import { connectionOptions, drainUnreadBody, onClientError } from './routes/connection.js';
import { pacedBody } from './routes/upload-pacing.js';
import { registerDocs } from './routes/docs.js';
import { errorBody, toWeftError } from './routes/error-body.js';
import { beamRoutes } from './routes/beam.js';
import { rerankRoutes } from './routes/rerank.js';
import { embeddingRoutes } from './routes/embeddings.js';
import { chatRoutes } from './routes/chat.js';
import { generateRoutes } from './routes/generate.js';
import { healthRoutes } from './routes/health.js';
import { MemoryRelief } from './memory-relief.js';
import { InFlight } from './routes/in-flight.js';
import { openaiRoutes } from './routes/openai.js';
import { responsesRoutes } from './routes/responses.js';
import { ajvOptions } from './routes/schemas.js';
import { tokenizeRoutes } from './routes/tokenize.js';
import { webuiRoutes } from './routes/webui.js';
import { loadNative } from './workers/binding.js';

export interface LoadProgress {
  phase: 'download' | 'load';
  file?: string;
  bytes?: number; // download: of this file so far; load: of the model's tensors read so far
  total?: number; // download: its size; load: the model's tensor bytes
  instancesReady?: number; // load: engine instances up so far
  instances?: number; // load: of all
}

export class AppState {
  #service: GenerationService | null = null;
  reranker: Reranker | null = null; // a reranker model (--reranker-model), when one is loaded
  embedder: Embedder | null = null; // an embedding model (--embedding-model), when one is loaded
  isShuttingDown = false;
  loadProgress: LoadProgress | null = null; // while the model downloads or loads: what /ready reports
  readonly inFlight: InFlight; // responses not yet closed (shutdown waits on them; slow readers are cut off)
  readonly cutOff = new WeakSet<ServerResponse>(); // responses the server closed itself, having logged why
  readonly relief: MemoryRelief; // gives memory back once shed connections' buffers are garbage, or when idle after load

  constructor(
    readonly metrics: Metrics,
    readonly limits: ClientLimits,
    log?: FastifyBaseLogger,
  ) {
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    this.relief = new MemoryRelief({
      trim: nativeTrim(),
      isBusy: () => this.inFlight.size > 0 || (this.#service?.numActive ?? 0) > 0,
      onCollect: (before, after) => {
        const m = process.memoryUsage();
        log?.debug(
          `memory relief: garbage collected and malloc_trim, RSS ${mib(before)} → ${mib(after)} MiB ` +
            `(V8 heap ${mib(m.heapTotal)}, array buffers ${mib(m.arrayBuffers)}, other external ${mib(m.external - m.arrayBuffers)} MiB)`,
        );
      },
    });
    this.inFlight = new InFlight(
      limits.writeTimeoutMs,
      (code) => metrics.countError(code),
      (res) => {
        this.cutOff.add(res);
        this.relief.shed();
      },
    );
  }

  attach(service: GenerationService): void {
    this.#service = service;
    if (service.metrics !== this.metrics) this.metrics.addStatsSource(() => service.loop.stats());
  }

  get isReady(): boolean {
    return this.#service !== null && !this.isShuttingDown;
  }

  // The engine, or a 503 while it loads or after shutdown began.
  get service(): GenerationService {
    if (this.isShuttingDown) throw new WeftError('WEFT_ERR_HTTP_SHUTTING_DOWN', 'the server is shutting down');
    if (!this.#service) throw new WeftError('WEFT_ERR_HTTP_NOT_READY', 'the model is still loading');
    return this.#service;
  }

  get maybeService(): GenerationService | null {
    return this.#service;
  }
}

// malloc_trim through the addon; none where the addon cannot load (it is built at install)
function nativeTrim(): (() => boolean) | null {
  try {
    const native = loadNative();
    return () => native.mallocTrim();
  } catch {
    return null;
  }
}

declare module 'fastify' {
  interface FastifyInstance {
    weft: AppState;
  }
}

export interface AppDeps {
  service?: GenerationService; // attach now (else call app.weft.attach later)
  reranker?: Reranker;
  embedder?: Embedder;
  metrics?: Metrics; // default: a fresh registry for this app
  logStream?: { write(line: string): void }; // where the log goes (default stdout): tests read it
}

// '/' is the chat page and /docs the API reference: both ask for the key themselves (Swagger UI's Authorize)
const PUBLIC_ROUTES = new Set(['/health', '/']);
const isPublic = (path: string) => PUBLIC_ROUTES.has(path) || path === '/docs' || path.startsWith('/docs/');

// The log's destination: the caller's stream, else stdout, readable there when it is a terminal.
function logStreamOf(s: ServerConfig, deps: AppDeps): { stream?: { write(line: string): void } } {
  if (deps.logStream)
    return { stream: s.logFormat === 'pretty' ? { write: (l: string) => deps.logStream!.write(prettyLine(l.trimEnd())) } : deps.logStream };
  return s.logFormat === 'pretty' || (s.logFormat === 'auto' && process.stdout.isTTY) ? { stream: prettyLogStream() } : {};
}

export async function buildApp(config: Readonly<Config>, deps: AppDeps = {}): Promise<FastifyInstance> {
  const s = serverSlice(config);
  const limits = clientLimitsSlice(config);
  const metrics = deps.metrics ?? deps.service?.metrics ?? new Metrics({ compat: config.metricsCompat });
  const app = Fastify({
    logger: s.logLevel === 'silent' ? false : { level: s.logLevel, ...logStreamOf(s, deps) },
    // one access line per request at info (onResponse below) instead of Fastify's two
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: s.bodyLimit,
    ajv: { customOptions: { ...ajvOptions } },
    forceCloseConnections: 'idle',
    return503OnClosing: false, // requests still arriving during shutdown get our 503 body (WEFT_ERR_HTTP_SHUTTING_DOWN)
    ...connectionOptions(limits),
    clientErrorHandler: onClientError,
  });
  app.decorate('weft', new AppState(metrics, limits, app.log));
  app.addHook('preParsing', async (request, _reply, payload) => pacedBody(request.raw, payload));
  if (deps.service) app.weft.attach(deps.service);
  if (deps.reranker) app.weft.reranker = deps.reranker;
  if (deps.embedder) app.weft.embedder = deps.embedder;

  app.setErrorHandler((err, request, reply) => sendError(app, request, reply, toWeftError(err, request.body)));
  // request logging: the request at debug, one access line per response at info
  app.addHook('onRequest', async (request) => {
    request.log.debug({ method: request.method, url: request.url, remote: request.ip }, 'request');
  });
  app.addHook('onResponse', async (request, reply) => logAccess(request, reply));
  app.setNotFoundHandler((request, reply) =>
    sendError(app, request, reply, new WeftError('WEFT_ERR_HTTP_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`)),
  );

  if (s.cors) {
    const origins = s.cors.split(',').map((o) => o.trim());
    await app.register(cors, { origin: origins.includes('*') ? true : origins });
  }
  app.addHook('onClose', async () => app.weft.relief.close());
  app.addHook('onRequest', async (request, reply) => {
    app.weft.inFlight.track(reply.raw, request.log);
    // 'finish' (everything handed to the OS) rather than writableFinished, which inject()'s responses never set
    let isFinished = false;
    reply.raw.once('finish', () => {
      isFinished = true;
    });
    reply.raw.once('close', () => onResponseClosed(app, request, reply, isFinished));
  });
  if (s.apiKeys.length > 0) app.addHook('onRequest', bearerAuth(keyMatcher(s.apiKeys)));

  await registerDocs(app);
  await app.register(healthRoutes);
  await app.register(generateRoutes);
  await app.register(chatRoutes);
  await app.register(beamRoutes);
  await app.register(rerankRoutes);
  await app.register(embeddingRoutes);
  await app.register(tokenizeRoutes);
  await app.register(openaiRoutes);
  await app.register(responsesRoutes);
  if (s.webui) await app.register(webuiRoutes);
  return app;
}

// The error each failed response was answered with: its access line names it.
const replyErrors = new WeakMap<FastifyReply, WeftError>();

// One line per response, at info; one that failed names its error code and message (a server
// fault at error, with its stack): every failure a request meets is in the log once, with its cause.
function logAccess(request: FastifyRequest, reply: FastifyReply): void {
  const line = `${request.method} ${request.url.split('?')[0]} ${reply.statusCode} ${reply.elapsedTime.toFixed(1)} ms`;
  const e = replyErrors.get(reply);
  if (!e) request.log.info(line);
  else if (e.status >= 500 && e.status !== 503) request.log.error({ err: e, code: e.code }, `${line}: ${e.code}: ${e.message}`);
  else request.log.info({ code: e.code }, `${line}: ${e.code}: ${e.message}`);
}

// A response that closed before it ended gets no access line: one line saying the client left
// (what it was generating is aborted), unless the server cut it off itself and said why (a 408, a
// write timeout, shutdown). Then, with nothing in flight, memory may go back to the OS.
function onResponseClosed(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, isFinished: boolean): void {
  const raw = reply.raw;
  if (!isFinished && !app.weft.cutOff.has(raw) && !app.weft.isShuttingDown)
    request.log.info(
      `${request.method} ${request.url.split('?')[0]}: the client closed the connection ${reply.elapsedTime.toFixed(1)} ms ` +
        `into the response, before its end (${raw.headersSent ? `status ${raw.statusCode} sent` : 'nothing sent'})`,
    );
  if (app.weft.inFlight.size === 0) app.weft.relief.idle();
  // Shutting down: the keep-alive connection this response leaves idle is closed now (on the next
  // tick, once the server has marked it idle). server.close() closes only the connections idle
  // when it is called; one whose response ends later would hold it until its keep-alive timeout.
  if (app.weft.isShuttingDown) setImmediate(() => app.server.closeIdleConnections());
}

async function sendError(app: FastifyInstance, request: FastifyRequest, reply: FastifyReply, e: WeftError): Promise<FastifyReply> {
  app.weft.metrics.countError(e.code);
  replyErrors.set(reply, e); // for its access line
  if (e.code === 'WEFT_ERR_SCHED_QUEUE_FULL' || e.status === 503) reply.header('retry-after', '1');
  // answered before its body was read (too large, no key): the client reads this only if it could send the body first
  if (!(await drainUnreadBody(request.raw, app.weft.limits.lingerMaxBytes))) reply.header('connection', 'close');
  return reply.status(e.status).send(errorBody(e));
}

// Optional API keys: `Authorization: Bearer <key>` on every route but /health and / (the page). Keys are compared
// as SHA-256 digests with timingSafeEqual, against every key: the time taken says nothing about
// how much of a guess matched (a Set lookup or === would).
function keyMatcher(keys: readonly string[]): (candidate: string) => boolean {
  const digest = (k: string) => new Uint8Array(createHash('sha256').update(k).digest());
  const digests = keys.map(digest);
  return (candidate) => {
    const d = digest(candidate);
    let ok = false;
    for (const k of digests) ok = timingSafeEqual(k, d) || ok;
    return ok;
  };
}

function bearerAuth(isKey: (candidate: string) => boolean) {
  return async (request: FastifyRequest): Promise<void> => {
    if (request.method === 'OPTIONS' || isPublic(request.url.split('?')[0])) return;
    const header = request.headers.authorization;
    if (!header) throw new WeftError('WEFT_ERR_AUTH_MISSING_KEY', 'this server needs an API key: Authorization: Bearer <key>');
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (!m || !isKey(m[1].trim())) throw new WeftError('WEFT_ERR_AUTH_INVALID_KEY', 'the API key is not valid');
  };
}
