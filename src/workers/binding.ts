// The whole native surface, typed. Handles are branded so a model handle cannot be passed
// where an engine handle is expected. Native errors carry a WEFT_ERR_* code and are rebuilt
// here as WeftError.
import { createRequire } from 'node:module';

import { ERRORS, WeftError, type ErrorCode } from '../errors.js';
import type { ModelConfig, ModelSpec } from '../model/types.js';
import { findInPackage } from '../package-path.js';
import type { SamplingArrays } from '../sampling.js';

declare const modelBrand: unique symbol;
declare const engineBrand: unique symbol;
export type ModelHandle = { readonly [modelBrand]: true };
export type EngineHandle = { readonly [engineBrand]: true };

// quant (CPU): every matrix in its file's type (GGUF blocks kept as blocks).
export type WeightDtype = 'f32' | 'int8' | 'f16' | 'bf16' | 'quant';
export type IsaName = 'scalar' | 'avx2' | 'avx512';
export const ISA_IDS: Record<IsaName, number> = { scalar: 0, avx2: 1, avx512: 2 };

export interface NativeModelSpec {
  key: string;
  weightDtype: WeightDtype;
  target: 'cpu' | 'cuda'; // weight layout: CPU packed panels, or CUDA staging
  ropeInterleaved: boolean;
  config: ModelConfig;
  tensors: { name: string; file: string; offset: number; byteLength: number; dtype: string; shape: number[] }[];
}

export interface NativeEngineOptions {
  backend?: 'cpu' | 'cuda';
  numThreads: number;
  numKvBlocks: number;
  blockSize: number;
  isa?: number; // -1 or absent: best available
  device?: number;
  kvDtype?: KvDtype; // CPU only; auto: the engine's rule (cpuKvDtype)
  kvCacheFraction?: number; // CUDA: KV cache = this share of free device memory (0: numKvBlocks)
  maxNumTokens?: number; // CUDA: workspace sizing
  maxNumSeqs?: number;
  maxContextLen?: number;
  cudaGraphs?: boolean;
}

export type KvDtype = 'auto' | 'f32' | 'f16' | 'int8';
// What an engine's cache holds (the GPU: its activation type).
export type KvElement = 'f32' | 'f16' | 'bf16' | 'int8';

// One batched step: T tokens of N sequences, packed (see native/include/weft_engine.h).
// The sampling arrays (one per field of src/sampling.ts, and the seeds) are part of every step.
export interface NativeStepInput extends SamplingArrays {
  numTokens: number;
  numSeqs: number;
  maxBlocksPerSeq: number;
  tokenIds: Int32Array;
  positions: Int32Array;
  slotMapping: Int32Array;
  seqIds: Int32Array;
  queryStart: Int32Array;
  contextLens: Int32Array;
  promptLens: Int32Array;
  blockTables: Int32Array;
  doSample: Uint8Array;
  numBlockCopies: number;
  blockCopies?: Int32Array;
  numForks: number;
  forks?: Int32Array;
  numRelease: number;
  releaseSeqIds?: Int32Array;
  numHistory: number;
  historySeqIds?: Int32Array;
  historyOffsets?: Int32Array;
  historyTokens?: Int32Array;
  returnLogits: boolean;
  numLogitRows?: number; // only these LM-head rows are needed (the rest may be left -inf)
  logitRows?: Int32Array;
  // Token masks (structured output): sequence i may only sample the tokens of row maskIndex[i]
  // of tokenMasks ([numMasks][maskWords] bits, maskWords = ceil(vocab / 32)); -1: unconstrained.
  numMasks?: number;
  maskWords?: number;
  maskIndex?: Int32Array;
  tokenMasks?: Uint32Array;
  // Logit biases: sequence i adds biasValues[j] to token biasIds[j]'s logit, j in [biasOffsets[i], biasOffsets[i+1]).
  biasOffsets?: Int32Array;
  biasIds?: Int32Array;
  biasValues?: Float32Array;
  // Prompt scoring (CPU only): row t with scoreTargets[t] >= 0 gets that token's log-prob at its
  // position and the scoreTopN likeliest tokens' (the raw distribution: no mask, bias or penalty).
  scoreTargets?: Int32Array;
  scoreTopN?: number;
  hiddenRows?: Int32Array; // CPU only: these token rows' final-normed hidden states come back (embeddings)
}

export interface NativeStepOutput {
  sampled: Int32Array;
  logprobs: Float32Array;
  topN: number;
  topIds: Int32Array;
  topLogprobs: Float32Array;
  logits?: Float32Array;
  // with scoreTargets: [T] (NaN: row not scored), [T * scoreTopN] (-1 / NaN padded)
  scoredLogprobs?: Float32Array;
  scoredRanks?: Int32Array; // [T] the target's rank among the vocabulary (1 = likeliest); 0: not scored
  scoredTopIds?: Int32Array;
  scoredTopLogprobs?: Float32Array;
  hidden?: Float32Array; // with hiddenRows: [hiddenRows.length * dim]
  forwardUs: number;
  sampleUs: number;
}

