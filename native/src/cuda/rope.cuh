// Rotary position embedding (rotate-half, HF layout) on the fp32 qkv projection rows, with the
// optional qkv bias (Qwen2) added first and llama3/linear scaling folded into inv_freq
// (computed on the host by rope_inv_freq, as on the CPU). Rotated q heads are written in the
// activation dtype to q_out (the attention input); rotated k stays fp32 in qkv for kv_write.
// qkv row layout: [q: num_heads*head_dim][k: num_kv_heads*head_dim][v: num_kv_heads*head_dim].
#pragma once
#include "cuda/common.cuh"

namespace weft {
namespace cuda {

cudaError_t rope_qkv(DType t, float* qkv, int ld_qkv, int num_tokens, const float* bias, const int32_t* positions,
                     const float* inv_freq, int num_heads, int num_kv_heads, int head_dim, void* q_out, int ld_q,
                     cudaStream_t stream);

}  // namespace cuda
}  // namespace weft
