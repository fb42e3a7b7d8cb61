// The one configuration: DEFAULTS < environment (WEFT_<KEY>) < command-line flags (--kebab-key).
// Validated, frozen, and handed out in slices: each part of the server reads only its own.
// Nothing else in src/ reads process.env.
import { parseArgs } from 'node:util';

import { WeftError } from './errors.js';
import type { CheckpointKind } from './model/types.js';

type Kind = 'int' | 'intOrAuto' | 'number' | 'string' | 'bool' | 'list' | readonly string[];

interface KeySpec {
  kind: Kind;
  min?: number;
  max?: number;
  help: string;
}

// Every key once, with its kind, range and unit.
const KEYS = {
  model: {
    kind: 'string',
    help:
      'HF model directory, .gguf file, or Hugging Face Hub id org/name[@revision] (hf://… too; downloaded into the HF cache); ' +
      'empty = the built-in demo model',
  },
  ggufFile: { kind: 'string', help: 'with a Hub id: the .gguf file of a GGUF repository to use (default: the only one, else Q8_0, BF16, F16, F32)' },
  backend: { kind: ['cpu', 'gpu', 'auto'], help: 'compute backend; auto = GPU when one is visible, else CPU' },
  dtype: {
    kind: ['auto', 'f32', 'int8', 'f16', 'bf16'],
    help:
      "weight type in memory; auto = the file's: on the CPU GGUF block types (Q4_K, Q6_K, Q4_0 …) as stored, int8 for Q8_0 GGUF, " +
      'else f32; on a GPU int8 for quantized GGUF, bf16 for bf16 checkpoints, else f16',
  },
  numInstances: { kind: 'int', min: 1, max: 64, help: 'engine instances (worker threads, each with its own KV cache)' },
  numThreads: {
    kind: 'intOrAuto',
    min: 1,
    max: 256,
    help: 'compute threads per instance; auto (0) = the CPUs this process may use (affinity and cgroup quota), over the instances',
  },
  kvCacheBlocks: {
    kind: 'intOrAuto',
    min: 1,
    max: 1 << 24,
    help:
      'KV cache blocks per instance; auto (0) = one full context and at least 1024 blocks, within half the memory available ' +
      'after the weights (GPU: used only when gpuMemoryUtilization is 0, auto = 1024)',
  },
  kvDtype: {
    kind: ['auto', 'f32', 'f16', 'int8'],
    help:
      'CPU KV cache element type; auto = f32 with f32 weights, f16 with int8 or block weights; int8 = a scale per 32 K values and ' +
      'per head of V values, 0.55x the bytes of f16 (the GPU caches in its activation type)',
  },
  gpuMemoryUtilization: {
    kind: 'number',
    min: 0,
    max: 0.99,
    help: 'GPU: share of the memory free after the weights that the KV caches take, split evenly over the instances on a device; 0 = kvCacheBlocks',
  },
  cudaGraphs: { kind: 'bool', help: 'GPU: replay decode steps from CUDA graphs captured per batch size' },
  blockSize: { kind: 'int', min: 1, max: 1024, help: 'tokens per KV block' },
  maxNumBatchedTokens: { kind: 'int', min: 1, max: 1 << 20, help: 'tokens computed per step' },
  maxNumSeqs: { kind: 'int', min: 1, max: 1 << 16, help: 'running sequences per instance' },
  maxNumWaiting: { kind: 'int', min: 1, max: 1 << 20, help: 'queued sequences per instance; more → 429' },
  maxModelLen: { kind: 'int', min: 0, max: 1 << 22, help: 'prompt + output tokens; 0 = the model context' },
  maxPromptTokens: { kind: 'int', min: 0, max: 1 << 22, help: 'prompt tokens per request; 0 = no limit beyond maxModelLen' },
  port: { kind: 'int', min: 0, max: 65535, help: 'TCP port' },
  host: { kind: 'string', help: 'listen address' },
  apiKeys: { kind: 'list', help: 'comma-separated Bearer keys; empty = no auth' },
  cors: { kind: 'string', help: 'allowed origin(s), comma-separated, or * ; empty = CORS off' },
  webui: { kind: 'bool', help: 'serve the chat page at GET / (--no-webui turns it off)' },
  bodyLimit: { kind: 'int', min: 1024, max: 1 << 30, help: 'bytes per request body' },
  requestTimeoutMs: { kind: 'int', min: 0, max: 86_400_000, help: 'per-request generation limit; 0 = none' },
  shutdownTimeoutMs: { kind: 'int', min: 0, max: 3_600_000, help: 'wait for in-flight requests on SIGTERM' },
  servedModelName: {
    kind: 'list',
    help: 'model names, comma-separated or the flag repeated: the first is the id, every one is accepted as `model`; empty = from the path',
  },
  toolCallParser: {
    kind: ['auto', 'hermes', 'llama3_json', 'mistral'],
    help: 'how tool calls are read from the output on /v1/chat/completions; auto = from the chat template (else hermes)',
  },
  // slow and hostile clients: how long a request may take to arrive, a response to be taken, what one request may start
  headersTimeoutMs: {
    kind: 'int',
    min: 1,
    max: 3_600_000,
    help: "request line and headers must arrive within this (from a request's first byte; a new connection's from connecting); else 408",
  },
  bodyTimeoutMs: { kind: 'int', min: 0, max: 3_600_000, help: 'a whole request (headers and body) must arrive within this; else 408; 0 = no limit' },
  writeTimeoutMs: {
    kind: 'int',
    min: 0,
    max: 3_600_000,
    help: 'a client that leaves more than maxStreamLagBytes of a stream (or a finished response) untaken this long is cut off; 0 = never',
  },
  maxStreamLagBytes: {
    kind: 'int',
    min: 1,
    max: 1 << 30,
    help: 'bytes of a streamed response a client may leave unread before the stream waits for it',
  },
  lingerMaxBytes: {
    kind: 'int',
    min: 0,
    max: 1 << 30,
    help: 'bytes of a refused body (413) read and discarded so the client sees the error before the connection closes',
  },
  maxSeqsPerRequest: { kind: 'int', min: 1, max: 1 << 16, help: 'sequences one request may start: prompts × n (beam search: × width); more → 400' },
  exposeModelPath: { kind: 'bool', help: "/ready and /v1/models show the model's path on disk" },
  chatTemplate: {
    kind: 'string',
    help: "a Jinja chat template (a file's path, or the template itself) used instead of the model's; empty = the model's",
  },
  rerankerModel: { kind: 'string', help: 'a Qwen3-Reranker-style causal LM (HF directory or .gguf) for /v1/rerank and use_rerank; empty = none' },
  embeddingModel: {
    kind: 'string',
    help: 'an embedding model, a causal LM such as Qwen3-Embedding (HF directory or .gguf), for /v1/embeddings; empty = none',
  },
  embeddingPooling: {
    kind: ['auto', 'last', 'mean'],
    help: "how the embedding model's hidden states become one vector; auto = as its files say (GGUF pooling_type, sentence-transformers), else last",
  },
  responsesStoreBytes: {
    kind: 'int',
    min: 0,
    max: 2 ** 40,
    help: '/v1/responses: bytes of stored responses kept in memory (the least recently used go first); 0 = store nothing',
  },
  logLevel: { kind: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], help: 'pino log level' },
  logFormat: { kind: ['auto', 'json', 'pretty'], help: 'log lines as JSON or readable text; auto = readable on a terminal, JSON otherwise' },
  metricsCompat: { kind: ['none', 'vllm'], help: "vllm = also export the load gauges under vLLM's names (vllm:num_requests_waiting, …)" },
} as const satisfies Record<string, KeySpec>;

