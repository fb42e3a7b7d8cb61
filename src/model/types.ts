// What a model is, once its files are read: a normalized config, where each weight lives on
// disk, and the tokenizer. The native engine memory-maps the files named here.

// Q4_0 … Q6_K: GGML block types, read as stored (native/src/quant_blocks.h).
export type TensorDType = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'I8' | 'Q4_0' | 'Q4_1' | 'Q5_0' | 'Q5_1' | 'Q2_K' | 'Q3_K' | 'Q4_K' | 'Q5_K' | 'Q6_K';
export const BLOCK_DTYPES: readonly TensorDType[] = ['Q4_0', 'Q4_1', 'Q5_0', 'Q5_1', 'Q2_K', 'Q3_K', 'Q4_K', 'Q5_K', 'Q6_K'];
// Values per block of the GGML types; their tensors are weight matrices only (rows a whole number of blocks).
export const isQuantizedDtype = (d: TensorDType): boolean => d === 'Q8_0' || BLOCK_DTYPES.includes(d);

// What `--dtype auto` follows: a file with GGML block matrices (Q4_K_M, Q6_K, Q4_0 …), a file of
// Q8_0 matrices, a bf16 checkpoint, or other floats.
export type CheckpointKind = 'blocks' | 'q8_0' | 'bf16' | 'float';

export interface TensorRef {
  file: string; // absolute path
  offset: number; // absolute byte offset of the data in the file
  byteLength: number;
  dtype: TensorDType;
  shape: number[]; // HF orientation: [out_features, in_features] for matrices
}

export type RopeScaling =
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number }
  | { type: 'linear'; factor: number };

export interface ModelConfig {
  architecture: 'llama' | 'qwen2' | 'qwen3';
  dim: number;
  numLayers: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  ffnDim: number;
  vocabSize: number;
  rmsEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  maxPositions: number;
  tieEmbeddings: boolean;
  qkvBias: boolean;
  qkNorm: boolean; // Qwen3: RMSNorm over each q and k head (weights [headDim]) before RoPE
  bosTokenId: number | null;
  eosTokenIds: number[];
}

// How an embedding model pools its hidden states, as its files say (src/model/pooling.ts); null:
// they do not say. CLS pooling is refused later: in a causal LM the first position sees only itself.
export type Pooling = 'last' | 'mean';
export interface PoolingConfig {
  pooling: Pooling | 'cls' | null;
  normalize: boolean | null;
}

export interface ModelSpec {
  format: 'hf' | 'gguf';
  path: string; // the directory or .gguf file given
  config: ModelConfig;
  // Canonical HF names: model.embed_tokens.weight, model.layers.N.self_attn.{q,k,v,o}_proj.weight
  // (+ .bias for q/k/v), model.layers.N.self_attn.{q,k}_norm.weight (qkNorm), model.layers.N.mlp.{gate,up,down}_proj.weight,
  // model.layers.N.{input,post_attention}_layernorm.weight, model.norm.weight, lm_head.weight.
  // Pre-quantized I8 matrices come with a sibling F32 `<name>_scale` ([out] per row).
  tensors: Record<string, TensorRef>;
  // GGUF llama files store q/k rows permuted for interleaved RoPE; the engine un-permutes them.
  ropeInterleaved: boolean;
  tokenizerJson: string; // a HF tokenizers JSON document
  chatTemplate: string | null;
  generationDefaults: { temperature?: number; topP?: number; topK?: number };
  pooling: PoolingConfig; // read with the rest of the files, for when the model serves embeddings
}

// blocks when any matrix is stored in a GGML block type (a Q4_K_M file mixes several, with Q8_0 or
// F16 fallbacks for odd row lengths), Q8_0 when the layers' projections are stored Q8_0
// (llama.cpp keeps some small tensors in F32 in such files), bf16 when the embedding is, else float.
export function checkpointKind(spec: ModelSpec): CheckpointKind {
  if (Object.values(spec.tensors).some((t) => BLOCK_DTYPES.includes(t.dtype))) return 'blocks';
  if (spec.tensors['model.layers.0.self_attn.q_proj.weight']?.dtype === 'Q8_0') return 'q8_0';
  return spec.tensors['model.embed_tokens.weight']?.dtype === 'BF16' ? 'bf16' : 'float';
}
