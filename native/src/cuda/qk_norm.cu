#include "cuda/qk_norm.cuh"

namespace weft {
namespace cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

// One warp per (token, head): grid.x = tokens, grid.y = ceil(heads / kWarpsPerBlock).
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    qk_norm_kernel(float* __restrict__ qkv, int ld_qkv, const float* __restrict__ q_w, const float* __restrict__ k_w, int num_heads, int num_kv_heads,
                   int head_dim, float eps) {
  const int lane = threadIdx.x & 31;
  const int h = blockIdx.y * kWarpsPerBlock + (threadIdx.x >> 5);
  if (h >= num_heads + num_kv_heads) return;  // whole warps leave together: warp_sum stays full
  float* v = qkv + size_t(blockIdx.x) * ld_qkv + size_t(h) * head_dim;
  const float* w = h < num_heads ? q_w : k_w;
  float ss = 0;
  for (int i = lane; i < head_dim; i += 32) ss += v[i] * v[i];
  const float inv = rsqrtf(warp_sum(ss) / head_dim + eps);
  for (int i = lane; i < head_dim; i += 32) v[i] = v[i] * inv * w[i];
}

}  // namespace

cudaError_t qk_norm_f32(float* qkv, int ld_qkv, int num_tokens, const float* q_w, const float* k_w, int num_heads, int num_kv_heads, int head_dim,
                        float eps, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  if (!q_w || !k_w || head_dim <= 0) return cudaErrorInvalidValue;
  const dim3 grid(num_tokens, (num_heads + num_kv_heads + kWarpsPerBlock - 1) / kWarpsPerBlock);
  qk_norm_kernel<<<grid, kWarpsPerBlock * 32, 0, stream>>>(qkv, ld_qkv, q_w, k_w, num_heads, num_kv_heads, head_dim, eps);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace weft