export interface Config {
  model: string;
  ggufFile: string;
  backend: 'cpu' | 'gpu' | 'auto';
  dtype: 'auto' | 'f32' | 'int8' | 'f16' | 'bf16';
  numInstances: number;
  numThreads: number;
  kvCacheBlocks: number;
  kvDtype: 'auto' | 'f32' | 'f16' | 'int8';
  gpuMemoryUtilization: number;
  cudaGraphs: boolean;
  blockSize: number;
  maxNumBatchedTokens: number;
  maxNumSeqs: number;
  maxNumWaiting: number;
  maxModelLen: number;
  maxPromptTokens: number;
  port: number;
  host: string;
  apiKeys: readonly string[];
  cors: string;
  webui: boolean;
  bodyLimit: number;
  requestTimeoutMs: number;
  shutdownTimeoutMs: number;
  servedModelName: readonly string[];
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  writeTimeoutMs: number;
  maxStreamLagBytes: number;
  lingerMaxBytes: number;
  maxSeqsPerRequest: number;
  exposeModelPath: boolean;
  rerankerModel: string;
  embeddingModel: string;
  embeddingPooling: 'auto' | 'last' | 'mean';
  responsesStoreBytes: number;
  toolCallParser: 'auto' | 'hermes' | 'llama3_json' | 'mistral';
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  logFormat: 'auto' | 'json' | 'pretty';
  chatTemplate: string;
  metricsCompat: 'none' | 'vllm';
}

