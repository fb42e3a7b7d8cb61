// How a llama-family model is laid out in a GGUF file, as llama.cpp's convert_hf_to_gguf.py
// writes it: the metadata keys, llama's permuted q/k rows, Llama 3.1's rope factors. synth and
// quantize (from a HF directory) both write through these.
import { GGUF_TYPE, type GgufEntry } from './gguf.js';
import { ggufTokenizerEntries, type GgufVocab } from './gguf-tokenizer.js';
import { llamaFileType, type GgufFileType } from './quant-mix.js';
import type { ModelConfig } from './types.js';

// llama.cpp's q/k row order for llama: GGUF row (head, j, s) holds HF row (head, s, j).
function permutedRow(numHeads: number, rows: number): (r: number) => number {
  const hd = rows / numHeads,
    half = hd / 2;
  return (g) => {
    const h = Math.floor(g / hd),
      i = g % hd;
    return h * hd + (i & 1) * half + (i >> 1);
  };
}

// llama.cpp keeps Llama 3.1 rope scaling as per-dimension factors (convert_hf_to_gguf.py).
export function ropeFreqFactors(c: ModelConfig): Float32Array | null {
  const s = c.ropeScaling;
  if (s?.type !== 'llama3') return null;
  const out = new Float32Array(c.headDim / 2);
  for (let i = 0; i < out.length; i++) {
    const freq = 1 / Math.pow(c.ropeTheta, Math.fround((2 * i) / c.headDim));
    const wavelen = (2 * Math.PI) / freq;
    const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    out[i] =
      wavelen < s.originalMaxPositions / s.highFreqFactor
        ? 1
        : wavelen > s.originalMaxPositions / s.lowFreqFactor
          ? s.factor
          : 1 / ((1 - smooth) / s.factor + smooth);
  }
  return out;
}

// general.quantization_version 2: the K-quant and legacy block layouts of today's ggml (GGML_QNT_VERSION).
export function ggufMetadata(c: ModelConfig, vocab: GgufVocab, fileType: GgufFileType, template: string | null, name: string): GgufEntry[] {
  const a = c.architecture;
  const u32 = (key: string, value: number): GgufEntry => ({ key: `${a}.${key}`, type: GGUF_TYPE.U32, value });
  const f32 = (key: string, value: number): GgufEntry => ({ key: `${a}.${key}`, type: GGUF_TYPE.F32, value });
  return [
    { key: 'general.architecture', type: GGUF_TYPE.STRING, value: a },
    { key: 'general.name', type: GGUF_TYPE.STRING, value: name },
    { key: 'general.file_type', type: GGUF_TYPE.U32, value: llamaFileType(fileType) },
    ...(fileType === 'f32' || fileType === 'f16' ? [] : [{ key: 'general.quantization_version', type: GGUF_TYPE.U32, value: 2 }]),
    u32('vocab_size', c.vocabSize),
    u32('context_length', c.maxPositions),
    u32('embedding_length', c.dim),
    u32('block_count', c.numLayers),
    u32('feed_forward_length', c.ffnDim),
    u32('attention.head_count', c.numHeads),
    u32('attention.head_count_kv', c.numKvHeads),
    u32('rope.dimension_count', c.headDim),
    ...(c.headDim * c.numHeads !== c.dim ? [u32('attention.key_length', c.headDim), u32('attention.value_length', c.headDim)] : []),
    f32('attention.layer_norm_rms_epsilon', c.rmsEps),
    f32('rope.freq_base', c.ropeTheta),
    ...(c.ropeScaling?.type === 'linear'
      ? [{ key: `${a}.rope.scaling.type`, type: GGUF_TYPE.STRING, value: 'linear' }, f32('rope.scaling.factor', c.ropeScaling.factor)]
      : []),
    ...ggufTokenizerEntries(vocab),
    ...(template ? [{ key: 'tokenizer.chat_template', type: GGUF_TYPE.STRING, value: template }] : []),
  ];
}

// The source row each GGUF row holds: llama's q/k matrices are permuted, everything else is in order.
export function ggufRowOrder(c: ModelConfig, hfName: string, numRows: number): ((r: number) => number) | undefined {
  if (c.architecture !== 'llama') return undefined;
  const heads = hfName.endsWith('q_proj.weight') ? c.numHeads : hfName.endsWith('k_proj.weight') ? c.numKvHeads : 0;
  return heads ? permutedRow(heads, numRows) : undefined;
}
