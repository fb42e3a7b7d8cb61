// Rotary position embedding (rotate-half, HF layout) on the fp32 qkv projection rows, with the
// optional qkv bias (Qwen2) added first and llama3/linear scaling folded into inv_freq
// (computed on the host by rope_inv_freq, as on the CPU), fused with the paged-KV write.
// qkv row layout: [q: num_heads*head_dim][k: num_kv_heads*head_dim][v: num_kv_heads*head_dim].
// Rotated q heads are written in the activation dtype to q_out (the attention input). Rotated k
// stays fp32 in qkv, and when kv is given, each token's rotated k and its v also go to its slot
// (block * block_size + offset) of one layer's caches in the activation dtype, in the CPU's layout
// [num_blocks][num_kv_heads][block_size][head_dim]; tokens with slot < 0 (padding of a captured
// graph's batch) write nothing there. One kernel instead of two: at batch 1 each launch costs
// more than its work.
#pragma once
#include "cuda/common.cuh"

namespace weft {
namespace cuda {

struct KvDest {
  const int32_t* slots;  // [num_tokens]
  int block_size;
  void* k_cache;
  void* v_cache;
};

cudaError_t rope_qkv(DType t, float* qkv, int ld_qkv, int num_tokens, const float* bias, const int32_t* positions, const float* inv_freq,
                     int num_heads, int num_kv_heads, int head_dim, void* q_out, int ld_q, const KvDest* kv, cudaStream_t stream);

}  // namespace cuda
}  // namespace weft
