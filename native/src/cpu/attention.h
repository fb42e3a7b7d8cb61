// Causal attention of a packed batch over the paged KV cache (prefill chunks and decode tokens).
// The cache holds fp32, fp16 or int8 values (fp16 halves the memory each decode step streams,
// int8 with its scales nearly halves it again).
#pragma once
#include <cstddef>
#include <cstdint>

namespace weft {

struct PagedKv {
  // [num_blocks][num_kv_heads][block_size][head_dim] for one layer: the block's slots of one
  // head are contiguous, so attention streams them. With k_by_dim (the CPU engine's cache) a
  // block's K of one head is stored by dimension instead, [head_dim][block_size]: a vector load
  // then holds one dimension of consecutive positions, so q·k needs no horizontal sums and one
  // converted K row serves every query row of a tile. V stays by position (P·V wants its rows).
  void* k = nullptr;
  void* v = nullptr;
  bool f16 = false;
  int block_size = 16, num_kv_heads = 0, head_dim = 0;
  bool k_by_dim = false;
  // int8 cache (the CPU engine's --kv-dtype int8; f16 false): k and v hold int8 values, value =
  // int8 * scale, each scale absmax / 127 of the values it covers (as kv_write_ref rounds them).
  // K: a scale per kv_k_group(head_dim) values of a (slot, kv head), at kv_k_scale_index. V: one
  // per (slot, kv head), at kv_v_scale_index. K takes the finer scales because its error is the
  // one that shows: a few large dimensions would set the scale of a whole head's values.
  bool i8 = false;
  float* k_scale = nullptr;
  float* v_scale = nullptr;
};

// Element offset of (slot, kv head) in a layer's cache; slot = block * block_size + offset.
// For V, and for K when not k_by_dim.
inline size_t kv_offset(const PagedKv& kv, int slot, int kv_head) {
  const int b = slot / kv.block_size, s = slot % kv.block_size;
  return ((size_t(b) * kv.num_kv_heads + kv_head) * kv.block_size + s) * kv.head_dim;
}
// Element offset of position p of a sequence (through its block table).
inline size_t kv_pos_offset(const PagedKv& kv, const int32_t* block_table, int p, int kv_head) {
  return kv_offset(kv, block_table[p / kv.block_size] * kv.block_size + p % kv.block_size, kv_head);
}
// Element offset of dimension d of K at (slot, kv head), in either K layout.
inline size_t kv_k_index(const PagedKv& kv, int slot, int kv_head, int d) {
  if (!kv.k_by_dim) return kv_offset(kv, slot, kv_head) + d;
  const int b = slot / kv.block_size, s = slot % kv.block_size;
  return ((size_t(b) * kv.num_kv_heads + kv_head) * kv.head_dim + d) * kv.block_size + s;
}

// K values per scale of an int8 cache: 32, as llama.cpp's q8_0 cache, or the whole head when
// head_dim is not a multiple of 32.
inline int kv_k_group(int head_dim) {
  return head_dim % 32 == 0 ? 32 : head_dim;
}
// Index of the scale of group g of K at (slot, kv head) in k_scale: [block][kv head][group][offset],
// so one group's scales of a block's positions are contiguous (a vector of scores takes them).
inline size_t kv_k_scale_index(const PagedKv& kv, int slot, int kv_head, int g) {
  const int b = slot / kv.block_size, s = slot % kv.block_size, groups = kv.head_dim / kv_k_group(kv.head_dim);
  return ((size_t(b) * kv.num_kv_heads + kv_head) * groups + g) * kv.block_size + s;
}
// Index of V's scale at (slot, kv head) in v_scale: [block][kv head][offset].
inline size_t kv_v_scale_index(const PagedKv& kv, int slot, int kv_head) {
  const int b = slot / kv.block_size, s = slot % kv.block_size;
  return (size_t(b) * kv.num_kv_heads + kv_head) * kv.block_size + s;
}
// A block's int8 scales of one kv head: K's [group][offset], V's [offset].
inline const float* kv_k_scales(const PagedKv& kv, int block, int kv_head) {
  return kv.k_scale + kv_k_scale_index(kv, block * kv.block_size, kv_head, 0);
}
inline const float* kv_v_scales(const PagedKv& kv, int block, int kv_head) {
  return kv.v_scale + kv_v_scale_index(kv, block * kv.block_size, kv_head);
}

// Writes one token's k and v ([num_kv_heads * head_dim] each) into its slot (scalar reference).
void kv_write_ref(const PagedKv& kv, int slot, const float* k, const float* v);

// Attention output of one query token for the heads of one kv group (scalar reference):
// q: [heads_per_group * head_dim] (already rotated), attends to positions [0, ctx_len).
// scores: scratch of ctx_len floats. out: [heads_per_group * head_dim].
void attention_token_group_ref(const PagedKv& kv, const int32_t* block_table, int ctx_len, int kv_head, const float* q, int heads_per_group,
                               float scale, float* scores, float* out);

// One task of a step's attention: nq consecutive query tokens of one sequence, at positions
// pos0 .. pos0 + nq - 1 (each attends to positions [0, its own]), for the heads of one kv group.
// A decode token is a tile of one; a prefill chunk is cut into tiles of kAttentionTileRows rows
// (query x head), which read each K and V block once for all their rows.
struct AttentionTile {
  const int32_t* block_table = nullptr;
  int pos0 = 0, nq = 1, kv_head = 0;
  const float* q = nullptr;  // query i, head h of the group: q + i * q_stride + h * head_dim
  size_t q_stride = 0;
  float* out = nullptr;  // laid out as q, with out_stride
  size_t out_stride = 0;
};
constexpr int kAttentionTileRows = 16;
// Vectors of positions the vectorized kernels take per online-softmax update.
constexpr int kAttentionChunk = 4;

// Scratch floats the vectorized tile kernels need for `rows` rows (query x head).
inline size_t attention_scratch_floats(int head_dim, int rows) {
  constexpr size_t kMaxW = 16, cw = kAttentionChunk * kMaxW;  // the widest vector's floats; a chunk's positions
  return size_t(rows) * (3 + head_dim + cw) + 2 * cw * head_dim;
}

// The tile through attention_token_group_ref, query by query (the scalar reference path).
void attention_tile_ref(const PagedKv& kv, const AttentionTile& t, int heads_per_group, float scale);

}  // namespace weft
