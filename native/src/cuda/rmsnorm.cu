#include "cuda/rmsnorm.cuh"

namespace weft {
namespace cuda {
namespace {

constexpr int kThreads = 256;

template <class T> __global__ void __launch_bounds__(kThreads)
    rmsnorm_kernel(const float* __restrict__ x, int ldx, const int32_t* __restrict__ rows, const float* __restrict__ w, float eps, int dim,
                   T* __restrict__ out, int ld_out) {
  pdl_wait();
  pdl_trigger();  // the projection after a norm may start fetching its weights
  __shared__ float partial[kThreads / 32];
  const int r = blockIdx.x;
  const float* xr = x + size_t(rows ? rows[r] : r) * ldx;
  float ss = 0;
  for (int i = threadIdx.x; i < dim; i += kThreads) ss += xr[i] * xr[i];
  ss = warp_sum(ss);
  if ((threadIdx.x & 31) == 0) partial[threadIdx.x >> 5] = ss;
  __syncthreads();
  if (threadIdx.x < 32) {
    float v = threadIdx.x < kThreads / 32 ? partial[threadIdx.x] : 0.f;
    v = warp_sum(v);
    if (threadIdx.x == 0) partial[0] = v;
  }
  __syncthreads();
  const float inv = rsqrtf(partial[0] / dim + eps);
  T* o = out + size_t(r) * ld_out;
  for (int i = threadIdx.x; i < dim; i += kThreads) o[i] = from_f<T>(xr[i] * inv * w[i]);
}

}  // namespace

cudaError_t rmsnorm(DType t, const float* x, int ldx, const int32_t* rows, int num_rows, const float* w, float eps, int dim, void* out, int ld_out,
                    cudaStream_t stream) {
  if (num_rows <= 0) return cudaSuccess;
  WEFT_DISPATCH_DTYPE(
      t, return launch_pdl(rmsnorm_kernel<T>, dim3(num_rows), dim3(kThreads), 0, stream, x, ldx, rows, w, eps, dim, static_cast<T*>(out), ld_out));
  return cudaErrorInvalidValue;  // not reached
}

}  // namespace cuda
}  // namespace weft