export type ConfigKey = keyof typeof KEYS;

export const DEFAULTS: Readonly<Config> = Object.freeze({
  model: '', // path or Hub id; '' = demo model
  ggufFile: '',
  backend: 'auto',
  dtype: 'auto',
  numInstances: 1, // instances
  numThreads: 0, // threads per instance; 0 = auto
  kvCacheBlocks: 0, // blocks per instance; 0 = auto (resolveKvCacheBlocks)
  kvDtype: 'auto', // element type of the KV cache
  gpuMemoryUtilization: 0.9, // fraction of free GPU memory
  cudaGraphs: true,
  blockSize: 16, // tokens per block
  maxNumBatchedTokens: 2048, // tokens per step
  maxNumSeqs: 256, // sequences per instance
  maxNumWaiting: 1024, // sequences per instance
  maxModelLen: 0, // tokens; 0 = model's maxPositions
  maxPromptTokens: 0, // tokens; 0 = maxModelLen - 1
  port: 8080, // TCP port
  host: '0.0.0.0', // address
  apiKeys: Object.freeze([]) as readonly string[], // keys
  cors: '', // origins; '' = off
  webui: true, // GET / serves the chat page
  bodyLimit: 1_048_576, // bytes
  requestTimeoutMs: 600_000, // ms
  shutdownTimeoutMs: 30_000, // ms
  servedModelName: Object.freeze([]) as readonly string[], // names; none = from the model path
  headersTimeoutMs: 10_000, // ms
  bodyTimeoutMs: 60_000, // ms
  writeTimeoutMs: 30_000, // ms
  maxStreamLagBytes: 1_048_576, // bytes per streamed response
  lingerMaxBytes: 67_108_864, // bytes per refused body
  maxSeqsPerRequest: 256, // sequences per request
  exposeModelPath: false,
  rerankerModel: '', // path; '' = no reranker model
  embeddingModel: '', // path; '' = no embedding model
  embeddingPooling: 'auto',
  responsesStoreBytes: 67_108_864, // bytes of stored /v1/responses
  toolCallParser: 'auto', // tool-call format; auto = from the chat template
  logLevel: 'info',
  logFormat: 'auto',
  chatTemplate: '',
  metricsCompat: 'none', // extra metric names
});

const envName = (k: string) => 'WEFT_' + k.replace(/[A-Z]/g, (c) => '_' + c).toUpperCase();
const flagName = (k: string) => k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

function invalid(key: string, source: string, why: string): never {
  throw new WeftError('WEFT_ERR_CONFIG_INVALID', `config key ${key} (${source}): ${why}`);
}

