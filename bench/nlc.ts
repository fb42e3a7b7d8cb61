// node-llama-cpp, as bench/llamacpp/install.sh installs it: where it lives, the part of its API
// that weft's benches and tests call, and the one way they load it (CPU only, never building).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { repoRoot } from './serve/spawn.js';

export const NLC_DIR = join(repoRoot(), 'bench', 'llamacpp');
const ENTRY = join(NLC_DIR, 'node_modules', 'node-llama-cpp', 'dist', 'index.js');

// Why a test or bench that needs it cannot run, or false when it can.
export const NO_NLC = existsSync(ENTRY) ? false : 'node-llama-cpp is not installed (sh bench/llamacpp/install.sh)';

export interface NlcSequence {
  // Greedy ids after `tokens` (temperature 0 by default); a token passed to next() is evaluated
  // instead of the generator's own choice.
  evaluate(tokens: number[]): AsyncGenerator<number, void, number | undefined>;
  evaluateWithMetadata(
    tokens: number[],
    meta: { probabilities: true },
    options?: Record<string, unknown>,
  ): AsyncGenerator<{ token: number; probabilities: Map<number, number> }>;
  controlledEvaluate(input: [number, { generateNext: { token: true } }][]): Promise<({ next: { token?: number | null } } | undefined)[]>;
}

export interface NlcContext {
  getSequence(): NlcSequence;
  dispose(): Promise<void>;
}

export interface NlcEmbeddingContext {
  // the final-normed hidden state of the input's last token (a model without pooling_type), or the pooled one
  getEmbeddingFor(input: number[] | string): Promise<{ vector: readonly number[] }>;
  dispose(): Promise<void>;
}

export interface NlcModel {
  createContext(options: Record<string, unknown>): Promise<NlcContext>;
  createEmbeddingContext(options: Record<string, unknown>): Promise<NlcEmbeddingContext>;
  dispose(): Promise<void>;
}

export interface NlcLlama {
  loadModel(options: { modelPath: string; gpuLayers: number }): Promise<NlcModel>;
  dispose(): Promise<void>;
}

// Directories on LD_LIBRARY_PATH that hold a llama.cpp build's shared libraries. A process that
// loads node-llama-cpp with one of them there loads those instead of its own (the search path
// comes before the addon's RUNPATH): the two builds' ABIs differ, and the heap was seen corrupted.
export function foreignLlamaLibraryDirs(env: NodeJS.ProcessEnv): string[] {
  return (env.LD_LIBRARY_PATH ?? '').split(':').filter((d) => d && ['libllama.so', 'libggml.so'].some((f) => existsSync(join(d, f))));
}

// The environment for a child that loads node-llama-cpp: without such directories.
export function envWithoutLlamaLibraries(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const foreign = new Set(foreignLlamaLibraryDirs(env));
  const path = (env.LD_LIBRARY_PATH ?? '').split(':').filter((d) => d && !foreign.has(d));
  const { LD_LIBRARY_PATH: _, ...rest } = env;
  return path.length > 0 ? { ...rest, LD_LIBRARY_PATH: path.join(':') } : rest;
}

// llama.cpp on the CPU with its prebuilt binary; refuses a process whose library path would make
// node-llama-cpp load another build's libraries.
export async function loadLlama(): Promise<NlcLlama> {
  if (NO_NLC) throw new Error(NO_NLC);
  const foreign = foreignLlamaLibraryDirs(process.env);
  if (foreign.length > 0)
    throw new Error(`LD_LIBRARY_PATH holds another llama.cpp build (${foreign.join(', ')}): node-llama-cpp would load its libraries; unset it`);
  const nlc = (await import(pathToFileURL(ENTRY).href)) as { getLlama(o: Record<string, unknown>): Promise<NlcLlama> };
  return nlc.getLlama({ gpu: false, build: 'never', maxThreads: 1, logLevel: 'error' });
}
