// The one configuration: DEFAULTS < environment (WEFT_<KEY>) < command-line flags (--kebab-key).
// Validated, frozen, and handed out in slices: each part of the server reads only its own.
// Nothing else in src/ reads process.env.
import { parseArgs } from 'node:util';

import { WeftError } from './errors.js';

type Kind = 'int' | 'string' | 'bool' | 'list' | readonly string[];

interface KeySpec {
  kind: Kind;
  min?: number;
  max?: number;
  help: string;
}

// Every key once, with its kind, range and unit.
const KEYS = {
  model: { kind: 'string', help: 'HF model directory or .gguf file; empty = the built-in demo model' },
  backend: { kind: ['cpu', 'gpu', 'auto'], help: 'compute backend; auto = GPU when one is visible, else CPU' },
  dtype: { kind: ['f32', 'int8'], help: 'weight type in memory' },
  numInstances: { kind: 'int', min: 1, max: 64, help: 'engine instances (worker threads, each with its own KV cache)' },
  numThreads: { kind: 'int', min: 1, max: 256, help: 'compute threads per instance' },
  kvCacheBlocks: { kind: 'int', min: 1, max: 1 << 24, help: 'KV cache blocks per instance' },
  kvDtype: { kind: ['auto', 'f32', 'f16'], help: 'KV cache element type; auto = f32 with f32 weights, f16 with int8' },
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
  bodyLimit: { kind: 'int', min: 1024, max: 1 << 30, help: 'bytes per request body' },
  requestTimeoutMs: { kind: 'int', min: 0, max: 86_400_000, help: 'per-request generation limit; 0 = none' },
  shutdownTimeoutMs: { kind: 'int', min: 0, max: 3_600_000, help: 'wait for in-flight requests on SIGTERM' },
  servedModelName: { kind: 'string', help: 'model id in /v1/models; empty = derived from the path' },
  logLevel: { kind: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], help: 'pino log level' },
} as const satisfies Record<string, KeySpec>;

export interface Config {
  model: string;
  backend: 'cpu' | 'gpu' | 'auto';
  dtype: 'f32' | 'int8';
  numInstances: number;
  numThreads: number;
  kvCacheBlocks: number;
  kvDtype: 'auto' | 'f32' | 'f16';
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
  bodyLimit: number;
  requestTimeoutMs: number;
  shutdownTimeoutMs: number;
  servedModelName: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
}

export type ConfigKey = keyof typeof KEYS;

export const DEFAULTS: Readonly<Config> = Object.freeze({
  model: '',                   // path; '' = demo model
  backend: 'auto',
  dtype: 'f32',
  numInstances: 1,             // instances
  numThreads: 1,               // threads per instance
  kvCacheBlocks: 1024,         // blocks per instance
  kvDtype: 'auto',             // element type of the KV cache
  blockSize: 16,               // tokens per block
  maxNumBatchedTokens: 2048,   // tokens per step
  maxNumSeqs: 256,             // sequences per instance
  maxNumWaiting: 1024,         // sequences per instance
  maxModelLen: 0,              // tokens; 0 = model's maxPositions
  maxPromptTokens: 0,          // tokens; 0 = maxModelLen - 1
  port: 8080,                  // TCP port
  host: '0.0.0.0',             // address
  apiKeys: Object.freeze([]) as readonly string[],  // keys
  cors: '',                    // origins; '' = off
  bodyLimit: 1_048_576,        // bytes
  requestTimeoutMs: 600_000,   // ms
  shutdownTimeoutMs: 30_000,   // ms
  servedModelName: '',         // id; '' = from the model path
  logLevel: 'info',
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
    case 'int': {
      const n = typeof text === 'number' ? text : Number(text);
      if (text === '' || !Number.isSafeInteger(n)) invalid(key, source, `must be an integer, got "${String(raw)}"`);
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) invalid(key, source, `must be in [${spec.min}, ${spec.max}], got ${n}`);
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
  overrides?: Partial<Config>;   // for tests and embedding; above CLI flags
}

// defaults < env < argv < overrides; throws WEFT_ERR_CONFIG_INVALID naming the key.
export function loadConfig({ argv = [], env = process.env, overrides = {} }: LoadConfigInput = {}): Readonly<Config> {
  const out: Record<string, unknown> = { ...DEFAULTS };
  const keys = Object.keys(KEYS) as ConfigKey[];
  for (const k of keys) {
    const v = env[envName(k)];
    if (v !== undefined) out[k] = coerce(k, v, `env ${envName(k)}`);
  }
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: argv, strict: true, allowPositionals: false,
      options: Object.fromEntries([...keys.map((k) => [flagName(k), { type: 'string' }]), ['help', { type: 'boolean' }]]) }));
  } catch (e) {
    throw new WeftError('WEFT_ERR_CONFIG_INVALID', `${(e as Error).message}\n${configUsage()}`);
  }
  if (values.help) throw new WeftError('WEFT_ERR_CONFIG_INVALID', configUsage());
  for (const k of keys) {
    const v = values[flagName(k)];
    if (v !== undefined) out[k] = coerce(k, v as string, `--${flagName(k)}`);
  }
  for (const [k, v] of Object.entries(overrides)) {
    if (!(k in KEYS)) invalid(k, 'overrides', 'unknown key');
    if (v !== undefined) out[k] = coerce(k as ConfigKey, v as string, 'overrides');
  }
  const c = out as unknown as Config;
  if (c.maxNumBatchedTokens < c.maxNumSeqs) invalid('maxNumBatchedTokens', 'merged', `must be at least maxNumSeqs (${c.maxNumSeqs})`);
  if (c.backend === 'gpu') invalid('backend', 'merged', 'gpu: this build has no CUDA backend; use cpu or auto');
  return Object.freeze(c);
}