function coerce(key: ConfigKey, raw: string | boolean | number | readonly string[], source: string): unknown {
  const spec: KeySpec = KEYS[key];
  const text = typeof raw === 'string' ? raw.trim() : raw;
  if (Array.isArray(spec.kind)) {
    if (typeof text !== 'string' || !spec.kind.includes(text)) invalid(key, source, `must be one of ${spec.kind.join(' | ')}, got "${String(raw)}"`);
    return text;
  }
  switch (spec.kind) {
    // biome-ignore lint/suspicious/noFallthroughSwitchClause: 'auto' or an int, the int checked as below
    case 'intOrAuto':
      if (text === 'auto' || text === 0) return 0;
    // falls through: otherwise an integer in range
    case 'int': {
      const n = typeof text === 'number' ? text : Number(text);
      if (text === '' || !Number.isSafeInteger(n)) invalid(key, source, `must be an integer, got "${String(raw)}"`);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max))
        invalid(key, source, `must be in [${spec.min}, ${spec.max}], got ${n}`);
      return n;
    }
    case 'number': {
      const n = typeof text === 'number' ? text : Number(text);
      if (text === '' || !Number.isFinite(n)) invalid(key, source, `must be a number, got "${String(raw)}"`);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max))
        invalid(key, source, `must be in [${spec.min}, ${spec.max}], got ${n}`);
      return n;
    }
    case 'list':
      return Object.freeze((Array.isArray(text) ? text : String(text).split(',')).map((s: string) => s.trim()).filter((s: string) => s !== ''));
    case 'bool':
      if (typeof text === 'boolean') return text;
      if (!['true', 'false', '1', '0'].includes(String(text))) invalid(key, source, `must be true or false, got "${String(raw)}"`);
      return text === 'true' || text === '1';
    default:
      if (typeof text !== 'string') invalid(key, source, 'must be a string');
      return text;
  }
}

export interface LoadConfigInput {
  argv?: string[];
  env?: Record<string, string | undefined>;
  overrides?: Partial<Config>; // for tests and embedding; above CLI flags
}

// defaults < env < argv < overrides; throws WEFT_ERR_CONFIG_INVALID naming the key.
export function loadConfig({ argv = [], env = process.env, overrides = {} }: LoadConfigInput = {}): Readonly<Config> {
  const out: Record<string, unknown> = { ...DEFAULTS };
  const keys = Object.keys(KEYS) as ConfigKey[];
  const boolKeys = keys.filter((k) => KEYS[k].kind === 'bool'); // each also takes --no-<flag>
  for (const k of keys) {
    const v = env[envName(k)];
    if (v !== undefined) out[k] = coerce(k, v, `env ${envName(k)}`);
  }
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: Object.fromEntries([
        ...keys.map((k) => [flagName(k), { type: 'string', multiple: KEYS[k].kind === 'list' }]),
        ...boolKeys.map((k) => [`no-${flagName(k)}`, { type: 'boolean' }]),
        ['help', { type: 'boolean' }],
        ['api-key', { type: 'string', multiple: true }],
      ]),
    }));
  } catch (e) {
    throw new WeftError('WEFT_ERR_CONFIG_INVALID', `${(e as Error).message}\n${configUsage()}`);
  }
  if (values.help) throw new WeftError('WEFT_ERR_CONFIG_INVALID', configUsage());
  for (const k of keys) {
    const v = values[flagName(k)];
    // a list flag given several times: its values together (--served-model-name a --served-model-name b)
    if (v !== undefined) out[k] = coerce(k, Array.isArray(v) ? v.join(',') : (v as string), `--${flagName(k)}`);
  }
  for (const k of boolKeys) if (values[`no-${flagName(k)}`]) out[k] = false;
  // vLLM's and llama.cpp's spelling: --api-key KEY, repeatable
  const single = values['api-key'] as string[] | undefined;
  if (single) out.apiKeys = coerce('apiKeys', [...(out.apiKeys as readonly string[]), ...single].join(','), '--api-key');
  for (const [k, v] of Object.entries(overrides)) {
    if (!(k in KEYS)) invalid(k, 'overrides', 'unknown key');
    if (v !== undefined) out[k] = coerce(k as ConfigKey, v as string, 'overrides');
  }
  const c = out as unknown as Config;
  if (new Set(c.servedModelName).size !== c.servedModelName.length) invalid('servedModelName', 'merged', 'a name is given twice');
  if (c.maxNumBatchedTokens < c.maxNumSeqs) invalid('maxNumBatchedTokens', 'merged', `must be at least maxNumSeqs (${c.maxNumSeqs})`);
  if (c.backend === 'gpu' && c.dtype === 'f32')
    invalid('dtype', 'merged', 'f32 weights run on the CPU backend; a GPU takes f16, bf16 or int8 (or auto)');
  if (c.backend === 'cpu' && (c.dtype === 'f16' || c.dtype === 'bf16'))
    invalid('dtype', 'merged', `${c.dtype} weights run on the GPU backend; the CPU takes f32 or int8 (or auto)`);
  if (c.bodyTimeoutMs > 0 && c.headersTimeoutMs > c.bodyTimeoutMs)
    invalid('headersTimeoutMs', 'merged', `must not exceed bodyTimeoutMs (${c.bodyTimeoutMs}): the headers are part of the request`);
  if (c.backend === 'gpu' && (c.kvDtype === 'f32' || c.kvDtype === 'int8'))
    invalid('kvDtype', 'merged', 'the GPU caches keys and values in its activation type (f16 or bf16); use auto');
  return Object.freeze(c);
}

