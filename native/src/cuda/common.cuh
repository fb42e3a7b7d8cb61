// Shared by every CUDA op: the activation dtypes, host-side error mapping (cudaError_t → Status,
// never an abort), and device-side conversions. Launchers in native/src/cuda/*.cuh take a
// cudaStream_t and never synchronize; errors surface at the engine's per-step check.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>
#include <utility>

#include "weft_engine.h"

namespace weft {
namespace cuda {

// Activation / KV element type of an engine: f16 for f16 and int8 weights, bf16 for bf16 weights.
enum class DType { f16 = 0, bf16 = 1 };
inline size_t dtype_size(DType) {
  return 2;
}
inline const char* dtype_name(DType t) {
  return t == DType::f16 ? "f16" : "bf16";
}

// cudaError_t → typed Status: allocation failures are out_of_memory, missing devices or drivers
// are no_device, anything else (launch failure, illegal address, …) is internal.
inline Status cuda_status(cudaError_t e, const std::string& what) {
  if (e == cudaSuccess) return Status::Ok();
  // A failed call (an allocation, say) also leaves its error pending for cudaGetLastError, which
  // every launcher returns: clear it, or the next healthy step would report it. Sticky errors
  // (a faulted context) stay whatever is cleared.
  cudaGetLastError();
  StatusCode c = StatusCode::internal;
  if (e == cudaErrorMemoryAllocation) c = StatusCode::out_of_memory;
  else if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || e == cudaErrorInvalidDevice || e == cudaErrorSystemDriverMismatch ||
           e == cudaErrorCompatNotSupportedOnDevice)
    c = StatusCode::no_device;
  return Status::Error(c, what + ": " + cudaGetErrorName(e) + " (" + cudaGetErrorString(e) + ")");
}

#define WEFT_CUDA_TRY(expr, what)                                                \
  do {                                                                           \
    cudaError_t weft_e_ = (expr);                                                \
    if (weft_e_ != cudaSuccess) return ::weft::cuda::cuda_status(weft_e_, what); \
  } while (0)

inline unsigned ceil_div(long a, long b) {
  return unsigned((a + b - 1) / b);
}

// Programmatic dependent launch (Hopper): a kernel launched with launch_pdl may be scheduled
// while the kernel before it in the stream still runs, so it can fetch what no earlier kernel
// writes (weights) before pdl_wait(), which returns once that kernel has completed and its
// writes are visible. Kernels that precede such a launch call pdl_trigger() first thing, which
// lets the dependent grid be scheduled as soon as all of their CTAs have started. Both device
// calls are no-ops for kernels launched the ordinary way. Every kernel launched with launch_pdl
// must call pdl_wait() in every CTA before it reads or writes activations (the chain of waits is
// what orders each kernel after all earlier ones). On unless WEFT_CUDA_PDL=0 (read once).
bool pdl_enabled();

// ---- device helpers (CUDA translation units only; host files may include this header) ----
#if defined(__CUDACC__)
template <class T> __device__ __forceinline__ float to_f(T v);
template <> __device__ __forceinline__ float to_f<float>(float v) {
  return v;
}
template <> __device__ __forceinline__ float to_f<__half>(__half v) {
  return __half2float(v);
}
template <> __device__ __forceinline__ float to_f<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) {
  return v;
}
template <> __device__ __forceinline__ __half from_f<__half>(float v) {
  return __float2half_rn(v);
}
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory");
#endif
}
// Launches kernel<<<grid, block, smem, stream>>>(args...), allowed to overlap the previous kernel
// of the stream when pdl_enabled() (the kernel must call pdl_wait() before reading activations).
template <class... KArgs, class... Args>
cudaError_t launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = stream;
  cfg.attrs = attr, cfg.numAttrs = pdl_enabled() ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

__device__ __forceinline__ float warp_sum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
#endif  // __CUDACC__

// Calls f.template operator()<T>() with T the C++ type of `t` (__half or __nv_bfloat16).
#define WEFT_DISPATCH_DTYPE(t, ...)        \
  do {                                     \
    if ((t) == ::weft::cuda::DType::f16) { \
      using T = __half;                    \
      __VA_ARGS__;                         \
    } else {                               \
      using T = __nv_bfloat16;             \
      __VA_ARGS__;                         \
    }                                      \
  } while (0)

}  // namespace cuda
}  // namespace weft
