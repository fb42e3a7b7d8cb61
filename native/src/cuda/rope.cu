#include "cuda/rope.cuh"

namespace weft {
namespace cuda {
namespace {

// One block per token; thread i handles dimension pair (i, i + half) of every head.
template <class T>
__global__ void rope_kernel(float* __restrict__ qkv, int ld_qkv, const float* __restrict__ bias,
                            const int32_t* __restrict__ positions, const float* __restrict__ inv_freq, int num_heads,
                            int num_kv_heads, int head_dim, T* __restrict__ q_out, int ld_q) {
  const int t = blockIdx.x, half = head_dim / 2;
  float* row = qkv + size_t(t) * ld_qkv;
  const int heads = num_heads + num_kv_heads, cols = (num_heads + 2 * num_kv_heads) * head_dim;
  if (bias) {
    for (int c = threadIdx.x; c < cols; c += blockDim.x) row[c] += bias[c];
    __syncthreads();
  }
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
    }
  }
}

}  // namespace

cudaError_t rope_qkv(DType t, float* qkv, int ld_qkv, int num_tokens, const float* bias, const int32_t* positions,
                     const float* inv_freq, int num_heads, int num_kv_heads, int head_dim, void* q_out, int ld_q,
                     cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  const int jobs = (num_heads + num_kv_heads) * head_dim / 2;
  const int threads = jobs >= 256 ? 256 : (jobs + 31) / 32 * 32;
  WEFT_DISPATCH_DTYPE(t, rope_kernel<T><<<num_tokens, threads, 0, stream>>>(qkv, ld_qkv, bias, positions, inv_freq,
                                                                          num_heads, num_kv_heads, head_dim,
                                                                          static_cast<T*>(q_out), ld_q));
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace weft