export function configUsage(): string {
  return (
    'weft serve options (env WEFT_<KEY> works too):\n' +
    (Object.entries(KEYS) as [string, KeySpec][])
      .map(([k, s]) => `  --${flagName(k)}  ${envName(k)}  ${s.help} (default ${JSON.stringify(DEFAULTS[k as ConfigKey])})`)
      .join('\n')
  );
}

// auto → gpu when the native layer sees a CUDA device, else cpu.
export function resolveBackend(backend: Config['backend'], cudaDeviceCount: number): 'cpu' | 'gpu' {
  if (backend === 'cpu') return 'cpu';
  if (cudaDeviceCount > 0) return 'gpu';
  if (backend === 'gpu')
    throw new WeftError(
      'WEFT_ERR_ENGINE_NO_DEVICE',
      'backend gpu requested but no CUDA device is visible (no GPU, no NVIDIA driver, or a build without CUDA)',
    );
  return 'cpu';
}

// The weight type for the resolved backend. auto follows the file: GGUF block types stay as stored
// on the CPU ('quant'; the GPU dequantizes them to int8), a Q8_0 checkpoint runs on the int8 path
// (its group-32 scales kept), otherwise f32 on the CPU, and on a GPU bf16 for bf16 checkpoints,
// else f16. Types a backend cannot run are refused (after auto-resolution too).
export function resolveDtype(dtype: Config['dtype'], backend: 'cpu' | 'gpu', checkpoint: CheckpointKind): 'f32' | 'int8' | 'f16' | 'bf16' | 'quant' {
  if (dtype === 'auto' && checkpoint === 'blocks') return backend === 'cpu' ? 'quant' : 'int8';
  if (dtype === 'auto') return checkpoint === 'q8_0' ? 'int8' : backend === 'cpu' ? 'f32' : checkpoint === 'bf16' ? 'bf16' : 'f16';
  if (backend === 'gpu' && dtype === 'f32') invalid('dtype', 'merged', 'f32 weights run on the CPU backend; a GPU takes f16, bf16 or int8');
  if (backend === 'cpu' && (dtype === 'f16' || dtype === 'bf16'))
    invalid('dtype', 'merged', `${dtype} weights run on the GPU backend; the CPU takes f32 or int8`);
  return dtype;
}

// Compute threads per CPU instance: numThreads, or for auto (0) the CPUs this process may use
// split over the instances (at least 1 each).
export function resolveNumThreads(numThreads: number, numInstances: number, usableCpus: number): number {
  if (numThreads > 0) return numThreads;
  return Math.max(1, Math.floor(usableCpus / numInstances));
}

// --kv-cache-blocks auto on the CPU: room for one full context of the model, and never less than
// AUTO_KV_MIN_BLOCKS (a 16K-token working set for many short requests), within half of the memory
// available after the weights, shared by the instances. The cache is taken from the OS only as
// blocks are first used, so room for a long context costs nothing until a request needs it; the
// limit keeps a long-context model on a small host from promising memory it does not have.
export const AUTO_KV_MIN_BLOCKS = 1024;
export function resolveKvCacheBlocks(
  requested: number,
  o: { blockSize: number; maxModelLen: number; bytesPerToken: number; numInstances: number; availableBytes: number; weightBytes: number },
): { blocks: number; limitedByMemory: boolean } {
  if (requested > 0) return { blocks: requested, limitedByMemory: false };
  const wanted = Math.max(AUTO_KV_MIN_BLOCKS, Math.ceil(o.maxModelLen / o.blockSize));
  const budget = Math.max(0, o.availableBytes - o.weightBytes) / 2 / o.numInstances;
  const fit = Math.max(1, Math.floor(budget / (o.bytesPerToken * o.blockSize)));
  return fit < wanted ? { blocks: fit, limitedByMemory: true } : { blocks: wanted, limitedByMemory: false };
}

