#include "cuda/rope.cuh"

namespace weft {
namespace cuda {
namespace {

// One block per token; thread i handles dimension pair (i, i + half) of every head, then the
// token's v when it is written to the cache.
template <class T> __global__ void rope_kernel(float* __restrict__ qkv, int ld_qkv, const float* __restrict__ bias,
                                               const int32_t* __restrict__ positions, const float* __restrict__ inv_freq, int num_heads,
                                               int num_kv_heads, int head_dim, T* __restrict__ q_out, int ld_q, const KvDest kv) {
  pdl_wait();
  pdl_trigger();
  const int t = blockIdx.x, half = head_dim / 2;
  float* row = qkv + size_t(t) * ld_qkv;
  const int heads = num_heads + num_kv_heads, cols = (num_heads + 2 * num_kv_heads) * head_dim;
  if (bias) {
    for (int c = threadIdx.x; c < cols; c += blockDim.x) row[c] += bias[c];
    __syncthreads();
  }
  const int slot = kv.k_cache ? kv.slots[t] : -1;
  // element (g, s, i) of head g's k (or v) in block b of the cache, for slot = b * block_size + s
  const size_t kv_base =
      slot < 0 ? 0 : size_t(slot / kv.block_size) * num_kv_heads * kv.block_size * head_dim + size_t(slot % kv.block_size) * head_dim;
  const size_t head_stride = size_t(kv.block_size) * head_dim;
  const float pos = float(positions[t]);
  for (int job = threadIdx.x; job < heads * half; job += blockDim.x) {
    const int h = job / half, i = job % half;
    float s, c;
    sincosf(pos * inv_freq[i], &s, &c);
    float* v = row + h * head_dim;
    const float a = v[i], b = v[i + half];
    const float ra = a * c - b * s, rb = b * c + a * s;
    if (h < num_heads) {
      T* q = q_out + size_t(t) * ld_q + h * head_dim;
      q[i] = from_f<T>(ra);
      q[i + half] = from_f<T>(rb);
    } else {
      v[i] = ra;
      v[i + half] = rb;
      if (slot >= 0) {
        T* k = static_cast<T*>(kv.k_cache) + kv_base + (h - num_heads) * head_stride;
        k[i] = from_f<T>(ra);
        k[i + half] = from_f<T>(rb);
      }
    }
  }
  if (slot >= 0) {
    const float* vsrc = row + (num_heads + num_kv_heads) * head_dim;
    T* vc = static_cast<T*>(kv.v_cache) + kv_base;
    for (int j = threadIdx.x; j < num_kv_heads * head_dim; j += blockDim.x) vc[(j / head_dim) * head_stride + j % head_dim] = from_f<T>(vsrc[j]);
  }
}

}  // namespace

cudaError_t rope_qkv(DType t, float* qkv, int ld_qkv, int num_tokens, const float* bias, const int32_t* positions, const float* inv_freq,
                     int num_heads, int num_kv_heads, int head_dim, void* q_out, int ld_q, const KvDest* kv, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  if (kv && (!kv->slots || !kv->k_cache || !kv->v_cache || kv->block_size <= 0)) return cudaErrorInvalidValue;
  const int jobs = (num_heads + num_kv_heads) * head_dim / 2;
  const int threads = jobs >= 256 ? 256 : (jobs + 31) / 32 * 32;
  const KvDest dest = kv ? *kv : KvDest{nullptr, 1, nullptr, nullptr};
  WEFT_DISPATCH_DTYPE(t, return launch_pdl(rope_kernel<T>, dim3(num_tokens), dim3(threads), 0, stream, qkv, ld_qkv, bias, positions, inv_freq,
                                           num_heads, num_kv_heads, head_dim, static_cast<T*>(q_out), ld_q, dest));
  return cudaErrorInvalidValue;  // not reached
}

}  // namespace cuda
}  // namespace weft
