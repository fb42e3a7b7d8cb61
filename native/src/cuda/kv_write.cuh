// Paged-KV write: each token's rotated k and its v (fp32, inside the qkv rows) go to its slot
// (block * block_size + offset) of one layer's caches, in the activation dtype. The layout is
// the CPU's: [num_blocks][num_kv_heads][block_size][head_dim]. Tokens with slot < 0 (padding
// of a captured graph's batch) are skipped.
#pragma once
#include "cuda/common.cuh"

namespace weft {
namespace cuda {

cudaError_t kv_write(DType t, const float* qkv, int ld_qkv, int k_col, int v_col, const int32_t* slots, int num_tokens,
                     int num_kv_heads, int head_dim, int block_size, void* k_cache, void* v_cache, cudaStream_t stream);

}  // namespace cuda
}  // namespace weft