// Instance i of n on one device takes an equal share of what is free when it starts:
// u/(n - i*u) of the then-free memory gives each the fraction u/n of the memory free at first.
export function kvFractionForInstance(utilization: number, instancesOnDevice: number, indexOnDevice: number): number {
  if (utilization <= 0) return 0;
  return utilization / (instancesOnDevice - indexOnDevice * utilization);
}

// What the effective config prints at startup: keys are masked.
export function describeConfig(c: Readonly<Config>): Record<string, unknown> {
  return { ...c, apiKeys: c.apiKeys.map((k) => `${k.slice(0, 2)}…(${k.length})`) };
}

// ---- slices ----

export const serverSlice = (c: Readonly<Config>) =>
  Object.freeze({
    port: c.port,
    host: c.host,
    apiKeys: c.apiKeys,
    cors: c.cors,
    webui: c.webui,
    bodyLimit: c.bodyLimit,
    requestTimeoutMs: c.requestTimeoutMs,
    shutdownTimeoutMs: c.shutdownTimeoutMs,
    logLevel: c.logLevel,
    logFormat: c.logFormat,
  });
export type ServerConfig = ReturnType<typeof serverSlice>;

// What the HTTP layer needs against slow and hostile clients.
export const clientLimitsSlice = (c: Readonly<Config>) =>
  Object.freeze({
    headersTimeoutMs: c.headersTimeoutMs,
    bodyTimeoutMs: c.bodyTimeoutMs,
    writeTimeoutMs: c.writeTimeoutMs,
    maxStreamLagBytes: c.maxStreamLagBytes,
    lingerMaxBytes: c.lingerMaxBytes,
    maxSeqsPerRequest: c.maxSeqsPerRequest,
    exposeModelPath: c.exposeModelPath,
    responsesStoreBytes: c.responsesStoreBytes,
  });
export type ClientLimits = ReturnType<typeof clientLimitsSlice>;

export const engineSlice = (c: Readonly<Config>) =>
  Object.freeze({
    model: c.model,
    ggufFile: c.ggufFile,
    backend: c.backend,
    dtype: c.dtype,
    numInstances: c.numInstances,
    numThreads: c.numThreads,
    kvCacheBlocks: c.kvCacheBlocks,
    kvDtype: c.kvDtype,
    blockSize: c.blockSize,
    gpuMemoryUtilization: c.gpuMemoryUtilization,
    cudaGraphs: c.cudaGraphs,
  });

// maxModelLen 0 → the model's context.
export const schedulerSlice = (c: Readonly<Config>, modelMaxPositions: number) =>
  Object.freeze({
    maxNumBatchedTokens: c.maxNumBatchedTokens,
    maxNumSeqs: c.maxNumSeqs,
    maxNumWaiting: c.maxNumWaiting,
    maxModelLen: c.maxModelLen === 0 ? modelMaxPositions : Math.min(c.maxModelLen, modelMaxPositions),
  });

export const generationSlice = (c: Readonly<Config>) =>
  Object.freeze({
    maxPromptTokens: c.maxPromptTokens,
    requestTimeoutMs: c.requestTimeoutMs,
  });

// The Hugging Face Hub's own variables (huggingface_hub's names), read for Hub model ids.
export type HubEnv = Partial<Record<'HF_HOME' | 'HF_HUB_CACHE' | 'HF_ENDPOINT' | 'HF_TOKEN' | 'HF_HUB_OFFLINE', string>>;
export function hubEnv(env: Record<string, string | undefined> = process.env): HubEnv {
  const out: HubEnv = {};
  for (const k of ['HF_HOME', 'HF_HUB_CACHE', 'HF_ENDPOINT', 'HF_TOKEN', 'HF_HUB_OFFLINE'] as const) if (env[k] !== undefined) out[k] = env[k];
  return out;
}
