// Causal attention of a packed batch over the paged KV cache (prefill chunks and decode tokens).
// The cache holds fp32 or fp16 values (fp16 halves the memory each decode step streams).
#pragma once
#include <cstddef>
#include <cstdint>

namespace weft {

struct PagedKv {
  // [num_blocks][num_kv_heads][block_size][head_dim] for one layer: the block's slots of one
  // head are contiguous, so attention streams them.
  void* k = nullptr;
  void* v = nullptr;
  bool f16 = false;
  int block_size = 16, num_kv_heads = 0, head_dim = 0;
};

// Element offset of (slot, kv head) in a layer's cache; slot = block * block_size + offset.
inline size_t kv_offset(const PagedKv& kv, int slot, int kv_head) {
  const int b = slot / kv.block_size, s = slot % kv.block_size;
  return ((size_t(b) * kv.num_kv_heads + kv_head) * kv.block_size + s) * kv.head_dim;
}
// Element offset of position p of a sequence (through its block table).
inline size_t kv_pos_offset(const PagedKv& kv, const int32_t* block_table, int p, int kv_head) {
  return kv_offset(kv, block_table[p / kv.block_size] * kv.block_size + p % kv.block_size, kv_head);
}

// Writes one token's k and v ([num_kv_heads * head_dim] each) into its slot (scalar reference).
void kv_write_ref(const PagedKv& kv, int slot, const float* k, const float* v);

// Attention output of one query token for the heads of one kv group (scalar reference):
// q: [heads_per_group * head_dim] (already rotated), attends to positions [0, ctx_len).
// scores: scratch of ctx_len floats. out: [heads_per_group * head_dim].
void attention_token_group_ref(const PagedKv& kv, const int32_t* block_table, int ctx_len, int kv_head, const float* q, int heads_per_group,
                               float scale, float* scores, float* out);

}  // namespace weft
