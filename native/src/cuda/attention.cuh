// Causal attention of a packed batch (prefill chunks and decode tokens together) over the paged
// KV cache of one layer, FlashAttention-style: online softmax over KV tiles taken block by block,
// never materializing the score matrix.
// KV cache layout, as on the CPU: [num_blocks][num_kv_heads][block_size][head_dim], dtype T.
// Tokens of sequence i are rows [query_start[i], query_start[i+1]) of q and out; they are the
// last q_len positions of its context: token j of the chunk sits at position
// context_lens[i] - q_len + j and attends to positions [0, that position].
#pragma once
#include "cuda/common.cuh"

namespace weft {
namespace cuda {

struct AttentionArgs {
  // device arrays
  const int32_t* query_start = nullptr;  // [num_seqs + 1]
  const int32_t* context_lens = nullptr;  // [num_seqs]
  const int32_t* block_tables = nullptr;  // [num_seqs][max_blocks_per_seq]
  int num_seqs = 0, num_tokens = 0, max_blocks_per_seq = 0;
  // host-side upper bounds, used only to size the grid (kernels read the real lengths on the
  // device, so one launch configuration serves every batch under the bounds: CUDA graphs)
  int max_query_len = 0, max_context_len = 0;
  int num_heads = 0, num_kv_heads = 0, head_dim = 0, block_size = 16;
  float scale = 1.f;
  const void* q = nullptr;  // [num_tokens][q_stride] T; head h at columns [h*head_dim, (h+1)*head_dim)
  int q_stride = 0;
  const void* k_cache = nullptr;
  const void* v_cache = nullptr;
  void* out = nullptr;  // [num_tokens][out_stride] T, same head layout
  int out_stride = 0;
  void* workspace = nullptr;  // attention_workspace_bytes(...) bytes (split-context partials)
};

// Workspace for at most max_tokens tokens and contexts of at most max_context_len.
size_t attention_workspace_bytes(int max_tokens, int num_heads, int head_dim, int max_context_len);

cudaError_t attention(DType t, const AttentionArgs& a, cudaStream_t stream);

}  // namespace cuda
}  // namespace weft
