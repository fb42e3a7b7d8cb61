// One native engine instance over a model whose weights are shared by every instance in the
// process: on the CPU a KV cache, threads and sampling state; on a GPU the same on one CUDA
// stream, with the weights uploaded once per device.
import { realpathSync } from 'node:fs';

import { loadModelSpec } from '../model/load.js';
import type { ModelSpec } from '../model/types.js';
import {
  ISA_IDS,
  loadNative,
  toNativeModelSpec,
  type EngineHandle,
  type IsaName,
  type KvDtype,
  type KvElement,
  type NativeStepInput,
  type NativeStepOutput,
  type WeightDtype,
} from './binding.js';

export interface EngineInstanceOptions {
  modelPath: string;
  dtype: WeightDtype; // cpu: f32 | int8 | quant; gpu: f16 | bf16 | int8
  numThreads: number;
  numKvBlocks: number; // gpu: used when kvCacheFraction is 0
  blockSize: number;
  isa?: IsaName; // default: the best the CPU has
  kvDtype?: KvDtype; // cpu only; default auto: the engine's rule (cpuKvDtype)
  backend?: 'cpu' | 'gpu';
  device?: number; // gpu: CUDA device index
  kvCacheFraction?: number; // gpu: share of the free device memory the KV cache takes (0: numKvBlocks)
  maxNumTokens?: number; // gpu: tokens per step the workspaces are sized for
  maxNumSeqs?: number; // gpu: sequences per step
  maxContextLen?: number; // gpu: longest context (0: the model's)
  cudaGraphs?: boolean; // gpu: decode steps replay captured graphs (default true)
  maxGrammarHosts?: number; // threads that compile constraints and hold matchers (default MAX_GRAMMAR_HOSTS, 4)
}

export class EngineInstance {
  readonly spec: ModelSpec;
  readonly numKvBlocks: number;
  readonly blockSize: number;
  readonly isa: string; // the CPU ISA, or the CUDA device
  readonly kvDtype: KvElement;
  readonly kvCacheBytes: number;
  readonly backend: 'cpu' | 'gpu';
  readonly weightBytes: number; // resident
  readonly tokenWeightBytes: number; // read by one decode step at batch 1 (the kernels may skip some resident bytes)
  #handle: EngineHandle | null;

  private constructor(spec: ModelSpec, handle: EngineHandle, weightBytes: number, backend: 'cpu' | 'gpu') {
    const info = loadNative().engineInfo(handle);
    this.spec = spec;
    this.#handle = handle;
    this.numKvBlocks = info.numKvBlocks;
    this.blockSize = info.blockSize;
    this.isa = info.isa;
    this.kvDtype = info.kvDtype;
    this.kvCacheBytes = info.kvCacheBytes;
    this.weightBytes = weightBytes;
    this.tokenWeightBytes = info.tokenWeightBytes;
    this.backend = backend;
  }

  static async open(o: EngineInstanceOptions, spec?: ModelSpec): Promise<EngineInstance> {
    const modelSpec = spec ?? (await loadModelSpec(o.modelPath));
    const native = loadNative();
    const key = realpathSync(o.modelPath);
    const backend = o.backend ?? 'cpu';
    const model = native.loadModel(toNativeModelSpec(modelSpec, o.dtype, key, backend === 'gpu' ? 'cuda' : 'cpu'));
    const handle = native.createEngine(model.handle, {
      backend: backend === 'gpu' ? 'cuda' : 'cpu',
      numThreads: o.numThreads,
      numKvBlocks: o.numKvBlocks,
      blockSize: o.blockSize,
      isa: o.isa ? ISA_IDS[o.isa] : -1,
      kvDtype: o.kvDtype ?? 'auto',
      device: o.device ?? 0,
      kvCacheFraction: o.kvCacheFraction ?? 0,
      maxNumTokens: o.maxNumTokens ?? 2048,
      maxNumSeqs: o.maxNumSeqs ?? 256,
      maxContextLen: o.maxContextLen ?? 0,
      cudaGraphs: o.cudaGraphs ?? true,
    });
    return new EngineInstance(modelSpec, handle, model.weightBytes, backend);
  }

  step(input: NativeStepInput): NativeStepOutput {
    if (!this.#handle) throw new Error('engine instance is closed');
    return loadNative().engineStep(this.#handle, input);
  }

  close(): void {
    if (this.#handle) loadNative().engineClose(this.#handle);
    this.#handle = null;
  }
}
