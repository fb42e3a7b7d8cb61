#include "cuda/silu_mul.cuh"

namespace weft {
namespace cuda {
namespace {

template <class T> __global__ void silu_mul_kernel(const T* __restrict__ gu, int ld_gu, int ffn, T* __restrict__ out, int ld_out) {
  pdl_wait();
  pdl_trigger();  // the down projection may start fetching its weights
  const int t = blockIdx.y;
  const T* row = gu + size_t(t) * ld_gu;
  T* o = out + size_t(t) * ld_out;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < ffn; i += gridDim.x * blockDim.x) {
    const float g = to_f(row[2 * i]), u = to_f(row[2 * i + 1]);
    o[i] = from_f<T>(g / (1.f + expf(-g)) * u);
  }
}

}  // namespace

cudaError_t silu_mul(DType t, const void* gate_up, int ld_gu, int num_tokens, int ffn, void* out, int ld_out, cudaStream_t stream) {
  if (num_tokens <= 0) return cudaSuccess;
  const dim3 grid(ceil_div(ffn, 256 * 4) > 0 ? ceil_div(ffn, 256 * 4) : 1, num_tokens);
  WEFT_DISPATCH_DTYPE(
      t, return launch_pdl(silu_mul_kernel<T>, grid, dim3(256), 0, stream, static_cast<const T*>(gate_up), ld_gu, ffn, static_cast<T*>(out), ld_out));
  return cudaErrorInvalidValue;  // not reached
}

}  // namespace cuda
}  // namespace weft
