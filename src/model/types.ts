// What a model is, once its files are read: a normalized config, where each weight lives on
// disk, and the tokenizer. The native engine memory-maps the files named here.

export type TensorDType = 'F32' | 'F16' | 'BF16' | 'Q8_0' | 'I8';

// What `--dtype auto` follows: a file of Q8_0 matrices, a bf16 checkpoint, or other floats.
export type CheckpointKind = 'q8_0' | 'bf16' | 'float';

export interface TensorRef {
  file: string;          // absolute path
  offset: number;        // absolute byte offset of the data in the file
  byteLength: number;
  dtype: TensorDType;
  shape: number[];       // HF orientation: [out_features, in_features] for matrices
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
  qkNorm: boolean;       // Qwen3: RMSNorm over each q and k head (weights [headDim]) before RoPE
  bosTokenId: number | null;
  eosTokenIds: number[];
}

export interface ModelSpec {
  format: 'hf' | 'gguf';
  path: string;                       // the directory or .gguf file given
  config: ModelConfig;
  // Canonical HF names: model.embed_tokens.weight, model.layers.N.self_attn.{q,k,v,o}_proj.weight
  // (+ .bias for q/k/v), model.layers.N.self_attn.{q,k}_norm.weight (qkNorm), model.layers.N.mlp.{gate,up,down}_proj.weight,
  // model.layers.N.{input,post_attention}_layernorm.weight, model.norm.weight, lm_head.weight.
  // Pre-quantized I8 matrices come with a sibling F32 `<name>_scale` ([out] per row).
  tensors: Record<string, TensorRef>;
  // GGUF llama files store q/k rows permuted for interleaved RoPE; the engine un-permutes them.
  ropeInterleaved: boolean;
  tokenizerJson: string;               // a HF tokenizers JSON document
  chatTemplate: string | null;
  generationDefaults: { temperature?: number; topP?: number; topK?: number };
}

// Q8_0 when the layers' projections are stored Q8_0 (llama.cpp keeps some small tensors in F32
// in such files), bf16 when the embedding is, else float.
export function checkpointKind(spec: ModelSpec): CheckpointKind {
  if (spec.tensors['model.layers.0.self_attn.q_proj.weight']?.dtype === 'Q8_0') return 'q8_0';
  return spec.tensors['model.embed_tokens.weight']?.dtype === 'BF16' ? 'bf16' : 'float';
}
