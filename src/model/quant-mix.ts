// Which ggml type each tensor gets in a GGUF file weft writes: llama.cpp's per-tensor rules
// (llama-quant.cpp, llama_tensor_get_type) for the file types weft offers, so a weft Q4_K_M file
// holds the same mix as one made by llama-quantize from the same weights: more bits where a
// model is most sensitive (the output matrix, attn_v and ffn_down on the "more bits" layers),
// and a fallback to a 32-value block type for rows whose length is not a multiple of 256.
import { QUANT_BLOCK, type QuantType } from './ggml-dequant.js';
import type { ModelConfig } from './types.js';

export const GGUF_FILE_TYPES = [
  'q4_k_m',
  'q5_k_m',
  'q6_k',
  'q4_k_s',
  'q5_k_s',
  'q3_k_l',
  'q3_k_m',
  'q3_k_s',
  'q2_k',
  'q4_0',
  'q4_1',
  'q5_0',
  'q5_1',
  'q8_0',
  'f16',
  'f32',
] as const;
export type GgufFileType = (typeof GGUF_FILE_TYPES)[number];
export type TensorType = QuantType | 'F32' | 'F16';

// general.file_type (llama_ftype) and the type most 2-D tensors get.
const FILE_TYPE: Record<GgufFileType, [ftype: number, base: TensorType]> = {
  f32: [0, 'F32'],
  f16: [1, 'F16'],
  q4_0: [2, 'Q4_0'],
  q4_1: [3, 'Q4_1'],
  q8_0: [7, 'Q8_0'],
  q5_0: [8, 'Q5_0'],
  q5_1: [9, 'Q5_1'],
  q2_k: [10, 'Q2_K'],
  q3_k_s: [11, 'Q3_K'],
  q3_k_m: [12, 'Q3_K'],
  q3_k_l: [13, 'Q3_K'],
  q4_k_s: [14, 'Q4_K'],
  q4_k_m: [15, 'Q4_K'],
  q5_k_s: [16, 'Q5_K'],
  q5_k_m: [17, 'Q5_K'],
  q6_k: [18, 'Q6_K'],
};
export const llamaFileType = (t: GgufFileType): number => FILE_TYPE[t][0];

// values per block: the GGML type table's (ggml-dequant.ts), 1 for the float types
const blockValues = (t: TensorType): number => (t === 'F32' || t === 'F16' ? 1 : QUANT_BLOCK[t][0]);
// A 256-value type on rows it cannot tile falls back to a 32-value type of about as many bits.
const FALLBACK: Partial<Record<TensorType, TensorType>> = { Q2_K: 'Q4_0', Q3_K: 'Q4_0', Q4_K: 'Q5_0', Q5_K: 'Q5_1', Q6_K: 'Q8_0' };

export interface MixTensor {
  name: string; // GGUF name (blk.N.attn_v.weight, output.weight, …)
  dims: number[]; // GGUF order: dims[0] is the row length
}

// The layers that get more bits in the _M mixes: the first and last eighth, and every third in between.
export function useMoreBits(layer: number, numLayers: number): boolean {
  const eighth = Math.floor(numLayers / 8);
  return layer < eighth || layer >= Math.floor((7 * numLayers) / 8) || (layer - eighth) % 3 === 2;
}

function fallback(type: TensorType, rowLen: number): TensorType {
  if (rowLen % blockValues(type) === 0) return type;
  const next = FALLBACK[type] ?? type;
  return rowLen % blockValues(next) === 0 ? next : 'F16';
}

// The mixes' departures from the base type (llama_tensor_get_type_impl, for dense models that are
// not Falcon): attn_v by its index among the attn_v tensors, ffn_down by layer, attn_output.
interface MixRule {
  attnV?: (i: number, n: number) => TensorType | undefined;
  ffnDown?: (layer: number, numLayers: number) => TensorType | undefined;
  attnOutput?: TensorType;
}
function mixRule(fileType: GgufFileType, gqa: number): MixRule {
  const moreBits = (i: number, n: number) => (useMoreBits(i, n) ? 'Q6_K' : undefined);
  switch (fileType) {
    case 'q2_k':
      return { attnV: () => (gqa >= 4 ? 'Q4_K' : 'Q3_K'), ffnDown: () => 'Q3_K', attnOutput: 'Q3_K' };
    case 'q3_k_m':
      return { attnV: (i) => (i < 2 ? 'Q5_K' : 'Q4_K'), ffnDown: (l, n) => (l < Math.floor(n / 16) ? 'Q5_K' : 'Q4_K'), attnOutput: 'Q4_K' };
    case 'q3_k_l':
      return { attnV: () => 'Q5_K', ffnDown: () => 'Q5_K', attnOutput: 'Q5_K' };
    case 'q4_k_s':
      return { attnV: (i) => (i < 4 ? 'Q5_K' : undefined), ffnDown: (l, n) => (l < Math.floor(n / 8) ? 'Q5_K' : undefined) };
    case 'q4_k_m':
    case 'q5_k_m':
      return { attnV: moreBits, ffnDown: moreBits };
    default:
      return {};
  }
}

const layerOf = (name: string) => Number(/^blk\.(\d+)\./.exec(name)?.[1] ?? -1);

// A map from tensor name to type for the whole list. Tensors are seen as llama.cpp's loader
// orders them (by layer), which is what its attn_v counter relies on; `config` tells the layer
// count and whether llama.cpp would call the model a 70B (whose attn_v gets Q5_K over Q3_K or Q4_K).
export function chooseTensorTypes(
  fileType: GgufFileType,
  tensors: MixTensor[],
  config: Pick<ModelConfig, 'architecture' | 'numLayers' | 'numHeads' | 'numKvHeads'>,
): Map<string, TensorType> {
  const base = FILE_TYPE[fileType][1];
  const tied = !tensors.some((t) => t.name === 'output.weight');
  const is70B =
    config.numLayers === 80 && (config.architecture === 'qwen2' || (config.architecture === 'llama' && config.numHeads !== config.numKvHeads));
  const attnV = tensors
    .filter((t) => t.name.includes('attn_v.weight'))
    .map((t) => t.name)
    .sort((a, b) => layerOf(a) - layerOf(b));
  const rule = mixRule(fileType, config.numHeads / config.numKvHeads);
  const out = new Map<string, TensorType>();
  for (const t of tensors) {
    // only matrices are quantized; norms (and 1-D tensors like rope_freqs) stay F32 as convert_hf_to_gguf writes them
    if (t.dims.length < 2 || !t.name.endsWith('weight') || t.name.includes('_norm.weight')) {
      out.set(t.name, 'F32');
      continue;
    }
    if (base === 'F32' || base === 'F16') {
      out.set(t.name, base);
      continue;
    }
    const rowLen = t.dims[0];
    let type: TensorType = base;
    if (t.name === 'output.weight' || (tied && t.name === 'token_embd.weight'))
      type = rowLen % blockValues(base) !== 0 || base === 'Q8_0' ? 'Q8_0' : 'Q6_K';
    else if (t.name.includes('attn_v.weight')) {
      type = rule.attnV?.(attnV.indexOf(t.name), attnV.length) ?? base;
      if (is70B && (type === 'Q3_K' || type === 'Q4_K')) type = 'Q5_K';
    } else if (t.name.includes('ffn_down')) type = rule.ffnDown?.(layerOf(t.name), config.numLayers) ?? base;
    else if (t.name.includes('attn_output')) type = rule.attnOutput ?? base;
    out.set(t.name, fallback(type, rowLen));
  }
  return out;
}
