// The Llama configs the GGUF writer tests synthesize: the benchmarks' 110M shape, and small ones
// built on the same tokens, norm and rope settings.
import { SHAPES } from '../../bench/shapes.js';

export const SHAPE_110M = SHAPES['110m'];

export const LLAMA_BASE = {
  architectures: ['LlamaForCausalLM'],
  model_type: 'llama',
  max_position_embeddings: 256,
  rms_norm_eps: 1e-5,
  rope_theta: 10000,
  bos_token_id: 1,
  eos_token_id: 2,
};

// rows of 256 and 512, so every type is used as itself; untied, so the embedding takes the base type
export const SMALL = {
  ...LLAMA_BASE,
  hidden_size: 256,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  intermediate_size: 512,
  vocab_size: 512,
  tie_word_embeddings: false,
};
