#include "cuda/embedding.cuh"

namespace weft {
namespace cuda {
namespace {

template <class T> __global__ void embedding_kernel(const T* __restrict__ table, const int32_t* __restrict__ ids, int dim, float* __restrict__ x) {
  const int t = blockIdx.x;
  const T* row = table + size_t(ids[t]) * dim;
  float* out = x + size_t(t) * dim;
  for (int i = threadIdx.x; i < dim; i += blockDim.x) out[i] = to_f(row[i]);
}

}  // namespace

cudaError_t embedding_gather(DType t, const void* table, const int32_t* ids, int num_tokens, int dim, float* x, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  const int threads = dim >= 256 ? 256 : 64;
  WEFT_DISPATCH_DTYPE(t, embedding_kernel<T><<<num_tokens, threads, 0, stream>>>(static_cast<const T*>(table), ids, dim, x));
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace weft
