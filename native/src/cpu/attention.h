// Causal attention of a packed batch over the paged KV cache (prefill chunks and decode tokens).
#pragma once
#include <cstdint>

namespace weft {

struct PagedKv {
  float* k = nullptr;  // [num_blocks][block_size][num_kv_heads][head_dim] for one layer
  float* v = nullptr;
  int block_size = 16, num_kv_heads = 0, head_dim = 0;
};

// Writes one token's k and v ([num_kv_heads * head_dim] each) into its slot.
void kv_write_f32(const PagedKv& kv, int slot, const float* k, const float* v);

// Attention output of one query token for the heads of one kv group:
// q: [heads_per_group * head_dim] (already rotated), attends to positions [0, ctx_len).
// scores: scratch of ctx_len floats. out: [heads_per_group * head_dim].
void attention_token_group_f32(const PagedKv& kv, const int32_t* block_table, int ctx_len, int kv_head,
                               const float* q, int heads_per_group, float scale, float* scores, float* out);

}  // namespace weft