export interface NativeAddon {
  loadModel(spec: NativeModelSpec): { handle: ModelHandle; weightBytes: number };
  createEngine(model: ModelHandle, options: NativeEngineOptions): EngineHandle;
  engineStep(engine: EngineHandle, input: NativeStepInput): NativeStepOutput;
  // isa: the CPU ISA, or the CUDA device's name
  engineInfo(engine: EngineHandle): {
    numKvBlocks: number;
    blockSize: number;
    isa: string;
    kvDtype: KvElement;
    kvCacheBytes: number; // the K and V caches as allocated, an int8 cache's scales included
    tokenWeightBytes: number;
  };
  engineClose(engine: EngineHandle): void;
  cpuInfo(): { isa: IsaName; supported: IsaName[] };
  cudaDeviceCount(): number;
  cudaDeviceInfo(device: number): CudaDeviceInfo;
  // the model load in progress in this process (any worker thread): bytes of its files' tensors
  loadProgress(): { bytesDone: number; bytesTotal: number; active: boolean };
  mallocTrim(): boolean; // true when glibc gave memory back to the OS
  // the CPU engine's KV element type for these weights (auto resolved by the engine's own rule)
  cpuKvDtype(weightDtype: WeightDtype, kvDtype: KvDtype): Exclude<KvElement, 'bf16'>;
  // bytes one token's K and V take in the CPU engine's cache over every layer (the engine's rule)
  cpuKvBytesPerToken(kvDtype: Exclude<KvElement, 'bf16'>, config: { numLayers: number; numKvHeads: number; headDim: number }): number;
}

export interface CudaDeviceInfo {
  name: string;
  computeCapability: string;
  smCount: number;
  totalBytes: number;
  freeBytes: number;
}

// The package root's build output, from src/ or dist/src/.
function findAddonPath(): string {
  const path = findInPackage(import.meta.url, 'build', 'Release', 'weft_native.node');
  if (path) return path;
  throw new WeftError('WEFT_ERR_ENGINE_NATIVE_LOAD', 'native addon build/Release/weft_native.node not found: run `npm install` (or `npm run build`)');
}

let addon: NativeAddon | null = null;

function rethrow(e: unknown): never {
  const code = (e as { code?: string })?.code;
  if (typeof code === 'string' && code in ERRORS) throw new WeftError(code as ErrorCode, (e as Error).message);
  throw new WeftError('WEFT_ERR_ENGINE_INTERNAL', e instanceof Error ? e.message : String(e));
}

// Every call goes through here so native errors come out typed.
function guard<A extends unknown[], R>(fn: (...a: A) => R): (...a: A) => R {
  return (...a: A) => {
    try {
      return fn(...a);
    } catch (e) {
      rethrow(e);
    }
  };
}

export function loadNative(): NativeAddon {
  if (addon) return addon;
  const path = findAddonPath();
  let raw: NativeAddon;
  try {
    raw = createRequire(import.meta.url)(path) as NativeAddon;
  } catch (e) {
    throw new WeftError('WEFT_ERR_ENGINE_NATIVE_LOAD', `cannot load ${path}: ${(e as Error).message}`);
  }
  addon = {
    loadModel: guard(raw.loadModel.bind(raw)),
    createEngine: guard(raw.createEngine.bind(raw)),
    engineStep: guard(raw.engineStep.bind(raw)),
    engineInfo: guard(raw.engineInfo.bind(raw)),
    engineClose: guard(raw.engineClose.bind(raw)),
    cpuInfo: guard(raw.cpuInfo.bind(raw)),
    cudaDeviceCount: guard(raw.cudaDeviceCount.bind(raw)),
    cudaDeviceInfo: guard(raw.cudaDeviceInfo.bind(raw)),
    loadProgress: guard(raw.loadProgress.bind(raw)),
    mallocTrim: guard(raw.mallocTrim.bind(raw)),
    cpuKvDtype: guard(raw.cpuKvDtype.bind(raw)),
    cpuKvBytesPerToken: guard(raw.cpuKvBytesPerToken.bind(raw)),
  };
  return addon;
}

export function toNativeModelSpec(spec: ModelSpec, weightDtype: WeightDtype, key: string, target: 'cpu' | 'cuda' = 'cpu'): NativeModelSpec {
  return {
    key: `${key}|${weightDtype}|${target}`,
    weightDtype,
    target,
    ropeInterleaved: spec.ropeInterleaved,
    config: spec.config,
    tensors: Object.entries(spec.tensors).map(([name, t]) => ({
      name,
      file: t.file,
      offset: t.offset,
      byteLength: t.byteLength,
      dtype: t.dtype,
      shape: t.shape,
    })),
  };
}