export function configUsage(): string {
  return 'weft serve options (env WEFT_<KEY> works too):\n' + (Object.entries(KEYS) as [string, KeySpec][])
    .map(([k, s]) => `  --${flagName(k)}  ${envName(k)}  ${s.help} (default ${JSON.stringify(DEFAULTS[k as ConfigKey])})`).join('\n');
}

// auto → gpu when the native layer sees a CUDA device, else cpu. This build runs CPU only.
export function resolveBackend(backend: Config['backend'], cudaDeviceCount: number): 'cpu' | 'gpu' {
  if (backend === 'cpu') return 'cpu';
  if (cudaDeviceCount > 0) return 'gpu';
  if (backend === 'gpu') throw new WeftError('WEFT_ERR_CONFIG_INVALID', 'config key backend: gpu requested but no GPU is visible');
  return 'cpu';
}

// What the effective config prints at startup: keys are masked.
export function describeConfig(c: Readonly<Config>): Record<string, unknown> {
  return { ...c, apiKeys: c.apiKeys.map((k) => `${k.slice(0, 2)}…(${k.length})`) };
}

// ---- slices ----

export const serverSlice = (c: Readonly<Config>) => Object.freeze({
  port: c.port, host: c.host, apiKeys: c.apiKeys, cors: c.cors, bodyLimit: c.bodyLimit,
  requestTimeoutMs: c.requestTimeoutMs, shutdownTimeoutMs: c.shutdownTimeoutMs, logLevel: c.logLevel,
});
export type ServerConfig = ReturnType<typeof serverSlice>;

export const engineSlice = (c: Readonly<Config>) => Object.freeze({
  model: c.model, backend: c.backend, dtype: c.dtype, numInstances: c.numInstances, numThreads: c.numThreads,
  kvCacheBlocks: c.kvCacheBlocks, kvDtype: c.kvDtype, blockSize: c.blockSize,
});

// maxModelLen 0 → the model's context.
export const schedulerSlice = (c: Readonly<Config>, modelMaxPositions: number) => Object.freeze({
  maxNumBatchedTokens: c.maxNumBatchedTokens, maxNumSeqs: c.maxNumSeqs, maxNumWaiting: c.maxNumWaiting,
  maxModelLen: c.maxModelLen === 0 ? modelMaxPositions : Math.min(c.maxModelLen, modelMaxPositions),
});

export const generationSlice = (c: Readonly<Config>) => Object.freeze({
  maxPromptTokens: c.maxPromptTokens, requestTimeoutMs: c.requestTimeoutMs,
});
