// One native engine instance (a KV cache, threads, sampling state) over a model whose weights
// are shared by every instance in the process.
import { realpathSync } from 'node:fs';

import { loadModelSpec } from '../model/load.js';
import type { ModelSpec } from '../model/types.js';
import { ISA_IDS, loadNative, toNativeModelSpec, type EngineHandle, type IsaName, type KvDtype, type NativeStepInput,
  type NativeStepOutput, type WeightDtype } from './binding.js';

export interface EngineInstanceOptions {
  modelPath: string;
  dtype: WeightDtype;
  numThreads: number;
  numKvBlocks: number;
  blockSize: number;
  isa?: IsaName;          // default: the best the CPU has
  kvDtype?: KvDtype;      // default auto: f32 KV with f32 weights, f16 KV with int8 weights
}

export class EngineInstance {
  readonly spec: ModelSpec;
  readonly numKvBlocks: number;
  readonly blockSize: number;
  readonly isa: IsaName;
  readonly kvDtype: 'f32' | 'f16';
  readonly weightBytes: number;
  #handle: EngineHandle | null;

  private constructor(spec: ModelSpec, handle: EngineHandle, weightBytes: number) {
    const info = loadNative().engineInfo(handle);
    this.spec = spec;
    this.#handle = handle;
    this.numKvBlocks = info.numKvBlocks;
    this.blockSize = info.blockSize;
    this.isa = info.isa;
    this.kvDtype = info.kvDtype;
    this.weightBytes = weightBytes;
  }

  static async open(o: EngineInstanceOptions, spec?: ModelSpec): Promise<EngineInstance> {
    const modelSpec = spec ?? (await loadModelSpec(o.modelPath));
    const native = loadNative();
    const key = realpathSync(o.modelPath);
    const model = native.loadModel(toNativeModelSpec(modelSpec, o.dtype, key));
    const handle = native.createEngine(model.handle, {
      backend: 'cpu', numThreads: o.numThreads, numKvBlocks: o.numKvBlocks, blockSize: o.blockSize,
      isa: o.isa ? ISA_IDS[o.isa] : -1, kvDtype: o.kvDtype ?? 'auto',
    });
    return new EngineInstance(modelSpec, handle, model.weightBytes);
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
