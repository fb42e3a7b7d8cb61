// The small Qwen3 config the qwen3 tests synthesize: head_dim 32 ≠ hidden 64 / 4 heads, tied
// embeddings, and the stories260K tokenizer's 512 ids so that tokenizer can be reused.
export const QWEN3 = {
  architectures: ['Qwen3ForCausalLM'],
  model_type: 'qwen3',
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 32,
  intermediate_size: 128,
  vocab_size: 512,
  max_position_embeddings: 256,
  rms_norm_eps: 1e-6,
  rope_theta: 10000,
  tie_word_embeddings: true,
  attention_bias: false,
  hidden_act: 'silu',
  bos_token_id: 1,
  eos_token_id: 2,
};
