#include "cuda/kv_write.cuh"

namespace weft {
namespace cuda {
namespace {

template <class T>
__global__ void kv_write_kernel(const float* __restrict__ qkv, int ld_qkv, int k_col, int v_col,
                                const int32_t* __restrict__ slots, int num_kv_heads, int head_dim, int block_size,
                                T* __restrict__ k_cache, T* __restrict__ v_cache) {
  const int t = blockIdx.x, slot = slots[t];
  if (slot < 0) return;
  const int b = slot / block_size, s = slot % block_size;
  const float* row = qkv + size_t(t) * ld_qkv;
  for (int j = threadIdx.x; j < num_kv_heads * head_dim; j += blockDim.x) {
    const int g = j / head_dim, i = j % head_dim;
    const size_t o = ((size_t(b) * num_kv_heads + g) * block_size + s) * head_dim + i;
    k_cache[o] = from_f<T>(row[k_col + j]);
    v_cache[o] = from_f<T>(row[v_col + j]);
  }
}

}  // namespace

cudaError_t kv_write(DType t, const float* qkv, int ld_qkv, int k_col, int v_col, const int32_t* slots, int num_tokens,
                     int num_kv_heads, int head_dim, int block_size, void* k_cache, void* v_cache, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  const int n = num_kv_heads * head_dim, threads = n >= 256 ? 256 : (n + 31) / 32 * 32;
  WEFT_DISPATCH_DTYPE(t, kv_write_kernel<T><<<num_tokens, threads, 0, stream>>>(
                             qkv, ld_qkv, k_col, v_col, slots, num_kv_heads, head_dim, block_size,
                             static_cast<T*>(k_cache), static_cast<T*>(v_cache)));
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace weft
