// The model files both fuzzers start from: the real stories260K (HF directory, GGUF, and its
// int8 quantization) and small synthetic models of every architecture, format and dtype weft
// reads (Llama with llama3 rope scaling, Qwen2 with q/k/v biases and tied embeddings, Qwen3 with
// q/k norms and linear rope scaling; GGUF f32/f16/q8_0, HF f32/f16 and int8), and GGUF files in
// GGML block types: the tiny Llama in Q4_0 and Q5_1, and one with rows of 256 in Q4_K_M (Q4_K
// and Q6_K; smaller rows fall back to 32-value blocks, as llama.cpp's rules say).
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { quantizeModel } from '../../src/model/quantize.js';
import { synthesizeModel } from '../../src/model/synth.js';

const TINY = {
  hidden_size: 32,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 1,
  intermediate_size: 64,
  vocab_size: 260,
  max_position_embeddings: 64,
  rms_norm_eps: 1e-5,
};
const CONFIGS: Record<string, Record<string, unknown>> = {
  llama: {
    ...TINY,
    architectures: ['LlamaForCausalLM'],
    tie_word_embeddings: false,
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 16, original_max_position_embeddings: 2048 },
  },
  qwen2: { ...TINY, architectures: ['Qwen2ForCausalLM'], tie_word_embeddings: true },
  qwen3: { ...TINY, architectures: ['Qwen3ForCausalLM'], head_dim: 16, tie_word_embeddings: false, rope_scaling: { type: 'linear', factor: 2 } },
};
const FORMATS = [
  ['gguf', 'f32'],
  ['gguf', 'f16'],
  ['gguf', 'q8_0'],
  ['hf', 'f32'],
  ['hf', 'f16'],
] as const;

// Writes `path` once, through a temporary name, so an interrupted run leaves no half-written seed.
async function once(path: string, write: (tmp: string) => Promise<void>): Promise<string> {
  if (existsSync(path)) return path;
  const tmp = `${path}.partial`;
  rmSync(tmp, { recursive: true, force: true });
  await write(tmp);
  renameSync(tmp, path);
  return path;
}

// Paths of the seed models (.gguf files and HF directories), written under dir once.
export async function seedModels(dir: string, realModelDir: string | null): Promise<string[]> {
  mkdirSync(dir, { recursive: true });
  const out: string[] = [];
  for (const [arch, config] of Object.entries(CONFIGS)) {
    for (const [format, dtype] of FORMATS) {
      const path = join(dir, `${arch}-${dtype}${format === 'gguf' ? '.gguf' : ''}`);
      out.push(await once(path, (tmp) => synthesizeModel({ config, out: tmp, format, dtype, seed: 1 })));
    }
    out.push(await once(join(dir, `${arch}-int8`), (tmp) => quantizeModel(join(dir, `${arch}-f32`), tmp)));
  }
  for (const type of ['q4_0', 'q5_1'] as const)
    out.push(
      await once(join(dir, `llama-${type}.gguf`), (tmp) => synthesizeModel({ config: CONFIGS.llama, out: tmp, format: 'gguf', type, seed: 1 })),
    );
  const rows256 = { ...CONFIGS.llama, hidden_size: 256, intermediate_size: 256, num_attention_heads: 2, num_key_value_heads: 2 };
  out.push(
    await once(join(dir, 'llama256-q4_k_m.gguf'), (tmp) => synthesizeModel({ config: rows256, out: tmp, format: 'gguf', type: 'q4_k_m', seed: 1 })),
  );
  if (realModelDir && existsSync(realModelDir)) {
    out.push(realModelDir, join(realModelDir, 'stories260K.gguf'));
    out.push(await once(join(dir, 'stories260K-int8'), (tmp) => quantizeModel(realModelDir, tmp)));
  }
  return out;
}
