// Qwen3's per-head RMSNorm of q and k, in place on the fp32 qkv projection rows, before
// rope_qkv: each head's head_dim values are divided by their RMS and scaled by q_w (q heads) or
// k_w (k heads), weights [head_dim] shared by every head. v is untouched. The CPU reference is
// rmsnorm_f32 over each head. qkv row layout as in rope.cuh.
#pragma once
#include "cuda/common.cuh"

namespace weft {
namespace cuda {

cudaError_t qk_norm_f32(float* qkv, int ld_qkv, int num_tokens, const float* q_w, const float* k_w, int num_heads, int num_kv_heads, int head_dim,
                        float eps, cudaStream_t stream);

}  // namespace cuda
}  // namespace weft
